"""Alerts figures (docs/alerts.md):

* alarm row to first delivery, p50/p99: an alarm reading committed to SQLite
  by the receiver's Store, until the emergency centre's MQTT subscriber has
  the alert from a separate `samband alerts` process (real Mosquitto, QoS 1);
  at the default poll (0.5 s) and at 0.1 s. Alarms are spaced at an odd
  interval so that they land at every phase of the poll.
* one poll's cost (CPU time) with a large database: 200,000 readings of
  50 hubs stored an hour ago, nothing new arriving, and 50 new readings a poll.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import TESTS, figure
from host_kit import plain_mosquitto

from hub import reading as rd
from samband.receiver import alerts_rules
from samband.receiver.alerts import Engine
from samband.receiver.store import open_store

HUB = "00005a4d00b1"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def latency(poll_s, n=60):
    import paho.mqtt.client as mqtt
    with tempfile.TemporaryDirectory() as d:
        centre, port = plain_mosquitto(d)
        got = {}
        ready = threading.Event()
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("centre/alerts", qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda cl, u, m: got.setdefault(json.loads(m.payload)["device"], time.time())
        c.connect("127.0.0.1", port)
        c.loop_start()
        ready.wait(10)
        rules = Path(d) / "rules.toml"
        rules.write_text(f"""[thresholds]
poll_s = {poll_s}
[mqtt]
host = "127.0.0.1"
port = {port}
[groups.centre]
ack_timeout_s = 3600
channels = [{{type = "mqtt", topic = "centre/alerts"}}]
[[routes]]
kinds = ["clinical"]
groups = ["centre"]
""")
        db = Path(d) / "r.db"
        store = open_store(db)
        proc = subprocess.Popen([sys.executable, "-m", "samband.cli", "alerts", "--db", str(db), "--rules",
                                 str(rules)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        proc.stdout.readline()  # started
        committed = {}
        try:
            for i in range(n):
                dev = bytes([0]) + (0xA0000000 + i).to_bytes(6, "big")
                addr = rd.to_named({rd.DEV: dev})["dev"]
                r = rd.make(i + 1, dev, 160212, 40, [1, i], unit="mg/dL", prio=1, hts=int(time.time() * 1000))
                store.store(HUB, [(i + 1, 1, r)])
                committed[addr] = time.time()
                time.sleep(0.137)
            end = time.monotonic() + 10
            while len(got) < n and time.monotonic() < end:
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
            c.loop_stop()
            centre.terminate()
            centre.wait()
            store.close()
        lat = [(got[a] - t) * 1000 for a, t in committed.items() if a in got]
    figure(f"alarm row -> MQTT delivery, poll {poll_s} s, p50", round(pct(lat, 50), 1), "ms")
    figure(f"alarm row -> MQTT delivery, poll {poll_s} s, p99", round(pct(lat, 99), 1), "ms")
    figure(f"alarms delivered (poll {poll_s} s)", f"{len(lat)} of {n}", "")


class _Nobody:
    def deliver(self, *a):
        pass

    def results(self):
        return []


class _AnHourAgo:
    """The store's clock while the history is loaded: those readings arrived an hour ago."""

    @staticmethod
    def time():
        return time.time() - 3600


def poll_cost(rows=200_000, hubs=50):
    from samband.receiver import store as store_mod
    with tempfile.TemporaryDirectory() as d:
        store = open_store(Path(d) / "big.db")
        store_mod.time = _AnHourAgo
        per = rows // hubs
        for h in range(hubs):
            hub = "00005a4d%04x" % h
            dev = bytes([0]) + (0xB0000000 + h).to_bytes(6, "big")
            batch = [(q, 1, rd.make(q, dev, 160212, 100, [1, q], unit="mg/dL", hts=1700000000000 + q))
                     for q in range(1, per + 1)]
            for i in range(0, per, 2000):
                store.store(hub, batch[i:i + 2000])
        store_mod.time = time
        rules = alerts_rules.parse('[groups.a]\nack_timeout_s = 60\nchannels = [{type = "webhook", '
                                   'url = "http://127.0.0.1:9/"}]\n[[routes]]\ngroups = ["a"]\n'
                                   '[thresholds]\nhistory_s = 60\n')
        eng = Engine(store, rules, _Nobody())
        eng.tick()  # the first poll reads the history window
        t = time.process_time()
        for _ in range(100):
            eng.tick()
        idle = (time.process_time() - t) / 100
        q = per
        busy = ins = 0.0
        dev = bytes([0]) + (0xB0000000).to_bytes(6, "big")
        for _ in range(20):
            t = time.process_time()
            store.store("00005a4d0000", [(q + i, 1, rd.make(q + i, dev, 160212, 100, [1, q + i], unit="mg/dL",
                                                           hts=1700000000000 + q + i)) for i in range(1, 51)])
            ins += time.process_time() - t
            q += 50
            t = time.process_time()
            eng.tick()
            busy += time.process_time() - t
        busy /= 20
        store.close()
        size = os.path.getsize(Path(d) / "big.db")
    figure(f"poll CPU time, {rows} readings of {hubs} hubs stored, none new", round(idle * 1000, 2), "ms")
    figure("poll CPU time, same, 50 new readings per poll", round(busy * 1000, 2), "ms")
    figure("(the receiver storing those 50 readings, for scale)", round(ins / 20 * 1000, 2), "ms")
    figure("database size", round(size / 1e6, 1), "MB")


def main():
    import logging
    logging.getLogger("samband.receiver.alerts").setLevel(logging.ERROR)  # the hubs "offline" an hour
    poll_cost()
    latency(0.5)
    latency(0.1)


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS))
    main()
