"""FHIR export (receiver/fhir.py) and the PHD profile checker (receiver/fhir_check.py).

Readings go through the real path the receiver uses: reading maps (hub.reading)
stored in a real SQLite store, read back with Store.readings(); every bundle
produced here parses in fhir.resources (R4B models) and passes the checker.
The checker itself is tried on the IG's own examples (they pass) and on broken
variants of them (they fail, each for the rule broken)."""

import copy
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from hub import reading as R
from samband.cli import main
from samband.receiver import fhir as F
from samband.receiver import fhir_check as K
from samband.receiver.fhir_post import created_counts, post_bundle
from samband.receiver.store import device_infos, open_store

IG = Path(__file__).resolve().parent / "data" / "phd-ig" / "examples"  # the IG's own examples, unchanged

HUB = "00005a4d0001"  # a virtual hub: test data
REAL_HUB = "a4cf12345678"
GLU = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 1])
BP = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 4])
PLX = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 5])
THERMO = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 6])
SCALE = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 7])
POLAR = bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, 3])
METER = bytes([0, 0x00, 0x1C, 0x05, 0x00, 0x78, 0x25])  # a public address, not an emulator's
T0 = 1_764_633_600  # 2025-12-02T00:00:00Z, device clock seconds
HTS = T0 * 1000 + 1500


def every_kind():
    """One of each kind of reading the hub produces, as (device, partial reading)."""
    return [
        (GLU, dict(mdc=160184, val=104, unit="mg/dL", dts=T0 - 3600, rec=42, flags=3, ctx={"loc": 1, "toff": 0},
                   info="Samband Labs GLU-500 GL0042")),
        (GLU, dict(mdc=8417864, val=2, rec=42)),  # meal context (postprandial): no time of its own
        (GLU, dict(mdc=8417884, val=1, dts=T0 - 3600, rec=42)),  # tester: no mapping
        (GLU, dict(mdc=160208, val=120, unit="mg/dL", dts=T0 - 7200, rec=41)),  # control solution
        (BP, dict(mdc=150020, val=[128, 84, 98], unit="mm[Hg]", comp=[150021, 150022, 150023], dts=T0)),
        (BP, dict(mdc=149546, val=72, unit="/min", dts=T0)),
        (BP, dict(mdc=150300, val=140, unit="mm[Hg]", ctx={"interim": True})),
        (PLX, dict(mdc=150456, val=97, unit="%", ctx={"mod": 150588}, dts=T0)),
        (PLX, dict(mdc=149530, val=64, unit="/min", ctx={"mod": 150588}, dts=T0)),
        (THERMO, dict(mdc=150364, val=3670, exp=-2, unit="Cel", dts=T0, tzo=60)),
        (SCALE, dict(mdc=188736, val=7245, exp=-2, unit="kg", dts=T0)),
        (SCALE, dict(mdc=188752, val=231, exp=-1, unit="kg/m2", dts=T0)),
        (POLAR, dict(mdc=131328, val=[-12, 40, 388, 1020, 150], unit="uV", period=7692, dts=T0,
                     ctx={"ns": 250_000_000}, info="Polar Electro Oy H10 C0FFEE")),
        (POLAR, dict(mdc=147842, val=61, unit="/min")),
        (GLU, dict(mdc=(1024 << 16) | 1, val=1)),  # the hub's own event: device silent
        (PLX, dict(mdc=150456, val=float("nan"), unit="%", dts=T0 + 5)),  # NaN from the device
    ]


def store_all(store, hub, items, seq0=1, hts=HTS, boot=1):
    rows = []
    for i, (dev, kw) in enumerate(items):
        kw = dict(kw)
        seq = seq0 + i
        r = R.make(seq, dev, kw.pop("mdc"), kw.pop("val"), [boot, 1000 + i], hts=hts + i if hts else None, **kw)
        rows.append((seq, 1, r))
    store.store(hub, rows)


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "r.db"))
    yield s
    s.close()


@pytest.fixture(autouse=True)
def every_bundle_is_valid(monkeypatch):
    """Every bundle any test here makes (directly or through the command) parses in the
    R4B models from its JSON text and passes the PHD checker."""
    real = F.export

    def checked(*a, **kw):
        ex = real(*a, **kw)
        for b in ex.bundles:
            parsed(b)
            assert K.bundle_errors(b) == []
        checked.bundles += len(ex.bundles)
        return ex

    checked.bundles = 0
    monkeypatch.setattr(F, "export", checked)
    yield checked


def exported(store, **kw):
    return F.export(store.readings(), device_infos(store), **kw)


def parsed(bundle):
    """The bundle through its JSON text, as a server would read it, into the R4B models."""
    text = F.to_json(bundle)
    return Bundle.model_validate(json.loads(text, parse_float=Decimal)), text


def resources(bundle, profile=None):
    out = [e["resource"] for e in bundle["entry"]]
    if profile:
        out = [r for r in out if F.PHD + profile in r.get("meta", {}).get("profile", [])]
    return out


def by_code(bundle, code):
    return [r for r in resources(bundle) if r["resourceType"] == "Observation"
            and any(c.get("code") == str(code) for c in r["code"]["coding"])]


def test_every_kind_of_reading_is_a_valid_phd_bundle(store):
    store_all(store, HUB, every_kind())
    ex = exported(store)
    assert len(ex.bundles) == 1
    b = ex.bundles[0]
    model, text = parsed(b)
    assert model.type == "transaction"
    assert K.bundle_errors(b) == []
    assert ex.observations == 13 and ex.derived == 1  # the glucose reading's sample location
    assert dict(ex.skipped) == {
        "no unit and no coded mapping (device status, enumerations)": 1,
        "glucose control-solution test, not patient data": 1,
        "intermediate cuff pressure, not a result": 1,
        "hub event, not a measurement": 1}

    # the hub as PhgDevice, EUI-64 from its 48-bit id; six sensors as PhdDevice
    phg = resources(b, "PhgDevice")
    assert [i["value"] for i in phg[0]["identifier"]] == ["00-00-5A-FF-FE-4D-00-01"]
    phds = {r["identifier"][1]["value"]: r for r in resources(b, "PhdDevice")}
    assert set(phds) == {"C0-5A-4B-00-00-0%d" % n for n in (1, 3, 4, 5, 6, 7)}
    glu = phds["C0-5A-4B-00-00-01"]
    assert glu["identifier"][0]["value"] == "C0-5A-4B-FF-FE-00-00-01"
    assert (glu["manufacturer"], glu["modelNumber"], glu["serialNumber"]) == ("Samband Labs", "GLU-500", "GL0042")
    polar = phds["C0-5A-4B-00-00-03"]
    assert (polar["manufacturer"], polar["modelNumber"]) == ("Polar Electro Oy", "H10")
    assert {s["systemType"]["coding"][0]["code"] for s in polar["specialization"]} == {"528390", "528425"}
    bp_dev = phds["C0-5A-4B-00-00-04"]
    assert "manufacturer" not in bp_dev and bp_dev["_manufacturer"]["extension"][0]["valueCode"] == "unknown"

    # numeric: glucose with its LOINC (mass unit), device precision kept in the JSON text
    g = by_code(b, 160184)[0]
    assert g["valueQuantity"] == {"value": 104, "unit": "mg/dL", "system": F.C.UCUM, "code": "mg/dL"}
    assert {"system": F.C.LOINC, "code": "41653-7"} in g["code"]["coding"]
    assert g["effectiveDateTime"] == "2025-12-01T23:00:00Z"
    t = by_code(b, 150364)[0]
    assert '"value":36.70,' in F.to_json(t)
    assert t["effectiveDateTime"] == "2025-12-02T00:00:00+01:00"  # the device's own offset
    assert '"value":72.45,' in F.to_json(by_code(b, 188736)[0])
    assert by_code(b, 188752)[0]["valueQuantity"]["code"] == "kg/m2"
    # meal context as a coded enumeration
    meal = by_code(b, 8417864)[0]
    assert meal["valueCodeableConcept"]["coding"][0]["code"] == "8417872"
    assert meal["effectiveDateTime"] == g["effectiveDateTime"]  # the time of its measurement (same record)
    loc = by_code(b, 8417844)[0]  # the measurement's sample location: finger
    assert loc["valueCodeableConcept"]["coding"][0]["code"] == "8417848"
    assert loc["effectiveDateTime"] == g["effectiveDateTime"]
    assert loc["identifier"][0]["value"] == "C0-5A-4B-FF-FE-00-00-01-8417844-rec42-%d" % (T0 - 3600)
    # blood pressure: one compound observation, three components
    bp = by_code(b, 150020)[0]
    assert "valueQuantity" not in bp
    assert [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in bp["component"]] == [
        ("150021", 128), ("150022", 84), ("150023", 98)]
    assert [c["code"]["coding"][1]["code"] for c in bp["component"]] == ["8480-6", "8462-4", "8478-0"]
    # SpO2 with its supplemental type and the vital-signs category; NaN -> dataAbsentReason
    spo2 = [o for o in by_code(b, 150456) if "valueQuantity" in o][0]
    assert spo2["component"][0]["valueCodeableConcept"]["coding"][0]["code"] == "150588"
    assert any(c["coding"][0]["code"] == "vital-signs" for c in spo2["category"])
    nan = [o for o in by_code(b, 150456) if "dataAbsentReason" in o][0]
    assert nan["dataAbsentReason"]["coding"][0]["code"] == "not-a-number"
    # ECG as SampledData: period in ms, the samples as they came; the period spans first..last sample
    ecg = by_code(b, 131328)[0]
    sd = ecg["valueSampledData"]
    assert (str(sd["period"]), sd["data"], sd["origin"]["code"]) == ("7.692", "-12 40 388 1020 150", "uV")
    assert ecg["effectivePeriod"] == {"start": "2025-12-02T00:00:00.219Z", "end": "2025-12-02T00:00:00.250Z"}
    # the coincident time stamp: the strap's clock at the hub's UTC, referenced by its observations
    cts = resources(b, "PhdCoincidentTimeStampObservation")
    assert len(cts) == 1
    assert (cts[0]["effectiveDateTime"], cts[0]["valueDateTime"]) == (
        "2025-12-02T00:00:01.512Z", "2025-12-02T00:00:00.250Z")
    cts_url = [e["fullUrl"] for e in b["entry"] if e["resource"] is cts[0]][0]
    for o in by_code(b, 131328) + by_code(b, 147842):
        assert {"url": F.CTS_EXT, "valueReference": {"reference": cts_url}} in o["extension"]
    assert not any(x["url"] == F.CTS_EXT for x in g["extension"])  # a stored glucose record is no pair
    # every observation: gateway, device, phd category, HTEST (a virtual hub), conditional create
    phg_url = b["entry"][0]["fullUrl"]
    for e in b["entry"]:
        r = e["resource"]
        assert r["meta"]["security"] == [F.HTEST]
        assert e["request"]["ifNoneExist"].startswith("identifier=")
        if r["resourceType"] == "Observation" and "PhdCoincidentTimeStampObservation" not in r["meta"]["profile"][0]:
            assert r["extension"][0] == {"url": F.GATEWAY_EXT, "valueReference": {"reference": phg_url}}
            assert r["identifier"][0]["system"] == F.OBS_ID_SYSTEM


def test_real_hub_data_is_not_tagged_and_a_patient_is_the_subject(store):
    store_all(store, REAL_HUB, [(METER, dict(mdc=160188, val=56, exp=-1, unit="mmol/L", dts=T0, rec=7)),
                                (METER, dict(mdc=67996, val=80, unit="%"))])
    b = exported(store, patient=F.parse_patient("urn:oid:2.16.578.1.12.4.1.4.1|12345678901")).bundles[0]
    assert K.bundle_errors(b) == []
    parsed(b)
    assert all("security" not in e["resource"]["meta"] for e in b["entry"])
    pat = b["entry"][0]
    assert pat["request"]["ifNoneExist"] == "identifier=urn:oid:2.16.578.1.12.4.1.4.1|12345678901"
    o = by_code(b, 160188)[0]
    assert o["subject"] == {"reference": pat["fullUrl"]}
    assert {"system": F.C.LOINC, "code": "14749-6"} in o["code"]["coding"]  # molar unit
    assert '"value":5.6,' in F.to_json(o)
    battery = by_code(b, 67996)[0]  # the device's own state: the device is its subject, not the patient
    assert battery["subject"] == battery["device"]
    # --test forces the tag
    b2 = exported(store, test=True).bundles[0]
    assert all(e["resource"]["meta"]["security"] == [F.HTEST] for e in b2["entry"])
    with pytest.raises(F.FhirError, match="SYSTEM|VALUE"):
        F.parse_patient("12345678901")


def test_reexport_and_a_record_via_two_hubs_name_the_same_resources(store):
    store_all(store, HUB, every_kind())
    first = [F.to_json(b) for b in exported(store).bundles]
    assert [F.to_json(b) for b in exported(store).bundles] == first  # byte for byte
    # the same meter record heard by a second hub (an ambulance) is the same Observation
    store_all(store, "00005a4d0002", [(METER, dict(mdc=160184, val=99, unit="mg/dL", dts=T0, rec=5))], seq0=1)
    store_all(store, HUB, [(METER, dict(mdc=160184, val=99, unit="mg/dL", dts=T0, rec=5))], seq0=100)
    # the store keeps one of the two (devkey); force both through the exporter to see the identifiers agree
    rows = store.readings(device="00:1C:05:00:78:25")
    assert len(rows) == 1
    twin = dict(rows[0], hub="00005a4d0002" if rows[0]["hub"] == HUB else HUB, seq=77)
    a, b = F.export([rows[0]]).bundles[0], F.export([twin]).bundles[0]
    oa, ob = by_code(a, 160184)[0], by_code(b, 160184)[0]
    assert oa["identifier"] == ob["identifier"]
    assert a["entry"][-1]["fullUrl"] == b["entry"][-1]["fullUrl"]
    # a live reading without a record number is named by its hub and seq
    live = dict(rows[0], rec=None, seq=3)
    del live["rec"]
    assert F.observation_identifier(live) == "00-00-5A-FF-FE-4D-00-%02X-seq3-160184" % (1 if live["hub"] == HUB else 2)


def test_a_reading_without_any_time_is_left_out_and_counted(store):
    store_all(store, HUB, [(PLX, dict(mdc=150456, val=95, unit="%"))], hts=None)
    ex = exported(store)
    assert ex.bundles == [] and dict(ex.skipped) == {"no time: neither a device time nor the hub's UTC": 1}


def test_a_reading_with_a_bad_identity_is_left_out_and_counted(store):
    store_all(store, HUB, [(PLX, dict(mdc=150456, val=95, unit="%", dts=T0))])
    good = store.readings()[0]
    odd = [dict(good, dev="not-an-address", seq=2), dict(good, hub="00ff", seq=3), dict(good, hub="xyz", seq=4)]
    ex = F.export([good] + odd)
    assert ex.observations == 1 and K.bundle_errors(ex.bundles[0]) == []
    assert dict(ex.skipped) == {"hub id or device address not an EUI-48/EUI-64": 3}


def test_bundles_are_split_by_hub_and_size(store):
    items = [(PLX, dict(mdc=150456, val=90 + i % 9, unit="%", dts=T0 + i)) for i in range(25)]
    store_all(store, HUB, items)
    # other measurements through the second hub (the same ones would be one device record, stored once)
    store_all(store, REAL_HUB, [(PLX, dict(m, dts=m["dts"] + 1000)) for _, m in items[:3]])
    ex = exported(store, max_observations=10)
    assert [len(by_code(b, 150456)) for b in ex.bundles] == [10, 10, 5, 3]
    # the hub's PhgDevice is the same whatever devices a bundle holds (a server keeps the first one it gets)
    store_all(store, HUB, [(BP, dict(mdc=149546, val=70, unit="/min", dts=T0))], seq0=100)
    a, b = exported(store, max_observations=25).bundles[:2]
    assert resources(a, "PhgDevice") == resources(b, "PhgDevice")
    assert {s["systemType"]["coding"][0]["code"] for s in resources(a, "PhgDevice")[0]["specialization"]} == {
        "528401", "528409", "528388", "528390", "528391", "528392", "528399", "528425"}
    for b in ex.bundles:
        assert K.bundle_errors(b) == []


def test_decimal_values_and_eui64():
    assert str(F.decimal_value(3670, -2)) == "36.70"
    assert F.decimal_value(5, 2) == 500
    assert F.eui64(bytes.fromhex("a4cf12345678")) == "A4-CF-12-FF-FE-34-56-78"
    assert F.eui64(bytes.fromhex("0011223344556677")) == "00-11-22-33-44-55-66-77"
    with pytest.raises(F.FhirError):
        F.eui64(b"\x01\x02")
    assert F.split_info("Samband Labs GLU-500 GL1") == ("Samband Labs", "GLU-500", "GL1")
    assert F.split_info("H10") == (None, None, None)
    assert F.absent_reason(float("inf")) == "positive-infinity"
    assert F.absent_reason(5, "NRes") == "error"


# ---------------------------------------------------------------- the checker on the IG's examples

def ig(name):
    return json.loads((IG / name).read_text(encoding="utf-8"))


IG_EXAMPLES = sorted(p.name for p in IG.glob("*.json"))
assert len(IG_EXAMPLES) == 29, IG


@pytest.mark.parametrize("name", IG_EXAMPLES)
def test_the_igs_own_examples_pass_the_checker(name):
    res = ig(name)
    if res["resourceType"] == "Bundle":
        errs = K.bundle_errors(res)
        if name == "bundle-example-1.json":
            # The IG example's Patient says urn:oid:2.999... but its ifNoneExist urn:oid:2.9991...: a typo
            # that a server would answer with a second Patient. Its resources themselves pass.
            assert errs == ["Bundle: entry[0].request.ifNoneExist: "
                            "'identifier=urn:oid:2.9991.2.3.4.5.6.7.8.10|sisansarahId' names no identifier of the "
                            "resource"]
        else:
            assert errs == []
        Bundle.model_validate(res)
    else:
        assert K.errors(res) == []


def _broken(name, change):
    res = copy.deepcopy(ig(name))
    change(res)
    return K.errors(res)


BROKEN = [
    ("glucose-observation.json", lambda r: r.__setitem__("extension", r["extension"][1:]),
     "extension[GatewayDevice]: want exactly 1, got 0"),
    ("glucose-observation.json", lambda r: r["category"][0]["coding"][0].__setitem__("code", "vital"),
     "category[PHD-Observation]"),
    ("glucose-observation.json", lambda r: r.pop("device"), "device: required"),
    ("glucose-observation.json", lambda r: r.pop("subject"), "subject.reference: required"),
    ("glucose-observation.json", lambda r: r.pop("effectiveDateTime"), "effective[x]: required"),
    ("glucose-observation.json", lambda r: r.__setitem__("status", "done"), "status"),
    ("glucose-observation.json", lambda r: r["valueQuantity"].__setitem__("system", "http://unitsofmeasure.com"),
     "valueQuantity.system"),
    ("glucose-observation.json", lambda r: r.__setitem__("valueString", "99"), "valueString: not allowed"),
    ("glucose-observation.json", lambda r: r.__setitem__("dataAbsentReason", F._absent("error")), "obs-6"),
    ("meal-context-observation.json", lambda r: r["identifier"][0].__setitem__("type", {"text": "x"}),
     "identifier[conditionalCreate].type"),
    ("compound-numeric-blood-pressure.json", lambda r: r.__setitem__("valueQuantity", {"value": 1}),
     "valueQuantity: not allowed"),
    ("compound-numeric-blood-pressure.json", lambda r: r["component"][0]["code"].__setitem__("coding", []),
     "component[compound][0].code.coding[MdcType]"),
    ("rtsa-example-2.json", lambda r: r["valueSampledData"].__setitem__("data", "1 2 E 4"), "no E/L/U"),
    ("rtsa-example-2.json", lambda r: r["valueSampledData"].pop("factor"), "valueSampledData.factor"),
    ("rtsa-example-2.json", lambda r: r["valueSampledData"]["origin"].pop("code"), "origin.code"),
    ("coin-example-1.json", lambda r: r.__setitem__("status", "preliminary"), "status: fixed to final"),
    ("coin-example-1.json", lambda r: r["code"]["coding"][0].__setitem__("code", "150020"), "MDCClockTypes"),
    ("coin-example-1.json", lambda r: r.__setitem__("derivedFrom", [{"reference": "Observation/x"}]), "derivedFrom"),
    ("phd-00601900010E9234.F45EABA80832.json", lambda r: r.pop("manufacturer"), "manufacturer: required"),
    ("phd-00601900010E9234.F45EABA80832.json", lambda r: r.__setitem__("specialization", []),
     "specialization[MDCType]"),
    ("phd-00601900010E9234.F45EABA80832.json", lambda r: r["type"]["coding"][0].__setitem__("code", "531981"),
     "type.coding[PhdCode]"),
    ("phd-00601900010E9234.F45EABA80832.json", lambda r: r["identifier"][0].__setitem__("system", "urn:oid:1.2"),
     "identifier[systemIdIdentifier].system"),
    ("phg-example.json", lambda r: r["type"]["coding"][0].__setitem__("code", "65573"), "fixed to 531981"),
    ("phg-example.json", lambda r: r.__setitem__("version", []), "version[MDCType]"),
]


@pytest.mark.parametrize("name,change,expect", BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_variants_of_the_examples_fail_the_checker(name, change, expect):
    errs = _broken(name, change)
    assert any(expect in e for e in errs), errs


def test_checker_catches_bundle_defects(store):
    store_all(store, HUB, every_kind()[:2])
    b = exported(store).bundles[0]
    assert K.bundle_errors(b) == []
    b["entry"][-1]["request"]["ifNoneExist"] = "identifier=%s|something-else" % F.OBS_ID_SYSTEM
    b["entry"][-1]["resource"]["device"]["reference"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    errs = K.bundle_errors(b)
    assert any("names no identifier" in e for e in errs) and any("is not in the bundle" in e for e in errs)


# ---------------------------------------------------------------- the command and POST

class _Server:
    """A real HTTP server on a local port answering POSTs from a script of (status, body)."""

    def __init__(self, script):
        self.script, self.got, self.auth = list(script), [], []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                outer.auth.append(self.headers.get("Authorization"))
                status, body = outer.script.pop(0) if outer.script else (500, b"{}")
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/fhir" % self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_post_retries_a_busy_server_and_reports_a_refusal_in_one_line(store):
    store_all(store, HUB, every_kind()[:1])
    b = exported(store).bundles[0]
    answer = json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "201 Created"}}, {"response": {"status": "200 OK"}}]}).encode()
    srv = _Server([(503, b"busy"), (429, b""), (200, answer)])
    pauses = []
    try:
        resp = post_bundle(srv.url, b, sleep=pauses.append)
        assert created_counts(resp) == (1, 1)
        assert len(srv.got) == 3 and srv.got[0] == json.loads(F.to_json(b))
        assert pauses == [1.0, 2.0]
    finally:
        srv.close()
    oo = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": "Device.identifier: bad"}]}).encode()
    srv = _Server([(400, oo)])
    try:
        with pytest.raises(F.FhirError, match=r"refused the bundle \(HTTP 400: Device.identifier: bad\)"):
            post_bundle(srv.url, b, sleep=pauses.append)
        assert len(srv.got) == 1  # a refusal is not retried
    finally:
        srv.close()


def test_cli_posts_with_the_authorization_from_a_file(store, tmp_path, capsys):
    store_all(store, HUB, every_kind()[:1])
    answer = json.dumps({"resourceType": "Bundle", "type": "transaction-response",
                         "entry": [{"response": {"status": "201"}}] * 3}).encode()
    (tmp_path / "auth").write_text("Bearer s3cret\n")
    srv = _Server([(200, answer)])
    try:
        assert main(["fhir", "--db", str(tmp_path / "r.db"), "--post", srv.url,
                     "--authorization-file", str(tmp_path / "auth")]) == 0
        assert srv.auth == ["Bearer s3cret"]
        assert "posted: 3 created, 0 already there" in capsys.readouterr().err
    finally:
        srv.close()
    # a server that goes away after the first bundle: the error says how far the export got
    answer1 = json.dumps({"resourceType": "Bundle", "type": "transaction-response",
                          "entry": [{"response": {"status": "201"}}] * 8}).encode()
    store_all(store, "00005a4d0002", [(PLX, dict(mdc=150456, val=95, unit="%", dts=T0))])
    srv = _Server([(200, answer1)] + [(503, b"down")] * 2)
    try:
        assert main(["fhir", "--db", str(tmp_path / "r.db"), "--post", srv.url, "--tries", "2",
                     "--authorization-file", str(tmp_path / "auth")]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("samband: bundle 2 of 2: could not POST")
        assert "HTTP 503: down; 1 posted before it (8 resources created); posting again is safe" in err
    finally:
        srv.close()
    (tmp_path / "auth").write_text("s3cret")
    assert main(["fhir", "--db", str(tmp_path / "r.db"), "--post", "http://127.0.0.1:9/",
                 "--authorization-file", str(tmp_path / "auth")]) == 1
    assert "want one line like 'Bearer <token>'" in capsys.readouterr().err


def test_cli_writes_bundles_to_stdout_and_files(store, tmp_path, capsys):
    store_all(store, HUB, every_kind())
    db = str(tmp_path / "r.db")
    assert main(["fhir", "--db", db]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 and K.bundle_errors(json.loads(lines[0])) == []
    assert ("16 readings -> 1 bundles, 13 observations (1 of them glucose sample locations); "
            "left out: 1 glucose control-solution") in err
    assert main(["fhir", "--db", db, "--out", str(tmp_path / "out"), "--device", "C0:5A:4B:00:00:04/r"]) == 0
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["bundle-0001.json"]
    b = json.loads(files[0].read_text())
    assert {o["code"]["coding"][0]["code"] for o in resources(b) if o["resourceType"] == "Observation"} == {
        "150020", "149546"}
    assert main(["fhir", "--db", db, "--since", "10m"]) == 0  # the readings are from 2025: none
    assert capsys.readouterr().out == ""
    assert main(["fhir", "--db", str(tmp_path / "none.db")]) == 1
    assert "no database at" in capsys.readouterr().err
    assert main(["fhir", "--db", db, "--since", "yesterday"]) == 1
    assert "want a duration like 10m" in capsys.readouterr().err


def test_parse_when():
    from samband.cli.fhir import parse_when
    now = 1_800_000_000_000
    assert parse_when("10m", now) == now - 600_000
    assert parse_when("2h", now) == now - 7_200_000
    assert parse_when("1700000000000", now) == 1_700_000_000_000
    assert parse_when("2026-12-01T10:00:00Z", now) == parse_when("2026-12-01T10:00:00", now) == 1_796_119_200_000
