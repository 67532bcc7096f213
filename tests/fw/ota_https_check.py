# Run on the unix port by tests/test_ota_https.py: a hub's update service (hub.ota.Ota,
# its stage in a folder) takes an offer that names an https:// URL and fetches the
# image with Range requests (hub/otahttp.py) over TLS verified with a CA (DER).
# argv: server port, CA file, stage folder, URL, release file, key file, the most
# steps to run (then the process ends: a power cut), cellular budget in bytes (0:
# not cellular), optionally the seconds a request may take. Prints one JSON line:
# state, chunks on flash, counters, refusal, the status's "st", and whether the
# staged release verifies.
import json
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from hub import cbor, ota, otahttp, release
from hub.mqtt import tls_context

CS = 64


async def main(port, ca, root, url, rel_path, key_path, steps, budget, timeout):
    key = open(key_path, "rb").read()
    o = ota.Ota("vhub", "1.0.0", key, {"window": 4, "budget_bytes": budget, "http_timeout_s": timeout}, fw=root)
    o.start()
    o.cellular = budget > 0
    if o.stage.head is None:  # the first run: the offer (retained on the broker)
        rel = open(rel_path, "rb").read()
        _, _, start = release.split_header(rel)
        o.on_message(cbor.dumps({"o": rel[:start], "cs": CS, "u": url}))
    ctx = tls_context(open(ca, "rb").read())

    async def opener(host, port, ssl, name):
        return await asyncio.open_connection(host, port, ssl=ssl, server_hostname=name)

    n = 0
    while n < steps and o.http_due(0):
        await otahttp.step(o, opener, ctx)
        n += 1
    ok = False
    if o.stage.complete():
        release.verify_stream(o.stage.reader(), key, "vhub", "1.0.0", None, 1024, "tree")
        ok = True
    print(json.dumps({"state": o.state, "have": o.stage.count, "n": o.stage.n, "counters": o.counters,
                      "refused": o.refused, "st": o.status()["st"], "verified": ok}))


a = sys.argv
asyncio.run(main(int(a[1]), a[2], a[3], a[4], a[5], a[6], int(a[7]), int(a[8]), int(a[9]) if len(a) > 9 else 60))
