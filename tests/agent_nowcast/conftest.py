"""Fixtures for the nowcast-in-the-agent tests: a real broker and committing sink."""

from roadside.testing.fixtures import broker, pki, sink  # noqa: F401
