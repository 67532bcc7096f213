# Network bearers: one module per kind (cellular.py; Wi-Fi and Ethernet
# alike), each a Bearer. The port builds them from board.json and the
# provisioned config (ports/*.bearers()); a bearer manager above decides
# which to use. Nothing here imports machine or network: the board-only
# glue (UART, WLAN, LAN, PPP) is handed in by the port.
#
# The interface, and why it is this small:
#   await up()        bring the link up; raises BearerError(reason) if it cannot,
#                     so that the manager and the status line say *why*
#                     ("no-sim", "denied", "search-timeout"), not just "down"
#   await down()      take it down (and power the radio off if the kind can)
#   state             one of STATES; every change goes to on_change(bearer, old, new)
#   reason            why it is not up (None when up)
#   health()          "up", "degraded" or "down": what the manager may use it for
#   metrics()         dict of numbers and short strings for telemetry records
#   await open(host, port, ssl=None, server_hostname=None)
#                     a stream (asyncio reader/writer pair) bound to this bearer,
#                     never to the default route

OFF = "off"
STARTING = "starting"        # powering, talking to the modem, SIM
SEARCHING = "searching"      # waiting for network registration
CONNECTING = "connecting"    # registered, activating the data context
UP = "up"
DEGRADED = "degraded"        # up, but traffic says it is not working well
FAILED = "failed"            # gave up; `reason` says why

STATES = (OFF, STARTING, SEARCHING, CONNECTING, UP, DEGRADED, FAILED)

from hub.ticks import sleep_ms  # noqa: E402, F401 - the bearers import it from here
from hub.errors import HubError


class BearerError(HubError):
    """A bearer could not do what was asked; reason is a short fixed word
    (for counters and status), the message says the rest."""

    def __init__(self, reason, msg=None):
        self.reason = reason
        super().__init__("%s: %s" % (reason, msg) if msg else reason)


class Bearer:
    kind = "none"

    def __init__(self, name, on_change=None):
        self.name = name
        self.on_change = on_change
        self.state = OFF
        self.reason = None
        self.changes = 0

    def set_state(self, state, reason=None):
        """Move to state (counted, reported to on_change). Public: the bearer
        itself and the manager, which judges a link by its traffic, both set it."""
        old = self.state
        self.state = state
        self.reason = reason
        if old != state:
            self.changes += 1
            if self.on_change:
                self.on_change(self, old, state)

    def health(self):
        if self.state == UP:
            return "up"
        if self.state == DEGRADED:
            return "degraded"
        return "down"

    def metrics(self):
        return {"kind": self.kind, "state": self.state, "reason": self.reason, "changes": self.changes}

    async def up(self):
        raise BearerError("not-supported", "%s cannot be brought up" % self.kind)

    async def down(self):
        self.set_state(OFF)

    async def open(self, host, port, ssl=None, server_hostname=None):
        raise BearerError("not-supported", "%s has no data path on this board" % self.kind)


class IpBearer(Bearer):
    """Wi-Fi and Ethernet: the board's own IP interface, `link` (a network.WLAN or
    network.LAN, made by the first up()). Both open streams and report their
    address the same way: through the default route (these boards have no
    SO_BINDTODEVICE, docs/bearers.md)."""

    link = None

    async def open(self, host, port, ssl=None, server_hostname=None):
        if self.state not in (UP, DEGRADED) or not self.link.isconnected():
            raise BearerError("down", "%s is %s" % (self.name, self.state))
        try:
            import asyncio
        except ImportError:  # pragma: no cover
            import uasyncio as asyncio
        if ssl is not None:
            return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname or host)
        return await asyncio.open_connection(host, port)

    def metrics(self):
        m = Bearer.metrics(self)
        if self.link is not None and self.state in (UP, DEGRADED):
            try:
                self.link_metrics(m)
            except (OSError, ValueError, TypeError):  # a link that went away under us
                pass
        return m

    def link_metrics(self, m):
        """Put what the link says of itself into m (it is up)."""
        m["ip"] = self.link.ifconfig()[0]
