"""Which hub runs what (receiver/versions.py, migrations 6 and 7): the "ota" entry of
hub statuses recorded per hub with its version history, its "cfg" entry (the
signed configs it runs) likewise, malformed entries
refused and counted while the backlog still counts, the history bounded, and
`samband hubs` printing it; on SQLite and on PostgreSQL."""

import json

import cbor2
import pytest
from receiver_kit import Depot
from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from samband.cli import main
from samband.receiver import versions
from samband.receiver.ingest import Ingest, parse_status
from samband.receiver.store import open_store
from samband.receiver.versions import BadOta, parse_cfg, parse_ota

A, B = "00005a4d0f01", "00005a4d0f02"


def status(pending, ota=None, **more):
    m = {"pending": pending}
    if ota is not None:
        m["ota"] = ota
    m.update(more)
    return cbor2.dumps(m)


def test_ota_entry_fields_are_typed_and_bounded():
    assert parse_ota({"st": "none", "v": "0.1.0"}) == {
        "version": "0.1.0", "state": "none", "target": None, "slot": None, "have": None, "n": None, "refused": None,
        "firmware": None}
    got = parse_ota({"st": "fetch", "v": "1.2", "to": "65535.65535.65535", "have": 3, "n": 52, "w": [3, 4],
                     "r": "too-old", "s": "b", "later": {"x": 1}})
    assert got == {"version": "1.2", "state": "fetch", "target": "65535.65535.65535", "slot": "b", "have": 3,
                   "n": 52, "refused": "too-old", "firmware": None}
    assert parse_ota({"st": "done", "v": "0.1.0", "fv": "1.1.0"})["firmware"] == "1.1.0"
    bad = [
        [], "0.1.0", {"v": "0.1.0"}, {"st": "none"},
        {"st": "none", "v": 1}, {"st": "none", "v": "01.2"}, {"st": "none", "v": "1.2.3.4"},
        {"st": "none", "v": "1" * 40}, {"st": "none", "v": "65536"}, {"st": "none", "v": ""},
        {"st": "", "v": "1"}, {"st": "x" * 17, "v": "1"}, {"st": "Fetch", "v": "1"}, {"st": "a b", "v": "1"},
        {"st": 3, "v": "1"}, {"st": "fetch", "v": "1", "to": "2.x"}, {"st": "fetch", "v": "1", "have": -1},
        {"st": "fetch", "v": "1", "n": 2 ** 31}, {"st": "fetch", "v": "1", "n": True},
        {"st": "fetch", "v": "1", "n": 1.0},
        {"st": "fetch", "v": "1", "s": "c"}, {"st": "fetch", "v": "1", "s": 1}, {"st": "fetch", "v": "1", "r": "é"},
        {"st": "done", "v": "1", "fv": "v1.25.0"}, {"st": "done", "v": "1", "fv": 1},
        {"st": "done", "v": "1", "fv": "9" * 20},
    ]
    for m in bad:
        with pytest.raises(BadOta):
            parse_ota(m)
    # in a status: a bad ota entry does not cost the backlog; a good one is parsed
    assert parse_status(status(4, {"st": "none", "v": 7})) == {"pending": 4, "ota_error": "ota.v is not a version "
                                                                "text of at most 17 characters"}
    assert parse_status(status(4, {"st": "trial", "v": "0.2.0", "s": "a"}))["ota"]["slot"] == "a"
    assert "ota" not in parse_status(status(4)) and "ota_error" not in parse_status(status(4))


def test_cfg_entry_fields_are_typed_and_bounded():
    assert parse_cfg({"k": 1, "l": 0}) == {"keys": 1, "limits": 0, "refused": None, "reason": None}
    assert parse_cfg({"k": 2 ** 32 - 1, "l": 1764633600, "bad": 3, "r": "replay", "new": 1}) == {
        "keys": 2 ** 32 - 1, "limits": 1764633600, "refused": 3, "reason": "replay"}
    for m in ([], {"k": 1}, {"l": 1}, {"k": -1, "l": 0}, {"k": 2 ** 32, "l": 0}, {"k": True, "l": 0},
              {"k": 1, "l": "2"}, {"k": 1, "l": 2, "bad": -1}, {"k": 1, "l": 2, "r": "Forged"},
              {"k": 1, "l": 2, "r": "x" * 17}):
        with pytest.raises(BadOta):
            parse_cfg(m)
    assert parse_status(status(4, cfg={"k": 1, "l": "x"})) == {"pending": 4, "cfg_error": "cfg.l is not a serial "
                                                                 "0..4294967295"}
    assert parse_status(status(4, cfg={"k": 2, "l": 9}))["cfg"]["limits"] == 9


def exercise(url, monkeypatch):
    depot = Depot([A, B])
    st = open_store(url)
    ing = Ingest(depot.opener(), st)
    assert ing.status(A, status(0)) is not None  # no ota entry (a hub without an update service yet)
    assert versions.fleet(st)[0]["version"] is None and versions.history(st) == []
    ing.status(A, status(1, {"st": "none", "v": "0.1.0"}))
    ing.status(A, status(2, {"st": "fetch", "v": "0.1.0", "to": "0.2.0", "have": 3, "n": 10, "w": [3, 4]}))
    row = versions.fleet(st)[0]
    assert {k: row[k] for k in ("hub", "version", "slot", "ota_state", "ota_target", "ota_have", "ota_n")} == {
        "hub": A, "version": "0.1.0", "slot": None, "ota_state": "fetch", "ota_target": "0.2.0", "ota_have": 3,
        "ota_n": 10}
    assert row["version_at"] == row["last_seen"] and row["version_at"] > 0
    assert [(h["version"], h["previous"]) for h in versions.history(st, A)] == [("0.1.0", None)]
    ing.status(A, status(0, {"st": "trial", "v": "0.2.0", "s": "b"}))  # rebooted into the trial
    ing.status(A, status(0, {"st": "done", "v": "0.2.0", "s": "b"}))
    hist = versions.history(st, A)
    assert [(h["version"], h["previous"]) for h in hist] == [("0.1.0", None), ("0.2.0", "0.1.0")]
    assert hist[0]["since"] < hist[1]["since"]
    before = versions.fleet(st)[0]
    assert (before["version"], before["slot"], before["ota_state"], before["ota_target"]) == ("0.2.0", "b", "done",
                                                                                              None)
    # a board with OTA partitions: its firmware image's own version beside the application's
    ing.status(B, status(0, {"st": "done", "v": "0.1.0", "fv": "1.1.0"}))
    assert {r["hub"]: r["firmware"] for r in versions.fleet(st)} == {A: None, B: "1.1.0"}
    assert "0.1.0 fw 1.1.0" in versions.fleet_table(versions.fleet(st), 0)[2]
    # malformed entries: refused and counted, the backlog still recorded, the version untouched
    for bad in ({"st": "done", "v": "x" * 200}, {"st": "done", "v": "0.3.0", "s": "zz"}, "0.3.0",
                {"st": "done", "v": "0.3.0", "n": -5}):
        assert ing.status(A, status(9, bad)) is not None
    assert ing.counters["bad-ota-status"] == 4 and ing.counters["bad-status"] == 0
    after = versions.fleet(st)[0]
    assert after["version"] == "0.2.0" and after["version_at"] == before["version_at"]
    assert st.hubs()[0]["backlog"] == 9
    # the signed configs it runs: recorded, a malformed entry refused and counted, the record kept
    ing.status(A, status(9, cfg={"k": 2, "l": 1764633600, "bad": 1, "r": "forged"}))
    ing.status(A, status(9, cfg={"k": 3}))
    assert ing.counters["bad-cfg-status"] == 1
    row = versions.fleet(st)[0]
    assert (row["cfg_keys"], row["cfg_limits"], row["cfg_refused"], row["cfg_reason"]) == (2, 1764633600, 1,
                                                                                           "forged")
    # a hub that flips versions keeps HISTORY_MAX rows, the newest
    monkeypatch.setattr(versions, "HISTORY_MAX", 3)
    for v in ("1.0", "1.1", "1.0", "1.2"):
        ing.status(B, status(0, {"st": "none", "v": v}))
    assert [(h["version"], h["previous"]) for h in versions.history(st, B)] == [
        ("1.1", "1.0"), ("1.0", "1.1"), ("1.2", "1.0")]
    assert len(versions.history(st, A)) == 2  # another hub's history is not trimmed
    st.close()
    st = open_store(url)  # re-opened: migrated once, the record kept
    assert [r["version"] for r in versions.fleet(st)] == ["0.2.0", "1.2"]
    st.close()


def test_versions_sqlite(tmp_path, monkeypatch):
    exercise(tmp_path / "r.db", monkeypatch)


def test_versions_postgresql(pg_url, monkeypatch):  # noqa: F811
    exercise(pg_url, monkeypatch)


def test_samband_hubs(tmp_path, capsys):
    db = tmp_path / "r.db"
    st = open_store(db)
    st.status(A, 0, parse_ota({"st": "none", "v": "0.1.0"}))
    st.status(A, 0, parse_ota({"st": "fetch", "v": "0.1.0", "to": "0.2.0", "have": 7, "n": 52, "s": "a"}))
    st.status(B, 5, None, parse_cfg({"k": 2, "l": 0, "bad": 1, "r": "replay"}))
    st.close()
    assert main(["hubs", "--db", str(db)]) in (0, None)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["hub", "version", "slot", "update", "config", "last", "contact"]
    assert lines[1].startswith(A) and "0.1.0" in lines[1] and "fetch -> 0.2.0 7/52" in lines[1]
    assert " a " in lines[1] and "UTC (" in lines[1]
    assert lines[2].startswith(B) and lines[2].split()[1:4] == ["?", "-", "-"]
    assert "keys 2 limits - (1 refused: replay)" in lines[2] and lines[1].split("7/52")[1].split()[0] == "-"
    assert main(["hubs", "--db", str(db), "--json"]) in (0, None)
    rows = json.loads(capsys.readouterr().out)
    assert [(r["hub"], r["version"], r["ota_state"], r["slot"]) for r in rows] == [
        (A, "0.1.0", "fetch", "a"), (B, None, None, None)]
    assert all(isinstance(r["last_seen"], float) for r in rows)
    assert main(["hubs", "--db", str(db), "--history", "--json", "--hub", A.upper()]) in (0, None)
    assert [(r["hub"], r["version"], r["previous"]) for r in json.loads(capsys.readouterr().out)] == [
        (A, "0.1.0", None)]
    assert main(["hubs", "--db", str(db), "--history"]) in (0, None)
    assert capsys.readouterr().out.rstrip().endswith("(first report) -> 0.1.0")
    assert main(["hubs", "--db", str(db), "--hub", A]) == 1
    assert "--hub goes with --history" in capsys.readouterr().err
    assert main(["hubs", "--db", str(tmp_path / "none.db")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
