"""Emulated BLE medical devices for the BLE bridge (docs/ble.md).

One module per device kind; make(spec) builds one from a dict such as
{"kind": "glucose", "address": "C0:5A:4B:00:00:01", "records": 500}.
DEFAULT_SET is one of each kind at deterministic addresses."""

import importlib

KINDS = {
    "glucose": ("samband.sim.glucose", "GlucoseMeter"),
    "cgm": ("samband.sim.cgm", "CgmSensor"),
    "polar": ("samband.sim.polar", "PolarStrap"),
    "bp": ("samband.sim.bloodpressure", "BloodPressureCuff"),
    "plx": ("samband.sim.oximeter", "PulseOximeter"),
    "thermo": ("samband.sim.thermometer", "Thermometer"),
    "scale": ("samband.sim.scale", "WeightScale"),
}

DEFAULT_SET = [
    {"kind": "glucose", "address": "C0:5A:4B:00:00:01"},
    {"kind": "cgm", "address": "C0:5A:4B:00:00:02"},
    {"kind": "polar", "address": "C0:5A:4B:00:00:03"},
    {"kind": "bp", "address": "C0:5A:4B:00:00:04"},
    {"kind": "plx", "address": "C0:5A:4B:00:00:05"},
    {"kind": "thermo", "address": "C0:5A:4B:00:00:06"},
    {"kind": "scale", "address": "C0:5A:4B:00:00:07"},
]


class SimError(ValueError):
    """A device description that does not make an emulated device."""


def make(spec):
    if not isinstance(spec, dict) or "kind" not in spec or "address" not in spec:
        raise SimError("a device needs a kind and an address: %r" % (spec,))
    kind = spec["kind"]
    if kind not in KINDS:
        raise SimError("unknown device kind %r (known: %s)" % (kind, ", ".join(KINDS)))
    mod, cls = KINDS[kind]
    opts = {k: v for k, v in spec.items() if k not in ("kind", "transport")}
    try:
        return getattr(importlib.import_module(mod), cls)(**opts)
    except (TypeError, ValueError) as e:
        raise SimError("device %s %s: %s" % (kind, spec.get("address"), e))
