"""Link tests run against a real Mosquitto started per test with the shipped configuration."""

from roadside.testing.fixtures import broker, pki, sink  # noqa: F401
