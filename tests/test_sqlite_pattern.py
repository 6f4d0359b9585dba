"""The documented pattern for exactly-once effects in the application's own database (SQLite)."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

from facade import Admin, Producer

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "sqlite_effects.py"
spec = importlib.util.spec_from_file_location("sqlite_effects", EXAMPLE)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)


def test_crashes_between_effect_and_commit_apply_each_record_once(url, tmp_path):
    with Admin(url) as a:
        a.create_topic("payments", 3)
    expected: dict[str, int] = {}
    with Producer(url) as p:
        for i in range(300):
            account = f"acct{i % 7}"
            p.send("payments", f"{account}:{i}", key=account)
            expected[account] = expected.get(account, 0) + i
    db_path = str(tmp_path / "app.db")
    applied = 0
    for crash_after in (40, 90, 5):  # three crashes after the DB commit, before the group commit
        applied += example.run(url, "payments", "billing", db_path, crash_after=crash_after)
    applied += example.run(url, "payments", "billing", db_path)
    db = sqlite3.connect(db_path)
    balances = dict(db.execute("SELECT account, amount FROM balances"))
    db.close()
    assert applied == 300  # redeliveries after each crash were recognised and skipped
    assert balances == expected
