# The bearers' DNS client codec (hub/bearers/dns.py) on both runtimes: the
# query's bytes, the address out of an answer (compressed or not), a reply
# to another query ignored, and refusals, unknown names and malformed
# replies a BearerError("dns"), never a crash or a loop.
from fwtest import Rand, raises
from hub.bearers import BearerError, dns
from hub.mdns import name_bytes

NAME = "broker.samband.test"


def reply(qid, rcode=0, answers=(), qr=True):
    """A reply to the A query for NAME; answers: [(name bytes, type, rdata)]."""
    p = bytearray(dns.query(qid, NAME))
    p[2] = 0x81 if qr else 0x01
    p[3] = 0x80 | rcode
    p[7] = len(answers)
    for name, typ, rdata in answers:
        p += name + bytes((0, typ, 0, 1, 0, 0, 0, 30, 0, len(rdata))) + rdata
    return bytes(p)


def test_query_bytes():
    q = dns.query(0xBEEF, NAME)
    assert q[:12] == b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # recursion desired, one question
    assert q[12:] == b"\x06broker\x07samband\x04test\x00\x00\x01\x00\x01"
    assert raises(BearerError, dns.query, 1, "bad..name").reason == "dns"


def test_answer_takes_the_first_address_compressed_or_not():
    a = bytes((10, 99, 255, 1))
    assert dns.answer(reply(7, answers=[(b"\xc0\x0c", 1, a)]), 7) == "10.99.255.1"
    # a CNAME first, then the A record written out in full
    cname = name_bytes("cloud.samband.test")
    assert dns.answer(reply(7, answers=[(b"\xc0\x0c", 5, cname), (name_bytes("cloud.samband.test"), 1, a)]),
                      7) == "10.99.255.1"


def test_a_reply_to_another_query_is_not_ours():
    assert dns.answer(reply(8, answers=[(b"\xc0\x0c", 1, b"\x01\x02\x03\x04")]), 7) is None
    assert dns.answer(reply(7, qr=False), 7) is None  # a query, not a reply


def test_refusals_and_bad_replies_are_dns_errors():
    assert str(raises(BearerError, dns.answer, reply(7, rcode=3), 7)) == "dns: no such name"
    assert str(raises(BearerError, dns.answer, reply(7, rcode=2), 7)) == "dns: server failure (rcode 2)"
    assert str(raises(BearerError, dns.answer, reply(7), 7)) == "dns: no address in the answer"
    full = reply(7, answers=[(b"\xc0\x0c", 1, b"\x0a\x63\xff\x01")])
    for cut in (3, 11, 20, len(full) - 6, len(full) - 1):
        assert raises(BearerError, dns.answer, full[:cut], 7).reason == "dns"
    loop = reply(7, answers=[(b"\xc0\x25", 1, b"\x01\x02\x03\x04")])  # a pointer to itself
    assert raises(BearerError, dns.answer, loop, 7).reason == "dns"


def test_random_bytes_never_crash():
    r = Rand(12)
    base = reply(0x0102, answers=[(b"\xc0\x0c", 1, b"\x0a\x63\xff\x01")])
    for _ in range(300):
        p = bytearray(base)
        for _ in range(1 + r.below(4)):
            p[r.below(len(p))] = r.below(256)
        try:
            got = dns.answer(bytes(p), 0x0102)
        except BearerError as e:
            assert e.reason == "dns"
        else:
            assert got is None or got.count(".") == 3
