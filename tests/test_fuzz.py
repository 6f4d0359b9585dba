"""Property tests (hypothesis): record encoding through a real server, keyed placement across
producers, URL parsing, and the CLI's input parsing.

The server tests share one module-level topic on the session server (not flushed between
examples); each example is small, and max_examples stays modest so the module runs in seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from click.testing import CliRunner
from facade.cli import main
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from kafka_reference import kafka_partition

from facade import Admin, Consumer, InvalidUrlError, Producer, UnsupportedError, keys, partition_for_key
from facade.url import BrokerUrl, parse_url, redact

FAST = {"heartbeat_interval_ms": 50, "session_timeout_ms": 3000}
SERVER = settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
KEYED_PARTITIONS = 16


@pytest.fixture(scope="module")
def names(redis_server) -> Iterator[dict[str, str]]:
    """Fresh topics for this module on the session server: one partition, and 16 partitions."""
    run = uuid.uuid4().hex[:8]
    made = {"one": f"fuzz-one-{run}", "keyed": f"fuzz-keyed-{run}", "cli": f"fuzz-cli-{run}"}
    with Admin(redis_server.url) as a:
        a.create_topic(made["one"], 1)
        a.create_topic(made["keyed"], KEYED_PARTITIONS)
        a.create_topic(made["cli"], 1)
    try:
        yield made
    finally:
        with Admin(redis_server.url) as a:
            for name in made.values():
                a.delete_topic(name)


@pytest.fixture(scope="module")
def raw(redis_server) -> Iterator[redis.Redis]:
    with redis.Redis(port=redis_server.port) as r:
        yield r


# ---------------------------------------------------------------------------------------------
# Records survive the trip through the server exactly


header_names = st.text(min_size=1, max_size=20)
header_values = st.one_of(st.binary(max_size=50), st.text(max_size=50))
records = st.tuples(
    st.one_of(st.none(), st.binary(max_size=100), st.text(max_size=30)),  # key (b"" is a key, None is none)
    st.one_of(st.binary(max_size=300), st.text(max_size=100)),  # value, possibly empty
    st.dictionaries(header_names, header_values, max_size=5),
)


def _bytes(v: bytes | str) -> bytes:
    return v.encode() if isinstance(v, str) else v


@pytest.fixture(scope="module")
def pipe(redis_server, names) -> Iterator[tuple[Producer, Consumer]]:
    with (
        Producer(redis_server.url, linger_ms=0) as p,
        Consumer(names["one"], "fuzz", redis_server.url, auto_offset_reset="earliest", **FAST) as c,
    ):
        yield p, c


@SERVER
@given(records)
def test_records_round_trip_exactly(pipe, names, record):
    producer, consumer = pipe
    key, value, headers = record
    md = producer.send_and_wait(names["one"], value, key=key, headers=headers)
    got = []
    for _ in range(200):
        got += consumer.poll(timeout_ms=20)
        if got:
            break
    consumer.commit()
    assert len(got) == 1
    m = got[0]
    assert (m.partition, m.offset) == (md.partition, md.offset)
    assert m.key == (None if key is None else _bytes(key))
    assert m.value == _bytes(value)
    assert dict(m.headers) == {n: _bytes(v) for n, v in headers.items()}


# ---------------------------------------------------------------------------------------------
# One key, one partition: whichever producer sends it (and Kafka agrees)


@SERVER
@given(st.one_of(st.binary(max_size=64), st.text(max_size=32)))
def test_same_key_same_partition_across_producers(redis_server, names, key):
    placed = set()
    for options in ({}, {"idempotent": False, "linger_ms": 0}, {"acks": "all", "batch_size": 1}):
        with Producer(redis_server.url, **options) as p:
            placed.add(p.send_and_wait(names["keyed"], b"v", key=key).partition)
    expected = kafka_partition(_bytes(key), KEYED_PARTITIONS)
    assert placed == {expected} == {partition_for_key(_bytes(key), KEYED_PARTITIONS)}


# ---------------------------------------------------------------------------------------------
# URLs: parsing refuses with InvalidUrlError/UnsupportedError only, and never shows a password


url_like = st.one_of(
    st.text(max_size=60),
    st.from_regex(
        r"(redis|rediss|unix|redis\+sentinel|rediss\+sentinel|redis\+cluster|http|REDIS)://[ -~]{0,40}",
        fullmatch=True,
    ),
    st.builds(
        lambda scheme, rest: f"{scheme}://{rest}",
        st.sampled_from(["redis", "rediss", "unix", "redis+sentinel", "redis+cluster"]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
)


def _known_gap(text: str) -> bool:
    """URLs test_url_parsing_gaps covers (bugs reported, not fixed yet): kept out of the properties."""
    rest = text.partition("://")[2]
    return "[" in rest or "]" in rest or "@" in rest.partition("/")[2]


@settings(max_examples=300)
@given(url_like)
def test_parse_refuses_only_with_url_errors(text):
    assume(not _known_gap(text))
    try:
        parsed = parse_url(text)
    except (InvalidUrlError, UnsupportedError):
        return
    assert isinstance(parsed, BrokerUrl)
    if parsed.scheme.endswith("cluster"):
        return  # a cluster client connects to its nodes as it is built: never dial fuzzed hosts
    try:
        admin = Admin(text)  # builds the client too (connects to nothing)
    except (InvalidUrlError, UnsupportedError):
        return
    admin.close()


@settings(max_examples=300)
@given(
    st.sampled_from(
        ["redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel", "redis+cluster", "http"]
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@"), max_size=12),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="@/"), min_size=1, max_size=12),
    st.text(max_size=30),
)
def test_redaction_never_leaks_the_password(scheme, user, secret, rest):
    password = f"Pw{secret}"
    url = f"{scheme}://{user}:{password}@{rest}"
    assume(password not in f"{scheme}://{user}:" and password not in rest and not _known_gap(url))
    assert password not in redact(url)
    try:
        parsed = parse_url(url)
    except (InvalidUrlError, UnsupportedError) as exc:
        assert password not in str(exc)
        return
    assert password not in repr(parsed) and password not in parsed.redacted()


@pytest.mark.parametrize(
    "url,secret",
    [
        ("redis://user:se/cret@host:6379", "cret"),  # an unencoded "/" in the password
        ("unix://user:se/cret@/tmp/x.sock", "cret"),
        ("redis://user:p@[::1", None),  # an unclosed IPv6 bracket
        ("redis://[", None),
    ],
)
def test_url_parsing_gaps(url, secret):
    """Found by the properties above; each should be an InvalidUrlError that shows no password."""
    try:
        parsed = parse_url(url)
    except InvalidUrlError as exc:
        if secret is None or secret not in str(exc):
            return
        pytest.xfail(f"the message shows part of the password: {exc}")
    except ValueError as exc:
        pytest.xfail(f"a bare {type(exc).__name__} escapes parse_url: {exc}")
    else:
        if secret is not None and secret in repr(parsed):
            pytest.xfail(f"the password ends up in the socket path: {parsed!r}")
        raise AssertionError(f"{url} was accepted: {parsed!r}")


# ---------------------------------------------------------------------------------------------
# CLI input parsing: exit status 0, 1 or 2, never a traceback


def _cli(url: str, *args: str, input: str | None = None):
    result = CliRunner().invoke(main, ["--url", url, *args], input=input)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert result.stderr.strip().splitlines()[-1].startswith(("error: ", "Error: ")), result.stderr
    return result


def _last_entry(raw: redis.Redis, topic: str) -> list[tuple[bytes, bytes]]:
    """The last record's fields in stored order (a header name may repeat), without ``ts`` (the
    create time's distance from the append time, which varies)."""
    plain = redis.Redis(connection_pool=raw.connection_pool)  # its own reply callbacks
    plain.set_response_callback("XREVRANGE", lambda reply, **_: reply)
    flat = plain.xrevrange(keys.stream(topic, 0), count=1)[0][1]
    return [(k, v) for k, v in zip(flat[::2], flat[1::2]) if k != b"ts"]


@settings(max_examples=50)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=3))
@example(["0=", "0="])  # a repeated header is kept, as Kafka keeps it
@example(["a=1", "a=2"])
def test_cli_header_option(redis_server, names, raw, headers):
    result = _cli(
        redis_server.url, "produce", names["cli"], "v", *[a for h in headers for a in ("--header", h)]
    )
    well_formed = all("=" in h and not h.startswith("=") for h in headers)
    assert result.exit_code == (0 if well_formed else 2), result.output
    if well_formed:
        expected = [(b"h:" + k.encode(), v.encode()) for k, v in (h.split("=", 1) for h in headers)]
        assert _last_entry(raw, names["cli"]) == [(b"value", b"v"), *expected]  # repeats kept, in order


line_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=15)


@settings(max_examples=50)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=3),
       st.lists(line_text, min_size=1, max_size=4))  # fmt: skip
@example("\x1e", ["k\x1ev", "no separator here"])  # a separator str.splitlines() breaks at, in the error
def test_cli_key_separator(redis_server, names, raw, separator, lines):
    before = raw.xlen(keys.stream(names["cli"], 0))
    result = _cli(
        redis_server.url, "produce", names["cli"], "--key-separator", separator, input="\n".join(lines) + "\n"
    )
    if separator == "":
        assert result.exit_code == 2
        return
    sent = 0
    for line in lines:
        if separator not in line:
            break
        sent += 1
    assert result.exit_code == (0 if sent == len(lines) else 1), result.output
    stored = raw.xrange(keys.stream(names["cli"], 0))[before:]
    assert [(e[1][b"key"], e[1][b"value"]) for e in stored] == [
        tuple(p.encode() for p in line.split(separator, 1)) for line in lines[:sent]
    ]


@settings(max_examples=50)
@given(st.text(max_size=12).filter(lambda f: f not in ("text", "json")))
def test_cli_consume_format_choice(redis_server, names, fmt):
    result = _cli(redis_server.url, "consume", names["cli"], "--group", "g", "--format", fmt)
    assert result.exit_code == 2


@settings(max_examples=50)
@given(st.text(max_size=20), st.one_of(st.integers(-5, 40).map(str), st.text(max_size=5)))
def test_cli_topic_create_arguments(redis_server, raw, name, partitions):
    result = _cli(redis_server.url, "topics", "create", name, "--partitions", partitions)
    if result.exit_code == 0:
        with Admin(redis_server.url) as a:
            assert a.topic(name).partitions == int(partitions)
            a.delete_topic(name)
