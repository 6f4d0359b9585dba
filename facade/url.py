"""Where the broker is: one URL parser for every deployment shape (no network I/O: TLS files are
read, to be checked, but nothing connects).

Accepted URLs:

    redis://[user:password@]host[:port][/db]       plain TCP
    rediss://[user:password@]host[:port][/db]      TLS
    unix://[user:password@]/path/to/socket[?db=N]  unix socket
    redis+sentinel://[user:password@]host:port[,host:port...]/service[?db=N]
                                                   the primary Sentinel names for ``service``
    rediss+sentinel://...                          the same, TLS to the sentinels and the servers
    redis+cluster://host:port[,host:port...]       Redis Cluster (facade/cluster.py)
    rediss+cluster://...                           the same, TLS to every node

Query parameters: ``db`` (any URL but a cluster's), and on the TLS schemes (``rediss``,
``rediss+sentinel``, ``rediss+cluster``) the options of :class:`TlsOptions`, named as in
redis-py: ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``,
``ssl_check_hostname`` (docs/tls.md). Any other parameter is refused, not ignored.

No URL at all (argument, then ``FACADE_URL``) means the embedded local broker: see
``resolve_url`` in facade/_async/connect.py, which also turns a parsed URL into a client.

Sentinel URLs: the user and password (and TLS) are used for the sentinels as well as for the data
servers, so both must accept them. The client asks the sentinels for the current primary whenever
it opens or reopens a connection (redis-py's SentinelManagedConnection, plus the reconnect inside a
command, which redis-py 8 sends back to the old address); a connection that meets a demoted
primary (READONLY) or loses its server is dropped. Because a deposed primary that still runs gives
no error at all, the client also re-asks every ``PRIMARY_CHECK_INTERVAL_S`` and moves its
connections. Every socket, sentinels' included, has a read and a connect deadline, so a frozen
server costs at most ``SOCKET_TIMEOUT_S`` before the client moves on. See docs/replication.md.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import InvalidUrlError, UnsupportedError

__all__ = ["BrokerUrl", "TlsOptions", "parse_url", "redact"]

_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)
_SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_TLS_SCHEMES = ("rediss", "rediss+sentinel", "rediss+cluster")
_TLS_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_CERT_REQS = ("required", "optional", "none")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
SOCKET_TIMEOUT_S = 10.0
"""Every socket read/write has a deadline; a dead peer cannot hang a client forever. It also bounds
how long a blocked read (``XREAD BLOCK``, at most a heartbeat long) can sit on a frozen primary."""
CONNECT_TIMEOUT_S = 5.0
SENTINEL_TIMEOUT_S = 2.0
"""Read and connect deadline on sentinel sockets: a sentinel answers from memory, so one that is
silent this long is skipped and the next one is asked."""
PRIMARY_CHECK_INTERVAL_S = 1.0
"""How often a Sentinel client asks the sentinels which server is the primary, even while its
connections work: Sentinel demotes a deposed primary that is still up only seconds after the
promotion, and until then it keeps answering (and accepting writes) as a primary."""
PRIMARY_CHECK_BACKOFF_S = 10.0
"""After a check no sentinel could answer, wait this long before the next (connections go on)."""


@dataclass(frozen=True)
class TlsOptions:
    """How a TLS URL (``rediss``, ``rediss+sentinel``, ``rediss+cluster``) checks the server and
    shows the client's certificate: the URL's ``ssl_*`` query parameters, checked when the URL is
    parsed. File paths are absolute (made so at parse time) and were readable then."""

    ca_certs: str | None = None
    """``ssl_ca_certs``: PEM file of the CA certificates trusted to sign the server's certificate.
    None: the system's trusted CAs."""
    certfile: str | None = None
    """``ssl_certfile``: the client certificate (PEM), for a server with ``tls-auth-clients yes``
    (or ``optional``). Always given together with ``keyfile``."""
    keyfile: str | None = None
    """``ssl_keyfile``: the private key of ``certfile`` (PEM, not encrypted)."""
    cert_reqs: str = "required"
    """``ssl_cert_reqs``: ``required`` (the server's certificate must verify), ``optional`` (the
    same, in a client: Python verifies any certificate a server sends, and a TLS server always
    sends one) or ``none`` (no verification: encrypted, but not authenticated)."""
    check_hostname: bool = True
    """``ssl_check_hostname``: the host the client connects to must be named in the server's
    certificate (a DNS name, or an IP address SAN for ``rediss://127.0.0.1``). For Sentinel and
    Cluster URLs that is also the address the sentinels or the cluster announce. Always False
    with ``cert_reqs="none"``."""

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py's keyword arguments (the same names for redis.Redis, redis.asyncio.Redis,
        both RedisCluster classes and the Sentinel connection classes)."""
        return {
            "ssl": True,
            "ssl_ca_certs": self.ca_certs,
            "ssl_certfile": self.certfile,
            "ssl_keyfile": self.keyfile,
            "ssl_cert_reqs": self.cert_reqs,
            "ssl_check_hostname": self.check_hostname,
        }


@dataclass(frozen=True)
class BrokerUrl:
    """A parsed broker URL."""

    scheme: str
    """One of redis, rediss, unix, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster."""
    hosts: tuple[tuple[str, int], ...] = ()
    """(host, port) pairs; empty for unix sockets."""
    path: str | None = None
    """Unix socket path (unix://)."""
    db: int = 0
    """Database number (single-server URLs)."""
    username: str | None = None
    """ACL user name."""
    password: str | None = field(default=None, repr=False)
    """Password (never printed: see redact())."""
    service: str | None = None
    """Sentinel service (master) name."""
    raw: str = field(default="", repr=False)
    """The URL as given."""
    tls_options: TlsOptions | None = None
    """TLS settings from the URL's ``ssl_*`` parameters; None exactly when the scheme is not TLS."""

    def __post_init__(self) -> None:
        if self.tls_options is None and self.tls:
            object.__setattr__(self, "tls_options", TlsOptions())
        elif self.tls_options is not None and not self.tls:
            raise InvalidUrlError(f"TLS options on a {self.scheme}:// URL: use {_tls_scheme(self.scheme)}")

    @property
    def tls(self) -> bool:
        """Whether connections use TLS (``rediss``, ``rediss+sentinel``, ``rediss+cluster``)."""
        return self.scheme in _TLS_SCHEMES

    @property
    def cluster(self) -> bool:
        """Whether the URL names Redis Cluster nodes (``redis+cluster``, ``rediss+cluster``)."""
        return self.scheme in _CLUSTER_SCHEMES

    @property
    def sentinel(self) -> bool:
        """Whether the primary is found through Sentinel (``redis+sentinel``, ``rediss+sentinel``)."""
        return self.scheme in _SENTINEL_SCHEMES

    def redacted(self) -> str:
        """The URL with any password replaced by ``***``."""
        return redact(self.raw)

    def server_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a connection to a data server, without its address.

        For a Sentinel URL these are what connections to the primary use; the address comes from
        the sentinels at each connect.
        """
        kw: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": SOCKET_TIMEOUT_S,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "health_check_interval": 30,
        }
        if self.scheme == "unix":
            del kw["socket_connect_timeout"]
        else:
            kw.update(self.tls_kwargs())
        return kw

    def tls_kwargs(self) -> dict[str, Any]:
        """``{"ssl": False}``, or for a TLS URL ``ssl=True`` and the ``ssl_*`` options of
        :attr:`tls_options` (redis-py's names)."""
        return self.tls_options.client_kwargs() if self.tls_options is not None else {"ssl": False}

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the connections to the sentinels of a Sentinel URL: the same user,
        password and TLS options as the data servers, and short deadlines."""
        if not self.sentinel:
            raise UnsupportedError(f"{self.scheme}:// URLs have no sentinels ({self.redacted()})")
        return {
            "username": self.username,
            "password": self.password,
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            **self.tls_kwargs(),
        }

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's Redis / redis.asyncio.Redis constructors (one server).

        Sentinel and cluster URLs name no single server: ``create_client`` (facade/_async/connect.py)
        asks the sentinels, or builds a cluster client.
        """
        kw = self.server_kwargs()
        if self.scheme == "unix":
            kw["unix_socket_path"] = self.path
        elif self.scheme in ("redis", "rediss"):
            kw["host"], kw["port"] = self.hosts[0]
        elif self.sentinel:
            raise UnsupportedError(
                f"{self.redacted()} names sentinels, not one server: create_client() asks them for "
                "the current primary"
            )
        else:
            raise UnsupportedError(
                f"{self.redacted()} names cluster nodes, not one server: create_client() builds a cluster client"
            )
        return kw

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for every connection to a cluster node: the URL's user, password and
        TLS options and facade's socket deadlines, as :meth:`client_kwargs` gives a single server
        (a cluster has no database number but 0). The same keys suit redis.Redis (one node) and
        both RedisCluster classes (the asyncio one has no ``ssl_ca_path``, so facade offers none)."""
        if self.db:
            raise InvalidUrlError(f"a Redis Cluster has only database 0 ({self.redacted()}); remove the db")
        kw = self.server_kwargs()
        del kw["db"]  # RedisCluster takes no database number
        return kw


_SECRET_PARAMETER = re.compile(r"([?&][^=&#]*pass[^=&#]*=)[^&#]*", re.IGNORECASE)


def redact(url: str) -> str:
    """``url`` with the password part of its userinfo replaced by ``***``, and the value of any
    query parameter whose name says "pass" (``?password=``, ``?ssl_password=``, which redis-py
    URLs may carry and facade refuses) too."""
    if "@" not in url:
        return _SECRET_PARAMETER.sub(r"\1***", url)
    head, sep, rest = url.partition("://")
    if not sep or "@" in head:  # no scheme ("user:pw@host"): the userinfo still has to go
        head, sep, rest = "", "", url
    lead = head + sep
    userinfo, _, tail = rest.rpartition("@")
    tail = _SECRET_PARAMETER.sub(r"\1***", tail)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    return f"{lead}{user}:***@{tail}" if user or ":" in userinfo else f"{lead}***@{tail}"


def _tls_scheme(scheme: str) -> str:
    """The TLS twin of a scheme, as advice ("use rediss://")."""
    return {
        "redis": "rediss://",
        "redis+sentinel": "rediss+sentinel://",
        "redis+cluster": "rediss+cluster://",
    }.get(scheme, "rediss://, rediss+sentinel:// or rediss+cluster:// (TLS needs a TCP URL)")


def _query(text: str, scheme: str, url: str) -> dict[str, str]:
    """The query string as {name: value}: percent-decoded (a "+" stays a "+": values are file
    paths), each name at most once, and only names facade reads; anything else is refused with
    the list of what is accepted (a misspelt TLS option silently ignored would mean no TLS check)."""
    params: dict[str, str] = {}
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name = unquote(name)
        if name not in ("db", *_TLS_PARAMETERS):
            hint = (
                "; put the user and password before the host: rediss://user:password@host:port"
                if name in ("password", "username", "user")
                else ""
            )
            # The URL is shown without its query: the refused value might be a secret (?token=...).
            raise InvalidUrlError(
                f"unknown URL parameter {name!r} in {_without_query(url)}: the parameters are db, "
                f"and on TLS URLs (rediss://, rediss+sentinel://, rediss+cluster://) {', '.join(_TLS_PARAMETERS)}"
                f"{hint}"
            )
        if name in params:
            raise InvalidUrlError(f"URL parameter {name!r} is given twice in {redact(url)}: keep one")
        if name in _TLS_PARAMETERS and scheme not in _TLS_SCHEMES:
            raise InvalidUrlError(
                f"{name} is a TLS option, and {redact(url)} does not use TLS: use {_tls_scheme(scheme)}"
            )
        params[name] = unquote(value)
    return params


def _without_query(url: str) -> str:
    """The redacted URL up to its query. Redacted first: a raw "?" may sit in the password."""
    head, at, tail = redact(url).rpartition("@")
    return head + at + tail.split("?", 1)[0]


def _readable_file(params: dict[str, str], name: str, url: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    what = "a PEM file of CA certificates" if name == "ssl_ca_certs" else "a PEM file"
    if not value:
        raise InvalidUrlError(f"{name} is empty in {redact(url)}: give the path of {what}")
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.exists(path):
        problem = "no such file"
    elif not os.path.isfile(path):
        problem = "not a file"
    elif not os.access(path, os.R_OK):
        problem = "not readable by this user"
    else:
        return path
    raise InvalidUrlError(f"{name}={value}: {problem} ({redact(url)}); give the path of {what}")


def _tls_options(params: dict[str, str], url: str) -> TlsOptions:
    ca_certs = _readable_file(params, "ssl_ca_certs", url)
    certfile = _readable_file(params, "ssl_certfile", url)
    keyfile = _readable_file(params, "ssl_keyfile", url)
    if (certfile is None) != (keyfile is None):
        given, missing = ("ssl_certfile", "ssl_keyfile")
        if certfile is None:
            given, missing = missing, given
        raise InvalidUrlError(
            f"{given} without {missing} in {redact(url)}: a client certificate needs both the "
            "certificate (ssl_certfile) and its private key (ssl_keyfile)"
        )
    _check_pem(ca_certs, certfile, keyfile, params, url)
    cert_reqs = params.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in _CERT_REQS:
        raise InvalidUrlError(
            f"ssl_cert_reqs={params['ssl_cert_reqs']!r} in {redact(url)}: use required (the default), "
            "optional or none"
        )
    check_text = params.get("ssl_check_hostname")
    if check_text is None:
        check_hostname = cert_reqs != "none"
    elif check_text.lower() not in _BOOLEANS:
        raise InvalidUrlError(
            f"ssl_check_hostname={check_text!r} in {redact(url)}: use true (the default) or false"
        )
    else:
        check_hostname = _BOOLEANS[check_text.lower()]
        if check_hostname and cert_reqs == "none":
            raise InvalidUrlError(
                f"ssl_check_hostname=true with ssl_cert_reqs=none in {redact(url)}: a certificate that is "
                "not verified cannot vouch for a host name; drop one of the two"
            )
    return TlsOptions(ca_certs, certfile, keyfile, cert_reqs, check_hostname)


def _check_pem(ca_certs: str | None, certfile: str | None, keyfile: str | None, params: dict[str, str], url: str) -> None:
    """Load the TLS files as the handshake will, so that a file of the wrong kind is reported for
    what it is now (not later as a refused handshake that points elsewhere)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_certs is not None:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidUrlError(
                f"ssl_ca_certs={params['ssl_ca_certs']}: not a PEM file of CA certificates ({_ssl_reason(exc)}) in "
                f"{redact(url)}; give the CA's certificate (-----BEGIN CERTIFICATE-----)"
            ) from None
    if certfile is not None and keyfile is not None:
        try:
            # A callback, not None: an encrypted key must fail here, not prompt on the terminal.
            context.load_cert_chain(certfile, keyfile, password=lambda: b"")
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidUrlError(
                f"ssl_certfile={params['ssl_certfile']} with ssl_keyfile={params['ssl_keyfile']}: not a PEM "
                f"certificate and its unencrypted private key ({_ssl_reason(exc)}) in {redact(url)}"
            ) from None


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).replace("_", " ").lower()
    # OpenSSL's "[SSL] PEM lib (_ssl.c:3905)" says nothing more than this.
    return "not PEM, an encrypted key, or a key that does not match the certificate"


def _port(text: str, url: str) -> int:
    if not (text.isascii() and text.isdigit()):  # int() would also take " 1", "+1", "6_379", "١٢"
        raise InvalidUrlError(f"bad port {text!r} in {redact(url)}: use a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise InvalidUrlError(f"bad port {port} in {redact(url)}: use a number from 1 to 65535")
    return port


def _hostports(netloc: str, url: str, default_port: int) -> tuple[tuple[str, int], ...]:
    out = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            raise InvalidUrlError(f"empty host in {redact(url)}: write host:port[,host:port...]")
        if part.startswith("["):
            host, _, rest = part[1:].partition("]")
            port = _port(rest[1:], url) if rest.startswith(":") else default_port
        elif part.count(":") == 1:
            host, ptext = part.split(":")
            port = _port(ptext, url)
        else:
            host, port = part, default_port
        if not host:
            raise InvalidUrlError(f"empty host in {redact(url)}: write host:port")
        out.append((host, port))
    return tuple(out)


def parse_url(url: str) -> BrokerUrl:
    """Parse a broker URL, raising InvalidUrlError with a hint when it cannot be used."""
    if not isinstance(url, str):
        raise InvalidUrlError(f"URL must be a string, not {type(url).__name__}")
    url = url.strip()
    if "://" not in url:
        raise InvalidUrlError(
            f"{redact(url)!r} is not a URL: use redis://host:port, rediss://host:port or unix:///path/to.sock"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise InvalidUrlError(
            f"unknown URL scheme {redact(scheme)!r} in {redact(url)}: use one of " + ", ".join(_SCHEMES)
        )
    rest = url.split("://", 1)[1]
    # Userinfo ends at the last "@" before the path: a unix socket path may itself contain "@".
    authority = rest.split("/", 1)[0]
    userinfo, sep, _ = authority.rpartition("@")
    after = rest[len(userinfo) + 1 :] if sep else rest
    if not sep:
        userinfo = ""
        if "@" in rest.split("?", 1)[0] and scheme != "unix":
            # "user:pa/ss@host": the "/" ended the host part early. Say so without echoing any
            # of the text around the "@" (it is probably a password).
            raise InvalidUrlError(
                f"{scheme}:// URL with an '@' after a '/': if the password contains '/', '?' or '#', "
                "percent-encode them (%2F, %3F, %23)"
            )
    username = password = None
    if userinfo:
        if ":" in userinfo:
            u, p = userinfo.split(":", 1)
            username, password = (unquote(u) or None), unquote(p)
        else:
            # redis://secret@host is redis-py's shorthand for a password with the default user.
            password = unquote(userinfo)
    try:
        parts = urlsplit(f"x://{after}")
    except ValueError as exc:  # e.g. an unclosed "[" of an IPv6 address
        raise InvalidUrlError(f"malformed URL {redact(url)!r} ({exc}): write {scheme}://host:port") from None
    query = _query(parts.query, scheme, url)
    tls = _tls_options(query, url) if scheme in _TLS_SCHEMES else None
    db = 0
    db_text = query.get("db", "")
    if scheme in ("redis", "rediss") and parts.path.strip("/"):
        db_text = parts.path.strip("/")
    if db_text:
        if not (db_text.isascii() and db_text.isdigit()):  # isdigit() alone takes "²"; int() refuses it
            raise InvalidUrlError(f"bad database number {db_text!r} in {redact(url)}: use an integer such as /0")
        db = int(db_text)
    if scheme == "unix":
        if parts.netloc and not sep:
            # unix:///path or unix://user:pass@/path; anything before the path would be a host.
            raise InvalidUrlError(
                "unix:// URLs are unix:///path/to.sock or unix://user:password@/path/to.sock; "
                "if the password contains '/', percent-encode it as %2F"
            )
        path = parts.netloc + parts.path if parts.netloc else parts.path
        if not path:
            raise InvalidUrlError(f"no socket path in {redact(url)}: write unix:///path/to/redis.sock")
        return BrokerUrl(scheme, (), unquote(path), db, username, password, None, url)
    netloc = after.split("/", 1)[0].split("?", 1)[0]
    if not netloc:
        raise InvalidUrlError(f"no host in {redact(url)}: write {scheme}://host:port")
    default_port = 26379 if scheme in _SENTINEL_SCHEMES else 6379
    hosts = _hostports(netloc, url, default_port)
    service = None
    if scheme in _SENTINEL_SCHEMES:
        service = parts.path.strip("/") or None
        if not service:
            raise InvalidUrlError(
                f"no service name in {redact(url)}: write {scheme}://host:port[,host:port]/mymaster"
            )
    elif scheme in ("redis", "rediss") and len(hosts) > 1:
        raise InvalidUrlError(
            f"{scheme}:// takes one host; for several use {scheme}+sentinel:// or {scheme}+cluster:// ({redact(url)})"
        )
    elif scheme in _CLUSTER_SCHEMES and parts.path.strip("/"):
        raise InvalidUrlError(
            f"a Redis Cluster URL takes no path (a cluster has only database 0): write {scheme}://host:port[,host:port] "
            f"({redact(url)})"
        )
    return BrokerUrl(scheme, hosts, None, db, username, password, service, url, tls)


