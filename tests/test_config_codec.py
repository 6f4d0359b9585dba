"""Option groups validate when built; records survive the trip into stream fields and back."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facade.codec import HEADER_PREFIX, KEY, TS, VALUE, decode, encode, to_bytes
from facade.config import ConsumerConfig, ProducerConfig, build, parse_acks
from facade.errors import ConfigError, MessageTooLargeError
from facade.records import CREATE_TIME, LOG_APPEND_TIME, Headers, Message

# --- ProducerConfig ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given_acks,stored", [("all", "all"), (-1, "all"), ("-1", "all"), (1, 1), ("1", 1), (0, 0), ("0", 0)]
)
def test_acks_normalised(given_acks, stored):
    assert ProducerConfig(acks=given_acks).acks == stored
    assert parse_acks(given_acks) == stored


@pytest.mark.parametrize("bad", [True, False, 2, -2, "ALL", "", "one", None, 1.0, 0.0, -1.0, [1]])
def test_bad_acks_refused(bad):
    with pytest.raises(ConfigError, match=r"acks must be 0, 1 or 'all'"):
        ProducerConfig(acks=bad)


def test_producer_defaults():
    c = ProducerConfig()
    assert c.acks == 1
    assert c.max_message_bytes == 1024 * 1024
    assert c.auto_create is False


@pytest.mark.parametrize(
    "option,value,says",
    [
        ("linger_ms", -1, "linger_ms must be between 0 and 60000, got -1"),
        ("linger_ms", 60_001, "between 0 and 60000"),
        ("linger_ms", 1.5, "linger_ms must be an integer, not float"),
        ("linger_ms", "5", "linger_ms must be an integer, not str"),
        ("linger_ms", True, "linger_ms must be an integer, not bool"),
        ("batch_size", 0, "batch_size must be between 1"),
        ("max_message_bytes", 0, "max_message_bytes must be between 1"),
        ("max_message_bytes", False, "must be an integer, not bool"),
        ("auto_create_partitions", 0, "between 1 and 1024"),
        ("auto_create_partitions", 1025, "between 1 and 1024"),
        ("metadata_max_age_ms", -1, "at least 0"),
        ("replica_timeout_ms", 0, "at least 1"),
        ("min_insync_replicas", 0, "between 1 and 100"),
        ("min_insync_replicas", True, "not bool"),
        ("auto_create", 1, "auto_create must be True or False"),
        ("auto_create", "yes", "auto_create must be True or False"),
    ],
)
def test_producer_bad_options(option, value, says):
    with pytest.raises(ConfigError) as info:
        ProducerConfig(**{option: value})
    assert says in str(info.value)


def test_producer_config_is_frozen():
    c = ProducerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.acks = 0  # type: ignore[misc]


def test_replace_revalidates():
    with pytest.raises(ConfigError):
        dataclasses.replace(ProducerConfig(), linger_ms=-5)
    assert dataclasses.replace(ProducerConfig(), acks="-1").acks == "all"


# --- ConsumerConfig ---------------------------------------------------------------------------


def test_consumer_defaults_are_kafkas():
    c = ConsumerConfig()
    assert c.auto_offset_reset == "latest"
    assert c.assignment_strategy == "cooperative-sticky"
    assert c.group_instance_id is None
    assert (c.session_timeout_ms, c.heartbeat_interval_ms, c.max_poll_interval_ms) == (45_000, 3000, 300_000)
    assert (c.enable_auto_commit, c.auto_commit_interval_ms) == (True, 5000)


@pytest.mark.parametrize(
    "options,says",
    [
        ({"auto_offset_reset": "smallest"}, "auto_offset_reset must be 'latest', 'earliest' or 'none'"),
        ({"auto_offset_reset": None}, "auto_offset_reset must be"),
        ({"session_timeout_ms": 99}, "session_timeout_ms must be between 100"),
        ({"session_timeout_ms": True}, "must be an integer, not bool"),
        ({"session_timeout_ms": 5000.0}, "must be an integer, not float"),
        ({"heartbeat_interval_ms": 9}, "heartbeat_interval_ms must be between 10"),
        ({"session_timeout_ms": 1000, "heartbeat_interval_ms": 1000}, "between 10 and 999"),
        ({"max_poll_interval_ms": 50}, "max_poll_interval_ms must be at least 100"),
        ({"enable_auto_commit": 1}, "enable_auto_commit must be True or False"),
        ({"auto_commit_interval_ms": -1}, "auto_commit_interval_ms must be at least 0"),
        ({"max_poll_records": 0}, "max_poll_records must be between 1"),
        ({"assignment_strategy": "sticky"}, "'cooperative-sticky', 'range' or 'roundrobin', got 'sticky'"),
        ({"group_instance_id": ""}, "invalid group_instance_id name '': it is empty"),
        ({"group_instance_id": "a|b"}, "contains '|'"),  # '|' separates member and generation in tokens
        ({"group_instance_id": "x" * 250}, "250 characters"),
        ({"group_instance_id": 7}, "group_instance_id name must be a string"),
        ({"metadata_max_age_ms": -1}, "metadata_max_age_ms must be at least 0"),
    ],
)
def test_consumer_bad_options(options, says):
    with pytest.raises(ConfigError) as info:
        ConsumerConfig(**options)
    assert says in str(info.value)


def test_consumer_good_options():
    c = ConsumerConfig(
        auto_offset_reset="earliest", assignment_strategy="roundrobin", group_instance_id="m-1",
        session_timeout_ms=300, heartbeat_interval_ms=100,
    )  # fmt: skip
    assert (c.auto_offset_reset, c.assignment_strategy) == ("earliest", "roundrobin")
    assert c.group_instance_id == "m-1"
    for strategy in ("cooperative-sticky", "range", "roundrobin"):
        assert ConsumerConfig(assignment_strategy=strategy).assignment_strategy == strategy


# --- build() ----------------------------------------------------------------------------------


def test_build_from_defaults():
    assert build(ProducerConfig, None, {"linger_ms": 0}) == ProducerConfig(linger_ms=0)
    assert build(ConsumerConfig, None, {}) == ConsumerConfig()


def test_build_applies_options_over_a_config():
    base = ProducerConfig(acks=0)
    built = build(ProducerConfig, base, {"linger_ms": 7})
    assert (built.acks, built.linger_ms) == (0, 7)
    assert build(ProducerConfig, base, {}) is base


def test_build_refuses_unknown_options_and_lists_valid_ones():
    with pytest.raises(ConfigError) as info:
        build(ProducerConfig, None, {"lingerms": 5, "bogus": 1})
    message = str(info.value)
    assert "unknown option(s) bogus, lingerms" in message
    assert "linger_ms" in message and "acks" in message


def test_build_refuses_a_config_of_the_wrong_type():
    with pytest.raises(ConfigError, match="config must be a ProducerConfig, not ConsumerConfig"):
        build(ProducerConfig, ConsumerConfig(), {})


def test_build_validates_option_values():
    with pytest.raises(ConfigError, match="acks"):
        build(ProducerConfig, ProducerConfig(), {"acks": 3})


# --- codec ------------------------------------------------------------------------------------

header_names = st.text(min_size=1, max_size=20)
header_values = st.one_of(st.binary(max_size=50), st.text(max_size=50))
# Kafka headers: ordered (name, value) pairs in which a name may repeat.
headers_st = st.lists(st.tuples(st.sampled_from(["a", "b", "trace"]) | header_names, header_values), max_size=6)


def stored(fields: list[bytes], ts_delta: int | None = 0) -> list[bytes]:
    """What the server gives back for these fields: produce.lua puts "ts" after the value."""
    if ts_delta is None:
        return list(fields)
    at = 4 if fields[0] == KEY else 2
    return [*fields[:at], TS, str(ts_delta).encode(), *fields[at:]]


@given(st.none() | st.binary(max_size=100) | st.text(max_size=50), st.binary(max_size=200), headers_st, st.integers(-5, 500))
def test_round_trip(key, value, headers, delta):
    fields, size = encode(key, value, headers, 1 << 20)
    msg = decode("t", 3, b"1700000000000-5", stored(fields, delta))
    expected_key = None if key is None else to_bytes(key, "key")
    assert msg == Message(
        "t", 3, 5, expected_key, value, Headers((k, to_bytes(v, "h")) for k, v in headers), 1,
        1700000000000 - delta, CREATE_TIME,
    )  # fmt: skip
    assert size == len(expected_key or b"") + len(value) + sum(len(k.encode()) + len(to_bytes(v, "h")) for k, v in headers)


def test_a_record_without_a_create_time_has_its_append_time():
    msg = decode("t", 0, b"1700000000123-9", [KEY, b"k", VALUE, b"v"])
    assert (msg.offset, msg.timestamp_ms, msg.timestamp_type) == (9, 1700000000123, LOG_APPEND_TIME)
    msg = decode("t", 0, b"1700000000123-9", [VALUE, b"v", HEADER_PREFIX + b"h", b"x"])
    assert (msg.key, msg.timestamp_ms, msg.timestamp_type, msg.headers["h"]) == (None, 1700000000123, LOG_APPEND_TIME, b"x")


@given(st.text(max_size=50))
def test_str_values_are_utf8(text):
    fields, _ = encode(None, text, None, 1 << 20)
    assert decode("t", 0, "1-0", fields).value == text.encode("utf-8")


def test_field_layout():
    fields, size = encode(b"k", b"v", {"trace": "abc", "bin": b"\x00\xff"}, 100)
    assert fields == [
        KEY, b"k", VALUE, b"v", HEADER_PREFIX + b"trace", b"abc", HEADER_PREFIX + b"bin", b"\x00\xff"
    ]  # fmt: skip
    assert size == 1 + 1 + len("trace") + 3 + len("bin") + 2


def test_repeated_header_names_keep_every_value_in_order():
    fields, _ = encode(None, b"v", [("a", "1"), ("b", b"2"), ("a", "3")], 100)
    msg = decode("t", 0, "1-0", stored(fields))
    assert list(msg.headers) == [("a", b"1"), ("b", b"2"), ("a", b"3")]
    assert (msg.headers.get("a"), msg.headers.get_all("a"), msg.headers["b"], "a" in msg.headers) == (b"3", [b"1", b"3"], b"2", True)
    assert msg.headers.get("zz", b"default") == b"default" and "zz" not in msg.headers
    with pytest.raises(KeyError):
        msg.headers["zz"]
    assert dict(msg.headers) == {"a": b"3", "b": b"2"}


def test_key_none_has_no_key_field_and_empty_key_is_kept():
    fields, _ = encode(None, b"", None, 10)
    assert fields == [VALUE, b""]
    assert decode("t", 0, "1-0", fields).key is None
    fields, _ = encode(b"", b"v", None, 10)
    assert decode("t", 0, "1-0", stored(fields)).key == b""


def test_empty_value_round_trips():
    msg = decode("t", 0, b"5-1", stored(encode(b"k", b"", {}, 10)[0]))
    assert (msg.key, msg.value, list(msg.headers)) == (b"k", b"", [])


def test_unicode_and_binary_headers():
    headers = {"名前": "värde ✓", "raw": bytes(range(256)), "key": b"not-the-key", "value": b"nor-the-value", "ts": b"9"}
    fields, _ = encode(b"k", b"v", headers, 10_000)
    msg = decode("t", 0, "1-0", stored(fields, 1))
    assert (msg.key, msg.value, msg.timestamp_ms) == (b"k", b"v", 0)
    assert dict(msg.headers) == {k: to_bytes(v, "h") for k, v in headers.items()}


def test_bytearray_and_memoryview_accepted():
    fields, _ = encode(bytearray(b"k"), memoryview(b"v"), {"h": bytearray(b"x")}, 10)
    assert fields == [KEY, b"k", VALUE, b"v", b"h:h", b"x"]


def test_decode_keeps_delivery_count_and_reads_the_offset_from_the_id():
    msg = decode("t", 1, "42-7", [VALUE, b"v"], count=3)
    assert (msg.offset, msg.delivery_count, msg.topic_partition.partition, msg.timestamp_ms) == (7, 3, 1, 42)


def test_decode_ignores_unknown_fields():
    msg = decode("t", 0, "1-0", [b"other", b"x", VALUE, b"v"])
    assert (msg.key, msg.value, list(msg.headers)) == (None, b"v", [])


def test_size_exactly_max_is_accepted():
    _, size = encode(b"kk", b"v" * 6, {"h": b"x"}, 10)
    assert size == 10


@pytest.mark.parametrize(
    "key,value,headers",
    [(None, b"v" * 11, None), (b"k" * 6, b"v" * 5, None), (b"k", b"v", {"h" * 5: b"x" * 4})],
)
def test_max_plus_one_is_too_large(key, value, headers):
    with pytest.raises(MessageTooLargeError) as info:
        encode(key, value, headers, 10)
    assert "11 bytes exceeds max_message_bytes=10" in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_size_counts_utf8_bytes_not_characters():
    encode(None, "é" * 5, None, 10)
    with pytest.raises(MessageTooLargeError):
        encode(None, "é" * 5 + "x", None, 10)


@pytest.mark.parametrize(
    "key,value,headers,says",
    [
        (1, b"v", None, "key must be bytes or str, not int"),
        (b"k", 1.5, None, "value must be bytes or str, not float"),
        (b"k", {"a": 1}, None, "value must be bytes or str, not dict"),
        (b"k", b"v", {"h": 3}, "header 'h' must be bytes or str, not int"),
        (b"k", b"v", {"": b"x"}, "header names must be non-empty strings"),
        (b"k", b"v", {b"h": b"x"}, "header names must be non-empty strings"),
        (b"k", b"v", [("h", b"x", 3)], "headers must be (name, value) pairs"),
        (b"k", b"v", "h=x", "headers must be a mapping or a sequence of (name, value) pairs"),
    ],
)
def test_wrong_types_raise_config_error(key, value, headers, says):
    with pytest.raises(ConfigError) as info:
        encode(key, value, headers, 100)
    assert says in str(info.value)
    assert not isinstance(info.value, MessageTooLargeError)
