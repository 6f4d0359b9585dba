"""``facade gateway``: the Kafka wire protocol over facade's Redis layout, so Kafka clients
(librdkafka/confluent-kafka, the Java client, kafka-python, aiokafka, franz-go, kcat) read and
write facade topics. docs/gateway.md is the user's guide; this is the map for contributors.

The gateway keeps no state of its own: records, producer ids and sequences, topics, groups and
offsets live in Redis under facade's key layout (facade/keys.py), written by the SDK's scripts,
so several gateways can serve one Redis and the SDK and CLI see the same data.

Modules
-------

``server.py``      :class:`Gateway`: listener (TLS optional), framing, size limits, SASL gate,
                   dispatch through ``apis.TABLE``; one task per client connection, replies in
                   request order, each written whole.
``apis.py``        the dispatch table (API key -> ``Api``) and, in one marked block, the
                   consumer-group placeholders (``GROUP_APIS``).
``context.py``     what a handler receives: :class:`RequestContext` (``ctx.conn``: the facade
                   async Connection of the session's principal; ``ctx.admin``: an
                   ``facade.aio.Admin`` on it; ``ctx.topics``: a TopicCache; ``ctx.gateway``:
                   ``advertised`` (host, port), ``node_id``, ``cluster_id``, ``limits``;
                   ``ctx.principal``: the SASL user or None; ``ctx.session.extra``: per-connection
                   state), and :class:`Api`, the record an API module exports.
``protocol.py``    kio glue: headers, frames, :func:`protocol.make` (build any version's response
                   from keyword arguments), generic error responses.
``errors.py``      facade exceptions -> Kafka error codes (the one mapping).
``topics.py``      the topic registry as Kafka sees it, topic ids.
``batches.py``     record batches v2: unpacked for Produce, packed for Fetch (the hot loops).
``configs.py``     Kafka topic configs <-> facade topic settings.
``packing.py``     the gateway's Redis connections: hiredis command packing, raw stream replies.
``listen.py``      listener options: addresses, the TLS context.
one module per API  ``api_versions.py``, ``metadata.py``, ``produce.py``, ``fetch.py``,
                   ``list_offsets.py``, ``init_producer_id.py``, ``find_coordinator.py``,
                   ``create_topics.py``, ``delete_topics.py``, ``create_partitions.py``,
                   ``describe_configs.py``, ``delete_records.py``, ``describe_cluster.py``,
                   ``sasl.py`` (SaslHandshake and SaslAuthenticate), each exporting ``API``.
consumer groups    ``join_group.py``, ``sync_group.py``, ``heartbeat.py``, ``leave_group.py``,
                   ``offset_commit.py``, ``offset_fetch.py``, ``describe_groups.py``,
                   ``list_groups.py``, ``delete_groups.py`` (registered in ``GROUP_APIS``), over
                   ``coordinator.py`` (runs the kafka_* scripts, JoinGroup/SyncGroup's waiting,
                   a group's Kafka view) and ``consumer_protocol.py`` (reads the consumer
                   protocol's subscriptions and assignments for `facade groups describe`).

Adding an API
-------------

1. Create ``facade/gateway/<api_name>.py``::

       from .context import Api, RequestContext
       from .protocol import ErrorCode, make

       async def handle(ctx: RequestContext, request):
           schema = ctx.schema                 # kio's response module at ctx.api_version
           ...                                 # await ctx.conn.script(...), ctx.admin...
           return make(schema.HeartbeatResponse, error_code=ErrorCode.none)

       API = Api(12, "Heartbeat", 0, 4, handle)   # key, name, versions answered

   ``request`` is kio's request entity of ``ctx.api_version`` (fields as in Kafka's JSON
   schemas, snake_case). ``make`` drops keyword arguments the version lacks and fills the
   fields you leave out with Kafka's neutral values, so one handler answers every version.
   Return the response entity, or bytes of an already-encoded body, or None for no reply.
   An exception becomes the API's error response (``errors.kafka_error``): prefer returning
   per-item error codes yourself.
2. Register it in ``apis.py``: append ``<api_name>.API`` to ``IMPLEMENTED``, or for a group
   API replace its ``None`` in ``GROUP_APIS`` with ``"<api_name>"``.
3. Test it with real clients (tests/test_gateway_*.py; ``running_gateway(url)`` in
   tests/gateway_helpers.py starts a gateway on a free port) and list it in docs/gateway.md
   (tests/test_gateway_docs.py checks the table against ``apis.TABLE``).

Produce is special in one way: requests already queued on a connection are answered together
(``produce.handle_batch``, called by the server), so that their writes share one Redis pipeline.

Reach Redis only through the SDK's pieces (``facade/scripts.py`` builders run with
``ctx.conn.script`` / ``ctx.conn.pipeline``, keys from ``facade/keys.py``), never with ad hoc
keys or Lua, so guarantees stay the SDK's.
"""

from __future__ import annotations

from .context import Limits
from .listen import parse_address, tls_context
from .server import Gateway, run

__all__ = ["Gateway", "Limits", "parse_address", "run", "tls_context"]
