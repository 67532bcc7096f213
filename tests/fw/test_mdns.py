# The hub's mDNS codec (hub/mdns.py) and the responder's packet handling
# (hub/mdnsd.py) on both runtimes: what the hub answers, to whom, and that
# malformed packets are refused with MdnsError and counted, never a crash
# (compression loops included).
from fwtest import Rand, raises
from hub import mdns
from hub.mdns import ANY, PTR, SRV, TXT, MdnsError
from hub.mdnsd import Responder

RECS = mdns.records("00005A4D0001", "vhub", "0.1.0", "192.168.1.20")
INST = "samband-00005a4d0001._samband._tcp.local"


def query(name, qtype, qid=0x1234, unicast=False):
    return (bytes((qid >> 8, qid & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)) + mdns.name_bytes(name)
            + bytes((qtype >> 8, qtype & 255, 0x80 if unicast else 0, 1)))


def rrs(p):
    """[(name, type, class, ttl, rdata)] of every record in a reply, questions skipped."""
    nq = p[4] << 8 | p[5]
    n = (p[6] << 8 | p[7]) + (p[8] << 8 | p[9]) + (p[10] << 8 | p[11])
    o = 12
    for _ in range(nq):
        o = mdns.read_name(p, o)[1] + 4
    out = []
    for _ in range(n):
        name, o = mdns.read_name(p, o)
        t, c = p[o] << 8 | p[o + 1], p[o + 2] << 8 | p[o + 3]
        ttl = p[o + 4] << 24 | p[o + 5] << 16 | p[o + 6] << 8 | p[o + 7]
        ln = p[o + 8] << 8 | p[o + 9]
        out.append((name, t, c, ttl, bytes(p[o + 10:o + 10 + ln])))
        o += 10 + ln
    assert o == len(p)
    return out


def test_ptr_query_gets_the_instance_with_srv_txt_a():
    r = mdns.reply(query(mdns.SERVICE, PTR), RECS, False)
    assert r[:4] == b"\x00\x00\x84\x00"  # multicast reply: id 0, response, authoritative
    got = rrs(r)
    assert [(n, t) for n, t, _, _, _ in got] == [
        (mdns.SERVICE, PTR), (INST, SRV), (INST, TXT), ("samband-00005a4d0001.local", 1)]
    assert got[0][2] == 1 and got[1][2] == 0x8001  # shared PTR; the rest cache-flush
    assert got[0][3] == 120
    assert got[0][4] == mdns.name_bytes(INST)
    assert got[2][4] == b"\x0fid=00005a4d0001\x0aboard=vhub\x09ver=0.1.0"
    assert got[3][4] == bytes((192, 168, 1, 20))
    assert got[1][4][:6] == bytes(6)  # priority, weight, port 0: the hub serves no TCP


def test_legacy_query_echoes_id_and_question_short_ttl_no_flush():
    q = query("_SAMBAND._tcp.Local", PTR, qid=0xBEEF)  # names compare case-insensitively
    r = mdns.reply(q, RECS, True)
    assert r[:6] == b"\xbe\xef\x84\x00\x00\x01"
    assert r[12:len(q)] == q[12:].lower()
    assert all(c == 1 and ttl == 10 for _, _, c, ttl, _ in rrs(r))


def test_srv_txt_any_meta_and_questions_not_about_us():
    assert [t for _, t, _, _, _ in rrs(mdns.reply(query(INST, SRV), RECS, False))] == [SRV, 1]
    assert [t for _, t, _, _, _ in rrs(mdns.reply(query(INST, ANY), RECS, False))] == [SRV, TXT, 1]
    meta = rrs(mdns.reply(query(mdns.META, PTR), RECS, False))
    assert [(n, d) for n, _, _, _, d in meta] == [(mdns.META, mdns.name_bytes(mdns.SERVICE))]
    assert mdns.reply(query("_http._tcp.local", PTR), RECS, False) is None
    assert mdns.reply(query(INST, 28), RECS, False) is None  # AAAA: we have none
    assert mdns.wants_unicast(query(mdns.SERVICE, PTR, unicast=True))
    assert not mdns.wants_unicast(query(mdns.SERVICE, PTR))


def test_responses_are_ignored_not_refused():
    r = mdns.reply(query(mdns.SERVICE, PTR), RECS, False)
    assert mdns.parse_query(r) is None and mdns.reply(r, RECS, False) is None


def test_compressed_names_are_followed():
    # question 2 is "_samband" + pointer to "_tcp.local" inside question 1
    q1 = mdns.name_bytes("_x._tcp.local")
    p = bytearray(b"\x00\x00\x00\x00\x00\x02" + bytes(6) + q1 + b"\x00\x0c\x00\x01")
    p += b"\x08_samband\xc0\x0f" + b"\x00\x0c\x00\x01"
    qid, qs = mdns.parse_query(bytes(p))
    assert [n for n, _, _ in qs] == ["_x._tcp.local", mdns.SERVICE]
    assert mdns.reply(bytes(p), RECS, False) is not None


def test_malformed_packets_are_refused():
    hdr = b"\x00\x00\x00\x00\x00\x01" + bytes(6)
    bad = [
        b"", b"\x00" * 11,  # no header
        hdr,  # a question announced, none there
        hdr + b"\x05ab",  # label runs past the end
        hdr + b"\xc0\x0c\x00\x0c\x00\x01",  # pointer to itself: a loop
        hdr + b"\x01a\xc0\x0c\x00\x0c\x00\x01",  # pointer back to its own start: a loop
        hdr + b"\xc0\x20\x00\x0c\x00\x01" + bytes(40),  # pointer forwards
        hdr + b"\x40" + b"a" * 64 + b"\x00\x00\x0c\x00\x01",  # label type 01
        hdr + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00" * 5,
        hdr + b"\x02\xff\xfe\x00\x00\x0c\x00\x01",  # not UTF-8
        hdr + b"\x01a\x00\x00\x0c",  # question cut short
        b"\x00\x00\x00\x00\xff\xff" + bytes(6) + b"\x00\x00\x0c\x00\x01" * 40,  # 65535 questions
        b"\x00\x00\x28\x00\x00\x01" + bytes(6) + b"\x00\x00\x0c\x00\x01",  # opcode 5 (update)
    ]
    for p in bad:
        raises(MdnsError, mdns.reply, p, RECS, False)
    r = Responder(RECS, 5353)
    for p in bad:
        assert r.handle(p, 5353) == (None, False)
    assert r.bad == len(bad)


def test_random_bytes_never_crash():
    rnd = Rand(13)
    base = query(mdns.SERVICE, PTR)
    r = Responder(RECS, 5353)
    for i in range(300):
        p = bytearray(base)
        for _ in range(1 + rnd.next64() % 4):
            p[rnd.next64() % len(p)] = rnd.next64() & 255
        if i % 3 == 0:
            p = p[:rnd.next64() % len(p)]
        r.handle(bytes(p), 5353)  # a reply, None, or counted as bad: never an exception
    assert r.bad > 0


def test_responder_answers_legacy_to_sender_multicast_to_group():
    r = Responder(RECS, 5353)
    reply, to_sender = r.handle(query(mdns.SERVICE, PTR), 40000)
    assert reply[:2] == b"\x12\x34" and to_sender
    reply, to_sender = r.handle(query(mdns.SERVICE, PTR), 5353)
    assert reply[:2] == b"\x00\x00" and not to_sender
    assert r.handle(query(mdns.SERVICE, PTR, unicast=True), 5353)[1]
    assert r.handle(query("_http._tcp.local", PTR), 5353) == (None, False) and r.bad == 0


def test_bad_identity_is_refused():
    raises(MdnsError, mdns.records, "00005a4d0001", "vhub", "0.1.0", "10.0.0")
    raises(MdnsError, mdns.name_bytes, "a..local")
