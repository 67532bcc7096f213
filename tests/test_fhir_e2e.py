"""End to end: `make run` (the virtual rig: 7 emulated BLE devices -> virtual hub -> MQTT
over TLS -> receiver database), then `samband fhir --since 10m` prints valid PHD IG
bundles of everything the rig collected, and exporting again prints the same."""

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal

from fhir.resources.R4B.bundle import Bundle
from test_run import KINDS, frames, run_rig

from samband.receiver import fhir as F
from samband.receiver import fhir_check as K
from samband.receiver.store import open_store


def test_the_rigs_readings_export_as_valid_phd_bundles(tmp_path):
    data = tmp_path / "data"
    db = data / "samband" / "samband.db"

    def collected(out):
        f = frames(out)
        if not f or "uplink connected" not in f[-1] or not db.exists():
            return False
        if not all(f"  {k} " in f[-1] for k in KINDS):
            return False
        st = open_store(str(db))
        try:
            codes = Counter(r["mdc"] for r in st.readings())
        finally:
            st.close()
        # a blood pressure, an ECG frame, SpO2, a temperature, a weight, CGM and meter glucose, a meal context
        temperature = sum(codes[c] for c in (150364, 188452, 188428, 188432, 188456, 188424, 188420, 188448, 150392))
        return temperature and all(codes[c] for c in (150020, 131328, 150456, 188736, 160212, 8417864)) and (
            sum(codes[c] for c in (160184, 160188, 160192, 160196)) >= 5)

    run_rig(data, collected)
    st = open_store(str(db))
    readings = st.readings()
    st.close()

    env = dict(os.environ, XDG_DATA_HOME=str(data))
    env.pop("SAMBAND_DB", None)
    p = subprocess.run([sys.executable, "-m", "samband.cli", "fhir", "--since", "10m"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    bundles = [json.loads(line) for line in p.stdout.splitlines()]
    assert bundles, p.stderr
    observations = devices = 0
    seen = Counter()
    for b in bundles:
        Bundle.model_validate(json.loads(json.dumps(b), parse_float=Decimal))
        assert K.bundle_errors(b) == []
        for e in b["entry"]:
            r = e["resource"]
            assert r["meta"]["security"] == [F.HTEST]  # a virtual hub and emulated devices: test data
            profile = r["meta"]["profile"][0].rsplit("/", 1)[1]
            seen[profile] += 1
            if r["resourceType"] == "Observation" and profile != "PhdCoincidentTimeStampObservation":
                observations += 1
            if profile == "PhdDevice":
                devices += 1
    summary = p.stderr.strip().splitlines()[-1]
    assert f"{len(readings)} readings -> {len(bundles)} bundles, {observations} observations" in summary, summary
    derived = int(summary.split(" of them glucose sample locations")[0].rsplit("(", 1)[1]) \
        if "sample locations" in summary else 0
    assert seen["PhdCodedEnumerationObservation"] >= derived
    left_out = sum(int(x.split(" ", 1)[0]) for x in summary.split("left out: ")[1].split(", ") if x[:1].isdigit()) \
        if "left out: " in summary else 0
    assert observations - derived + left_out == len(readings), summary
    assert devices >= len(KINDS)  # every emulated device (once per bundle it has readings in)
    for profile in ("PhgDevice", "PhdNumericObservation", "PhdCompoundNumericObservation", "PhdRtsaObservation",
                    "PhdCodedEnumerationObservation", "PhdCoincidentTimeStampObservation"):
        assert seen[profile], (profile, seen)

    again = subprocess.run([sys.executable, "-m", "samband.cli", "fhir", "--since", "10m"], capture_output=True,
                           text=True, env=env, timeout=120)
    assert again.returncode == 0
    # the same readings name the same resources (a rerun may only add readings stored meanwhile: none, the rig stopped)
    assert again.stdout == p.stdout
