"""Shared kernel of Roadside: the clock, the reading record and other facts both sides use."""
