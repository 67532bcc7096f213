"""The receiver's database: readings by (hub, seq), per-hub status, migrations.

`open_store(url)`: a path or `sqlite:///path` opens SQLite (WAL); a
`postgresql://` URL opens PostgreSQL through psycopg (imported only then).
Both run the same numbered migrations, recorded in `schema_version`.
The primary key (hub, seq) is the durable de-duplication: inserting a
reading that is already there is a no-op and counts as a duplicate.

A device record can also arrive twice under different hub seqs: a hub
that lost power between making a record durable and remembering its
record number fetches it again through RACP, and a meter read by two
hubs (home and ambulance) sends the same records through both; a
measurement sent by indication (blood pressure, thermometer, scale) is
sent again by the device when its confirmation was lost with the link,
after the hub had stored it. Readings with a device record number or a
device time stamp carry `devkey`, a hash of everything the
device said (address, code, value, unit, device time, record number,
flags, context; not the hub's seq, times or priority). The first one is
the reading; a later one is kept as a row with `dup_of` naming it, so
that its (hub, seq) is still known (acknowledged, not refused as a
replay), and it is left out of queries and counts. Rows stored before
migration 2 have no devkey.

One module: Store owns the connection and the schema. MIGRATIONS is the one
numbered list of the receiver's tables (schema_version counts it), and the
write path (prepare, store, de-duplication by devkey and dup_of, per-hub
status, quarantine) is one transaction whose rules read next to the columns
they fill; a batch's readings, its duplicates and its hub's counters commit
together or not at all. SQLite and PostgreSQL differ in about 35 lines
(SqliteStore, PostgresStore, Store.q). The queries of the other tables are
elsewhere already (patients, versions, alerts_db, live, the dashboard), and
so are the retry queues and the timeline. The one seam left, MIGRATIONS as a
schema module of its own, waits: the list is append-only and other branches
append to it here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from hub.reading import ReadingError
from samband.errors import SambandError
from samband.reading import Reading
from samband.receiver import timeline

# What prepare() makes of a reading: (seq, epoch, reading, named reading, devkey, JSON text).
Prepared = tuple[int, int, Reading, dict[str, Any], str | None, str]
# A record kept in the quarantine: (seq, epoch, reason, detail, plaintext).
Quarantined = tuple[int, int, str, str, bytes]


class Queryable(Protocol):
    """What the read queries (live, patients, versions, alerts_db, the dashboard) need of a
    database: a DB-API connection, its placeholder and q(). A Store, or the dashboard's
    read-only Reader."""

    conn: Any
    ph: str

    def q(self, sql: str) -> str: ...


class StoreError(SambandError):
    pass


class Unstorable(StoreError):
    """A reading this database can never hold (a value beyond a signed
    64-bit column, text the server refuses): kept in the quarantine table
    instead, counted, and acknowledged, since sending it again cannot help."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


INT64_MIN, INT64_MAX = -2 ** 63, 2 ** 63 - 1


def is_transient(exc: BaseException) -> bool:
    """True for a database failure that may pass if the same batch is tried
    again later: SQLite busy/locked/disk I/O (OperationalError), PostgreSQL's
    OperationalError (connection lost, server restarting), an OSError (disk
    full). The receiver retries those with backoff; anything else is a
    property of the input and is quarantined."""
    import sqlite3
    if isinstance(exc, (sqlite3.OperationalError, OSError)):
        return True
    mod = type(exc).__module__ or ""
    if mod.startswith("psycopg"):
        try:
            import psycopg
        except ImportError:  # pragma: no cover
            return False
        return isinstance(exc, (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                                psycopg.errors.DeadlockDetected))
    return False


def _int64(name: str, v: object) -> int | None:
    if v is None:
        return None
    if type(v) is not int:
        raise Unstorable("unstorable", f"{name} {v!r} is not an integer")
    if not INT64_MIN <= v <= INT64_MAX:
        raise Unstorable("out-of-range", f"{name} {v} does not fit a signed 64-bit column")
    return v


MIGRATIONS = [
    # 1: readings and hubs
    [
        """CREATE TABLE readings (
            hub TEXT NOT NULL,
            seq BIGINT NOT NULL,
            epoch BIGINT NOT NULL,
            device TEXT NOT NULL,
            mdc BIGINT NOT NULL,
            prio INTEGER NOT NULL,
            hts BIGINT,
            dts BIGINT,
            unit TEXT,
            reading TEXT NOT NULL,
            received DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hub, seq))""",
        "CREATE INDEX readings_time ON readings (hub, hts)",
        "CREATE INDEX readings_type ON readings (mdc, hub)",
        """CREATE TABLE hubs (
            hub TEXT PRIMARY KEY,
            last_seen DOUBLE PRECISION,
            batches BIGINT NOT NULL DEFAULT 0,
            stored BIGINT NOT NULL DEFAULT 0,
            duplicates BIGINT NOT NULL DEFAULT 0,
            rejected TEXT NOT NULL DEFAULT '{}',
            backlog BIGINT)""",
    ],
    # 2: device records that arrive twice (see the top of this file)
    [
        "ALTER TABLE readings ADD COLUMN devkey TEXT",
        "ALTER TABLE readings ADD COLUMN dup_of TEXT",
        "CREATE UNIQUE INDEX readings_devkey ON readings (devkey)",
        "ALTER TABLE hubs ADD COLUMN refetched BIGINT NOT NULL DEFAULT 0",
    ],
    # 3: authentic records the database cannot hold as readings, kept as they came
    [
        """CREATE TABLE quarantine (
            hub TEXT NOT NULL,
            seq BIGINT NOT NULL,
            epoch BIGINT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            plaintext TEXT NOT NULL,
            received DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hub, seq))""",
        "ALTER TABLE hubs ADD COLUMN quarantined BIGINT NOT NULL DEFAULT 0",
    ],
    # 4: patients and which hub serves whom when (receiver/patients.py); the index the
    # live queries need (receiver/live.py: newest reading of each kind of a hub)
    [
        """CREATE TABLE patients (
            ref TEXT PRIMARY KEY,
            system TEXT NOT NULL,
            value TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            UNIQUE (system, value))""",
        """CREATE TABLE patient_links (
            hub TEXT NOT NULL,
            since BIGINT NOT NULL,
            until BIGINT,
            ref TEXT NOT NULL REFERENCES patients (ref),
            created DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (hub, since))""",
        "CREATE INDEX patient_links_ref ON patient_links (ref)",
    ],
    # 5: one corrected timeline (receiver/timeline.py): the hub's (boot, mono); its UTC from
    # hts or from its clock report (utc_src); the device time corrected (dtc, ms) and how
    [
        "ALTER TABLE readings ADD COLUMN boot BIGINT",
        "ALTER TABLE readings ADD COLUMN mono BIGINT",
        "ALTER TABLE readings ADD COLUMN utc BIGINT",
        "ALTER TABLE readings ADD COLUMN utc_src TEXT CHECK (utc_src IN ('hub', 'clock-report'))",
        "ALTER TABLE readings ADD COLUMN dtc BIGINT",
        "ALTER TABLE readings ADD COLUMN dtc_method TEXT "
        "CHECK (dtc_method IN ('current-time', 'newest-record', 'as-reported', 'hub-receipt'))",
        "ALTER TABLE readings ADD COLUMN dtc_offset BIGINT",
        "UPDATE readings SET utc = hts, utc_src = 'hub' WHERE hts IS NOT NULL",
        "CREATE INDEX readings_boot ON readings (hub, boot, seq)",
        "CREATE INDEX readings_device ON readings (device, mdc, seq)",
        "CREATE INDEX readings_utc ON readings (hub, utc)",
        "CREATE INDEX readings_kind_time ON readings (hub, mdc, utc, seq)",  # receiver/live.py's newest of a kind
        "CREATE INDEX readings_undated ON readings (hub, boot) WHERE utc IS NULL",  # small: waiting for a clock
    ],
    # 6: which hub runs what (receiver/versions.py): the version, slot and update state from the
    # "ota" entry of its status, when it last said so, and its version changes; bounded here too
    [
        "ALTER TABLE hubs ADD COLUMN version TEXT CHECK (length(version) <= 17)",
        "ALTER TABLE hubs ADD COLUMN slot TEXT CHECK (slot IN ('a', 'b', '-'))",
        "ALTER TABLE hubs ADD COLUMN ota_state TEXT CHECK (length(ota_state) <= 16)",
        "ALTER TABLE hubs ADD COLUMN ota_target TEXT CHECK (length(ota_target) <= 17)",
        "ALTER TABLE hubs ADD COLUMN ota_have BIGINT",
        "ALTER TABLE hubs ADD COLUMN ota_n BIGINT",
        "ALTER TABLE hubs ADD COLUMN ota_refused TEXT CHECK (length(ota_refused) <= 16)",
        "ALTER TABLE hubs ADD COLUMN version_at DOUBLE PRECISION",
        """CREATE TABLE hub_versions (
            hub TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL,
            version TEXT NOT NULL CHECK (length(version) <= 17),
            previous TEXT CHECK (length(previous) <= 17))""",
        "CREATE INDEX hub_versions_hub ON hub_versions (hub, since)",
    ],
    # 7: which signed configs a hub runs (receiver/versions.py parse_cfg): the serials of its
    # receiver-key and limits configs and its refusals, from the "cfg" entry of its status
    [
        "ALTER TABLE hubs ADD COLUMN cfg_keys BIGINT",
        "ALTER TABLE hubs ADD COLUMN cfg_limits BIGINT",
        "ALTER TABLE hubs ADD COLUMN cfg_refused BIGINT",
        "ALTER TABLE hubs ADD COLUMN cfg_reason TEXT CHECK (length(cfg_reason) <= 16)",
    ],
    # 8: the firmware image's own version a hub reports beside its application's (receiver/versions.py,
    # the "fv" of its "ota" entry: boards with OTA partitions, docs/ota.md)
    [
        "ALTER TABLE hubs ADD COLUMN firmware TEXT CHECK (length(firmware) <= 17)",
    ],
]

_DEVICE_FIELDS = ("dev", "mdc", "val", "exp", "unit", "dts", "tzo", "rec", "flags", "comp", "period", "ctx")


def devkey(named: Mapping[str, Any]) -> str | None:
    """What identifies a device record whatever hub or seq brought it, from the
    named reading (see _named); None when the device gave neither a record
    number nor its own time stamp (a live heart rate: two equal values are two
    readings). Two measurements of one device with the same time stamp, code
    and value are taken as one: a device time has at least second resolution."""
    if "rec" not in named and "dts" not in named:
        return None
    blob = json.dumps([named.get(k) for k in _DEVICE_FIELDS], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _named(r: Reading) -> dict[str, Any]:
    out = r.named()
    for k, v in list(out.items()):
        if isinstance(v, (bytes, bytearray)):
            out[k] = v.hex()
        elif isinstance(v, float) and v != v:
            out[k] = "NaN"
    return out


class Store:
    """Common SQL over a DB-API connection; `ph` is the parameter placeholder."""

    ph = "?"
    # A devkey stored meanwhile by another receiver is an error (rolled back,
    # not acknowledged, delivered again), not a silently ignored row.
    INSERT = ("INSERT INTO readings (hub, seq, epoch, device, mdc, prio, hts, dts, unit, reading, received, "
              "devkey, dup_of, boot, mono, utc, utc_src) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (hub, seq) DO NOTHING")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.migrate()

    def q(self, sql: str) -> str:
        """sql with this database's placeholder (? for SQLite, %s for PostgreSQL):
        public, as the alerts, timeline and dashboard queries share the store's connection."""
        return sql.replace("?", self.ph)

    def version(self) -> int:
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT max(version) FROM schema_version")
            v = cur.fetchone()[0]
            return v or 0
        except Exception:
            self.conn.rollback()
            return 0

    def migrate(self) -> None:
        v = self.version()
        if v == 0:
            self.conn.cursor().execute("CREATE TABLE IF NOT EXISTS schema_version "
                                       "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)")
        self.apply_migrations("schema_version", MIGRATIONS, v)

    def apply_migrations(self, table: str, migrations: list[list[str]], have: int) -> None:
        """Run the migrations after the first `have`, each recorded in table as (number, when),
        in one commit: the receiver's schema and the alerts' (alerts_db.migrate) advance alike."""
        cur = self.conn.cursor()
        for n, steps in enumerate(migrations, 1):
            if n <= have:
                continue
            for sql in steps:
                cur.execute(sql)
            cur.execute(self.q(f"INSERT INTO {table} VALUES (?, ?)"), (n, time.time()))
        self.conn.commit()

    def prepare(self, seq: int, epoch: int, r: Reading | dict[int, Any]) -> Prepared:
        """The row values of a reading (a samband.reading.Reading, or a hub.reading
        map, typed here), checked before any transaction: every
        integer column within signed 64 bits, the reading expressible as JSON,
        text without NUL (PostgreSQL refuses it). Raises Unstorable: such a
        reading would fail its whole batch in the driver (OverflowError,
        DataError) on every delivery; so does a map that breaks hub.reading's rules."""
        _int64("seq", seq)
        _int64("epoch", epoch)
        if not isinstance(r, Reading):
            try:
                r = Reading.from_map(r)
            except ReadingError as e:
                raise Unstorable("bad-reading", str(e)) from None
        for name, v in (("mdc", r.mdc), ("prio", r.prio), ("hts", r.hts), ("dts", r.dts)):
            _int64(name, v)
        for name, v in zip(("boot", "mono"), r.mono):
            _int64(name, v)
        unit = r.unit
        if unit is not None and (type(unit) is not str or "\0" in unit):
            raise Unstorable("unstorable", "unit is not text without NUL")
        try:
            named = _named(r)
            js = json.dumps(named, separators=(",", ":"))
            key = devkey(named)
        except Exception as e:  # the reading came from a hub: whatever fails here fails on every delivery
            raise Unstorable("unstorable", f"reading cannot be written as JSON: {type(e).__name__}: {e}") from None
        return seq, epoch, r, named, key, js

    def store(self, hub_hex: str, rows: Iterable[tuple[int, int, Reading | dict[int, Any]]],
              rejected: dict[str, int] | None = None, backlog: int | None = None,
              quarantine: Iterable[Quarantined] = ()) -> tuple[int, int]:
        """Insert readings [(seq, epoch, Reading or reading map)] of one hub, and records
        for the quarantine [(seq, epoch, reason, detail, plaintext)], in one
        transaction; returns (stored, duplicates). Committed on return.
        Raises Unstorable (before the transaction) if a reading fails prepare()."""
        return self.store_prepared(hub_hex, [self.prepare(seq, epoch, r) for seq, epoch, r in rows],
                                   rejected, backlog, quarantine)

    def store_prepared(self, hub_hex: str, prepared: list[Prepared], rejected: dict[str, int] | None = None,
                       backlog: int | None = None, quarantine: Iterable[Quarantined] = ()) -> tuple[int, int]:
        """store() of rows that prepare() made (the receiver prepares each
        reading once, to quarantine what it refuses)."""
        try:
            return self._store(hub_hex, prepared, rejected, backlog, quarantine)
        except BaseException:
            self.conn.rollback()
            raise

    def _serialize(self, cur: Any, hub_hex: str) -> None:
        """Make this transaction the only one writing for this hub until it ends.
        SQLite has one writer anyway; PostgresStore overrides it."""

    def _store(self, hub_hex: str, prepared: list[Prepared], rejected: dict[str, int] | None, backlog: int | None,
               quarantine: Iterable[Quarantined] = ()) -> tuple[int, int]:
        now = time.time()
        cur = self.conn.cursor()
        self._serialize(cur, hub_hex)
        rows = prepared
        first = self._first_of([p[4] for p in prepared if p[4] is not None], cur)
        fresh, again = [], []
        for seq, epoch, r, named, key, js in prepared:
            dup_of = None
            if key is not None:
                had = first.get(key)
                if had is None:
                    first[key] = (hub_hex, seq)  # a second copy later in this batch points here
                elif had != (hub_hex, seq):
                    key, dup_of = None, "%s:%d" % had
            row = (hub_hex, seq, epoch, named.get("dev", ""), r.mdc, r.prio, r.hts, r.dts, r.unit,
                   js, now, key, dup_of, r.mono[0], r.mono[1], r.hts, None if r.hts is None else "hub")
            (again if dup_of else fresh).append(row)
        ins = self.q(self.INSERT)
        stored = refetched = 0
        if fresh:
            cur.executemany(ins, fresh)
            stored = max(cur.rowcount, 0)
        if again:
            cur.executemany(ins, again)
            refetched = max(cur.rowcount, 0)
        if fresh:
            timeline.settle(self, cur, hub_hex, [(row[1], row[3], row[13], row[4]) for row in fresh])
        dup = len(rows) - stored
        held = 0
        if quarantine:
            cur.executemany(self.q("INSERT INTO quarantine (hub, seq, epoch, reason, detail, plaintext, received) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hub, seq) DO NOTHING"),
                            [(hub_hex, q, ep, reason, detail[:500], bytes(plain).hex(), now)
                             for q, ep, reason, detail, plain in quarantine])
            held = max(cur.rowcount, 0)
        self._hub(cur, hub_hex, now, stored, dup, rejected, backlog, refetched, held)
        self.conn.commit()
        return stored, dup

    def _first_of(self, keys: list[str], cur: Any) -> dict[str, tuple[str, int]]:
        """{devkey: (hub, seq)} of the stored readings that hold these devkeys."""
        out = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            marks = ",".join("?" * len(part))
            cur.execute(self.q("SELECT devkey, hub, seq FROM readings WHERE devkey IN (%s)" % marks),
                        part)
            for k, h, q in cur.fetchall():
                out[k] = (h, q)
        return out

    def _hub(self, cur: Any, hub_hex: str, now: float, stored: int, dup: int, rejected: dict[str, int] | None,
             backlog: int | None, refetched: int = 0, quarantined: int = 0) -> None:
        cur.execute(self.q("SELECT rejected FROM hubs WHERE hub = ?"), (hub_hex,))
        row = cur.fetchone()
        if row is None:
            cur.execute(self.q("INSERT INTO hubs (hub, rejected) VALUES (?, '{}')"), (hub_hex,))
            counts = {}
        else:
            counts = json.loads(row[0])
        for reason, n in (rejected or {}).items():
            counts[reason] = counts.get(reason, 0) + n
        cur.execute(self.q("UPDATE hubs SET last_seen = ?, batches = batches + 1, stored = stored + ?, "
                            "duplicates = duplicates + ?, refetched = refetched + ?, quarantined = quarantined + ?, "
                            "rejected = ?, backlog = coalesce(?, backlog) WHERE hub = ?"),
                    (now, stored, dup, refetched, quarantined, json.dumps(counts, sort_keys=True), backlog, hub_hex))

    def reject(self, hub_hex: str, reasons: dict[str, int]) -> None:
        """Count refused input of a hub (nothing stored)."""
        cur = self.conn.cursor()
        self._serialize(cur, hub_hex)
        self._hub(cur, hub_hex, time.time(), 0, 0, reasons, None)
        cur.execute(self.q("UPDATE hubs SET batches = batches - 1 WHERE hub = ?"), (hub_hex,))
        self.conn.commit()

    def status(self, hub_hex: str, backlog: int, ota: dict[str, Any] | None = None,
               cfg: dict[str, Any] | None = None) -> None:
        """A hub's own report of its backlog (records not yet acknowledged);
        backlog within signed 64 bits (the receiver's parse_status checks it).
        ota: its "ota" entry as versions.parse_ota made it (running version,
        slot, update state), recorded in the same transaction; cfg: its "cfg" entry
        (versions.parse_cfg: the signed configs it runs), likewise."""
        _int64("backlog", backlog)
        now = time.time()
        try:
            cur = self.conn.cursor()
            self._serialize(cur, hub_hex)
            cur.execute(self.q("SELECT 1 FROM hubs WHERE hub = ?"), (hub_hex,))
            if cur.fetchone() is None:
                cur.execute(self.q("INSERT INTO hubs (hub, rejected, batches) VALUES (?, '{}', 0)"), (hub_hex,))
            cur.execute(self.q("UPDATE hubs SET backlog = ?, last_seen = ? WHERE hub = ?"),
                        (backlog, now, hub_hex))
            if ota is not None:
                from samband.receiver import versions
                versions.record(self, cur, hub_hex, ota, now)
            if cfg is not None:
                from samband.receiver import versions
                versions.record_cfg(self, cur, hub_hex, cfg)
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def have(self, hub_hex: str, seqs: Iterable[int]) -> set[int]:
        """Which of these seqs of a hub are stored."""
        seqs = list(seqs)
        if not seqs:
            return set()
        cur = self.conn.cursor()
        got = set()
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            marks = ",".join("?" * len(part))
            for table in ("readings", "quarantine"):  # a quarantined record is kept: the hub may forget it
                cur.execute(self.q(f"SELECT seq FROM {table} WHERE hub = ? AND seq IN ({marks})"),
                            [hub_hex] + part)
                got.update(r[0] for r in cur.fetchall())
        self.conn.commit()
        return got

    def spans(self, hub_hex: str) -> list[tuple[int, int]]:
        """The stored seqs of a hub as [(first, last)] runs (the receiver's replay state after a restart)."""
        cur = self.conn.cursor()
        cur.execute(self.q("SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS g "
                            "FROM (SELECT seq FROM readings WHERE hub = ? UNION SELECT seq FROM quarantine "
                            "WHERE hub = ?) AS kept) AS runs GROUP BY g ORDER BY 1"), (hub_hex, hub_hex))
        out = [(a, b) for a, b in cur.fetchall()]
        self.conn.commit()
        return out

    def hubs(self) -> list[dict[str, Any]]:
        cur = self.conn.cursor()
        cur.execute("SELECT hub, last_seen, batches, stored, duplicates, rejected, backlog, refetched, quarantined "
                    "FROM hubs ORDER BY hub")
        out = [{"hub": r[0], "last_seen": r[1], "batches": r[2], "stored": r[3], "duplicates": r[4],
                "rejected": json.loads(r[5]), "backlog": r[6], "refetched": r[7], "quarantined": r[8]}
               for r in cur.fetchall()]
        self.conn.commit()
        return out

    def quarantined(self, hub: str | None = None) -> list[dict[str, Any]]:
        """The quarantined records (authentic, never storable as readings), by hub and seq."""
        cur = self.conn.cursor()
        sql = "SELECT hub, seq, epoch, reason, detail, plaintext, received FROM quarantine"
        args = ()
        if hub is not None:
            sql += " WHERE hub = ?"
            args = (hub,)
        cur.execute(self.q(sql + " ORDER BY hub, seq"), args)
        out = [{"hub": r[0], "seq": r[1], "epoch": r[2], "reason": r[3], "detail": r[4], "plaintext": r[5],
                "received": r[6]} for r in cur.fetchall()]
        self.conn.commit()
        return out

    def busy_timeout(self, seconds: float) -> None:
        """How long one statement waits for another writer's lock before it
        fails (transient, retried by the receiver with backoff) instead of
        blocking every hub's batches inside the driver."""
        raise NotImplementedError

    def readings(self, hub: str | None = None, device: str | None = None, mdc: int | None = None,
                 since: int | None = None, until: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Stored readings as dicts (the named reading plus hub, epoch, received), by seq."""
        where, args = ["dup_of IS NULL"], []
        for col, val in (("hub", hub), ("device", device), ("mdc", mdc)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("utc >= ?")
            args.append(since)
        if until is not None:
            where.append("utc < ?")
            args.append(until)
        sql = ("SELECT hub, epoch, reading, received, utc, utc_src, dtc, dtc_method, dtc_offset FROM readings WHERE "
               + " AND ".join(where))
        sql += " ORDER BY hub, seq"
        if limit:
            sql += " LIMIT %d" % int(limit)
        cur = self.conn.cursor()
        cur.execute(self.q(sql), args)
        out = []
        for h, ep, js, rec, utc, src, dtc, method, off in cur.fetchall():
            d = {"hub": h, "epoch": ep}
            d.update(json.loads(js))
            d["received"] = rec
            if utc is not None:  # the corrected timeline (receiver/timeline.py)
                d.update(utc=utc, utc_src=src)
            if dtc is not None:
                d.update(dtc=dtc, dtc_method=method, dtc_offset=off)
            out.append(d)
        self.conn.commit()
        return out

    def count(self, hub: str | None = None) -> int:
        cur = self.conn.cursor()
        if hub is None:
            cur.execute("SELECT count(*) FROM readings WHERE dup_of IS NULL")
        else:
            cur.execute(self.q("SELECT count(*) FROM readings WHERE hub = ? AND dup_of IS NULL"), (hub,))
        n = cur.fetchone()[0]
        self.conn.commit()
        return n

    def close(self) -> None:
        self.conn.close()


class SqliteStore(Store):
    def busy_timeout(self, seconds: float) -> None:
        self.conn.execute("PRAGMA busy_timeout = %d" % int(seconds * 1000))

    def __init__(self, path: str | Path) -> None:
        import sqlite3
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        super().__init__(conn)


class PostgresStore(Store):
    ph = "%s"

    def _serialize(self, cur: Any, hub_hex: str) -> None:
        # Several receivers (a fleet, receiver/fleet.py) may hold batches of one hub at once.
        # Under READ COMMITTED two of them would both insert the hub's first `hubs` row (a
        # unique violation, taken for bad input), add up its counters from the same old
        # row, or both find a device record new; a transaction-scoped advisory lock per
        # hub lets one write at a time (waiting counts against lock_timeout: transient).
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (hub_hex,))

    def busy_timeout(self, seconds: float) -> None:
        cur = self.conn.cursor()
        cur.execute("SET lock_timeout = %d" % int(seconds * 1000))
        self.conn.commit()

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from None
        super().__init__(psycopg.connect(url))


def open_store(url: str | Path, create: bool = True) -> Store:
    """The store at a path, sqlite:///path or postgresql:// URL. create=False
    (queries) refuses a SQLite file that is not there rather than making an
    empty database; a file that is not a database, or a server that does not
    answer, is a StoreError that says which, never a driver traceback."""
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            return PostgresStore(url)
        except StoreError:
            raise
        except Exception as e:  # psycopg.Error: refused, unknown host, bad password, no such database
            why = "; ".join(x.strip() for x in str(e).splitlines() if x.strip()) or type(e).__name__
            raise StoreError(f"cannot open the PostgreSQL database {_redacted(url)}: {why}") from None
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]
    import os
    import sqlite3
    if os.path.isdir(url):
        raise StoreError(f"{url} is a folder, not a database file")
    if not os.path.exists(url):
        if not create:
            raise StoreError(f"no database at {url}")
        parent = os.path.dirname(os.path.abspath(url))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder {parent} for the database: {e.strerror}") from None
    try:
        return SqliteStore(url)
    except sqlite3.OperationalError as e:  # permissions, locked, a read-only folder
        raise StoreError(f"cannot open the database {url}: {e}") from None
    except sqlite3.DatabaseError as e:  # "file is not a database"
        raise StoreError(f"{url} is not a samband database (SQLite: {e})") from None


def _redacted(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit
    try:
        u = urlsplit(url)
        if u.password is None:
            return url
        host = u.hostname or ""
        netloc = f"{u.username}:***@{host}" + (f":{u.port}" if u.port else "")
        return urlunsplit(u._replace(netloc=netloc))
    except ValueError:
        return "the given URL"


def device_infos(store: Store, hub: str | None = None, device: str | None = None) -> dict[str, str]:
    """{device address: its newest information text} from a store (reading field
    info: the Device Information make, model and serial that a hub sends with a
    session's first reading), for the FHIR export's PhdDevice. Newest by receipt;
    a device heard by several hubs: the text stored last. A module function at
    the end of this file, not a Store method, so that it merges beside changes
    to ingest and migrations."""
    where, args = ["reading LIKE ?"], ['%"info":%']
    for col, val in (("hub", hub), ("device", device)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    cur = store.conn.cursor()
    cur.execute(store.q("SELECT device, reading FROM readings WHERE " + " AND ".join(where)
                         + " ORDER BY received, hub, seq"), args)
    out = {}
    for dev, js in cur.fetchall():
        info = json.loads(js).get("info")
        if isinstance(info, str) and info.strip():
            out[dev] = info.strip()
    store.conn.commit()
    return out
