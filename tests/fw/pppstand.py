# A stand-in for MicroPython's network.PPP and the machine.UART it reads, so
# that hub/bearers/ppp.py (dial, hand the UART over, wait, escape back) runs
# on the unix port and CPython. Test data, not firmware.
#
# PPP behaves as MicroPython's ports/esp32/network_ppp.c says (extmod/
# network_ppp_lwip.c is the same for the calls used here), function by function:
#   PPP(stream)        network_ppp_make_new: the stream must read and write; state INACTIVE
#   connect(security=SEC_NONE, user=None, key=None)
#                      network_ppp_connect: INACTIVE -> a PCB, ACTIVE, and
#                      stream.irq(self.poll, stream.IRQ_RXIDLE); OSError(EALREADY) when
#                      CONNECTING or CONNECTED; ValueError("invalid auth") for a security
#                      other than 0/1/2; user and key must be str when security != 0;
#                      then CONNECTING and one poll()
#   poll()             network_ppp_poll: -EPERM unless ACTIVE or later; reads the stream
#                      256 bytes at a time while it gives any, into the PPP stack
#   status()           network_ppp_status: the state, or -error_code in ERROR
#   isconnected()      state == CONNECTED
#   disconnect()       network_ppp_disconnect: only when CONNECTING or CONNECTED,
#                      pppapi_close; the PPPERR_USER callback (network_ppp_status_cb)
#                      gives the IRQ back (stream.irq(None)) and frees the PCB: INACTIVE.
#                      In ERROR it does nothing: the PCB and the IRQ stay
#   active(False)      network_ppp_active -> __del__ (ESP32 only): IRQ off, the link
#                      closed or freed whatever its state: INACTIVE
#   ipconfig("addr4")  (address, netmask); ValueError("PPP not active") without a PCB
#   config("ifname")   the netif's name ("pp1" on the ESP32), None without a PCB
# What lwIP does underneath (LCP, PAP/CHAP, IPCP) is not ours to test: this
# stand-in sends one LCP Configure-Request frame (RFC 1661/1662 framing) on
# connect and calls the link up when the peer's first LCP/IPCP frame comes
# back; a PAP Authenticate-Nak or CHAP Failure from the peer ends it with
# PPPERR_AUTHFAIL (7), an LCP Terminate-Request with PPPERR_CONNECT (6): the
# error numbers of lwIP's netif/ppp/ppp.h that the status callback stores.

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

INACTIVE, ACTIVE, ERROR, CONNECTING, CONNECTED = 0, 1, 2, 3, 4
PPPERR_USER, PPPERR_CONNECT, PPPERR_AUTHFAIL = 5, 6, 7
EALREADY = 114
EPERM = 1
LCP, PAP, CHAP, IPCP = 0xC021, 0xC023, 0xC223, 0x8021


def frame(proto, code, ident=1, data=b""):
    """One PPP frame in HDLC-like framing (RFC 1662): flag, address, control,
    protocol, code/id/length, data, FCS-16, flag; 0x7E, 0x7D and control bytes
    escaped (the ACCM before LCP agrees another)."""
    body = bytes([0xFF, 0x03, proto >> 8, proto & 0xFF, code, ident]) + (4 + len(data)).to_bytes(2, "big") + data
    fcs = 0xFFFF
    for b in body:
        fcs ^= b
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    fcs ^= 0xFFFF
    out = bytearray(b"\x7e")
    for b in body + bytes([fcs & 0xFF, fcs >> 8]):
        if b in (0x7E, 0x7D) or b < 0x20:
            out.append(0x7D)
            out.append(b ^ 0x20)
        else:
            out.append(b)
    out.append(0x7E)
    return bytes(out)


def _unstuff(raw):
    f = bytearray()
    esc = False
    for b in raw:
        if b == 0x7D:
            esc = True
            continue
        f.append(b ^ 0x20 if esc else b)
        esc = False
    return f


def frames(buf):
    """(proto, code) of every whole frame in buf, and what is left after them."""
    out = []
    while True:
        i = buf.find(b"\x7e")
        if i < 0:
            return out, b""
        j = buf.find(b"\x7e", i + 1)
        if j < 0:
            return out, buf[i:]
        f = _unstuff(buf[i + 1:j])
        if len(f) >= 6 and f[0] == 0xFF:
            out.append(((f[2] << 8) | f[3], f[4]))
        buf = buf[j:] if j + 1 < len(buf) and buf[j + 1] != 0x7E else buf[j + 1:]


class Uart:
    """machine.UART(timeout=0) over a scripted modem (tests/fw/atfake.py):
    read() returns what has arrived or None; irq(handler, IRQ_RXIDLE) calls the
    handler when data has arrived and the line is idle (ports/esp32/machine_uart.c)."""

    IRQ_RXIDLE = 0x1000  # ports/esp32/machine_uart.c UART_IRQ_RXIDLE

    def __init__(self, modem):
        self.m = modem
        self.handler = None
        self.irqs = []  # every irq() call: (handler set?, trigger)
        self._task = None

    def arrived(self):
        return bool(self.m.inbox)

    def read(self, n=-1):
        inbox = self.m.inbox
        if not inbox:
            return None
        if n < 0:
            n = len(inbox)
        d = bytes(inbox[:n])
        inbox[:n] = b""
        return d

    def write(self, data):
        self.m.write(data)
        return len(data)

    def irq(self, handler=None, trigger=0, hard=False):
        self.irqs.append((handler is not None, trigger))
        self.handler = handler if trigger else None
        if self.handler is not None and self._task is None:
            self._task = asyncio.create_task(self._idle())
        elif self.handler is None and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _idle(self):
        while True:
            if self.handler is not None and self.arrived():
                self.handler(self)
            await asyncio.sleep(0.005)


class PtyUart(Uart):
    """The same over a real pty to the modem simulator (tests/fw/modem_check.py): whether
    bytes wait is not known without reading, so the handler is called every 5 ms and its
    read() finds them or None; tx and rx count the bytes each way."""

    def __init__(self, f):
        Uart.__init__(self, None)
        self.f = f
        self.tx = self.rx = 0

    def arrived(self):
        return True

    def read(self, n=-1):
        d = self.f.read(256 if n < 0 else n)
        if d:
            self.rx += len(d)
        return d or None

    def write(self, b):
        self.tx += len(b)
        return self.f.write(b)


class PPP:
    SEC_NONE, SEC_PAP, SEC_CHAP = 0, 1, 2  # lwIP PPPAUTHTYPE_NONE / PAP / CHAP
    made = []  # every PPP object, for the tests

    def __init__(self, stream, ip="10.64.7.3", ifname="pp1"):
        if not (hasattr(stream, "read") and hasattr(stream, "write")):
            raise OSError(95)  # mp_get_stream_raise: "stream operation not supported"
        self.stream = stream
        self.state = INACTIVE
        self.error_code = 0
        self.pcb = False
        self.ip = ip
        self.ifname = ifname
        self.connects = []  # (security, user, key) of every connect()
        self.default = False  # pppapi_set_default: lwIP's default netif
        self._buf = b""
        PPP.made.append(self)

    def _irq_enable(self):
        self.stream.irq(self.poll, self.stream.IRQ_RXIDLE)

    def connect(self, security=-1, user=None, key=None):
        if security == -1:
            security = self.SEC_NONE
        if self.state == INACTIVE:
            self.pcb = True
            self.state = ACTIVE
            self._irq_enable()
        if self.state in (CONNECTING, CONNECTED):
            raise OSError(EALREADY)
        if security not in (0, 1, 2):
            raise ValueError("invalid auth")
        if security != self.SEC_NONE and not (isinstance(user, str) and isinstance(key, str)):
            raise TypeError("can't convert to str implicitly")
        self.connects.append((security, user, key))
        self.default = True
        self.state = CONNECTING
        self.stream.write(frame(LCP, 1))  # Configure-Request
        self.poll()

    def poll(self, arg=None):
        if self.state <= ERROR:
            return -EPERM
        total = 0
        while self.state >= ACTIVE:
            d = self.stream.read(256)
            if not d:
                break
            total += len(d)
            got, self._buf = frames(self._buf + d)
            for proto, code in got:
                self._frame(proto, code)
        return total

    def _frame(self, proto, code):
        if (proto, code) in ((PAP, 3), (CHAP, 4)):  # Authenticate-Nak, Failure
            self.state, self.error_code = ERROR, PPPERR_AUTHFAIL
        elif proto == LCP and code == 5:  # Terminate-Request
            self.state, self.error_code = ERROR, PPPERR_CONNECT
        elif proto in (LCP, IPCP) and self.state == CONNECTING:
            self.state = CONNECTED

    def status(self):
        return -self.error_code if self.state == ERROR else self.state

    def isconnected(self):
        return self.state == CONNECTED

    def disconnect(self):
        # only a link connecting or up is closed; one in ERROR keeps its PCB (and IRQ)
        if self.state in (CONNECTING, CONNECTED):
            self.stream.write(frame(LCP, 5))  # Terminate-Request (pppapi_close)
            self._user()

    def _user(self):
        # network_ppp_status_cb, PPPERR_USER: IRQ given back, PCB freed
        self.stream.irq(None)
        self.pcb = False
        self.state = INACTIVE

    def active(self, on=None):
        # network_ppp_active (the ESP32's, kept "for backwards compatibility"): False runs
        # __del__: IRQ off, then a link in ERROR or later closed with nocarrier (PPPERR_USER),
        # an ACTIVE one freed; either way INACTIVE
        if on is not None and not on and self.state >= ACTIVE:
            self._user()
        elif on and self.state == INACTIVE:
            self.pcb = True
            self.state = ACTIVE
            self._irq_enable()
        return self.state >= ACTIVE

    def ipconfig(self, key):
        if not self.pcb:
            raise ValueError("PPP not active")
        if key == "addr4":
            return (self.ip if self.state == CONNECTED else "0.0.0.0", "255.255.255.255")
        raise ValueError("unexpected key")

    def config(self, key):
        if key == "ifname":
            return self.ifname if self.pcb else None
        if key == "stream":
            return self.stream
        raise ValueError("unknown config param")
