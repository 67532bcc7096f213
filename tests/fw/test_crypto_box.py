# crypto_secretbox and crypto_box against the NaCl box3/box4 vectors;
# every flipped bit, truncation and wrong key or nonce is refused.
# (tests/test_crypto_crosscheck.py compares with pynacl both ways.)

from crypto_vectors import ALICE_PK, ALICE_SK, BOB_PK, BOB_SK, C131, FIRSTKEY, M131, NONCE, SMALL_ORDER, TAG131
from crypto_extra import box_open
from fwtest import Rand, raises
from hub.crypto import CryptoError, box


def test_beforenm_is_the_nacl_firstkey():
    assert box.beforenm(BOB_PK, ALICE_SK) == FIRSTKEY
    assert box.beforenm(ALICE_PK, BOB_SK) == FIRSTKEY


def test_box3_and_box4():
    c = box.box(M131, NONCE, BOB_PK, ALICE_SK)
    assert c == TAG131 + C131
    assert box_open(c, NONCE, ALICE_PK, BOB_SK) == M131


def test_secretbox_and_afternm():
    c = box.secretbox(M131, NONCE, FIRSTKEY)
    assert c == TAG131 + C131
    assert box.box_afternm(M131, NONCE, FIRSTKEY) == c
    assert box.secretbox_open(c, NONCE, FIRSTKEY) == M131
    assert box.box_open_afternm(c, NONCE, FIRSTKEY) == M131


def test_public_key():
    assert box.public_key(ALICE_SK) == ALICE_PK


def test_empty_message():
    r = Rand(13)
    key, nonce = r.bytes(32), r.bytes(24)
    c = box.secretbox(b"", nonce, key)
    assert len(c) == 16
    assert box.secretbox_open(c, nonce, key) == b""


def test_every_flipped_bit_is_refused():
    r = Rand(14)
    key, nonce = r.bytes(32), r.bytes(24)
    msg = r.bytes(40)
    c = box.secretbox(msg, nonce, key)
    for i in range(8 * len(c)):
        bad = bytearray(c)
        bad[i >> 3] ^= 1 << (i & 7)
        raises(CryptoError, box.secretbox_open, bytes(bad), nonce, key)
    assert box.secretbox_open(c, nonce, key) == msg


def test_truncated_extended_and_misdirected_boxes_are_refused():
    r = Rand(15)
    key, nonce = r.bytes(32), r.bytes(24)
    c = box.secretbox(b"reading", nonce, key)
    for bad in (c[:-1], c + b"\x00", c[:15], b"", c[1:]):
        raises(CryptoError, box.secretbox_open, bad, nonce, key)
    other = bytearray(nonce)
    other[23] ^= 1
    raises(CryptoError, box.secretbox_open, c, bytes(other), key)
    raises(CryptoError, box.secretbox_open, c, nonce, r.bytes(32))
    c = box.box(b"reading", nonce, BOB_PK, ALICE_SK)
    raises(CryptoError, box_open, c, nonce, BOB_PK, BOB_SK)


def test_small_order_public_keys_are_refused():
    raises(CryptoError, box.beforenm, SMALL_ORDER[0], ALICE_SK)
    raises(CryptoError, box.box, b"x", NONCE, SMALL_ORDER[3], ALICE_SK)


def test_seal_into_leaves_tag_and_ciphertext_in_place():
    r = Rand(16)
    key, nonce = r.bytes(32), r.bytes(24)
    for n in (0, 5, 32, 33, 77, 200):
        msg = r.bytes(n)
        buf = bytearray(b"\xaa" * 5 + r.bytes(16) + msg + b"\xbb")
        box.seal_into(buf, 5, len(msg), nonce, key)
        assert bytes(buf[:5]) == b"\xaa" * 5 and buf[-1] == 0xBB
        assert bytes(buf[5:-1]) == box.secretbox(msg, nonce, key)


def test_sizes_are_checked():
    raises(CryptoError, box.secretbox, b"x", NONCE[:23], FIRSTKEY)
    raises(CryptoError, box.secretbox_open, TAG131, NONCE, FIRSTKEY[:31])
    raises(CryptoError, box.beforenm, BOB_PK[:31], ALICE_SK)
