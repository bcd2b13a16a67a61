"""Command line of roadside-sim (thin layer over the package's functions)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The sensor simulator: storms, devices on real byte streams, fault injection."""
