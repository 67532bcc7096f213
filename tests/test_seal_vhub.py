"""Sealing on a virtual hub that loses power again and again, then gets stolen.

tests/data/seal/vhub_main.py replaces the hub's main.py: it seals readings
in a loop and appends every epoch header and record to a journal file on
the hub's flash. The test pulls the plug at random moments (SIGKILL, then
a power-on boot) and afterwards checks, over everything the hub wrote:

* no (key, nonce) pair ever repeats, even when the sequence numbers of the
  records do (the "lag" hub reuses up to 8 after every cut);
* the receiver opens every record of a properly numbered hub ("wal");
* a thief with the powered-off hub's flash -- journal, epoch counter,
  receiver keys and the hub's own static secret -- recovers no reading.
"""

import random
import struct
import time
from pathlib import Path

import cbor2
import pytest
from nacl import bindings as nb
from nacl.exceptions import CryptoError

from samband.device import build
from samband.device.authority import Authority
from samband.receiver import opener as hs
from samband.vhub import Flash, VirtualHub, deploy

MAIN = Path(__file__).parent / "data" / "seal" / "vhub_main.py"
UID = "00005a4d00c7"
HUB_ID = bytes.fromhex(UID)
CUTS = 10


class Run:
    pass


def journal(flash):
    """The complete items of the journal on a flash image (a Flash or a snapshot), in order: ("E"|"R", bytes)."""
    items = []
    for line in flash.read("/sealtest.journal").split(b"\n")[:-1]:
        kind, _, data = line.partition(b" ")
        if kind in (b"E", b"R"):
            try:
                items.append((kind.decode(), bytes.fromhex(data.decode())))
            except ValueError:
                pass  # a line a power cut left half-written
    return items


def _records(hub):
    snap = hub.snapshot()  # the running hub's flash, as a power cut now would leave it
    return sum(1 for kind, _ in journal(snap) if kind == "R") if snap.exists_file("/sealtest.journal") else 0


def crash_run(tmp, mode):
    r = Run()
    r.flash = tmp / "flash"
    r.rpk, r.rsk = nb.crypto_box_keypair()
    r.authority = Authority()
    r.hub_pk, files = r.authority.provision(HUB_ID, [(7, r.rpk)])
    deploy(build.build("vhub"), r.flash)
    Flash(r.flash).write_files({**{"/" + rel: data for rel, data in files.items()},
                                "/main.py": MAIN.read_bytes(), "/sealtest.mode": mode.encode()})
    rnd = random.Random(mode)
    hub = VirtualHub(r.flash, uid=UID, deploy_firmware=False)
    hub.start()
    try:
        for i in range(CUTS + 1):
            seen = _records(hub)
            end = time.monotonic() + 20
            while _records(hub) < seen + 3:  # this boot has sealed something
                assert time.monotonic() < end, "the virtual hub stopped sealing:\n" + _tail(hub.snapshot())
                time.sleep(0.01)
            if i == CUTS:
                break
            time.sleep(rnd.uniform(0, 0.06))
            hub.power_cut()
            hub.wait_boots(i + 2)
    finally:
        hub.stop()  # powered off
    r.boots = hub.boots
    r.items = journal(Flash(r.flash))
    return r


def _tail(flash):
    try:
        return flash.read("/sealtest.journal").decode(errors="replace")[-500:]
    except FileNotFoundError:
        return "(no journal)"


@pytest.fixture(scope="module")
def lag(tmp_path_factory):
    return crash_run(tmp_path_factory.mktemp("lag"), "lag")


@pytest.fixture(scope="module")
def wal(tmp_path_factory):
    return crash_run(tmp_path_factory.mktemp("wal"), "wal")


def keyed_records(run):
    """(epoch header, key, nonce, seq, record) of every record, by the epoch header before it."""
    out, header, keys = [], None, {}
    for kind, data in run.items:
        if kind == "E":
            header = data
            continue
        kid, number, base = struct.unpack(">xBIQ", header[:14])
        assert data[1] == number & 0xFF
        seq = base + struct.unpack(">H", data[2:4])[0]
        if header not in keys:
            keys[header] = nb.crypto_box_beforenm(header[14:46], run.rsk)
        out.append((header, keys[header], hs.record_nonce(kid, number, seq), seq, data))
    return out


def test_nonces_never_repeat_across_power_cuts(lag):
    assert lag.boots == CUTS + 1
    recs = keyed_records(lag)
    pairs = set()
    for _header, key, nonce, seq, rec in recs:
        # the nonce is the one the hub used: the record authenticates under it
        nb.crypto_box_open_easy_afternm(rec[4:], nonce, key)
        assert (key, nonce) not in pairs, f"nonce repeated under one key at seq {seq}"
        pairs.add((key, nonce))
    seqs = [seq for *_, seq, _ in recs]
    assert len(seqs) > len(set(seqs)), "the lagging hub should have reused sequence numbers"
    headers = [d for kind, d in lag.items if kind == "E"]
    numbers = [struct.unpack(">I", h[2:6])[0] for h in headers]
    assert len(headers) >= lag.boots and len(set(numbers)) == len(numbers)
    assert len({h[14:46] for h in headers}) == len(headers)  # a new ephemeral key at every boot


def test_receiver_opens_every_record_after_power_cuts(wal):
    assert wal.boots == CUTS + 1
    o = hs.Opener({7: wal.rsk}, {HUB_ID: wal.hub_pk})
    res = o.open_batch(HUB_ID, hs.batch([d for _, d in wal.items]))
    assert not res.rejected, res.rejected[:3]
    seqs = [x.seq for x in res.opened]
    assert seqs == sorted(set(seqs)) and len(seqs) == sum(1 for k, _ in wal.items if k == "R")
    for x in res.opened:
        reading = cbor2.loads(x.plaintext)
        assert reading["reading"] == f"reading-{x.seq}" and reading["unit"] == "mmol/L"
    assert len(res.epochs) >= wal.boots


def test_stolen_flash_recovers_no_reading(wal):
    flash = Flash(wal.flash)
    tree = build.build("vhub")
    files = {p.lstrip("/"): data for p, data in flash.files().items()}
    image = flash.image.read_bytes()  # the whole chip: freed blocks and littlefs's old copies too
    assert "keys/hub.key" in files and "sealtest.journal" in files
    # firmware files are the public build, byte for byte: nothing of this hub's in them
    firmware = {rel for rel in files if (tree / rel).is_file() and rel != "main.py"}
    for rel in firmware:
        assert files[rel] == (tree / rel).read_bytes(), rel
    hub_files = {rel: data for rel, data in files.items() if rel not in firmware}
    assert set(hub_files) >= {"keys/hub.key", "keys/authority.pub", "keys/receivers", "state/seal.epoch",
                              "sealtest.journal", "main.py", ".firmware.json"}

    # 1. no plaintext anywhere on the flash
    opened = hs.Opener({7: wal.rsk}, {HUB_ID: wal.hub_pk}).open_batch(
        HUB_ID, hs.batch([d for _, d in wal.items])).opened
    plaintexts = [x.plaintext for x in opened]
    assert plaintexts
    markers = [b"\x66mmol/L"] + [b"reading-%d" % x.seq for x in opened] + plaintexts
    for blob in list(files.values()) + [d for _, d in wal.items] + [image]:
        for m in markers:
            assert m not in blob, m

    # 2. every 32-byte window of the hub's own files, as a record key and as an X25519 secret
    recs = keyed_records(wal)
    firsts = {}
    for header, _key, nonce, _seq, rec in recs:
        firsts.setdefault(header, (nonce, rec))
    windows = set()
    data_blobs = [d for rel, d in hub_files.items() if rel != "sealtest.journal"]
    data_blobs += [d for kind, d in wal.items if kind == "E"] + [d for _, d in wal.items]
    for blob in data_blobs:
        for i in range(0, max(0, len(blob) - 31)):
            windows.add(blob[i:i + 32])
    hub_sk = files["keys/hub.key"]
    assert hub_sk in windows

    def opens(key, nonce, rec):
        try:
            nb.crypto_box_open_easy_afternm(rec[4:], nonce, key)
            return True
        except CryptoError:
            return False

    for w in windows:
        for nonce, rec in firsts.values():
            assert not opens(w, nonce, rec)
    # X25519 secrets: everything that is not ciphertext (keys, counter, epoch headers)
    secrets = set()
    for blob in data_blobs[:len(data_blobs) - len(wal.items)]:
        for i in range(0, max(0, len(blob) - 31)):
            secrets.add(blob[i:i + 32])
    assert hub_sk in secrets
    publics = {h[14:46] for h in firsts} | {wal.rpk}
    for s in secrets:
        for pub in publics:
            try:
                key = nb.crypto_box_beforenm(pub, s)
            except CryptoError:
                continue
            for nonce, rec in firsts.values():
                assert not opens(key, nonce, rec)

    # 3. what the hub key does give a thief: forging epoch headers (impersonation) until revoked
    kauth = nb.crypto_box_beforenm(wal.rpk, hub_sk)
    epk, esk = nb.crypto_box_keypair()
    forged = bytearray(struct.pack(">BBIQ", hs.V_EPOCH, 7, 0xFFFFFFF0, 1 << 40)) + epk
    forged += hs.epoch_tag(kauth, HUB_ID, bytes(forged))
    o = hs.Opener({7: wal.rsk}, {HUB_ID: wal.hub_pk})
    o.open_epoch(HUB_ID, bytes(forged))
    o.revoke(HUB_ID)
    with pytest.raises(hs.Rejected) as e:
        o.open_epoch(HUB_ID, bytes(forged))
    assert e.value.reason == "revoked"
