# Signed configs over the uplink (hub/hubcfg.py): limits and receiver keys,
# each verified (authentic for this hub, newer than the one in force),
# stored, applied at once and reported; forged, other-hub, replayed and
# malformed configs refused, counted and named, nothing in force changing.

import os
import sys

from fwtest import Rand
from hub import alarms, hubcfg, kinds, limits, seal
from hub import profiles as P
from hub.crypto import box, hmac, x25519
from hub.reading import PRIO_ALARM as A
from hub.reading import PRIO_ROUTINE as RT

MPY_HEAP = "200k"  # the crypto, the profile codecs and the kinds at once
HUB_ID = b"\x00\x00\x5a\x4d\x00\x17"
OTHER_ID = b"\x00\x00\x5a\x4d\x00\x18"
R = Rand(1616)
HUB_SK = R.bytes(32)
AUTH_SK = R.bytes(32)
THIEF_SK = R.bytes(32)
HUB_PK = x25519.scalarmult_base(HUB_SK)
RCV1 = x25519.scalarmult_base(R.bytes(32))
RCV2_SK = R.bytes(32)
RCV2 = x25519.scalarmult_base(RCV2_SK)
GLU = [160212]  # MDC_CONC_GLU_ISF, what a CGM sends


def tag(body, label, auth_sk=AUTH_SK, hub_id=HUB_ID):
    """The authority's tag (host: samband.device.limits.tag, samband.device.authority.Authority.config)."""
    k = box.beforenm(HUB_PK, auth_sk)
    return hmac.hmac_sha256(k, label, bytes((len(hub_id),)), hub_id, body)[:16]


def limits_cfg(serial, rules, **kw):
    body = limits.body(serial, rules)
    return body + tag(body, limits.LIMITS_LABEL, **kw)


def keys_cfg(serial, receivers, **kw):
    body = bytes((seal.V_CONFIG, serial >> 24, serial >> 16 & 255, serial >> 8 & 255, serial & 255, len(receivers)))
    for kid, pk in receivers:
        body += bytes((kid,)) + pk
    return body + tag(body, seal.CONFIG_LABEL, **kw)


def flash():
    """A provisioned hub's /keys in a fresh folder: (root, Keys, Sealer, state, telemetry log)."""
    d = "/tmp/samband-hubcfg-" + "".join("%02x" % b for b in os.urandom(4))
    os.mkdir(d)
    os.mkdir(d + "/keys")
    for name, data in (("hub.key", HUB_SK), ("authority.pub", x25519.scalarmult_base(AUTH_SK)),
                       ("receivers", keys_cfg(1, [(1, RCV1)]))):
        with open(d + "/keys/" + name, "wb") as f:
            f.write(data)
    keys, sealer = seal.from_flash(HUB_ID, d + "/keys", d + "/epoch")
    return d + "/keys", keys, sealer, {"k": keys.serial, "l": 0}, []


def cgm(mg_dl):
    (r,) = P.decode(0x2AA7, P.encode(0x2AA7, {"records": [{"flags": 0, "conc": (mg_dl, 0), "toff": 5}]}))
    return alarms.classify(r, kinds.get("cgm").LIMITS, kinds.get("cgm").ALARM_FLAGS)


def take(blob, f):
    root, keys, sealer, state, tel = f
    return hubcfg.take(blob, keys, sealer, state, root, lambda mdc, v: tel.append((mdc, v)))


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_limits_applied_at_once_and_refusals_counted():
    f = flash()
    root, keys, sealer, state, tel = f
    try:
        assert cgm(200) == RT  # routine under the CGM's defaults
        blob = limits_cfg(5, [(GLU, "mg/dL", 70, 180)])
        assert take(blob, f)
        assert cgm(200) == A and cgm(60) == A and cgm(120) == RT  # judged by the new limits, no reboot
        assert state == {"k": 1, "l": 5} and tel == [(hubcfg.MDC_HUB_CFG_LIMITS, 5)]
        assert read(root + "/limits") == blob
        assert "hub.limits" not in sys.modules  # loaded for the config only
        assert take(blob, f) and state == {"k": 1, "l": 5} and len(tel) == 1  # retained, heard again: no news
        newer = limits_cfg(7, [(GLU, "mg/dL", 70, 250)])
        assert take(newer, f) and cgm(200) == RT and state["l"] == 7
        refused = [
            (limits_cfg(6, [(GLU, "mg/dL", 70, 100)]), "replay", 6),             # older than the one in force
            (blob, "replay", 5),                                                # a replay of an older one
            (limits_cfg(9, [(GLU, "mg/dL", 1, 2)], auth_sk=THIEF_SK), "forged", 9),  # another authority key
            (limits_cfg(9, [(GLU, "mg/dL", 1, 2)], hub_id=OTHER_ID), "forged", 9),  # made for another hub
            (newer[:-1] + bytes((newer[-1] ^ 1,)), "forged", 7),
            (newer[:-17] + bytes((newer[-17] ^ 1,)) + newer[-16:], "forged", 7),  # a limit altered after signing
            (b"\x14" + b"\x00" * 30, "format", 0),
            (b"junk", "format", 0),
        ]
        for n, (bad, code, x) in enumerate(refused, 1):
            assert not take(bad, f), code
            assert state["bad"] == n and state["r"] == code and state["x"] == x, (n, code, state)
            assert tel[-1] == (hubcfg.MDC_HUB_CFG_REFUSED, hubcfg.REFUSALS.index(code))
        assert read(root + "/limits") == newer and state["l"] == 7 and cgm(200) == RT and cgm(260) == A
        # what the hub takes at its next boot is the config in force
        lim = limits.Limits(keys, root)
        lim.load()
        assert lim.serial == 7 and lim.problem is None
    finally:
        alarms.set_limits([])


def test_receiver_key_rotation_seals_new_records_to_the_new_key():
    f = flash()
    root, keys, sealer, state, tel = f
    headers = []
    sealer.on_epoch = headers.append  # as the journal takes each epoch's header on a hub
    old = sealer.seal(10, b"before")
    hdr_old = headers[-1]
    assert hdr_old[1] == 1
    blob = keys_cfg(3, [(2, RCV2), (1, RCV1)])
    assert take(blob, f) and state == {"k": 3, "l": 0} and tel == [(hubcfg.MDC_HUB_CFG_KEYS, 3)]
    new = sealer.seal(11, b"after")
    hdr_new = headers[-1]
    assert hdr_new[1] == 2 and hdr_new[14:46] != hdr_old[14:46]  # a new epoch, to key 2
    assert old[1] != new[1] or hdr_new[2:6] != hdr_old[2:6]
    # authenticated for the holder of receiver key 2 (the receiver's check of an epoch header)
    assert seal.epoch_tag(box.beforenm(HUB_PK, RCV2_SK), HUB_ID, hdr_new[0:46]) == hdr_new[46:62]
    assert read(root + "/receivers") == blob
    k2 = seal.Keys(HUB_ID, root)  # the next boot seals to key 2 too
    assert k2.serial == 3 and k2.receiver == (2, RCV2)
    small = bytes(32)  # the identity: small order
    for n, (bad, code) in enumerate([
            (keys_cfg(2, [(3, RCV1)]), "replay"),
            (blob, None),  # the config in force, heard again: no refusal
            (keys_cfg(4, [(3, RCV1)], auth_sk=THIEF_SK), "forged"),
            (keys_cfg(4, [(3, RCV1)], hub_id=OTHER_ID), "forged"),
            (keys_cfg(4, [(3, small)]), "key"),
            (blob[:-20] + blob[-16:], "format")]):
        ok = take(bad, f)
        assert ok == (code is None), (n, code)
        if code is not None:
            assert state["r"] == code, (n, code, state)
    assert state["bad"] == 5 and state["k"] == 3 and read(root + "/receivers") == blob
    assert sealer.seal(12, b"again")[1] == new[1]  # still the same epoch under key 2
