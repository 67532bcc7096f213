# Run by tests/test_netns.py on the unix port inside a hub namespace: for
# each interface named on the command line, open a stream pinned to it
# (hub.bearers.pinned) to the cloud's echo server, send a line and print
# what came back, or why nothing did: "<dev> ok <reply>", "<dev> errno <n>",
# "<dev> timeout". "<dev>@<dns server>" resolves the name given instead of
# the host first, at that server over dev (hub.bearers.pinned.resolve):
# "<dev> dns <why>" when that fails.
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from hub.bearers import BearerError
from hub.bearers.pinned import open_pinned, resolve


async def probe(dev, host, port, name):
    server = None
    if "@" in dev:
        dev, server = dev.split("@")
    try:
        if server:
            host = await resolve(dev, server, name, 2000)
        r, w = await asyncio.wait_for(open_pinned(dev, host, port), 5)
        w.write(b"ping from " + dev.encode() + b"\n")
        await w.drain()
        line = await asyncio.wait_for(r.readline(), 3)
        w.close()
        print(dev, "ok", line.decode().strip())
    except asyncio.TimeoutError:
        print(dev, "timeout")
    except BearerError as e:
        print(dev, str(e))
    except OSError as e:
        print(dev, "errno", e.errno if hasattr(e, "errno") else e.args[0])


host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for dev in sys.argv[4:]:
    asyncio.run(probe(dev, host, port, name))
