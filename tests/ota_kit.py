"""What the two over-the-uplink update tests (tree: test_ota_e2e, whole firmware:
test_ota_fw_e2e) check the same way: that an update's download waits behind
alarms, and the receiver's login to the rig's broker that a rollout uses."""

import threading

from samband.rig.broker import RECEIVER_USER


class AlarmGate:
    """on_reading counts the alarms that reach the database; gate (a Rollout's) holds the
    download until two more arrived after it began, so a test sees chunks wait behind alarms."""

    def __init__(self):
        self.alarms = []
        self.began = []
        self.lock = threading.Lock()

    def on_reading(self, hub, seq, r):
        if r.is_alarm:
            with self.lock:
                self.alarms.append(seq)

    def gate(self, hub, i):
        with self.lock:
            if not self.began:
                self.began.append(len(self.alarms))
            return len(self.alarms) >= self.began[0] + 2

    def check(self, h):
        """The gate opened once, after two alarms, and the hub asked for no chunk while one waited."""
        asks = [line.split() for line in h._read("/uplink.ota").decode().splitlines() if line.startswith("W ")]
        assert asks and all(a[1] == "0" for a in asks), "a chunk was asked for with an alarm pending"
        assert len(self.began) == 1 and len(self.alarms) >= self.began[0] + 2, (self.began, self.alarms)


def login(rig):
    """The receiver's login to the rig's broker, as Rollout and Fleet take it."""
    return dict(host="localhost", port=rig.broker.port, ca=rig.broker.ca_pem, user=RECEIVER_USER,
                password=rig.broker.users[RECEIVER_USER])


def after_rollback(rig, h, total, timeout, watch, seen, want):
    """The end both runs share: four boots, each reset the hub's own (the first, the good
    trial, the bad trial, back on the good one); every reading delivered exactly once; the
    watcher saw `want` in order; the receiver recorded the failure. Returns that record."""
    from test_uplink import check_exactly_once, drained

    from samband.receiver import versions
    assert h.vhub.boots == 4 and h.vhub.resets == ["power-on", "hard", "hard", "hard"], h.vhub.resets
    rig.wait(lambda: drained(rig, h, total), timeout, "every reading delivered")
    watch.close()
    it = iter(seen)
    assert all(w in it for w in want), seen  # in this order
    check_exactly_once(rig, h)
    rig.wait(lambda: versions.fleet(rig.store)[0]["ota_state"] == "failed", timeout, "the receiver's record")
    return versions.fleet(rig.store)[0]


def rolled_back(rig, bad, hub, login, timeout, what):
    """Roll out a release the hub cannot run and wait until it says the trial failed; returns
    the hub's last progress (the version it went back to)."""
    from samband.device.ota import Rollout
    r = Rollout(bad, [hub], chunk=4096, **login).start()
    try:
        rig.wait(lambda: r.progress.get(hub, {}).get("st") == "failed", timeout, what)
        assert not r.runs_it(hub)
        return dict(r.progress[hub])
    finally:
        r.close()
