"""The gateway's own encoders and decoders against kio's, and record batches round trips.

Unit tests: no server. The Produce response is written by hand (facade/gateway/produce.py); kio,
generated from Kafka's message schemas, must read it back as written, at every version.
"""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka_wire import raw_batch, record_batch

from facade.gateway import fetch, protocol
from facade.gateway.batches import BatchError, encode_batch, parse_batches
from facade.gateway.produce import encode_response

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("version", range(3, 12))
def test_produce_response_reads_back_with_kio_at_every_version(version):
    topics = [
        ("orders", [(0, 0, 41, -1, None), (3, 45, -1, -1, "out of order")]),
        ("t", [(1, 0, 0, 1_700_000_000_000, None)]),
    ]
    body = encode_response(version, topics)
    cls = protocol.response_class(0, version)
    decoded = protocol.decode(cls, body, 0)
    got = [
        (t.name, [(p.index, int(p.error_code), p.base_offset) for p in t.partition_responses])
        for t in decoded.responses
    ]
    assert got == [("orders", [(0, 0, 41), (3, 45, -1)]), ("t", [(1, 0, 0)])]
    if version >= 8:
        assert decoded.responses[0].partition_responses[1].error_message == "out of order"
    append = decoded.responses[1].partition_responses[0].log_append_time
    assert append is not None and int(append.timestamp() * 1000) == 1_700_000_000_000
    assert protocol.encode(decoded) == body  # kio writes the same bytes back


@pytest.mark.parametrize("version", range(4, 17))
def test_fetch_response_is_byte_for_byte_what_kio_writes_at_every_version(version):
    """Fetch's own writer (the hot path) against kio's general one, for the same response."""
    import uuid

    ids = [uuid.UUID(int=7), uuid.UUID(int=2**100 + 5)]
    batch = record_batch([b"a", b"bc"])
    parts = [[(0, 0, 12, 3, batch), (5, 1, 40, 2, b"")], [(2, 3, -1, -1, b"")]]
    topics = [(ids[i] if version >= 13 else name, parts[i]) for i, name in enumerate(["orders", "t"])]
    body = fetch.encode_response(version, topics)
    schema = protocol.response_class(1, version)
    module = sys.modules[schema.__module__]
    expected = protocol.make(schema, error_code=protocol.ErrorCode.none, session_id=0, responses=tuple(
        protocol.make(module.FetchableTopicResponse, topic=name, topic_id=ids[i], partitions=tuple(
            protocol.make(module.PartitionData, partition_index=p, error_code=protocol.ErrorCode(c), high_watermark=hw,
                          last_stable_offset=hw, log_start_offset=ls, aborted_transactions=None, records=r)
            for p, c, hw, ls, r in parts[i]))
        for i, name in enumerate(["orders", "t"])))  # fmt: skip
    assert body == protocol.encode(expected)
    decoded = protocol.decode(schema, body, 0)
    first = decoded.responses[0].partitions[0]
    assert (first.partition_index, first.high_watermark, bytes(first.records)) == (0, 12, batch)


records = st.lists(
    st.tuples(st.one_of(st.none(), st.binary(max_size=300)), st.one_of(st.none(), st.binary(max_size=3000))),
    min_size=1,
    max_size=40,
)


@given(records)
def test_fetch_batches_read_back_as_produce_batches(recs):
    """What Fetch packs (from stream entries) is what Produce unpacks: keys, values, nulls, offsets."""
    entries = []
    for i, (key, value) in enumerate(recs):
        fields = []
        if key is not None:
            fields += [b"key", key]
        fields += [b"value", value] if value is not None else [b"nv", b""]
        fields += [b"ts", b"7", b"h:a", b"1", b"n:b", b""]
        entries.append([f"1700000000{i % 3}00-{100 + i}".encode(), fields])
    batch, packed, last = encode_batch(entries, False, 10**9)
    assert (packed, last) == (len(recs), 100 + len(recs) - 1)
    (parsed,) = parse_batches(batch, 10**9)
    assert [(k, v) for _, k, v, _ in parsed.records] == recs
    assert all(h == [("a", b"1"), ("b", None)] for *_, h in parsed.records)
    assert [ts for ts, *_ in parsed.records] == [1700000000000 + (i % 3) * 100 - 7 for i in range(len(recs))]
    assert struct.unpack_from(">q", batch, 0)[0] == 100  # base offset


def test_a_fetch_batch_stops_at_max_bytes_but_never_returns_nothing():
    entries = [[f"1-{i}".encode(), [b"value", b"x" * 1000]] for i in range(10)]
    _, packed, last = encode_batch(entries, False, 3500)
    assert packed == 3 and last == 2
    one, packed, _ = encode_batch(entries, False, 10)
    assert packed == 1 and len(one) > 10


@pytest.mark.parametrize(
    "damage, code",
    [
        (lambda b: b[:-3], 2),  # truncated
        (lambda b: b[:17] + b"\x01" + b[18:], 2),  # magic 1
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), 2),  # CRC no longer matches
    ],
    ids=["truncated", "old-magic", "bad-crc"],
)
def test_damaged_batches_are_refused_with_kafka_codes(damage, code):
    good = record_batch([b"a", b"b"])
    assert len(parse_batches(good, 10**6)[0].records) == 2
    with pytest.raises(BatchError) as refused:
        parse_batches(damage(good), 10**6)
    assert refused.value.code == code


def test_an_oversized_batch_is_message_too_large():
    with pytest.raises(BatchError) as refused:
        parse_batches(record_batch([b"x" * 5000]), 1000)
    assert refused.value.code == 10


def test_kafka_nulls_have_markers_of_their_own_in_the_stream_codec():
    """A null value and a null header value (only Kafka clients write them) read back as None,
    distinct from empty bytes."""
    from facade import codec

    null = codec.decode("t", 0, b"5-3", [b"key", b"k", b"nv", b"", b"ts", b"2", b"n:h", b"", b"h:e", b""])
    assert (null.key, null.value, null.timestamp_ms, list(null.headers)) == (
        b"k",
        None,
        3,
        [("h", None), ("e", b"")],
    )
    tombstone = codec.decode("t", 0, b"5-3", [b"key", b"k", b"nv", b"", b"ts", b"2"])  # the common shape
    assert (tombstone.key, tombstone.value) == (b"k", None)
    empty = codec.decode("t", 0, b"5-3", [b"key", b"k", b"value", b"", b"ts", b"2"])
    assert empty.value == b""


_BOMB = """
import resource, sys
import cramjam
from kafka_wire import raw_batch
from facade.gateway.batches import BatchError, parse_batches

codec = sys.argv[1]
module = {"lz4": cramjam.lz4, "zstd": cramjam.zstd}[codec]
# 256 MiB of zeros: 64 frames of 4 MiB, one after the other (valid for both codecs)
batch = raw_batch(bytes(module.compress(bytes(4 << 20))) * 64, 1, codec={"lz4": 3, "zstd": 4}[codec])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    parse_batches(batch, 10**9)
    print("accepted")
except BatchError as exc:
    print(exc.code, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_a_decompression_bomb_costs_at_most_the_bound_in_memory(codec):
    """A batch expanding to 256 MiB is refused (MESSAGE_TOO_LARGE) having grown the process's peak
    memory by about the 64 MiB bound, not by twice the 256 MiB (decompressing it whole, then checking
    the size, as before: measured +512 MiB). Measured in a fresh process: peak RSS is per process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _BOMB, codec], check=False, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    code, grown_mib = map(int, done.stdout.split())
    assert code == 10
    assert grown_mib < 200, f"peak memory grew by {grown_mib} MiB while refusing the bomb"


def test_snappy_blocks_stating_more_than_the_bound_are_refused_before_decompressing():
    """Raw and xerial snappy: the lengths the blocks state are summed and checked first (the
    library allocates what a block states); a chunk length running past the batch is corrupt."""
    import cramjam

    from facade.gateway.batches import MAX_DECOMPRESSED

    block = bytes(cramjam.snappy.compress_raw(bytes(1000)))
    stated = cramjam.snappy.decompress_raw_len(block)
    xerial = b"\x82SNAPPY\x00" + bytes(8)
    chunks = xerial + (struct.pack(">i", len(block)) + block) * (MAX_DECOMPRESSED // stated + 1)
    with pytest.raises(BatchError) as refused:
        parse_batches(raw_batch(chunks, 1, codec=2), 10**9)
    assert refused.value.code == 10
    with pytest.raises(BatchError) as refused:
        parse_batches(raw_batch(xerial + struct.pack(">i", 10**6) + block, 1, codec=2), 10**9)
    assert refused.value.code == 2
