# Per-patient alarm limits (hub/limits.py) and the devices' own alarm bits
# (hub/alarms.py, ALARM_FLAGS in hub/kinds/): a config authenticated with the
# depot's authority key changes what is an alarm; a forged, modified, replayed
# or older one is refused, counted, and the limits in force stay.

import os

from fwtest import Rand, raises, rmtree, scratch
from hub import alarms, cbor, kinds, limits, seal
from hub import profiles as P
from hub.crypto import box, hmac, x25519
from hub.reading import PRIO_ALARM, PRIO_ROUTINE

MPY_HEAP = "200k"  # the crypto, the profile codecs and the kinds at once
HUB_ID = b"\x00\x00\x5a\x4d\x00\x07"
R = Rand(77)
HUB_SK = R.bytes(32)
AUTH_SK = R.bytes(32)
THIEF_SK = R.bytes(32)  # a laptop's own "authority": not the depot's
RCV_PK = x25519.scalarmult_base(R.bytes(32))
HUB_PK = x25519.scalarmult_base(HUB_SK)
GLU = [160212]  # MDC_CONC_GLU_ISF, what a CGM sends
_kcfg = {}


def signed(serial, rules, auth_sk=AUTH_SK, hub_id=HUB_ID, label=limits.LIMITS_LABEL):
    """What the depot's authority makes (host/samband/device/limits.py), with the hub's own crypto."""
    if auth_sk not in _kcfg:
        _kcfg[auth_sk] = box.beforenm(HUB_PK, auth_sk)
    body = limits.body(serial, rules)
    return body + hmac.hmac_sha256(_kcfg[auth_sk], label, bytes((len(hub_id),)), hub_id, body)[:16]


def flash():
    """A hub's /keys on a fresh folder, as samband provision leaves it: (root, Keys)."""
    d = scratch("limits")
    os.mkdir(d + "/keys")
    body = bytes((seal.V_CONFIG, 0, 0, 0, 1, 1, 1)) + RCV_PK
    cfg = body + seal.config_tag(box.beforenm(HUB_PK, AUTH_SK), HUB_ID, body)
    for name, data in (("hub.key", HUB_SK), ("authority.pub", x25519.scalarmult_base(AUTH_SK)), ("receivers", cfg)):
        with open(d + "/keys/" + name, "wb") as f:
            f.write(data)
    return d, seal.Keys(HUB_ID, d + "/keys")


class Flashed:
    """flash() for one test, and afterwards the default limits back and the folder gone."""

    def __enter__(self):
        self.d, keys = flash()
        return self.d, keys

    def __exit__(self, *exc):
        alarms.set_limits([])
        rmtree(self.d)


def cgm(mg_dl, status=None):
    f = {"flags": 0, "conc": (mg_dl, 0), "toff": 5}
    if status is not None:
        f["flags"] = ((0x20 if status >> 16 else 0) | (0x40 if status >> 8 & 0xFF else 0)
                      | (0x80 if status & 0xFF else 0))
        f["status"] = status
    (r,) = P.decode(0x2AA7, P.encode(0x2AA7, {"records": [f]}))
    return alarms.classify(r, kinds.get("cgm").LIMITS, kinds.get("cgm").ALARM_FLAGS)


def test_config_format_and_malformed_rules():
    rules = [(GLU, "mg/dL", 70, 250), ([150456], "%", 90.5, None)]
    blob = signed(3, rules)
    assert blob[0] == limits.V_LIMITS and len(blob) == len(limits.body(3, rules)) + 16
    assert limits.parse(blob) == (3, [((160212,), "mg/dL", 70, 250), ((150456,), "%", 90.5, None)])
    for bad in ([(GLU, "mg/dL", 250, 70)], [(GLU, "mg/dL", None, None)], [([], "mg/dL", 1, 2)],
                [([True], "mg/dL", 1, 2)], [(GLU, "", 1, 2)], [(GLU, "mg/dL", "70", 250)],
                [(GLU, "mg/dL", 1)], [(GLU, "mg/dL", 1, 2)] * 25):
        raises(limits.LimitsError, limits.body, 1, bad)
    raises(limits.LimitsError, limits.body, 0, rules)
    raises(limits.LimitsError, limits.parse, b"\x12" + blob[1:])  # a receiver-key config is not limits
    raises(limits.LimitsError, limits.parse, blob[:5] + cbor.dumps({"a": 1}) + blob[-16:])
    raises(limits.LimitsError, limits.parse, blob[:20])


def test_signed_limits_replace_the_defaults_and_survive_a_reboot():
    with Flashed() as (d, keys):
        lim = limits.Limits(keys, d + "/keys")
        lim.load()
        assert lim.serial == 0 and lim.problem is None
        assert cgm(65) == PRIO_ROUTINE and cgm(53) == PRIO_ALARM  # the default: level 2 below 54
        assert lim.offer(signed(1, [(GLU, "mg/dL", 70, 250)])) == 1
        assert cgm(65) == PRIO_ALARM and cgm(260) == PRIO_ALARM and cgm(120) == PRIO_ROUTINE
        alarms.set_limits([])
        again = limits.Limits(seal.Keys(HUB_ID, d + "/keys"), d + "/keys")  # after a reboot
        again.load()
        assert again.serial == 1 and cgm(65) == PRIO_ALARM
        assert again.stats() == {"serial": 1, "rules": 1, "refused": 0}


def test_forged_modified_replayed_and_older_configs_are_refused_and_the_limits_stay():
    with Flashed() as (d, keys):
        lim = limits.Limits(keys, d + "/keys")
        lim.offer(signed(5, [(GLU, "mg/dL", 70, 250)]))
        wide = [(GLU, "mg/dL", 40, 400)]  # what a thief would want: no alarm until 40
        modified = bytearray(signed(6, [(GLU, "mg/dL", 70, 250)]))
        modified[-20] ^= 0x01  # a bit of the rules flipped after signing
        cases = (("stolen laptop", signed(6, wide, auth_sk=THIEF_SK), "not authentic"),
                 ("modified", bytes(modified), None),
                 ("another hub's", signed(6, wide, hub_id=b"\x00\x00\x5a\x4d\x00\x08"), "not authentic"),
                 ("tag of another kind of config", signed(6, wide, label=seal.CONFIG_LABEL), "not authentic"),
                 ("replayed", signed(5, [(GLU, "mg/dL", 70, 250)]), "replayed"),
                 ("older", signed(4, wide), "not newer"))
        for n, (what, blob, words) in enumerate(cases):
            e = raises(limits.LimitsError, lim.offer, blob)
            assert words is None or words in str(e), (what, e)
            assert lim.refused == n + 1 and "limits 5 stay" in lim.problem, what
            assert lim.serial == 5 and cgm(65) == PRIO_ALARM and cgm(300) == PRIO_ALARM, what
        assert limits.Limits(keys, d + "/keys").refused == len(cases)  # the count survives a reboot


def test_a_new_config_left_on_flash_is_taken_at_boot_or_refused():
    with Flashed() as (d, keys):
        k = d + "/keys/"
        with open(k + "limits.new", "wb") as f:
            f.write(signed(2, [(GLU, "mg/dL", 80, 200)]))
        lim = limits.Limits(keys, d + "/keys")
        lim.load()
        assert lim.serial == 2 and "limits.new" not in os.listdir(d + "/keys") and cgm(75) == PRIO_ALARM
        with open(k + "limits.new", "wb") as f:
            f.write(signed(3, [(GLU, "mg/dL", 40, 400)], auth_sk=THIEF_SK))
        alarms.set_limits([])
        lim = limits.Limits(keys, d + "/keys")
        lim.load()
        assert lim.serial == 2 and cgm(75) == PRIO_ALARM and lim.refused == 1
        assert "not authentic" in lim.problem and "limits 2 stay" in lim.problem
        assert "limits.new" not in os.listdir(d + "/keys")
        with open(k + "limits", "r+b") as f:  # the accepted config damaged on flash
            f.seek(8)
            f.write(b"\xff")
        alarms.set_limits([])
        lim = limits.Limits(keys, d + "/keys")
        lim.load()
        assert lim.serial == 0 and "stored" in lim.problem and "default limits stay" in lim.problem
        assert cgm(75) == PRIO_ROUTINE and cgm(50) == PRIO_ALARM


def test_blood_pressure_limits_judge_each_component():
    bp = kinds.get("bp")

    def cuff(sys_, dia, status=None):
        f = {"flags": 0, "sys": (sys_, 0), "dia": (dia, 0), "map": ((sys_ + 2 * dia) // 3, 0)}
        if status is not None:
            f["flags"], f["status"] = 0x10, status
        return [alarms.classify(r, bp.LIMITS, bp.ALARM_FLAGS) for r in P.decode(0x2A35, P.encode(0x2A35, f))]

    try:
        assert cuff(190, 120) == [PRIO_ROUTINE] and cuff(91, 60) == [PRIO_ROUTINE]
        assert cuff(90, 60) == [PRIO_ALARM] and cuff(220, 120) == [PRIO_ALARM]  # the defaults: NEWS2's bands
        alarms.set_limits([([150021], "mm[Hg]", 90, 160), ([150022], "mm[Hg]", None, 100)])
        assert cuff(150, 90) == [PRIO_ROUTINE]
        assert cuff(170, 90) == [PRIO_ALARM] and cuff(85, 60) == [PRIO_ALARM] and cuff(150, 105) == [PRIO_ALARM]
    finally:
        alarms.set_limits([])
    # the cuff's own alerts, on a normal pressure: irregular pulse, pulse rate out of its range
    assert cuff(120, 80, 0x0004) == [PRIO_ALARM]
    assert cuff(120, 80, 0x0008) == [PRIO_ALARM] and cuff(120, 80, 0x0010) == [PRIO_ALARM]
    # body movement, a loose cuff, improper position: quality, not the patient
    assert cuff(120, 80, 0x0001 | 0x0002 | 0x0020) == [PRIO_ROUTINE]


def test_temperature_defaults_and_interim_values():
    t = kinds.get("thermo")

    def temp(v, uuid=0x2A1C, fahrenheit=False):
        f = {"flags": 1 if fahrenheit else 0, "temp": (v, -1)}
        return [alarms.classify(r, t.LIMITS, t.ALARM_FLAGS) for r in P.decode(uuid, P.encode(uuid, f))]

    assert temp(369) == [PRIO_ROUTINE] and temp(351) == [PRIO_ROUTINE] and temp(390) == [PRIO_ROUTINE]
    assert temp(350) == [PRIO_ALARM] and temp(391) == [PRIO_ALARM]
    assert temp(950, fahrenheit=True) == [PRIO_ALARM] and temp(986, fahrenheit=True) == [PRIO_ROUTINE]
    assert temp(240, uuid=0x2A1E) == [PRIO_ROUTINE]  # warming up: an intermediate value is not a result


def test_the_devices_own_alerts_raise_alarms():
    # CGM: warning octet (hypo, hyper, rates, out of range) and a faulting sensor
    for bit in (16, 17, 18, 19, 20, 21, 22, 23, 3, 5):
        assert cgm(120, 1 << bit) == PRIO_ALARM, bit
    for bit in (0, 1, 2, 4, 8, 9, 10, 11, 12, 13):  # session stopped, battery, calibration, temperature
        assert cgm(120, 1 << bit) == PRIO_ROUTINE, bit
    # glucose meter: HI / LO instead of a number
    g = kinds.get("glucose")

    def meter(status):
        f = {"flags": 0x0A, "seq": 1, "time": (2026, 12, 2, 8, 0, 0), "conc": (110, -5), "type": 1, "loc": 1,
             "status": status}
        return [alarms.classify(r, g.LIMITS, g.ALARM_FLAGS) for r in P.decode(0x2A18, P.encode(0x2A18, f))]

    assert meter(0x0020) == [PRIO_ALARM] and meter(0x0040) == [PRIO_ALARM]
    assert meter(0x0001) == [PRIO_ROUTINE] and meter(0x0004) == [PRIO_ROUTINE]  # battery, sample too small
    # oximeter: the sensor off the patient or failing; poor signal and quality bits are not alarms
    x = kinds.get("plx")

    def spot(dss, mstatus=0):
        f = {"flags": 0x06, "spo2": (97, 0), "pr": (70, 0), "mstatus": mstatus, "dss": dss}
        return [alarms.classify(r, x.LIMITS, x.ALARM_FLAGS) for r in P.decode(0x2A5E, P.encode(0x2A5E, f))]

    for bit in (1, 11, 13, 14, 15):
        assert spot(1 << bit) == [PRIO_ALARM, PRIO_ALARM], bit
    for bit in (0, 2, 3, 4, 5, 6, 7, 8, 10, 12):
        assert spot(1 << bit) == [PRIO_ROUTINE, PRIO_ROUTINE], bit
    assert spot(0, 1 << 15 | 1 << 14 | 1 << 13) == [PRIO_ROUTINE, PRIO_ROUTINE]  # invalid/questionable/unavailable
