# A DNS client's pure half (RFC 1035): one A query, and the first IPv4
# address of its answer. Bytes in, bytes out; pinned.resolve owns the
# socket. A bearer asks its own server over its own interface, as a board
# asks the server its Wi-Fi or its mobile network handed it: the uplink never
# relies on the host's (global) resolver. Names are read with hub.mdns's
# walker (bounded: no pointer loops, 255 bytes at most).

from hub.bearers import BearerError

A = 1
IN = 1


def query(qid, name):
    """The bytes of a recursive A query for name with id qid."""
    from hub.mdns import MdnsError, name_bytes
    try:
        q = name_bytes(name)
    except MdnsError as e:
        raise BearerError("dns", str(e))
    return bytes([qid >> 8, qid & 0xFF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + q + bytes([0, A, 0, IN])


def _u16(p, o):
    if o + 2 > len(p):
        raise BearerError("dns", "reply cut short")
    return p[o] << 8 | p[o + 1]


def answer(p, qid):
    """The first A record's address (dotted text) in reply p to query qid;
    None if p answers another query (not ours: keep waiting). A refusal,
    an unknown name or an answer without an address raises BearerError("dns")."""
    from hub.mdns import MdnsError, read_name
    if len(p) < 12:
        raise BearerError("dns", "reply cut short")
    if _u16(p, 0) != qid or not p[2] & 0x80:
        return None
    rcode = p[3] & 0x0F
    if rcode == 3:
        raise BearerError("dns", "no such name")
    if rcode:
        raise BearerError("dns", "server failure (rcode %d)" % rcode)
    qd, an = _u16(p, 4), _u16(p, 6)
    o = 12
    try:
        for _ in range(qd):
            o = read_name(p, o)[1] + 4
        for _ in range(an):
            o = read_name(p, o)[1]
            typ, cls, n = _u16(p, o), _u16(p, o + 2), _u16(p, o + 8)
            o += 10
            if o + n > len(p):
                raise BearerError("dns", "record runs past the end")
            if typ == A and cls & 0x7FFF == IN and n == 4:
                return "%d.%d.%d.%d" % (p[o], p[o + 1], p[o + 2], p[o + 3])
            o += n
    except MdnsError as e:
        raise BearerError("dns", str(e))
    raise BearerError("dns", "no address in the answer")
