"""facade gateway: Produce and Fetch with confluent-kafka (librdkafka), and interop with the SDK."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import wait_until
from gateway_helpers import consume_assigned, running_gateway
from kafka_wire import produce_frame, produce_request, raw_batch, record_batch, send_and_read

from facade import Admin, Consumer, Producer, TopicPartition

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka is in the test extras")

pytestmark = pytest.mark.timeout(90)


def _produce(bootstrap: str, records: list[dict], **config) -> list[tuple[int, int]]:
    """Send ``records`` (produce() keyword arguments) and return each one's (partition, offset)."""
    producer = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, **config})
    out: dict[int, tuple[int, int]] = {}
    errors = []

    def done(i):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                out[i] = (msg.partition(), msg.offset())

        return cb

    for i, rec in enumerate(records):
        producer.produce(on_delivery=done(i), **rec)
    assert producer.flush(30) == 0
    assert not errors, errors
    return [out[i] for i in range(len(records))]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_with_each_acks_and_read_back_by_the_sdk(url, acks):
    Admin(url).create_topic("t", 2)
    with running_gateway(url) as gw:
        records = [{"topic": "t", "key": f"k{i}", "value": f"v{i}", "partition": i % 2} for i in range(50)]
        _produce(gw.bootstrap, records, acks=acks)
        admin = Admin(url)
        # acks=0: the client is done once the bytes are written; the records land just after.
        wait_until(
            lambda: sum(len(admin.read_records(TopicPartition("t", p), 0, 1000)) for p in range(2)) == 50
        )
    got = {p: admin.read_records(TopicPartition("t", p), 0, 1000) for p in range(2)}
    assert [m.value for m in got[0]] == [f"v{i}".encode() for i in range(0, 50, 2)]
    assert [m.offset for m in got[1]] == list(range(25))


def test_idempotent_producer_offsets_are_dense_and_each_record_stored_once(url):
    Admin(url).create_topic("t", 3)
    with running_gateway(url) as gw:
        records = [{"topic": "t", "key": f"key-{i % 17}", "value": str(i)} for i in range(3000)]
        placed = _produce(gw.bootstrap, records, **{"enable.idempotence": True, "batch.num.messages": 100})
    admin = Admin(url)
    stored = {p: admin.read_records(TopicPartition("t", p), 0, 10_000) for p in range(3)}
    assert sum(len(v) for v in stored.values()) == 3000
    for msgs in stored.values():
        assert [m.offset for m in msgs] == list(range(len(msgs)))
    by_value = {m.value: (p, m.offset) for p, msgs in stored.items() for m in msgs}
    assert all(by_value[str(i).encode()] == placed[i] for i in range(3000))


def test_a_retried_idempotent_batch_is_not_appended_twice(url):
    """The same batch (producer id, epoch, sequence) sent twice over the wire is stored once and
    answered with its first offsets, also after a later batch (Kafka remembers the last 5); a gap
    is OUT_OF_ORDER_SEQUENCE_NUMBER."""
    Admin(url).create_topic("t", 1)
    with running_gateway(url) as gw:
        first = send_and_read(
            gw.port, produce_request("t", 0, [b"a", b"b"], producer_id=7, epoch=0, base_sequence=0)
        )
        again = send_and_read(
            gw.port, produce_request("t", 0, [b"a", b"b"], producer_id=7, epoch=0, base_sequence=0)
        )
        nxt = send_and_read(gw.port, produce_request("t", 0, [b"c"], producer_id=7, epoch=0, base_sequence=2))
        old = send_and_read(
            gw.port, produce_request("t", 0, [b"a", b"b"], producer_id=7, epoch=0, base_sequence=0)
        )
        gap = send_and_read(gw.port, produce_request("t", 0, [b"z"], producer_id=7, epoch=0, base_sequence=9))
    assert first == (0, 0) and again == (0, 0) and nxt == (0, 2)
    assert old == (0, 0)  # a retry of the batch before the last: its original base offset
    assert gap[0] == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a", b"b", b"c"]


def test_an_idempotent_batch_without_a_sequence_is_refused_and_does_not_poison_its_producer_id(url):
    """A batch with a producer id but base sequence -1 (no sequence: only valid without a producer
    id) is refused (INVALID_RECORD) with nothing stored, and the producer id's next proper batch
    is appended (it used to be stored, then every later batch of that id failed in produce.lua)."""
    Admin(url).create_topic("t", 1)
    with running_gateway(url) as gw:
        bad = send_and_read(gw.port, produce_request("t", 0, [b"x"], producer_id=5, epoch=0, base_sequence=-1))
        good = send_and_read(gw.port, produce_request("t", 0, [b"a"], producer_id=5, epoch=0, base_sequence=0))
    assert bad[0] == 87  # INVALID_RECORD
    assert good == (0, 0)
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a"]


def test_a_partition_whose_second_batch_is_refused_stores_none_of_its_batches(url):
    """One Produce partition with two batches of one producer id, the second skipping sequences:
    Kafka validates every batch before appending any, so the error answer means nothing stored
    (the gateway sends a partition's batches to produce.lua in one call, checked before any write).
    The producer id's state is untouched: the first batch alone is then accepted at offset 0."""
    Admin(url).create_topic("t", 1)
    records = record_batch([b"a"], producer_id=7, epoch=0, base_sequence=0) + record_batch(
        [b"b"], producer_id=7, epoch=0, base_sequence=5
    )
    with running_gateway(url) as gw:
        code, _ = send_and_read(gw.port, produce_frame("t", 0, records))
        assert code == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
        assert Admin(url).read_records(TopicPartition("t", 0)) == []
        assert send_and_read(gw.port, produce_request("t", 0, [b"a"], producer_id=7, epoch=0, base_sequence=0)) == (0, 0)
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a"]


def test_an_idempotent_request_whose_second_batch_is_out_of_order_stores_nothing(url):
    """After sequences 0-1 are stored, a request of [2-3, 9] (second batch skips ahead) or
    [2-3, 2-3] (second batch repeats the first) is OUT_OF_ORDER_SEQUENCE_NUMBER for the partition
    (Kafka answers per partition: one error code, the request's batches of that partition share
    it) with nothing stored; [2-3, 4] then goes in whole, at offsets 2-4."""
    Admin(url).create_topic("t", 1)
    pid = {"producer_id": 3, "epoch": 1}
    with running_gateway(url) as gw:
        assert send_and_read(gw.port, produce_request("t", 0, [b"a", b"b"], base_sequence=0, **pid)) == (0, 0)
        first = record_batch([b"c", b"d"], base_sequence=2, **pid)
        skip = send_and_read(gw.port, produce_frame("t", 0, first + record_batch([b"z"], base_sequence=9, **pid)))
        again = send_and_read(gw.port, produce_frame("t", 0, first + first))
        assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a", b"b"]
        good = send_and_read(gw.port, produce_frame("t", 0, first + record_batch([b"e"], base_sequence=4, **pid)))
    assert skip[0] == 45 and again[0] == 45
    assert good == (0, 2)
    stored = Admin(url).read_records(TopicPartition("t", 0))
    assert [(m.offset, m.value) for m in stored] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d"), (4, b"e")]


def test_a_request_of_two_idempotent_batches_sent_again_is_stored_once(url):
    """The same request (batches 0-1 and 2 of one producer id) sent twice, as a client retrying
    after a lost response: stored once, the retry answered with the original base offset; each
    batch is remembered on its own, so a request repeating only its first batch is answered with
    that batch's offset (nothing stored); the next sequence (3) goes on at offset 3."""
    Admin(url).create_topic("t", 1)
    pid = {"producer_id": 11, "epoch": 0}
    both = produce_frame(
        "t", 0, record_batch([b"a", b"b"], base_sequence=0, **pid) + record_batch([b"c"], base_sequence=2, **pid)
    )
    with running_gateway(url) as gw:
        first = send_and_read(gw.port, both)
        retry = send_and_read(gw.port, both)
        part = send_and_read(gw.port, produce_request("t", 0, [b"a", b"b"], base_sequence=0, **pid))
        nxt = send_and_read(gw.port, produce_request("t", 0, [b"d"], base_sequence=3, **pid))
    assert first == (0, 0) and retry == (0, 0)
    assert part == (0, 0)
    assert nxt == (0, 3)
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [b"a", b"b", b"c", b"d"]


def test_a_retry_of_any_of_the_last_five_batches_gets_its_base_offset_older_is_out_of_order(url):
    """librdkafka and the Java client keep up to 5 requests in flight per partition with
    idempotence; Kafka remembers each producer's last 5 batches per partition, so a retry of any
    of them is answered with that batch's base offset, nothing stored. A batch older than those
    5 is OUT_OF_ORDER_SEQUENCE_NUMBER (Kafka's ProducerAppendInfo.checkSequence), as is a
    remembered first sequence with another record count."""
    Admin(url).create_topic("t", 1)
    pid = {"producer_id": 21, "epoch": 0}
    with running_gateway(url) as gw:
        sent = [send_and_read(gw.port, produce_request("t", 0, [b"%d" % b] * 3, base_sequence=3 * b, **pid))
                for b in range(8)]  # fmt: skip
        retried = [send_and_read(gw.port, produce_request("t", 0, [b"x"] * 3, base_sequence=3 * b, **pid))
                   for b in range(3, 8)]  # fmt: skip
        older = [send_and_read(gw.port, produce_request("t", 0, [b"x"] * 3, base_sequence=3 * b, **pid))
                 for b in range(3)]  # fmt: skip
        shorter = send_and_read(gw.port, produce_request("t", 0, [b"x"] * 2, base_sequence=15, **pid))
        nxt = send_and_read(gw.port, produce_request("t", 0, [b"next"], base_sequence=24, **pid))
    assert sent == [(0, 3 * b) for b in range(8)]
    assert retried == [(0, 3 * b) for b in range(3, 8)]
    assert [code for code, _ in older] == [45, 45, 45] and shorter[0] == 45
    assert nxt == (0, 24)
    stored = Admin(url).read_records(TopicPartition("t", 0), 0, 100)
    assert [m.value for m in stored] == [b"%d" % (i // 3) for i in range(24)] + [b"next"]


def test_idempotent_sequences_wrap_from_int32_max_to_zero(url):
    """A producer whose sequences reach 2147483647 goes on at 0 (Kafka's int32 sequences,
    DefaultRecordBatch.incrementSequence), also inside one batch; the wrapping batch retried is
    answered with its base offset; 0 again after that is OUT_OF_ORDER_SEQUENCE_NUMBER."""
    Admin(url).create_topic("t", 1)
    pid = {"producer_id": 9, "epoch": 2}
    top = 2**31 - 1
    with running_gateway(url) as gw:
        a = send_and_read(gw.port, produce_request("t", 0, [b"a", b"b"], base_sequence=top - 1, **pid))
        b = send_and_read(gw.port, produce_request("t", 0, [b"c"], base_sequence=0, **pid))
        c = send_and_read(gw.port, produce_request("t", 0, [b"d", b"e", b"f"], base_sequence=1, **pid))
        d = send_and_read(gw.port, produce_request("t", 0, [b"g", b"h", b"i"], base_sequence=top, **pid))
        pid2 = {"producer_id": 9, "epoch": 3}
        e = send_and_read(gw.port, produce_request("t", 0, [b"j", b"k", b"l"], base_sequence=top, **pid2))
        f = send_and_read(gw.port, produce_request("t", 0, [b"m"], base_sequence=2, **pid2))
        again = send_and_read(gw.port, produce_request("t", 0, [b"j", b"k", b"l"], base_sequence=top, **pid2))
        zero = send_and_read(gw.port, produce_request("t", 0, [b"n"], base_sequence=0, **pid2))
    assert (a, b, c) == ((0, 0), (0, 2), (0, 3))
    assert d[0] == 45  # top after 3: out of order for that producer
    assert (e, f, again) == ((0, 6), (0, 9), (0, 6))  # top, 0, 1 then 2; the wrapping batch retried
    assert zero[0] == 45
    assert [m.value for m in Admin(url).read_records(TopicPartition("t", 0))] == [
        b"a", b"b", b"c", b"d", b"e", b"f", b"j", b"k", b"l", b"m"]  # fmt: skip


def test_a_timestamp_beyond_what_is_stored_exactly_is_invalid_timestamp(url):
    """Create times pass through produce.lua as doubles: up to 2^53-1 ms they are stored and read
    back exactly; a batch with a larger one is refused with INVALID_TIMESTAMP (32), nothing stored,
    the other partition of the request unaffected. On a LogAppendTime topic the client's time is
    replaced, so it is accepted."""
    from facade.scripts import MAX_CREATE_TIME_MS

    Admin(url).create_topic("t", 1)
    Admin(url).create_topic("la", 1, timestamp_type="LogAppendTime")
    with running_gateway(url) as gw:
        over = send_and_read(gw.port, produce_request("t", 0, [b"x"], timestamp=MAX_CREATE_TIME_MS + 1))
        assert Admin(url).read_records(TopicPartition("t", 0)) == []
        top = send_and_read(gw.port, produce_request("t", 0, [b"a"], timestamp=MAX_CREATE_TIME_MS))
        append = send_and_read(gw.port, produce_request("la", 0, [b"b"], timestamp=2**62))
    assert over[0] == 32 and top == (0, 0) and append == (0, 0)
    (stored,) = Admin(url).read_records(TopicPartition("t", 0))
    assert (stored.value, stored.timestamp_ms) == (b"a", MAX_CREATE_TIME_MS)
    (appended,) = Admin(url).read_records(TopicPartition("la", 0))
    assert appended.timestamp_ms < 2**53


@pytest.mark.parametrize("damage", ["crc", "too-large", "empty"])
def test_a_request_whose_second_batch_is_damaged_stores_none_of_its_batches(url, damage):
    """A good first batch, then one whose CRC does not match (CORRUPT_MESSAGE), one above the batch
    size limit (MESSAGE_TOO_LARGE) or one with no records (INVALID_RECORD, as Kafka's
    LogValidator): the partition is refused and neither batch is stored."""
    Admin(url).create_topic("t", 1)
    second = record_batch([b"x" * 1_100_000] if damage == "too-large" else [b"b"])
    if damage == "crc":
        second = second[:-1] + bytes([second[-1] ^ 1])
    elif damage == "empty":
        second = raw_batch(b"", 0)
    with running_gateway(url) as gw:
        code, _ = send_and_read(gw.port, produce_frame("t", 0, record_batch([b"a"]) + second))
    assert code == {"crc": 2, "too-large": 10, "empty": 87}[damage]
    assert Admin(url).read_records(TopicPartition("t", 0)) == []


def test_more_records_than_one_call_takes_are_refused_whole(url):
    """A partition's batches carrying more than MAX_RECORDS_PER_CALL records in one request are
    refused with MESSAGE_TOO_LARGE (the Java client splits its batch and retries), nothing
    stored; exactly that many go in whole."""
    from facade.scripts import MAX_RECORDS_PER_CALL

    Admin(url).create_topic("t", 2)
    half = MAX_RECORDS_PER_CALL // 2
    over = record_batch([b""] * half) + record_batch([b""] * (MAX_RECORDS_PER_CALL - half + 1))
    with running_gateway(url) as gw:
        code, _ = send_and_read(gw.port, produce_frame("t", 0, over))
        at_cap = send_and_read(gw.port, produce_frame("t", 1, record_batch([b""] * MAX_RECORDS_PER_CALL)))
    assert code == 10
    assert Admin(url).read_records(TopicPartition("t", 0)) == []
    assert at_cap == (0, 0)
    assert Admin(url).read_records(TopicPartition("t", 1), MAX_RECORDS_PER_CALL - 1, 10)[0].offset == (
        MAX_RECORDS_PER_CALL - 1
    )


def _zeros(codec: str, size: int) -> bytes:
    """``size`` zero bytes compressed with ``codec`` (streamed: the zeros are never all in memory)."""
    import zlib

    import cramjam

    chunk = bytes(1 << 20)
    if codec == "gzip":
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join(comp.compress(chunk) for _ in range(size >> 20)) + comp.flush()
    streaming = {"lz4": cramjam.lz4, "zstd": cramjam.zstd}[codec].Compressor()
    for _ in range(size >> 20):
        streaming.compress(chunk)
    return bytes(streaming.finish())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_a_decompression_bomb_is_refused_without_storing_anything(url, codec):
    """A batch of under 1 MiB whose records would expand past the 64 MiB bound (snappy: a block
    stating 100 MiB; snappy cannot expand 1 MiB that far) is MESSAGE_TOO_LARGE, nothing stored,
    alongside a good first batch; the gateway stops decompressing at the bound
    (tests/test_gateway_codec.py measures its memory)."""
    number = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}[codec]
    if codec == "snappy":
        payload = b"\x80\x80\x80\x32" + bytes(64)  # a raw block stating 100 MiB (varint 0x3200000)
    else:
        payload = _zeros(codec, 200 << 20)
    assert len(payload) < 1_000_000
    with running_gateway(url) as gw:
        Admin(url).create_topic("t", 1)
        code, _ = send_and_read(gw.port, produce_frame("t", 0, record_batch([b"a"]) + raw_batch(payload, 1, codec=number)))
    assert code == 10  # MESSAGE_TOO_LARGE
    assert Admin(url).read_records(TopicPartition("t", 0)) == []


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_stored_as_records(url, codec):
    Admin(url).create_topic("t", 1)
    with running_gateway(url) as gw:
        records = [{"topic": "t", "key": "k", "value": ("x" * 200) + str(i)} for i in range(500)]
        _produce(gw.bootstrap, records, **{"compression.type": codec})
    stored = Admin(url).read_records(TopicPartition("t", 0), 0, 1000)
    assert [m.value for m in stored] == [(("x" * 200) + str(i)).encode() for i in range(500)]


def test_kafka_record_read_by_the_sdk_with_key_value_headers_timestamp_and_nulls(url):
    Admin(url).create_topic("t", 1)
    with running_gateway(url) as gw:
        _produce(gw.bootstrap, [
            {"topic": "t", "key": b"k1", "value": b"v1", "headers": [("a", b"1"), ("a", b"2"), ("nul", None)],
             "timestamp": 1_700_000_000_123},
            {"topic": "t", "key": None, "value": b""},
            {"topic": "t", "key": b"gone", "value": None},
        ])  # fmt: skip
    with Consumer(url, "t", "g", auto_offset_reset="earliest") as consumer:
        msgs = []
        deadline = time.monotonic() + 20
        while len(msgs) < 3 and time.monotonic() < deadline:
            msgs += consumer.poll(timeout_ms=500)
    assert [(m.key, m.value) for m in msgs] == [(b"k1", b"v1"), (None, b""), (b"gone", None)]
    assert list(msgs[0].headers) == [("a", b"1"), ("a", b"2"), ("nul", None)]
    assert msgs[0].timestamp_ms == 1_700_000_000_123 and msgs[0].timestamp_type == "CreateTime"


def test_sdk_record_read_by_a_kafka_consumer_with_key_value_headers_timestamp(url):
    Admin(url).create_topic("t", 1)
    with Producer(url) as producer:
        producer.send("t", value=b"hello", key=b"k", headers=[("h", b"x"), ("h", b"y")]).result(10)
        producer.send("t", value=b"keyless").result(10)
    stored = Admin(url).read_records(TopicPartition("t", 0))
    with running_gateway(url) as gw:
        msgs = consume_assigned(gw.bootstrap, [("t", 0, 0)], 2)
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == [(0, b"k", b"hello"), (1, None, b"keyless")]
    assert msgs[0].headers() == [("h", b"x"), ("h", b"y")]
    assert msgs[0].timestamp() == (ck.TIMESTAMP_CREATE_TIME, stored[0].timestamp_ms)


def test_log_append_time_topic_reports_the_append_time(url):
    Admin(url).create_topic("t", 1, timestamp_type="LogAppendTime")
    with running_gateway(url) as gw:
        _produce(gw.bootstrap, [{"topic": "t", "value": b"a", "timestamp": 1000}])
        (msg,) = consume_assigned(gw.bootstrap, [("t", 0, 0)], 1)
    stored = Admin(url).read_records(TopicPartition("t", 0))[0]
    assert msg.timestamp() == (ck.TIMESTAMP_LOG_APPEND_TIME, stored.timestamp_ms)
    assert stored.timestamp_ms > 1_600_000_000_000


def test_fetch_long_poll_wakes_on_new_data_not_at_the_end_of_the_wait(url):
    """A consumer waiting with fetch.wait.max.ms=10000 gets a record produced (through the SDK)
    half a second later within a fraction of the wait: the Fetch woke on the append."""
    Admin(url).create_topic("t", 4)
    with running_gateway(url) as gw:
        consumer = ck.Consumer({"bootstrap.servers": gw.bootstrap, "group.id": "unused", "enable.auto.commit": False,
                                "fetch.wait.max.ms": 10_000, "socket.timeout.ms": 30_000})  # fmt: skip
        consumer.assign([ck.TopicPartition("t", p, 0) for p in range(4)])
        consumer.poll(1.0)  # the first, empty, fetches are now waiting
        sent_at = []

        def send_later():
            time.sleep(0.5)
            with Producer(url) as producer:
                sent_at.append(time.monotonic())
                producer.send("t", value=b"wake", partition=3).result(10)

        thread = threading.Thread(target=send_later)
        thread.start()
        try:
            msg = None
            while msg is None:
                msg = consumer.poll(0.05)
            received = time.monotonic()
        finally:
            thread.join()
            consumer.close()
    assert msg.value() == b"wake"
    assert received - sent_at[0] < 1.0, f"took {received - sent_at[0]:.3f}s after the send"


@pytest.mark.parametrize("resp", ["resp2", "resp3"])
def test_a_wake_up_is_read_in_either_reply_shape(resp):
    """XREAD answers RESP3's map (redis-py 8's default) or RESP2's [stream, entries] pairs; a woken
    Fetch builds its answer from either (the real-client tests only ever see the map)."""
    from types import SimpleNamespace

    from facade import keys, offsets
    from facade.gateway.fetch import _from_wake
    from facade.scripts import LogRead

    plan = [("t", SimpleNamespace(partition=p, fetch_offset=2), object(), None) for p in range(2)]
    reads = [LogRead(0, 2, b"x", []), LogRead(0, 2, b"y", [])]
    entries = [[offsets.entry_id(1000, o).encode(), [b"value", b"v%d" % o]] for o in (2, 3)]
    stream = keys.stream("t", 1).encode()
    woke = {stream: entries} if resp == "resp3" else [[stream, entries]]
    got = _from_wake(plan, reads, woke, 1)
    assert got == [reads[0], LogRead(0, 4, entries[-1][0], entries)]


def test_fetch_from_an_offset_inside_the_log_and_out_of_range(url):
    Admin(url).create_topic("t", 1)
    with Producer(url) as producer:
        for i in range(100):
            producer.send("t", value=str(i).encode())
        producer.flush()
    Admin(url).delete_records({TopicPartition("t", 0): 10})
    with running_gateway(url) as gw:
        msgs = consume_assigned(gw.bootstrap, [("t", 0, 57)], 43)
        assert [m.offset() for m in msgs] == list(range(57, 100))
        assert [m.value() for m in msgs][:2] == [b"57", b"58"]
        # Below the log start: the client is told OFFSET_OUT_OF_RANGE and resets (earliest here).
        msgs = consume_assigned(gw.bootstrap, [("t", 0, 3)], 1, **{"auto.offset.reset": "earliest"})
        assert msgs[0].offset() == 10


def test_produce_to_a_missing_topic_or_partition_is_refused_without_writing(url):
    Admin(url).create_topic("t", 1)
    with running_gateway(url, auto_create_partitions=0) as gw:
        producer = ck.Producer({"bootstrap.servers": gw.bootstrap, "message.timeout.ms": 3000})
        errors = []
        producer.produce("t", value=b"x", partition=5, on_delivery=lambda err, msg: errors.append(err))
        producer.produce("nope", value=b"x", on_delivery=lambda err, msg: errors.append(err))
        producer.flush(15)
    assert len(errors) == 2 and all(e is not None for e in errors)
    assert Admin(url).read_records(TopicPartition("t", 0)) == []


def test_the_cli_reads_and_writes_what_kafka_clients_see(url):
    """Interop through the CLI: `facade consume` shows a Kafka client's record (headers, a null
    value, a null header value); `facade produce` writes one a Kafka consumer reads."""
    import json

    from click.testing import CliRunner
    from facade.cli import main

    Admin(url).create_topic("t", 1)
    with running_gateway(url) as gw:
        _produce(gw.bootstrap, [
            {"topic": "t", "key": b"k", "value": b"hello", "headers": [("h", b"x"), ("nul", None)]},
            {"topic": "t", "key": b"gone", "value": None},
        ])  # fmt: skip
        shown = CliRunner().invoke(
            main, ["--url", url, "consume", "t", "--group", "cli", "--from-beginning", "--max-messages", "2",
                   "--format", "json"], catch_exceptions=False,
        )  # fmt: skip
        assert shown.exit_code == 0, shown.output
        lines = [json.loads(line) for line in shown.stdout.splitlines()]
        assert [(d["key"], d["value"]) for d in lines] == [("k", "hello"), ("gone", None)]
        assert lines[0]["headers"] == [["h", "x"], ["nul", None]]
        written = CliRunner().invoke(main, ["--url", url, "produce", "t", "from-cli", "--key", "c", "--header", "a=b"],
                                     catch_exceptions=False)  # fmt: skip
        assert written.exit_code == 0, written.output
        (msg,) = consume_assigned(gw.bootstrap, [("t", 0, 2)], 1)
    assert (msg.key(), msg.value(), msg.headers()) == (b"c", b"from-cli", [("a", b"b")])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_an_idempotent_producer_whose_replies_are_lost_stores_each_record_once_in_order(url, seed):
    """Between librdkafka and the gateway, a proxy cuts the connection instead of forwarding some
    replies: the gateway stored the batch, the client never heard so and sends it again (up to five
    requests in flight). Every record is stored exactly once, each partition in the order sent."""
    from conftest import free_port
    from proxy import ReplyDropProxy

    Admin(url).create_topic("t", 4)
    port = free_port()
    proxy = ReplyDropProxy(port, drop_probability=0.05, seed=seed, max_drops=15)
    try:
        with running_gateway(url, port=port, advertise=("127.0.0.1", proxy.port)) as gw:
            assert gw.port == port
            producer = ck.Producer({"bootstrap.servers": f"127.0.0.1:{proxy.port}", "enable.idempotence": True,
                                    "linger.ms": 1, "batch.num.messages": 50, "retry.backoff.ms": 10})  # fmt: skip
            errors = []
            for i in range(3000):
                producer.produce("t", value=b"%d" % i, key=b"k%d" % (i % 40),
                                 on_delivery=lambda err, msg: err and errors.append(err))  # fmt: skip
                producer.poll(0)
            assert producer.flush(60) == 0
            assert not errors, errors[:3]
    finally:
        proxy.close()
    assert proxy.drops > 0  # replies were lost, and retried
    admin = Admin(url)
    stored = {p: [int(m.value) for m in admin.read_records(TopicPartition("t", p), 0, 10_000)] for p in range(4)}
    assert sorted(v for vs in stored.values() for v in vs) == list(range(3000))  # once each
    for values in stored.values():
        assert values == sorted(values)  # in the order sent
