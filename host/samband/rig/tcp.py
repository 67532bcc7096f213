"""Socket and process plumbing the rigs share: a listening socket whose accept loop
runs on a thread, and ending a socket or a child process whether or not it is
already gone. The fault relay (relay.py), the cluster's front (cluster.py) and the
network lab's doors (netns.py) are each such a listener with their own forwarding;
the broker and the NATS nodes are child processes stopped the same way."""

from __future__ import annotations

import socket
import subprocess
import threading


class Listener:
    """A listening TCP socket; start() runs accept on a daemon thread and hands every
    connection to take(). sock: one made beforehand (in another network namespace)."""

    def __init__(self, address: tuple[str, int] = ("127.0.0.1", 0), backlog: int = 16,
                 sock: socket.socket | None = None) -> None:
        self.srv = sock if sock is not None else socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(address)
        self.srv.listen(backlog)
        self.port = self.srv.getsockname()[1]

    def start(self, name: str | None = None) -> None:
        """After the subclass has set what take() reads."""
        threading.Thread(target=self._accept, daemon=True, name=name).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return  # closed
            self.take(c)

    def take(self, conn: socket.socket) -> None:
        raise NotImplementedError


def close_quietly(s: socket.socket) -> None:
    """Shut down both ways, then close; a socket the other side or another thread has
    already ended is no error (pumps on both directions race to do this)."""
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not ended within grace seconds; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
