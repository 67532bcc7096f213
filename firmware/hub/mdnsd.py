# The hub's mDNS responder: one UDP socket on asyncio answering for the
# hub's _samband._tcp instance (records and replies from hub/mdns.py).
#
# Started by the app when an IP bearer (wifi, lan; hostnet on the virtual
# hub) comes up. Boards listen on 5353 and join 224.0.0.251 where the socket
# module has IP_ADD_MEMBERSHIP; a query from any other port is a legacy
# one-shot query and is answered to its sender. The virtual hub takes its
# port from the port object (SAMBAND_MDNS_PORT), so parallel tests never
# share one. MicroPython's asyncio has no public way to await a datagram,
# so a non-blocking socket is polled every POLL_MS: a ~100 ms reply delay,
# which RFC 6762 asks for anyway (20-120 ms for shared records).

import socket

from hub import mdns
from hub.ticks import sleep_ms

GROUP = "224.0.0.251"
POLL_MS = 100


class Responder:
    def __init__(self, recs, port=5353, ip="0.0.0.0"):
        self.recs = recs
        self.port = port
        self.ip = ip
        self.answered = 0
        self.bad = 0  # malformed packets refused
        self.unsent = 0  # replies the network refused
        self.joined = False
        self.sock = None

    def open(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(socket.getaddrinfo("0.0.0.0", self.port)[0][-1])
        join = getattr(socket, "IP_ADD_MEMBERSHIP", None)
        if join is not None and self.port == 5353:
            try:
                s.setsockopt(getattr(socket, "IPPROTO_IP", 0), join, mdns.ip4(GROUP) + mdns.ip4(self.ip))
                self.joined = True
            except OSError:
                pass  # no multicast on this interface: legacy unicast queries still work
        s.setblocking(False)
        self.sock = s

    def handle(self, pkt, addr_port):
        """The reply to one datagram and whether it goes to the sender (else the group)."""
        legacy = addr_port != 5353
        try:
            r = mdns.reply(pkt, self.recs, legacy)
            to_sender = legacy or mdns.wants_unicast(pkt)
        except (ValueError, IndexError):
            self.bad += 1
            return None, False
        return r, to_sender

    async def run(self):
        if self.sock is None:
            self.open()
        s = self.sock
        group = socket.getaddrinfo(GROUP, 5353)[0][-1]
        while True:
            try:
                pkt, addr = s.recvfrom(1500)
            except OSError:  # EAGAIN: nothing waiting
                await sleep_ms(POLL_MS)
                continue
            r, to_sender = self.handle(pkt, _port_of(addr))
            if r is not None:
                try:
                    s.sendto(r, addr if to_sender else group)
                    self.answered += 1
                except OSError:
                    self.unsent += 1

    def stats(self):
        return {"port": self.port, "joined": self.joined, "answered": self.answered, "bad": self.bad,
                "unsent": self.unsent}


def start(port, bearer, board, version):
    """The hub's responder, its socket open, for a bearer just come up (hub/app.py):
    the A record is the bearer's address (hostnet has none: the host's loopback)."""
    ip = bearer.metrics().get("ip") or "127.0.0.1"
    r = Responder(mdns.records("".join("%02x" % b for b in port.unique_id()), board, version, ip),
                  port.mdns_port(), ip)
    r.open()
    return r


def _port_of(addr):
    # CPython and some ports give (host, port); the unix port a sockaddr bytes
    if isinstance(addr, tuple):
        return addr[1]
    return addr[2] << 8 | addr[3]
