"""Issue 9 (6), (7), (8) on the real buffer file and the real agent process: a WAL rollback after a
power cut never reuses a sequence number, a full disk degrades the agent instead of crashing it,
a corrupt buffer's readable unsynced rows are salvaged, and "cannot open" is not "corrupt"."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_buffer import polls, readings  # noqa: F401  (the fixture: records or polls)
from test_crash import storm  # noqa: F401  (the running simulated station)

from agent.buffer import Buffer
from agent.errors import BufferStoreError
from roadside.clock import ManualClock
from roadside.testing.fixtures import wait_until


def _copy_as_it_lies(src: Path, dst: Path) -> Path:
    """The buffer's files as a power cut leaves them: db, -wal and .hwm, mid-run (no close)."""
    dst.mkdir()
    for suffix in ("", "-wal", ".hwm"):
        f = Path(str(src) + suffix)
        if f.exists():
            shutil.copyfile(f, dst / (src.name + suffix))
    return dst / src.name


@pytest.mark.usefixtures("polls")
def test_a_wal_rollback_after_a_power_cut_never_reuses_a_sequence(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "buffer.db"
    buf = Buffer(path, max_bytes=1 << 26, clock=clock)
    for _ in range(40):  # forty transactions, each a few WAL frames
        buf.append(readings(clock, 10, pad=300))
    used = buf.stats().last_seq
    cut = _copy_as_it_lies(path, tmp_path / "cut")
    buf.close()
    wal = Path(str(cut) + "-wal")
    size = wal.stat().st_size
    page = 4096
    frames = (size - 32) // (24 + page)
    assert frames > 10
    with open(wal, "r+b") as f:  # one damaged frame in the middle: its checksum fails
        f.seek(32 + (frames // 2) * (24 + page) + 24 + 200)
        f.write(os.urandom(64))
    conn = sqlite3.connect(cut)
    assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"  # passes, yet rolled back
    rolled = conn.execute("SELECT max(seq) FROM buffered").fetchone()[0]
    conn.close()
    assert rolled < used, "the damaged frame did not roll the sequence back"
    again = Buffer(cut, max_bytes=1 << 26, clock=clock)
    new = again.append(readings(clock, 5))
    assert min(new) > used, f"seq {min(new)} reused (used up to {used}, rolled back to {rolled})"
    gap = [g for g in again.gaps() if g.reason == "seq_skipped"]
    assert gap and gap[0].payload["first_seq"] == rolled + 1
    assert gap[0].payload["last_seq"] >= used
    again.close()


@pytest.mark.usefixtures("polls")
def test_clean_restarts_keep_the_sequence_contiguous(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "buffer.db"
    for n in range(3):
        with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
            assert buf.append(readings(clock, 10)) == list(range(10 * n + 1, 10 * n + 11))
            assert not buf.gaps()


@pytest.mark.usefixtures("polls")
def test_an_unclean_stop_skips_the_reservation_with_a_gap_row(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "buffer.db"
    buf = Buffer(path, max_bytes=1 << 26, clock=clock)
    buf.append(readings(clock, 10))
    cut = _copy_as_it_lies(path, tmp_path / "cut")  # the process died here
    cut2 = _copy_as_it_lies(path, tmp_path / "cut2")
    buf.close()
    Path(str(cut) + ".hwm").unlink()  # and the side file is lost as well: the db still counts
    with Buffer(cut, max_bytes=1 << 26, clock=clock) as again:
        assert again.append(readings(clock, 1))[0] == 11
    with Buffer(cut2, max_bytes=1 << 26, clock=clock) as again:
        seq = again.append(readings(clock, 1))[0]
        (gap,) = again.gaps()
        assert gap.payload["first_seq"] == 11 and seq > gap.payload["last_seq"] >= 11


@pytest.mark.usefixtures("polls")
def test_a_corrupt_buffers_unsynced_rows_are_salvaged_with_their_seqs(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
        for _ in range(30):
            buf.append(readings(clock, 10, pad=600))
        buf.mark_synced(range(1, 101))
    size = path.stat().st_size
    with open(path, "r+b") as f:  # wreck a stretch of pages near the end
        f.seek(size - 6 * 4096)
        f.write(os.urandom(3 * 4096))
    with Buffer(path, max_bytes=1 << 26, clock=clock) as again:
        assert again.recovered_from is not None
        salvaged = [r.seq for r in again.pending("live", limit=1000)]
        assert len(salvaged) >= 100, len(salvaged)  # most of 101..300 were still readable
        assert min(salvaged) == 101 and all(s <= 300 for s in salvaged)
        gap = next(g for g in again.gaps() if g.reason == "buffer_corrupt")
        assert gap.payload["salvaged"] == len(salvaged)
        assert gap.payload["first_seq"] <= gap.payload["last_seq"]
        assert gap.payload["last_seq"] >= 300
        assert again.append(readings(clock, 1))[0] > 300
        assert again.integrity_check() == ["ok"]


def test_cannot_open_is_not_corrupt(tmp_path: Path, clock: ManualClock) -> None:
    as_dir = tmp_path / "buffer.db"
    as_dir.mkdir()
    (as_dir / "keep").write_text("x")
    with pytest.raises(BufferStoreError, match="is a directory"):
        Buffer(as_dir, max_bytes=1 << 26, clock=clock)
    assert as_dir.is_dir() and (as_dir / "keep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buffer.db"]  # nothing renamed
    blocker = tmp_path / "card"
    blocker.write_text("not a directory")
    with pytest.raises(BufferStoreError, match="cannot create"):
        Buffer(blocker / "buffer.db", max_bytes=1 << 26, clock=clock)


def _status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "16m") -> Iterator[Path]:
    """A real, small filesystem (tmpfs) mounted at ``where``: it fills like an SD card."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(fs: Path) -> Path:
    """Fill the filesystem to the last byte with a ballast file."""
    ballast = fs / "ballast"
    with open(ballast, "wb", buffering=0) as f:  # unbuffered: closing has nothing left to flush
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:  # ENOSPC: full to the last block
            pass
    return ballast


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_full_disk_degrades_the_real_agent_and_it_recovers_with_a_gap(
    storm: tuple[Path, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    config, state, old_db = storm
    status = tmp_path / "status.json"
    log = tmp_path / "agent.log"
    with small_filesystem(tmp_path / "card") as card:
        db = card / "buffer.db"
        config.write_text(config.read_text().replace(str(old_db), str(db)))
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(config), "--clock-state",
                 str(state), "--no-metrics", "--log-level", "warning", "--status-file",
                 str(status)],
                stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        try:
            wait_until(lambda: db.exists() and db.stat().st_size > 0, timeout=30, what="commit")
            wait_until(lambda: _status(status).get("running"), timeout=30, what="status file")
            ballast = _fill(card)  # the card is full
            wait_until(
                lambda: "BUFFER WRITE FAILING" in _status(status).get("summary", ""),
                timeout=60,
                what="health saying why",
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:  # it keeps running while the disk is full
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
            ballast.unlink()

            def recovered() -> bool:
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    return bool(
                        conn.execute(
                            "SELECT count(*) FROM records WHERE reason = 'storage_unavailable'"
                        ).fetchone()[0]
                    )
                finally:
                    conn.close()

            wait_until(recovered, timeout=60, what="the gap row once writes work again")
            assert proc.poll() is None, log.read_text()[-3000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        assert proc.returncode == 0, log.read_text()[-3000:]


@pytest.mark.usefixtures("polls")
def test_storage_errors_are_buffer_errors_never_raw_sqlite(
    tmp_path: Path, clock: ManualClock
) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=1 << 26, clock=clock)
    buf.append(readings(clock, 3))
    buf._conn.close()  # the storage went away under the open buffer
    for call in (
        lambda: buf.append(readings(clock, 1)),
        lambda: buf.pending("live"),
        lambda: buf.mark_synced([1]),
        lambda: buf.stats(),
        lambda: buf.enforce_cap(),
        lambda: buf.get_state("x"),
    ):
        with pytest.raises(BufferStoreError):
            call()
