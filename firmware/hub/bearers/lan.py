# Ethernet (ESP32 boards with an RMII PHY: Olimex ESP32-POE-ISO, WT32-ETH01):
# thin glue over network.LAN, its PHY and pins from board.json "ethernet":
#   {"phy": "LAN8720", "phy_addr": 0|1, "mdc": 23, "mdio": 18, "power": 12|16|null,
#    "ref_clk": 17|0, "ref_clk_mode": "out"|"in"}
# The port hands in `network` and `machine`. Sockets follow the default
# route (no SO_BINDTODEVICE in MicroPython), see wifi.py.

from hub.bearers import CONNECTING, FAILED, OFF, STARTING, UP, BearerError, IpBearer, sleep_ms

LINK_MS = 10000  # PHY autonegotiation and DHCP


class LAN(IpBearer):
    kind = "lan"

    def __init__(self, name, network, machine, eth, config=None, on_change=None):
        super().__init__(name, on_change)
        if not eth or "mdc" not in eth or "mdio" not in eth:
            raise BearerError("no-phy", "board.json has no ethernet PHY for %s" % name)
        self.network = network
        self.machine = machine
        self.eth = eth
        self.link_ms = (config or {}).get("link_ms", LINK_MS)

    def _make(self):
        net, m, e = self.network, self.machine, self.eth
        kw = {"mdc": m.Pin(e["mdc"]), "mdio": m.Pin(e["mdio"]),
              "phy_type": getattr(net, "PHY_" + e.get("phy", "LAN8720")),
              "phy_addr": e.get("phy_addr", 0)}
        if e.get("power") is not None:
            kw["power"] = m.Pin(e["power"])
        if e.get("ref_clk") is not None:
            kw["ref_clk"] = m.Pin(e["ref_clk"])
            kw["ref_clk_mode"] = m.Pin.OUT if e.get("ref_clk_mode", "in") == "out" else m.Pin.IN
        return net.LAN(**kw)

    async def up(self):
        self.set_state(STARTING)
        try:
            if self.link is None:
                self.link = self._make()
            self.link.active(True)
        except (OSError, ValueError, AttributeError) as e:
            self.set_state(FAILED, "phy")
            raise BearerError("phy", "%s: %s" % (self.name, e))
        self.set_state(CONNECTING)
        waited = 0
        while waited < self.link_ms:
            if self.link.isconnected():
                self.set_state(UP)
                return
            await sleep_ms(200)
            waited += 200
        self.set_state(FAILED, "no-link")
        raise BearerError("no-link", "%s: no cable or no DHCP" % self.name)

    async def down(self):
        if self.link is not None:
            self.link.active(False)
        self.set_state(OFF)
