"""The sealed-record format end to end: the hub's Sealer (compiled, on the
unix port, through tests/fw/seal_check.py) against the receiver's Opener
(host/samband/seal.py, pynacl). Every rejection has its reason and its
counter; rotation and revocation work without touching the firmware."""

import random

import pytest
from nacl import bindings as nb

from samband.device.authority import Authority
from samband.receiver import opener as hs

HUB_A = bytes.fromhex("00005a4d0001")
HUB_B = bytes.fromhex("00005a4d0002")


class Keys:
    def __init__(self):
        self.rpk, self.rsk = nb.crypto_box_keypair()
        self.r2pk, self.r2sk = nb.crypto_box_keypair()
        self.apk, self.ask = nb.crypto_box_keypair()
        self.bpk, self.bsk = nb.crypto_box_keypair()


@pytest.fixture(scope="module")
def k():
    return Keys()


def run(mpy, lines):
    p = mpy(["seal_check.py"], input=("\n".join(lines) + "\n").encode())
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    out = []
    for line in p.stdout.decode().splitlines():
        kind, _, data = line.partition(" ")
        assert kind in ("E", "R"), line
        out.append((kind, bytes.fromhex(data)))
    return out


def boot(k, hub=HUB_A, sk=None, kid=1, rpk=None, first=1):
    return f"I {hub.hex()} {(sk or k.ask).hex()} {kid} {(rpk or k.rpk).hex()} {first}"


def opener(k, **kw):
    return hs.Opener({1: k.rsk, 2: k.r2sk}, {HUB_A: k.apk, HUB_B: k.bpk}, **kw)


def open_all(o, items, hub=HUB_A):
    got = []
    for kind, data in items:
        if kind == "E":
            o.open_epoch(hub, data)
        else:
            got.append(o.open(hub, data))
    return got


@pytest.fixture(scope="module")
def stream(mpy, k):
    """Two boots of hub A: 150 records of 0..4096 bytes, an epoch rotation in each boot."""
    r = random.Random(7)
    lines, seq, sizes = [boot(k, first=1)], 100, {}
    for i in range(150):
        if i == 40:
            lines.append("T")
        if i == 75:
            lines.append(boot(k, first=3))  # a reboot: new Sealer, the epoch counter went on
        if i == 110:
            lines.append("T")
        n = r.choice([0, 1, 20, 200, 1000, 4096, r.randint(0, 4096)])
        seq += r.randint(1, 3)
        sizes[seq] = n
        lines.append(f"N {seq} {n}")
    return run(mpy, lines), sizes


def pattern(seq, n):
    p = b"%d:" % seq
    return (p * (n // len(p) + 1))[:n]


def test_every_record_opens_and_costs_20_bytes(k, stream):
    items, sizes = stream
    o = opener(k)
    got = open_all(o, items)
    assert [g.seq for g in got] == sorted(sizes)
    for g in got:
        assert g.plaintext == pattern(g.seq, sizes[g.seq])
    records = [d for kind, d in items if kind == "R"]
    assert all(len(rec) - sizes[g.seq] == hs.RECORD_OVERHEAD == 20 for rec, g in zip(records, got))
    assert max(sizes.values()) == 4096
    headers = [d for kind, d in items if kind == "E"]
    assert len(headers) == 4 and len({h[14:46] for h in headers}) == 4  # a fresh ephemeral key each epoch
    assert o.counters["opened"] == 150 and o.counters["epochs"] == 4
    assert sum(o.counters[r] for r in hs.REASONS) == 0


def test_batches_open_whole(k, stream):
    items, _ = stream
    o = opener(k)
    opened = epochs = 0
    chunk = []  # batches within MAX_BATCH_BYTES (the stream is some 150 KB)
    for _, d in items + [(None, None)]:
        if d is None or sum(len(c) + 3 for c in chunk) + len(d) + 4 > hs.MAX_BATCH_BYTES:
            res = o.open_batch(HUB_A, hs.batch(chunk))
            assert not res.rejected
            opened, epochs, chunk = opened + len(res.opened), epochs + len(res.epochs), []
        chunk.append(d)
    assert opened == 150 and epochs == 4


def _small(mpy, k):
    return run(mpy, [boot(k), "S 10 a1b2c3d4e5f60718293a", "S 11 00", "S 12 -"])


def rejections(open_fn, data):
    """The reasons open_fn(HUB_A, ...) gives for data with each one of its bits flipped;
    every flip must be rejected."""
    reasons = set()
    for i in range(8 * len(data)):
        bad = bytearray(data)
        bad[i >> 3] ^= 1 << (i & 7)
        with pytest.raises(hs.Rejected) as e:
            open_fn(HUB_A, bytes(bad))
        reasons.add(e.value.reason)
    return reasons


def test_every_flipped_bit_of_a_record_is_rejected(mpy, k):
    items = _small(mpy, k)
    header, rec = items[0][1], items[1][1]
    o = opener(k)
    o.open_epoch(HUB_A, header)
    reasons = rejections(o.open, rec)
    assert reasons == {"version", "malformed", "unknown-epoch", "tampered"}
    assert sum(o.counters[r] for r in reasons) == 8 * len(rec) and o.counters["opened"] == 0
    assert o.open(HUB_A, rec).seq == 10


def test_every_flipped_bit_of_an_epoch_header_is_rejected(mpy, k):
    header = _small(mpy, k)[0][1]
    o = opener(k)
    reasons = rejections(o.open_epoch, header)
    assert reasons == {"version", "malformed", "wrong-key", "forged"}
    assert o.counters["epochs"] == 0


def test_truncated_and_garbage_input(mpy, k):
    items = _small(mpy, k)
    o = opener(k)
    o.open_epoch(HUB_A, items[0][1])
    for bad, reason in ((b"", "malformed"), (b"\x10", "malformed"), (items[1][1][:19], "malformed"),
                        (items[0][1], "malformed"), (b"\x30" + bytes(30), "version")):
        with pytest.raises(hs.Rejected) as e:
            o.open(HUB_A, bad)
        assert e.value.reason == reason
    for bad, reason in ((items[0][1][:-1], "malformed"), (items[1][1], "malformed"), (b"\x21" + bytes(61), "version")):
        with pytest.raises(hs.Rejected) as e:
            o.open_epoch(HUB_A, bad)
        assert e.value.reason == reason
    for bad, reason in ((b"", "malformed"), (b"\x23\x00", "version"), (b"\x13\x05ab", "malformed"),
                        (b"\x12", "malformed")):
        with pytest.raises(hs.Rejected) as e:
            o.open_batch(HUB_A, bad)
        assert e.value.reason == reason


def test_replayed_records_are_rejected(mpy, k):
    items = _small(mpy, k)
    o = opener(k)
    open_all(o, items)
    for _, rec in items[1:]:
        with pytest.raises(hs.Rejected) as e:
            o.open(HUB_A, rec)
        assert e.value.reason == "replayed"
    res = o.open_batch(HUB_A, hs.batch([d for _, d in items]))
    assert not res.opened and [e.reason for _, e in res.rejected] == ["replayed"] * 3
    assert o.counters["replayed"] == 6
    o.open_epoch(HUB_A, items[0][1])  # a header sent again is harmless


def test_reordering_is_detected(mpy, k):
    items = _small(mpy, k)
    header, r10, r11, r12 = (d for _, d in items)
    o = opener(k)
    res = o.open_batch(HUB_A, hs.batch([header, r10, r12, r11]))
    assert [x.seq for x in res.opened] == [10, 12]
    assert [(i, e.reason) for i, e in res.rejected] == [(3, "reordered")]
    assert o.counters["reordered"] == 1
    late = o.open(HUB_A, r11)  # alone, a late record is accepted and flagged
    assert late.seq == 11 and late.late and o.counters["late"] == 1


def test_spliced_records_are_rejected(mpy, k):
    a = _small(mpy, k)
    b = run(mpy, [boot(k, HUB_B, k.bsk), "S 10 a1b2c3d4e5f60718293a"])
    o = opener(k)
    open_all(o, a)
    o.open_epoch(HUB_B, b[0][1])
    with pytest.raises(hs.Rejected) as e:  # hub A's record presented as hub B's
        o.open(HUB_B, a[2][1])
    assert e.value.reason == "tampered"
    # the same seq under hub B's own epoch opens: hubs have separate seq spaces
    assert o.open(HUB_B, b[1][1]).seq == 10
    # a record moved to another epoch of the same hub with the same epoch tag byte
    late = run(mpy, [boot(k, first=257), "S 500 00"])  # epoch 257: tag byte 0x01 like epoch 1
    o2 = opener(k)
    o2.open_epoch(HUB_A, a[0][1])
    o2.open_epoch(HUB_A, late[0][1])
    assert o2.open(HUB_A, late[1][1]).epoch == 257
    moved = bytearray(a[2][1])
    moved[2:4] = (2).to_bytes(2, "big")  # claim another offset (seq 12)
    with pytest.raises(hs.Rejected) as e:
        o2.open(HUB_A, bytes(moved))
    assert e.value.reason == "tampered"
    assert o2.open(HUB_A, a[2][1]).epoch == 1


def test_forged_epoch_headers(mpy, k):
    # hub B's key signing an epoch "of hub A", and an epoch number reused with another key
    b = run(mpy, [boot(k, HUB_A, k.bsk), "S 1 00"])
    o = opener(k)
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_A, b[0][1])
    assert e.value.reason == "forged"
    a1 = run(mpy, [boot(k, first=9), "S 1 00"])
    a2 = run(mpy, [boot(k, first=9), "S 2 00"])
    o.open_epoch(HUB_A, a1[0][1])
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_A, a2[0][1])
    assert e.value.reason == "forged" and "stolen" in str(e.value)
    assert o.counters["forged"] == 2


def test_unknown_hub_unknown_epoch_and_revocation(mpy, k):
    items = _small(mpy, k)
    o = opener(k)
    with pytest.raises(hs.Rejected) as e:
        o.open(HUB_A, items[1][1])
    assert e.value.reason == "unknown-epoch"
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(b"nobody", items[0][1])
    assert e.value.reason == "unknown-hub"
    o.open_epoch(HUB_A, items[0][1])
    o.open(HUB_A, items[1][1])
    o.revoke(HUB_A)
    for fn, data in ((o.open, items[2][1]), (o.open_epoch, items[0][1])):
        with pytest.raises(hs.Rejected) as e:
            fn(HUB_A, data)
        assert e.value.reason == "revoked"
    res = o.open_batch(HUB_A, hs.batch([d for _, d in items]))
    assert [e.reason for _, e in res.rejected] == ["revoked"] * 4
    assert o.counters["revoked"] == 6 and o.counters["unknown-hub"] == 1 and o.counters["unknown-epoch"] == 1
    # re-provisioned with a new key, the hub is welcome again; the old key stays refused
    new_pk, new_sk = nb.crypto_box_keypair()
    o.register_hub(HUB_A, new_pk)
    assert not o.hubs[HUB_A].revoked
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_A, items[0][1])
    assert e.value.reason == "forged"


def test_wrong_and_retired_receiver_keys(mpy, k):
    items = run(mpy, [boot(k, kid=2, rpk=k.r2pk), "S 1 00", "S 2 00"])
    o = hs.Opener({1: k.rsk}, {HUB_A: k.apk})
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_A, items[0][1])
    assert e.value.reason == "wrong-key"
    o = hs.Opener({1: k.rsk, 2: k.rsk}, {HUB_A: k.apk})  # key id 2 names another key here
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_A, items[0][1])
    assert e.value.reason == "forged"
    o = opener(k)
    o.open_epoch(HUB_A, items[0][1])
    assert o.open(HUB_A, items[1][1]).seq == 1
    o.retire_receiver_key(2)
    with pytest.raises(hs.Rejected) as e:
        o.open(HUB_A, items[2][1])
    assert e.value.reason == "wrong-key"
    assert o.counters["wrong-key"] == 1


def test_receiver_key_rotation_without_reflashing(tmp_path, k):
    # the authority makes configs; the hub's own code (on CPython here) checks and stores them
    from hub import seal
    auth = Authority()
    hub_pk, files = auth.provision(HUB_A, [(1, k.rpk)])
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    headers = []
    keys, sealer = seal.from_flash(HUB_A, str(tmp_path / "keys"), str(tmp_path / "state/seal.epoch"),
                                   headers.append)
    r1 = sealer.seal(1, b"before")
    sealer.set_receiver(keys.apply(auth.config(HUB_A, hub_pk, 2, [(2, k.r2pk), (1, k.rpk)])))
    r2 = sealer.seal(2, b"after")
    assert [h[1] for h in headers] == [1, 2]
    o = hs.Opener({1: k.rsk, 2: k.r2sk}, {HUB_A: hub_pk})
    assert [x.plaintext for x in open_all(o, [("E", headers[0]), ("R", r1), ("E", headers[1]), ("R", r2)])] == \
        [b"before", b"after"]
    with pytest.raises(seal.SealError):
        keys.apply(auth.config(HUB_A, hub_pk, 2, [(3, k.rpk)]))  # replayed serial
    with pytest.raises(seal.SealError):
        keys.apply(Authority().config(HUB_A, hub_pk, 3, [(3, k.rpk)]))  # not our authority
    assert seal.Keys(HUB_A, str(tmp_path / "keys")).receiver == (2, k.r2pk)


def test_opener_state_survives_a_restart(mpy, k):
    items = _small(mpy, k)
    o = opener(k)
    open_all(o, items[:3])
    o2 = opener(k)
    o2.load_state(o.state())
    with pytest.raises(hs.Rejected) as e:
        o2.open(HUB_A, items[1][1])
    assert e.value.reason == "replayed"
    assert o2.open(HUB_A, items[3][1]).seq == 12


def test_hub_batch_format_is_the_receivers(mpy, k):
    from hub import seal
    items = _small(mpy, k)
    data = seal.batch([d for _, d in items])
    assert data == hs.batch([d for _, d in items]) and hs.unbatch(data) == [d for _, d in items]
    assert len(opener(k).open_batch(HUB_A, data).opened) == 3
