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
