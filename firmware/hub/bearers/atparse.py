# AT command replies (3GPP TS 27.007 / V.250) as pure functions and one
# incremental framer: bytes from the UART in, classified lines out.
#
# Why a framer that classifies: a modem interleaves unsolicited result
# codes (URCs: +CEREG, +CGEV, RDY, +CPIN, NO CARRIER, ...) with the reply to
# the command in flight, and the same text can be either ("+CPIN: READY" is
# the answer to AT+CPIN? and also what a rebooted modem says by itself).
# So a line is a reply only if a command is pending and the line carries
# that command's own prefix (or no prefix at all); every known URC prefix
# goes to the URC side. Nothing here does I/O, so it is tested on both
# runtimes with plain byte strings.

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# event kinds from Framer.feed
LINE = const(0)    # an intermediate reply line of the pending command
FINAL = const(1)   # a final result code ending the pending command
URC = const(2)     # an unsolicited result code
PROMPT = const(3)  # the "> " data prompt (AT+CASEND, AT+QISEND)
STRAY = const(4)   # a line no one asked for (not a known URC, no command pending)
DATA = const(5)    # socket data in a read reply (+CARECV: n,<data> / +QIRD: n CR LF <data>)

MAX_LINE = const(256)
MAX_DATA = const(1500)  # the most socket data we ask a modem for at once

# Final result codes. Value: True = success, False = failure.
_FINALS = {
    "OK": True, "ERROR": False, "NO CARRIER": False, "BUSY": False, "NO ANSWER": False,
    "NO DIALTONE": False, "SEND OK": True, "SEND FAIL": False,
}

# Known URCs (SIMCom SIM70xx/SIM76xx, Quectel BG9x), as one string each and
# not as tuples: a tuple of 40 short strings costs ~3 KB of a board's heap,
# a '|'-joined string a tenth of that. _URC_P holds prefixes up to their ':',
# _URC_L whole lines.
_URC_P = ("|+CEREG:|+CREG:|+CGREG:|+CGEV:|+CPIN:|+CFUN:|+CTZV:|+CTZE:|*PSUTTZ:|DST:|+APP PDP:"
          "|+CADATAIND:|+CASTATE:|+CSQN:|+QIURC:|+QIND:|+CMTI:|+CRING:|*ATREADY:|+QUSIM:|+PDP:|+CNSMOD:|+QIOPEN:|")
_URC_L = "|RDY|APP RDY|SMS Ready|Call Ready|NO CARRIER|POWERED DOWN|NORMAL POWER DOWN|RING|PB DONE|START|"
# What a modem says when it has (re)started: the engine treats any as a reboot.
_BOOT = "|RDY|*ATREADY:|START|"

# Registration <stat> (27.007 7.2 / 10.1.22)
REG_NAMES = ("not-registered", "home", "searching", "denied", "unknown", "roaming")
REG_HOME = const(1)
REG_SEARCHING = const(2)
REG_DENIED = const(3)
REG_ROAMING = const(5)

# +CME ERROR codes (27.007 9.2.1) that a bring-up turns into a reason, and
# their verbose (AT+CMEE=2) texts, for a modem that rebooted into verbose mode.
_CME = ("|3=not-allowed=operation not allowed|4=not-supported=operation not supported"
        "|10=no-sim=sim not inserted|11=pin-locked=sim pin required|12=puk-locked=sim puk required"
        "|13=sim-failure=sim failure|14=sim-busy=sim busy|15=sim-wrong=sim wrong"
        "|16=bad-pin=incorrect password|30=no-network=no network service"
        "|31=network-timeout=network timeout|32=emergency-only=emergency calls only|100=unknown=unknown|")


def cme_reason(code, default=None):
    """The reason word for a +CME ERROR code: 10 -> 'no-sim'; default if not known."""
    i = _CME.find("|%d=" % code)
    if i < 0:
        return default
    i = _CME.index("=", i) + 1
    return _CME[i:_CME.index("=", i)]


from hub.errors import HubError


class ATParseError(HubError):
    pass


def fields(s):
    """Split the value part of an information line on commas, honouring quotes:
    'a,"b,c",3' -> ['a', 'b,c', '3'] (quotes removed)."""
    out = []
    cur = []
    q = False
    for ch in s:
        if ch == '"':
            q = not q
        elif ch == "," and not q:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if q:
        raise ATParseError("unbalanced quote in %r" % s)
    out.append("".join(cur).strip())
    return out


def value(line, prefix):
    """The part after 'PREFIX:' of an information line, or None if the line has another prefix."""
    if not line.startswith(prefix):
        return None
    rest = line[len(prefix):]
    if rest[:1] == ":":
        rest = rest[1:]
    elif rest:
        return None
    return rest.strip()


def _int(s, what):
    try:
        return int(s)
    except ValueError:
        raise ATParseError("%s is not a number: %r" % (what, s))


def prefix_of(command):
    """The information-line prefix a command's reply carries: 'AT+CEREG?' -> '+CEREG',
    'AT+CSQ' -> '+CSQ', 'ATD*99#' -> None (no prefix)."""
    if not command.startswith("AT"):
        return None
    c = command[2:]
    if c[:1] not in ("+", "*", "$", "#"):
        return None
    end = len(c)
    for i in range(1, len(c)):
        if c[i] in "=?":
            end = i
            break
    return c[:end]


def final(line):
    """(ok, cme, cms) for a final result line, or None if the line is not one.
    ok is True/False; cme/cms are the error code (int) or None; 'CONNECT' (with
    or without a rate) is a successful final result of ATD/ATO."""
    f = _FINALS.get(line)
    if f is not None:
        return (f, None, None)
    if line == "CONNECT" or line.startswith("CONNECT "):
        return (True, None, None)
    v = value(line, "+CME ERROR")
    if v is not None:
        return (False, cme_code(v), None)
    v = value(line, "+CMS ERROR")
    if v is not None:
        try:
            return (False, None, int(v))
        except ValueError:
            return (False, None, 500)
    return None


def cme_code(v):
    """A +CME ERROR value, numeric (AT+CMEE=1) or verbose (AT+CMEE=2), as a number."""
    try:
        return int(v)
    except ValueError:
        pass
    i = _CME.find("=" + v.lower() + "|")
    if i < 0 or "|" in v or "=" in v:
        return 100
    j = _CME.rindex("|", 0, i)
    return int(_CME[j + 1:_CME.index("=", j)])


def _in(table, line):
    """line (or its prefix up to ':') is one of table's '|'-separated entries."""
    if "|" in line:
        return False
    if ("|" + line + "|") in table:
        return True
    i = line.find(":")
    return i > 0 and ("|" + line[:i + 1] + "|") in table


def is_urc(line):
    return _in(_URC_L, line) or _in(_URC_P, line)


def is_boot(line):
    return _in(_BOOT, line)


def classify(line, pending, prefix):
    """Which side a complete line goes to, given the pending command (or None)
    and that command's reply prefix (or None)."""
    if pending is None:
        if final(line) is not None and line != "NO CARRIER":
            return STRAY
        return URC if is_urc(line) else STRAY
    if prefix is not None and line.startswith(prefix) and line[len(prefix):len(prefix) + 1] == ":":
        return LINE
    if line == "NO CARRIER" and not pending.startswith("ATD") and not pending.startswith("ATO"):
        return URC  # a data call dropped while we were asking something else
    if final(line) is not None:
        return FINAL
    if is_urc(line):
        return URC
    return LINE


class Framer:
    """Bytes in, (kind, text) events out. Lines end at CR or LF; empty lines
    vanish; the echo of the pending command is dropped; bytes outside
    printable ASCII are dropped and counted (`garbage`), as are lines longer
    than MAX_LINE (`overlong`, in bytes), so line noise can cost a reply but
    never the framer's memory or a crash."""

    def __init__(self, max_line=MAX_LINE):
        self.max_line = max_line
        self.buf = bytearray()
        self.pending = None
        self.prefix = None
        self.garbage = 0
        self.overlong = 0
        self._skip = False
        self._raw = 0  # socket data bytes still to come in a read reply
        self._rawbuf = None
        self._lf = False

    def expect(self, command):
        """Say which command is now in flight (None: none)."""
        self.pending = command
        self.prefix = prefix_of(command) if command else None
        self._raw = 0
        self._rawbuf = None
        self._lf = False

    def feed(self, data):
        out = []
        buf = self.buf
        i = 0
        n = len(data)
        while i < n:
            if self._lf:  # the LF after '+QIRD: n' CR is not data
                self._lf = False
                if data[i] == 10:
                    i += 1
                    continue
            if self._raw:  # socket data of a read reply: taken as is, in slices
                take = min(self._raw, n - i)
                self._rawbuf.extend(data[i:i + take])
                i += take
                self._raw -= take
                if not self._raw:
                    out.append((DATA, bytes(self._rawbuf)))
                    self._rawbuf = None
                continue
            b = data[i]
            i += 1
            if b == 13 or b == 10:
                if self._skip:  # an overlong line is dropped whole: its head alone could mislead
                    self._skip = False
                elif buf:
                    line = bytes(buf).decode()
                    self._line(line, out)
                    if self.prefix == "+QIRD" and line.startswith("+QIRD: "):
                        self._start_raw(line[7:], out, b == 13)
                buf[:] = b""  # MicroPython bytearrays have no clear()
                continue
            if b < 32 or b > 126:
                self.garbage += 1
                continue
            if self._skip:
                self.overlong += 1
                continue
            if len(buf) >= self.max_line:
                self.overlong += len(buf) + 1
                self._skip = True
                continue
            buf.append(b)
            if b == 32 and len(buf) == 2 and buf[0] == 62:  # "> " prompt, no line end follows
                buf[:] = b""
                out.append((PROMPT, ">"))
            elif b == 44 and self.prefix == "+CARECV" and buf[:9] == b"+CARECV: ":
                # '+CARECV: <n>,<n bytes>': the data starts right after this comma
                head = bytes(buf[:-1]).decode()
                buf[:] = b""
                out.append((LINE, head))
                self._start_raw(head[9:], out, False)
        return out

    def _start_raw(self, count, out, lf):
        try:
            k = int(count.split(",")[0])
        except ValueError:
            return
        if k > MAX_DATA:  # not a length we asked for: the line is noise
            self.overlong += k
            return
        if k > 0:
            self._raw = k
            self._rawbuf = bytearray()
            self._lf = lf

    def _line(self, line, out):
        line = line.strip()
        if not line:
            return
        if self.pending is not None and line == self.pending:
            return  # echo (ATE1, and after every modem reboot)
        out.append((classify(line, self.pending, self.prefix), line))


# ---------------------------------------------------------------- reply parsers

def _reply(line, prefix):
    """The value of a reply a parser was given for prefix; any other line is refused."""
    v = value(line, prefix)
    if v is None:
        raise ATParseError("not a %s line: %r" % (prefix, line))
    return v


def csq_dbm(line):
    """'+CSQ: <rssi>,<ber>' -> RSSI in dBm (-113 + 2*rssi), None when unknown (99)."""
    f = fields(_reply(line, "+CSQ"))
    rssi = _int(f[0], "CSQ rssi")
    if rssi == 99:
        return None
    if not 0 <= rssi <= 31:
        raise ATParseError("CSQ rssi %d out of range" % rssi)
    return -113 + 2 * rssi


def cesq(line):
    """'+CESQ: rxlev,ber,rscp,ecno,rsrq,rsrp' -> (rsrp dBm, rsrq in tenths of a dB);
    each None when the modem reports it unknown (255). RSRP = idx - 140 (0..97),
    RSRQ = idx/2 - 19.5 (0..34); integers, since boards have single floats."""
    f = fields(_reply(line, "+CESQ"))
    if len(f) != 6:
        raise ATParseError("+CESQ with %d fields" % len(f))
    rsrq = _int(f[4], "CESQ rsrq")
    rsrp = _int(f[5], "CESQ rsrp")
    if rsrp == 255:
        rsrp_dbm = None
    elif 0 <= rsrp <= 97:
        rsrp_dbm = rsrp - 140
    else:
        raise ATParseError("CESQ rsrp %d out of range" % rsrp)
    if rsrq == 255:
        rsrq_ddb = None
    elif 0 <= rsrq <= 34:
        rsrq_ddb = rsrq * 5 - 195
    else:
        raise ATParseError("CESQ rsrq %d out of range" % rsrq)
    return rsrp_dbm, rsrq_ddb


def cops(line):
    """'+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]' -> (mode, operator or None, AcT or None)."""
    f = fields(_reply(line, "+COPS"))
    mode = _int(f[0], "COPS mode")
    oper = f[2] if len(f) > 2 and f[2] else None
    act = _int(f[3], "COPS AcT") if len(f) > 3 and f[3] else None
    return mode, oper, act


def creg(line, urc):
    """A +CEREG/+CGREG/+CREG line -> (stat, tac or None, ci or None).
    The reply to 'AT+CEREG?' starts with <n> ('+CEREG: 2,1,"1A2B","01A2D101",7');
    the URC does not ('+CEREG: 1,"1A2B","01A2D101",7'): urc says which form."""
    for p in ("+CEREG", "+CGREG", "+CREG"):
        v = value(line, p)
        if v is not None:
            break
    else:
        raise ATParseError("not a registration line: %r" % line)
    f = fields(v)
    if not urc:
        f = f[1:]
    if not f or not f[0]:
        raise ATParseError("registration line without a state: %r" % line)
    stat = _int(f[0], "registration state")
    if not 0 <= stat <= 10:
        raise ATParseError("registration state %d out of range" % stat)
    tac = f[1] if len(f) > 1 and f[1] else None
    ci = f[2] if len(f) > 2 and f[2] else None
    return stat, tac, ci


def creg_is_urc(line):
    """Whether a registration line has the URC form. A +CEREG URC can land
    inside the reply to AT+CEREG? and carries the same prefix; the reply
    starts with <n> and an unquoted <stat>, the URC with <stat> alone or
    followed by the quoted <tac>."""
    i = line.find(":")
    parts = line[i + 1:].strip().split(",")
    return len(parts) == 1 or parts[1].strip().startswith('"')


def reg_name(stat):
    return REG_NAMES[stat] if 0 <= stat < len(REG_NAMES) else "state-%d" % stat


def cpin(line):
    """'+CPIN: READY' -> 'READY' ('SIM PIN', 'SIM PUK', ...)."""
    return _reply(line, "+CPIN")


def quote(s):
    """A string argument for a command: quoted, refusing what cannot be sent
    (a quote or control character would end the argument or the command)."""
    for ch in s:
        if ch == '"' or ord(ch) < 32 or ord(ch) > 126:
            raise ATParseError("character %r cannot be sent in an AT string" % ch)
    return '"' + s + '"'
