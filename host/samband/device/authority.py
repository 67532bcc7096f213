"""The depot's authority key: what a hub trusts to change its receiver keys.

Authority makes a new hub's key files (its own key pair, the authority's
public key, the first receiver-key config) and later configs that tell a
hub to seal to other receiver keys (key rotation, docs/protocol.md). It
runs where the depot is (samband.device.depot), kept apart from the
receiver's opening (samband.receiver.opener), which never holds this key.
The config format is the firmware's (firmware/hub/seal.py).
"""

from __future__ import annotations

import os
import struct

from nacl import bindings as nb

from hub.seal import MAX_RECEIVERS, V_CONFIG, config_tag


class Authority:
    """The key that authenticates receiver-key configs to hubs (kept offline at the depot)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or os.urandom(32)
        self.public = nb.crypto_scalarmult_base(self.secret)

    def config(self, hub_id: bytes, hub_public: bytes, serial: int, receivers: list[tuple[int, bytes]]) -> bytes:
        """A config telling one hub to seal to receivers[0] = (key id, public key) from now on."""
        if not 1 <= len(receivers) <= MAX_RECEIVERS:
            raise ValueError(f"1..{MAX_RECEIVERS} receiver keys")
        body = bytearray(struct.pack(">BIB", V_CONFIG, serial, len(receivers)))
        for kid, pk in receivers:
            if len(pk) != 32:
                raise ValueError("receiver public keys are 32 bytes")
            body += bytes((kid,)) + pk
        kcfg = nb.crypto_box_beforenm(hub_public, self.secret)
        return bytes(body) + config_tag(kcfg, bytes(hub_id), bytes(body))

    def provision(self, hub_id: bytes, receivers: list[tuple[int, bytes]], serial: int = 1,
                  hub_secret: bytes | None = None) -> tuple[bytes, dict[str, bytes]]:
        """(hub public key, {path on the hub's flash: bytes}) for a new hub; the secret is in the files only."""
        sk = hub_secret or os.urandom(32)
        pk = nb.crypto_scalarmult_base(sk)
        return pk, {"keys/hub.key": sk, "keys/authority.pub": self.public,
                    "keys/receivers": self.config(hub_id, pk, serial, receivers)}
