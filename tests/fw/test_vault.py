# The hub's vault (hub/vault.py): the sealed secrets `samband provision` writes
# open on the hub, fill the config the bearers and uplink read, and say in words
# (never with a secret) when they cannot.

import os

from fwtest import raises
from hub import vault

KEY = bytes(range(32))
TABLE = {"mqtt": "pw-1", "wifi/Home": "home-passphrase"}
# host/samband/device/vault.py seal(TABLE, KEY, nonce=bytes(range(100, 124))), i.e. pynacl's SecretBox
HOST_BLOB = bytes.fromhex(
    "6465666768696a6b6c6d6e6f707172737475767778797a7bd7a7b94fdaac7020824cebf5f2bf6702b03470b9639a8d0e577c"
    "b541c3747c8729d928531b0f56556a91ef7f69fb366ee1d01f96c87b8b6d54da523e0fbabd18")


def _cfg():
    return {"uplink": {"host": "h", "password_sealed": "mqtt"},
            "bearers": [{"kind": "wifi", "networks": [{"ssid": "Home", "password_sealed": "wifi/Home"},
                                                      {"ssid": "Cafe", "password_sealed": "wifi/Cafe"}]}]}


def test_the_hosts_vault_opens_on_the_hub():
    assert vault.unseal(HOST_BLOB, KEY) == TABLE
    blob = vault.seal(TABLE, KEY, bytes(24))
    assert vault.unseal(blob, KEY) == TABLE and b"home-passphrase" not in blob


def test_another_key_or_a_damaged_file_opens_nothing():
    e = raises(ValueError, vault.unseal, HOST_BLOB, bytes(32))
    assert "does not open" in str(e)
    bad = bytearray(HOST_BLOB)
    bad[-1] ^= 1
    raises(ValueError, vault.unseal, bytes(bad), KEY)
    raises(ValueError, vault.unseal, HOST_BLOB[:30], KEY)


def test_fill_puts_each_named_secret_in_place_and_lists_the_missing():
    cfg, missing = _cfg(), []
    vault.fill(cfg, TABLE, missing)
    assert cfg["uplink"]["password"] == "pw-1"
    nets = cfg["bearers"][0]["networks"]
    assert nets[0]["password"] == "home-passphrase" and "password" not in nets[1]
    assert missing == ["wifi/Cafe"]
    assert sorted(vault.names(_cfg())) == ["mqtt", "wifi/Cafe", "wifi/Home"]


def test_load_into_says_what_is_wrong_without_a_secret():
    path = os.getenv("TMPDIR", "/tmp") + "/samband-vault-test-%08x" % int.from_bytes(os.urandom(4), "big")
    try:
        assert vault.load_into({"a": 1}, KEY, path) == []  # no secrets named: no file needed
        p = vault.load_into(_cfg(), KEY, path)
        assert len(p) == 1 and "no " + path in p[0]
        with open(path, "wb") as f:
            f.write(HOST_BLOB)
        cfg = _cfg()
        p = vault.load_into(cfg, KEY, path)
        assert p == ["vault: no secret wifi/Cafe in %s: provision it again" % path]
        assert cfg["uplink"]["password"] == "pw-1"
        p = vault.load_into(_cfg(), bytes(32), path)
        assert len(p) == 1 and "does not open" in p[0]
        for line in p:
            assert "pw-1" not in line and "home-passphrase" not in line
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
