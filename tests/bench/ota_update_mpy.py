# The unix-port half of bench_ota_update.py: a whole update on the hub side
# (hub.ota: offer, every chunk staged, apply = verify + unpack into the slot)
# against a folder standing in for the flash. Prints "name value" lines.
#   micropython ota_update_mpy.py DIR            figures
#   micropython ota_update_mpy.py DIR peak WHAT  only WHAT (update, none): bench_ota_update.py
#                                                finds the smallest heap it runs in
import gc
import os
import sys
import time

from fwtest import live

from hub import cbor

d = sys.argv[1]
what = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "peak" else None
a0 = live()
from hub import ota  # noqa: E402

a1 = live()


def read(p):
    with open(p, "rb") as f:
        return f.read()


def update(fw):
    key = read(d + "/release.pub")
    cs = int(read(d + "/chunk"))
    o = ota.Ota("vhub", "0.1.0", key, {"window": 1 << 20}, fw=fw)
    o.start()
    from hub import release
    with open(d + "/release.sbr", "rb") as f:  # one chunk in the heap at a time, as over MQTT
        head = f.read(2048)
        start = release.split_header(head)[2]
        o.on_message(cbor.dumps({"o": head[:start], "cs": cs}))
        f.seek(start)
        i = 0
        while True:
            c = f.read(cs)
            if not c:
                break
            o.on_message(cbor.dumps({"c": i, "d": c}))
            i += 1
            c = None
            gc.collect()
    assert o.state == "apply", o.state
    t = time.ticks_ms()
    assert o.run_apply(), o.refused
    return time.ticks_diff(time.ticks_ms(), t)


fw = "/tmp/samband-ota-bench-%d" % time.ticks_ms()
os.mkdir(fw)
try:
    if what == "update":
        update(fw)
        print("ok")
    elif what == "none":
        print("ok")
    else:
        b0 = live()
        ms = update(fw)
        gc.collect()
        print("import_ota_bytes", a1 - a0)
        print("apply_ms", ms)
        print("after_update_bytes", gc.mem_alloc() - b0)
finally:
    ota.remove_tree(fw)
