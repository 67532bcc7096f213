# The board glue of the IP bearers (hub/bearers/wifi.py, lan.py) on both
# runtimes, against stand-ins for MicroPython's network and machine
# modules: the calls they make, the reasons they give, and the states
# they go through. What the glue cannot show here (a real radio) is left
# to the board; everything above it runs on the unix port.
try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from fwtest import raises
from hub.bearers import FAILED, OFF, UP, BearerError
from hub.bearers.lan import LAN
from hub.bearers.wifi import WiFi


class FakeWLAN:
    def __init__(self, net):
        self.net = net
        self.calls = []
        self.tries = 0

    def active(self, on):
        self.calls.append(("active", on))

    def connect(self, ssid, pw):
        self.calls.append(("connect", ssid, pw))
        self.ssid = ssid
        self.tries = 0

    def isconnected(self):
        self.tries += 1
        return self.net.good.get(self.ssid) is not None and self.tries > 2

    def status(self, what=None):
        if what == "rssi":
            return -61
        return self.net.good.get(self.ssid, self.net.fail)

    def disconnect(self):
        self.calls.append(("disconnect",))

    def ifconfig(self):
        return ("192.168.1.20", "255.255.255.0", "192.168.1.1", "192.168.1.1")


class FakeNetwork:
    STA_IF = 0
    STAT_CONNECTING = 1
    STAT_WRONG_PASSWORD = -3
    STAT_NO_AP_FOUND = -2
    PHY_LAN8720 = 1

    def __init__(self, good=None, fail=1):
        self.good = good or {}
        self.fail = fail
        self.wlan = None
        self.lan_kw = None

    def WLAN(self, iface):
        self.wlan = FakeWLAN(self)
        return self.wlan

    def LAN(self, **kw):
        self.lan_kw = kw
        return FakeLAN()


class FakeLAN:
    def __init__(self):
        self.on = False
        self.polls = 0

    def active(self, on):
        self.on = on

    def isconnected(self):
        self.polls += 1
        return self.on and self.polls > 1

    def ifconfig(self):
        return ("10.0.0.7", "255.0.0.0", "10.0.0.1", "10.0.0.1")


class FakeMachine:
    class Pin:
        IN = 0
        OUT = 1

        def __init__(self, n):
            self.n = n

        def __eq__(self, other):
            return isinstance(other, FakeMachine.Pin) and other.n == self.n


def test_wifi_joins_the_first_network_that_answers():
    states = []
    net = FakeNetwork(good={"home": 1})
    w = WiFi("wifi", net, {"networks": [{"ssid": "away", "password": "a"}, {"ssid": "home", "password": "b"}],
                           "join_ms": 1000}, on_change=lambda b, o, n: states.append(n))
    net.fail = FakeNetwork.STAT_NO_AP_FOUND
    asyncio.run(w.up())
    assert w.state == UP and w.ssid == "home"
    assert ("connect", "away", "a") in net.wlan.calls and ("connect", "home", "b") in net.wlan.calls
    assert states[0] == "starting" and states[-1] == "up"
    m = w.metrics()
    assert m["ssid"] == "home" and m["rssi_dbm"] == -61 and m["ip"] == "192.168.1.20"
    asyncio.run(w.down())
    assert w.state == OFF and net.wlan.calls[-1] == ("active", False)


def test_wifi_reasons():
    net = FakeNetwork(fail=FakeNetwork.STAT_WRONG_PASSWORD)
    w = WiFi("wifi", net, {"ssid": "home", "password": "x", "join_ms": 1000})
    e = raises(BearerError, asyncio.run, w.up())
    assert e.reason == "wrong-password" and w.state == FAILED and w.reason == "wrong-password"
    net = FakeNetwork(fail=FakeNetwork.STAT_CONNECTING)  # never gets anywhere
    w = WiFi("wifi", net, {"ssid": "home", "password": "x", "join_ms": 400})
    assert raises(BearerError, asyncio.run, w.up()).reason == "join-timeout"
    assert raises(BearerError, WiFi, "wifi", net, {}).reason == "no-ssid"
    assert raises(BearerError, asyncio.run, w.open("h", 1)).reason == "down"


def test_lan_builds_the_phy_from_board_json():
    net = FakeNetwork()
    eth = {"phy": "LAN8720", "phy_addr": 1, "mdc": 23, "mdio": 18, "power": 16, "ref_clk": 0, "ref_clk_mode": "in"}
    lan = LAN("eth", net, FakeMachine, eth)
    asyncio.run(lan.up())
    kw = net.lan_kw
    assert kw["mdc"].n == 23 and kw["mdio"].n == 18 and kw["power"].n == 16 and kw["ref_clk"].n == 0
    assert kw["phy_type"] == FakeNetwork.PHY_LAN8720 and kw["phy_addr"] == 1
    assert kw["ref_clk_mode"] == FakeMachine.Pin.IN
    assert lan.state == UP and lan.metrics()["ip"] == "10.0.0.7"
    assert raises(BearerError, LAN, "eth", net, FakeMachine, None).reason == "no-phy"
    bad = LAN("eth", net, FakeMachine, dict(eth, phy="XYZ"))  # a PHY this firmware lacks
    assert raises(BearerError, asyncio.run, bad.up()).reason == "phy" and bad.state == FAILED
