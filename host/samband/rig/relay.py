"""A TCP relay between a hub and its broker, for fault tests: it can cut the
link in the middle of the hub's next large write (a batch), take the network
down for a while (connections reset, new ones refused), or turn into a black
hole (connections stay open, no FIN and no RST, nothing gets through either
way: a dead mobile link, a NAT that forgot the flow).

Loopback only: the relay listens on 127.0.0.1 and forwards to 127.0.0.1."""

from __future__ import annotations

import socket
import threading


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.cut_next = 0  # cut inside the next client write of at least this many bytes
        self.cuts = 0
        self.down = False
        self.blackhole = False
        self.swallowed = 0  # bytes the black hole took
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """The network goes down: every open connection is reset and new ones are refused
        until up() is called."""
        self.down = True
        self.cuts += 1
        with self._lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for s in pair:
                _close(s)

    def up(self) -> None:
        self.down = False

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if self.down:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            with self._lock:
                self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket, upstream: bool) -> None:
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if self.blackhole:
                    self.swallowed += len(d)
                    continue
                if upstream and self.cut_next and len(d) >= self.cut_next:
                    b.sendall(d[:len(d) // 2])   # half of the batch reaches the broker
                    self.cut_next = 0
                    self.cuts += 1
                    break
                b.sendall(d)
        except OSError:
            pass
        if self.blackhole:
            return  # the far end gave up (the broker's own keepalive): the hub must not hear of it
        for s in (a, b):
            _close(s)

    def close(self) -> None:
        self.srv.close()
        with self._lock:
            conns, self.conns = self.conns, []
        for pair in conns:
            for s in pair:
                _close(s)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
