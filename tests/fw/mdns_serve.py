# The hub's mDNS responder (hub/mdnsd.py) alone on the unix port, for
# tests/test_mdns_lan.py: `mdns_serve.py PORT N [UID]` answers on UDP PORT as
# hub UID (00005a4d0001) and, after N datagrams (answered or refused), prints
# its stats as one JSON line and exits.
import json
import sys

import asyncio
from hub import mdns
from hub.mdnsd import Responder


async def main(port, n, uid):
    r = Responder(mdns.records(uid, "vhub", "0.1.0", "127.0.0.1"), port, "127.0.0.1")
    r.open()
    print("ready")
    t = asyncio.create_task(r.run())
    while r.answered + r.bad < n:
        await asyncio.sleep_ms(20)
    t.cancel()
    print(json.dumps(r.stats()))


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "00005a4d0001"))
