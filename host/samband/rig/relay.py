"""A TCP relay between a hub and its broker, for fault tests: it can cut the
link in the middle of the hub's next large write (a batch), take the network
down for a while (connections reset, new ones refused), or turn into a black
hole (connections stay open, no FIN and no RST, nothing gets through either
way: a dead mobile link, a NAT that forgot the flow).

Loopback only: the relay listens on 127.0.0.1 and forwards to 127.0.0.1."""

from __future__ import annotations

import socket
import threading

from samband.rig.tcp import Listener
from samband.rig.tcp import close_quietly as _close


class Relay(Listener):
    def __init__(self, target_port: int) -> None:
        Listener.__init__(self, ("127.0.0.1", 0), 8)
        self.target = target_port
        self.conns: list[tuple[socket.socket, socket.socket]] = []
        self.cut_next = 0  # cut inside the next client write of at least this many bytes
        self.cuts = 0
        self.down = False
        self.blackhole = False
        self.swallowed = 0  # bytes the black hole took
        self._lock = threading.Lock()
        self.start()

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

    def take(self, c: socket.socket) -> None:
        if self.down:
            c.close()
            return
        try:
            u = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            c.close()
            return
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
