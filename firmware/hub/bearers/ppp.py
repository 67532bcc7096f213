# Cellular data over PPP: the modem dials its packet-domain context and the
# board's own IP stack (lwIP, through MicroPython's network.PPP) takes the
# UART, so TCP and TLS run on the hub as on Wi-Fi. Imported only by a
# cellular bearer the port gave a PPP factory (ESP32; docs/bearers.md), so
# no other hub pays its heap.
#
# Why the hand-over is shaped so (MicroPython ports/esp32/network_ppp.c and
# extmod/network_ppp_lwip.c, v1.24+; docs/library/network.PPP.rst):
# * PPP(stream) reads the UART itself: connect() sets
#   stream.irq(ppp.poll, stream.IRQ_RXIDLE), and poll() reads until the
#   stream is empty. Two readers would split the frames, so the AT engine's
#   reader is stopped before connect() and started again only after
#   disconnect() has given the IRQ back (status() 0: the PCB freed).
# * connect(security, user, key) returns at once; the link comes up "in the
#   background": isconnected() turns True, or status() turns negative
#   (-PPPERR_*: lwIP netif/ppp/ppp.h, 6 connection lost, 7 authentication).
#   It raises OSError(EALREADY) when connecting or connected, ValueError
#   for a security other than SEC_NONE/SEC_PAP/SEC_CHAP (0/1/2).
# * connect() makes PPP lwIP's default interface and its DNS the global one
#   (pppapi_set_default, ppp_set_usepeerdns): sockets follow it. That is why
#   the ESP32 port uses PPP only where cellular is the board's one IP bearer.
# * Back to commands: disconnect() (LCP terminate); a modem whose PPP peer saw
#   the terminate leaves data mode itself and says NO CARRIER; one that did not
#   gets the V.250 escape ('+++' between guard times); then ATH, so the modem
#   leaves the data call.

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

from hub.bearers import DEGRADED, FAILED, UP, BearerError
from hub.bearers.at import ATError, sleep_ms, ticks_diff, ticks_ms

DIAL = "ATD*99#"   # 27.007 10.2.1.1: packet domain, the context AT+CGDCONT=1 defined
DIAL_MS = 30000
PPP_MS = 30000     # LCP + authentication + IPCP; lwIP's own retries end well before
WATCH_MS = 1000
SEC = {None: 0, "none": 0, "pap": 1, "chap": 2}  # network.PPP.SEC_NONE / SEC_PAP / SEC_CHAP


class PppLink:
    """The PPP data path of one Cellular bearer. make_ppp() -> a network.PPP
    on the modem's UART (the port closes over it)."""

    def __init__(self, cell, make_ppp):
        self.cell = cell
        self.make_ppp = make_ppp
        self.ppp = None
        self.ip = None
        self.dials = 0
        self.drops = 0
        self._task = None

    async def start(self):
        cell = self.cell
        at = cell.at
        cfg = cell.cfg
        auth = cfg.get("auth") if cfg.get("user") is not None else None
        if auth not in SEC:
            raise BearerError("bad-config", "network.PPP takes auth pap or chap, not %r" % auth)
        r = await at.cmd(DIAL, DIAL_MS, check=False)
        if not r.final.startswith("CONNECT"):
            raise BearerError("no-carrier" if r.final == "NO CARRIER" else "dial-failed",
                              "%s: %s" % (DIAL, r.final))
        self.dials += 1
        at.stop()  # from here the UART is PPP's (its RXIDLE IRQ polls it)
        try:
            ppp = self.ppp = self.make_ppp()
            if SEC[auth]:
                ppp.connect(security=SEC[auth], user=cfg["user"], key=cfg.get("password") or "")
            else:
                ppp.connect()
        except (OSError, ValueError, TypeError) as e:
            await self._back()
            raise BearerError("ppp-failed", "network.PPP: %s" % e)
        t0 = ticks_ms()
        while not ppp.isconnected():
            st = ppp.status()
            why = None
            if st < 0:
                why = "ppp-auth" if st == -7 else "ppp-failed"
            elif ticks_diff(ticks_ms(), t0) > cfg.get("ppp_ms", PPP_MS):
                why = "ppp-timeout"
            if why:
                await self._back()
                raise BearerError(why, "PPP status %d" % st)
            await sleep_ms(50)
        self.ip = ppp.ipconfig("addr4")[0]
        self._task = asyncio.create_task(self._watch())
        return self.ip

    async def _watch(self):
        # The AT engine is deaf while PPP owns the UART: the link's own state is
        # the only news of a dropped call (NO CARRIER ends up as lwIP's "connection lost").
        # A link in ERROR is over (lwIP does not dial again): FAILED, so that the manager
        # brings the bearer up again, which dials anew; one only renegotiating is DEGRADED.
        cell = self.cell
        while True:
            await sleep_ms(WATCH_MS)
            ppp = self.ppp
            if ppp is None:
                return
            ok = ppp.isconnected()
            if not ok and cell.state in (UP, DEGRADED) and ppp.status() < 0:
                self.drops += 1
                self._task = None
                cell.set_state(FAILED, "data-lost")
                return
            if not ok and cell.state == UP:
                cell.set_state(DEGRADED, "data-lost")
            elif ok and cell.state == DEGRADED and cell.reason == "data-lost":
                cell.set_state(UP)

    async def open(self, host, port, ssl=None, server_hostname=None):
        """A TCP stream on the hub's own IP stack, over PPP (its default interface)."""
        if self.ppp is None or not self.ppp.isconnected():
            raise BearerError("down", "%s: PPP is not connected" % self.cell.name)
        if ssl is not None:
            return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname or host)
        return await asyncio.open_connection(host, port)

    async def stop(self):
        """PPP down, the UART back to the AT engine, the data call hung up."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._back()
        self.ip = None

    async def _back(self):
        ppp = self.ppp
        if ppp is not None:
            if ppp.status() < 0 and hasattr(ppp, "active"):
                # in ERROR disconnect() does nothing; the ESP32's active(False) (its __del__)
                # closes the link with nocarrier and frees it, IRQ included
                ppp.active(False)
            else:
                ppp.disconnect()
            for _ in range(60):  # PPPERR_USER frees the PCB and gives the IRQ back: status() 0
                if ppp.status() == 0:
                    break
                await sleep_ms(50)
            self.ppp = None
        at = self.cell.at
        at.start()
        at.data_mode = True  # whatever the modem sends now is not a reply
        guard = self.cell.cfg.get("guard_ms", 1000)
        await sleep_ms(guard)
        if b"NO CARRIER" in at.take_data():
            at.data_mode = False  # PPP's end took it back to commands (V.250 NO CARRIER): no '+++'
        else:
            try:
                await at.escape(guard_ms=guard)
            except ATError:
                pass  # it left data mode unheard and ignores '+++': AT below finds out
        if await at.sync(tries=3, timeout_ms=guard):
            try:
                await at.cmd("ATH", 5000)
            except ATError:
                pass

    def metrics(self):
        return {"data": "ppp", "ppp_dials": self.dials, "ppp_drops": self.drops,
                "ppp_status": None if self.ppp is None else self.ppp.status()}
