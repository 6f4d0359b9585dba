"""The performance targets that are not throughput ratios: memory per record, end-to-end latency,
and how throughput holds as partitions and stored records grow. Run by ``python -m bench``
after the ratio figures (skip with ``--no-targets``).
"""

from __future__ import annotations

import statistics
import time

import redis

from facade import Admin, Consumer, Producer

from .workloads import DISTINCT_KEYS


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _flush_sync(client: redis.Redis) -> None:
    # FLUSHALL frees lazily by default on recent Valkey: a baseline taken right after it would
    # still count the old data.
    client.execute_command("FLUSHALL", "SYNC")


def memory_per_record(url: str, messages: int, size: int) -> dict[str, float]:
    """Bytes per stored record: raw XADD of the same fields vs the SDK (one partition each, so
    the per-partition bookkeeping is counted once, as it would be for a big partition)."""
    client = redis.Redis.from_url(url)
    value = b"v" * size
    try:
        _flush_sync(client)
        base = _used_memory(client)
        pipe = client.pipeline(transaction=False)
        for i in range(messages):
            pipe.xadd("raw", {"key": b"user-%d" % (i % DISTINCT_KEYS), "value": value})
            if len(pipe) >= 1000:
                pipe.execute()
        pipe.execute()
        raw = (_used_memory(client) - base) / messages
        _flush_sync(client)
        base = _used_memory(client)
        with Admin(url) as admin:
            admin.create_topic("mem", 1)
        with Producer(url) as producer:
            for i in range(messages):
                producer.send("mem", value, key=b"user-%d" % (i % DISTINCT_KEYS))
        sdk = (_used_memory(client) - base) / messages
        client.flushall()
    finally:
        client.close()
    return {"raw_bytes": raw, "sdk_bytes": sdk, "ratio": sdk / raw}


def _consume_latencies(url: str, total: int, seconds: float, ready, results) -> None:
    """In its own process (no GIL shared with the producer): receive, and send back latencies."""
    latencies: list[float] = []
    # earliest: a partition claimed a little after the others still delivers from its start.
    with Consumer("lat", "lat", url, heartbeat_interval_ms=200, auto_offset_reset="earliest") as c:
        while len(c.assignment()) < 4:
            c.poll(timeout_ms=50)
        ready.set()
        deadline = time.monotonic() + seconds * 4 + 30  # the producer may fall behind its rate
        while len(latencies) < total and time.monotonic() < deadline:
            for m in c.poll(timeout_ms=100):
                latencies.append((time.time_ns() - int(m.headers["t"])) / 1e6)
            c.commit(asynchronous=True)
    results.send(latencies)


def e2e_latency(url: str, rate: int, seconds: float, acks: int | str = 1) -> dict[str, float]:
    """Produce-to-consume latency at a fixed rate: the producer stamps each record's send time
    (wall clock), a consumer in another process computes now - stamp. Milliseconds."""
    import multiprocessing

    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    with Admin(url) as admin:
        admin.create_topic("lat", 4)
    total = int(rate * seconds)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_consume_latencies, args=(url, total, seconds, ready, sender))
    proc.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the latency consumer did not start")
        with Producer(url, acks=acks, linger_ms=0) as producer:
            start = time.perf_counter()
            for i in range(total):
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                producer.send("lat", b"x" * 100, key=b"k%d" % (i % 100), headers={"t": str(time.time_ns())})
        latencies = receiver.recv()
    finally:
        proc.join(30)
        receiver.close()
        sender.close()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return {
        "received": len(latencies), "sent": total, "p50_ms": pick(0.50), "p99_ms": pick(0.99),
        "max_ms": latencies[-1], "mean_ms": statistics.fmean(latencies),
    }  # fmt: skip


def growth(url: str, partitions: list[int], messages: list[int], size: int) -> list[dict[str, float]]:
    """SDK produce rate, then consume rate (poll of 1000 + commit), as partitions and stored
    records grow (cost should stay flat). The records consumed are the ones just produced."""
    out = []
    client = redis.Redis.from_url(url)
    value = b"v" * size
    try:
        for parts in partitions:
            for n in messages:
                client.flushall()
                with Admin(url) as admin:
                    admin.create_topic("grow", parts)
                with Producer(url, batch_size=256 * 1024) as producer:
                    t0 = time.perf_counter()
                    for i in range(n):
                        producer.send("grow", value, key=b"user-%d" % (i % DISTINCT_KEYS))
                    producer.flush()
                    rate = n / (time.perf_counter() - t0)
                with Admin(url) as admin:
                    stored = sum(info.length for info in admin.describe_topic("grow").partitions)
                with Consumer("grow", "grow", url, auto_offset_reset="earliest") as consumer:
                    read = 0
                    while len(consumer.assignment()) < parts:  # joining: not timed
                        read += len(consumer.poll(timeout_ms=0, max_records=1))
                    t0 = time.perf_counter()
                    while read < n:
                        batch = consumer.poll(timeout_ms=1000, max_records=1000)
                        if not batch:
                            break
                        read += len(batch)
                        consumer.commit()
                    consume_rate = read / (time.perf_counter() - t0)
                if read != n:
                    raise RuntimeError(f"growth: consumed {read} of {n} records")
                out.append({"partitions": parts, "messages": n, "stored": stored, "msg_per_s": rate,
                            "consume_msg_per_s": consume_rate})
        client.flushall()
    finally:
        client.close()
    return out


def offset_lookup(url: str, records: int, seeks: int = 300) -> dict[str, float]:
    """Seek + poll to random offsets on a partition of ``records`` records and on one of 1,000:
    the lookup (a binary search over the append-time part of entry IDs, lua/_lib.lua find_entry)
    should cost about the same on both. The big partition is filled with raw pipelined XADDs at
    facade's IDs (``<ms>-<offset>``, one ms apart: hours of history), which is what the producer
    stores, only faster to build. Milliseconds per seek + poll of one record, and server-side
    microseconds per script call (INFO commandstats, EVALSHA)."""
    import random

    from facade import TopicPartition, keys, offsets

    client = redis.Redis.from_url(url)
    rng = random.Random(7)
    out: dict[str, float] = {"records": records}
    try:
        for name, n in (("small", 1000), ("big", records)):
            _flush_sync(client)
            with Admin(url) as admin:
                admin.create_topic(name, 1)
            stream = keys.stream(name, 0)
            start_ms = int(time.time() * 1000) - n
            t0 = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for i in range(n):
                pipe.xadd(stream, {"value": b"%d" % i}, id=offsets.entry_id(start_ms + i, i))
                if len(pipe) >= 10_000:
                    pipe.execute()
            pipe.execute()
            if name == "big":
                out["fill_s"] = time.perf_counter() - t0
            tp = TopicPartition(name, 0)
            with Consumer(name, "lookup", url, auto_offset_reset="earliest", enable_auto_commit=False) as c:
                while not c.assignment():
                    c.poll(timeout_ms=50, max_records=1)
                client.config_resetstat()
                times = []
                for _ in range(seeks):
                    target = rng.randrange(n)
                    t0 = time.perf_counter()
                    c.seek(tp, target)
                    got = c.poll(timeout_ms=1000, max_records=1)
                    times.append((time.perf_counter() - t0) * 1000)
                    if not got or got[0].offset != target:
                        raise RuntimeError(f"offset lookup: seek to {target} returned {got[:1]}")
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
            times.sort()
            out[f"{name}_p50_ms"] = times[len(times) // 2]
            out[f"{name}_p99_ms"] = times[int(len(times) * 0.99)]
            out[f"{name}_script_us"] = float(stats.get("usec_per_call", 0.0))
        _flush_sync(client)
    finally:
        client.close()
    return out


_HOOKS = {
    "ProducerMetrics": ("batch_opened", "request", "retried", "batch_done"),
    "ConsumerMetrics": ("consumed", "error", "generation", "committed", "fenced"),
}


def _share(hooks: float, cpu: float) -> dict[str, float]:
    """``share``: of the client's CPU with metrics on; ``cost``: what metrics add to the CPU the
    same run takes with them off (hooks / (client CPU - hooks))."""
    return {"hooks_cpu_s": hooks, "client_cpu_s": cpu, "share": hooks / cpu, "cost": hooks / (cpu - hooks)}


def metrics_overhead(url: str, messages: int, size: int, partitions: int) -> dict[str, dict[str, float]]:
    """The share of the client's CPU that ``metrics=True`` costs, on produce and consume: CPU
    seconds spent inside the metrics hooks (each call timed with the calling thread's CPU clock)
    over the process's CPU seconds for the whole run (every thread: the sender, the heartbeat),
    less what reading the clock around each call costs (measured first, on an empty call).

    Both sides of the quotient are CPU time of this process, so other load on a shared machine
    hardly moves it, where it moves elapsed-time ratios by more than the 5 % being measured."""
    import os

    from facade import benchmark
    from facade import metrics as client_metrics

    spent = [0.0, 0]  # CPU seconds in hooks, calls
    saved = []

    def timed(fn):
        def hook(*args, **kwargs):
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - start
                spent[1] += 1

        return hook

    # What timing one call costs by itself (two clock reads), taken off each call's figure.
    empty = timed(lambda: None)
    for _ in range(20_000):
        empty()
    per_call = spent[0] / spent[1]

    for cls_name, names in _HOOKS.items():
        cls = getattr(client_metrics, cls_name)
        for name in names:
            saved.append((cls, name, getattr(cls, name)))
            setattr(cls, name, timed(getattr(cls, name)))
    value = os.urandom(size)
    keys = [b"user-%d" % i for i in range(DISTINCT_KEYS)]
    out = {}
    try:
        with Admin(url) as admin:
            admin.create_topic("metrics-overhead", partitions)
        spent[0], spent[1] = 0.0, 0
        start = time.process_time()
        benchmark.sdk_produce(url, "metrics-overhead", messages, value, keys=keys, metrics=True,
                              acks=1, linger_ms=5, batch_size=256 * 1024)  # fmt: skip
        cpu = time.process_time() - start
        out["produce"] = _share(max(0.0, spent[0] - spent[1] * per_call), cpu)
        spent[0], spent[1] = 0.0, 0
        start = time.process_time()
        benchmark.sdk_consume(url, "metrics-overhead", "metrics-overhead", messages, metrics=True)
        cpu = time.process_time() - start
        out["consume"] = _share(max(0.0, spent[0] - spent[1] * per_call), cpu)
    finally:
        for cls, name, fn in saved:
            setattr(cls, name, fn)
    return out
