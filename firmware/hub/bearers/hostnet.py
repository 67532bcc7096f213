# The virtual hub's IP bearers: each one a fixed TCP path to the broker.
#
# On a board every bearer is its own interface (Wi-Fi, Ethernet, the
# modem's IP stack); the unix port has only the host's network. So each
# hostnet bearer is given its own address (a relay the tests can cut or
# black-hole, one per bearer) and open() always connects there, whatever
# host the uplink names: that is what "a socket bound to this bearer"
# means on the virtual hub, and it lets a test fail one bearer alone.

from hub.bearers import DEGRADED, UP, Bearer, BearerError

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio


class HostNet(Bearer):
    """config: host (default 127.0.0.1), port (required): where every
    connection of this bearer goes."""

    kind = "hostnet"

    def __init__(self, name, config, on_change=None):
        super().__init__(name, on_change)
        if not isinstance(config.get("port"), int) or not 0 < config["port"] < 65536:
            raise BearerError("bad-config", "bearer %s needs a TCP port" % name)
        self.host = config.get("host", "127.0.0.1")
        self.port = config["port"]
        self.opened = 0

    async def up(self):
        # Nothing to bring up: the host's network is there; whether the path
        # works is judged by traffic (the manager's MQTT session), not here.
        self.set_state(UP)

    async def open(self, host, port, ssl=None, server_hostname=None):
        if self.state not in (UP, DEGRADED):
            raise BearerError("down", "%s is %s" % (self.name, self.state))
        self.opened += 1
        if ssl is not None:
            return await asyncio.open_connection(self.host, self.port, ssl=ssl,
                                                 server_hostname=server_hostname or host)
        return await asyncio.open_connection(self.host, self.port)

    def metrics(self):
        m = Bearer.metrics(self)
        m["opened"] = self.opened
        return m
