# Heap of the bearer manager and the clock on the unix port (compiled firmware):
# imported, then a manager with two hostnet bearers and their (unconnected) MQTT clients.

from fwtest import live

a0 = live()
import asyncio  # noqa: F401 - its heap is not the manager's

from hub import mqtt

a1 = live()
from hub.bearers import hostnet, manager

a2 = live()
bs = [hostnet.HostNet("a", {"port": 1}), hostnet.HostNet("b", {"port": 2})]
m = manager.Manager(bs, lambda b: mqtt.Client("h", 1, "c-" + b.name, opener=b.open), "t")
a3 = live()
from hub import clock

c = clock.Clock(None)
a4 = live()
print("manager_import", a2 - a1)
print("manager_two_bearers", a3 - a2)
print("clock", a4 - a3)


async def running():
    # the manager's tasks started: bearers up, each session failing to connect (nothing
    # listens on ports 1 and 2) and waiting out its back-off, as when a path is down
    m.start()
    await asyncio.sleep_ms(300)
    a = live()
    m.stop()
    return a


a5 = asyncio.run(running())
print("manager_running", a5 - a4)
# the cellular bearer's modules, then what PPP adds (imported only on a board with network.PPP)
a6 = live()
from hub.bearers import cellular  # noqa: E402, F401

a7 = live()
from hub.bearers import ppp  # noqa: E402, F401

a8 = live()
print("cellular_import", a7 - a6)
print("ppp_import", a8 - a7)
