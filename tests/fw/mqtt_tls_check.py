# Run on the unix port by tests/test_uplink.py: connect to the broker with a
# CA DER file, a login and the name expected in the server's certificate; prints OK, or REFUSED and the error.
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from hub import mqtt


async def main(port, ca, user, password, name):
    c = mqtt.Client("localhost", port, "tls-check", user, password, 10, mqtt.tls_context(open(ca, "rb").read()), name)
    try:
        await c.connect(5000)
    except Exception as e:
        print("REFUSED", repr(e))
        return
    await c.disconnect()
    print("OK")


asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]))
