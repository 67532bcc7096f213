"""Driving a conformance scenario (tests/fw/ble_scenarios.py) over the air: a
hub (the virtual hub through the BLE bridge, or a real board on the bench)
and bumble's emulated devices (on the virtual link, or on the bench's
nRF52840 dongles). tests/test_ble_conformance.py and tests/test_hil_bench.py
share it, so a board is judged exactly as the bridge is."""

import time

import ble_scenarios as bs

from samband.errors import HubError

WAIT_S = 90  # how long a step may take on a loaded 2-core machine (a bound, not an expectation)


def allow_list(s):
    """The scenario's devices as the hub is provisioned with them."""
    return [{"addr": bs.hub_name(d["address"]), "kind": d["kind"], "name": ""} for d in s["devices"].values()]


def status_of(status, spec):
    for d in status.get("ble", {}).get("devices", []):
        if d["addr"] == bs.hub_name(spec["address"]):
            return d
    return {}


def drive(s, transport, bridge, rig, journal=True, wait_s=WAIT_S):
    """Run the scenario's steps on a started rig; returns (outcome, [what a wait never saw]).
    journal: read what was stored back from the hub's sealed journal (the virtual hub;
    a board keeps its journal to itself while it runs: then the outcome has the status only)."""
    specs = s["devices"]
    never = []

    def wait(pred, what):
        try:
            rig.wait_status(pred, wait_s, what)
            return True
        except HubError:  # the outcome says how it differs
            never.append(what)
            return False

    for step in bs.steps(s, transport):
        what, role = step[0], step[1]
        addr = specs[role]["address"]
        if what == "until":
            if not wait(lambda st, w=step[2], sp=specs[role]: bs.reached(w, status_of(st, sp)),
                        "%s %r" % (role, step[2])):
                break
        elif what == "measure":
            sim = bridge.sim(addr)
            for _ in range(step[2]):
                bridge.call(sim.measure(1) if specs[role]["kind"] == "glucose" else sim.measure())
        elif what in ("forget_bond", "drop_link"):
            bridge.fault(addr, what)
        else:
            raise ValueError(f"unknown step {step!r}")
    if not never:
        wait(lambda st: bs.settled(s, transport, lambda r: status_of(st, specs[r])), "the expected status")
    # What the status counts may still be staged for a group commit (hub/store.py): what counts
    # is what the journal holds, read as the receiver would, until it is what the scenario
    # expects or the wait is over (then the difference is the failure).
    end = time.monotonic() + (wait_s if not never else 0)
    while True:
        got = outcome(s, rig, bridge, journal)
        if not bs.check(s, transport, got, stored=journal) or time.monotonic() > end:
            return got, never
        time.sleep(0.25)


def outcome(s, rig, bridge, journal=True):
    readings = []
    if journal:
        rows = rig.readings()
        bad = [r for r in rows if r[3] is not None]
        assert not bad, f"readings that do not open: {bad[:3]}"
        readings = [(r[2][1], r[2]) for r in rows if r[2] is not None]
    last = rig.statuses[-1] if rig.statuses else {}
    specs = s["devices"]
    return bs.outcome(s, readings, {role: status_of(last, spec) for role, spec in specs.items()},
                      {role: bridge.sim(spec["address"]).peer_mtu_exchanges for role, spec in specs.items()})
