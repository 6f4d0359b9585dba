"""The asyncio twins of facade's clients: same names, same behaviour, ``await`` where they do I/O.

    from facade.aio import Admin, Producer, Consumer

They are the source of truth; the blocking clients in ``facade`` are generated from them by
scripts/unasync.py.
"""

from .._async.admin import Admin
from .._async.consumer import Consumer
from .._async.producer import Producer
from .._async.relay import relay

__all__ = ["Admin", "Consumer", "Producer", "relay"]
