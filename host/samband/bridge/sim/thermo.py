"""Emulated health thermometer (HTS, reference section 7): Temperature
Measurement 0x2A1C indicated (stored ones when the collector subscribes,
measure() for a new one, preceded by Intermediate Temperatures 0x2A1E),
Temperature Type 0x2A1D (mouth), Measurement Interval 0x2A21 (0: none)."""

from __future__ import annotations

from bumble import gatt

from hub import profiles
from hub.profiles import timefmt
from samband.bridge.sim.common import INDICATE, NOTIFY, READ, KeepingSim, uuid_of


class Thermometer(KeepingSim):
    KIND = "thermo"
    NAME = "Samband Thermo"
    MODEL = "HT-1"
    STORED_EVERY_S = 900

    def payload(self, when: int | None = None, inter: bool = False) -> bytes:
        self.i += 1
        f = {"flags": 0x06, "temp": (3670 + self.i % 30, -2),
             "time": timefmt.civil(self.now() if when is None else when)[:6], "type": 6}
        return profiles.encode(0x2A1E if inter else 0x2A1C, f)

    def services(self) -> list[gatt.Service]:
        self.meas_char = self.char(0x2A1C, INDICATE)
        ttype = self.char(0x2A1D, READ, profiles.encode(0x2A1D, {"type": 6}))
        self.inter_char = self.char(0x2A1E, NOTIFY)
        interval = self.char(0x2A21, READ, profiles.encode(0x2A21, {"interval": 0}))
        self.store = self.keep(self.meas_char, self.payload)
        return [gatt.Service(uuid_of(0x1809), [self.meas_char, ttype, self.inter_char, interval])]

    async def measure(self) -> None:
        for _ in range(3):
            await self.notify(self.inter_char, self.payload(inter=True))
        self.store.add(self.payload())

    async def burst_one(self, i: int) -> bool:
        return await self.notify(self.inter_char, self.payload(inter=True))
