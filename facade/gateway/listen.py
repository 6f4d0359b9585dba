"""The listener's options as people type them: addresses and the TLS context (pure, no I/O but
reading the certificate files)."""

from __future__ import annotations

import ssl

from ..errors import ConfigError

__all__ = ["parse_address", "tls_context"]


def parse_address(text: str, what: str = "--listen") -> tuple[str, int]:
    """``"HOST:PORT"`` or ``"[::1]:PORT"`` -> (host, port); ConfigError otherwise (port 0 only for
    --listen: a free port)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    low = 0 if what == "--listen" else 1
    if not sep or not host or not port.isdigit() or not low <= int(port) <= 65535:
        raise ConfigError(f"{what} takes HOST:PORT (port {low}-65535), got {text!r}")
    return host, int(port)


def tls_context(certfile: str, keyfile: str | None = None, cafile: str | None = None) -> ssl.SSLContext:
    """A server TLS context with this certificate (and key); with ``cafile``, clients must show a
    certificate signed by it (mutual TLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(certfile, keyfile)
        if cafile:
            ctx.load_verify_locations(cafile)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot use TLS certificate {certfile!r} / key {keyfile!r} / CA {cafile!r}: {exc}; "
            "give PEM files the gateway can read"
        ) from None
    return ctx
