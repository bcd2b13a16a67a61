"""The console's two catalogues carry the same keys, and every key a page names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "fleet" / "console" / "static"


def test_both_languages_have_every_key_the_pages_use() -> None:
    zh = json.loads((STATIC / "i18n" / "zh-CN.json").read_text(encoding="utf-8"))
    en = json.loads((STATIC / "i18n" / "en.json").read_text(encoding="utf-8"))
    assert set(zh) == set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    used: set[str] = set()
    for page in [*STATIC.glob("*.html"), *STATIC.glob("js/*.js")]:
        source = page.read_text(encoding="utf-8")
        used |= set(re.findall(r'data-i18n(?:-placeholder|-label)?="([a-z_.0-9]+)"', source))
        used |= set(re.findall(r'\bt\("([a-z_]+\.[a-z_.0-9]+)"', source))
    # a key ending in "." is a prefix completed at run time (t("config.state." + state))
    missing = sorted(
        k
        for k in used
        if (not any(z.startswith(k) for z in zh) if k.endswith(".") else k not in zh)
    )
    assert not missing, f"keys used by the pages but in no catalogue: {missing}"
