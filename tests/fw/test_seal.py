# The hub's sealed-record format (hub.seal), on both runtimes: sizes and
# version bytes, records the receiver's secret opens (with hub.crypto
# here; tests/test_seal*.py open them with pynacl), the nonce rules,
# epoch numbers that survive restarts, receiver-key configs, batches.

import os
import struct

from fwtest import MemCounter, Rand, raises, rmtree, scratch
from hub import seal
from hub.crypto import CryptoError, box

HUB_ID = b"\x00\x00\x5a\x4d\x00\x01"
R = Rand(40)
HUB_SK = R.bytes(32)
RCV_SK = R.bytes(32)
AUTH_SK = R.bytes(32)
_pub = {}


def pub(sk):
    # through box, as the hub does: a module-level x25519 here would keep a second copy
    # alive whenever the sealer drops and reloads it (test_x25519_is_held_only_...)
    if sk not in _pub:
        _pub[sk] = box.public_key(sk)
    return _pub[sk]


def sealer(counter=None, headers=None, kid=1):
    return seal.Sealer(HUB_ID, HUB_SK, (kid, pub(RCV_SK)), counter or MemCounter(),
                       R.bytes, headers.append if headers is not None else None)


def open_record(header, rec, rcv_sk=RCV_SK):
    # what the receiver does, with the hub's own crypto
    kid, number, base = header[1], struct.unpack(">I", header[2:6])[0], struct.unpack(">Q", header[6:14])[0]
    assert rec[0] == seal.V_RECORD and rec[1] == number & 0xFF
    seq = base + struct.unpack(">H", rec[2:4])[0]
    key = box.beforenm(header[14:46], rcv_sk)
    return seq, box.secretbox_open(memoryview(rec)[4:], seal.record_nonce(kid, number, seq), key)


_kcfg = {}


def config(serial, keys, hub_id=HUB_ID, auth_sk=AUTH_SK):
    body = struct.pack(">BIB", seal.V_CONFIG, serial, len(keys))
    for kid, pk in keys:
        body += bytes((kid,)) + pk
    if auth_sk not in _kcfg:
        _kcfg[auth_sk] = box.beforenm(pub(HUB_SK), auth_sk)
    return body + seal.config_tag(_kcfg[auth_sk], hub_id, body)


def test_sizes_and_version_bytes():
    headers = []
    s = sealer(headers=headers)
    for n in (0, 1, 100, 1000):
        rec = s.seal(1000 + n, bytes(n))
        assert len(rec) == n + seal.RECORD_OVERHEAD == n + 20
        assert rec[0] == 0x10 and rec[0] >> 4 == 1  # format version 1 in the high nibble
    # the largest record in one preallocated buffer: nothing else large is allocated
    buf = bytearray(4096 + 20)
    assert s.seal_into(5000, buf, 4096) == 4116 and buf[0] == 0x10
    assert buf[2:4] == struct.pack(">H", 5000 - 1000) and buf[100:132] != bytes(32)
    # (opening it here would need two more 4 KB blocks of a fragmented 100 KB
    # heap; tests/test_seal_unix.py opens 4 KB records with pynacl)
    raises(seal.SealError, s.seal_into, 5001, buf, 4097)
    assert len(headers) == 1 and len(headers[0]) == seal.EPOCH_BYTES
    assert headers[0][0] == 0x11


def test_records_open_with_the_receiver_secret_only():
    headers = []
    s = sealer(headers=headers)
    recs = [(seq, s.seal(seq, b"reading %d" % seq)) for seq in (5, 6, 9, 300)]
    for seq, rec in recs:
        assert open_record(headers[0], rec) == (seq, b"reading %d" % seq)
        raises(CryptoError, open_record, headers[0], rec, HUB_SK)  # the hub's own key does not open it


def test_epoch_header_is_bound_to_the_hub_key():
    headers = []
    sealer(headers=headers).seal(1, b"x")
    h = headers[0]
    kauth = box.beforenm(pub(HUB_SK), RCV_SK)  # the receiver's side of the static DH
    assert seal.epoch_tag(kauth, HUB_ID, h[:46]) == h[46:]
    assert seal.epoch_tag(kauth, b"other", h[:46]) != h[46:]
    assert h[14:46] != pub(HUB_SK)  # the epoch key is ephemeral


def filler(s, plaintext):
    """(size, fill) for Journal.stage(fill, size=size): fill(seq, view) seals the record
    in the journal's own buffer with Sealer.seal_into (a test's shape of it: no hub
    module stages that way today)."""
    n = len(plaintext)

    def fill(seq, view):
        view[seal.RECORD_OVERHEAD:seal.RECORD_OVERHEAD + n] = plaintext
        s.seal_into(seq, view, n)

    return seal.RECORD_OVERHEAD + n, fill


def test_filler_seals_into_a_journal_buffer():
    headers = []
    s = sealer(headers=headers)
    pool = bytearray(b"\xee" * 200)
    size, fill = filler(s, b"a reading")
    assert size == 29
    fill(77, memoryview(pool)[50:50 + size])
    assert pool[:50] == b"\xee" * 50 and pool[50 + size:] == b"\xee" * (150 - size)
    assert open_record(headers[0], bytes(pool[50:50 + size])) == (77, b"a reading")


def test_an_epoch_the_journal_refused_seals_nothing():
    calls = []

    def full(h):
        calls.append(h)
        if len(calls) == 1:
            raise OSError(28)  # ENOSPC

    s = sealer()
    s.on_epoch = full
    raises(OSError, s.seal, 1, b"a")
    rec = s.seal(2, b"b")  # the refused epoch is not used: a new one, offered to the journal again
    assert len(calls) == 2 and calls[1] != calls[0] and rec[1] == calls[1][5]


def test_sequence_numbers_must_rise():
    s = sealer()
    s.seal(10, b"a")
    raises(seal.SealError, s.seal, 10, b"b")
    raises(seal.SealError, s.seal, 9, b"b")
    raises(seal.SealError, s.seal, -1, b"b")
    s.seal(11, b"c")


def test_nonces_differ_in_every_field():
    seen = set()
    for kid in (0, 1, 255):
        for epoch in (1, 2, 256, 0xFFFFFFFF):
            for seq in (0, 1, 65536, 2 ** 40):
                n = seal.record_nonce(kid, epoch, seq)
                assert len(n) == 24
                seen.add(n)
    assert len(seen) == 3 * 4 * 4


def test_new_epoch_when_the_offset_would_overflow_and_on_rotation():
    headers = []
    ctr = MemCounter(41)
    s = sealer(ctr, headers)
    a = s.seal(100, b"a")
    b = s.seal(100 + seal.MAX_SPAN, b"b")
    assert len(headers) == 1 and b[2:4] == b"\xff\xff"
    c = s.seal(101 + seal.MAX_SPAN, b"c")
    assert len(headers) == 2 and c[2:4] == b"\x00\x00"
    assert (a[1], c[1]) == (42, 43)
    assert open_record(headers[1], c) == (101 + seal.MAX_SPAN, b"c")
    s.set_receiver((1, pub(RCV_SK)))  # the same key again: a new epoch all the same
    s.seal(200000, b"d")
    assert len(headers) == 3 and headers[2][14:46] not in (headers[0][14:46], headers[1][14:46])


def test_x25519_is_held_only_while_an_epochs_keys_are_made():
    import sys
    import hub.crypto
    headers = []
    s = sealer(None, headers)
    s.prepare()
    assert "hub.crypto.x25519" not in sys.modules and not hasattr(hub.crypto, "x25519")
    rec = s.seal(7, b"first")  # the epoch prepared at boot: no X25519 at the first seal
    assert "hub.crypto.x25519" not in sys.modules
    s.set_receiver((1, pub(RCV_SK)))  # a new epoch (the same key set again)
    rec2 = s.seal(8, b"second")  # a new epoch loads it again, and lets it go again
    assert "hub.crypto.x25519" not in sys.modules and len(headers) == 2
    assert open_record(headers[0], rec) == (7, b"first") and open_record(headers[1], rec2) == (8, b"second")


def test_epoch_counter_persists_and_survives_damage():
    d = scratch("seal")
    try:
        path = d + "/state/seal.epoch"
        c = seal.EpochCounter(path)
        assert c.current() == 0
        assert [c.reserve(), c.reserve()] == [1, 2]
        assert seal.EpochCounter(path).reserve() == 3  # "after a reboot"
        with open(path, "wb") as f:
            f.write(b"\x00\x00\x00\x07garbage")
        n = seal.EpochCounter(path).reserve()
        assert n > 0x80000000  # a random restart far from the small numbers already used
        assert seal.EpochCounter(path).reserve() == n + 1
        assert "seal.epoch.tmp" not in os.listdir(d + "/state")
    finally:
        rmtree(d)


def test_keys_from_flash_and_config_rotation():
    d = scratch("seal")
    try:
        os.mkdir(d + "/keys")
        for name, data in (("hub.key", HUB_SK), ("authority.pub", pub(AUTH_SK)),
                           ("receivers", config(1, [(1, pub(RCV_SK))]))):
            with open(d + "/keys/" + name, "wb") as f:
                f.write(data)
        headers = []
        keys, s = seal.from_flash(HUB_ID, d + "/keys", d + "/state/seal.epoch", headers.append, R.bytes)
        assert keys.receiver == (1, pub(RCV_SK)) and keys.serial == 1
        s.seal(1, b"one")
        new_sk = R.bytes(32)
        new = config(2, [(2, pub(new_sk)), (1, pub(RCV_SK))])
        s.set_receiver(keys.apply(new))
        rec = s.seal(2, b"two")
        assert headers[-1][1] == 2 and open_record(headers[-1], rec, new_sk) == (2, b"two")
        again = seal.Keys(HUB_ID, d + "/keys")  # "after a reboot"
        assert again.serial == 2 and again.receiver == (2, pub(new_sk))
        raises(seal.SealError, keys.apply, new)  # replayed
        raises(seal.SealError, keys.apply, config(1, [(3, pub(new_sk))]))  # older
        raises(seal.SealError, keys.apply, config(3, [(3, pub(new_sk))], hub_id=b"another hub"))
        raises(seal.SealError, keys.apply, config(3, [(3, pub(new_sk))], auth_sk=RCV_SK))  # forged
        bad = bytearray(config(3, [(3, pub(new_sk))]))
        bad[10] ^= 1
        raises(seal.SealError, keys.apply, bytes(bad))
        raises(seal.SealError, keys.apply, config(3, [(3, bytes(32))]))  # small-order receiver key
        assert keys.serial == 2
    finally:
        rmtree(d)


def test_missing_keys_say_so():
    d = scratch("seal")
    try:
        e = raises(seal.SealError, seal.Keys, HUB_ID, d + "/keys")
        assert "provision" in str(e)
    finally:
        rmtree(d)


def test_parse_config_refuses_malformed():
    good = config(5, [(1, pub(RCV_SK))])
    assert seal.parse_config(good) == (5, [(1, pub(RCV_SK))])
    for bad in (good[:-1], good + b"\x00", b"\x22" + good[1:], good[:5] + b"\x00" + good[6:], b""):
        raises(seal.SealError, seal.parse_config, bad)


def test_batch_roundtrip_and_malformed_batches():
    items = [b"", b"\x10" * 5, b"\x11" * 62, bytes(200), bytes(3000)]
    data = seal.batch(items)
    assert data[0] == 0x13 and seal.unbatch(data) == items
    assert len(seal.batch([bytes(100)])) == 1 + 1 + 100
    for bad in (b"", b"\x23", data[:-1], b"\x13\x80", b"\x13\x05abc"):
        raises(seal.SealError, seal.unbatch, bad)


def test_seq_above_what_a_receiver_stores_is_refused():
    # the receiver's columns are signed 64-bit (docs/protocol.md, "Limits and overflow")
    s = sealer()
    s.seal(seal.SEQ_MAX - 1, b"a")
    s.seal(seal.SEQ_MAX, b"b")
    raises(seal.SealError, s.seal, seal.SEQ_MAX + 1, b"c")
    raises(seal.SealError, s.seal, 0xFFFFFFFFFFFFFFFF, b"c")


def test_batch_limits_and_minimal_lengths():
    assert seal.read_len(b"\x00", 0) == (0, 1)
    assert seal.read_len(b"\x80\x01", 0) == (128, 2)
    assert seal.read_len(b"\x80\x80\x04", 0) == (65536, 3)
    for bad in (b"\x80\x00", b"\xff\x80\x00", b"\x80\x80\x80\x01", b"\x80", b""):
        assert seal.read_len(bad, 0) is None
    for bad in (b"\x13\x80\x00", b"\x13\x81\x00" + b"x", b"\x13\x80\x80\x80\x00"):
        raises(seal.SealError, seal.unbatch, bad)
    import sys
    # 64 KiB buffers and 1024-item lists do not fit the port's 100 KB test heap
    if sys.implementation.name == "cpython":
        most = [b""] * seal.MAX_BATCH_ITEMS
        assert seal.unbatch(seal.batch(most)) == most
        raises(seal.SealError, seal.batch, most + [b""])
        raises(seal.SealError, seal.unbatch, b"\x13" + b"\x00" * (seal.MAX_BATCH_ITEMS + 1))
        big = [bytes(seal.MAX_BATCH_BYTES - 1 - 3)]
        assert len(seal.batch(big)) == seal.MAX_BATCH_BYTES
        raises(seal.SealError, seal.batch, [bytes(seal.MAX_BATCH_BYTES - 3)])
