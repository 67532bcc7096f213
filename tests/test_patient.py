"""Patient links (receiver/patients.py, `samband patient`), the FHIR export's Patient
from them (`samband fhir`, `--patient`, `--latest`) and the live queries for acute
staff (receiver/live.py) on SQLite and on a real PostgreSQL.

The live queries are checked against the same answer worked out in Python from
the readings the test stored: every reading of the patient's hubs while they were
linked, no duplicates, nothing from another patient's interval."""

import json

import pytest
from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from hub import reading as R
from samband.cli import main
from samband.receiver import fhir_check as K
from samband.receiver import live, patients
from samband.receiver.store import open_store

A, B = "00005a4d0001", "00005a4d0002"
CGM = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 2])
BP = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 4])
PLX = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 5])
NID = "urn:oid:2.16.578.1.12.4.1.4.1"
MRN = "https://hospital.example/mrn"
P1, P2 = (NID, "12345678901"), (MRN, "A-778")
H = 3_600_000
T0 = 1_764_633_600_000  # 2025-12-02T00:00:00Z
GLUCOSE, SYS_BP, SPO2 = 160196, 150020, 150456


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "r.db")
    open_store(path).close()
    return path


def put(store, hub, rows):
    """rows: (seq, dev, mdc, val, hts, rec) -> stored, as the receiver stores them."""
    out = []
    for seq, dev, mdc, val, hts, rec in rows:
        kw = {"unit": "mm[Hg]", "comp": [150021, 150022, 150023]} if mdc == SYS_BP else {
            "unit": "mg/dL" if mdc == GLUCOSE else "%"}
        if rec is not None:
            kw["rec"] = rec
            kw["dts"] = hts // 1000
        out.append((seq, 1, R.make(seq, dev, mdc, val, [1, seq], hts=hts, **kw)))
    store.store(hub, out)


def say(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- links

def test_pure_attribution_and_spans():
    links = [{"hub": A, "system": NID, "value": "1", "ref": "r1", "since": 100, "until": 200},
             {"hub": A, "system": MRN, "value": "2", "ref": "r2", "since": 200, "until": None}]
    assert patients.patient_at(links, A, 99) is None
    assert patients.patient_at(links, A, 100) == (NID, "1")
    assert patients.patient_at(links, A, 199) == (NID, "1")
    assert patients.patient_at(links, A, 200) == (MRN, "2")  # the end is exclusive: the move instant is P2's
    assert patients.patient_at(links, B, 150) is None and patients.patient_at(links, A, None) is None
    assert patients.spans(links, 150, 250) == [(A, 150, 200), (A, 200, 250)]
    assert patients.spans(links, 300) == [(A, 300, patients.FOREVER)]
    rows = [{"hub": A, "hts": 150}, {"hub": A, "hts": 250}, {"hub": A}, {"hub": B, "hts": 150}]
    assert patients.attribute(rows, links) == 2
    assert [r.get("patient") for r in rows] == [(NID, "1"), (MRN, "2"), None, None]


def test_link_move_unlink_and_show(db, capsys):
    code, out, _ = say(capsys, "patient", "link", A.upper(), "--system", NID, "--id", P1[1], "--since",
                       str(T0), "--db", db)
    assert code == 0 and out.startswith(f"linked: hub {A}  {NID}|{P1[1]}  2025-12-02T00:00:00Z to now  ref ")
    code, out, _ = say(capsys, "patient", "link", A, "--system", MRN, "--id", P2[1], "--since",
                       "2025-12-03T00:00:00Z", "--db", db)  # the hub moves to the next patient
    assert code == 0
    assert out.splitlines()[0].startswith(f"closed: hub {A}  {NID}|{P1[1]}  2025-12-02T00:00:00Z to "
                                          f"2025-12-03T00:00:00Z")
    assert say(capsys, "patient", "link", B, "--system", NID, "--id", P1[1], "--since", str(T0 + 12 * H),
               "--db", db)[0] == 0  # an ambulance hub for P1 too, at the same time
    code, out, _ = say(capsys, "patient", "show", "--json", "--db", db)
    got = json.loads(out)
    assert [(k["hub"], k["system"], k["value"], k["since"], k["until"]) for k in got] == [
        (A, NID, P1[1], T0, T0 + 24 * H), (A, MRN, P2[1], T0 + 24 * H, None), (B, NID, P1[1], T0 + 12 * H, None)]
    assert got[0]["ref"] == got[2]["ref"] != got[1]["ref"] and len(got[0]["ref"]) == 32  # one opaque ref a patient
    code, out, _ = say(capsys, "patient", "show", "--patient", f"{NID}|{P1[1]}", "--db", db)
    assert [ln.split()[1] for ln in out.splitlines()] == [A, B]
    code, out, _ = say(capsys, "patient", "unlink", B, "--at", str(T0 + 30 * H), "--db", db)
    assert code == 0 and "to 2025-12-03T06:00:00Z" in out
    code, out, _ = say(capsys, "patient", "show", B, "--db", db)
    assert out.count("\n") == 1 and "to now" not in out


@pytest.mark.parametrize("argv, words", [
    (["link", "00005a4d01", "--system", NID, "--id", "1"], ["hub '00005a4d01'", "12 or 16 hex digits"]),
    (["link", A, "--system", "2.16.578.1.12.4.1.4.1", "--id", "1"], ["identifier system", "urn:oid:"]),
    (["link", A, "--system", "urn:oid:2.16.0578", "--id", "1"], ["identifier system"]),
    (["link", A, "--system", "http://x y", "--id", "1"], ["identifier system"]),
    (["link", A, "--system", NID, "--id", " 123"], ["spaces around it"]),
    (["link", A, "--system", NID, "--id", ""], ["empty"]),
    (["link", A, "--system", NID, "--id", "9" * 65], ["65 characters: at most 64"]),
    (["link", A, "--system", NID, "--id", "12\x1b3"], ["control character"]),
    (["link", A, "--system", NID, "--id", "1", "--since", "soon"], ["want a duration like 10m"]),
    (["link", A, "--system", NID, "--id", P1[1]], ["already linked to"]),
    (["link", A, "--system", MRN, "--id", "2", "--since", str(T0)], ["would overlap", "later than"]),
    (["unlink", B], ["not linked to a patient"]),
    (["unlink", A, "--at", str(T0)], ["--at must be after"]),
    (["show", "--patient", "12345678901"], ["want SYSTEM|VALUE"]),
])
def test_refusals_are_one_line_and_change_nothing(db, capsys, argv, words):
    assert say(capsys, "patient", "link", A, "--system", NID, "--id", P1[1], "--since", str(T0 + H),
               "--db", db)[0] == 0
    code, out, err = say(capsys, "patient", *argv, "--db", db)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("samband: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    s = open_store(db)
    assert [(k["hub"], k["value"], k["since"], k["until"]) for k in patients.links(s)] == [(A, P1[1], T0 + H, None)]
    s.close()


def test_a_closed_link_allows_a_later_one_only(db, capsys):
    s = open_store(db)
    patients.link(s, A, *P1, since=T0)
    patients.unlink(s, A, at=T0 + 10 * H)
    with pytest.raises(patients.PatientError, match="from 2025-12-02T10:00:00Z on"):
        patients.link(s, A, *P2, since=T0 + 9 * H)
    new, closed = patients.link(s, A, *P1, since=T0 + 10 * H)  # the same patient again, from the end on
    assert closed is None and new["since"] == T0 + 10 * H
    assert say(capsys, "patient", "show", "--db", str(db) + ".missing")[0] == 1
    s.close()


# ---------------------------------------------------------------- FHIR export

def test_fhir_readings_stay_with_the_patient_of_their_time(db, capsys):
    s = open_store(db)
    patients.link(s, A, *P1, since=T0)
    patients.link(s, A, *P2, since=T0 + 24 * H)  # the hub moved after a day
    put(s, A, [(1, CGM, GLUCOSE, 110, T0 + H, 1), (2, CGM, GLUCOSE, 120, T0 + 25 * H, 2),
               (3, CGM, GLUCOSE, 90, T0 - H, 3)])  # before any link: nobody's
    put(s, A, [(4, BP, SYS_BP, [128, 84, 98], T0 + 23 * H, 1)])  # uploaded after the move, taken before it
    s.close()

    code, out, err = say(capsys, "fhir", "--db", db)
    bundles = [json.loads(ln) for ln in out.splitlines()]
    assert code == 0 and all(K.bundle_errors(b) == [] for b in bundles)
    assert "1 readings of no linked patient (device as subject)" in err
    who = {}
    for b in bundles:
        pats = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"]
        ident = (pats[0]["identifier"][0]["system"], pats[0]["identifier"][0]["value"]) if pats else None
        url = next((e["fullUrl"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient"), None)
        for e in b["entry"]:
            o = e["resource"]
            if o["resourceType"] == "Observation":
                assert (o["subject"]["reference"] == url) if url else o["subject"]["reference"].startswith("urn:")
                who.setdefault(ident, set()).add(o["effectiveDateTime"][:13])
    assert who == {P1: {"2025-12-02T01", "2025-12-02T23"}, P2: {"2025-12-03T01"}, None: {"2025-12-01T23"}}

    code, out, err = say(capsys, "fhir", "--db", db, "--patient", f"{P1[0]}|{P1[1]}")
    assert code == 0 and "2 readings -> 1 bundles" in err
    code, out, err = say(capsys, "fhir", "--db", db, "--patient", f"{MRN}|nobody")
    assert code == 1 and "no hub is linked to https://hospital.example/mrn|nobody" in err
    code, out, err = say(capsys, "fhir", "--db", db, "--latest")
    assert code == 0 and "2 readings -> 2 bundles" in err  # newest glucose (P2's) and newest BP (P1's)
    code, out, err = say(capsys, "fhir", "--db", db, "--latest", "--patient", f"{P1[0]}|{P1[1]}")
    values = sorted(str(e["resource"].get("valueQuantity", {}).get("value")) for ln in out.splitlines()
                    for e in json.loads(ln)["entry"] if e["resource"]["resourceType"] == "Observation")
    assert code == 0 and values == ["110", "None"]  # P1's own newest glucose (not P2's 120) and the BP


# ---------------------------------------------------------------- live queries

def a_week(store):
    """Seven days of CGM every 5 min on hub A and B-side readings, with the
    awkward ones: a record that came twice (through B), a reading without hts.
    Returns every stored reading as (hub, seq, mdc, hts)."""
    kept, rows_a, rows_b = [], [], []
    for i in range(7 * 288):
        t = T0 + i * 300_000
        rows_a.append((i + 1, CGM, GLUCOSE, 100 + i % 50, t, i + 1))
        kept.append((A, i + 1, GLUCOSE, t))
        if i % 72 == 0:
            rows_a.append((100_000 + i, BP, SYS_BP, [120 + i % 9, 80, 93], t + 1000, None))
            kept.append((A, 100_000 + i, SYS_BP, t + 1000))
    for i in range(7 * 24):
        t = T0 + i * H + 7
        rows_b.append((i + 1, PLX, SPO2, 95 + i % 4, t, None))
        kept.append((B, i + 1, SPO2, t))
    rows_b.append((5000, CGM, GLUCOSE, 100 + 2015 % 50, T0 + 2015 * 300_000, 2016))  # A's last record again
    put(store, A, rows_a)
    put(store, B, rows_b)
    store.store(A, [(900_000, 1, R.make(900_000, CGM, GLUCOSE, 101, [2, 1], unit="mg/dL"))])  # no hts
    return kept


def check_live(store):
    kept = a_week(store)
    patients.link(store, A, *P1, since=T0)
    patients.link(store, A, *P2, since=T0 + 5 * 24 * H)  # A moves to P2 on day 5
    patients.link(store, B, *P1, since=T0 + 3 * 24 * H)  # B serves P1 from day 3 on

    def truth(pat, lo, hi):
        spans = {P1: [(A, T0, T0 + 5 * 24 * H), (B, T0 + 3 * 24 * H, 2 ** 63)],
                 P2: [(A, T0 + 5 * 24 * H, 2 ** 63)]}[pat]
        return sorted((t, h, q) for h, q, m, t in kept
                      if any(h == sh and max(sl, lo) <= t < min(shi, hi) for sh, sl, shi in spans))

    now = T0 + 5 * 24 * H + 2 * H  # two hours after the move
    got = live.recent_of(store, P1, now)
    assert [(r["hts"], r["hub"], r["seq"]) for r in got] == truth(P1, now - 24 * H, now + live.AHEAD_MS)
    assert len(got) == 22 * 12 + 3 + 25  # A until the move: 22 h of CGM, 3 BPs; B: SpO2 every hour
    got = live.recent_of(store, P2, now)
    assert [(r["hts"], r["hub"], r["seq"]) for r in got] == truth(P2, now - 24 * H, now + live.AHEAD_MS)
    assert len(got) == 26 + 1  # CGM every 5 min from the move to 10 min past now, and the BP at the move
    assert live.recent_of(store, P2, T0 + 24 * H) == []  # P2 had no hub then

    newest = {}
    for t, h, q in truth(P1, -2 ** 63, 2 ** 63):
        m = next(m for hh, qq, m, tt in kept if (hh, qq) == (h, q))
        newest[m] = max(newest.get(m, (t, h, q)), (t, h, q))
    got = live.latest_of(store, P1)
    assert {r["mdc"]: (r["hts"], r["hub"], r["seq"]) for r in got} == newest
    assert [r["mdc"] for r in got] == sorted(newest)
    assert got[0]["mdc"] == SYS_BP and got[0]["val"] == [120 + 1368 % 9, 80, 93]  # the BP before the move
    got = live.latest_of(store, P2)
    assert [(r["mdc"], r["hub"], r["seq"]) for r in got] == [(SYS_BP, A, 100_000 + 1944), (GLUCOSE, A, 2016)]
    everything = (B, -patients.FOREVER, patients.FOREVER)
    assert [r["mdc"] for r in live.latest(store, [everything])] == [SPO2]  # B's copy of A's record never counts
    with pytest.raises(patients.PatientError, match="no hub is linked"):
        live.latest_of(store, (MRN, "nobody"))


def test_live_queries_sqlite(tmp_path):
    s = open_store(str(tmp_path / "r.db"))
    try:
        check_live(s)
    finally:
        s.close()


def test_live_queries_postgresql(pg_url):  # noqa: F811
    s = open_store(pg_url)
    try:
        check_live(s)
        cur = s.conn.cursor()
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'readings'")
        assert "readings_kind_time" in {r[0] for r in cur.fetchall()}
        s.conn.commit()
    finally:
        s.close()


# ---------------------------------------------------------------- the dashboard's read-only endpoint

def test_dashboard_answers_a_patients_latest_and_recent_readings(tmp_path):
    import dashboard_kit as kit

    from samband.receiver.dashboard import users
    from samband.receiver.dashboard.app import create_app
    db = tmp_path / "r.db"
    s = kit.build(db, cgm_days=2)
    patients.link(s, kit.HUB, *P1, since=kit.T0 * 1000)
    s.close()
    now = kit.T0 + 2 * 86400  # readings' hts are T0 + seq seconds: all 600-odd lie in the first hour
    app = create_app(db, users.load(kit.users_file(tmp_path / "users.toml")), now=lambda: now)
    app.testing = True

    def client(name):
        c = app.test_client()
        assert c.post("/login", data={"name": name, "password": name + "-pw"}).status_code == 302
        return c

    nurse = client("kari")
    r = nurse.get("/api/patient", query_string={"patient": f"{P1[0]}|{P1[1]}", "hours": "48"})
    assert r.status_code == 200, r.data
    got = r.get_json()
    assert got["patient"]["value"] == P1[1] and got["links"] == [{"hub": kit.HUB, "since": kit.T0 * 1000,
                                                                   "until": None}]
    assert [x["mdc"] for x in got["latest"]] == [67996, 131328, 150020, 150364, 150456, 160212, 188736]
    assert got["latest"][2]["val"] == [122, 80, 94]  # the third cuff reading is the newest
    assert len(got["recent"]) == 2 * 288 + kit.ECG_FRAMES + 3 + 3 + 2 + 2 + 1
    assert nurse.get("/api/patient", query_string={"patient": f"{P1[0]}|{P1[1]}"}).get_json()["recent"] == []
    for query, code, words in [({"patient": "12345678901"}, 400, "want SYSTEM|VALUE"),
                               ({"patient": f"{MRN}|nobody"}, 404, "no hub is linked"),
                               ({"patient": f"{P1[0]}|{P1[1]}", "hours": "-1"}, 400, "hours")]:
        r = nurse.get("/api/patient", query_string=query)
        assert r.status_code == code and words in r.get_json()["error"]
    assert app.config["counters"]["bad_request"] == 3
    assert client("tore").get("/api/patient", query_string={"patient": f"{P1[0]}|{P1[1]}"}).status_code == 403
