"""Signed configs over the hub's own uplink, end to end: a virtual hub (the compiled
firmware, tests/data/uplink_main.py wiring hub.uplink and, with tests/data/uplink_cfg.py,
hub.hubcfg as hub/app.py does, readings judged by hub.alarms), Mosquitto with TLS and ACLs, the receiver, and
`samband config push`'s Push as the receiver's login.

One run, in phases the hub holds its readings for: 100 readings under the default
limits (an alarm below 54 mg/dL); per-patient limits pushed (an alarm above 200 only),
taken without a reboot, 100 more readings judged by them; a forged config, one made
for another hub and a replayed older one, each refused and counted while the limits
stay; the receiver key rotated (7 -> 8), 100 more readings sealed to the new key.
Every reading is in the database exactly once with the priority the hub gave it, and
that priority is what the limits in force said; the receiver's record names the
configs the hub runs and its refusals. Before any of this, the hub (never
offered an update) is listed by `samband hubs` with its version."""

from pathlib import Path

import nacl.bindings as nb
from conftest import firmware_tree
from test_uplink import check_exactly_once, drained, rows

from hub import hubcfg as fwcfg
from hub import limits as fwlimits
from samband.cli import main as cli_main
from samband.device import hubcfg
from samband.device.authority import Authority
from samband.device.limits import tag
from samband.receiver import versions
from samband.rig.broker import RECEIVER_USER
from samband.rig.uplink import RECEIVER_KID, UplinkRig
from samband.vhub import Flash

MAIN = Path(__file__).parent / "data" / "uplink_main.py"
HUB = "00005a4d00f1"
OTHER = "00005a4d00f2"
GLUCOSE = 0x0002711C  # the code tests/data/uplink_main.py sends
TOTAL = 300
TIMEOUT = 90


def limits_blob(authority_secret, hub_public, hub_hex, serial, high):
    body = fwlimits.body(serial, [((GLUCOSE,), "mg/dL", None, high)])
    return body + tag(authority_secret, hub_public, bytes.fromhex(hub_hex), body)


def test_limits_and_receiver_key_over_the_uplink(tmp_path, capsys):
    rig = UplinkRig(tmp_path / "rig", heap="300k", firmware=firmware_tree())
    try:
        h = rig.add_hub(HUB, MAIN, {"total": TOTAL, "interval_ms": 20, "cfg": True, "judge": True,
                                    "hold_cfg": [[100, "l"], [200, "k"]]})
        Flash(h.flash).write_files({"/uplink_cfg.py": (MAIN.parent / "uplink_cfg.py").read_bytes()})
        rig.start()
        login = dict(host="localhost", port=rig.broker.port, ca=rig.broker.ca_pem, user=RECEIVER_USER,
                     password=rig.broker.users[RECEIVER_USER])

        # a hub never offered an update is known by version (its status says it at connect)
        rig.wait(lambda: [r["version"] for r in versions.fleet(rig.store)] == ["0.1.0"], TIMEOUT,
                 "the hub's version in the receiver's record")
        assert cli_main(["hubs", "--db", rig.db]) == 0
        line = [x for x in capsys.readouterr().out.splitlines() if x.startswith(HUB)]
        assert line and line[0].split()[1] == "0.1.0", line
        rig.wait(lambda: h.state().get("made") == 100, TIMEOUT, "100 readings under the default limits")

        p = hubcfg.Push(HUB, limits_blob(rig.authority.secret, h.public, HUB, 100, 200), 100, **login).start()
        try:
            assert p.wait(TIMEOUT), p.cfg
        finally:
            p.close()
        rig.wait(lambda: h.state().get("made") == 200, TIMEOUT, "100 readings under the patient's limits")

        bad = [limits_blob(Authority().secret, h.public, HUB, 300, 240),    # another authority key: forged
               limits_blob(rig.authority.secret, h.public, OTHER, 300, 240),  # made for another hub
               limits_blob(rig.authority.secret, h.public, HUB, 50, 240)]    # older than the one in force
        for n, blob in enumerate(bad, 1):
            serial = fwlimits.parse(blob)[0]
            p = hubcfg.Push(HUB, blob, serial, **login).start()
            try:
                rig.wait(lambda p=p, n=n: (p.cfg or {}).get("bad") == n, TIMEOUT, f"refusal {n} reported")
                assert p.refused() == ("replay" if n == 3 else "forged") and p.cfg["l"] == 100, p.cfg
                assert not p.wait(0) and not p.in_force()
            finally:
                p.close()

        # rotation: the receiver holds key 8 first, then the hub is told to seal to it
        pk8, sk8 = nb.crypto_box_keypair()
        rig.receivers[0].ingest.opener.add_receiver_key(8, sk8)
        blob = rig.authority.config(bytes.fromhex(HUB), h.public, 2, [(8, pk8), (RECEIVER_KID, rig.rpk)])
        p = hubcfg.Push(HUB, blob, 2, **login).start()
        try:
            assert p.wait(TIMEOUT), p.cfg
        finally:
            p.close()
        rig.wait(lambda: drained(rig, h, TOTAL), TIMEOUT, "every reading delivered")
        check_exactly_once(rig, h)  # none lost or doubled; the database's priority is the hub's

        # which config each reading was made under: the hub's log, in order
        log = h._read("/uplink.log").decode().split("\n")
        phase, limit_at, keys_at = 0, {}, {}
        for ln in log:
            parts = ln.split()
            if parts[:1] == ["C"]:
                phase = (int(parts[1]), int(parts[2]))
            elif parts[:1] == ["A"] and len(parts) == 4:
                limit_at[int(parts[1])] = (phase[1] if phase else 0, int(parts[2]), int(parts[3]))
                keys_at[int(parts[1])] = phase[0] if phase else 1
        assert len(limit_at) == TOTAL
        seen = set()
        for seq, (serial, prio, n) in limit_at.items():
            v = 50 + n % 200
            want = (v > 200) if serial == 100 else (v < 54)
            assert prio == int(want), (seq, serial, v, prio)
            seen.add((serial, prio))
        assert seen == {(0, 0), (0, 1), (100, 0), (100, 1)}, seen  # both decisions under both configs
        assert min(n for s, _, n in limit_at.values() if s == 100) == 100  # held until the limits came

        # readings sealed after the rotation are in epochs to key 8, those before to key 7
        epochs = sorted((e.base, e.kid) for e in rig.receivers[0].ingest.opener.hubs[bytes.fromhex(HUB)]
                        .epochs.values())
        for seq, ks in keys_at.items():
            kid = [k for base, k in epochs if base <= seq][-1]
            assert kid == (8 if ks == 2 else RECEIVER_KID), (seq, ks, epochs)
        assert {ks for ks in keys_at.values()} == {1, 2}

        # each step reached the hub's telemetry: limits 100, three refusals, keys 2
        tel = [tuple(int(x) for x in ln.split()[1:]) for ln in h._read("/uplink.bearers").decode().splitlines()
               if ln.startswith("T ")]
        cfg_tel = [t for t in tel if t[0] in (fwcfg.MDC_HUB_CFG_LIMITS, fwcfg.MDC_HUB_CFG_KEYS,
                                               fwcfg.MDC_HUB_CFG_REFUSED)]
        rf = fwcfg.MDC_HUB_CFG_REFUSED
        assert cfg_tel == [(fwcfg.MDC_HUB_CFG_LIMITS, 100), (rf, 1), (rf, 1), (rf, 2), (fwcfg.MDC_HUB_CFG_KEYS, 2)]
        assert len(rows(rig, HUB)) == TOTAL
        # the receiver's record of which configs the hub runs (migration 7), from its statuses
        rig.wait(lambda: versions.fleet(rig.store)[0]["cfg_keys"] == 2, TIMEOUT, "the receiver's record")
        row = versions.fleet(rig.store)[0]
        assert (row["cfg_limits"], row["cfg_refused"], row["cfg_reason"]) == (100, 3, "replay"), row
    finally:
        rig.stop()
