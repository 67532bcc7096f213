# The secrets a hub needs to get online -- Wi-Fi passphrases, the APN
# password, the SIM PIN, the MQTT password -- sealed on flash in one file,
# /keys/vault: a 24-byte nonce, then XSalsa20-Poly1305 (crypto_secretbox)
# of a JSON map {name: text}, under HMAC-SHA256(hub.key, LABEL). So a dump
# of the flash without hub.key shows none of them; whoever has hub.key has
# the hub anyway (docs/protocol.md states that limit, as for the bonds).
#
# The hub config names a secret rather than holding it: any key ending in
# "_sealed" (e.g. a Wi-Fi network's "password_sealed": "wifi/Home") is
# filled in, in RAM only, as the key without the suffix ("password"), which
# is what the bearers and the uplink already read. `samband provision`
# writes the vault (host/samband/device/vault.py); nothing here prints a
# secret, and the config is never part of the hub's status.

import json

from hub.crypto import box
from hub.crypto.hmac import hmac_sha256

LABEL = b"samband vault v1"
SUFFIX = "_sealed"
PATH = "/keys/vault"


def key(hub_secret):
    """The vault key: derived, so that it is never the hub's X25519 secret itself."""
    return hmac_sha256(hub_secret, LABEL)


def seal(table, hub_secret, nonce):
    """The vault file's bytes for {name: text} (the host seals the same way)."""
    return bytes(nonce) + box.secretbox(json.dumps(table).encode(), nonce, key(hub_secret))


def unseal(blob, hub_secret):
    """{name: text}; ValueError if the file is damaged or sealed under another hub key."""
    if len(blob) < 24 + 16:
        raise ValueError("too short")
    try:
        plain = box.secretbox_open(blob[24:], blob[:24], key(hub_secret))
    except Exception:  # noqa: BLE001 - CryptoError: another key or damaged bytes
        raise ValueError("does not open with this hub's key")
    table = json.loads(plain)
    if not isinstance(table, dict):
        raise ValueError("not a map")
    return table


def fill(obj, table, missing):
    """Put each named secret of table into obj (dicts and lists, walked), in place:
    {"password_sealed": "x"} gains "password": table["x"]. Names not in the table
    go to missing (the bearer then fails with its own reason, the status says why)."""
    if isinstance(obj, list):
        for v in obj:
            fill(v, table, missing)
    elif isinstance(obj, dict):
        for k in list(obj):
            v = obj[k]
            if isinstance(k, str) and k.endswith(SUFFIX) and isinstance(v, str):
                if v in table:
                    obj[k[:-len(SUFFIX)]] = table[v]
                elif v not in missing:
                    missing.append(v)
            else:
                fill(v, table, missing)


def names(obj, out=None):
    """Every secret name the config refers to."""
    out = [] if out is None else out
    fill(obj, {}, out)
    return out


def load_into(config, hub_secret, path=PATH):
    """Unseal the vault into config (in RAM). Returns problems in words, never a
    secret: no vault while the config names secrets, a vault that does not open,
    names it does not hold."""
    wanted = names(config)
    if not wanted:
        return []
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return ["vault: no %s but the config names %d secret(s): provision the hub again" % (path, len(wanted))]
    try:
        table = unseal(blob, hub_secret)
    except ValueError as e:
        return ["vault: %s %s: provision the hub again with its passwords" % (path, e)]
    missing = []
    fill(config, table, missing)
    return ["vault: no secret %s in %s: provision it again" % (n, path) for n in missing]
