"""The receiver's database: readings by (hub, seq), per-hub status, migrations.

`open_store(url)`: a path or `sqlite:///path` opens SQLite (WAL); a
`postgresql://` URL opens PostgreSQL through psycopg (imported only then).
Both run the same numbered migrations, recorded in `schema_version`.
The primary key (hub, seq) is the durable de-duplication: inserting a
reading that is already there is a no-op and counts as a duplicate.

A device record can also arrive twice under different hub seqs: a hub
that lost power between making a record durable and remembering its
record number fetches it again through RACP, and a meter read by two
hubs (home and ambulance) sends the same records through both. Readings
with a device record number carry `devkey`, a hash of everything the
device said (address, code, value, unit, device time, record number,
flags, context; not the hub's seq, times or priority). The first one is
the reading; a later one is kept as a row with `dup_of` naming it, so
that its (hub, seq) is still known (acknowledged, not refused as a
replay), and it is left out of queries and counts. Rows stored before
migration 2 have no devkey.
"""

import hashlib
import json
import time

from samband.errors import SambandError


class StoreError(SambandError):
    pass


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
]

_DEVICE_FIELDS = ("dev", "mdc", "val", "exp", "unit", "dts", "tzo", "rec", "flags", "comp", "period", "ctx")


def devkey(named):
    """What identifies a device record whatever hub or seq brought it, from the
    named reading (see _named); None without a record number."""
    if "rec" not in named:
        return None
    blob = json.dumps([named.get(k) for k in _DEVICE_FIELDS], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _named(r):
    from hub import reading as rd
    out = rd.to_named(r)
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
              "devkey, dup_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hub, seq) DO NOTHING")

    def __init__(self, conn):
        self.conn = conn
        self.migrate()

    def _q(self, sql):
        return sql.replace("?", self.ph)

    def version(self):
        cur = self.conn.cursor()
        try:
            cur.execute("SELECT max(version) FROM schema_version")
            v = cur.fetchone()[0]
            return v or 0
        except Exception:
            self.conn.rollback()
            return 0

    def migrate(self):
        v = self.version()
        cur = self.conn.cursor()
        if v == 0:
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)")
        for n, steps in enumerate(MIGRATIONS, 1):
            if n <= v:
                continue
            for sql in steps:
                cur.execute(sql)
            cur.execute(self._q("INSERT INTO schema_version VALUES (?, ?)"), (n, time.time()))
        self.conn.commit()

    def store(self, hub_hex, rows, rejected=None, backlog=None):
        """Insert readings [(seq, epoch, reading map)] of one hub in one transaction;
        returns (stored, duplicates). Committed on return."""
        try:
            return self._store(hub_hex, rows, rejected, backlog)
        except BaseException:
            self.conn.rollback()
            raise

    def _store(self, hub_hex, rows, rejected, backlog):
        now = time.time()
        cur = self.conn.cursor()
        prepared = []
        for seq, epoch, r in rows:
            named = _named(r)
            prepared.append((seq, epoch, r, named, devkey(named)))
        first = self._first_of([p[4] for p in prepared if p[4] is not None], cur)
        fresh, again = [], []
        for seq, epoch, r, named, key in prepared:
            dup_of = None
            if key is not None:
                had = first.get(key)
                if had is None:
                    first[key] = (hub_hex, seq)  # a second copy later in this batch points here
                elif had != (hub_hex, seq):
                    key, dup_of = None, "%s:%d" % had
            row = (hub_hex, seq, epoch, named.get("dev", ""), r[2], r.get(12, 0), r.get(8), r.get(6), r.get(5),
                   json.dumps(named, separators=(",", ":")), now, key, dup_of)
            (again if dup_of else fresh).append(row)
        ins = self._q(self.INSERT)
        stored = refetched = 0
        if fresh:
            cur.executemany(ins, fresh)
            stored = max(cur.rowcount, 0)
        if again:
            cur.executemany(ins, again)
            refetched = max(cur.rowcount, 0)
        dup = len(rows) - stored
        self._hub(cur, hub_hex, now, stored, dup, rejected, backlog, refetched)
        self.conn.commit()
        return stored, dup

    def _first_of(self, keys, cur):
        """{devkey: (hub, seq)} of the stored readings that hold these devkeys."""
        out = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            cur.execute(self._q("SELECT devkey, hub, seq FROM readings WHERE devkey IN (%s)" % ",".join("?" * len(part))),
                        part)
            for k, h, q in cur.fetchall():
                out[k] = (h, q)
        return out

    def _hub(self, cur, hub_hex, now, stored, dup, rejected, backlog, refetched=0):
        cur.execute(self._q("SELECT rejected FROM hubs WHERE hub = ?"), (hub_hex,))
        row = cur.fetchone()
        if row is None:
            cur.execute(self._q("INSERT INTO hubs (hub, rejected) VALUES (?, '{}')"), (hub_hex,))
            counts = {}
        else:
            counts = json.loads(row[0])
        for reason, n in (rejected or {}).items():
            counts[reason] = counts.get(reason, 0) + n
        cur.execute(self._q("UPDATE hubs SET last_seen = ?, batches = batches + 1, stored = stored + ?, "
                            "duplicates = duplicates + ?, refetched = refetched + ?, rejected = ?, "
                            "backlog = coalesce(?, backlog) WHERE hub = ?"),
                    (now, stored, dup, refetched, json.dumps(counts, sort_keys=True), backlog, hub_hex))

    def reject(self, hub_hex, reasons):
        """Count refused input of a hub (nothing stored)."""
        cur = self.conn.cursor()
        self._hub(cur, hub_hex, time.time(), 0, 0, reasons, None)
        cur.execute(self._q("UPDATE hubs SET batches = batches - 1 WHERE hub = ?"), (hub_hex,))
        self.conn.commit()

    def status(self, hub_hex, backlog):
        """A hub's own report of its backlog (records not yet acknowledged)."""
        cur = self.conn.cursor()
        cur.execute(self._q("SELECT 1 FROM hubs WHERE hub = ?"), (hub_hex,))
        if cur.fetchone() is None:
            cur.execute(self._q("INSERT INTO hubs (hub, rejected, batches) VALUES (?, '{}', 0)"), (hub_hex,))
        cur.execute(self._q("UPDATE hubs SET backlog = ?, last_seen = ? WHERE hub = ?"), (backlog, time.time(), hub_hex))
        self.conn.commit()

    def have(self, hub_hex, seqs):
        """Which of these seqs of a hub are stored."""
        seqs = list(seqs)
        if not seqs:
            return set()
        cur = self.conn.cursor()
        got = set()
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            cur.execute(self._q("SELECT seq FROM readings WHERE hub = ? AND seq IN (%s)" % ",".join("?" * len(part))),
                        [hub_hex] + part)
            got.update(r[0] for r in cur.fetchall())
        self.conn.commit()
        return got

    def spans(self, hub_hex):
        """The stored seqs of a hub as [(first, last)] runs (the receiver's replay state after a restart)."""
        cur = self.conn.cursor()
        cur.execute(self._q("SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS g "
                            "FROM readings WHERE hub = ?) AS runs GROUP BY g ORDER BY 1"), (hub_hex,))
        out = [(a, b) for a, b in cur.fetchall()]
        self.conn.commit()
        return out

    def hubs(self):
        cur = self.conn.cursor()
        cur.execute("SELECT hub, last_seen, batches, stored, duplicates, rejected, backlog, refetched "
                    "FROM hubs ORDER BY hub")
        out = [{"hub": r[0], "last_seen": r[1], "batches": r[2], "stored": r[3], "duplicates": r[4],
                "rejected": json.loads(r[5]), "backlog": r[6], "refetched": r[7]} for r in cur.fetchall()]
        self.conn.commit()
        return out

    def readings(self, hub=None, device=None, mdc=None, since=None, until=None, limit=None):
        """Stored readings as dicts (the named reading plus hub, epoch, received), by seq."""
        where, args = ["dup_of IS NULL"], []
        for col, val in (("hub", hub), ("device", device), ("mdc", mdc)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        if since is not None:
            where.append("hts >= ?")
            args.append(since)
        if until is not None:
            where.append("hts < ?")
            args.append(until)
        sql = "SELECT hub, epoch, reading, received FROM readings WHERE " + " AND ".join(where)
        sql += " ORDER BY hub, seq"
        if limit:
            sql += " LIMIT %d" % int(limit)
        cur = self.conn.cursor()
        cur.execute(self._q(sql), args)
        out = []
        for h, ep, js, rec in cur.fetchall():
            d = {"hub": h, "epoch": ep}
            d.update(json.loads(js))
            d["received"] = rec
            out.append(d)
        self.conn.commit()
        return out

    def count(self, hub=None):
        cur = self.conn.cursor()
        if hub is None:
            cur.execute("SELECT count(*) FROM readings WHERE dup_of IS NULL")
        else:
            cur.execute(self._q("SELECT count(*) FROM readings WHERE hub = ? AND dup_of IS NULL"), (hub,))
        n = cur.fetchone()[0]
        self.conn.commit()
        return n

    def close(self):
        self.conn.close()


class SqliteStore(Store):
    def __init__(self, path):
        import sqlite3
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        super().__init__(conn)


class PostgresStore(Store):
    ph = "%s"

    def __init__(self, url):
        try:
            import psycopg
        except ImportError:
            raise StoreError("PostgreSQL needs psycopg: pip install 'psycopg[binary]'") from None
        super().__init__(psycopg.connect(url))


def open_store(url):
    url = str(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]
    return SqliteStore(url)
