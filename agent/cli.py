"""Command line of roadside-agent (thin layer over the package's functions)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The station agent: polls sensors, runs QC, derives products, buffers and syncs."""
