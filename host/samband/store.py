"""The receiver's database: readings by (hub, seq), per-hub status, migrations.

`open_store(url)`: a path or `sqlite:///path` opens SQLite (WAL); a
`postgresql://` URL opens PostgreSQL through psycopg (imported only then).
Both run the same numbered migrations, recorded in `schema_version`.
The primary key (hub, seq) is the durable de-duplication: inserting a
reading that is already there is a no-op and counts as a duplicate.
"""

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
]


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
        now = time.time()
        cur = self.conn.cursor()
        stored = 0
        ins = self._q(self.INSERT)
        for seq, epoch, r in rows:
            named = _named(r)
            cur.execute(ins, (hub_hex, seq, epoch, named.get("dev", ""), r[2], r.get(12, 0),
                              r.get(8), r.get(6), r.get(5), json.dumps(named, separators=(",", ":")), now))
            stored += max(cur.rowcount, 0)
        dup = len(rows) - stored
        self._hub(cur, hub_hex, now, stored, dup, rejected, backlog)
        self.conn.commit()
        return stored, dup

    def _hub(self, cur, hub_hex, now, stored, dup, rejected, backlog):
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
                            "duplicates = duplicates + ?, rejected = ?, backlog = coalesce(?, backlog) "
                            "WHERE hub = ?"),
                    (now, stored, dup, json.dumps(counts, sort_keys=True), backlog, hub_hex))

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
        cur.execute("SELECT hub, last_seen, batches, stored, duplicates, rejected, backlog FROM hubs ORDER BY hub")
        out = [{"hub": r[0], "last_seen": r[1], "batches": r[2], "stored": r[3], "duplicates": r[4],
                "rejected": json.loads(r[5]), "backlog": r[6]} for r in cur.fetchall()]
        self.conn.commit()
        return out

    def readings(self, hub=None, device=None, mdc=None, since=None, until=None, limit=None):
        """Stored readings as dicts (the named reading plus hub, epoch, received), by seq."""
        where, args = [], []
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
        sql = "SELECT hub, epoch, reading, received FROM readings"
        if where:
            sql += " WHERE " + " AND ".join(where)
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
            cur.execute("SELECT count(*) FROM readings")
        else:
            cur.execute(self._q("SELECT count(*) FROM readings WHERE hub = ?"), (hub,))
        n = cur.fetchone()[0]
        self.conn.commit()
        return n

    def close(self):
        self.conn.close()


class SqliteStore(Store):
    INSERT = ("INSERT OR IGNORE INTO readings (hub, seq, epoch, device, mdc, prio, hts, dts, unit, reading, received) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def __init__(self, path):
        import sqlite3
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        super().__init__(conn)


class PostgresStore(Store):
    ph = "%s"
    INSERT = ("INSERT INTO readings (hub, seq, epoch, device, mdc, prio, hts, dts, unit, reading, received) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hub, seq) DO NOTHING")

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
