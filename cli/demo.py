"""``facade demo``: a posts service and a three-member notifications group, live, and a crash.

A producer thread plays the posts service: events keyed by user id, each user's events numbered
1, 2, 3... Three consumer processes (cli/demo_member.py), each a member of the ``notifications``
group, share the topic's partitions and report which (user, number) pairs they receive. Part way
through, the demo kills one member with SIGKILL, as a crash would: the view shows its partitions
moving to the other two once its session times out. At the end, the summary checks that nothing
acknowledged was lost (what the killed member had received but not committed is delivered again:
duplicates, at-least-once), that every member saw each user's numbers increase, and that the
killed member's partitions moved.

Every event carries the run id in a header, so records left over from an earlier run (an
interrupted demo, say) are read, committed and skipped rather than miscounted.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import IO, Any

import click
from rich.console import RenderableType
from rich.live import Live

from facade import (
    Admin,
    Producer,
    TopicExistsError,
    local,
    redact_url,
)

from . import CliError, Settings, main, render
from .clients import StopRequest
from .demo_view import Kill, MemberView, Outcome, Snapshot, build_outcome, live_view, summary_view

TOPIC = "posts"
FALLBACK_TOPIC = "posts-demo"
PARTITIONS = 5
GROUP = "notifications"
MEMBERS = 3
USERS = 20
RATE_PER_S = 200
RUN_HEADER = "demo-run"

SESSION_MS = 3000
"""The members' session timeout: how long after the kill its partitions move."""
KILL_AT = 0.4
"""When the demo kills a member, as a share of the producing time."""
VICTIM = 1
"""Which member it kills (member-2)."""
FORM_TIMEOUT_S = 30.0
"""How long to wait for the three members to share all partitions before producing anyway."""
DRAIN_TIMEOUT_S = 15.0
"""After producing stops, how long members may take to receive the rest (longer than a session
timeout, so the killed member's partitions come back)."""
SETTLE_S = 1.5
"""The group counts as formed once its ownership has not changed for this long (> a heartbeat)."""
STOP_TIMEOUT_S = 30.0
"""How long a member may take to leave the group once told to stop."""
REFRESH_S = 0.25

# The member process runs cli/demo_member.py as facade.cli.demo_member without the current
# directory on sys.path: run from a checkout of facade, ``python -m`` would find the checkout's
# facade/ (which has no cli/, installed from cli/) before the installed package.
_RUN_MEMBER = "import runpy, sys; sys.path.pop(0); runpy.run_module('facade.cli.demo_member', run_name='__main__')"


@dataclass
class _Member:
    name: str
    member_id: str | None = None
    partitions: tuple[int, ...] = ()
    received: list[tuple[str, int]] = field(default_factory=list)
    proc: Any = None
    killed_at: float | None = None
    """Seconds into producing when the demo killed it."""


class _State:
    """What the processes and threads report, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members = [_Member(f"member-{i + 1}") for i in range(MEMBERS)]
        self.acked: list[tuple[str, int]] = []
        self.older = 0
        self.errors: list[str] = []
        self.kill: Kill | None = None
        self._formed: tuple[tuple[tuple[int, ...], ...], float] | None = None  # (ownership, since)

    def fail(self, who: str, exc: BaseException | str) -> None:
        with self.lock:
            self.errors.append(f"{who}: {exc}")

    def report(self, member: _Member, said: dict[str, Any], at: float) -> None:
        """A member process's report (cli/demo_member.py); ``at``: seconds into producing."""
        if "error" in said:
            self.fail(member.name, said["error"])
            return
        with self.lock:
            member.member_id = said["id"]
            member.partitions = tuple(said["partitions"])
            member.received.extend((user, seq) for user, seq in said["got"])
            self.older += said["older"]
            self._note_takeover(at)

    def killed(self, member: _Member, at: float) -> None:
        with self.lock:
            member.killed_at = at
            self.kill = Kill(member.name, at, member.partitions)

    def _note_takeover(self, at: float) -> None:
        kill = self.kill
        if kill is None or kill.moved_at is not None:
            return
        owners = {p: m.name for m in self.members if m.killed_at is None for p in m.partitions}
        if all(p in owners for p in kill.partitions):
            self.kill = Kill(kill.member, kill.at, kill.partitions, at, {p: owners[p] for p in kill.partitions})

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
                partitions={m.name: m.partitions for m in self.members if m.killed_at is None},
                older=self.older,
                errors=list(self.errors),
                kill=self.kill,
                **kw,  # type: ignore[arg-type]
            )

    def snapshot(self, **kw: object) -> Snapshot:
        with self.lock:
            members = tuple(
                MemberView(m.name, m.member_id, m.partitions, len(m.received), m.killed_at is not None)
                for m in self.members
            )
            produced = len(self.acked)
            kill = self.kill
        return Snapshot(produced=produced, members=members, kill=kill, **kw)  # type: ignore[arg-type]


def _listen(member: _Member, stream: IO[str], state: _State, clock: Any) -> None:
    """Read a member process's reports until it exits."""
    said_why = False
    for line in stream:
        try:
            said = json.loads(line)
        except ValueError:
            continue
        said_why = said_why or "error" in said
        state.report(member, said, clock())
    status = member.proc.wait()
    if member.killed_at is None and status != 0 and not said_why:
        state.fail(member.name, f"the member process exited with status {status}")


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


@main.command(short_help="Watch a 3-member consumer group share a keyed topic, live, and survive a crash.")
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
    """Watch a consumer group share a keyed topic, live, and survive a crash.

    A "posts service" produces events keyed by user id (20 users) to topic
    posts (5 partitions, created if missing); the consumer group notifications,
    3 member processes, consumes them. Part way through, the demo kills one
    member (SIGKILL, as a crash): the view shows its partitions moving to the
    others after its session times out (3 s). The summary checks that no post was
    lost, that each user's posts arrived in order and that the partitions moved;
    the exit status is 1 if not. Runs on the embedded broker unless --url is given.

    \b
    Example:
      facade demo
      facade --url redis://localhost:6379 demo --duration 30
    """
    err = render.console(stderr=True)

    def say(text: str) -> None:
        err.print(f"demo: {text}", markup=False)

    with Admin(settings.url) as admin:
        admin.list_topics()  # starts the embedded broker when there is no URL
        url = settings.url or local.status().url  # the member processes connect to the same broker
        broker = redact_url(settings.url) if settings.url else f"embedded ({url})"
        topic = _ensure_topic(admin, say)
        run = _Run(url, admin, topic, broker, duration, say)
        with StopRequest() as interrupt:
            outcome = run.execute(interrupt)
    render.emit(summary_view(outcome))
    if interrupt.requested:
        say("interrupted")
        raise click.exceptions.Exit(interrupt.exit_status)
    if not outcome.ok:
        raise click.exceptions.Exit(1)


class _Run:
    """One demo run: the processes and threads, the phases, and the live view between them."""

    def __init__(self, url: str, admin: Admin, topic: str, broker: str, duration: float, say) -> None:
        self.url = url
        self.admin = admin
        self.topic = topic
        self.broker = broker
        self.duration = duration
        self.say = say
        self.run_id = uuid.uuid4().hex[:12]
        self.state = _State()
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

    def _start_member(self, member: _Member) -> threading.Thread:
        member.proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_MEMBER, self.url, self.topic, GROUP, RUN_HEADER, self.run_id, str(SESSION_MS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        listener = threading.Thread(
            target=_listen, args=(member, member.proc.stdout, self.state, self.elapsed), name=f"demo-{member.name}",
            daemon=True,
        )  # fmt: skip
        listener.start()
        return listener

    def _kill(self) -> None:
        victim = self.state.members[VICTIM]
        if victim.proc is None or victim.proc.poll() is not None:
            return
        victim.proc.kill()  # SIGKILL: no leave, no commit, as a crash
        victim.proc.wait()
        self.state.killed(victim, self.elapsed())
        kill = self.state.kill
        owned = ", ".join(map(str, kill.partitions)) if kill else ""
        if not self.live_ok:
            self.say(f"killed {victim.name} (SIGKILL) at {self.elapsed():.1f}s; it owned partitions {owned}")

    def execute(self, interrupt: StopRequest) -> Outcome:
        producer = threading.Thread(
            target=_produce,
            args=(self.url, self.topic, self.run_id, self.state, self.stop_producer, self.duration),
            name="demo-producer",
            daemon=True,
        )
        if not self.live_ok:
            self.say(
                f"group {GROUP} ({MEMBERS} member processes) consumes topic {self.topic}; producing for "
                f"{self.duration:g}s, killing {self.state.members[VICTIM].name} after {self.duration * KILL_AT:.1f}s"
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

        listeners: list[threading.Thread] = []
        try:
            if live is not None:
                live.start(refresh=True)
            listeners = [self._start_member(m) for m in self.state.members]

            def formed() -> bool:
                return self.state.group_formed() or bool(self.state.errors)

            if not wait(formed, 8.0) and not interrupt.requested and live is None:
                joined = sum(m.member_id is not None for m in self.state.members)
                self.say(f"waiting for the group to form: {joined} of {MEMBERS} members have joined so far")
            if not wait(formed, FORM_TIMEOUT_S) and not interrupt.requested:
                self.say(f"the members did not share all {PARTITIONS} partitions in {FORM_TIMEOUT_S:.0f}s; "
                         "producing anyway")  # fmt: skip
            if not self.state.errors and not interrupt.requested:
                self.phase = "producing"
                self.produce_start = time.monotonic()
                producer.start()
                wait(lambda: self.elapsed() >= self.duration * KILL_AT or not producer.is_alive(), self.duration)
                if not interrupt.requested:
                    self._kill()
                wait(lambda: not producer.is_alive(), self.duration + 30)
                self.stop_producer.set()
                producer.join()
                self.phase = "draining"
                wait(lambda: bool(self.state.errors) or (self.state.all_received() and self._moved()),
                     DRAIN_TIMEOUT_S)  # fmt: skip
                if not self.live_ok and self.state.kill is not None and self.state.kill.moved_at is not None:
                    kill = self.state.kill
                    self.say(f"partitions {', '.join(map(str, kill.partitions))} moved "
                             f"{kill.moved_at - kill.at:.1f}s after the kill")  # fmt: skip
            self.phase = "done"
        finally:
            self.stop_producer.set()
            self._stop_members()
            for t in [producer, *listeners]:
                if t.is_alive():
                    t.join(timeout=STOP_TIMEOUT_S)
            if live is not None:
                live.update(self.view(), refresh=True)
                live.stop()
        return self.state.outcome(topic=self.topic, group=GROUP, broker=self.broker, elapsed_s=self.elapsed())

    def _moved(self) -> bool:
        kill = self.state.kill
        return kill is None or kill.moved_at is not None

    def _stop_members(self) -> None:
        """SIGTERM: each member leaves the group and exits; one that does not in time is killed."""
        running = [m.proc for m in self.state.members if m.proc is not None and m.proc.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
