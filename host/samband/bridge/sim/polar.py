"""Emulated Polar H10-like chest strap: Heart Rate 0x2A37 with RR intervals
(one notification a second, hr_interval), Body Sensor Location, and Polar's
PMD service (reference section 10): control point FB005C81 (read: the
features, ECG + ACC; write: get settings / start / stop, answered by an
indication `F0 <op> <type> <status> 00 [settings]`) and data FB005C82 (ECG
frames: type 0, the 8-byte timestamp of the last sample in ns since 2000,
frame type 0, 73 samples of 3 bytes in uV).

ECG runs at 130 Hz; `speed` is how many times faster than real time the
frames come (0: as fast as the link and the hub take them). Sample n of a
stream is stamped t0 + n * 10^9 / 130 ns exactly, so frames are contiguous.
A start with an ATT MTU too small for a frame is refused with status 10
(invalid MTU), as the H10 does.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from bumble import gatt, hci

from hub import profiles
from hub.profiles import polar_pmd as pmd
from samband.bridge.sim.common import INDICATE, NOTIFY, READ, WRITE, Sim, uuid_of

SAMPLES_PER_FRAME = 73
RATE = 130


class PolarStrap(Sim):
    KIND = "polar"
    NAME = "Polar H10 SIM"
    MODEL = "H10"
    MANUFACTURER = "Polar Electro Oy"
    ADV_UUIDS = (0x180D, profiles.PMD_SERVICE)

    def __init__(self, address: str | hci.Address, hr: int = 62, speed: float = 1.0, hr_interval: float = 1.0,
                 **kw: Any) -> None:
        super().__init__(address, **kw)
        self.hr = int(hr)
        self.speed = float(speed)
        self.hr_interval = float(hr_interval)
        self.ecg_task = None
        self.frames = 0
        self.samples = 0

    def services(self) -> list[gatt.Service]:
        self.hr_char = self.char(0x2A37, NOTIFY)
        loc = self.char(0x2A38, READ, profiles.encode(0x2A38, {"location": 1}))
        self.cp_char = self.char(profiles.PMD_CP, READ | WRITE | INDICATE,
                                 read=lambda c: pmd.encode_control_point({"kind": "features", "features": 0x05}),
                                 write=self._cp_write)
        self.data_char = self.char(profiles.PMD_DATA, NOTIFY)
        return [gatt.Service(uuid_of(0x180D), [self.hr_char, loc]),
                gatt.Service(uuid_of(profiles.PMD_SERVICE), [self.cp_char, self.data_char])]

    # ------------------------------------------------------------ heart rate
    def hr_payload(self, i: int = 0) -> bytes:
        hr = self.hr + (i % 5) - 2
        rr = [round(60 * 1024 / hr)]
        return profiles.encode(0x2A37, {"flags": 0x16, "hr": hr, "rr": rr})

    async def run(self) -> None:
        i = 0
        while True:
            await asyncio.sleep(self.hr_interval)
            await self.notify(self.hr_char, self.hr_payload(i))
            i += 1

    async def burst_one(self, i: int) -> bool:
        return await self.notify(self.hr_char, self.hr_payload(i))

    async def ecg_speed(self, speed: float) -> None:
        """Frames this many times faster than real time from now on (0: as fast as possible)."""
        self.speed = float(speed)

    # ------------------------------------------------------------ PMD
    def _cp_write(self, conn: Any, value: bytes) -> None:
        self.spawn(self._cp(conn, bytes(value)))

    async def _respond(self, op: int, mtype: int, status: int, settings: dict[int, Any] | None = None) -> None:
        f = {"kind": "response", "op": op, "type": mtype, "status": status, "more": 0}
        if settings:
            f["settings"] = settings
        await self.indicate(self.cp_char, pmd.encode_control_point(f))

    async def _cp(self, conn: Any, value: bytes) -> None:
        await asyncio.sleep(0)
        try:
            req = pmd.parse_request(value)
        except ValueError:
            await self._respond(value[0] if value else 0, 0, 4)
            return
        op, mtype = req["op"], req.get("type", 0)
        if op not in (pmd.GET_SETTINGS, pmd.START, pmd.STOP):
            await self._respond(op, mtype, 1)
        elif mtype != pmd.ECG:
            await self._respond(op, mtype, 3)
        elif op == pmd.GET_SETTINGS:
            await self._respond(op, mtype, 0, {pmd.SAMPLE_RATE: [RATE], pmd.RESOLUTION: [14]})
        elif op == pmd.STOP:
            self._stop_ecg()
            await self._respond(op, mtype, 0)
        else:
            s = req.get("settings", {})
            if s.get(pmd.SAMPLE_RATE, [RATE]) != [RATE]:
                await self._respond(op, mtype, 8)
            elif s.get(pmd.RESOLUTION, [14]) != [14]:
                await self._respond(op, mtype, 7)
            elif conn.att_mtu - 3 < 10 + 3 * SAMPLES_PER_FRAME:
                await self._respond(op, mtype, 10)
            elif self.ecg_task is not None and not self.ecg_task.done():
                await self._respond(op, mtype, 6)
            else:
                await self._respond(op, mtype, 0)
                self.ecg_task = self.spawn(self._stream())

    def _stop_ecg(self) -> None:
        if self.ecg_task is not None:
            self.ecg_task.cancel()
            self.ecg_task = None

    def on_disconnect(self, conn: Any, reason: int) -> None:
        self._stop_ecg()

    @staticmethod
    def sample(n: int) -> int:
        """A synthetic ECG in uV: a QRS-like spike once a second on a slow wave."""
        k = n % RATE
        v = int(80 * math.sin(2 * math.pi * n / (RATE * 4)))
        if k < 4:
            v += (0, 600, 1200, 300)[k]
        elif k < 8:
            v -= 150
        elif 30 <= k < 50:
            v += int(200 * math.sin(math.pi * (k - 30) / 20))
        return v

    async def _stream(self) -> None:
        t0 = (self.now() - pmd.EPOCH_2000) * 10 ** 9
        real0 = time.monotonic()
        n = 0
        frame_s = SAMPLES_PER_FRAME / RATE
        k = 0
        speed = self.speed
        while self.connected:
            samples = [self.sample(n + i) for i in range(SAMPLES_PER_FRAME)]
            last = n + SAMPLES_PER_FRAME - 1
            ts = t0 + last * 10 ** 9 // RATE
            await self.notify(self.data_char, pmd.encode_data({"type": pmd.ECG, "timestamp": ts, "samples": samples}))
            n += SAMPLES_PER_FRAME
            k += 1
            self.frames += 1
            self.samples += SAMPLES_PER_FRAME
            if self.speed != speed:  # a new speed paces from here on
                speed, real0, k = self.speed, time.monotonic(), 1
            if self.speed > 0:
                due = real0 + k * frame_s / self.speed
                delay = due - time.monotonic()
                await asyncio.sleep(delay if delay > 0 else 0)
            await self.pace()
