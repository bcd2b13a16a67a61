"""The CAP Atom feed (feedgen): active alerts, and cancelled or expired ones for ``keep_s``.

Feed consumers (Google Public Alerts, IFRC Alert Hub) take only ``Actual``: the live feed lists
only Actual messages, the drill feed only Exercise ones. The feed stays under ``max_bytes``
(900 KB; oldest entries dropped first); each entry links to its CAP XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

KEEP_S = 24 * 3600
MAX_BYTES = 900_000


@dataclass(frozen=True)
class FeedItem:
    """A published message as the feed shows it."""

    identifier: str
    status: str
    msg_type: str
    sent: float
    expires: float
    headline: str
    summary: str
    ended: float | None  # when its chain was cancelled (None: not cancelled)


def visible(item: FeedItem, now: float, keep_s: float = KEEP_S) -> bool:
    """Active, or ended (cancelled or expired) less than ``keep_s`` ago."""
    end = min(item.expires, item.ended) if item.ended is not None else item.expires
    return now < end + keep_s


def render_feed(
    items: Sequence[FeedItem],
    *,
    mode: str,
    base_url: str,
    now: float,
    keep_s: float = KEEP_S,
    max_bytes: int = MAX_BYTES,
) -> bytes:
    """The Atom document for ``mode`` (live: Actual only; drill: Exercise only)."""
    want = "Actual" if mode == "live" else "Exercise"
    shown = sorted(
        (i for i in items if i.status == want and visible(i, now, keep_s)),
        key=lambda i: i.sent,
        reverse=True,
    )
    while True:
        data = _atom(shown, mode, base_url, now)
        if len(data) < max_bytes or not shown:
            return data
        shown = shown[: max(0, len(shown) - max(1, len(shown) // 10))]


def _atom(items: Sequence[FeedItem], mode: str, base_url: str, now: float) -> bytes:
    fg = FeedGenerator()
    suffix = "" if mode == "live" else "-drill"
    fg.id(f"{base_url}/warnings/feed{suffix}.atom")
    fg.title("示例区预警 / District warnings" + (" — 演练 EXERCISE" if mode == "drill" else ""))
    fg.link(href=f"{base_url}/warnings/feed{suffix}.atom", rel="self")
    fg.updated(datetime.fromtimestamp(now, UTC))
    fg.language("zh-CN")
    for item in reversed(items):  # feedgen prepends entries
        e = fg.add_entry()
        e.id(f"urn:oid:cap:{item.identifier}")
        e.title(item.headline)
        e.updated(datetime.fromtimestamp(item.sent, UTC))
        e.published(datetime.fromtimestamp(item.sent, UTC))
        e.summary(item.summary)
        e.link(
            href=f"{base_url}/warnings/cap/{item.identifier}.xml",
            rel="alternate",
            type="application/cap+xml",
        )
    return bytes(fg.atom_str(pretty=True))
