"""Configuration of the response chain (TOML ``[response]`` table; shipped defaults below).

[response]
sender = "roadside@310113.example"   # CAP sender
base_url = "http://127.0.0.1:8080"    # where personal acknowledgement links point
admin_code = "310113"  industry_code = "416"  internal_code = "00000"
validity_s = 10800                    # expires = onset + validity
step_s = 300                          # next channel of a unit if it has not acknowledged
escalate_after_s = 900                # backup contacts when still unacknowledged
auto_draft = true                     # station events draft warnings for approval
[response.two_person]                 # nobody approves their own message, per severity
Minor = true  Moderate = true  Severe = true  Extreme = true
[response.retry]  attempts = 6  base_s = 2  max_s = 300
[[response.channels]]                 # see fleet.response.channels for each kind's keys
name = "ops-mqtt"  kind = "mqtt"  mode = "live"  ...
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.response.cap import IdScheme
from fleet.response.errors import ResponseError

SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")


@dataclass(frozen=True)
class Retry:
    """Delivery retries: exponential backoff ``base_s * 2**n`` capped at ``max_s``."""

    attempts: int = 6
    base_s: float = 2.0
    max_s: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class ResponseConfig:
    """Everything the chain needs besides the register and the plan."""

    sender: str = "roadside@310113.example"
    base_url: str = "http://127.0.0.1:8080"
    ids: IdScheme = field(default_factory=IdScheme)
    validity_s: float = 3 * 3600
    step_s: float = 300.0
    escalate_after_s: float = 900.0
    auto_draft: bool = True
    two_person: Mapping[str, bool] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, True))
    retry: Retry = field(default_factory=Retry)
    channels: tuple[Mapping[str, Any], ...] = ()
    link_test_before_publish: bool = True
    require_channels: bool = True  # refuse to publish in a mode with no channel configured
    poll_s: float = 0.5
    workers: int = 8
    sign_key: str = ""  # PEM private key: sign every CAP message (XML-DSig) when set
    sign_cert: str = ""  # PEM certificate that goes with it


def parse_config(doc: Mapping[str, Any], source: str = "response") -> ResponseConfig:
    """A :class:`ResponseConfig` from the ``[response]`` table; errors name the key."""
    known = set(ResponseConfig.__dataclass_fields__) | {
        "admin_code",
        "industry_code",
        "internal_code",
    }
    for key in doc:
        if key not in known:
            raise ResponseError(f"{source}: unknown key response.{key}")
    two = dict.fromkeys(SEVERITIES, True)
    for sev, value in dict(doc.get("two_person", {})).items():
        if sev not in SEVERITIES:
            raise ResponseError(f"{source}: response.two_person.{sev} is not a CAP severity")
        two[sev] = bool(value)
    channels = tuple(doc.get("channels", ()))
    for i, ch in enumerate(channels, start=1):
        if not isinstance(ch, dict) or "name" not in ch or "kind" not in ch:
            raise ResponseError(f"{source}: response.channels[{i}] needs name and kind")
    try:
        return ResponseConfig(
            sender=str(doc.get("sender", ResponseConfig.sender)),
            base_url=str(doc.get("base_url", ResponseConfig.base_url)).rstrip("/"),
            ids=IdScheme(
                str(doc.get("admin_code", "310113")),
                str(doc.get("industry_code", "416")),
                str(doc.get("internal_code", "00000")),
            ),
            validity_s=float(doc.get("validity_s", ResponseConfig.validity_s)),
            step_s=float(doc.get("step_s", ResponseConfig.step_s)),
            escalate_after_s=float(doc.get("escalate_after_s", ResponseConfig.escalate_after_s)),
            auto_draft=bool(doc.get("auto_draft", True)),
            two_person=two,
            retry=Retry(**dict(doc.get("retry", {}))),
            channels=channels,
            link_test_before_publish=bool(doc.get("link_test_before_publish", True)),
            require_channels=bool(doc.get("require_channels", True)),
            poll_s=float(doc.get("poll_s", ResponseConfig.poll_s)),
            workers=int(doc.get("workers", ResponseConfig.workers)),
            sign_key=str(doc.get("sign_key", "")),
            sign_cert=str(doc.get("sign_cert", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ResponseError(f"{source}: {exc}") from None


def load_config(path: Path) -> ResponseConfig:
    """The ``[response]`` table of a TOML file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ResponseError(f"{path}: cannot read: {exc}") from None
    return parse_config(doc.get("response", {}), str(path))
