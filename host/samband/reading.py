"""A reading on the host, typed: the firmware's Reading model (`hub.reading`,
a CBOR map with small integer keys, docs/reading.md) as a frozen dataclass,
so that host code says `r.mdc` and `r.hts` instead of `r[2]` and `r.get(8)`.

The firmware's module stays the one definition of the fields and their
rules: `Reading.from_map` validates with `hub.reading.validate` and maps
the keys through `hub.reading.NAMES`; nothing here renumbers or re-checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub import reading as R

Number = int | float


@dataclass(frozen=True, slots=True)
class Reading:
    seq: int
    dev: bytes
    mdc: int
    val: Number | tuple[Number, ...]
    mono: tuple[int, int]
    exp: int = 0
    unit: str | None = None
    dts: int | None = None
    tzo: int | None = None
    hts: int | None = None
    rec: int | None = None
    flags: int | None = None
    prio: int = R.PRIO_ROUTINE
    comp: tuple[int, ...] | None = None
    info: str | None = None
    period: int | None = None
    ctx: dict[Any, Any] | None = None

    @classmethod
    def from_map(cls, m: dict[int, Any]) -> Reading:
        """From a decoded reading map (hub.reading keys); raises hub.reading.ReadingError."""
        return cls.from_valid(R.validate(m))

    @classmethod
    def from_valid(cls, m: dict[int, Any]) -> Reading:
        """From a map that hub.reading.validate has already passed: the receiver's
        decode_reading validates each reading once; a second check would cost it another
        2 us a reading (about 2 % of ingest on one core)."""
        g = m.get
        val = m[R.VAL]
        comp = g(R.COMP)
        return cls(m[R.SEQ], m[R.DEV], m[R.MDC], tuple(val) if type(val) is list else val, tuple(m[R.MONO]),
                   g(R.EXP, 0), g(R.UNIT), g(R.DTS), g(R.TZO), g(R.HTS), g(R.REC), g(R.FLAGS),
                   g(R.PRIO, R.PRIO_ROUTINE), None if comp is None else tuple(comp), g(R.INFO), g(R.PERIOD), g(R.CTX))

    @classmethod
    def from_cbor(cls, data: bytes) -> Reading:
        return cls.from_valid(R.decode(data))

    def to_map(self) -> dict[int, Any]:
        """The firmware's map form (absent optional fields left out), as the hub encodes it."""
        m: dict[int, Any] = {R.SEQ: self.seq, R.DEV: self.dev, R.MDC: self.mdc,
                             R.VAL: list(self.val) if isinstance(self.val, tuple) else self.val,
                             R.MONO: list(self.mono)}
        if self.exp:
            m[R.EXP] = self.exp
        if self.prio != R.PRIO_ROUTINE:
            m[R.PRIO] = self.prio
        for name in ("unit", "dts", "tzo", "hts", "rec", "flags", "info", "period"):
            v = getattr(self, name)
            if v is not None:
                m[R.KEYS[name]] = v
        if self.comp is not None:
            m[R.COMP] = list(self.comp)
        if self.ctx is not None:
            m[R.CTX] = dict(self.ctx)
        return m

    @property
    def addr(self) -> str:
        """The device address as printed everywhere ("C0:5A:4B:00:00:01", "/r" when random):
        hub.reading.to_named's text (tests/test_reading_host.py keeps them equal), made
        without its per-byte formatting (a microsecond of the receiver's time per reading)."""
        d = self.dev
        return d[1:].hex(":").upper() + ("/r" if d[0] else "")

    @property
    def is_alarm(self) -> bool:
        return self.prio == R.PRIO_ALARM

    @property
    def is_telemetry(self) -> bool:
        return self.prio == R.PRIO_TELEMETRY

    def value(self, i: int | None = None) -> Number:
        """The value (item i of a compound or run) with its exponent applied."""
        return R.value({R.VAL: self.val, R.EXP: self.exp}, i)

    def named(self) -> dict[str, Any]:
        """Field names instead of keys, as hub.reading.to_named gives them for the
        map, in key order: the order of the hub's canonical CBOR, so that the JSON
        the receiver stores is the text it stored before readings were typed."""
        # spelt out rather than a loop over the fields: the receiver calls this once per
        # reading it stores, and the loop cost ingest a few percent
        val = self.val
        out: dict[str, Any] = {"seq": self.seq, "dev": self.addr, "mdc": self.mdc,
                               "val": list(val) if type(val) is tuple else val}
        if self.exp:
            out["exp"] = self.exp
        if self.unit is not None:
            out["unit"] = self.unit
        if self.dts is not None:
            out["dts"] = self.dts
        if self.tzo is not None:
            out["tzo"] = self.tzo
        if self.hts is not None:
            out["hts"] = self.hts
        out["mono"] = list(self.mono)
        if self.rec is not None:
            out["rec"] = self.rec
        if self.flags is not None:
            out["flags"] = self.flags
        if self.prio != R.PRIO_ROUTINE:
            out["prio"] = self.prio
        if self.comp is not None:
            out["comp"] = list(self.comp)
        if self.info is not None:
            out["info"] = self.info
        if self.period is not None:
            out["period"] = self.period
        if self.ctx is not None:
            out["ctx"] = self.ctx
        return out


