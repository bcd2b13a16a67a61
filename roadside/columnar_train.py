"""Train the columnar codec's zstd dictionary (a new version goes into the contract).

The training batches are built like the station's: the channels, units and register scales of
every shipped device profile, polled at 1 s, 10 s and 60 s as one to three devices of a station,
readings with their register counts as ``raw``, derived values with their payload, in batches of
the sizes the uplink sends (live batches of a linger period, backlog batches of 500). A value
walks by a few counts a poll, as a sensor's reading does. Run::

    .venv/bin/python -m roadside.columnar_train > dictionary.b64

and add the printed base64 to :data:`roadside.columnar_dict.DICTIONARIES` under the next version;
old versions stay so batches already written remain readable.
"""

from __future__ import annotations

import base64
import random
import sys
from typing import Any

from roadside import columnar

DERIVED = (
    ("rain_1h", "mm", 3600.0),
    ("rain_intensity_10min", "mm/h", 600.0),
    ("wind_mean_10min", "m/s", 600.0),
    ("gust_max_10min", "m/s", 600.0),
    ("water_rise_rate", "mm/min", 300.0),
)


def _channels() -> list[tuple[str, str, float]]:
    from drivers.profile import bundled_profiles, load_profile

    out = []
    for name in sorted(bundled_profiles()):
        p = load_profile(name)
        for c in p.channels:
            out.append((c.name, c.unit, getattr(c, "scale", 1.0)))
    return out


def training_docs(n: int = 600, seed: int = 10) -> list[dict[str, Any]]:
    """``n`` batch documents shaped like the station's (see the module docstring)."""
    from roadside.wire import CONTRACT_VERSION, RECORD_FIELDS

    rng = random.Random(seed)
    channels = _channels()
    docs = []
    for _ in range(n):
        station = f"st-{rng.randint(1, 400):03d}"
        interval = rng.choice((1.0, 1.0, 10.0, 60.0))
        devices = [
            (f"{rng.choice(('rain', 'wind', 'level', 'wxt', 'dev'))}{d}", rng.sample(channels, 6))
            for d in range(1, rng.randint(1, 3) + 1)
        ]
        polls = rng.choice((5, 10, 30, 60)) if interval < 60 else rng.choice((10, 50))
        seq = rng.randint(1, 10**7)
        t = 1_780_000_000_000 + rng.randint(0, 10**9)
        level = {(d, c[0]): rng.randint(0, 3000) for d, chans in devices for c in chans}
        rows: list[list[Any]] = []
        for _ in range(polls):
            t += int(interval * 1000) + rng.randint(-3, 3)
            for dev, chans in devices:
                for name, unit, scale in chans:
                    level[(dev, name)] += rng.randint(-4, 4)
                    count = max(0, level[(dev, name)])
                    value = count * scale
                    flag = 0 if rng.random() > 0.02 else rng.choice((1, 2))
                    raw = str(count)
                    rows.append(
                        [seq, "reading", t, dev, name, value, unit, raw, "ok", flag, "", None]
                    )
                    seq += 1
            if rng.random() < 0.2:
                for name, unit, window in rng.sample(DERIVED, 2):
                    payload = {"completeness": rng.choice((1.0, 0.98, 0.5)), "window_s": window}
                    value = round(rng.uniform(0, 40), 2)
                    rows.append(
                        [seq, "derived", t, "", name, value, unit, None, "", 0, "", payload]
                    )
                    seq += 1
        docs.append(
            {
                "c": CONTRACT_VERSION,
                "st": station,
                "lane": rng.choice(("live", "live", "backlog")),
                "first": rows[0][0],
                "last": rows[-1][0],
                "fields": list(RECORD_FIELDS),
                "rows": rows,
                "sent": t + rng.randint(0, 2000),
            }
        )
    return docs


def main() -> None:
    data = columnar.train_dictionary(training_docs())
    sys.stdout.write(base64.b64encode(data).decode() + "\n")


if __name__ == "__main__":
    main()
