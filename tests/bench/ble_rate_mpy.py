# On the unix port: how many notifications per second the hub's collector
# turns into sealed, staged journal records (dispatcher -> profile decode
# -> Reading -> seal -> journal), i.e. the rate the BLE FIFO drains at.
import gc
import os
import time

from fwtest import Central, MemCounter

from hub import profiles
from hub.collect import Collector
from hub.journal import Journal
from hub.ports.unix import Port
from hub.seal import Sealer
from hub.store import Store


def main():
    root = "/tmp/samband-bench-%d" % int.from_bytes(os.urandom(3), "big")
    os.mkdir(root)
    j = Journal(root=root + "/j", capacity=4 * 1024 * 1024)
    rcv = bytes(range(32))
    from hub.crypto import x25519
    s = Sealer(b"\x00\x00\x5a\x4d\x00\x01", os.urandom(32), (1, x25519.scalarmult_base(rcv)), MemCounter(),
               os.urandom, j.context)
    port = Port({"name": "vhub", "fs_size": 2 ** 22})
    store = Store(j, s, port, 1)
    central = Central(256)
    c = Collector(central, store, port, [{"addr": b"\x01" + bytes(6), "kind": "polar"},
                                         {"addr": b"\x01" + bytes(5) + b"\x01", "kind": "glucose"}],
                  state_dir=root + "/state")
    polar, glu = list(c.devices.values())
    polar.handles = {10: 0x2A37, 11: b"\xfb\x00\x5c\x82\x02\xe7\xf3\x87\x1c\xad\x8a\xcd\x2d\x8d\xf0\xc8"}
    glu.handles = {8: 0x2A18}
    c.by_conn = {1: polar, 2: glu}
    from hub.profiles import polar_pmd
    ecg = polar_pmd.encode_data({"type": 0, "timestamp": 10 ** 15, "frame_type": 0,
                                 "samples": [(i * 37) % 2000 - 1000 for i in range(73)]})
    hr = profiles.encode(0x2A37, {"flags": 0x16, "hr": 72, "rr": [830]})
    cases = [("glucose record", 2, 8, lambda i: profiles.encode(
        0x2A18, {"flags": 2, "seq": i & 0xFFFF, "time": (2026, 11, 29, 8, 0, 0),
                 "conc": (104, -5), "unit": "kg/L", "type": 1, "loc": 1})),
             ("heart rate (summarised)", 1, 10, lambda i: hr),
             ("ECG frame, 73 samples", 1, 11, lambda i: ecg)]
    for name, conn, handle, payload in cases:
        n = 1000
        data = [payload(i) for i in range(64)]
        gc.collect()
        t = time.ticks_us()
        done = 0
        while done < n:
            k = min(200, n - done)
            for i in range(k):
                central.events.put(("notify", conn, handle, data[(done + i) % 64]))
            while len(central.events):
                c._event(central.events.get_nowait())
            done += k
            store.commit()
        us = time.ticks_diff(time.ticks_us(), t)
        print("%s: notifications per second the collector takes (decode, seal, stage; commit every 200): %d /s"
              % (name, n * 1000000 // us))
    gc.collect()
    print("heap after: %d bytes in use" % gc.mem_alloc())


main()
