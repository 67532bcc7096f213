# mDNS / DNS-SD for the hub, the pure half: query parsing and reply
# encoding, bytes in and bytes out (RFC 6762, RFC 6763). hub/mdnsd.py owns
# the socket. The hub advertises one service instance, _samband._tcp.local,
# so that `samband discover --lan` finds it; ESP32 MicroPython's own mDNS
# only answers for the hostname, never for services.
#
# Small on purpose (it is loaded only when an IP bearer is provisioned):
# names are written without compression, questions are answered without
# known-answer suppression, and only PTR, SRV, TXT, A and ANY are known.
# A malformed packet raises MdnsError (the responder counts it); each
# compression pointer must land before the previous one's target (before
# the name's start for the first), so a name walk cannot loop, and a name
# is at most 255 bytes.

from hub.errors import HubError


SERVICE = "_samband._tcp.local"
META = "_services._dns-sd._udp.local"  # "which services are here?"
A = 1
PTR = 12
TXT = 16
SRV = 33
ANY = 255
TTL = 120  # seconds; a legacy (unicast) querier gets at most 10 (RFC 6762 6.7)


class MdnsError(HubError):
    pass


def _u16(p, o):
    if o + 2 > len(p):
        raise MdnsError("mdns: truncated at %d" % o)
    return p[o] << 8 | p[o + 1]


def read_name(p, o):
    """(name as lower-case dotted text, offset after it) of the name at o."""
    labels = []
    end = None
    total = 0
    lim = o  # a pointer must land before the part of the name it continues
    while True:
        if o >= len(p):
            raise MdnsError("mdns: name runs past the end")
        n = p[o]
        if n == 0:
            o += 1
            break
        if n & 0xC0 == 0xC0:
            t = _u16(p, o) & 0x3FFF
            if t >= lim:  # targets strictly decrease: no loop possible
                raise MdnsError("mdns: compression pointer %d at %d" % (t, o))
            if end is None:
                end = o + 2
            o = lim = t
            continue
        if n & 0xC0:
            raise MdnsError("mdns: label type %d at %d" % (n >> 6, o))
        total += n + 1
        if total > 255 or o + 1 + n > len(p):
            raise MdnsError("mdns: bad name at %d" % o)
        try:
            labels.append(bytes(p[o + 1:o + 1 + n]).decode().lower())
        except UnicodeError:
            raise MdnsError("mdns: label not UTF-8 at %d" % o)
        o += 1 + n
    return ".".join(labels), end if end is not None else o


def parse_query(p):
    """(id, [(name, qtype, unicast_wanted)]) of a query; None for a response
    (other responders' traffic, not ours to parse)."""
    if len(p) < 12:
        raise MdnsError("mdns: %d bytes, no header" % len(p))
    if p[2] & 0x80:
        return None
    if p[2] & 0x78:
        raise MdnsError("mdns: opcode %d" % ((p[2] >> 3) & 15))
    qs = []
    o = 12
    n = _u16(p, 4)
    if n > 32:
        raise MdnsError("mdns: %d questions" % n)
    for _ in range(n):
        name, o = read_name(p, o)
        qs.append((name, _u16(p, o), _u16(p, o + 2) & 0x8000 != 0))
        o += 4
    return _u16(p, 0), qs


def name_bytes(name):
    out = bytearray()
    for lab in name.split("."):
        b = lab.encode()
        if not 0 < len(b) < 64:
            raise MdnsError("mdns: bad label %r" % lab)
        out.append(len(b))
        out += b
    out.append(0)
    return bytes(out)


def ip4(ip):
    """b"\xc0\xa8\x01\x14" for "192.168.1.20" (the A record; mdnsd's group join)."""
    b = bytes(int(x) for x in ip.split("."))
    if len(b) != 4:
        raise MdnsError("mdns: bad address %s" % ip)
    return b


def records(uid, board, version, ip, port=0):
    """The hub's records: [(name, type, rdata)]. The instance and host are
    named after the hub id; TXT carries id, board and firmware version. The
    hub serves nothing on TCP, so SRV names port 0 unless told otherwise."""
    uid = uid.lower()
    inst = "samband-%s.%s" % (uid, SERVICE)
    host = "samband-%s.local" % uid
    txt = bytearray()
    for kv in ("id=" + uid, "board=" + board, "ver=" + version):
        txt.append(len(kv))
        txt += kv.encode()
    return [(META, PTR, name_bytes(SERVICE)),
            (SERVICE, PTR, name_bytes(inst)),
            (inst, SRV, bytes((0, 0, 0, 0, port >> 8, port & 255)) + name_bytes(host)),
            (inst, TXT, bytes(txt)),
            (host, A, ip4(ip))]


def _rr(out, rec, ttl, flush):
    name, t, data = rec
    out += name_bytes(name)
    out += bytes((t >> 8, t & 255, 0x80 if flush and t != PTR else 0, 1,
                  ttl >> 24, (ttl >> 16) & 255, (ttl >> 8) & 255, ttl & 255, len(data) >> 8, len(data) & 255))
    out += data


def reply(p, recs, legacy):
    """The answer to query p from our records, or None (not a query, or not
    about us). legacy: it came from a port other than 5353 (a one-shot
    unicast querier): the id and questions are echoed, TTLs capped at 10 s
    and no cache-flush bit is set. Raises MdnsError on a malformed packet."""
    q = parse_query(p)
    if q is None:
        return None
    qid, qs = q
    ans = []
    for name, qt, _ in qs:
        for r in recs:
            if r[0] == name and qt in (r[1], ANY) and r not in ans:
                ans.append(r)
    if not ans:
        return None
    # the SRV, TXT and A a browser needs next go along (RFC 6763 12)
    want = ()
    for r in ans:
        if r[0] == SERVICE:
            want = (SRV, TXT, A)
        elif r[1] == SRV and not want:
            want = (A,)
    extra = [r for r in recs if r[1] in want and r not in ans]
    out = bytearray(12)
    if legacy:
        out[0], out[1] = qid >> 8, qid & 255
    out[2] = 0x84  # response, authoritative
    ttl = 10 if legacy else TTL
    nq = 0
    if legacy:
        for name, qt, _ in qs:
            out += name_bytes(name) + bytes((qt >> 8, qt & 255, 0, 1))
            nq += 1
    out[5] = nq
    out[7] = len(ans)
    out[11] = len(extra)
    for r in ans:
        _rr(out, r, ttl, not legacy)
    for r in extra:
        _rr(out, r, ttl, not legacy)
    return bytes(out)


def wants_unicast(p):
    """True if any question asks for a unicast reply (the QU bit)."""
    q = parse_query(p)
    return q is not None and any(u for _, _, u in q[1])
