"""The receiver's database (samband.receiver.store) on SQLite and on PostgreSQL:
migrations (and re-opening a migrated database), de-duplication by
(hub, seq), per-hub status, replay-state runs, queries by hub, device,
type and time. PostgreSQL runs in a throwaway cluster (initdb, a Unix
socket in the test's folder); without initdb/psycopg that case skips
and says why."""

import contextlib
import os
import shutil
import socket
import subprocess

import pytest

from hub import reading as rd
from samband.receiver.store import MIGRATIONS, open_store

A, B = "00005a4d00c7", "00005a4d00c8"
DEV1 = b"\x00\x11\x22\x33\x44\x55\x66"
DEV2 = b"\x01\xaa\xbb\xcc\xdd\xee\xff"


def _pg_bin(name):
    for d in sorted(Path_glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    return shutil.which(name)


def Path_glob(pattern):
    import glob
    return glob.glob(pattern)


@pytest.fixture
def pg_url():
    try:
        with pg_cluster() as url:
            yield url
    except PgUnavailable as e:
        pytest.skip(str(e))


class PgUnavailable(Exception):
    pass


@contextlib.contextmanager
def pg_cluster():
    """A throwaway PostgreSQL cluster (initdb, a Unix socket in a temporary folder,
    fsync off); yields its URL. Raises PgUnavailable (the tests skip, saying why)
    without the server binaries or psycopg. Also used by tests/bench/bench_live.py."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise PgUnavailable("PostgreSQL server binaries not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PgUnavailable("psycopg not installed: pip install 'psycopg[binary]'") from None
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="samband-pg-"))  # not under pytest's 0700 folders: postgres must reach it
    run = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        os.chown(d, _uid("postgres"), -1)
        run = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(run + [initdb, "-D", str(d / "data"), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(run + [pg_ctl, "-D", str(d / "data"), "-w", "-l", str(d / "log"),
                          "-o", f"-p {port} -k {d} -c listen_addresses='' -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@/postgres?host={d}&port={port}"
    finally:
        subprocess.run(run + [pg_ctl, "-D", str(d / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def reading(seq, dev, mdc, val, hts, prio=0):
    return rd.make(seq, dev, mdc, val, [1, seq], unit="mg/dL", hts=hts, prio=prio, rec=seq)


def exercise(url):
    s = open_store(url)
    assert s.version() == len(MIGRATIONS)
    rows = [(q, 3, reading(q, DEV1 if q % 2 else DEV2, 0x2711C if q < 8 else 0x4BB8, 100 + q, 1000 * q,
                           1 if q == 5 else 0)) for q in range(1, 11)]
    assert s.store(A, rows[:6], {"tampered": 1}) == (6, 0)
    assert s.store(A, rows, {"tampered": 2, "replayed": 1}) == (4, 6)  # duplicates ignored
    live = [(q, 3, rd.make(q, DEV2, 0x4BB8, 60, [1, q], hts=1000 * q)) for q in (1, 2)]  # no record number
    assert s.store(B, live) == (2, 0)
    s.status(A, 17)
    s.reject(B, {"forged": 1})
    s.close()

    s = open_store(url)  # re-open: migrations already applied
    assert s.version() == len(MIGRATIONS)
    assert s.count() == 12 and s.count(A) == 10
    st = {h["hub"]: h for h in s.hubs()}
    assert st[A]["stored"] == 10 and st[A]["duplicates"] == 6 and st[A]["backlog"] == 17
    assert st[A]["rejected"] == {"tampered": 3, "replayed": 1} and st[A]["batches"] == 2
    assert st[B]["rejected"] == {"forged": 1} and st[B]["batches"] == 1
    assert s.spans(A) == [(1, 10)]
    got = s.readings(hub=A, device="11:22:33:44:55:66", mdc=0x2711C)
    assert [r["seq"] for r in got] == [1, 3, 5, 7]
    assert got[2]["prio"] == 1 and got[0]["val"] == 101 and got[0]["unit"] == "mg/dL"
    assert [r["seq"] for r in s.readings(hub=A, since=3000, until=6000)] == [3, 4, 5]
    assert s.have(A, [1, 10, 11, 99]) == {1, 10}
    assert len(s.readings(limit=3)) == 3

    # The same device records again under new seqs: fetched again after a
    # power cut (hub A) or read by a second hub (B). Each is kept as a row
    # that names the first, so that its seq is acknowledged, and is left
    # out of readings and counts.
    again = [(100 + q, 4, _rehub(r, 100 + q)) for q, _, r in rows[:3]]
    assert s.store(A, again) == (0, 3)
    assert s.store(B, [(7, 4, _rehub(rows[3][2], 7))]) == (0, 1)
    assert s.store(A, again) == (0, 3)  # and a re-send of those seqs is a plain duplicate
    changed = _rehub(rows[4][2], 200)
    changed[rd.VAL] += 1  # same record number, other content: not the same record
    assert s.store(A, [(200, 4, changed)]) == (1, 0)
    assert s.count() == 13 and s.count(A) == 11 and s.count(B) == 2
    st = {h["hub"]: h for h in s.hubs()}
    assert st[A]["refetched"] == 3 and st[B]["refetched"] == 1
    assert s.have(A, [101, 102, 103]) == {101, 102, 103} and (7, 7) in s.spans(B)
    assert [r["seq"] for r in s.readings(hub=A, device="11:22:33:44:55:66", mdc=0x2711C)] == [1, 3, 5, 7, 200]

    # A reading no signed 64-bit column holds is refused before the
    # transaction; the quarantine keeps the record, and its seq counts as
    # kept (acknowledged, part of the replay state after a restart).
    from samband.receiver.store import Unstorable
    with pytest.raises(Unstorable) as e:
        s.store(A, [(11, 4, reading(11, DEV1, 2 ** 64 - 1, 5, 0))])
    assert e.value.reason == "out-of-range" and s.count(A) == 11
    assert s.store(A, [(12, 4, reading(12, DEV1, 0x2711C, 5, 12000))], {"out-of-range": 1},
                   quarantine=[(11, 4, "out-of-range", "mdc", b"\x01\x02")]) == (1, 0)
    assert s.store(A, [], quarantine=[(11, 4, "out-of-range", "mdc", b"\x01\x02")]) == (0, 0)  # once
    assert [(q["seq"], q["reason"], q["plaintext"]) for q in s.quarantined(A)] == [(11, "out-of-range", "0102")]
    assert {h["hub"]: h for h in s.hubs()}[A]["quarantined"] == 1
    assert s.have(A, [11, 12, 13]) == {11, 12} and s.spans(A)[0] == (1, 12)
    with pytest.raises(Unstorable):
        s.status(A, 2 ** 63)
    # a map given to store() is typed by hub.reading's rules: one that breaks them is refused, not stored
    bad = dict(reading(13, DEV1, 0x2711C, 5, 13000))
    bad[rd.DEV] = b"\x00"
    with pytest.raises(Unstorable) as e:
        s.store(A, [(13, 4, bad)])
    assert e.value.reason == "bad-reading" and "dev" in str(e.value) and s.count(A) == 12
    s.close()


def _rehub(r, seq):
    """The reading as a hub would make it again: new seq, hub times and priority; the device's part unchanged."""
    r = dict(r)
    r[rd.SEQ] = seq
    r[rd.MONO] = [2, seq]
    r[rd.HTS] = r.get(rd.HTS, 0) + 5000
    r.pop(rd.PRIO, None)
    return r


def test_sqlite(tmp_path):
    exercise(str(tmp_path / "r.db"))
    exercise_wal = open_store("sqlite:///" + str(tmp_path / "w.db"))
    assert exercise_wal.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    exercise_wal.close()


def test_postgresql(pg_url):
    exercise(pg_url)


def test_upgrade_keeps_what_was_stored(tmp_path, monkeypatch):
    """A database made by the first schema is migrated in place: its rows stay
    readable, and new device records are de-duplicated from then on."""
    import samband.receiver.store as store
    path = tmp_path / "old.db"
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:1])
    s = open_store(path)
    s.conn.execute("INSERT INTO readings (hub, seq, epoch, device, mdc, prio, reading, received) "
                   "VALUES (?, 1, 3, 'x', 1, 0, '{\"seq\": 1}', 0)", (A,))
    s.conn.commit()
    assert s.version() == 1
    s.close()
    monkeypatch.undo()
    s = open_store(path)
    assert s.version() == len(MIGRATIONS) and s.count(A) == 1 and s.readings(hub=A)[0]["seq"] == 1
    r = reading(2, DEV1, 0x2711C, 120, 2000)
    assert s.store(A, [(2, 3, r)]) == (1, 0) and s.store(B, [(9, 3, _rehub(r, 9))]) == (0, 1)
    s.close()


def test_an_indication_sent_again_is_stored_once(tmp_path):
    """A cuff re-sends a measurement whose confirmation was lost with the link
    after the hub had stored it: no record number, the same device time stamp.
    A new measurement has a later one; a live value without a device time is
    never merged."""
    s = open_store(str(tmp_path / "r.db"))
    cuff = rd.make(1, DEV2, 0x4A05, 128, [1, 1], unit="mmHg", hts=9000, dts=1796205600)
    assert s.store(A, [(1, 4, cuff)]) == (1, 0)
    assert s.store(A, [(2, 4, _rehub(cuff, 2))]) == (0, 1)
    later = _rehub(cuff, 3)
    later[rd.DTS] += 300
    assert s.store(A, [(3, 4, later)]) == (1, 0)
    hr = [(q, 3, rd.make(q, DEV2, 0x4BB8, 60, [1, q], hts=1000)) for q in (4, 5)]
    assert s.store(A, hr) == (2, 0)
    assert s.count(A) == 4 and s.hubs()[0]["refetched"] == 1
