# The hub's mDNS responder (hub/mdnsd.py) alone on the unix port, for
# tests/test_mdns_lan.py: `mdns_serve.py PORT N` answers on UDP PORT as hub
# 00005a4d0001 and, after N datagrams (answered or refused), prints its
# stats as one JSON line and exits.
import json
import sys

import asyncio
from hub import mdns
from hub.mdnsd import Responder


async def main(port, n):
    r = Responder(mdns.records("00005a4d0001", "vhub", "0.1.0", "127.0.0.1"), port)
    r.open()
    print("ready")
    t = asyncio.create_task(r.run())
    while r.answered + r.bad < n:
        await asyncio.sleep_ms(20)
    t.cancel()
    print(json.dumps(r.stats()))


asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
