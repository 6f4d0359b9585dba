"""facade gateway: Fetch at the end of the log, where a consumer spends its life: one command per
fetch, and the answer (records, high watermark, log start, errors) the same as a full read's."""

from __future__ import annotations

import datetime
import struct

import pytest
import redis
from conftest import wait_until
from gateway_helpers import running_gateway

from facade import Admin, Producer
from facade.gateway import protocol
from facade.gateway.batches import parse_batches
from facade.gateway.context import Session

pytest.importorskip("kio", reason="kio is the gateway's codec")

pytestmark = pytest.mark.timeout(60)


def _fetch(gw, session, topic: str, positions: dict[int, int], max_bytes: int = 1 << 20) -> dict:
    """One Fetch v12 on ``session``: {partition: (error code, high watermark, log start, [(offset, value)])}."""
    from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic

    parts = tuple(FetchPartition(partition=p, current_leader_epoch=-1, fetch_offset=o, last_fetched_epoch=-1,
                                 log_start_offset=-1, partition_max_bytes=max_bytes)
                  for p, o in positions.items())  # fmt: skip
    request = FetchRequest(cluster_id=None, replica_id=-1, max_wait=datetime.timedelta(0), min_bytes=1,
                           max_bytes=50 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                           topics=(FetchTopic(topic=topic, partitions=parts),), forgotten_topics_data=(),
                           rack_id="")  # fmt: skip
    frame = struct.pack(">hhih", 1, 12, 7, 4) + b"test" + b"\x00" + protocol.encode(request)
    reply = gw.call(gw.gateway._answer(session, frame))
    body = reply[4 + 4 + 1 :]  # size, correlation id, header's tagged fields
    decoded = protocol.decode(protocol.response_class(1, 12), body, 0)
    out = {}
    for p in decoded.responses[0].partitions:
        records = []
        data = bytes(p.records or b"")
        if data:
            base = struct.unpack(">q", data[:8])[0]
            for batch in parse_batches(data, 1 << 30):
                records += [(base + i, r[2]) for i, r in enumerate(batch.records)]
        out[p.partition_index] = (int(p.error_code), p.high_watermark, p.log_start_offset, records)
    return out


def _session(gw) -> Session:
    g = gw.gateway
    return Session("test", g.conn, g.admin, g.topics, authenticated=True)


def _calls(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name: stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("xread", "evalsha", "xrange")}


def _send(url: str, topic: str, partition: int, values: list[bytes]) -> None:
    with Producer(url) as producer:
        for v in values:
            producer.send(topic, value=v, partition=partition)
        producer.flush()


def test_a_consumer_at_the_end_gets_each_new_record_with_one_command_per_fetch(url):
    Admin(url).create_topic("t", 3)
    for p in range(3):
        _send(url, "t", p, [b"old%d" % i for i in range(5)])
    with running_gateway(url) as gw:
        session = _session(gw)
        first = _fetch(gw, session, "t", dict.fromkeys(range(3), 0))
        assert {p: (r[0], r[1], len(r[3])) for p, r in first.items()} == dict.fromkeys(range(3), (0, 5, 5))
        end = dict.fromkeys(range(3), 5)
        for round_ in range(3):
            _send(url, "t", round_, [b"new%d" % round_, b"more%d" % round_])
            before = _calls(url)
            got = _fetch(gw, session, "t", end)
            after = _calls(url)
            assert (after["xread"] - before["xread"], after["evalsha"] - before["evalsha"]) == (1, 0)
            for p in range(3):
                error, hw, start, records = got[p]
                expected = [(end[p], b"new%d" % p), (end[p] + 1, b"more%d" % p)] if p == round_ else []
                assert (error, hw, start, records) == (0, end[p] + len(expected), 0, expected)
            end[round_] += 2
        # Nothing new: an empty answer at the end, still one command.
        before = _calls(url)
        assert {p: r[3] for p, r in _fetch(gw, session, "t", end).items()} == {p: [] for p in range(3)}
        assert _calls(url)["xread"] - before["xread"] == 1


def test_a_tail_read_that_fills_its_count_reports_the_true_high_watermark_and_catches_up(url):
    Admin(url).create_topic("t", 1)
    _send(url, "t", 0, [b"x" * 100])
    with running_gateway(url) as gw:
        session = _session(gw)
        assert _fetch(gw, session, "t", {0: 0}, max_bytes=2000)[0][1] == 1
        _send(url, "t", 0, [b"%03d" % i + b"y" * 97 for i in range(300)])  # many times what one read takes
        position, seen = 1, []
        while position < 301:
            error, hw, _, records = _fetch(gw, session, "t", {0: position}, max_bytes=2000)[0]
            assert (error, hw) == (0, 301)  # never the end of what one read happened to return
            assert records and records[0][0] == position
            seen += [v[:3] for _, v in records]
            position = records[-1][0] + 1
    assert seen == [b"%03d" % i for i in range(300)]


def test_a_topic_recreated_empty_under_a_consumer_at_the_end_answers_offset_out_of_range(url):
    Admin(url).create_topic("t", 1)
    _send(url, "t", 0, [b"a", b"b", b"c"])
    with running_gateway(url) as gw:
        session = _session(gw)
        assert _fetch(gw, session, "t", {0: 0})[0][1] == 3
        assert _fetch(gw, session, "t", {0: 3})[0][:2] == (0, 3)  # at the end
        Admin(url).delete_topic("t")
        Admin(url).create_topic("t", 1)
        # Within the caches' second the reader may still see "nothing new"; then the truth.
        wait_until(lambda: _fetch(gw, session, "t", {0: 3})[0][0] == 1, timeout=5,
                   what="OFFSET_OUT_OF_RANGE on the recreated, empty topic")  # fmt: skip
        _send(url, "t", 0, [b"fresh"])
        assert _fetch(gw, session, "t", {0: 0})[0][3] == [(0, b"fresh")]
