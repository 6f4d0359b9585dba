"""Offsets (stream entry IDs) and the time formats used to pick them. Pure functions.

An offset is ``"<ms>-<seq>"``. A group's position is its last-delivered ID: the next record
delivered is the first one after it, so "start at offset X" means "last delivered = the ID
just before X".
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import ConfigError

_MAX_SEQ = 18446744073709551615  # 2**64 - 1: stream IDs are two unsigned 64-bit numbers
_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?\Z")
_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z", re.IGNORECASE
)


def parse(offset: object) -> tuple[int, int]:
    """``(ms, seq)`` of an offset like ``"1700000000000-3"`` (or ``"1700000000000"``, seq 0)."""
    if not isinstance(offset, str):
        raise ConfigError(f"an offset is a stream ID string like '1700000000000-0', not {type(offset).__name__}")
    m = _ID.match(offset.strip())
    if not m or int(m.group(1)) > _MAX_SEQ or int(m.group(2) or 0) > _MAX_SEQ:
        raise ConfigError(f"bad offset {offset!r}: use a stream ID like '1700000000000-0' (milliseconds-sequence)")
    return int(m.group(1)), int(m.group(2) or 0)


def before(offset: str) -> str:
    """The greatest ID smaller than ``offset`` ("0-0" for the smallest)."""
    ms, seq = parse(offset)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    if ms > 0:
        return f"{ms - 1}-{_MAX_SEQ}"
    return "0-0"


def parse_datetime_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 date-time (UTC when no offset is given)."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ConfigError(
            f"bad date-time {text!r}: use ISO 8601, e.g. 2026-11-24T10:00:00Z or 2026-11-24T10:00:00+01:00"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def parse_duration_ms(text: str) -> int:
    """Milliseconds of an ISO 8601 duration such as ``PT15M``, ``P1DT2H`` or ``PT0.5S``."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ConfigError(f"bad duration {text!r}: use ISO 8601 PnDTnHnMnS, e.g. PT15M, PT1H30M or P1D")
    d, h, mi = (int(m.group(k) or 0) for k in ("d", "h", "m"))
    s = float(m.group("s") or 0)
    return int((((d * 24 + h) * 60 + mi) * 60 + s) * 1000)
