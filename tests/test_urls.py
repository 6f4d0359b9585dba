"""One URL parser for every deployment shape, and no password ever printed."""

from __future__ import annotations

import os
import string
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from facade._sync.connect import resolve_url
from facade.errors import ConfigError, InvalidUrlError, UnsupportedError
from facade.url import BrokerUrl, TlsOptions, parse_url, redact


@pytest.mark.parametrize(
    "url,scheme,hosts,db",
    [
        ("redis://localhost", "redis", (("localhost", 6379),), 0),
        ("redis://localhost:6380", "redis", (("localhost", 6380),), 0),
        ("redis://h:6380/2", "redis", (("h", 6380),), 2),
        ("redis://h:6380/2/", "redis", (("h", 6380),), 2),
        ("redis://h?db=4", "redis", (("h", 6379),), 4),
        ("rediss://cache.example.com", "rediss", (("cache.example.com", 6379),), 0),
        ("rediss://cache.example.com:6390/1", "rediss", (("cache.example.com", 6390),), 1),
        ("redis://10.0.0.5:7000", "redis", (("10.0.0.5", 7000),), 0),
        ("redis://[::1]:6380", "redis", (("::1", 6380),), 0),
        ("redis://[::1]", "redis", (("::1", 6379),), 0),
        ("  redis://h:1  ", "redis", (("h", 1),), 0),
        ("REDIS://h:1", "redis", (("h", 1),), 0),
        ("redis://h:65535", "redis", (("h", 65535),), 0),
    ],
)
def test_tcp_urls(url, scheme, hosts, db):
    b = parse_url(url)
    assert (b.scheme, b.hosts, b.db, b.path) == (scheme, hosts, db, None)
    assert b.username is None and b.password is None
    assert b.tls == (scheme == "rediss")


def test_user_and_password():
    b = parse_url("redis://alice:s3cret@h:6380/1")
    assert (b.username, b.password, b.hosts, b.db) == ("alice", "s3cret", (("h", 6380),), 1)


def test_password_only_forms():
    assert (parse_url("redis://:pw@h").username, parse_url("redis://:pw@h").password) == (None, "pw")
    # redis-py's shorthand: redis://secret@host is a password for the default user.
    b = parse_url("redis://secret@h")
    assert (b.username, b.password) == (None, "secret")


@pytest.mark.parametrize(
    "password", ["p@ss", "p:ss", "p/ss", "p?ss", "p#ss", "p%ss", "p ss", "pässwörd", "@:/?#[]%"]
)
def test_percent_encoded_password(password):
    b = parse_url(f"redis://bob:{quote(password, safe='')}@h:1/2")
    assert (b.username, b.password, b.hosts, b.db) == ("bob", password, (("h", 1),), 2)


def test_raw_at_sign_in_password_splits_on_the_last_one():
    b = parse_url("redis://u:p@ss@h:1")
    assert (b.username, b.password, b.hosts) == ("u", "p@ss", (("h", 1),))


def test_percent_encoded_user():
    assert parse_url("redis://us%3Aer:pw@h").username == "us:er"


@pytest.mark.parametrize(
    "url,path,db",
    [
        ("unix:///tmp/redis.sock", "/tmp/redis.sock", 0),
        ("unix:///tmp/redis.sock?db=3", "/tmp/redis.sock", 3),
        ("unix:///var/run/redis/redis-server.sock", "/var/run/redis/redis-server.sock", 0),
        ("unix:///tmp/with%20space.sock", "/tmp/with space.sock", 0),
    ],
)
def test_unix_urls(url, path, db):
    b = parse_url(url)
    assert (b.scheme, b.path, b.db, b.hosts) == ("unix", path, db, ())
    assert not b.tls


def test_unix_url_with_credentials():
    b = parse_url("unix://alice:pw@/tmp/redis.sock?db=2")
    assert (b.username, b.password, b.path, b.db) == ("alice", "pw", "/tmp/redis.sock", 2)


def test_sentinel_url():
    b = parse_url("redis+sentinel://h1:1,h2:2/mymaster")
    assert (b.scheme, b.hosts, b.service) == ("redis+sentinel", (("h1", 1), ("h2", 2)), "mymaster")


def test_sentinel_default_port_is_26379():
    assert parse_url("redis+sentinel://h1,h2:2/m").hosts == (("h1", 26379), ("h2", 2))


def test_cluster_url():
    b = parse_url("redis+cluster://h1:1,h2:2")
    assert (b.scheme, b.hosts, b.service) == ("redis+cluster", (("h1", 1), ("h2", 2)), None)
    assert parse_url("redis+cluster://a,[::1]:7001").hosts == (("a", 6379), ("::1", 7001))


@pytest.mark.parametrize(
    "url,says",
    [
        ("localhost:6379", "not a URL"),
        ("", "not a URL"),
        ("http://h", "unknown URL scheme 'http'"),
        ("tcp://h:1", "unknown URL scheme"),
        ("redis://h:0", "bad port"),
        ("redis://h:65536", "bad port"),
        ("redis://h:-1", "bad port"),
        ("redis://h:abc", "bad port"),
        ("redis://h:", "bad port"),
        ("redis://h:+1", "bad port"),
        ("redis://h: 1", "bad port"),
        ("redis://h:6_379", "bad port"),
        ("redis://[::1]:x", "bad port"),
        ("redis://", "no host"),
        ("redis://:6379", "empty host"),
        ("redis:///0", "no host"),
        ("redis+cluster://h1:1,,h2:2", "empty host"),
        ("redis+cluster://h1:1/3", "takes no path"),
        ("rediss+cluster://h1:1,h2:2/0", "takes no path"),
        ("redis+sentinel://h1:1,h2:2", "no service name"),
        ("redis+sentinel://h1:1/", "no service name"),
        ("redis://h1:1,h2:2", "takes one host"),
        ("rediss://h1,h2", "takes one host"),
        ("redis://h/x", "bad database number"),
        ("redis://h/-1", "bad database number"),
        ("redis://h/\u00b2", "bad database number"),
        ("unix:///tmp/s.sock?db=x", "bad database number"),
        ("unix://", "no socket path"),
    ],
)
def test_refusals(url, says):
    with pytest.raises(InvalidUrlError) as info:
        parse_url(url)
    assert says in str(info.value)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("value", [None, 6379, b"redis://h", ["redis://h"]])
def test_non_string_url(value):
    with pytest.raises(InvalidUrlError, match="must be a string"):
        parse_url(value)


@pytest.mark.parametrize(
    "template",
    [
        "{u}:{p}@localhost:6379",  # scheme forgotten
        "redis:/{u}:{p}@h",  # one slash
        "redis//{u}:{p}@h",
        "http://{u}:{p}@h",
        "{u}:{p}@h://x",
        "redis://{u}:{p}@h:99999",
        "redis://{u}:{p}@h:abc",
        "redis://{u}:{p}@",
        "redis://{u}:{p}@h1:1,h2:2",
        "redis://{u}:{p}@h/notadb",
        "redis+sentinel://{u}:{p}@h1:1,h2:2",
        "redis+cluster://{u}:{p}@h1:1,,h2",
        "unix://{u}:{p}@",
        "unix://{u}:{p}@/tmp/s.sock?db=x",
    ],
)
@pytest.mark.parametrize("encode", [False, True])
def test_refusals_never_show_the_password(template, encode):
    password = "Hunter2!xyz"
    shown = quote(password, safe="") if encode else password
    url = template.format(u="alice", p=shown)
    with pytest.raises(InvalidUrlError) as info:
        parse_url(url)
    message = str(info.value)
    assert password not in message and shown not in message, message
    assert "Hunter2" not in message


def test_repr_never_shows_the_password():
    b = parse_url("redis://alice:Hunter2@h:1")
    assert "Hunter2" not in repr(b)
    assert "Hunter2" not in str(b)
    assert b.redacted() == "redis://alice:***@h:1"


@pytest.mark.parametrize(
    "url,expected",
    [
        ("redis://h:1", "redis://h:1"),
        ("redis://alice:pw@h:1/2", "redis://alice:***@h:1/2"),
        ("redis://:pw@h", "redis://:***@h"),
        ("redis://pw@h", "redis://***@h"),
        ("rediss://u:p@ss@h", "rediss://u:***@h"),
        ("unix://u:pw@/tmp/s.sock?db=1", "unix://u:***@/tmp/s.sock?db=1"),
        ("redis+sentinel://u:pw@h1:1,h2:2/m", "redis+sentinel://u:***@h1:1,h2:2/m"),
        ("u:pw@h:1", "u:***@h:1"),
        ("not a url", "not a url"),
    ],
)
def test_redact(url, expected):
    assert redact(url) == expected


def test_client_kwargs_tcp():
    kw = parse_url("redis://alice:pw@h:6380/3").client_kwargs()
    assert (kw["host"], kw["port"], kw["db"], kw["username"], kw["password"], kw["ssl"]) == (
        "h", 6380, 3, "alice", "pw", False
    )
    assert kw["socket_timeout"] > 0 and kw["socket_connect_timeout"] > 0


def test_client_kwargs_tls():
    assert parse_url("rediss://h").client_kwargs()["ssl"] is True


def test_client_kwargs_unix():
    kw = parse_url("unix:///tmp/s.sock?db=2").client_kwargs()
    assert (kw["unix_socket_path"], kw["db"]) == ("/tmp/s.sock", 2)
    assert "host" not in kw and "socket_connect_timeout" not in kw


@pytest.mark.parametrize("url", ["redis+sentinel://h1:1,h2:2/mymaster", "redis+cluster://h1:1,h2:2"])
def test_client_kwargs_refuses_sentinel_and_cluster(url):
    # Such URLs name several servers: create_client() builds a sentinel or cluster client instead.
    with pytest.raises(UnsupportedError, match="create_client"):
        parse_url(url).client_kwargs()


def test_resolve_url_prefers_the_argument(monkeypatch):
    monkeypatch.setenv("FACADE_URL", "redis://env-host:1")
    assert resolve_url("redis://arg-host:2").hosts == (("arg-host", 2),)


def test_resolve_url_reads_facade_url(monkeypatch):
    monkeypatch.setenv("FACADE_URL", "redis://env-host:1")
    assert resolve_url().hosts == (("env-host", 1),)


def test_resolve_url_refuses_a_bad_facade_url(monkeypatch):
    monkeypatch.setenv("FACADE_URL", "localhost:6379")
    with pytest.raises(InvalidUrlError):
        resolve_url()


# --- properties -------------------------------------------------------------------------------

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)
users = st.text(alphabet=string.ascii_letters + string.digits + "_-.", max_size=12)
passwords = st.text(min_size=1, max_size=40).filter(lambda p: "\x00" not in p)


@given(st.sampled_from(["redis", "rediss", "unix", "redis+sentinel"]), users, passwords, hosts,
       st.integers(1, 65535), st.booleans())
def test_redact_never_leaks_a_password(scheme, user, password, host, port, encode):
    shown = quote(password, safe="") if encode else password
    tail = f"{host}:{port}/0" if scheme != "unix" else "/tmp/s.sock"
    url = f"{scheme}://{user}:{shown}@{tail}"
    redacted = redact(url)
    assume(shown not in f"{scheme}://{user}:***@{tail}")  # a password like "0" also appears in the tail
    assert shown not in redacted
    assert redacted == f"{scheme}://{user}:***@{tail}"


@given(users, passwords, hosts, st.integers(1, 65535), st.integers(0, 15))
def test_percent_encoded_credentials_round_trip(user, password, host, port, db):
    url = f"redis://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"
    b = parse_url(url)
    assert (b.username or "", b.password, b.hosts, b.db) == (user, password, ((host, port),), db)
    assert isinstance(b, BrokerUrl)
    assert b.redacted() == f"redis://{quote(user, safe='')}:***@{host}:{port}/{db}"


def test_unix_socket_path_may_contain_at_sign():
    from facade.url import parse_url

    u = parse_url("unix:///tmp/a@b.sock")
    assert (u.path, u.password) == ("/tmp/a@b.sock", None)
    v = parse_url("unix://user:pw@/tmp/a@b.sock")
    assert (v.path, v.username, v.password) == ("/tmp/a@b.sock", "user", "pw")


# --- TLS options (docs/tls.md) ------------------------------------------------------------------


# A self-signed certificate and its key (made once with openssl; never used to connect: the
# parser loads TLS files as the handshake would, to report a file of the wrong kind at once).
CERT = """-----BEGIN CERTIFICATE-----
MIIBhDCCASmgAwIBAgIUcz96XNKfbP2MJqi8pz56VdWs+iMwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLZmFjYWRlLXRlc3QwIBcNMjYxMTI5MTY1NTUxWhgPMjEyNjEx
MDUxNjU1NTFaMBYxFDASBgNVBAMMC2ZhY2FkZS10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEn25JogLH11gh6SYgSeKCaopcu/VLI0u8SGXf58f3EVMMabdP
5f+EB7j14nLkfm9KF4FaQajL1bHRJJRzsjsUEaNTMFEwHQYDVR0OBBYEFKAi/Erv
PAQxKgr9ndH0TkZwlFqSMB8GA1UdIwQYMBaAFKAi/ErvPAQxKgr9ndH0TkZwlFqS
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAJV1evDwytQBLmkz
36AEA0o0VZu0cIEMdlLLCnm1Y7Q7AiEA4wmQ7lbBjsDXe8e14WmdJfMz0fQrbg0W
cNopDz5MxaE=
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbjB7kEknPfRQwCc7
qvb/a64x98VhFyViWs2IcN7ves2hRANCAASfbkmiAsfXWCHpJiBJ4oJqily79Usj
S7xIZd/nx/cRUwxpt0/l/4QHuPXicuR+b0oXgVpBqMvVsdEklHOyOxQR
-----END PRIVATE KEY-----
"""


@pytest.fixture
def pem(tmp_path):
    """Three readable PEM files: a CA bundle, a client certificate and its key."""
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    files["ca"].write_text(CERT)
    files["cert"].write_text(CERT)
    files["key"].write_text(KEY)
    return files


def test_tls_files_of_the_wrong_kind_are_refused_for_what_they_are(pem, tmp_path):
    """Not reported later as a refused handshake that blames the client certificate."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(InvalidUrlError, match=rf"ssl_ca_certs={junk}: not a PEM file of CA certificates \(no certificate"):
        parse_url(f"rediss://h?ssl_ca_certs={junk}")
    with pytest.raises(InvalidUrlError, match="not a PEM certificate and its unencrypted private key"):
        parse_url(f"rediss://h?ssl_certfile={pem['cert']}&ssl_keyfile={junk}")
    with pytest.raises(InvalidUrlError, match="not a PEM certificate and its unencrypted private key"):
        parse_url(f"rediss://h?ssl_certfile={pem['key']}&ssl_keyfile={pem['key']}")


@pytest.mark.parametrize("scheme", ["rediss", "rediss+sentinel", "rediss+cluster"])
def test_tls_schemes(scheme):
    b = parse_url(f"{scheme}://h1:1,h2:2/svc" if "sentinel" in scheme else f"{scheme}://h1:1")
    assert b.tls and b.tls_options == TlsOptions()
    options = b.tls_options
    assert (options.cert_reqs, options.check_hostname, options.ca_certs) == ("required", True, None)


def test_rediss_cluster_url():
    b = parse_url("rediss+cluster://alice:pw@h1:1,h2:2")
    assert (b.scheme, b.hosts, b.password) == ("rediss+cluster", (("h1", 1), ("h2", 2)), "pw")
    assert b.cluster and b.tls
    assert parse_url("redis+cluster://h:1").cluster and not parse_url("rediss://h:1").cluster


@pytest.mark.parametrize("scheme", ["redis", "unix", "redis+sentinel", "redis+cluster"])
def test_plain_schemes_have_no_tls_options(scheme):
    url = {"unix": "unix:///s.sock", "redis+sentinel": "redis+sentinel://h/m"}.get(scheme, f"{scheme}://h:1")
    b = parse_url(url)
    assert not b.tls and b.tls_options is None


def test_every_tls_option(pem):
    b = parse_url(
        f"rediss://h:1?ssl_ca_certs={pem['ca']}&ssl_certfile={pem['cert']}&ssl_keyfile={pem['key']}"
        "&ssl_cert_reqs=optional&ssl_check_hostname=false"
    )
    assert b.tls_options == TlsOptions(str(pem["ca"]), str(pem["cert"]), str(pem["key"]), "optional", False)


def test_tls_option_values_are_case_insensitive_and_cert_reqs_none_turns_off_the_host_check():
    none = TlsOptions(cert_reqs="none", check_hostname=False)
    assert parse_url("rediss://h?ssl_cert_reqs=NONE").tls_options == none
    assert parse_url("rediss://h?ssl_check_hostname=False").tls_options.check_hostname is False
    assert parse_url("rediss://h?ssl_check_hostname=TRUE").tls_options.check_hostname is True


def test_tls_file_paths_are_made_absolute_and_percent_decoded(pem, tmp_path, monkeypatch):
    odd = tmp_path / "a dir+x" / "ca 1.pem"
    odd.parent.mkdir()
    odd.write_text(CERT)
    assert parse_url(f"rediss://h?ssl_ca_certs={quote(str(odd))}").tls_options.ca_certs == str(odd)
    monkeypatch.chdir(tmp_path)
    assert parse_url("rediss://h?ssl_ca_certs=ca.pem").tls_options.ca_certs == str(pem["ca"])


def test_tls_kwargs_reach_every_client_shape(pem):
    query = f"ssl_ca_certs={pem['ca']}&ssl_certfile={pem['cert']}&ssl_keyfile={pem['key']}"
    expected = {
        "ssl": True,
        "ssl_ca_certs": str(pem["ca"]),
        "ssl_certfile": str(pem["cert"]),
        "ssl_keyfile": str(pem["key"]),
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }
    single = parse_url(f"rediss://h:1?{query}")
    assert single.client_kwargs().items() >= expected.items()
    sentinel = parse_url(f"rediss+sentinel://s:1/m?{query}")
    assert sentinel.server_kwargs().items() >= expected.items()
    assert sentinel.sentinel_kwargs().items() >= expected.items()
    assert parse_url(f"rediss+cluster://h:1?{query}").cluster_kwargs().items() >= expected.items()
    assert parse_url("redis+cluster://h:1").cluster_kwargs()["ssl"] is False
    assert parse_url("redis+sentinel://s:1/m").sentinel_kwargs()["ssl"] is False


def test_tls_kwargs_are_accepted_by_every_redis_py_client(pem):
    # The names are redis-py's: each constructor takes them without connecting.
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster
    from redis.sentinel import Sentinel

    query = f"ssl_ca_certs={pem['ca']}&ssl_certfile={pem['cert']}&ssl_keyfile={pem['key']}"
    kw = parse_url(f"rediss://h:1?{query}")
    tls = kw.tls_kwargs()
    redis.Redis(**kw.client_kwargs()).close()
    redis.asyncio.Redis(**kw.client_kwargs())
    redis.asyncio.cluster.RedisCluster(host="h", port=1, **tls)
    Sentinel([("h", 1)], sentinel_kwargs=tls, **tls).master_for("m").close()
    assert set(tls) <= set(redis.cluster.REDIS_ALLOWED_KEYS)


@pytest.mark.parametrize(
    "url,says",
    [
        ("redis://h?ssl_ca_certs=/x.pem", "ssl_ca_certs is a TLS option, and redis://h?ssl_ca_certs=/x.pem"),
        ("redis://h?ssl_ca_certs=/x.pem", "does not use TLS: use rediss://"),
        ("redis+sentinel://h/m?ssl_cert_reqs=none", "use rediss+sentinel://"),
        ("redis+cluster://h?ssl_check_hostname=false", "use rediss+cluster://"),
        ("unix:///s.sock?ssl_ca_certs=/x.pem", "TLS needs a TCP URL"),
        ("rediss://h?ssl_ca_certs=/no/such/ca.pem", "ssl_ca_certs=/no/such/ca.pem: no such file"),
        ("rediss://h?ssl_ca_certs=/", "ssl_ca_certs=/: not a file"),
        ("rediss://h?ssl_ca_certs=", "ssl_ca_certs is empty"),
        ("rediss://h?ssl_keyfile=/no/key.pem", "ssl_keyfile=/no/key.pem: no such file"),
        ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe' in rediss://h?ssl_cert_reqs=maybe: use"),
        ("rediss://h?ssl_check_hostname=maybe", "use true (the default) or false"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname=true with ssl_cert"),
        ("redis://h?timeout=5", "unknown URL parameter 'timeout' in redis://h: the parameters are db"),
        ("rediss://h?ssl_ca_path=/etc/ssl", "unknown URL parameter 'ssl_ca_path'"),
        ("rediss://h?SSL_CA_CERTS=/x", "unknown URL parameter 'SSL_CA_CERTS'"),
        ("rediss://h?db=1&db=2", "URL parameter 'db' is given twice"),
        ("rediss://h?password=pw", "put the user and password before the host"),
    ],
)
def test_tls_refusals(url, says):
    with pytest.raises(InvalidUrlError) as info:
        parse_url(url)
    assert says in str(info.value), str(info.value)


def test_client_certificate_needs_its_key_and_the_key_its_certificate(pem):
    with pytest.raises(InvalidUrlError, match="ssl_certfile without ssl_keyfile"):
        parse_url(f"rediss://h?ssl_certfile={pem['cert']}")
    with pytest.raises(InvalidUrlError, match="ssl_keyfile without ssl_certfile"):
        parse_url(f"rediss://h?ssl_keyfile={pem['key']}")


def test_unreadable_tls_file(pem):
    if os.geteuid() == 0:
        pytest.skip("root reads every file: no unreadable file to test with")
    pem["ca"].chmod(0)
    with pytest.raises(InvalidUrlError, match="not readable by this user"):
        parse_url(f"rediss://h?ssl_ca_certs={pem['ca']}")


@pytest.mark.parametrize(
    "template",
    [
        "rediss://{u}:{p}@h?ssl_ca_certs=/no/such.pem",
        "rediss://{u}:{p}@h?ssl_cert_reqs=maybe",
        "redis://{u}:{p}@h?ssl_ca_certs=/x",
        "rediss+cluster://{u}:{p}@h?bogus=1",
        "rediss://{u}:{p}@h?db=1&db=1",
        "rediss://h?password={p}",
        "rediss://h?token={p}",
        "rediss://h?token={p}&token={p}",
        "rediss://{u}:{p}@h?token=1",
        "rediss://{u}:Hun?ter2@h?token=1",  # a raw "?" in the password
    ],
)
def test_tls_refusals_never_show_the_password(template):
    password = "Hunter2!xyz"
    with pytest.raises(InvalidUrlError) as info:
        parse_url(template.format(u="alice", p=password))
    assert "Hunter2" not in str(info.value) and "Hun" not in str(info.value), str(info.value)


def test_tls_options_need_a_tls_scheme():
    with pytest.raises(InvalidUrlError, match="use rediss://"):
        BrokerUrl("redis", (("h", 1),), tls_options=TlsOptions())


@pytest.mark.parametrize(
    "url,expected",
    [
        ("rediss+cluster://u:pw@h1:1,h2?ssl_ca_certs=/c", "rediss+cluster://u:***@h1:1,h2?ssl_ca_certs=/c"),
        ("rediss://h?password=pw&db=1", "rediss://h?password=***&db=1"),
        ("rediss://u:pw@h?db=1&ssl_password=pw", "rediss://u:***@h?db=1&ssl_password=***"),
    ],
)
def test_redact_tls_urls(url, expected):
    assert redact(url) == expected
