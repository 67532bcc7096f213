"""Emulated BLE medical devices for the BLE bridge (docs/ble.md).

One module per device kind, named as the firmware names it; make(spec) builds one from a dict such as
{"kind": "glucose", "address": "C0:5A:4B:00:00:01", "records": 500}.
DEFAULT_SET is one of each kind a hub meets at home, at deterministic
addresses (no plain heart-rate strap: the ECG strap serves heart rate too)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from samband.bridge.sim.common import Sim

from samband.errors import SambandError

# One module per kind, named as the firmware names the kind (hub/kinds/<kind>.py),
# holding one Sim subclass whose KIND is that name.
KINDS = ("bp", "cgm", "glucose", "hr", "plx", "polar", "scale", "thermo")


def sim_class(kind: str) -> type[Sim]:
    """The emulated device class for a kind."""
    if kind not in KINDS:
        raise SimError("unknown device kind %r (known: %s)" % (kind, ", ".join(KINDS)))
    from samband.bridge.sim.common import Sim
    mod = importlib.import_module("samband.bridge.sim." + kind)
    for v in vars(mod).values():
        if isinstance(v, type) and issubclass(v, Sim) and v.KIND == kind:
            return v
    raise SimError("samband.bridge.sim.%s has no emulated device of kind %r" % (kind, kind))


DEFAULT_SET = [
    {"kind": "glucose", "address": "C0:5A:4B:00:00:01"},
    {"kind": "cgm", "address": "C0:5A:4B:00:00:02"},
    {"kind": "polar", "address": "C0:5A:4B:00:00:03"},
    {"kind": "bp", "address": "C0:5A:4B:00:00:04"},
    {"kind": "plx", "address": "C0:5A:4B:00:00:05"},
    {"kind": "thermo", "address": "C0:5A:4B:00:00:06"},
    {"kind": "scale", "address": "C0:5A:4B:00:00:07"},
]


class SimError(SambandError, ValueError):
    """A device description that does not make an emulated device."""


def make(spec: dict[str, Any]) -> Sim:
    if not isinstance(spec, dict) or "kind" not in spec or "address" not in spec:
        raise SimError("a device needs a kind and an address: %r" % (spec,))
    kind = spec["kind"]
    cls = sim_class(kind)
    opts = {k: v for k, v in spec.items() if k not in ("kind", "transport")}
    try:
        return cls(**opts)
    except (TypeError, ValueError) as e:
        raise SimError("device %s %s: %s" % (kind, spec.get("address"), e)) from None
