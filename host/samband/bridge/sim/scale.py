"""Emulated weight scale (WSS, reference section 8): Weight Measurement
0x2A9D indicated (stored ones when the collector subscribes, measure() for a
new one), Weight Scale Feature 0x2A9E (time stamp supported, 0.005 kg)."""

from __future__ import annotations

from bumble import gatt

from hub import profiles
from hub.profiles import timefmt
from samband.bridge.sim.common import INDICATE, READ, KeepingSim, uuid_of


class WeightScale(KeepingSim):
    KIND = "scale"
    NAME = "Samband Scale"
    MODEL = "WS-70"
    STORED = 2
    STORED_EVERY_S = 86400

    def payload(self, when: int | None = None) -> bytes:
        self.i += 1
        return profiles.encode(0x2A9D, {"flags": 0x02, "weight": 14000 + 20 * (self.i % 10),
                                        "time": timefmt.civil(self.now() if when is None else when)[:6]})

    def services(self) -> list[gatt.Service]:
        self.meas_char = self.char(0x2A9D, INDICATE)
        feat = self.char(0x2A9E, READ, profiles.encode(0x2A9E, {"features": 0x01 | (7 << 3)}))
        self.store = self.keep(self.meas_char, self.payload)
        return [gatt.Service(uuid_of(0x181D), [self.meas_char, feat])]

    async def measure(self) -> None:
        self.store.add(self.payload())

    async def burst_one(self, i: int) -> bool:
        self.store.add(self.payload())
        return True
