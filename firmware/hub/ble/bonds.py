# Bond keys of the devices the hub has paired with. The BLE stack asks us
# for them (NimBLE's secret IRQs on boards, key-store requests from the
# bridge on the virtual hub); we keep them on flash sealed with
# XSalsa20-Poly1305 under a key derived from the hub key, never as
# plaintext. Whoever holds the whole flash holds the hub key too, so this
# protects against reading the bond file alone (a log, a partial dump),
# not against a full image; docs/protocol.md states that limit.

import os
import struct

from hub import cbor
from hub.crypto import box
from hub.crypto.hmac import hmac_sha256

_LABEL = b"samband bond keys v1"


def _write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class BondStore:
    """addr (7 bytes) -> opaque key blob, persisted sealed in one file."""

    def __init__(self, path, hub_secret, rng=os.urandom):
        self.path = path
        self._key = hmac_sha256(hub_secret, _LABEL)
        self._rng = rng
        self._bonds = {}
        self.damaged = 0
        self.dirty = False
        self._saving = False
        self._load()

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                blob = f.read()
        except OSError:
            return
        try:
            nonce, sealed = blob[:24], blob[24:]
            plain = box.secretbox_open(sealed, nonce, self._key)
            m = cbor.loads(plain)
            self._bonds = {bytes(k): bytes(v) for k, v in m.items()}
        except Exception:  # noqa: BLE001 - a damaged bond file costs re-pairing, never the boot
            self.damaged += 1
            self._bonds = {}

    def _save(self):
        nonce = self._rng(24)
        # a copy first: on the ESP32 the BLE IRQ (another thread) may change the dict meanwhile
        sealed = box.secretbox(cbor.dumps(dict(self._bonds)), nonce, self._key)
        d = self.path.rsplit("/", 1)[0]
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass
        _write_atomic(self.path, nonce + sealed)

    def get(self, addr):
        return self._bonds.get(bytes(addr))

    def set(self, addr, keys, save=True):
        """save=False only changes RAM (the BLE IRQ): flush() writes it later, from a task."""
        self._bonds[bytes(addr)] = bytes(keys)
        self.dirty = True
        if save:
            self.flush()

    def delete(self, addr, save=True):
        if self._bonds.pop(bytes(addr), None) is not None:
            self.dirty = True
        if save:
            self.flush()

    def flush(self):
        """Write what changed. Re-entry (a scheduled flush running inside a task's save) only
        leaves `dirty` set: the save under way writes again before it returns."""
        if self._saving:
            return
        self._saving = True
        try:
            while self.dirty:
                self.dirty = False
                try:
                    self._save()
                except Exception:
                    self.dirty = True
                    raise
        finally:
            self._saving = False

    def all(self):
        return [[a, k] for a, k in self._bonds.items()]

    def __len__(self):
        return len(self._bonds)


# A board's bond entry: every secret NimBLE hands us for one device (its
# "our" and "peer" security records, by sec_type), in one value:
# [sec_type u8][length u16 BE][bytes] repeated. Pure functions: the IRQ
# calls them, so a damaged value reads as "no keys", never an exception.

def pack_secrets(secrets):
    out = bytearray()
    for t in sorted(secrets):
        v = secrets[t]
        out += struct.pack(">BH", t, len(v)) + v
    return bytes(out)


def unpack_secrets(blob):
    out = {}
    if not blob:
        return out
    i, n = 0, len(blob)
    while i + 3 <= n:
        t, ln = struct.unpack_from(">BH", blob, i)
        i += 3
        if i + ln > n:
            return {}
        out[t] = bytes(blob[i:i + ln])
        i += ln
    return out if i == n else {}
