"""Extras match where the code runs: the station's install carries no web stack or database
client, every command finds what it needs in its extra, and station code never imports the test
support."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB_AND_DB = ("fastapi", "uvicorn", "psycopg", "rich", "httpx", "starlette")
FLEET_ONLY = ("pydantic",)  # the station validates with msgspec (roadside.structs)


def _requirements(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split(";")[0].strip()
        if line:
            names.add(re.split(r"[<>=\[ ]", line, maxsplit=1)[0].lower())
    return names


def _setup() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_the_station_install_has_no_web_stack_and_each_command_its_extra() -> None:
    cfg = _setup()
    base = _requirements(cfg["options"]["install_requires"])
    assert not base & {*WEB_AND_DB, *FLEET_ONLY}, base & {*WEB_AND_DB, *FLEET_ONLY}
    assert "msgspec" in base  # the contract, the station configuration, the profiles
    extras = {k: _requirements(v) for k, v in cfg["options.extras_require"].items()}
    assert {"fastapi", "uvicorn", "psycopg", "httpx", "pydantic"} <= extras["fleet"]  # run, push
    assert {"rich", "aiosmtpd", "standardwebhooks"} <= extras["demo"]  # sim/receivers.py
    assert {"flatbuffers", "rich"} <= extras["model"]  # the TFLite export, training progress
    makefile = (ROOT / "Makefile").read_text()
    assert "'.[dev,systemd,fleet,demo,model]'" in makefile


def test_station_code_imports_neither_the_web_stack_nor_the_test_support() -> None:
    code = (
        "import sys\n"
        "import agent.cli, agent.runner, agent.uplink, agent.remote_config, agent.pipeline\n"
        "import agent.nowcast, drivers.bus, roadside.contract, roadside.wire, roadside.registry\n"
        "import roadside.columnar, provisioning.read\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {(*WEB_AND_DB, *FLEET_ONLY)!r}"
        " or m.startswith('roadside.testing')]\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == ""


def test_no_shipped_module_imports_the_test_support() -> None:
    """The demo's broker, throw-away CA and receivers live in ``sim``; only ``roadside.testing``
    (fixtures and the load-generating sink) is for tests."""
    import ast

    offenders = []
    for pkg in ("roadside", "agent", "drivers", "edge_models", "fleet", "provisioning", "sim"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.is_relative_to(ROOT / "roadside" / "testing"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                if any(n.startswith("roadside.testing") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")  # type: ignore[attr-defined]
    assert offenders == []


SHIPPED = ("roadside", "agent", "drivers", "edge_models", "fleet", "provisioning", "sim")


def _tracked(*paths: str) -> list[str]:
    """Files git keeps (or would keep) under ``paths``: what a clean clone holds."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *paths],
        capture_output=True, text=True, cwd=ROOT, check=True,
    ).stdout.split()  # fmt: skip
    return [t for t in out if (ROOT / t).is_file()]


def _wheel(out: Path) -> Path:
    """The wheel of a clean copy of the tree (an in-tree ``build/`` would hand stale files on)."""
    src = out / "src"
    for name in _tracked():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (wheel,) = out.glob("roadside-*.whl")
    return wheel


def test_the_wheel_ships_every_file_of_its_packages_and_installed_code_finds_them(
    tmp_path: Path,
) -> None:
    """What the source tree holds under a package is in the wheel (profiles, scenarios, the
    model, the console's files, the agent's systemd unit, the broker's configuration), and the
    installed code, run away from the source tree, finds the unit and the broker configuration
    it reads."""
    import zipfile

    wheel = _wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [t for t in _tracked(*SHIPPED) if t not in names]
    assert missing == []
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs as its files
    (tmp_path / "station.toml").write_text("# placeholder: plan() only copies it\n")
    code = (
        "import sys; from pathlib import Path\n"
        "import provisioning.install as i, sim.broker as b\n"
        f"site = {str(site)!r}\n"
        "assert i.__file__.startswith(site) and b.__file__.startswith(site), (i.__file__, site)\n"
        "entries = i.plan(Path('station.toml'), agent_bin='/opt/a', provision_bin='/opt/p')\n"
        "unit = next(e.text for e in entries if e.path.endswith('/roadside-agent.service'))\n"
        "assert 'ExecStart=/opt/a' in unit, unit\n"
        "assert str(b.DEPLOY_DIR).startswith(site)\n"
        "print(sorted(p.name for p in b.DEPLOY_DIR.iterdir()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert out.returncode == 0, out.stderr
    assert "mosquitto.conf.template" in out.stdout and "dynamic-security.json" in out.stdout


def test_the_agent_starts_no_numpy_worker_threads() -> None:
    """Importing the agent (numpy, the nowcast, the bus) leaves one thread in the process."""
    code = (
        "import os, agent.cli, agent.runner, agent.nowcast, numpy\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert out.stdout.strip() == "1"
