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
        sealed = box.secretbox(cbor.dumps(self._bonds), nonce, self._key)
        d = self.path.rsplit("/", 1)[0]
        if d:
            try:
                os.mkdir(d)
            except OSError:
                pass
        _write_atomic(self.path, nonce + sealed)

    def get(self, addr):
        return self._bonds.get(bytes(addr))

    def set(self, addr, keys):
        self._bonds[bytes(addr)] = bytes(keys)
        self._save()

    def delete(self, addr):
        if self._bonds.pop(bytes(addr), None) is not None:
            self._save()

    def all(self):
        return [[a, k] for a, k in self._bonds.items()]

    def __len__(self):
        return len(self._bonds)
