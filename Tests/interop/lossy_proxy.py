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

from proxy_base import LoopbackProxy, shut_down

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


class LossyProxy(LoopbackProxy):
    """Listens on 127.0.0.1:<port> and forwards to `target`. `loss_rate` is the chance that a
    Produce response is dropped (the connection closed in its place), at most `max_losses` times."""

    def __init__(self, target_port: int, *, loss_rate: float, seed: int, max_losses: int = 1_000_000) -> None:
        super().__init__(target_port)
        self.loss_rate = loss_rate
        self.max_losses = max_losses
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.losses = 0
        self.produce_requests = 0
        self.start()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Correlation ids of forwarded Produce requests whose response should be lost.
        doomed: set[int] = set()
        doomed_lock = threading.Lock()

        def shut() -> None:
            shut_down(client, upstream, close=True)

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
