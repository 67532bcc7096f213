"""A cellular modem on a pseudo-terminal, speaking the bytes of a SIMCom
SIM7080G or a Quectel BG96, for the hub's AT engine to meet in tests.

Why a simulator and not a recording: the faults that matter (no SIM, PIN,
denied, roaming, a search that takes a minute, a reboot in the middle of a
bring-up, line noise) must be reproducible on demand, and the hub must meet
them through a real tty with real byte timing, as it would a UART.

What it reproduces, byte for byte:
* echo (ATE1 after power-on: the command and its CR come back first), replies
  framed as CR LF <line> CR LF, final OK / ERROR / +CME ERROR in the format
  AT+CMEE chose (0: ERROR, 1: numeric, 2: verbose);
* URCs at their own times, and the ones that fall due while a command is
  being answered written between its echo and its reply, as real modems do
  (research note: "+CEREG arrived inside the ATE0 response");
* the boot banner after a reboot (SIM7080G: RDY, +CFUN: 1, +CPIN: ..., SMS Ready;
  BG96: RDY, +CFUN: 1, +CPIN: ..., +QUSIM: 1, +QIND: SMS DONE, APP RDY), after
  which echo is on and AT+CMEE and AT+CEREG are back to 0;
* the vendor data-context commands (SIM7080G AT+CNCFG/AT+CNACT with the
  +APP PDP URC; BG96 AT+QICSGP/AT+QIACT), power-off, ATD*99# -> CONNECT with
  a loopback data mode left by '+++' between guard times;
* the modems' own TCP sockets (SIM7080G AT+CAOPEN/CASEND/CARECV/CACLOSE with
  +CADATAIND and +CASTATE; BG96 AT+QIOPEN/QISEND/QIRD/QICLOSE with +QIOPEN and
  +QIURC), carrying real TCP from the host, or from a network namespace of its
  own (Scenario.netns: the "cloud" of samband.rig.netns, so that cellular is a
  path apart from the hub's other bearers).

One module: ModemSim is one state machine (power, SIM and PIN, registration,
PDP context, data mode, sockets) behind one pty and one timer list. The URCs,
the command replies and the socket data share one writer and its byte timing
(a URC written between a command's echo and its reply is the point), and the
two dialects differ by one method each (_sim7080g, _bg96) over the same state;
splitting the sockets or a dialect off would make that state an interface.
"""

from __future__ import annotations

import os
import pty
import random
import select
import socket
import threading
import time
import tty
from collections.abc import Iterable
from dataclasses import dataclass, field

VTIME, VMIN = 5, 6

CME_TEXT = {3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted",
            11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 16: "incorrect password",
            30: "no network service", 100: "unknown"}

DIALECTS = {
    "sim7080g": {"boot": ["RDY", "+CFUN: 1", "+CPIN: {cpin}", "SMS Ready"], "act": 7},
    "bg96": {"boot": ["RDY", "+CFUN: 1", "+CPIN: {cpin}", "+QUSIM: 1", "+QIND: SMS DONE", "APP RDY"],
             "act": 8},
}


def _args(s: str) -> list[str]:
    """'0,1,"apn","u","p",3' -> ['0', '1', 'apn', 'u', 'p', '3'] (the simulator's own
    parser: it must not share a bug with the hub's atparse)."""
    out, cur, quoted = [], "", False
    for ch in s:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _ppp_frame(code: int, ident: int, data: bytes = b"") -> bytes:
    """An LCP packet in HDLC-like framing (RFC 1662): FCS-16 over address to data, 0x7E,
    0x7D and control bytes escaped (the default ACCM)."""
    body = bytes([0xFF, 0x03, 0xC0, 0x21, code, ident]) + (4 + len(data)).to_bytes(2, "big") + data
    fcs = 0xFFFF
    for b in body:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    fcs ^= 0xFFFF
    out = bytearray(b"\x7e")
    for b in body + bytes([fcs & 0xFF, fcs >> 8]):
        if b in (0x7E, 0x7D) or b < 0x20:
            out += bytes([0x7D, b ^ 0x20])
        else:
            out.append(b)
    return bytes(out + b"\x7e")


@dataclass
class Scenario:
    """What the simulated modem and its network do. Times are seconds after
    the radio starts searching (power-on with a ready SIM, or PIN entry),
    multiplied by `scale` so that a 60 s search can run in a test in 1.2 s."""
    dialect: str = "sim7080g"
    sim: str = "ready"  # "ready", "absent", "pin", "puk"
    pin: str = "1234"
    registration: list = field(default_factory=lambda: [(0.05, 2), (0.3, 1)])  # (at s, stat)
    scale: float = 1.0
    operator: str = "Telia N"
    act: int = None  # None: the dialect's Cat-M number
    rssi: int = 18  # +CSQ index: -113 + 2*18 = -77 dBm
    rsrq: int = 20  # +CESQ index: 20/2 - 19.5 = -9.5 dB
    rsrp: int = 45  # +CESQ index: 45 - 140 = -95 dBm
    tac: str = "1A2B"
    ci: str = "01A2D101"
    apn: str = None  # None: any APN works; else only this one activates a context
    user: str = None  # with apn: the credentials the network wants (PAP/CHAP)
    password: str = None
    ip: str = "10.64.1.9"
    reboot_on: str = None  # a command (prefix) that makes the modem reboot instead of answering (once)
    reboot_after: tuple = None  # (command prefix, s): reboot s seconds after answering it (once)
    urc_after: tuple = None  # (command prefix, s, line): that URC s seconds after answering it (once),
    # e.g. "NO CARRIER" (the network dropped the data call) or "+CEREG: 0" (registration lost)
    garbage: bool = False  # noise before every reply: bytes out of ASCII and a junk line
    chunked: bool = False  # replies written a few bytes at a time
    urc_in_replies: bool = False  # a +CGEV URC inside every reply (between its lines and its final
    # result), and a +CEREG URC just before every AT+CEREG? reply (the same prefix as the reply)
    guard_s: float = 1.0  # '+++' escape guard time (S12)
    corrupt: dict = None  # {command: information line} answered instead of the right one, then OK
    silent: bool = False  # a modem that is off: reads everything, says nothing
    in_data_call: bool = False  # still in a data call (ATD*99#) when the hub starts talking to it
    ppp: bool = False  # in data mode the network's PPP peer (LCP Configure-Ack, Terminate-Ack and
    # back to commands with NO CARRIER) instead of a loopback
    netns: str = None  # the network namespace the modem's sockets open their TCP in (the lab's
    # "cloud", samband.rig.netns): the mobile network as a path of its own; None: the host's
    power_saving: bool = True  # takes AT+CPSMS / AT+CEDRXS (False: +CME ERROR 4, not supported)
    names: dict = None  # what the mobile network's DNS answers {name: address}; other names are
    # resolved by the host's resolver (in netns: only addresses)


class ModemSim:
    """The modem on a pty: start() it, give `path` to the hub, stop() it.
    `commands` lists every command line received; `rx`/`tx` count bytes."""

    def __init__(self, scenario: Scenario | None = None) -> None:
        self.sc = scenario or Scenario()
        self.dialect = DIALECTS[self.sc.dialect]
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.commands = []
        self.rx = 0
        self.tx = 0
        self.reboots = 0
        # power saving as a Cat-M modem may ship (kept in its NVM across reboots): on until told
        self.psm = True
        self.edrx = True
        self.events = []  # (time, what) for assertions: "reboot", "pdp up", ...
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._requests = []
        self._stop = False
        self._thread = None
        self._rand = random.Random(7)
        self._reboot_on = self.sc.reboot_on
        self._reboot_after = self.sc.reboot_after
        self._urc_after = self.sc.urc_after
        self._power_on(banner=False)
        if self.sc.in_data_call:
            self.data_mode = True
            self._last_data = time.monotonic()
            self._escape_at = None

    # ------------------------------------------------------------ state

    def _power_on(self, banner: bool) -> None:
        self.echo = True
        self.cmee = 0
        self.cereg_n = 0
        self.stat = 0
        self.sim_ready = self.sc.sim == "ready"
        self.radio_t0 = time.monotonic() if self.sim_ready else None
        self.pdp_apn = None
        self.pdp_creds = None
        self.pdp_active = False
        self.data_mode = False
        self.off = self.sc.silent
        self.line = bytearray()
        self.timers = []  # (due, line) URCs waiting for their time
        for sk in getattr(self, "socks", {}).values():
            sk["s"].close()
        self.socks = {}  # cid -> {"s": socket, "buf": bytearray, "ind": bool, "open": bool}
        self._collect = None  # (cid, n, bytearray, final): send data after a '> ' prompt
        if banner:
            cpin = {"ready": "READY", "absent": "NOT INSERTED", "pin": "SIM PIN", "puk": "SIM PUK"}[self.sc.sim]
            for ln in self.dialect["boot"]:
                self._urc(ln.format(cpin=cpin))

    def _cpin_state(self):
        if self.sc.sim == "absent":
            return None
        if self.sim_ready:
            return "READY"
        return "SIM PIN" if self.sc.sim == "pin" else "SIM PUK"

    def _registration(self) -> None:
        """Advance the scripted registration; URCs for every change."""
        if self.radio_t0 is None:
            return
        now = time.monotonic() - self.radio_t0
        stat = 0
        for at, s in self.sc.registration:
            if now >= at * self.sc.scale:
                stat = s
        if stat != self.stat:
            self.stat = stat
            if self.cereg_n:
                self._urc("+CEREG: " + self._cereg_fields())

    def _cereg_fields(self):
        if self.cereg_n >= 2 and self.stat in (1, 5):
            return '%d,"%s","%s",%d' % (self.stat, self.sc.tac, self.sc.ci, self._act())
        return str(self.stat)

    def _act(self):
        return self.dialect["act"] if self.sc.act is None else self.sc.act

    def _next_due(self):
        """Seconds until the next scripted event, or None."""
        dues = [d for d, _ in self.timers]
        if self.radio_t0 is not None:
            for at, _ in self.sc.registration:
                t = self.radio_t0 + at * self.sc.scale
                if t > time.monotonic():
                    dues.append(t)
        if not dues:
            return None
        return max(0.0, min(dues) - time.monotonic())

    # ------------------------------------------------------------ output

    def _write(self, data: bytes) -> None:
        if self.sc.chunked:
            i = 0
            while i < len(data):
                n = self._rand.randint(1, 7)
                os.write(self.master, data[i:i + n])
                i += n
                time.sleep(0.0005)
        else:
            os.write(self.master, data)
        self.tx += len(data)

    def _urc(self, line: str) -> None:
        self._write(b"\r\n" + line.encode() + b"\r\n")

    def _flush_timers(self) -> None:
        now = time.monotonic()
        due = [t for t in self.timers if t[0] <= now]
        self.timers = [t for t in self.timers if t[0] > now]
        for _, ln in due:
            if ln is None:
                self.reboot()
                return
            self._urc(ln)
        self._registration()

    def _later(self, seconds: float, line: str | None) -> None:
        self.timers.append((time.monotonic() + seconds, line))

    def _reply(self, lines: Iterable[str] = (), final: str | None = "OK") -> None:
        out = b""
        if self.sc.garbage:
            out += bytes([0x00, 0xFF, 0x80, 0x1B]) + b"\r\n~#%&junk\r\n"
        for ln in lines:
            out += b"\r\n" + ln.encode() + b"\r\n"
        if self.sc.urc_in_replies:
            out += b"\r\n+CGEV: ME PDN ACT 1\r\n"
        if final:
            out += b"\r\n" + final.encode() + b"\r\n"
        self._write(out)

    def _error(self, code: int) -> None:
        if self.cmee == 1:
            self._reply(final="+CME ERROR: %d" % code)
        elif self.cmee == 2:
            self._reply(final="+CME ERROR: %s" % CME_TEXT.get(code, "unknown"))
        else:
            self._reply(final="ERROR")

    # ------------------------------------------------------------ input

    def _feed(self, data: bytes) -> None:
        if self.off:
            return
        if self.data_mode:
            self._data(data)
            return
        if self._collect is not None:
            cid, n, got, final = self._collect
            take = n - len(got)
            got += data[:take]
            data = data[take:]
            if len(got) < n:
                return
            self._collect = None
            sk = self.socks.get(cid)
            try:
                sk["s"].sendall(bytes(got))
                self._reply(final=final)
            except (OSError, TypeError):
                self._reply(final="ERROR" if final == "OK" else "SEND FAIL")
        for b in data:
            if b in (13, 10):
                if b == 13 or self.line:
                    line = self.line.decode("latin-1")
                    self.line = bytearray()
                    if self.echo:
                        self._write(line.encode("latin-1") + b"\r")
                    if line.strip():
                        self._command(line.strip())
                continue
            self.line.append(b)

    def _data(self, data: bytes) -> None:
        now = time.monotonic()
        if data == b"+++" and now - self._last_data >= self.sc.guard_s * 0.9:
            self._escape_at = now
            return
        self._escape_at = None
        self._last_data = now
        if self.sc.ppp:
            self._ppp(data)
            return
        self._write(data)  # loopback: the "network" echoes what it is sent

    def _ppp(self, data: bytes) -> None:
        """The network's end of PPP, as far as a link up and down needs (RFC 1661 LCP in
        RFC 1662 framing): a Configure-Request is acknowledged, a Terminate-Request too,
        after which the modem is back in command mode and says NO CARRIER."""
        self._pppbuf = getattr(self, "_pppbuf", b"") + data
        while True:
            i = self._pppbuf.find(b"\x7e")
            j = self._pppbuf.find(b"\x7e", i + 1) if i >= 0 else -1
            if j < 0:
                self._pppbuf = self._pppbuf[i:] if i >= 0 else b""
                return
            raw, self._pppbuf = self._pppbuf[i + 1:j], self._pppbuf[j:]
            f = bytearray()
            esc = False
            for b in raw:  # RFC 1662 4.2: 0x7D escapes the next byte, XOR 0x20
                if b == 0x7D:
                    esc = True
                    continue
                f.append(b ^ 0x20 if esc else b)
                esc = False
            if len(f) < 8 or f[:4] != b"\xff\x03\xc0\x21":
                continue
            code, ident = f[4], f[5]
            self.events.append((time.monotonic(), "ppp %d" % code))
            if code == 1:
                self._write(_ppp_frame(2, ident, bytes(f[8:-2])))  # Configure-Ack of its options
            elif code == 5:
                self._write(_ppp_frame(6, ident))  # Terminate-Ack
                self.data_mode = False
                self._urc("NO CARRIER")
                self._pppbuf = b""
                return

    def _command(self, cmd: str) -> None:
        self.commands.append(cmd)
        self.events.append((time.monotonic(), cmd))
        self._flush_timers()  # URCs that fell due land between the echo and the reply
        if self._reboot_on and cmd.startswith(self._reboot_on):
            self._reboot_on = None
            self.reboot()
            return None
        if self._reboot_after and cmd.startswith(self._reboot_after[0]):
            self._later(self._reboot_after[1], None)  # None: reboot, not a URC
            self._reboot_after = None
        if self._urc_after and cmd.startswith(self._urc_after[0]):
            self._later(self._urc_after[1], self._urc_after[2])
            self._urc_after = None
        if self.sc.corrupt and cmd in self.sc.corrupt:
            return self._reply([self.sc.corrupt[cmd]])
        u = cmd.upper()
        if u == "AT":
            return self._reply()
        if u in ("ATE0", "ATE1"):
            self.echo = u == "ATE1"
            return self._reply()
        if u.startswith("AT+CMEE="):
            self.cmee = int(u[8:] or 0)
            return self._reply()
        if u == "AT+CPIN?":
            st = self._cpin_state()
            if st is None:
                return self._error(10)
            return self._reply(["+CPIN: " + st])
        if u.startswith("AT+CPIN="):
            return self._pin(cmd[8:].strip('"'))
        if u.startswith("AT+CEREG="):
            self.cereg_n = int(u[9:])
            return self._reply()
        if u == "AT+CEREG?":
            self._registration()
            if self.sc.urc_in_replies and self.cereg_n:  # the URC of the same prefix, just before the reply
                self._urc("+CEREG: " + self._cereg_fields())
            return self._reply(["+CEREG: %d,%s" % (self.cereg_n, self._cereg_fields())])
        if u.startswith("AT+CPSMS=") or u.startswith("AT+CEDRXS="):  # 27.007 7.38, 7.40
            if not self.sc.power_saving:
                return self._error(4)
            on = u.split("=", 1)[1][:1] == "1"
            if u.startswith("AT+CPSMS="):
                self.psm = on
            else:
                self.edrx = on
            return self._reply()
        if u.startswith("AT+CGDCONT="):
            return self._reply()
        if u == "AT+COPS?":
            if self.stat in (1, 5):
                return self._reply(['+COPS: 0,0,"%s",%d' % (self.sc.operator, self._act())])
            return self._reply(["+COPS: 0"])
        if u == "AT+CSQ":
            return self._reply(["+CSQ: %d,99" % (self.sc.rssi if self.stat in (1, 5) else 99)])
        if u == "AT+CESQ" and self.sc.dialect == "bg96":
            return self._reply(["+CESQ: 99,99,255,255,%d,%d" % (self.sc.rsrq, self.sc.rsrp)])
        if u.startswith("ATD*99"):
            if self.stat not in (1, 5):
                return self._reply(final="NO CARRIER")
            self.data_mode = True
            self._last_data = time.monotonic()
            self._escape_at = None
            return self._reply(final="CONNECT 150000000")
        if u in ("ATH", "ATH0"):  # V.250 6.3.6: hang up the data call left by '+++'
            self.data_mode = False
            return self._reply()
        if u == "ATO":
            self.data_mode = True
            self._last_data = time.monotonic()
            self._escape_at = None
            return self._reply(final="CONNECT 150000000")
        if self.sc.dialect == "sim7080g":
            return self._sim7080g(cmd, u)
        return self._bg96(cmd, u)

    def _pin(self, pin: str) -> None:
        if self.sc.sim != "pin" or self.sim_ready:
            return self._error(3)
        if pin != self.sc.pin:
            return self._error(16)
        self.sim_ready = True
        self.radio_t0 = time.monotonic()
        self._reply()
        self._urc("+CPIN: READY")

    def _pdp_allowed(self) -> bool:
        if self.stat not in (1, 5):
            return False
        if self.sc.apn is not None and self.pdp_apn != self.sc.apn:
            return False
        if self.sc.user is not None and self.pdp_creds != (self.sc.user, self.sc.password):
            return False
        return True

    def _sim7080g(self, cmd: str, u: str) -> None:
        if u.startswith("AT+CAOPEN="):
            a = _args(cmd[10:])
            cid = int(a[0])
            ok = self.pdp_active and self._connect(cid, a[3], int(a[4]))
            return self._reply(["+CAOPEN: %d,%d" % (cid, 0 if ok else 1)])
        if u.startswith("AT+CASEND="):
            return self._prompt(cmd[10:], "OK")
        if u.startswith("AT+CARECV="):
            cid, n = (int(x) for x in cmd[10:].split(","))
            data = self._take(cid, n)
            if data is None:
                return self._error(3)
            if not data:
                return self._reply(["+CARECV: 0"])
            return self._write(b"\r\n+CARECV: %d," % len(data) + data + b"\r\n\r\nOK\r\n")
        if u.startswith("AT+CACLOSE="):
            return self._close(int(cmd[11:]))
        if u.startswith("AT+CNCFG="):
            a = _args(cmd[9:])
            self.pdp_apn = a[2] if len(a) > 2 else None
            self.pdp_creds = (a[3], a[4]) if len(a) > 4 else None
            return self._reply()
        if u == "AT+CNACT=0,1":
            self._reply()
            if self._pdp_allowed():
                self.pdp_active = True
                self._later(0.05, "+APP PDP: 0,ACTIVE")
            else:
                self._later(0.05, "+APP PDP: 0,DEACTIVE")
            return None
        if u == "AT+CNACT=0,0":
            self.pdp_active = False
            self._reply()
            self._later(0.02, "+APP PDP: 0,DEACTIVE")
            return None
        if u == "AT+CNACT?":
            ip = self.sc.ip if self.pdp_active else "0.0.0.0"
            return self._reply(['+CNACT: 0,%d,"%s"' % (self.pdp_active, ip), '+CNACT: 1,0,"0.0.0.0"'])
        if u == "AT+CPOWD=1":
            self._write(b"\r\nNORMAL POWER DOWN\r\n")
            self.off = True
            return None
        return self._reply(final="ERROR")

    def _bg96(self, cmd: str, u: str) -> None:
        if u.startswith("AT+QIOPEN="):
            a = _args(cmd[10:])
            cid = int(a[1])
            ok = self.pdp_active and self._connect(cid, a[3], int(a[4]))
            self._reply()
            self._later(0.02, "+QIOPEN: %d,%d" % (cid, 0 if ok else 565))
            return None
        if u.startswith("AT+QISEND="):
            return self._prompt(cmd[10:], "SEND OK")
        if u.startswith("AT+QIRD="):
            cid, n = (int(x) for x in cmd[8:].split(","))
            data = self._take(cid, n)
            if data is None:
                return self._reply(final="ERROR")
            if not data:
                return self._reply(["+QIRD: 0"])
            return self._write(b"\r\n+QIRD: %d\r\n" % len(data) + data + b"\r\n\r\nOK\r\n")
        if u.startswith("AT+QICLOSE="):
            return self._close(int(cmd[11:]))
        if u.startswith("AT+QICSGP="):
            a = _args(cmd[10:])
            self.pdp_apn = a[2] if len(a) > 2 else None
            self.pdp_creds = (a[3], a[4]) if len(a) > 4 and a[3] else None
            return self._reply()
        if u == "AT+QIACT=1":
            if not self._pdp_allowed():
                return self._error(30) if self.stat not in (1, 5) else self._reply(final="ERROR")
            self.pdp_active = True
            return self._reply()
        if u == "AT+QIACT?":
            lines = ['+QIACT: 1,1,1,"%s"' % self.sc.ip] if self.pdp_active else []
            return self._reply(lines)
        if u == "AT+QIDEACT=1":
            self.pdp_active = False
            return self._reply()
        if u == "AT+QPOWD=1":
            self._reply()
            self._write(b"\r\nPOWERED DOWN\r\n")
            self.off = True
            return None
        return self._reply(final="ERROR")

    # ------------------------------------------------------------ sockets (real TCP on the host)

    def _connect(self, cid: int, host: str, port: int) -> bool:
        if cid in self.socks:
            return False
        host = (self.sc.names or {}).get(host, host)
        try:
            if self.sc.netns:
                from samband.rig.netns import inside
                with inside(self.sc.netns):  # the socket belongs to the cloud from here on
                    sk = socket.socket()
                sk.settimeout(5)
                sk.connect((host, port))
            else:
                sk = socket.create_connection((host, port), timeout=5)
        except OSError:
            return False
        sk.setblocking(False)
        self.socks[cid] = {"s": sk, "buf": bytearray(), "ind": False, "open": True}
        self.events.append((time.monotonic(), "open %d" % cid))
        return True

    def _prompt(self, argstr: str, final: str) -> None:
        cid, n = (int(x) for x in argstr.split(","))
        sk = self.socks.get(cid)
        if sk is None or not sk["open"] or not 0 < n <= 1460:
            return self._reply(final="ERROR")
        self._write(b"\r\n> ")
        self._collect = (cid, n, bytearray(), final)
        return None

    def _take(self, cid: int, n: int) -> bytes | None:
        sk = self.socks.get(cid)
        if sk is None:
            return None
        data = bytes(sk["buf"][:n])
        del sk["buf"][:n]
        if not sk["buf"]:
            sk["ind"] = False
        return data

    def _close(self, cid: int) -> None:
        sk = self.socks.pop(cid, None)
        if sk is not None:
            sk["s"].close()
        return self._reply()

    def _sock_urc(self, cid: int, what: str) -> None:
        if self.sc.dialect == "sim7080g":
            self._urc("+CADATAIND: %d" % cid if what == "data" else "+CASTATE: %d,0" % cid)
        else:
            self._urc('+QIURC: "%s",%d' % ("recv" if what == "data" else "closed", cid))

    def _sock_readable(self, cid: int) -> None:
        sk = self.socks[cid]
        try:
            data = sk["s"].recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            sk["open"] = False
            self._sock_urc(cid, "closed")
            return
        sk["buf"] += data
        if not sk["ind"]:
            sk["ind"] = True
            self._sock_urc(cid, "data")

    # ------------------------------------------------------------ running

    def drop_context(self) -> None:
        """The network takes the data context down (from any thread): its sockets close
        (their closed URCs), then the vendor's context-down URC."""
        with self._lock:
            self._requests.append("drop")
        os.write(self._wake_w, b"!")

    def _drop_context(self) -> None:
        self.pdp_active = False
        self.events.append((time.monotonic(), "context dropped"))
        for cid in list(self.socks):
            self.socks.pop(cid)["s"].close()
            self._sock_urc(cid, "closed")
        self._urc("+APP PDP: 0,DEACTIVE" if self.sc.dialect == "sim7080g" else '+QIURC: "pdpdeact",1')

    def reboot(self) -> None:
        """Reboot now (from the simulator's own thread) or as soon as it can (from another)."""
        if self._thread is not None and threading.current_thread() is not self._thread:
            with self._lock:
                self._requests.append("reboot")
            os.write(self._wake_w, b"!")
            return
        self.reboots += 1
        self.events.append((time.monotonic(), "reboot"))
        time.sleep(0.05)  # a real module is silent for a while; any half line is lost
        self._power_on(banner=True)

    def _loop(self) -> None:
        while not self._stop:
            due = self._next_due()
            timeout = 0.5 if due is None else min(0.5, due)
            if self.data_mode and self._escape_at is not None:
                timeout = min(timeout, max(0.0, self._escape_at + self.sc.guard_s - time.monotonic()))
            open_socks = {sk["s"]: cid for cid, sk in self.socks.items() if sk["open"]}
            try:
                r, _, _ = select.select([self.master, self._wake_r] + list(open_socks), [], [], timeout)
            except (OSError, ValueError):
                return
            for sk in r:
                if sk in open_socks and open_socks[sk] in self.socks:
                    self._sock_readable(open_socks[sk])
            if self._wake_r in r:
                os.read(self._wake_r, 64)
                with self._lock:
                    reqs, self._requests = self._requests, []
                for q in reqs:
                    if q == "reboot":
                        self.reboot()
                    elif q == "drop":
                        self._drop_context()
            if self.master in r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return  # the hub side closed
                self.rx += len(data)
                self._feed(data)
            if self.data_mode and self._escape_at is not None and \
                    time.monotonic() - self._escape_at >= self.sc.guard_s:
                self.data_mode = False
                self._escape_at = None
                self._reply()
            if not self.off:
                self._flush_timers()

    def start(self) -> ModemSim:
        self._thread = threading.Thread(target=self._loop, name="modem-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"!")
        if self._thread is not None:
            self._thread.join(5)
        for sk in self.socks.values():
            sk["s"].close()
        for fd in (self.master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> ModemSim:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
