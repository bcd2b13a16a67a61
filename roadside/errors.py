"""The one root of every Roadside exception, and the tree each package hangs under it.

::

    RoadsideError                       roadside.errors: anything Roadside refuses or cannot do
    │                                   (``exit_code`` 1; the InputError branches below: 2)
    ├── ContractError                   roadside.contract: a message or body breaks the contract;
    │   │                               ``code`` is a stable NACK/refusal code (NACK_CODES)
    │   └── WireError                   roadside.wire: a payload or topic off the contract
    │       └── ContractVersionError    a contract major this side does not speak
    ├── AgentError                      agent.errors
    │   ├── ConfigError                 a station configuration is missing or invalid
    │   └── BufferStoreError            the durable buffer cannot take or give records
    │       └── BufferFullError         size cap reached, only never-dropped rows remain
    ├── DriverError                     drivers.errors
    │   ├── ProfileError                a profile file is missing, unknown or malformed
    │   ├── PortError                   a port is missing, vanished or not permitted
    │   └── DeviceError                 a device answered badly or not at all
    ├── FleetError                      fleet.errors
    │   ├── StoreError                  database URL bad or database unreachable
    │   ├── KeyFileError                a key file is missing, unreadable or of the wrong kind
    │   ├── DocumentError               a document is malformed, unsafe or mis-scoped (``code``)
    │   ├── RolloutError                a staged rollout cannot start or advance
    │   └── BrokerError                 the broker is unreachable or refused the controller
    ├── SimError                        sim.errors
    │   ├── ScenarioError               a scenario file is missing, unknown or malformed
    │   └── SimDeviceError              sim.devices.errors (ports, faults, control socket)
    └── NowcastError                    edge_models.errors (model file, feature mismatch)

Library errors are mapped into this tree at the edges that meet them: ``sqlite3.Error`` and
``OSError`` of the station buffer become :class:`~agent.errors.BufferStoreError` in
:mod:`agent.buffer`; ``sqlite3``/``psycopg`` errors of the fleet store become
:class:`~fleet.errors.StoreError` in :mod:`fleet.store_sql`; ``OSError``/``ssl.SSLError`` of a
broker connection become :class:`~fleet.errors.BrokerError`; unreadable files become the
package's file error naming the path. Command lines print ``str(error)`` as one line and exit
with the code of :data:`roadside.exitcodes.EXIT_CODES`.
"""

from __future__ import annotations


class RoadsideError(Exception):
    """Base of every error Roadside raises on purpose; ``exit_code`` is what a command exits
    with for it (:mod:`roadside.exitcodes`: 1 runtime failure, 2 bad usage or input)."""

    exit_code = 1


class InputError(RoadsideError):
    """Mixin base of the errors that are a user's input mistake (exit code 2)."""

    exit_code = 2
