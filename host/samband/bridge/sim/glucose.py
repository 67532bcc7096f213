"""Emulated glucose meter (GLS, reference section 2): N stored records with
sequence numbers (measurement 0x2A18, every third with a context 0x2A34),
the Record Access Control Point 0x2A52, Glucose Feature 0x2A51, bonding
required (every characteristic of the service needs an encrypted link).

RACP (racp.py encodes/parses): report stored records (all, <=, >=, range,
first, last; filter 1 sequence number, 2 user-facing time) notifies each
measurement (then its context) and indicates `06 00 01 <code>`; report
number of stored records indicates `05 00 <count>`; delete stored records;
abort stops a running report. A write while a procedure runs is refused
with ATT error 0xFE, one without RACP indications enabled with 0xFD.
measure() adds a record and notifies it when subscribed, as meters do; one
taken while a report is being sent is notified after the report (the report
itself is a snapshot of the records at the request).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bumble import att, gatt, hci

from hub import profiles
from hub.profiles import racp, timefmt
from samband.bridge.sim.common import ATT_CCCD_IMPROPER, ATT_IN_PROGRESS, INDICATE, NOTIFY, READ, WRITE, Sim, uuid_of


class RacpServer:
    """The RACP procedures over a sim's record list. records() returns the stored
    records in order; key(rec, ftype) the filter value of a record (None if the filter
    type is not supported); send(rec) notifies one record."""

    def __init__(self, sim: Sim, records: Callable[[], list[dict[str, Any]]],
                 key: Callable[[dict[str, Any], int], Any], send: Callable[[dict[str, Any]], Awaitable[None]],
                 filters: tuple[int, ...] = (racp.FILTER_SEQ,)) -> None:
        self.sim = sim
        self.records = records
        self.key = key
        self.send = send
        self.filters = filters
        self.ch = None
        self.task = None
        self.aborted = False
        self.reports = 0
        self.sending = False      # records going out (a new measurement waits in `later`)
        self.later = []           # records taken during a report, notified after it
        self.midway = None        # (after, n): take n measurements once `after` records went out

    def characteristic(self) -> gatt.Characteristic:
        self.ch = self.sim.char(0x2A52, WRITE | INDICATE, write=self._write)
        return self.ch

    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def _write(self, conn: Any, value: bytes) -> None:
        if not self.sim.subscribed(self.ch, 2):
            raise att.ATT_Error(error_code=ATT_CCCD_IMPROPER)
        op = value[0] if value else 0
        if op == racp.ABORT:
            self.aborted = True
            self.sim.spawn(self._respond(racp.ABORT, racp.SUCCESS, wait=self.task))
            return
        if self.busy():
            raise att.ATT_Error(error_code=ATT_IN_PROGRESS)
        self.aborted = False
        # Answer the write first; the procedure runs after the Write Response.
        self.task = self.sim.spawn(self._run(bytes(value)))

    async def _respond(self, op: int, code: int, wait: asyncio.Future | None = None) -> None:
        if wait is not None and not wait.done():
            await asyncio.wait([wait], timeout=5)
        await self.sim.indicate(self.ch, racp.encode_racp({"op": racp.RESPONSE, "request": op, "code": code}))

    def defer(self, rec: dict[str, Any]) -> bool:
        """Keep a record taken during a report for after it; False when no report runs."""
        if not self.sending:
            return False
        self.later.append(rec)
        return True

    def _select(self, f: dict[str, Any]) -> list[dict[str, Any]]:
        recs = list(self.records())  # a snapshot: records taken meanwhile go after the report
        oper = f["operator"]
        if oper == racp.ALL:
            return recs
        if oper == racp.FIRST:
            return recs[:1]
        if oper == racp.LAST:
            return recs[-1:]
        ft = f.get("filter")
        if ft not in self.filters:
            raise LookupError(racp.OPERAND_NOT_SUPPORTED)
        if oper == racp.GE:
            return [r for r in recs if self.key(r, ft) >= f["value"]]
        if oper == racp.LE:
            return [r for r in recs if self.key(r, ft) <= f["value"]]
        if f["min"] > f["max"]:
            raise LookupError(racp.INVALID_OPERAND)
        return [r for r in recs if f["min"] <= self.key(r, ft) <= f["max"]]

    async def _run(self, value: bytes) -> None:
        await asyncio.sleep(0)
        try:
            f = racp.parse_racp(value)
        except ValueError:
            await self._respond(value[0] if value else 0, racp.INVALID_OPERAND)
            return
        op, oper = f["op"], f["operator"]
        if op not in (racp.REPORT, racp.DELETE, racp.COUNT):
            await self._respond(op, racp.OP_NOT_SUPPORTED)
            return
        if oper == racp.NULL or oper > racp.LAST:
            await self._respond(op, racp.INVALID_OPERATOR)
            return
        if oper in (racp.ALL, racp.FIRST, racp.LAST) and len(value) > 2:
            await self._respond(op, racp.INVALID_OPERAND)
            return
        try:
            recs = self._select(f)
        except LookupError as e:
            await self._respond(op, e.args[0])
            return
        except TypeError:  # a time filter against a sequence number or the like
            await self._respond(op, racp.INVALID_OPERAND)
            return
        if op == racp.COUNT:
            await self.sim.indicate(self.ch, racp.encode_racp({"op": racp.COUNT_RESPONSE, "count": len(recs)}))
            return
        if not recs:
            await self._respond(op, racp.NO_RECORDS)
            return
        if op == racp.DELETE:
            gone = set(id(r) for r in recs)
            self.sim.delete_records(gone)
            await self._respond(op, racp.SUCCESS)
            return
        self.reports += 1
        self.sending = True
        try:
            await self._report(op, recs)
            while self.later:  # measured during the report: notified now (and kept, as every record)
                await self.send(self.later.pop(0))
        finally:
            self.sending = False
            self.later = []  # (a link gone: they stay among the records, for the next report)

    async def _report(self, op: int, recs: list[dict[str, Any]]) -> None:
        for i, r in enumerate(recs):
            if self.aborted or not self.sim.connected:
                return
            await self.send(r)
            if self.midway is not None and i + 1 >= self.midway[0]:
                n, self.midway = self.midway[1], None
                await self.sim.measure(n)
            if i % 8 == 7:
                await self.sim.pace()
        if not self.aborted and self.sim.connected:
            await self._respond(op, racp.SUCCESS)


class GlucoseMeter(Sim):
    KIND = "glucose"
    NAME = "Samband Glucose"
    MODEL = "GLU-500"
    HAS_CLOCK = True
    SECURE = True
    OPTS = ("first_seq",)
    STATE = ("recs", "next_seq")  # kept across runs with a state folder (Sim.keep_state)

    def __init__(self, address: str | hci.Address, records: int = 20, **kw: Any) -> None:
        super().__init__(address, **kw)
        self.recs = []
        self.next_seq = int(self.opts.get("first_seq", 1))
        self.on_sub_measure = 0
        start = self.now() - 4 * 3600 * int(records)
        for i in range(int(records)):
            self._new(start + 4 * 3600 * i)
        self.racp = RacpServer(self, lambda: self.recs, self._key, self._send,
                               (racp.FILTER_SEQ, racp.FILTER_TIME))

    def _new(self, when: int) -> dict[str, Any]:
        seq = self.next_seq
        self.next_seq = (seq + 1) & 0xFFFF
        t = timefmt.civil(when)[:6]
        meas = {"flags": 0x0B, "seq": seq, "time": t, "offset": 0, "conc": (80 + seq * 7 % 90, -5),
                "type": 1, "loc": 1, "status": 0}
        ctx = None
        if seq % 3 == 0:
            meas["flags"] |= 0x10
            ctx = profiles.encode(0x2A34, {"flags": 0x02, "seq": seq, "meal": 1 + seq % 5})
        rec = {"seq": seq, "time": t, "meas": profiles.encode(0x2A18, meas), "ctx": ctx}
        self.recs.append(rec)
        return rec

    def _key(self, rec: dict[str, Any], ftype: int) -> Any:
        if ftype == racp.FILTER_SEQ:
            return rec["seq"]
        return rec["time"]  # Date Time tuples compare in time order

    def delete_records(self, ids: set[int]) -> None:
        self.recs = [r for r in self.recs if id(r) not in ids]

    async def _send(self, rec: dict[str, Any]) -> None:
        await self.notify(self.meas_char, rec["meas"])
        if rec["ctx"] is not None:
            await self.notify(self.ctx_char, rec["ctx"])

    def services(self) -> list[gatt.Service]:
        self.meas_char = self.char(0x2A18, NOTIFY)
        self.ctx_char = self.char(0x2A34, NOTIFY)
        feat = self.char(0x2A51, READ, profiles.encode(0x2A51, {"features": 0x040F}))
        return [gatt.Service(uuid_of(0x1808), [self.meas_char, self.ctx_char, feat,
                                               self.racp.characteristic()])]

    # ------------------------------------------------------------ test controls
    @property
    def sequence_numbers(self) -> list[int]:
        return [r["seq"] for r in self.recs]

    async def measure(self, n: int = 1) -> list[int]:
        """Take n new measurements now (device clock); notified at once when subscribed,
        or right after the RACP report being sent."""
        out = []
        for _ in range(int(n)):
            rec = self._new(self.now())
            out.append(rec["seq"])
            if not self.racp.defer(rec):
                await self._send(rec)
        return out

    async def measure_when_subscribed(self, n: int = 1) -> None:
        """Take n measurements as soon as a collector subscribes to measurements, before
        it can ask for stored records (a patient using the meter as it reconnects)."""
        self.on_sub_measure = int(n)

    async def measure_during_report(self, n: int = 1, after: int = 1) -> None:
        """Take n measurements once the next RACP report has sent `after` records."""
        self.racp.midway = (int(after), int(n))

    def on_subscribe(self, conn: Any, ch: gatt.Characteristic, notify: bool, indicate: bool) -> None:
        if ch is self.meas_char and notify and self.on_sub_measure:
            n, self.on_sub_measure = self.on_sub_measure, 0
            self.spawn(self.measure(n))

    async def burst_one(self, i: int) -> bool:
        rec = self._new(self.now())
        await self._send(rec)
        return True
