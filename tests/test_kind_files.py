"""One name per device kind across the firmware, the simulators, the CLI and the docs.

hub/kinds/<kind>.py is the firmware's kind; every kind has an emulated device
of the same name that advertises the kind's service and offers every
characteristic the hub subscribes to, `provision --device KIND=...` takes it,
and docs/ble.md names it."""

import re

from hub import kinds
from hub.ble import uuid_str
from samband.bridge import sim
from samband.bridge.server import BleBridge
from samband.bridge.sim.common import uuid_of
from samband.device.provision import parse_device
from samband.paths import REPO


def test_simulators_are_the_firmware_kinds():
    assert sorted(sim.KINDS) == kinds.names()


def test_each_simulator_offers_what_the_hub_subscribes_to():
    specs = [{"kind": name, "address": f"C0:5A:4B:00:02:{i + 1:02X}"} for i, name in enumerate(kinds.names())]
    bridge = BleBridge(devices=specs)
    bridge.start()
    try:
        for spec in specs:
            name = spec["kind"]
            k = kinds.get(name)
            dev = bridge.sim(spec["address"])
            assert type(dev).KIND == name
            advertised = kinds.adv_services(dev.adv_data()) + kinds.adv_services(dev.scan_response())
            assert kinds.for_services(advertised) == name, name
            offered = {a.type for a in dev.device.gatt_server.attributes} | {
                getattr(a, "uuid", None) for a in dev.device.gatt_server.attributes}
            for uuid, _mode in k.SUBSCRIBE:
                want = uuid_of(uuid if isinstance(uuid, int) else uuid_str(uuid))
                assert want in offered, f"the emulated {name} does not offer {uuid!r}"
    finally:
        bridge.stop()


def test_provision_takes_every_kind():
    for name in kinds.names():
        assert parse_device(f"{name}=C0:5A:4B:00:00:09")["kind"] == name


def test_docs_name_every_kind():
    text = (REPO / "docs" / "ble.md").read_text()
    for name in kinds.names():
        assert re.search(rf"`{name}`", text), f"docs/ble.md does not name the kind `{name}`"
