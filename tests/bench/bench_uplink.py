"""Uplink figures (docs/uplink.md):

* end-to-end latency from the hub's journal append to the receiver's database
  commit, p50/p99, routine and alarm records: a virtual hub (unix port, TLS)
  -> Mosquitto -> receiver -> SQLite, uplink with its default batching;
* receiver ingest, readings per second on one core (open, decode, store,
  commit; batches of 50 glucose readings, SQLite WAL on disk);
* how long the hub takes to notice a silent (black-holed) link;
* bytes on the wire per reading, glucose and one second of ECG, against a
  Nightscout-style JSON-over-HTTPS upload of the same data.
"""

import json
import os
import struct
import tempfile
import time
from pathlib import Path

from benchlib import TESTS, figure, firmware_tree
from nacl import bindings as nb

from hub import mqtt, reading, seal
from hub.uplink import encode_ack
from samband.receiver.ingest import Ingest
from samband.receiver.opener import Opener, batch, record_nonce
from samband.receiver.store import open_store

HUB = bytes.fromhex("00005a4d00c7")
KID = 7
DEV = b"\x00\x11\x22\x33\x44\x55\x66"
TLS_RECORD = 5 + 8 + 16  # TLS 1.2 AES-GCM record: header, explicit nonce, tag
TCPIP = 40  # IPv4 + TCP headers per segment (no options)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


# ------------------------------------------------------------ a host-side sealer (same format)

class HostSealer:
    def __init__(self, hub_secret, receiver_pk, number=1, base=0):
        e_sk = os.urandom(32)
        e_pk = nb.crypto_scalarmult_base(e_sk)
        self.key = nb.crypto_box_beforenm(receiver_pk, e_sk)
        kauth = nb.crypto_box_beforenm(receiver_pk, hub_secret)
        h46 = struct.pack(">BBIQ", seal.V_EPOCH, KID, number, base) + e_pk
        self.header = h46 + seal.epoch_tag(kauth, HUB, h46)
        self.number, self.base = number, base

    def seal(self, seq, plain):
        box = nb.crypto_box_easy_afternm(plain, record_nonce(KID, self.number, seq), self.key)
        return struct.pack(">BBH", seal.V_RECORD, self.number & 0xFF, seq - self.base) + box


def glucose(seq):
    return reading.make(seq, DEV, 0x0002711C, 104, [3, 123456], unit="mg/dL", dts=1700000000,
                        hts=1700000000123, rec=seq, flags=3)


def ecg(seq, n=73):
    return reading.make(seq, DEV, 0x0002014C, [(i * 37) % 900 - 450 for i in range(n)], [3, 123456],
                        unit="uV", hts=1700000000123, period=7692)


def ingest_rate():
    hub_sk = os.urandom(32)
    hub_pk = nb.crypto_scalarmult_base(hub_sk)
    rpk, rsk = nb.crypto_box_keypair()
    s = HostSealer(hub_sk, rpk)
    batches = []
    seq = 0
    for _ in range(400):
        items = [s.header]
        for _i in range(50):
            items.append(s.seal(seq, reading.encode(glucose(seq))))
            seq += 1
        batches.append(batch(items))
    with tempfile.TemporaryDirectory() as d:
        store = open_store(Path(d) / "bench.db")
        ing = Ingest(Opener({KID: rsk}, {HUB: hub_pk}), store)
        t0 = time.process_time()
        w0 = time.perf_counter()
        n = 0
        for b in batches:
            n += len(ing.batch(HUB.hex(), b))
        cpu = time.process_time() - t0
        wall = time.perf_counter() - w0
        assert n == seq and store.count() == seq
        store.close()
    figure("receiver ingest (CPU time, one core)", round(n / cpu), "readings/s")
    figure("receiver ingest (wall clock, fsync per batch)", round(n / wall), "readings/s")


def wire():
    # one glucose reading, sent on its own (the usual case: a meter reading now and then)
    g = reading.encode(glucose(17))
    up = batch([bytes(62), bytes(20 + len(g))])  # epoch header + record
    topic = "samband/" + HUB.hex() + "/up"
    ack_topic = "samband/" + HUB.hex() + "/ack"

    def mqtt_bytes(payload):
        pub = len(mqtt.publish(topic, payload, 1, 1))
        ack = len(mqtt.publish(ack_topic, encode_ack(range(17, 18)), 1, 1))
        # hub->broker PUBLISH + PUBACK back; broker->hub ack PUBLISH + hub's PUBACK; each its own TLS record
        app = pub + 4 + ack + 4
        return app + 4 * TLS_RECORD, app + 4 * (TLS_RECORD + TCPIP)

    ns = {"type": "sgv", "sgv": 104, "date": 1700000000000, "dateString": "2023-11-14T22:13:20.000Z",
          "device": "samband-00005a4d00c7 11:22:33:44:55:66", "direction": "NONE", "noise": 1,
          "utcOffset": 0, "sysTime": "2023-11-14T22:13:20.123Z"}

    def https_bytes(body):
        req = ("POST /api/v1/entries HTTP/1.1\r\nHost: ns.example.org\r\nUser-Agent: samband-hub/1.0\r\n"
               "Content-Type: application/json\r\nAccept: application/json\r\n"
               "api-secret: 0123456789abcdef0123456789abcdef01234567\r\n"
               "Content-Length: %d\r\n\r\n" % len(body)).encode() + body
        resp_body = body  # Nightscout answers with the stored entries (with _id)
        resp = ("HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                "Content-Length: %d\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: keep-alive\r\n"
                "Vary: Accept-Encoding\r\n\r\n" % (len(resp_body) + 36)).encode()
        app = len(req) + len(resp) + len(resp_body) + 36
        return app + 2 * TLS_RECORD, app + 2 * (TLS_RECORD + TCPIP)

    m, m_ip = mqtt_bytes(up)
    h, h_ip = https_bytes(json.dumps([ns]).encode())
    figure("glucose reading, sealed record", 20 + len(g), "B")
    figure("glucose reading, MQTT+TLS both ways", m, "B")
    figure("glucose reading, Nightscout-style JSON over HTTPS both ways", h, "B")
    figure("glucose reading, ratio MQTT/HTTPS", round(m / h, 3), "")
    figure("glucose reading, ratio with TCP/IP headers", round(m_ip / h_ip, 3), "")

    # one second of Polar H10 ECG: 130 samples in two notifications' readings
    recs = [ecg(100, 73), ecg(101, 57)]
    up = batch([bytes(62)] + [bytes(20 + len(reading.encode(r))) for r in recs])
    m, m_ip = mqtt_bytes(up)
    samples = []
    for r in recs:
        samples += r[3]
    doc = [{"type": "ecg", "device": "samband-00005a4d00c7 11:22:33:44:55:66", "date": 1700000000000 + i * 1000 // 130,
            "uV": v} for i, v in enumerate(samples)]
    doc_compact = [{"type": "ecg", "device": "samband-00005a4d00c7 11:22:33:44:55:66", "date": 1700000000000,
                    "periodUs": 7692, "unit": "uV", "samples": samples}]
    h, h_ip = https_bytes(json.dumps(doc_compact).encode())
    h2, _ = https_bytes(json.dumps(doc).encode())
    figure("ECG 1 s (130 samples), MQTT+TLS both ways", m, "B")
    figure("ECG 1 s, JSON over HTTPS (one document with a sample array)", h, "B")
    figure("ECG 1 s, JSON over HTTPS (one entry per sample, entries-style)", h2, "B")
    figure("ECG 1 s, ratio MQTT/HTTPS (sample array)", round(m / h, 3), "")
    figure("ECG 1 s, ratio MQTT/HTTPS (entry per sample)", round(m / h2, 3), "")


def latency():
    from samband.rig.uplink import UplinkRig
    lat = {0: [], 1: []}

    def on_reading(hub, seq, r):
        lat[r.prio].append(time.time() * 1000 - r.hts)

    total = 600
    with tempfile.TemporaryDirectory() as d:
        rig = UplinkRig(d, firmware=firmware_tree(), on_reading=on_reading)
        try:
            rig.add_hub(HUB.hex(), TESTS / "data" / "uplink_main.py",
                            {"total": total, "alarm_every": 4, "interval_ms": 20},
                            uplink={"batch_age_ms": 2000, "batch_bytes": 4096})
            rig.start()
            rig.wait(lambda: len(lat[0]) + len(lat[1]) >= total, 180, "every reading")
        finally:
            rig.stop()
    for prio, name in ((1, "alarm"), (0, "routine (batched: 2 s or 4 KB)")):
        xs = lat[prio]
        figure(f"append->commit {name} p50", round(pct(xs, 50), 1), "ms")
        figure(f"append->commit {name} p99", round(pct(xs, 99), 1), "ms")
    figure("readings measured (alarm, routine)", f"{len(lat[1])}, {len(lat[0])}", "")


def silent_link(keepalive=2, rounds=5):
    """How long the hub takes to notice a link that went silent without closing (a black hole):
    by design within 1.5 keepalive periods of the last thing it heard, plus its polling."""
    from host_kit import through_relay

    from samband.rig.uplink import UplinkRig
    took = []
    with tempfile.TemporaryDirectory() as d:
        rig = UplinkRig(d, firmware=firmware_tree())
        relay = None
        try:
            h = rig.add_hub(HUB.hex(), TESTS / "data" / "uplink_main.py",
                            {"total": 10 ** 6, "alarm_every": 30, "interval_ms": 50},
                            uplink={"batch_age_ms": 300, "keepalive": keepalive})
            relay = through_relay(rig, h)
            for _ in range(rounds):
                rig.wait(lambda: h.state().get("connected"), 60, "the link up")
                lost = h.state()["link_lost"]
                relay.blackhole = True
                t0 = time.monotonic()
                rig.wait(lambda: h.state()["link_lost"] > lost, 60, "the hub to notice the silent link")
                took.append(time.monotonic() - t0)
                relay.blackhole = False
        finally:
            if relay is not None:
                relay.close()
            rig.stop()
    figure(f"silent link noticed after (keepalive {keepalive} s), median of {rounds}", round(pct(took, 50), 2), "s")
    figure("silent link noticed after, worst", round(max(took), 2), "s")


def main():
    wire()
    ingest_rate()
    latency()
    silent_link()


if __name__ == "__main__":
    main()
