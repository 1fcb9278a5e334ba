"""A TCP proxy that loses acknowledgements: it forwards every request to the broker, and for some
Produce requests it cuts the client's connection instead of forwarding the response. The write
happened; the client never hears of it and retries. Which responses are lost is decided by a
seeded generator, so a run can be replayed.

Only loopback addresses are used.
"""

from __future__ import annotations

import random
import socket
import struct
import threading

PRODUCE_API_KEY = 0


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">i", header)
    body = _read_exact(sock, size)
    return None if body is None else header + body


class LossyProxy:
    """Listens on 127.0.0.1:<port> and forwards to `target`. `loss_rate` is the chance that a
    Produce response is dropped (the connection closed in its place), at most `max_losses` times."""

    def __init__(self, target_port: int, *, loss_rate: float, seed: int, max_losses: int = 1_000_000) -> None:
        self.target_port = target_port
        self.loss_rate = loss_rate
        self.max_losses = max_losses
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.losses = 0
        self.produce_requests = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Correlation ids of forwarded Produce requests whose response should be lost.
        doomed: set[int] = set()
        doomed_lock = threading.Lock()

        def shut() -> None:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

        def requests() -> None:
            try:
                while True:
                    frame = _read_frame(client)
                    if frame is None:
                        break
                    api_key, _, correlation = struct.unpack(">hhi", frame[4:12])
                    if api_key == PRODUCE_API_KEY:
                        with self.lock:
                            self.produce_requests += 1
                            lose = self.losses < self.max_losses and self.random.random() < self.loss_rate
                            if lose:
                                self.losses += 1
                        if lose:
                            with doomed_lock:
                                doomed.add(correlation)
                    upstream.sendall(frame)
            except OSError:
                pass
            shut()

        def responses() -> None:
            try:
                while True:
                    frame = _read_frame(upstream)
                    if frame is None:
                        break
                    (correlation,) = struct.unpack(">i", frame[4:8])
                    with doomed_lock:
                        lose = correlation in doomed
                    if lose:
                        break  # the broker wrote it; the client never learns
                    client.sendall(frame)
            except OSError:
                pass
            shut()

        threading.Thread(target=requests, daemon=True).start()
        threading.Thread(target=responses, daemon=True).start()
