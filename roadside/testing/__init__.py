"""Test support shared by every package's tests: a throw-away PKI and a real Mosquitto broker."""
