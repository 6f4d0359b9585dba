"""``facade demo``: a posts service and a three-member notifications group, live.

A producer thread plays the posts service: events keyed by user id, each user's events numbered
1, 2, 3... Three consumer threads, each a member of the ``notifications`` group, share the topic's
partitions and record which (user, number) pairs they receive. At the end, the summary checks
that nothing acknowledged was lost and that every member saw each user's numbers increase.

Every event carries the run id in a header, so records left over from an earlier run (an
interrupted demo, say) are read, committed and skipped rather than miscounted.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import click
from rich.console import RenderableType
from rich.live import Live

from facade import (
    Admin,
    CommitFailedError,
    Consumer,
    FacadeError,
    Producer,
    TopicExistsError,
    local,
    redact_url,
)

from . import CliError, Settings, main, render
from .clients import StopRequest
from .demo_view import MemberView, Outcome, Snapshot, build_outcome, live_view, summary_view

TOPIC = "posts"
FALLBACK_TOPIC = "posts-demo"
PARTITIONS = 5
GROUP = "notifications"
MEMBERS = 3
USERS = 20
RATE_PER_S = 200
RUN_HEADER = "demo-run"

FORM_TIMEOUT_S = 30.0
"""How long to wait for the three members to share all partitions before producing anyway."""
DRAIN_TIMEOUT_S = 15.0
"""After producing stops, how long members may take to receive the rest (longer than a session
timeout, so partitions held by a crashed member of an earlier run come back)."""
SETTLE_S = 1.5
"""The group counts as formed once its ownership has not changed for this long (> a heartbeat)."""
POLL_MS = 200
REFRESH_S = 0.25


@dataclass
class _Member:
    name: str
    member_id: str | None = None
    partitions: tuple[int, ...] = ()
    received: list[tuple[str, int]] = field(default_factory=list)


class _State:
    """What the threads report, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members = [_Member(f"member-{i + 1}") for i in range(MEMBERS)]
        self.acked: list[tuple[str, int]] = []
        self.older = 0
        self.errors: list[str] = []
        self._formed: tuple[tuple[tuple[int, ...], ...], float] | None = None  # (ownership, since)

    def fail(self, who: str, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(f"{who}: {exc}")

    def group_formed(self) -> bool:
        """Every member owns some partitions, together all, unchanged for SETTLE_S.

        Waiting out a heartbeat interval lets every member catch up with the last generation
        before records flow, so the run shows a steady group rather than its formation.
        """
        with self.lock:
            owned = tuple(m.partitions for m in self.members)
        now = time.monotonic()
        if not all(owned) or {p for ps in owned for p in ps} != set(range(PARTITIONS)):
            self._formed = None
            return False
        if self._formed is None or self._formed[0] != owned:
            self._formed = (owned, now)
        return now - self._formed[1] >= SETTLE_S

    def received_unique(self) -> int:
        with self.lock:
            return len({pair for m in self.members for pair in m.received})

    def all_received(self) -> bool:
        with self.lock:
            produced = len(self.acked)
        return self.received_unique() >= produced

    def outcome(self, **kw: object) -> Outcome:
        with self.lock:
            return build_outcome(
                produced=list(self.acked),
                received={m.name: list(m.received) for m in self.members},
                partitions={m.name: m.partitions for m in self.members},
                older=self.older,
                errors=list(self.errors),
                **kw,  # type: ignore[arg-type]
            )

    def snapshot(self, **kw: object) -> Snapshot:
        with self.lock:
            members = tuple(
                MemberView(m.name, m.member_id, m.partitions, len(m.received)) for m in self.members
            )
            produced = len(self.acked)
        return Snapshot(produced=produced, members=members, **kw)  # type: ignore[arg-type]


def _consume(
    url: str | None, topic: str, run: str, member: _Member, state: _State, stop: threading.Event
) -> None:
    try:
        with Consumer([topic], GROUP, url=url, auto_offset_reset="earliest") as consumer:
            while not stop.is_set():
                try:
                    batch = consumer.poll(timeout_ms=POLL_MS)
                except FacadeError as exc:
                    if not exc.retriable:
                        raise
                    continue  # e.g. a rebalance in progress: poll again
                parts = tuple(sorted(tp.partition for tp in consumer.assignment()))
                mine: list[tuple[str, int]] = []
                older = 0
                for msg in batch:
                    if msg.headers.get(RUN_HEADER) != run.encode():
                        older += 1
                        continue
                    event = json.loads(msg.value)
                    mine.append((event["user"], event["seq"]))
                with state.lock:
                    member.member_id = consumer.member_id
                    member.partitions = parts
                    member.received.extend(mine)
                    state.older += older
                if batch:
                    try:
                        consumer.commit()
                    except CommitFailedError:
                        pass  # the partition moved on; its new owner gets these again (counted as duplicates)
    except Exception as exc:  # noqa: BLE001 - reported in the summary, not as a thread traceback
        state.fail(member.name, exc)
        stop.set()


def _produce(
    url: str | None, topic: str, run: str, state: _State, stop: threading.Event, duration: float
) -> None:
    rng = random.Random()
    users = [f"user-{i}" for i in range(1, USERS + 1)]
    seqs = dict.fromkeys(users, 0)
    headers = {RUN_HEADER: run}

    def on_ack(pair: tuple[str, int]):
        def done(fut) -> None:
            if fut.exception() is None:
                with state.lock:
                    state.acked.append(pair)
            else:
                state.fail("posts service", fut.exception())
                stop.set()

        return done

    try:
        with Producer(url) as producer:
            start = time.monotonic()
            sent = 0
            while not stop.is_set():
                elapsed = time.monotonic() - start
                if elapsed >= duration:
                    break
                while sent < elapsed * RATE_PER_S:
                    user = rng.choice(users)
                    seqs[user] += 1
                    event = {"user": user, "seq": seqs[user], "post": f"post {seqs[user]} by {user}"}
                    fut = producer.send(topic, json.dumps(event).encode(), key=user, headers=headers)
                    fut.add_done_callback(on_ack((user, seqs[user])))
                    sent += 1
                time.sleep(0.01)
            producer.flush()
    except Exception as exc:  # noqa: BLE001 - reported in the summary
        state.fail("posts service", exc)
        stop.set()


def _ensure_topic(admin: Admin, say) -> str:
    for name in (TOPIC, FALLBACK_TOPIC):
        try:
            admin.create_topic(name, PARTITIONS)
            say(f"created topic {name} with {PARTITIONS} partitions")
            return name
        except TopicExistsError:
            existing = admin.topic(name).partitions
            if existing == PARTITIONS:
                return name
            say(f"topic {name} already exists with {existing} partitions, not {PARTITIONS}")
    raise CliError(
        f"topics {TOPIC} and {FALLBACK_TOPIC} both exist with other partition counts; "
        f"delete one (facade topics delete {TOPIC}) to run the demo"
    )


@main.command(short_help="Watch a 3-member consumer group share a keyed topic, live.")
@click.option(
    "--duration",
    type=click.FloatRange(min=0.5, max=3600),
    default=10.0,
    show_default=True,
    metavar="S",
    help="Seconds of producing.",
)
@click.pass_obj
def demo(settings: Settings, duration: float) -> None:
    """Watch a consumer group share a keyed topic, live.

    A "posts service" produces events keyed by user id (20 users) to topic
    posts (5 partitions, created if missing); the consumer group notifications,
    3 members, consumes them. The view shows what is produced, what each member
    consumes and which partitions it owns. The summary checks that no post was
    lost and that each user's posts arrived in order; the exit status is 1 if not.
    Runs on the embedded broker unless --url is given.

    \b
    Example:
      facade demo
      facade --url redis://localhost:6379 demo --duration 30
    """
    err = render.console(stderr=True)

    def say(text: str) -> None:
        err.print(f"demo: {text}", markup=False)

    with Admin(settings.url) as admin:
        broker = redact_url(settings.url) if settings.url else f"embedded ({local.status().url})"
        topic = _ensure_topic(admin, say)
        run = _Run(settings.url, admin, topic, broker, duration, say)
        with StopRequest() as interrupt:
            outcome = run.execute(interrupt)
    render.emit(summary_view(outcome))
    if interrupt.requested:
        say("interrupted")
        raise click.exceptions.Exit(130)
    if not outcome.ok:
        raise click.exceptions.Exit(1)


class _Run:
    """One demo run: the threads, the phases, and the live view between them."""

    def __init__(self, url: str | None, admin: Admin, topic: str, broker: str, duration: float, say) -> None:
        self.url = url
        self.admin = admin
        self.topic = topic
        self.broker = broker
        self.duration = duration
        self.say = say
        self.run_id = uuid.uuid4().hex[:12]
        self.state = _State()
        self.stop_consumers = threading.Event()
        self.stop_producer = threading.Event()
        self.phase = "forming the group"
        self.produce_start = 0.0
        self.console = render.console()
        self.live_ok = self.console.is_terminal
        self._lengths: tuple[int, ...] = ()
        self._lengths_read = 0.0

    def view(self) -> RenderableType:
        if time.monotonic() - self._lengths_read > 0.5:
            self._lengths = tuple(p.length for p in self.admin.describe_topic(self.topic).partitions)
            self._lengths_read = time.monotonic()
        return live_view(
            self.state.snapshot(
                topic=self.topic,
                group=GROUP,
                broker=self.broker,
                phase=self.phase,
                elapsed_s=self.elapsed(),
                duration_s=self.duration,
                lengths=self._lengths,
            )
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.produce_start if self.produce_start else 0.0

    def execute(self, interrupt: StopRequest) -> Outcome:
        members = [
            threading.Thread(
                target=_consume,
                args=(self.url, self.topic, self.run_id, m, self.state, self.stop_consumers),
                name=f"demo-{m.name}",
                daemon=True,
            )
            for m in self.state.members
        ]
        producer = threading.Thread(
            target=_produce,
            args=(self.url, self.topic, self.run_id, self.state, self.stop_producer, self.duration),
            name="demo-producer",
            daemon=True,
        )
        if not self.live_ok:
            self.say(
                f"group {GROUP} ({MEMBERS} members) consumes topic {self.topic}; producing for {self.duration:g}s"
            )
        live = Live(self.view(), console=self.console, auto_refresh=False) if self.live_ok else None

        def wait(done, timeout: float) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not interrupt.requested:
                if done():
                    return True
                if live is not None:
                    live.update(self.view(), refresh=True)
                time.sleep(REFRESH_S)
            return bool(done())

        try:
            if live is not None:
                live.start(refresh=True)
            for t in members:
                t.start()

            def formed() -> bool:
                return self.state.group_formed() or self.stop_consumers.is_set()

            if not wait(formed, 4.0) and not interrupt.requested and live is None:
                self.say(
                    "waiting for the group to form (members of an earlier, interrupted run keep their "
                    "partitions until their session times out)"
                )
            if not wait(formed, FORM_TIMEOUT_S) and not interrupt.requested:
                self.say(f"the members did not share all {PARTITIONS} partitions in {FORM_TIMEOUT_S:.0f}s; "
                         "producing anyway")  # fmt: skip
            if not self.stop_consumers.is_set() and not interrupt.requested:
                self.phase = "producing"
                self.produce_start = time.monotonic()
                producer.start()
                wait(lambda: not producer.is_alive(), self.duration + 30)
                self.stop_producer.set()
                producer.join()
                self.phase = "draining"
                wait(lambda: self.stop_consumers.is_set() or self.state.all_received(), DRAIN_TIMEOUT_S)
            self.phase = "done"
        finally:
            self.stop_producer.set()
            self.stop_consumers.set()
            for t in [producer, *members]:
                if t.is_alive():
                    t.join(timeout=30)
            if live is not None:
                live.update(self.view(), refresh=True)
                live.stop()
        return self.state.outcome(topic=self.topic, group=GROUP, broker=self.broker, elapsed_s=self.elapsed())
