"""Simulated sensors on real byte streams.

Run a station from the shell::

    roadside-sim run storm-5y-2h --link-dir /tmp/roadside-sim      # prints port, slave, profile
    roadside-sim fault /tmp/roadside-sim/state.json level no_answer --duration 300
    roadside-sim clear /tmp/roadside-sim/state.json level
    roadside-sim run hil-bench --bind rs485-1=/dev/ttyUSB0 --listen 0.0.0.0   # real ports

or from Python (tests, benchmarks)::

    with SimStation(scenario, clock, link_dir, pacing=False) as st:
        port = st.endpoints["rain"].port            # /tmp/.../ttyRS485-1 or tcp://127.0.0.1:N
        st.inject("rain", "crc_error", duration_s=60)

Scenario time is ``clock.now() - scenario.start``; fault durations are scenario seconds, wire
delays (``slow_answer``) real seconds. :func:`min_cycle_s` and :func:`read_registers_cycle_s`
give the theoretical cost of a Modbus RTU transaction on a bus.

Layers, each knowing one thing:

- ``device``: a device's physics (channel values from the scenario truth, power and settings state)
- ``faults``: what is wrong with it, when, and how that changes values and frames
- ``registers`` / ``modbus``: profile -> register image; Modbus PDUs and RTU/TCP framing
- ``windsonic`` / ``wxt``: the ASCII protocols
- ``pty`` / ``line`` / ``timing``: pseudo-terminals that can vanish, wire-time pacing
- ``serialport``: a real serial device a bus is bound to (``run --bind``; the UART paces)
- ``rtu`` / ``ascii`` / ``tcp``: buses serving devices; ``control``: the running sim's socket
- ``capture`` / ``replay`` / ``tap``: a bus's traffic recorded, served again, or tapped from a
  field line between a master and a real sensor
"""

from sim.devices.timing import (
    char_time_s,
    max_polls_per_s,
    min_cycle_s,
    read_registers_cycle_s,
    silence_s,
)

__all__ = ["char_time_s", "max_polls_per_s", "min_cycle_s", "read_registers_cycle_s", "silence_s"]
