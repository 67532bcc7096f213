"""Emulated pulse oximeter (PLXS, reference section 6): PLX Continuous
Measurement 0x2A5F notified every `period` seconds, PLX Spot-check 0x2A5E
indicated (stored ones when the collector subscribes, spot_check() for a new
one), PLX Features 0x2A60."""

from __future__ import annotations

import asyncio
from typing import Any

from bumble import gatt, hci

from hub import profiles
from hub.profiles import timefmt
from samband.bridge.sim.common import INDICATE, NOTIFY, READ, KeepingSim, uuid_of


class PulseOximeter(KeepingSim):
    KIND = "plx"
    NAME = "Samband Oximeter"
    MODEL = "PLX-2"
    STORED_EVERY_S = 600

    def __init__(self, address: str | hci.Address, period: float = 1.0, **kw: Any) -> None:
        super().__init__(address, **kw)
        self.period = float(period)

    def continuous(self) -> bytes:
        self.i += 1
        return profiles.encode(0x2A5F, {"flags": 0, "spo2": (96 + self.i % 3, 0), "pr": (68 + self.i % 7, 0)})

    def spot(self, when: int | None = None) -> bytes:
        self.i += 1
        return profiles.encode(0x2A5E, {"flags": 0x01, "spo2": (97, 0), "pr": (70 + self.i % 5, 0),
                                        "time": timefmt.civil(self.now() if when is None else when)[:6]})

    def services(self) -> list[gatt.Service]:
        self.spot_char = self.char(0x2A5E, INDICATE)
        self.cont_char = self.char(0x2A5F, NOTIFY)
        feat = self.char(0x2A60, READ, profiles.encode(0x2A60, {"features": 0}))
        self.store = self.keep(self.spot_char, self.spot)
        return [gatt.Service(uuid_of(0x1822), [self.spot_char, self.cont_char, feat])]

    async def spot_check(self) -> None:
        self.store.add(self.spot())

    async def burst_one(self, i: int) -> bool:
        return await self.notify(self.cont_char, self.continuous())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.notify(self.cont_char, self.continuous())
