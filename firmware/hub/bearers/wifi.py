# Wi-Fi station (ESP32, Pico W): thin glue over network.WLAN.
#
# The port hands in the `network` module (nothing under hub.bearers
# imports it) and the provisioned networks; everything that decides what
# to do with a bearer lives in the manager and is tested on the unix port.
# Sockets: MicroPython's socket module has no SO_BINDTODEVICE on either
# board, so a Wi-Fi socket follows the default route. That is this
# interface only as long as Wi-Fi is the board's one IP interface; the
# cellular bearer uses the modem's own sockets and never the route, so
# Wi-Fi + cellular is safe, Wi-Fi + Ethernet together is not (docs/bearers.md).

from hub.bearers import CONNECTING, FAILED, OFF, STARTING, UP, BearerError, IpBearer, sleep_ms

JOIN_MS = 20000  # WPA2 association + DHCP; a router that takes longer is treated as absent


def _secret(net):
    pw = net.get("password")
    if pw is None and net.get("password_file"):
        with open(net["password_file"]) as f:
            pw = f.read().strip()
    return pw


def _status_reason(network, st):
    # network.STAT_* names differ by port; compare only the ones the port has
    for name, reason in (("STAT_WRONG_PASSWORD", "wrong-password"), ("STAT_NO_AP_FOUND", "no-ap"),
                         ("STAT_CONNECT_FAIL", "join-failed"), ("STAT_BEACON_TIMEOUT", "no-ap"),
                         ("STAT_HANDSHAKE_TIMEOUT", "wrong-password")):
        if getattr(network, name, None) == st:
            return reason
    return None


class WiFi(IpBearer):
    """config: networks [{ssid, password | password_file}] tried in order,
    join_ms. network: the board's network module."""

    kind = "wifi"

    def __init__(self, name, network, config, on_change=None):
        super().__init__(name, on_change)
        nets = config.get("networks") or ([config] if config.get("ssid") else [])
        if not nets:
            raise BearerError("no-ssid", "no Wi-Fi network provisioned for %s" % name)
        self.nets = nets
        self.network = network
        self.join_ms = config.get("join_ms", JOIN_MS)
        self.ssid = None

    async def up(self):
        net = self.network
        self.set_state(STARTING)
        if self.link is None:
            self.link = net.WLAN(net.STA_IF)
        w = self.link
        w.active(True)
        reason = "no-ap"
        for n in self.nets:
            self.set_state(CONNECTING)
            w.connect(n["ssid"], _secret(n))
            waited = 0
            while waited < self.join_ms:
                if w.isconnected():
                    self.ssid = n["ssid"]
                    self.set_state(UP)
                    return
                r = _status_reason(net, w.status())
                if r is not None:
                    reason = r
                    break
                await sleep_ms(200)
                waited += 200
            else:
                reason = "join-timeout"
            w.disconnect()
        self.set_state(FAILED, reason)
        raise BearerError(reason, "%s: no provisioned network joined" % self.name)

    async def down(self):
        if self.link is not None:
            self.link.disconnect()
            self.link.active(False)
        self.set_state(OFF)

    def metrics(self):
        m = IpBearer.metrics(self)
        m["ssid"] = self.ssid
        return m

    def link_metrics(self, m):
        m["rssi_dbm"] = self.link.status("rssi")
        IpBearer.link_metrics(self, m)
