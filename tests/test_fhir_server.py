"""Exported bundles POSTed to a real FHIR R4 server and read back: exporting twice
changes nothing on the server.

The server is Medplum's FHIR router (npm @medplum/fhir-router: the request
handling of the Medplum server -- transactions, conditional create, search) on
its in-memory repository, run by Node (tests/fhir_server/server.cjs). No Java
FHIR server (HAPI) can be installed on these machines: Maven is not reachable.
The npm packages are installed once into build/fhir-server/."""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from host_kit import npm_install
from test_fhir import GLU, HUB, METER, T0, every_bundle_is_valid, every_kind, store_all  # noqa: F401 - a fixture

from samband.cli import main
from samband.receiver import fhir as F
from samband.receiver.fhir_post import created_counts, post_bundle
from samband.receiver.store import device_infos, open_store

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "tests" / "fhir_server"


def _install():
    """build/fhir-server/ with the pinned packages, installed again only when package.json changes."""
    dest = ROOT / "build" / "fhir-server"
    spec = (SRC / "package.json").read_bytes()
    npm_install(dest, spec)
    shutil.copy(SRC / "server.cjs", dest / "server.cjs")
    return dest


@pytest.fixture(scope="module")
def server_dir():
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("needs Node.js and npm (apt-get install nodejs npm) for the FHIR server")
    return _install()


@pytest.fixture
def server(server_dir):
    """A fresh, empty server for each test."""
    dest = server_dir
    major = int(subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()[1:].split(".")[0])
    flags = ["--experimental-websocket"] if major < 22 else []
    p = subprocess.Popen(["node", *flags, "server.cjs"], cwd=dest, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening "), line + p.stderr.read()
        yield "http://127.0.0.1:%d/fhir" % int(line.split()[1])
    finally:
        p.kill()
        p.wait()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def count(base, rtype):
    return len(get(base + "/" + rtype + "?_count=1000").get("entry") or [])


def test_exporting_twice_changes_nothing_on_the_server(tmp_path, server):
    s = open_store(str(tmp_path / "r.db"))
    store_all(s, HUB, every_kind())
    ex = F.export(s.readings(), device_infos(s))
    s.close()
    (b,) = ex.bundles
    first = post_bundle(server, b)
    assert created_counts(first) == (len(b["entry"]), 0)
    counts = {t: count(server, t) for t in ("Device", "Observation")}
    assert counts == {"Device": 7, "Observation": ex.observations + 1}  # hub, 6 sensors; + 1 coincident time stamp
    again = post_bundle(server, b)
    assert created_counts(again) == (0, len(b["entry"]))
    assert {t: count(server, t) for t in ("Device", "Observation")} == counts

    # read back: the server resolved the bundle's urn:uuid references to its own ids
    # the thermometer's reading (no record number: named by hub and seq) is the 10th stored
    ident = F.observation_identifier({"hub": HUB, "dev": "C0:5A:4B:00:00:06/r", "mdc": 150364, "seq": 10})
    q = urllib.parse.quote("%s|%s" % (F.OBS_ID_SYSTEM, ident))
    found = get(server + "/Observation?identifier=" + q)["entry"]
    assert len(found) == 1
    obs = found[0]["resource"]
    assert obs["valueQuantity"]["value"] == 36.7 and obs["valueQuantity"]["code"] == "Cel"
    dev = get(server + "/" + obs["device"]["reference"])
    assert dev["identifier"][1]["value"] == "C0-5A-4B-00-00-06"
    gw = [x for x in obs["extension"] if x["url"] == F.GATEWAY_EXT][0]["valueReference"]["reference"]
    assert get(server + "/" + gw)["identifier"][0]["value"] == "00-00-5A-FF-FE-4D-00-01"


def test_a_record_through_two_hubs_is_one_observation_on_the_server(tmp_path, server):
    rec = (METER, dict(mdc=160184, val=99, unit="mg/dL", dts=T0, rec=5))
    for hub, db in (("00005a4d0002", "a.db"), ("00005a4d0003", "b.db")):  # two receivers' databases
        s = open_store(str(tmp_path / db))
        store_all(s, hub, [rec, (GLU, dict(mdc=160184, val=100 + len(hub), unit="mg/dL", dts=T0, rec=9))])
        for bundle in F.export(s.readings(), device_infos(s)).bundles:
            post_bundle(server, bundle)
        s.close()
    ident = "00-1C-05-FF-FE-00-78-25-160184-rec5-%d" % T0
    q = urllib.parse.quote("%s|%s" % (F.OBS_ID_SYSTEM, ident))
    assert len(get(server + "/Observation?identifier=" + q)["entry"]) == 1
    q = urllib.parse.quote("%s|%s" % (F.EUI64_SYSTEM, "00-1C-05-FF-FE-00-78-25"))
    assert len(get(server + "/Device?identifier=" + q)["entry"]) == 1


def test_the_command_posts_and_says_what_was_new(tmp_path, server, capsys):
    s = open_store(str(tmp_path / "r.db"))
    store_all(s, "00005a4d0009", every_kind()[:6])
    s.close()
    db = str(tmp_path / "r.db")
    assert main(["fhir", "--db", db, "--post", server]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "6 readings -> 1 bundles, 5 observations (1 of them glucose sample locations); posted: 8 created, " \
           "0 already there" in err
    assert main(["fhir", "--db", db, "--post", server]) == 0
    assert "posted: 0 created, 8 already there" in capsys.readouterr().err
