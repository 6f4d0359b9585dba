"""Names are Kafka's legal set, and the key layout keeps each partition (and each group) in one slot."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from facade import keys
from facade.errors import ConfigError, InvalidNameError

LEGAL = string.ascii_letters + string.digits + "._-"
names = st.text(alphabet=LEGAL, min_size=1, max_size=249).filter(lambda n: n not in (".", ".."))


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster uses (cluster spec, appendix A)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    """Redis Cluster hash slot of ``key``: CRC16 of the first non-empty {tag}, else of the key."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end != -1 and end != start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % 16384


def tag(key: str) -> str:
    return key[key.index("{") + 1 : key.index("}")]


def test_slot_function_matches_known_values():
    # Values from the Redis cluster spec / redis-py; checks our CRC16 before we rely on it.
    assert crc16_xmodem(b"123456789") == 0x31C3
    for key in ("foo", "user:{1000}:x", "{}abc", "a{b}c{d}", "facade:{t/0}:log"):
        assert slot(key) == key_slot(key.encode())


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "A", "0", "orders", "Orders.v2", "my_topic-1", "__consumer_offsets", "a" * 249, "...", ".a"],
)
def test_legal_names_accepted(name):
    assert keys.validate_name(name) == name
    assert keys.validate_name(name, "group") == name


@given(names)
def test_any_name_from_the_legal_set_is_accepted(name):
    assert keys.validate_name(name) == name


@pytest.mark.parametrize(
    "name,says",
    [
        ("", "is empty"),
        ("a" * 250, "250 characters"),
        ("a{b", "'{'"),
        ("a}b", "'}'"),
        ("a/b", "'/'"),
        ("a b", "' '"),
        ("caf\u00e9", "'\u00e9'"),
        ("\u0661\u0662", "'\u0661'"),  # Arabic-Indic digits: \d would take them, Kafka does not
        ("abc\n", "'\\n'"),
        ("a:b", "':'"),
        ("a*", "'*'"),
    ],
)
def test_illegal_names_refused_with_what_is_allowed(name, says):
    with pytest.raises(InvalidNameError) as info:
        keys.validate_name(name)
    message = str(info.value)
    assert says in message
    assert "A-Z a-z 0-9 . _ -" in message
    assert "249" in message


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_names_are_reserved(name):
    with pytest.raises(InvalidNameError, match="reserved"):
        keys.validate_name(name)


@pytest.mark.parametrize("name", [None, 3, b"orders", ["orders"], 1.5])
def test_non_str_names_refused(name):
    with pytest.raises(InvalidNameError, match="must be a string"):
        keys.validate_name(name)


def test_message_names_what_was_validated():
    with pytest.raises(InvalidNameError, match="invalid group name"):
        keys.validate_name("a b", "group")


def test_invalid_name_is_a_config_error():
    with pytest.raises(ConfigError):
        keys.validate_name("")
    assert issubclass(InvalidNameError, ValueError)


def test_long_bad_name_is_truncated_in_the_message():
    with pytest.raises(InvalidNameError) as info:
        keys.validate_name("x" * 5000)
    assert len(str(info.value)) < 300


@given(st.text(max_size=300))
def test_validate_name_accepts_exactly_the_legal_set(name):
    legal = 1 <= len(name) <= 249 and all(c in LEGAL for c in name) and name not in (".", "..")
    if legal:
        assert keys.validate_name(name) == name
    else:
        with pytest.raises(InvalidNameError):
            keys.validate_name(name)


# --- partition counts ------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 1024])
def test_partition_counts_accepted(count):
    assert keys.validate_partitions(count) == count


@pytest.mark.parametrize("count", [0, -1, 1025, 10**9])
def test_partition_counts_out_of_range(count):
    with pytest.raises(ConfigError, match="between 1 and 1024"):
        keys.validate_partitions(count)


@pytest.mark.parametrize("count", [True, False, 2.0, "3", None])
def test_partition_counts_must_be_int(count):
    with pytest.raises(ConfigError, match="must be an integer"):
        keys.validate_partitions(count)


# --- key layout and cluster slots ------------------------------------------------------------


@given(names, st.integers(min_value=0, max_value=1023))
def test_keys_of_one_partition_share_a_slot(topic, partition):
    ks = keys.partition_keys(topic, partition)
    assert ks[0] == keys.stream(topic, partition)
    assert keys.owners(topic, partition) in ks
    assert set(keys.produce_keys(topic, partition)) <= set(ks)  # deleting a topic removes them all
    assert len(set(ks)) == len(ks)
    assert len({slot(k) for k in ks}) == 1
    assert len({tag(k) for k in ks}) == 1


@given(names, st.integers(min_value=2, max_value=64))
def test_partitions_of_a_topic_have_distinct_tags(topic, count):
    tags = {tag(keys.stream(topic, p)) for p in range(count)}
    assert len(tags) == count


def test_partitions_spread_over_slots():
    slots = {slot(keys.stream("orders", p)) for p in range(64)}
    assert len(slots) > 50  # distinct tags hash apart (a collision or two is fine)


@given(names)
def test_group_keys_share_a_slot(group):
    ks = keys.group_keys(group)
    assert ks == (keys.group_state(group), keys.group_members(group), keys.group_deadlines(group))
    assert len(set(ks)) == 3
    assert len({slot(k) for k in ks}) == 1


def test_registries_share_the_meta_slot():
    assert slot(keys.TOPICS) == slot(keys.GROUPS)
    assert keys.TOPICS != keys.GROUPS


def test_every_key_has_the_prefix():
    for k in (*keys.partition_keys("t", 0), *keys.produce_keys("t", 0), *keys.group_keys("g"), keys.TOPICS,
              keys.GROUPS):
        assert k.startswith(keys.PREFIX + ":{")


@given(names, st.integers(0, 1023), names, st.integers(0, 1023), names)
def test_keys_never_collide(t1, p1, t2, p2, group):
    a = set(keys.partition_keys(t1, p1))
    b = set(keys.partition_keys(t2, p2))
    g = set(keys.group_keys(group))
    if (t1, p1) != (t2, p2):
        assert not a & b
    assert not a & g
    assert not (a | g) & {keys.TOPICS, keys.GROUPS}


def test_topic_g_and_numeric_group_share_a_tag_but_no_key():
    # Topic "g" partition 5 and group "5" both hash on "{g/5}": same slot, but distinct key names.
    part, group = set(keys.partition_keys("g", 5)), set(keys.group_keys("5"))
    assert not part & group
