"""Emulated CGM sensor (CGMS, reference section 3): a session with a start
time (0x2AAA, read/write) and run time (0x2AAB), periodic CGM Measurements
(0x2AA7, one record per notification: glucose, trend, quality; time offset
in minutes since the session start), CGM Feature 0x2AA8 and Status 0x2AA9,
RACP 0x2A52 with filter type 1 = time offset, and the Specific Ops Control
Point 0x2AAC: start session (26), stop session (27), set (1) / get (2)
communication interval; other op codes answer "op code not supported".
Bonding required, like GLS. No E2E-CRC (feature bit 12 clear) unless
crc=True.

The sensor measures every `interval` device minutes; `speed` device minutes
pass per real minute (speed=60: a 5-minute interval is 5 real seconds);
tick(n) takes n readings now.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bumble import att, gatt, hci

from hub import profiles
from hub.profiles import cgm, racp, timefmt
from samband.bridge.sim.common import ATT_CCCD_IMPROPER, INDICATE, NOTIFY, READ, WRITE, Sim, uuid_of
from samband.bridge.sim.glucose import RacpServer


class CgmSensor(Sim):
    KIND = "cgm"
    NAME = "Samband CGM"
    MODEL = "CGM-14"
    HAS_CLOCK = True
    SECURE = True
    STATE = ("recs", "toff", "start_time", "running", "interval")  # kept across runs (Sim.keep_state)

    def __init__(self, address: str | hci.Address, records: int = 12, interval: int = 5, speed: float = 1.0,
                 crc: bool = False, **kw: Any) -> None:
        super().__init__(address, **kw)
        self.interval = int(interval)
        self.speed = float(speed)
        self.crc = bool(crc)
        self.running = True
        self.start_time = self.now() - 60 * self.interval * int(records)
        self.recs = []
        self.toff = 0
        for _ in range(int(records)):
            self._new()
        self.racp = RacpServer(self, lambda: self.recs, lambda r, ft: r["toff"], self._send,
                               (racp.FILTER_TOFF,))

    def _new(self):
        self.toff += self.interval
        toff = self.toff
        conc = 100 + (toff // self.interval * 13) % 80
        rec = {"flags": 0x03, "conc": (conc, 0), "toff": toff, "trend": (((toff * 7) % 21) - 10, -1),
               "quality": (95, 0), "crc": self.crc}
        r = {"toff": toff, "meas": profiles.encode(0x2AA7, {"records": [rec]})}
        self.recs.append(r)
        return r

    async def _send(self, r: dict[str, Any]) -> None:
        await self.notify(self.meas_char, r["meas"])

    def delete_records(self, ids: set[int]) -> None:
        self.recs = [r for r in self.recs if id(r) not in ids]

    def services(self) -> list[gatt.Service]:
        self.meas_char = self.char(0x2AA7, NOTIFY)
        feat = self.char(0x2AA8, READ, profiles.encode(0x2AA8, {
            "features": 0x000001 | (cgm.FEATURE_E2E_CRC if self.crc else 0), "type": 9, "loc": 5}))
        status = self.char(0x2AA9, READ, read=lambda c: profiles.encode(
            0x2AA9, {"toff": self.toff, "status": 0 if self.running else 1, "crc": self.crc}))
        start = self.char(0x2AAA, READ | WRITE, read=self._read_start, write=self._write_start)
        run = self.char(0x2AAB, READ, read=lambda c: profiles.encode(0x2AAB, {"hours": 336, "crc": self.crc}))
        self.socp_char = self.char(0x2AAC, WRITE | INDICATE, write=self._socp)
        return [gatt.Service(uuid_of(0x181F), [self.meas_char, feat, status, start, run,
                                               self.racp.characteristic(), self.socp_char])]

    def _read_start(self, conn: Any) -> bytes:
        return profiles.encode(0x2AAA, {"time": timefmt.civil(self.start_time)[:6], "tz": 0, "dst": 0,
                                        "crc": self.crc})

    def _write_start(self, conn: Any, value: bytes) -> None:
        try:
            f = profiles.parse(0x2AAA, value, crc=self.crc)
        except ValueError:
            raise att.ATT_Error(error_code=0xFF) from None
        t = timefmt.epoch(f["time"])
        if t is not None:
            self.start_time = t

    def _socp(self, conn: Any, value: bytes) -> None:
        if not self.subscribed(self.socp_char, 2):
            raise att.ATT_Error(error_code=ATT_CCCD_IMPROPER)
        self.spawn(self._socp_run(bytes(value)))

    async def _socp_run(self, value: bytes) -> None:
        await asyncio.sleep(0)
        try:
            f = profiles.parse(0x2AAC, value, crc=self.crc)
        except ValueError:
            await self._socp_respond(value[0] if value else 0, 3)
            return
        op = f["op"]
        code = 1
        if op == cgm.START_SESSION:
            self.running = True
            self.start_time = self.now()
            self.toff = 0
            self.recs = []
        elif op == cgm.STOP_SESSION:
            self.running = False
        elif op == cgm.SET_INTERVAL:
            if f["interval"] == 0:
                code = 5
            else:
                self.interval = f["interval"]
        elif op == cgm.GET_INTERVAL:
            await self.indicate(self.socp_char, profiles.encode(
                0x2AAC, {"op": cgm.INTERVAL_RESPONSE, "interval": self.interval, "crc": self.crc}))
            return
        else:
            code = 2
        await self._socp_respond(op, code)

    async def _socp_respond(self, op: int, code: int) -> None:
        await self.indicate(self.socp_char, profiles.encode(
            0x2AAC, {"op": cgm.RESPONSE, "request": op, "code": code, "crc": self.crc}))

    async def tick(self, n: int = 1) -> list[int]:
        """Take n readings now; each is notified when subscribed. Returns their time offsets."""
        out = []
        for _ in range(int(n)):
            if not self.running:
                break
            r = self._new()
            out.append(r["toff"])
            if not self.racp.defer(r):
                await self._send(r)
        return out

    async def burst_one(self, i: int) -> bool:
        return bool(await self.tick(1))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(max(0.05, self.interval * 60 / max(self.speed, 1e-6)))
            if self.running:
                await self.tick(1)
