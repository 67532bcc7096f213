# The cellular bearer: an AT modem brought from power-on to a registered,
# data-capable link, with a reason for every way that can fail.
#
# Bring-up (27.007 plus the profile's vendor commands):
#   AT (until it answers; else '+++' in case it is in data mode; else pulse PWRKEY once)
#   ATE0  AT+CMEE=1
#   AT+CPIN?  [AT+CPIN="<pin>" once, never twice: a wrong PIN tried again locks the SIM]
#   AT+CPSMS=0  AT+CEDRXS=0  (radio duty off: see _radio_duty)
#   AT+CEREG=2  AT+CGDCONT=1,"IP","<apn>"  then registration: +CEREG URCs, polled with AT+CEREG?
#   AT+COPS?  AT+CSQ  [AT+CESQ]  then the profile's data context (AT+CNACT / AT+QIACT) and its IP
# Why reasons and not just "down": a hub in a patient's home with no SIM, a
# locked SIM or a network that denies it needs a technician, and one that is
# only searching needs patience; status and telemetry must say which.

from hub.bearers import CONNECTING, DEGRADED, FAILED, OFF, SEARCHING, STARTING, UP, Bearer, BearerError
from hub.bearers import atparse, modems
from hub.bearers.at import ATError, Engine, sleep_ms, ticks_diff, ticks_ms

SEARCH_MS = 90000  # 27.007 gives no bound; modems document 60-90 s for a network search
POLL_MS = 2000     # AT+CEREG? this often while no URC says anything


def _cme_reason(e, default):
    if e.kind == "cme":
        return atparse.cme_reason(e.code, default)
    if e.kind in ("timeout", "rebooted", "closed"):
        return {"timeout": "no-response"}.get(e.kind, e.kind)
    return default


class Cellular(Bearer):
    """config: apn (required), user, password, auth ('pap', 'chap', 'any'),
    pin, roaming (default True), search_ms, poll_ms. stream: the modem's byte
    stream (hub/bearers/serial.py). pwrkey: an async function(ms) that pulses
    the modem's PWRKEY, or None. make_ppp: () -> a network.PPP on the modem's
    UART, where the board has it (hub/bearers/ppp.py); None: the modem's own sockets."""

    kind = "cellular"

    def __init__(self, name, stream, config, profile="sim7080g", pwrkey=None, on_change=None, make_ppp=None):
        super().__init__(name, on_change)
        if not config.get("apn"):
            raise BearerError("no-apn", "no APN provisioned for %s" % name)
        self.cfg = config
        self.profile = modems.get(profile)
        self.pwrkey = pwrkey
        self.at = Engine(stream, on_urc=self._on_urc, on_reboot=self._on_reboot)
        self.pin_refused = False
        self.reg = None
        self.tac = None
        self.ci = None
        self.operator = None
        self.act = None
        self.rssi_dbm = None
        self.rsrp_dbm = None
        self.rsrq_ddb = None
        self.ip = None
        self.radio_duty = None  # "off" once PSM and eDRX are switched off, "unknown" if the modem refused
        self.register_ms = None
        self.connect_ms = None
        self.attempts = 0
        self.bad_replies = 0
        self._boots = 0
        self._reg_changed = False
        self.sockets = {}  # cid -> ModemSocket (hub/bearers/sockets.py)
        self.make_ppp = make_ppp
        self.link = None  # the PppLink while PPP carries the data

    # ------------------------------------------------------------ URCs

    def _on_urc(self, line):
        if self.sockets:
            try:
                su = self.profile["sock_urc"](line)
            except ValueError:
                su = None
            if su is not None:
                s = self.sockets.get(su[0])
                if s is not None:
                    if su[1] == "data":
                        s.announced()
                    else:
                        s.gone()
                return
        if line.startswith("+CEREG:"):
            try:
                stat, tac, ci = atparse.creg(line, True)
            except atparse.ATParseError:
                return
            self.reg = stat
            if tac:
                self.tac, self.ci = tac, ci
            self._reg_changed = True
            if self.state in (UP, DEGRADED):
                if stat in (atparse.REG_HOME, atparse.REG_ROAMING):
                    self.set_state(UP)
                else:
                    self.set_state(DEGRADED, "lost-registration")
        elif self.state in (UP, DEGRADED) and line.startswith(self.profile["pdp_down_urc"]):
            # The network took the data context down (BG96 names it: '+QIURC: "pdpdeact",1'):
            # the modem's sockets went with it and nothing comes back by itself. Failed, so
            # that a manager brings the bearer up again, as after a reboot.
            for s in self.sockets.values():
                s.gone()
            self.sockets = {}
            self.set_state(FAILED, "data-lost")
        elif self.state in (UP, DEGRADED) and line == "NO CARRIER":
            self.set_state(DEGRADED, "data-lost")

    def _on_reboot(self):
        # Whatever we set up is gone (echo back on, context down, sockets): say so now.
        for s in self.sockets.values():
            s.gone()
        self.sockets = {}
        if self.state != OFF:
            self.set_state(FAILED, "rebooted")

    # ------------------------------------------------------------ bring-up

    async def up(self):
        """Registered and data context active, or BearerError(reason)."""
        self.attempts += 1
        if self.link is not None:  # a PPP call from before: the UART back to commands first
            await self.link.stop()
            self.link = None
        self.at.start()
        t0 = ticks_ms()
        self.set_state(STARTING)
        try:
            await self._start()
            self._phase(SEARCHING)
            await self._register(t0)
            self.register_ms = ticks_diff(ticks_ms(), t0)
            await self._telemetry()
            self._phase(CONNECTING)
            if self.make_ppp is not None:
                from hub.bearers.ppp import PppLink  # only a board with network.PPP loads it
                link = PppLink(self, self.make_ppp)
                self.ip = await link.start()
                self.link = link
            else:
                await self._pdp()
            self.connect_ms = ticks_diff(ticks_ms(), t0)
            self._phase(UP)
        except BearerError as e:
            self.set_state(FAILED, e.reason)
            raise
        except ATError as e:
            reason = _cme_reason(e, "modem-error")
            self.set_state(FAILED, reason)
            raise BearerError(reason, str(e))
        except atparse.ATParseError as e:  # a reply we cannot read: say so, never crash the caller
            self.bad_replies += 1
            self.set_state(FAILED, "bad-reply")
            raise BearerError("bad-reply", str(e))

    def _phase(self, state):
        # A reboot between two commands fails neither, but the modem has
        # forgotten ATE0, AT+CMEE, AT+CEREG=2 and the context: start again.
        if self.at.reboots != self._boots:
            raise BearerError("rebooted", "the modem restarted during bring-up")
        self.set_state(state)

    async def _start(self):
        at = self.at
        sync_ms = self.cfg.get("sync_ms", 500)  # how long one AT may wait while the modem boots
        if not await at.sync(timeout_ms=sync_ms):
            # A hub that restarted during a data call finds the modem still in
            # data mode, deaf to AT: leave it with the escape before anything harsher.
            try:
                await at.escape(guard_ms=self.cfg.get("guard_ms", 1000))
            except ATError:
                pass
            if not await at.sync(timeout_ms=sync_ms):
                if self.pwrkey is None:
                    raise BearerError("no-response", "the modem does not answer AT")
                await self.pwrkey(self.profile["pwrkey_ms"])
                if not await at.sync(tries=20, timeout_ms=sync_ms):
                    raise BearerError("no-response", "the modem does not answer AT after PWRKEY")
        self._boots = at.reboots  # it answers: from here on, a reboot undoes what was set up
        await at.cmd("ATE0")
        await at.cmd("AT+CMEE=1")
        await self._sim()

    async def _sim(self):
        at = self.at
        try:
            state = atparse.cpin(await at.query("AT+CPIN?", 5000))
        except ATError as e:
            raise BearerError(_cme_reason(e, "sim-failure"), str(e))
        if state == "SIM PIN":
            pin = self.cfg.get("pin")
            if not pin:
                raise BearerError("pin-locked", "the SIM wants a PIN and none is provisioned")
            if self.pin_refused:
                raise BearerError("bad-pin", "the provisioned PIN was refused once; not trying it again")
            try:
                await at.cmd("AT+CPIN=" + atparse.quote(pin), 5000)
            except ATError as e:
                if e.kind == "cme" and e.code in (12, 16):
                    self.pin_refused = True
                    raise BearerError("bad-pin", "the SIM refused the provisioned PIN")
                raise
            state = atparse.cpin(await at.query("AT+CPIN?", 5000))
        if state == "SIM PUK":
            raise BearerError("puk-locked", "the SIM is PUK-locked")
        if state != "READY":
            raise BearerError("sim-failure", "SIM state %s" % state)

    async def _radio_duty(self):
        """PSM and eDRX off. A hub that may carry an alarm must be able to send at once and be
        reached at once: in PSM a modem sleeps unreachable until its periodic TAU (up to hours),
        in eDRX for up to a paging cycle (minutes). 27.007 7.38 (+CPSMS) and 7.40 (+CEDRXS),
        which both profiles' modems take. A modem that refuses them is reported ("unknown" in
        the metrics), not failed: a link with power saving is better than none."""
        self.radio_duty = "off"
        for c in ("AT+CPSMS=0", "AT+CEDRXS=0"):
            try:
                await self.at.cmd(c)
            except ATError as e:
                if e.kind not in ("error", "cme"):
                    raise
                self.radio_duty = "unknown"

    async def _register(self, t0):
        at = self.at
        await self._radio_duty()
        await at.cmd("AT+CEREG=2")
        await at.cmd("AT+CGDCONT=1,\"IP\"," + atparse.quote(self.cfg["apn"]))
        search = self.cfg.get("search_ms", SEARCH_MS)
        poll = self.cfg.get("poll_ms", POLL_MS)
        roaming = self.cfg.get("roaming", True)
        while True:
            self._reg_changed = False
            await self._query_reg()
            while True:
                if self.reg == atparse.REG_HOME:
                    return
                if self.reg == atparse.REG_ROAMING:
                    if roaming:
                        return
                    raise BearerError("roaming-not-allowed", "registered roaming, and roaming is not allowed")
                if self.reg == atparse.REG_DENIED:
                    raise BearerError("denied", "the network denied registration")
                left = search - ticks_diff(ticks_ms(), t0)
                if left <= 0:
                    raise BearerError("search-timeout", "not registered after %d ms (%s)"
                                      % (search, atparse.reg_name(self.reg)))
                if at.closed is not None:
                    raise BearerError("closed", str(at.closed))
                if self.state == FAILED:  # rebooted while we waited
                    raise BearerError(self.reason or "rebooted")
                self._reg_changed = False
                await at.next_urc(min(left, poll))
                if not self._reg_changed:
                    break  # nothing said: ask again

    async def _query_reg(self):
        """AT+CEREG? into self.reg; a +CEREG URC that landed inside the reply
        (same prefix, no <n>) is handled as the URC it is."""
        reply = None
        for ln in (await self.at.cmd("AT+CEREG?")).lines:
            if ln.startswith("+CEREG:"):
                if atparse.creg_is_urc(ln):
                    self._on_urc(ln)
                else:
                    reply = ln
        if reply is None:
            raise BearerError("modem-error", "no +CEREG line in the reply to AT+CEREG?")
        stat, tac, ci = atparse.creg(reply, False)
        self.reg = stat
        if tac:
            self.tac, self.ci = tac, ci

    async def _telemetry(self):
        at = self.at
        try:
            _, self.operator, act = atparse.cops(await at.query("AT+COPS?", 10000))
            self.act = self.profile["act"].get(act, act)
        except (ATError, atparse.ATParseError):
            pass  # telemetry only; the link does not depend on it
        await self.signal()

    async def signal(self):
        """Refresh the signal figures (also for periodic telemetry once up)."""
        at = self.at
        try:
            self.rssi_dbm = atparse.csq_dbm(await at.query("AT+CSQ"))
        except (ATError, atparse.ATParseError):
            self.rssi_dbm = None
        if self.profile["cesq"]:
            try:
                self.rsrp_dbm, self.rsrq_ddb = atparse.cesq(await at.query("AT+CESQ"))
            except (ATError, atparse.ATParseError):
                self.rsrp_dbm = self.rsrq_ddb = None

    async def _pdp(self):
        at = self.at
        p = self.profile
        cfg = self.cfg
        at.urcs[:] = []
        try:
            for command, timeout in p["pdp"](cfg["apn"], cfg.get("user"), cfg.get("password"), cfg.get("auth")):
                await at.cmd(command, timeout)
        except ATError as e:
            raise BearerError(_cme_reason(e, "pdp-failed"), str(e))
        want = p["pdp_up_urc"]
        if want:
            t0 = ticks_ms()
            while True:
                left = 30000 - ticks_diff(ticks_ms(), t0)
                if left <= 0:
                    raise BearerError("pdp-failed", "no %s" % want)
                u = await at.next_urc(left)
                if u == want:
                    break
                if u is not None and u.startswith(p["pdp_down_urc"]):
                    raise BearerError("pdp-failed", "the network refused the data context")
                if self.state == FAILED:
                    raise BearerError(self.reason or "rebooted")
        ln = await at.query(p["pdp_query"])
        self.ip = p["ip"](ln)
        if not self.ip:
            raise BearerError("pdp-failed", "no address in %r" % ln)

    async def open(self, host, port, ssl=None, server_hostname=None):
        """A TCP connection through the modem's own IP stack (hub/bearers/sockets.py):
        one object that reads and writes, like MicroPython's asyncio Stream. host
        is an address or a name the modem resolves with the network's DNS. With
        ssl (a tls.SSLContext), TLS runs here on the hub (hub/bearers/tlsstream.py),
        verifying the server against the hub's own CA, not in the modem; the
        handshake happens in the first write, which raises OSError("TLS: ...")
        for a server the hub cannot verify."""
        if self.state not in (UP, DEGRADED):
            raise BearerError("down", "%s is %s" % (self.name, self.state))
        if self.link is not None:
            return await self.link.open(host, port, ssl, server_hostname)
        from hub.bearers.sockets import open_socket
        s = await open_socket(self, host, port)
        if ssl is None:
            return s
        from hub.bearers.tlsstream import TlsStream
        try:
            return TlsStream(s, ssl, server_hostname or host)
        except BaseException:
            # No room for mbedTLS's buffers (wrap_socket: OSError(ENOMEM)) or the stream's:
            # the modem's socket goes, or every such failure would keep one of its few
            # sockets open and the bearer would soon have none left to open.
            await s.aclose()
            raise

    async def down(self):
        """Context down, then the modem powered off (it draws current searching otherwise) if
        this board can power it on again: without a PWRKEY pin (the Pico W's board, the virtual
        hub) a modem switched off by command stays off until someone pulls its power, so a
        bearer taken down to be brought up again (the manager's re-up) would be lost for good."""
        for s in list(self.sockets.values()):
            await s.aclose()
        at = self.at
        steps = (self.profile["pdp_off"], self.profile["power_off"])
        if self.pwrkey is None:
            steps = steps[:1]
        if self.link is not None:  # PPP down and the call hung up; no vendor context was opened
            await self.link.stop()
            self.link = None
            steps = steps[1:]
        if at.closed is None and self.state != OFF:
            for command, timeout in steps:
                try:
                    await at.cmd(command, timeout)
                except ATError:
                    continue  # already down; the power-off below still applies
                if command == self.profile["pdp_off"][0]:
                    await self._said(self.profile["pdp_off_urc"], 3000)
        at.stop()
        self.ip = None
        self.set_state(OFF)

    async def _said(self, urc, ms):
        """Wait (at most ms) for the modem's word that what was asked is done: a SIMCom modem
        reports its context down after the OK; left unread, that word would be taken by the next
        bring-up, the manager's re-up, as the network refusing the new context."""
        if not urc:
            return
        t0 = ticks_ms()
        while True:
            left = ms - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                return
            u = await self.at.next_urc(left)
            if u is None or u.startswith(urc):
                return

    def metrics(self):
        m = super().metrics()
        at = self.at
        m.update({
            "profile": self.profile["name"], "reg": None if self.reg is None else atparse.reg_name(self.reg),
            "operator": self.operator, "act": self.act, "rssi_dbm": self.rssi_dbm,
            "rsrp_dbm": self.rsrp_dbm, "rsrq_ddb": self.rsrq_ddb, "tac": self.tac, "ci": self.ci,
            "radio_duty": self.radio_duty, "register_ms": self.register_ms, "connect_ms": self.connect_ms, "ip": self.ip,
            "attempts": self.attempts, "bad_replies": self.bad_replies, "at_tx": at.tx, "at_rx": at.rx, "at_timeouts": at.timeouts,
            "reboots": at.reboots, "garbage": at.garbage, "stray": at.stray, "at_memory_errors": at.memory_errors,
        })
        if self.link is not None:
            m.update(self.link.metrics())
        return m


async def pulse(pin, ms):
    """PWRKEY: low for ms, then released (pin is a machine.Pin from the port)."""
    pin.value(1)  # most boards drive PWRKEY through an NPN: 1 here pulls the modem's pin low
    await sleep_ms(ms)
    pin.value(0)

