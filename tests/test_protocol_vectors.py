"""The hex test vectors in docs/protocol.md ("Test vectors") are right.

Each vector is recomputed here from the document's own rules with pynacl,
hashlib and hmac (an independent implementation, not the firmware's code),
compared with the document, and then given to the receiver (Opener,
parse_status, decode_ack), which must open or refuse it as the document
says. Run `python tests/test_protocol_vectors.py` to print the block.
"""

import hashlib
import hmac
import re
import struct
from pathlib import Path

from nacl import bindings as nb

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

HUB_ID = bytes.fromhex("00005a4d00c7")
H_SECRET = bytes(range(1, 33))
R_SECRET = bytes(range(33, 65))
E_SECRET = bytes(range(65, 97))
A_SECRET = bytes(range(97, 129))
KID = 7
EPOCH = 0x01020304
BASE = 1000
SEQ = 1002
# the reading {seq: 1002, dev: 00 112233445566, mdc: 0x2711C, val: 104, unit: "mg/dL", mono: [1, 5]}
PLAIN = bytes.fromhex("a6001903ea014700112233445566021a0002711c03186805656d672f644c09820105")
HIGH_BASE = 2 ** 63 - 2  # an epoch whose offset 2 is past 2**63-1


def leb(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(key, label, body):
    return hmac.new(key, label + bytes((len(HUB_ID),)) + HUB_ID + body, hashlib.sha256).digest()[:16]


def nonce(epoch, seq):
    return bytes((0x10, KID, 0, 0)) + struct.pack(">I", epoch) + bytes(8) + struct.pack(">Q", seq)


def header(epoch, base):
    r_pub = nb.crypto_scalarmult_base(R_SECRET)
    h46 = struct.pack(">BBIQ", 0x11, KID, epoch, base) + nb.crypto_scalarmult_base(E_SECRET)
    return h46 + tag(nb.crypto_box_beforenm(r_pub, H_SECRET), b"samband/epoch/1", h46)


def record(epoch, base, seq, plain):
    key = nb.crypto_box_beforenm(nb.crypto_scalarmult_base(R_SECRET), E_SECRET)
    sealed = nb.crypto_box_easy_afternm(plain, nonce(epoch, seq), key)
    return struct.pack(">BBH", 0x10, epoch & 0xFF, seq - base) + sealed


def vectors():
    r_pub = nb.crypto_scalarmult_base(R_SECRET)
    hdr = header(EPOCH, BASE)
    rec = record(EPOCH, BASE, SEQ, PLAIN)
    body = struct.pack(">BIB", 0x12, 2, 1) + bytes((KID,)) + r_pub
    cfg = body + tag(nb.crypto_box_beforenm(nb.crypto_scalarmult_base(H_SECRET), A_SECRET), b"samband/config/1", body)
    high = header(EPOCH + 1, HIGH_BASE)
    return {
        "hub_id": HUB_ID,
        "hub_secret": H_SECRET,
        "hub_public": nb.crypto_scalarmult_base(H_SECRET),
        "receiver_kid": bytes((KID,)),
        "receiver_secret": R_SECRET,
        "receiver_public": r_pub,
        "epoch_secret": E_SECRET,
        "authority_secret": A_SECRET,
        "k_auth": nb.crypto_box_beforenm(r_pub, H_SECRET),
        "k_epoch": nb.crypto_box_beforenm(r_pub, E_SECRET),
        "epoch_header": hdr,
        "plaintext": PLAIN,
        "record_nonce": nonce(EPOCH, SEQ),
        "record": rec,
        "batch": b"\x13" + leb(len(hdr)) + hdr + leb(len(rec)) + rec,
        "config": cfg,
        "high_epoch_header": high,
        "high_record": record(EPOCH + 1, HIGH_BASE, HIGH_BASE + 2, PLAIN),
        "leb_0": leb(0), "leb_127": leb(127), "leb_128": leb(128), "leb_65536": leb(65536),
        "ack": bytes.fromhex("82820a0c8218181818"),
        "status": bytes.fromhex("a266616c61726d73016770656e64696e671903e8"),
    }


def block():
    return "\n".join(f"{k} = {v.hex()}" for k, v in vectors().items())


def documented():
    text = DOC.read_text()
    m = re.search(r"<!-- vectors -->\n```\n(.*?)\n```", text, re.S)
    assert m, "docs/protocol.md has no vectors block"
    out = {}
    for line in m.group(1).splitlines():
        k, _, v = line.partition(" = ")
        out[k.strip()] = bytes.fromhex(v.strip())
    return out


def test_document_holds_the_vectors():
    assert documented() == vectors()


def test_receiver_reads_the_vectors():
    import pytest

    from hub.uplink import decode_ack
    from samband.receiver.ingest import parse_status
    from samband.receiver.opener import Opener, Rejected, unbatch
    v = documented()
    o = Opener({KID: v["receiver_secret"]}, {v["hub_id"]: v["hub_public"]})
    res = o.open_batch(v["hub_id"], v["batch"])
    assert not res.rejected and [(x.seq, x.plaintext) for x in res.opened] == [(SEQ, v["plaintext"])]
    assert o.open_epoch(v["hub_id"], v["high_epoch_header"]).base == HIGH_BASE
    with pytest.raises(Rejected) as e:  # authentic, but its seq (base + 2) is above 2**63-1
        o.open(v["hub_id"], v["high_record"])
    assert e.value.reason == "out-of-range"
    assert unbatch(b"\x13" + v["leb_128"] + bytes(128)) == [bytes(128)]
    for bad in (b"\x13\x80\x00", b"\x13\x80\x80\x80\x00", b"\x13\x80"):  # not minimal, 4 bytes, truncated
        with pytest.raises(Rejected) as e:
            unbatch(bad)
        assert e.value.reason == "malformed"
    assert decode_ack(v["ack"]) == [10, 11, 12, 24]
    assert parse_status(v["status"]) == {"pending": 1000, "alarms": 1}


def test_firmware_writes_the_vectors():
    """The hub's own code (hub.seal on CPython) makes the same bytes."""
    from hub import seal
    v = documented()
    assert seal.record_nonce(KID, EPOCH, SEQ) == v["record_nonce"]
    assert seal.epoch_tag(v["k_auth"], v["hub_id"], v["epoch_header"][:46]) == v["epoch_header"][46:]
    assert seal.batch([v["epoch_header"], v["record"]]) == v["batch"]
    assert seal.unbatch(v["batch"]) == [v["epoch_header"], v["record"]]
    assert seal.parse_config(v["config"]) == (2, [(KID, v["receiver_public"])])
    for n in (0, 127, 128, 65536):
        assert seal.read_len(v[f"leb_{n}"], 0) == (n, len(v[f"leb_{n}"]))


if __name__ == "__main__":
    print(block())
