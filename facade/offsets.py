"""Offsets: Kafka's dense integer offsets, and how they map onto stream entry IDs. Pure functions.

Each record of a partition has the next integer offset (0, 1, 2, ...), kept in its stream entry
ID ``"<append ms>-<offset>"`` so that nothing else is stored per record: ``XRANGE`` by time still
works (offsets for times, retention by age) and ``redis-cli`` shows the offset. A committed offset
is, as in Kafka, the offset of the next record to read. Every other module reads offsets and IDs
through this one, so that their representation can change in one place.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import ConfigError

MAX_OFFSET = 2**53 - 1  # Lua numbers are doubles: offsets stay exact below this
MAX_TIMESTAMP_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
_DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?\Z", re.IGNORECASE
)


def validate(offset: object, what: str = "offset") -> int:
    """``offset`` if it is a valid offset (an integer from 0), else ConfigError."""
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise ConfigError(f"{what} must be an integer offset (0, 1, 2, ...), not {type(offset).__name__} {offset!r}")
    if not 0 <= offset <= MAX_OFFSET:
        raise ConfigError(f"{what} must be between 0 and {MAX_OFFSET}, got {offset}")
    return offset


def validate_timestamp(ms: object, what: str = "timestamp") -> int:
    """``ms`` if it is a timestamp in milliseconds since the epoch (0 to year 9999), else ConfigError."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        raise ConfigError(f"{what} must be milliseconds since the epoch (an integer), not {type(ms).__name__} {ms!r}")
    if not 0 <= ms <= MAX_TIMESTAMP_MS:
        raise ConfigError(f"{what} must be between 0 and {MAX_TIMESTAMP_MS} (year 9999) ms since the epoch, got {ms}")
    return ms


def entry_id(ms: int, offset: int) -> str:
    """The stream entry ID of the record at ``offset`` appended at ``ms``."""
    return f"{ms}-{offset}"


def split_id(entry: bytes | str) -> tuple[int, int]:
    """``(append ms, offset)`` of a stream entry ID."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    ms, _, seq = text.partition("-")
    return int(ms), int(seq)


def offset_of(entry: bytes | str) -> int:
    """The offset of a stream entry ID."""
    return int(entry[entry.index(b"-" if isinstance(entry, bytes) else "-") + 1 :])


def next_after(entry: bytes | str | None) -> int:
    """The offset after the record with this entry ID (0 for None: nothing read yet)."""
    return 0 if entry is None else offset_of(entry) + 1


def parse(text: str) -> int:
    """An offset typed by a person (CLI): digits only."""
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not value.isdigit():
        raise ConfigError(f"bad offset {text!r}: an offset is a whole number from 0 (Kafka's dense offsets)")
    return validate(int(value))


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


def format_ms(ms: int | None) -> str:
    """An append or create time for people: ISO 8601 in UTC with milliseconds ("-" for None)."""
    if ms is None or ms < 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
