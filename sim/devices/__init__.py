"""Simulated sensors on real byte streams.

Layers, each knowing one thing:

- ``device``: a device's physics (channel values from the scenario truth, power and settings state)
- ``faults``: what is wrong with it, when, and how that changes values and frames
- ``registers`` / ``modbus``: profile -> register image; Modbus PDUs and RTU/TCP framing
- ``windsonic`` / ``wxt``: the ASCII protocols
- ``pty`` / ``line`` / ``timing``: pseudo-terminals that can vanish, wire-time pacing
- ``rtu`` / ``ascii`` / ``tcp``: buses serving devices; ``control``: the running sim's socket
"""

from sim.devices.timing import (
    char_time_s,
    max_polls_per_s,
    min_cycle_s,
    read_registers_cycle_s,
    silence_s,
)

__all__ = ["char_time_s", "max_polls_per_s", "min_cycle_s", "read_registers_cycle_s", "silence_s"]
