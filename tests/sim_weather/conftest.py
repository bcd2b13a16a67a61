"""Fixtures for the simulator-weather tests."""
