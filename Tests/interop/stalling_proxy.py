"""A TCP proxy that can stop forwarding without closing anything: while it stalls, bytes sit in
the sockets' buffers and nobody on either side hears a thing, as through a network that silently
drops packets or a server that hung. New connections are accepted and stall too. When it flows
again, what waited is forwarded.

Only loopback addresses are used.
"""

from __future__ import annotations

import socket
import threading


class StallingProxy:
    """Listens on 127.0.0.1:<port> and forwards every connection to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.flowing.clear()

    def flow(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self.flowing.wait()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return

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
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
