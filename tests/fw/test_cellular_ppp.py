# hub/bearers/ppp.py on both runtimes: the cellular bearer's PPP data path
# (ESP32: network.PPP) against a scripted modem (atfake.py) and stand-ins for
# network.PPP and machine.UART that behave as MicroPython's sources say
# (pppstand.py, cited function by function there).

import asyncio

from atfake import FakeModem
from pppstand import CHAP, LCP, PPP, Uart, frame, frames
from test_cellular import OK, sim7080g_answers

from hub.bearers import BearerError
from hub.bearers.cellular import Cellular

CONNECT = b"\r\nCONNECT 150000000\r\n"

# The scaffolding is compiled from source into the heap on the unix port: this module,
# pppstand, atfake and test_cellular hold ~62 KB once imported (measured: gc.mem_alloc()
# after the imports), leaving 20 KB for a bearer that takes ~17 KB up (engine, buffers,
# PPP): at 100 KB an allocation failed now and then. The bearer's own heap is
# bench_modem's figure (the scaffolding is not on a board).
MPY_HEAP = "160k"


class PppModem(FakeModem):
    """In data mode the network's PPP peer: `peer` says how it answers the hub's
    LCP Configure-Request: "ack" (the link comes up), "chap-fail", or "silent".
    '+++' after a call answers OK when `escape_ok` (a modem still in data mode)."""

    def __init__(self, answers, peer="ack", escape_ok=True):
        FakeModem.__init__(self, answers)
        self.peer = peer
        self.escape_ok = escape_ok
        self.tail = b""  # what follows the last whole frame the hub sent in data mode
        self.got = []  # (proto, code) of the hub's frames

    def write(self, data):
        data = bytes(data)
        if self.data_mode and data != b"+++":
            self.writes.append((0, data))
            new, self.tail = frames(self.tail + data)
            self.got += new
            for proto, code in new:
                if (proto, code) == (LCP, 1):
                    if self.peer == "ack":
                        self.push(frame(LCP, 2))  # Configure-Ack
                    elif self.peer == "chap-fail":
                        self.push(frame(CHAP, 4))  # Failure
            return
        was = self.data_mode
        FakeModem.write(self, data)
        if data == b"+++" and was and self.escape_ok:
            self.push(OK)


def answers():
    a = sim7080g_answers()
    a["ATD*99#"] = CONNECT
    a["ATH"] = OK
    a["AT+CPOWD=1"] = OK
    return a


def run(m, cfg=None, then=None):
    """Cellular over m with network.PPP's stand-in; returns (bearer, uart, outcome, then's result)."""
    PPP.made[:] = []
    uart = Uart(m)
    c = {"apn": "internet", "guard_ms": 20, "sync_ms": 100}
    c.update(cfg or {})

    async def main():
        cell = Cellular("cell0", m, c, "sim7080g", make_ppp=lambda: PPP(uart))
        try:
            await cell.up()
            outcome = "up"
        except BearerError as e:
            outcome = e.reason
        extra = await then(cell) if then else None
        cell.at.stop()
        if uart._task is not None:
            uart._task.cancel()
        return cell, outcome, extra

    cell, outcome, extra = asyncio.run(main())
    return cell, uart, outcome, extra


def test_ppp_dials_hands_the_uart_over_and_comes_up():
    m = PppModem(answers())
    cell, uart, outcome, _ = run(m)
    assert outcome == "up" and cell.state == "up" and cell.ip == "10.64.7.3"
    assert "ATD*99#" in m.commands and "AT+CNACT=0,1" not in m.commands  # no vendor context: the call is PPP's
    assert m.commands[-1] == "ATD*99#"  # no AT command while PPP owns the UART
    p = PPP.made[0]
    assert p.connects == [(0, None, None)] and p.default and p.isconnected()
    assert uart.irqs == [(True, Uart.IRQ_RXIDLE)]  # connect() polls it on RXIDLE
    assert m.got[0] == (LCP, 1)  # what followed CONNECT on the line was PPP, framed
    mt = cell.metrics()
    assert (mt["data"], mt["ppp_dials"], mt["ppp_status"], mt["ip"]) == ("ppp", 1, 4, "10.64.7.3")


def test_chap_credentials_go_to_network_ppp():
    m = PppModem(answers())
    _, _, outcome, _ = run(m, {"user": "hub", "password": "s3cret", "auth": "chap"})
    assert outcome == "up"
    assert PPP.made[0].connects == [(PPP.SEC_CHAP, "hub", "s3cret")]


def test_auth_network_ppp_cannot_do_is_refused_before_dialling():
    m = PppModem(answers())
    _, _, outcome, _ = run(m, {"user": "hub", "password": "x", "auth": "any"})
    assert outcome == "bad-config" and "ATD*99#" not in m.commands and PPP.made == []


def test_no_carrier_on_dial_is_its_own_reason():
    a = answers()
    a["ATD*99#"] = b"\r\nNO CARRIER\r\n"
    m = PppModem(a)
    cell, _, outcome, _ = run(m)
    assert outcome == "no-carrier" and cell.state == "failed" and cell.reason == "no-carrier"
    assert PPP.made == []  # nothing handed over


def test_authentication_failure_gives_the_uart_back_and_hangs_up():
    m = PppModem(answers(), peer="chap-fail")
    cell, uart, outcome, _ = run(m, {"user": "hub", "password": "wrong", "auth": "chap"})
    assert outcome == "ppp-auth" and cell.reason == "ppp-auth"
    assert PPP.made[0].status() == 0 and uart.irqs[-1] == (False, 0)  # freed, IRQ given back
    heard = [w[1] for w in m.writes]
    assert heard.index(b"+++") > heard.index(b"ATD*99#\r")
    assert m.commands[-1] == "ATH"  # back in command mode, the call hung up


def test_a_peer_that_never_answers_times_out():
    m = PppModem(answers(), peer="silent")
    cell, _, outcome, _ = run(m, {"ppp_ms": 200})
    assert outcome == "ppp-timeout" and m.commands[-1] == "ATH"


def test_a_dropped_link_fails_the_bearer_and_the_next_up_dials_again():
    m = PppModem(answers())

    async def then(cell):
        from hub.bearers import ppp
        ppp.WATCH_MS = 20
        cell.link._task.cancel()
        cell.link._task = asyncio.create_task(cell.link._watch())
        m.push(frame(LCP, 5))  # the network ends the link: Terminate-Request
        for _ in range(100):
            if cell.state == "failed":
                break
            await asyncio.sleep(0.01)
        seen = [cell.state, cell.reason, PPP.made[0].status(), cell.metrics()["ppp_drops"]]
        await cell.up()  # what the manager does with a failed bearer
        seen += [cell.state, cell.metrics()["ppp_status"], m.commands.count("ATD*99#"), len(PPP.made)]
        await cell.down()
        return seen

    cell, uart, outcome, seen = run(m, then=then)
    assert outcome == "up"
    # lwIP's PPPERR_CONNECT: the link is over, so the bearer failed (a manager brings it up again)
    assert seen[:4] == ["failed", "data-lost", -6, 1]
    assert seen[4:] == ["up", 4, 2, 2]  # dialled again, a new network.PPP on the same UART
    assert m.commands.count("ATH") == 2  # the first call hung up before the second dial
    assert cell.state == "off" and cell.link is None
    assert uart.irqs[-1] == (False, 0) and uart.handler is None
    # no AT+CNACT=0,0: PPP had no vendor context; no power-off: no PWRKEY could switch it on again
    assert m.commands[-1] == "ATH" and "AT+CPOWD=1" not in m.commands


# The ESP32 port's choice (hub/ports/esp32.py), with stand-ins for its machine and
# network modules: CPython only, where sys.modules can hold them (the unix port's
# own machine module would win there).
CPYTHON_ONLY = ("test_esp32_port_uses_ppp_only_where_cellular_is_the_one_ip_bearer",)


def _esp32(has_ppp):
    import sys

    class Machine:
        PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

        class Pin:
            OUT = 1

            def __init__(self, *a, **k):
                pass

            def value(self, v=None):
                pass

        class UART:
            def __init__(self, *a, **k):
                self.args = (a, k)

            def read(self, n=-1):
                return None

            def write(self, b):
                return len(b)

    class Network:
        STA_IF = 0

    if has_ppp:
        Network.PPP = PPP
    sys.modules["machine"] = Machine
    sys.modules["network"] = Network
    sys.modules.pop("hub.ports.esp32", None)
    from hub.bearers import serial
    serial.stream = lambda uart: uart  # CPython's asyncio.StreamReader takes no stream
    from hub.ports.esp32 import Port
    return Port({"name": "t", "pins": {"modem_uart": {"id": 1, "tx": 27, "rx": 26}}, "modem": "sim7080g"})


def test_esp32_port_uses_ppp_only_where_cellular_is_the_one_ip_bearer():
    import sys
    saved = {k: sys.modules.get(k) for k in ("machine", "network")}
    from hub.bearers import serial
    stream = serial.stream
    try:
        cell = {"kind": "cellular", "name": "cell", "apn": "internet"}
        wifi = {"kind": "wifi", "name": "wifi", "networks": [{"ssid": "home", "password": "x"}]}
        alone = _esp32(True).bearers({"bearers": [cell]})[0]
        assert alone.make_ppp is not None
        PPP.made[:] = []
        p = alone.make_ppp()
        assert p.stream.args[0][0] == 1  # network.PPP on the modem's own UART, not the asyncio stream
        assert _esp32(True).bearers({"bearers": [wifi, cell]})[1].make_ppp is None  # sockets beside Wi-Fi
        forced = dict(cell, data="ppp")
        assert _esp32(True).bearers({"bearers": [wifi, forced]})[1].make_ppp is not None
        assert _esp32(False).bearers({"bearers": [cell]})[0].make_ppp is None  # a firmware without PPP
        try:
            _esp32(True).bearers({"bearers": [dict(cell, data="pp")]})
        except BearerError as e:
            assert e.reason == "bad-config" and "ppp or sockets" in str(e)
        else:
            raise AssertionError("a data path the hub does not know was taken")
    finally:
        serial.stream = stream
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        sys.modules.pop("hub.ports.esp32", None)
