"""Command line of roadside-provisioning (thin layer over the package's functions)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The field technician's tool: find, check and commission sensors and stations."""
