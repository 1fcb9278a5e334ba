"""What the test proxies share: a listener on 127.0.0.1, an accept loop that serves each client
on a thread of its own, and the connection to the broker behind it. Subclasses decide what
happens to the bytes in `_relay`.

Only loopback addresses are used.
"""

from __future__ import annotations

import socket
import threading


class LoopbackProxy:
    """Listens on 127.0.0.1:<port> and hands every accepted client, with its own connection to
    127.0.0.1:`target_port`, to `_relay`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.closed = False

    def start(self) -> None:
        """Starts accepting; subclasses call it once their own state is set up, since a client
        may connect at once."""
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
        self._before_connect()
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        self._relay(client, upstream)

    def _before_connect(self) -> None:
        """Runs on the client's thread before the broker is dialled."""

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        raise NotImplementedError


def shut_down(*sockets: socket.socket, close: bool = False) -> None:
    """Shuts both directions of each socket (the peer sees the end), ignoring ones already gone."""
    for s in sockets:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if close:
            s.close()
