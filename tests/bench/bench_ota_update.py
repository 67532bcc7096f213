"""An update over the air (hub/ota.py, docs/ota.md): the hub's heap for it on the
unix port and the bytes it costs on the uplink.

Heap: "import" is what importing hub.ota adds (hub.release, Ed25519 and SHA-512
load only once an update is offered); "peak" is the smallest -X heapsize in which
a whole update (offer, every chunk staged, apply: signature, streamed hash,
unpacking into the slot) still runs, minus that of the same script doing nothing
(bisection to 256 bytes). Bytes: the hub's own Ota (CPython, the same module)
asks for chunks in its status messages and the chunks are served as `samband ota`
serves them; counted are the MQTT packets both ways (PUBLISH headers, topic,
CBOR) and, as in docs/uplink.md, TLS 1.2 AES-GCM record overhead (29 bytes a
record); the receiver's ack traffic is not part of it, TCP/IP headers neither."""

import shutil
import sys
import tempfile
from pathlib import Path

import cbor2
import nacl.bindings as nb
from benchlib import BENCH, figure, firmware_tree, run_mpy, smallest_heap

SEED = bytes(range(32))
TLS_RECORD = 29
HUB = "00005a4d0001"


def mqtt_publish(topic, payload, qos):
    n = 2 + len(topic) + (2 if qos else 0) + len(payload)
    head = 2 if n < 128 else 3 if n < 16384 else 4
    return head + n + (4 + TLS_RECORD if qos else 0)  # PUBACK back, its own record


def wire_bytes(rel_bytes, chunk, window):
    """(bytes down, bytes up, status messages) of one update, with the hub's own Ota."""
    sys.path.insert(0, str(BENCH.parent))
    from hub import cbor, ota
    from hub import release as fmt
    tmp = tempfile.mkdtemp()
    try:
        o = ota.Ota("vhub", "0.1.0", nb.crypto_sign_seed_keypair(SEED)[0], {"window": window}, fw=tmp)
        o.start()
        start = fmt.split_header(rel_bytes)[2]
        img = rel_bytes[start:]
        topic = f"samband/{HUB}/ota"
        offer = cbor2.dumps({"o": rel_bytes[:start], "cs": chunk})
        down = mqtt_publish(topic, offer, 1) + TLS_RECORD
        o.on_message(offer)
        up = statuses = 0
        now = 0
        while o.state == "fetch":
            o.wants(now, lambda a, b: a - b)
            st = cbor.dumps({"pending": 0, "alarms": 0, "ota": o.status(True)})
            up += mqtt_publish(f"samband/{HUB}/status", st, 0) + TLS_RECORD
            statuses += 1
            for i in cbor2.loads(st)["ota"].get("w", []):
                msg = cbor2.dumps({"c": i, "d": img[i * chunk:(i + 1) * chunk]})
                down += mqtt_publish(topic, msg, 0) + TLS_RECORD
                o.on_message(msg)
        return down, up, statuses
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    tree = firmware_tree()
    sys.path.insert(0, str(BENCH.parent))
    from samband.device import release
    image = release.tree_image(tree)
    rel = release.assemble(release.manifest("vhub", "tree", "0.2.0", "0.1.0", image, 0), image, SEED)
    d = Path(tempfile.mkdtemp())
    try:
        (d / "release.sbr").write_bytes(rel)
        (d / "release.pub").write_bytes(nb.crypto_sign_seed_keypair(SEED)[0])
        (d / "chunk").write_text("2048")
        out = dict(line.split() for line in run_mpy(["ota_update_mpy.py", str(d)], heap="256k").splitlines())
        peak = (smallest_heap(["ota_update_mpy.py", str(d), "peak", "update"], 16 * 1024, 1024 * 1024)
                - smallest_heap(["ota_update_mpy.py", str(d), "peak", "none"], 16 * 1024, 1024 * 1024))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    figure("ota tree release of the vhub build", len(rel), "bytes")
    figure("ota import hub.ota heap unix port", int(out["import_ota_bytes"]), "bytes")
    figure("ota whole update heap peak unix port (2 KB chunks)", peak, "bytes")
    figure("ota apply (verify + unpack into a slot folder) unix port", int(out["apply_ms"]), "ms")
    for chunk, window in ((2048, 2), (4096, 4)):
        down, up, n = wire_bytes(rel, chunk, window)
        figure(f"ota bytes down, {chunk // 1024} KB chunks, window {window}", down, "bytes")
        figure(f"ota bytes up (chunk requests in {n} status messages)", up, "bytes")
        figure(f"ota wire overhead, {chunk // 1024} KB chunks", (down + up - len(rel)) / len(rel) * 100, "%")


if __name__ == "__main__":
    main()
