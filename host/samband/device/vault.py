"""The hub's sealed secrets, host side: the same file firmware/hub/vault.py opens.

`samband provision` seals Wi-Fi passphrases, the APN password, the SIM PIN and the
MQTT password here, under a key derived from the hub's own hub.key, so that the
flash never holds them in clear. pynacl's SecretBox is NaCl's crypto_secretbox,
byte for byte what the firmware's hub.crypto.box opens."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from samband.errors import SambandError

LABEL = b"samband vault v1"
BOND_LABEL = b"samband bond keys v1"  # firmware/hub/ble/bonds.py
PATH = "/keys/vault"


def _box(hub_secret: bytes, label: bytes = LABEL) -> Any:
    from nacl.secret import SecretBox
    return SecretBox(hmac.new(bytes(hub_secret), label, hashlib.sha256).digest())


def seal(table: dict[str, str], hub_secret: bytes, nonce: bytes | None = None) -> bytes:
    """{name: text} -> the vault file: nonce (24) + secretbox of its JSON."""
    nonce = nonce or os.urandom(24)
    return bytes(_box(hub_secret).encrypt(json.dumps(table, sort_keys=True).encode(), nonce))


def unseal(blob: bytes, hub_secret: bytes) -> dict[str, str]:
    """The vault's {name: text}; SambandError if it does not open with this key."""
    from nacl.exceptions import CryptoError
    try:
        table = json.loads(_box(hub_secret).decrypt(bytes(blob)))
    except (CryptoError, ValueError):
        raise SambandError(f"the hub's sealed secrets ({PATH}) do not open with its hub.key: provision "
                           f"it with --rekey and give every password file again") from None
    if not isinstance(table, dict):
        raise SambandError(f"the hub's {PATH} is not a map of secrets: provision it with --rekey")
    return table


def reseal_bonds(blob: bytes, old_secret: bytes, new_secret: bytes) -> bytes | None:
    """The bond file (firmware/hub/ble/bonds.py) sealed again under a new hub key, so
    that --rekey does not cost the patient's devices their pairing; None if it does
    not open (the hub itself would read it as damaged and pair again)."""
    from nacl.exceptions import CryptoError
    try:
        plain = _box(old_secret, BOND_LABEL).decrypt(bytes(blob))
    except (CryptoError, ValueError):
        return None
    return bytes(_box(new_secret, BOND_LABEL).encrypt(plain, os.urandom(24)))
