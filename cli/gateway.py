"""``facade gateway``: serve the Kafka wire protocol over the broker (facade/gateway/)."""

from __future__ import annotations

import logging

import click

from facade import local, redact_url

from . import CliError, Settings, main


@main.command("gateway", short_help="Serve the Kafka protocol, so Kafka clients use facade topics.")
@click.option(
    "--listen", default="127.0.0.1:9092", show_default=True, metavar="HOST:PORT", help="Address to listen on."
)
@click.option(
    "--advertise", metavar="HOST:PORT", help="Address clients are told to connect to (default: --listen)."
)
@click.option("--url", "url_option", metavar="URL", help="Broker URL (same as the global --url).")
@click.option("--tls-cert", metavar="PEM", help="Serve TLS with this certificate (chain).")
@click.option("--tls-key", metavar="PEM", help="Private key of --tls-cert (if not in the same file).")
@click.option("--tls-ca", metavar="PEM", help="Require client certificates signed by this CA.")
@click.option("--sasl-plain", is_flag=True, help="Require SASL/PLAIN, checked as Redis ACL users.")
@click.option(
    "--auto-create-partitions",
    type=click.IntRange(0, 1024),
    default=1,
    show_default=True,
    help="Partitions of a topic created when a client asks for an unknown one (0: never create).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log each connection problem and unsupported request.")
@click.pass_obj
def gateway_command(
    settings: Settings,
    listen: str,
    advertise: str | None,
    url_option: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    sasl_plain: bool,
    auto_create_partitions: int,
    verbose: bool,
) -> None:
    """Serve the Kafka wire protocol on HOST:PORT, so Kafka clients (librdkafka and
    confluent-kafka, the Java client, kafka-python, aiokafka, franz-go, kcat) produce to and
    fetch from facade topics. Records, topics, producer ids and offsets stay in Redis: the SDK
    and the CLI see what Kafka clients write and the other way round, and several gateways can
    serve one Redis (give each its own --advertise). docs/gateway.md lists the APIs.

    \b
    Example:
      facade gateway
      kcat -b 127.0.0.1:9092 -L
      facade --url redis://db:6379 gateway --listen 0.0.0.0:9092 --advertise gw1.example:9092
      facade gateway --tls-cert server.pem --tls-key server.key --sasl-plain
    """
    try:
        from facade.gateway import Gateway, parse_address, run, tls_context
    except ImportError as exc:
        raise CliError(str(exc)) from None

    url = url_option or settings.url
    host, port = parse_address(listen)
    advertised = parse_address(advertise, "--advertise") if advertise else None
    ssl_context = tls_context(tls_cert, tls_key, tls_ca) if tls_cert else None
    if (tls_key or tls_ca) and not tls_cert:
        raise click.UsageError("--tls-key and --tls-ca need --tls-cert")
    if verbose:
        logging.getLogger("facade.gateway").setLevel(logging.INFO)
    gateway = Gateway(url, host=host, port=port, advertise=advertised, ssl_context=ssl_context,
                      sasl_plain=sasl_plain, auto_create_partitions=auto_create_partitions)  # fmt: skip

    def ready(gw: Gateway) -> None:
        broker = redact_url(url) if url else f"embedded ({local.status().url})"
        ahost, aport = gw.advertised
        extras = ", TLS" if ssl_context else ""
        extras += ", SASL/PLAIN" if sasl_plain else ""
        click.echo(f"Kafka gateway for {broker} on {host}:{gw.port}{extras}; clients connect to {ahost}:{aport} "
                   "(Ctrl-C stops)", err=True)  # fmt: skip

    run(gateway, ready)
