"""Exactly-once effects in your own database: the effect and the processed offset in ONE
transaction, checked before acting.

    python docs/examples/sqlite_effects.py URL TOPIC GROUP DB_PATH

Each record "account:amount" adds amount to the account's balance. A crash at any moment (before
the database commit, between it and the group commit, after both) leaves every record applied
exactly once: what the group redelivers after a crash is recognised by its offset and skipped.
"""

from __future__ import annotations

import sqlite3
import sys

from facade import Consumer, Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS processed (          -- newest applied offset, per group and partition
    grp TEXT, topic TEXT, part INTEGER, last_offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, part)
);
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    db.executescript(SCHEMA)
    return db


def apply(db: sqlite3.Connection, group: str, m: Message) -> bool:
    """Apply one record unless it was applied before; returns whether it was applied now."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(
            "SELECT last_offset FROM processed WHERE grp = ? AND topic = ? AND part = ?", (group, m.topic, m.partition)
        ).fetchone()
        if row is not None and m.offset <= row[0]:
            db.execute("ROLLBACK")
            return False  # a redelivery of something already applied
        account, amount = m.value.decode().split(":")
        db.execute(
            "INSERT INTO balances VALUES (?, ?) ON CONFLICT(account) DO UPDATE SET amount = amount + excluded.amount",
            (account, int(amount)),
        )
        db.execute("INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?)", (group, m.topic, m.partition, m.offset))
        db.execute("COMMIT")
        return True
    except BaseException:
        db.execute("ROLLBACK")
        raise


def run(url: str, topic: str, group: str, path: str, *, idle_polls: int = 10, crash_after: int | None = None) -> int:
    """Consume until ``idle_polls`` empty polls in a row; returns records applied now.
    ``crash_after``: stop without committing to the group after that many (for the tests)."""
    db = open_db(path)
    applied = 0
    idle = 0
    # Commits are the example's own (after each batch), so that a "crash" commits nothing.
    consumer = Consumer(topic, group, url, auto_offset_reset="earliest", heartbeat_interval_ms=100,
                        enable_auto_commit=False)  # fmt: skip
    try:
        while idle < idle_polls:
            records = consumer.poll(timeout_ms=100)
            idle = 0 if records else idle + 1
            for m in records:
                applied += apply(db, group, m)
                if crash_after is not None and applied >= crash_after:
                    return applied  # "crash": the group never hears of these
            consumer.commit()
    finally:
        consumer.close()
        db.close()
    return applied


if __name__ == "__main__":
    print(run(*sys.argv[1:5]))
