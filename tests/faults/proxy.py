"""A TCP proxy on loopback between a client and a real server, for injecting network faults.

It forwards bytes both ways. The test can drop every open connection (the client sees a reset),
refuse new connections for a while (the client sees "connection refused"), and hook the HTTP
requests it sees, to time a fault at an exact request (the hook runs before the request is
forwarded, or just after).
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import time
from collections.abc import Callable

REQUEST_LINE = re.compile(rb"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.[01]\r\n")
Hook = Callable[[str, str], bytes | None]  # a hook may answer a request itself (raw HTTP)


def http_response(status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> bytes:
    """A raw HTTP/1.1 response, for a hook to answer a request without the server."""
    head = [
        f"HTTP/1.1 {status} Injected",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class FaultProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>, with faults on demand."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.before: Hook | None = None  # called with (method, path) before forwarding
        self.after: Callable[[str, str], None] | None = None  # right after forwarding
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = False
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._accepting = threading.Event()
        self._accepting.set()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept_loop(self) -> None:
        while not self._closed:
            self._accepting.wait()
            try:
                client, _ = self._listener.accept()
            except OSError:
                time.sleep(0.05)
                continue
            if not self._accepting.is_set():  # accepted just as refuse() closed the listener
                _reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:  # the server is down: the client sees its connection dropped
            _reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._pairs.append((client, upstream))
        threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()
        self._pump(client, upstream, True)

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        skip = 0  # body bytes of a request a hook answered, still to arrive: never forwarded
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if skip:
                    dropped, data = data[:skip], data[skip:]
                    skip -= len(dropped)
                    if not data:
                        continue
                seen = [(m[1].decode(), m[2].decode()) for m in REQUEST_LINE.finditer(data)]
                answer = None
                if requests:
                    for method, path in seen:
                        self.requests.append((method, path))
                        if self.before:
                            answer = self.before(method, path) or answer
                if answer is not None:  # the hook answered: the request never reaches the server
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    skip = max(int(length[1]) - len(body), 0) if length else 0
                    source.sendall(answer)
                    continue
                sink.sendall(data)
                if requests and self.after:
                    for method, path in seen:
                        self.after(method, path)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_connections(self) -> None:
        """Reset every open connection, as a server or network failure would."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def refuse(self) -> None:
        """Stop listening: new connections are refused until :meth:`accept` is called."""
        self._accepting.clear()
        # close() alone does not wake a thread blocked in accept(): the socket would go on
        # accepting one more connection. shutdown() wakes it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.drop_connections()

    def accept(self) -> None:
        """Listen again on the same port."""
        self._listener = self._listen(self.port)
        self._accepting.set()

    def close(self) -> None:
        self._closed = True
        self._accepting.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
