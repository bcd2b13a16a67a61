"""Hardware in the loop: qualification runs of a device under test against the simulator.

- ``runfile``: the run file (TOML): scenario, speed, ports, fault timeline, checkpoints, DUT source
- ``run``: one run: the simulator on its (bound) ports, the DUT's results collected
- ``agent``: the project's own agent as the DUT (broker, station configuration, process)
- ``observe``: the DUT's results from its MQTT uplink, its HTTP status or its SQLite buffer
- ``score``: the truth-versus-device scorecard (pure functions)
- ``report``: the scorecard as an HTML page with plots
"""
