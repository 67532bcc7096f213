"""Scripted bearer flaps for tests/test_bearers.py and `make bench`
(tests/bench/bench_bearers.py): a virtual hub with bearers a and b, each
through its own Relay, cut in turn.

A cut is what a link going down does to the sockets over it: the relay
resets every connection of that bearer, so the hub's MQTT reader sees the
reset and wakes the bearer manager at once (mqtt.Client.on_lost), not after
1.5 keepalives of silence; a black hole, which only keepalives reveal, has
tests of its own. The keepalive is 10 s: shorter, a machine busy enough to
hold the relay or the broker for 1.5 keepalives makes a flap of its own. The relay stays down
until the hub has seen the bearer go (state degraded, session not live),
then comes up and the hub reconnects after its back-off.

The two bearers flap overlapped: while one reconnects (its back-off and a
TLS handshake) the other is cut, so a flap costs about half a bearer's
down-and-up cycle. A bearer is cut again only once the hub has it up on a
new session, so every cut is one up -> degraded -> up flap of the hub's
state, which the telemetry counts check afterwards.

Appends are paced against the flaps: flap i waits until the hub has made
i * per_flap readings, so the readings (alarms among them) are made all
through the flapping, not before it."""

from __future__ import annotations

import time

# the hub's uplink config for flapping: no hysteresis (one failure degrades, one success recovers)
UPLINK = {"keepalive": 10, "batch_age_ms": 100, "degrade_after": 1, "recover_after": 1}


def bearer(h, name):
    crash = h._read("/uplink.crash")
    assert crash is None, crash.decode(errors="replace")
    for b in h.state().get("bearers", []):
        if b["name"] == name:
            return b
    return {}


def is_back(h, name, sessions):
    """The hub has bearer `name` up on its `sessions`-th session (or a later one)."""
    b = bearer(h, name)
    return b.get("sessions", 0) >= sessions and b.get("live") and b.get("state") == "up"


def flap(rig, h, relays, n, per_flap, timeout=30):
    """Cut the bearers in turn n times (relays: {"a": Relay, "b": Relay});
    returns (seconds per flap, each from one cut to the next, and the
    hub's `made` at each cut)."""
    names = sorted(relays)
    back = {nm: bearer(h, nm)["sessions"] for nm in names}  # the session a bearer must be up on to be cut
    cut_at, made_at = [], []
    for i in range(n):
        nm = names[i % len(names)]
        relay = relays[nm]
        rig.wait(lambda i=i: h.state().get("made", 0) >= i * per_flap, timeout, f"reading {i * per_flap} made")

        rig.wait(lambda nm=nm: is_back(h, nm, back[nm]), timeout, f"{nm} back on a new session before flap {i}")
        sessions = bearer(h, nm)["sessions"]
        made_at.append(h.state().get("made", 0))
        cut_at.append(time.monotonic())
        relay.cut()  # its connections reset, new ones refused
        rig.wait(lambda nm=nm: not bearer(h, nm).get("live") and bearer(h, nm).get("state") == "degraded",
                 timeout, f"the hub to see {nm} go (flap {i})")
        relay.up()
        back[nm] = sessions + 1
    for nm in names:  # the last ones come back too
        rig.wait(lambda nm=nm: is_back(h, nm, back[nm]), timeout, f"{nm} back after the last flap")
    end = time.monotonic()
    per = [b - a for a, b in zip(cut_at, cut_at[1:] + [end])]
    return per, made_at
