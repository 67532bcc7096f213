"""Emulated plain heart-rate strap: the Heart Rate service alone (0x2A37 with
RR intervals, one notification a second, and Body Sensor Location), as
most chest straps and watches offer it; no ECG."""

from __future__ import annotations

from bumble import gatt

from hub import profiles
from samband.bridge.sim.common import NOTIFY, READ, uuid_of
from samband.bridge.sim.polar import PolarStrap


class HeartRateStrap(PolarStrap):
    KIND = "hr"
    NAME = "HR Strap SIM"
    MODEL = "HRS-1"
    MANUFACTURER = "Samband"
    ADV_UUIDS = (0x180D,)

    def services(self) -> list[gatt.Service]:
        self.hr_char = self.char(0x2A37, NOTIFY)
        loc = self.char(0x2A38, READ, profiles.encode(0x2A38, {"location": 1}))
        return [gatt.Service(uuid_of(0x180D), [self.hr_char, loc])]
