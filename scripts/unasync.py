"""Generate facade/_sync/ from facade/_async/ (the one source of truth for client logic).

    python scripts/unasync.py           rewrite facade/_sync/*.py
    python scripts/unasync.py --check   exit 1 if facade/_sync/ is not what the rewrite would give

Files whose name starts with "_backend" are the hand-written I/O shims (one per flavour) and are
not generated. Every other module is rewritten token by token with the table below. A rule that
no module uses fails both modes (as httpcore's unasync does): a stale rule hides that the code it
was written for has changed, and would silently rewrite whatever new code happens to match it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "facade" / "_async"
DST = ROOT / "facade" / "_sync"

RULES: list[tuple[str, str]] = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\bawait ", ""),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\b__aiter__\b", "__iter__"),
    (r"\b__anext__\b", "__next__"),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\baclose\b", "close"),
    (r"\bfrom redis import asyncio as redis_io\b", "import redis as redis_io"),
    (r"\bredis\.asyncio\.(\w+)", r"redis.\1"),
]
HEADER = "# Generated from facade/_async/{name} by scripts/unasync.py: edit that file, not this one.\n"


def transform(text: str, used: set[str] | None = None) -> str:
    """``text`` rewritten by every rule; the patterns that matched are added to ``used``."""
    for pattern, repl in RULES:
        text, count = re.subn(pattern, repl, text)
        if count and used is not None:
            used.add(pattern)
    return text


def expected(used: set[str] | None = None) -> dict[str, str]:
    """{module name: generated text} for every module of SRC but the backends."""
    out = {}
    for path in sorted(SRC.glob("*.py")):
        if path.name.startswith("_backend"):
            continue
        out[path.name] = HEADER.format(name=path.name) + transform(path.read_text(encoding="utf-8"), used)
    return out


def unused_rules(used: set[str]) -> list[str]:
    return [pattern for pattern, _ in RULES if pattern not in used]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    used: set[str] = set()
    want = expected(used)
    unused = unused_rules(used)
    if unused:
        print(f"scripts/unasync.py: rules that no module of {SRC} uses: {', '.join(unused)}; remove them")
        return 1
    stale = []
    for name, text in want.items():
        target = DST / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not check:
                target.write_text(text, encoding="utf-8")
    extra = [
        p.name for p in DST.glob("*.py") if p.name not in want and not p.name.startswith("_backend")
    ]
    if check:
        if stale or extra:
            print(f"facade/_sync is out of date ({', '.join(stale + extra)}); run: python scripts/unasync.py")
            return 1
        return 0
    for name in extra:
        (DST / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
