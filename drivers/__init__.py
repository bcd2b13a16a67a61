"""Drivers: sensor bytes in, typed :class:`~roadside.records.Reading` records out.

Layers, each in its own module:

- ``profile``: device models as TOML files (``profiles/``); ``errors``: the error tree.
- ``ports``: opening serial paths and ``tcp://`` endpoints with clear errors.
- ``registers``: Modbus block planning, decoding, encoding; ``diagnose``: what a bad reply was.
- ``modbus``: RTU and TCP through pymodbus (``ModbusLink`` per port, ``ModbusDriver`` per slave).
- ``line``, ``windsonic``, ``wxt``: ASCII port, framing and checksum, message decoding.
- ``samples``: what a driver returns and how it becomes readings; ``counter``: rain counters.
- ``health``: circuit breaker and health states; ``bus``: ``BusScheduler``, the one owner of a
  port, and ``open_buses``.
"""
