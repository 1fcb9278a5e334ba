"""A TCP proxy that can stop forwarding without closing anything: while it stalls, bytes sit in
the sockets' buffers and nobody on either side hears a thing, as through a network that silently
drops packets or a server that hung. New connections are accepted and stall too. When it flows
again, what waited is forwarded.

Only loopback addresses are used.
"""

from __future__ import annotations

import socket
import threading

from proxy_base import LoopbackProxy, shut_down


class StallingProxy(LoopbackProxy):
    """Listens on 127.0.0.1:<port> and forwards every connection to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.start()

    def stall(self) -> None:
        self.flowing.clear()

    def flow(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        super().close()
        self.flowing.set()

    def _before_connect(self) -> None:
        self.flowing.wait()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        def pump(source: socket.socket, sink: socket.socket) -> None:
            source.settimeout(0.1)
            try:
                while not self.closed:
                    self.flowing.wait()
                    try:
                        chunk = source.recv(1 << 16)
                    except socket.timeout:
                        continue
                    if not chunk:
                        break
                    self.flowing.wait()
                    sink.sendall(chunk)
            except OSError:
                pass
            shut_down(source, sink)

        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
