"""Command line of roadside-provisioning (thin layer over the package's functions)."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The field technician's tool: find, check and commission sensors and stations."""


@main.command("read")
@click.option(
    "--port", required=True, help="Serial device path, or tcp://host:port for Modbus TCP."
)
@click.option(
    "--profile", "profile", required=True, help="Profile name (see drivers/profiles) or file."
)
@click.option(
    "--slave", type=click.IntRange(0, 247), help="Slave/device address (default: profile's)."
)
@click.option(
    "--count",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Polls to make; 0 reads until interrupted.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between polls (on clock boundaries).",
)
@click.option("--baudrate", type=click.IntRange(min=1), help="Override the profile's baud rate.")
@click.option("--timeout", type=click.FloatRange(min=0.01), help="Answer timeout in seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per reading per line.")
def read_cmd(
    port: str,
    profile: str,
    slave: int | None,
    count: int,
    interval: float,
    baudrate: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print live, decoded readings from one device.

    Exit codes: 0 some good reading, 1 none, 2 usage, 3 unknown profile, 4 malformed profile,
    5 port missing, 6 port not permitted, 7 port unusable.
    """
    from provisioning.read import (
        EXIT_NO_READING,
        ReadError,
        read_device,
        reading_json,
        reading_line,
    )
    from roadside.clock import SystemClock

    line = reading_json if as_json else reading_line
    last: list[str] = []

    def show(batch: list) -> None:
        for r in batch:
            click.echo(line(r))
            if not r.ok and r.detail:
                last[:] = [f"{r.status.value}: {r.detail}"]

    try:
        good = read_device(
            port,
            profile,
            clock=SystemClock(),
            on_batch=show,
            slave=slave,
            count=count,
            interval_s=interval,
            baudrate=baudrate,
            timeout_s=timeout,
        )
    except ReadError as exc:
        raise _failure(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        return
    if not good:
        reason = last[0] if last else "no answer"
        raise _failure(f"{port}: no good reading ({reason})", EXIT_NO_READING)


def _failure(message: str, exit_code: int) -> click.ClickException:
    """A one-line error with its own exit code."""
    err = click.ClickException(message)
    err.exit_code = exit_code  # type: ignore[misc]
    return err
