"""A TCP proxy for fault tests: forwards client <-> server, and can lose replies.

With ``drop_probability`` p, each chunk the server sends back is, instead of being forwarded,
the moment the proxy cuts that connection: the request already reached the server and took
effect, but the client never sees the reply (the case a producer must retry without doubling).
``max_drops`` bounds how many replies are lost in all. While ``refuse_new`` is set, new client
connections are closed at once (the server stays out of reach: a client's retries fail until it is
cleared). Only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import random
import socket
import threading


class ReplyDropProxy:
    def __init__(self, upstream_port: int, drop_probability: float = 0.0, seed: int = 0, max_drops: int | None = None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.p = drop_probability
        self.rng = random.Random(seed)
        self.max_drops = max_drops
        self.drops = 0
        self.refuse_new = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._spawn(self._accept)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def _spawn(self, fn, *args) -> None:
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse_new:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._socks += [client, server]
            self._spawn(self._pipe, client, server, False)
            self._spawn(self._pipe, server, client, True)

    def _should_drop(self) -> bool:
        with self._lock:
            if self.max_drops is not None and self.drops >= self.max_drops:
                return False
            if self.rng.random() < self.p:
                self.drops += 1
                return True
            return False

    def _pipe(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self._should_drop():
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(timeout=5)
