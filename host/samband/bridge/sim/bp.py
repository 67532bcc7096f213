"""Emulated blood-pressure cuff (BLS, reference section 5): stored Blood
Pressure Measurements (0x2A35) are indicated when the collector enables
indications, one at a time, each kept until confirmed; measure() notifies a
few Intermediate Cuff Pressures (0x2A36) and then indicates the result.
Blood Pressure Feature 0x2A49; Current Time Service for the clock."""

from __future__ import annotations

from bumble import gatt

from hub import profiles
from hub.profiles import timefmt
from samband.bridge.sim.common import INDICATE, NOTIFY, READ, KeepingSim, uuid_of


class BloodPressureCuff(KeepingSim):
    KIND = "bp"
    NAME = "Samband BP Cuff"
    MODEL = "BPM-3"
    HAS_CLOCK = True
    STORED = 3

    def payload(self, when: int | None = None) -> bytes:
        self.i += 1
        i = self.i
        return profiles.encode(0x2A35, {
            "flags": 0x1E, "sys": (118 + i % 15, 0), "dia": (76 + i % 9, 0), "map": (90 + i % 10, 0),
            "time": timefmt.civil(self.now() if when is None else when)[:6],
            "pulse": (64 + i % 12, 0), "user": 1, "status": 0})

    def services(self) -> list[gatt.Service]:
        self.meas_char = self.char(0x2A35, INDICATE)
        self.icp_char = self.char(0x2A36, NOTIFY)
        feat = self.char(0x2A49, READ, profiles.encode(0x2A49, {"features": 0x0001}))
        self.store = self.keep(self.meas_char, self.payload)
        return [gatt.Service(uuid_of(0x1810), [self.meas_char, self.icp_char, feat])]

    async def measure(self) -> None:
        for p in (60, 110, 150):
            await self.notify(self.icp_char, profiles.encode(
                0x2A36, {"flags": 0, "sys": (p, 0), "dia": "NaN", "map": "NaN"}))
        self.store.add(self.payload())

    async def burst_one(self, i: int) -> bool:
        self.store.add(self.payload())
        return True
