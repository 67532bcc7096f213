# The virtual hub's IP bearers: each one a fixed TCP path to the broker.
#
# On a board every bearer is its own interface (Wi-Fi, Ethernet, the
# modem's IP stack). The virtual hub gets the same when the host gives it
# one (samband.rig.netns: the hub runs in a network namespace with one veth
# per bearer): with "dev", every socket of the bearer is bound to that
# interface (SO_BINDTODEVICE), so it leaves by it or not at all, never by
# whatever route is preferred. Without "dev" (no namespaces: not root) the
# bearer is only its own address (a relay the tests can cut or black-hole).
# Either way open() connects to the bearer's own host and port, whatever
# host the uplink names (the uplink's name still checks the certificate).

from hub.bearers import DEGRADED, UP, Bearer, BearerError

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio


class HostNet(Bearer):
    """config: host (default 127.0.0.1), port (required): where every
    connection of this bearer goes; dev: the interface its sockets are
    bound to (the virtual hub in a network namespace)."""

    kind = "hostnet"
    fixed_path = True  # every connection goes to host:port: no update over HTTPS from another server

    def __init__(self, name, config, on_change=None):
        super().__init__(name, on_change)
        if not isinstance(config.get("port"), int) or not 0 < config["port"] < 65536:
            raise BearerError("bad-config", "bearer %s needs a TCP port" % name)
        self.host = config.get("host", "127.0.0.1")
        self.port = config["port"]
        self.dev = config.get("dev")
        if self.dev is not None and (not isinstance(self.dev, str) or not 0 < len(self.dev) < 16):
            raise BearerError("bad-config", "bearer %s: dev must be an interface name" % name)
        # the bearer's own DNS server (as DHCP or the mobile network hands one to a board's
        # interface): the uplink's host name is resolved there, over dev
        self.dns = config.get("dns")
        if self.dns is not None and not self.dev:
            raise BearerError("bad-config", "bearer %s: dns needs dev (a server asked over the bearer)" % name)
        self.dns_fails = 0
        self.opened = 0

    async def up(self):
        # Nothing to bring up: the host's network is there; whether the path
        # works is judged by traffic (the manager's MQTT session), not here.
        self.set_state(UP)

    async def open(self, host, port, ssl=None, server_hostname=None):
        if self.state not in (UP, DEGRADED):
            raise BearerError("down", "%s is %s" % (self.name, self.state))
        self.opened += 1
        if self.dev:
            from hub.bearers import pinned  # only a hub in a namespace needs it
            addr = self.host
            if self.dns:
                try:
                    addr = await pinned.resolve(self.dev, self.dns, host)
                except BearerError:
                    self.dns_fails += 1
                    raise
            return await pinned.open_pinned(self.dev, addr, self.port, ssl, server_hostname or host)
        if ssl is not None:
            return await asyncio.open_connection(self.host, self.port, ssl=ssl,
                                                 server_hostname=server_hostname or host)
        return await asyncio.open_connection(self.host, self.port)

    def metrics(self):
        m = Bearer.metrics(self)
        m["opened"] = self.opened
        if self.dev:
            m["dev"] = self.dev
        if self.dns:
            m["dns_fails"] = self.dns_fails
        return m
