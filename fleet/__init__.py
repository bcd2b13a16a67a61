"""The fleet controller: ingest, station registry, signed configuration rollout, HTTP API.

service.py     one MQTT v5 client (shared subscription), the ingest worker, a ticker
ingest.py      uplink messages -> one transaction per group of batches -> acks after commit
store.py       the storage interface and its records; store_sql.py the shared SQL;
               store_sqlite.py (default) and store_postgres.py the back ends
documents.py   scopes, signed documents, desired vs reported state (pure)
rollout.py     pushes, staged canary rollouts, acks/nacks, retries
api.py         FastAPI app (OpenAPI at /openapi.json)
keys.py        the controller's Ed25519 signing key
loadgen.py     simulated station clients for tests and benchmarks
cli.py         roadside-fleet run | keygen | stations
errors.py      the package's error tree
"""
