"""FHIR export figures: how fast stored readings become PHD IG bundles, how fast the
profile checker and the fhir.resources R4B models check them, and the bytes per
Observation. A mix like the rig's: glucose records with meal contexts, BP,
SpO2/pulse, temperature, weight and 130 Hz ECG frames (73 samples)."""

import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from benchlib import figure

from hub import reading as R
from samband.receiver import fhir as F
from samband.receiver import fhir_check as K
from samband.receiver.store import device_infos, open_store

N = 2000
T0 = 1_764_633_600


def _items(n):
    dev = lambda k: bytes([1, 0xC0, 0x5A, 0x4B, 0, 0, k])  # noqa: E731
    out = []
    for i in range(n):
        k = i % 8
        if k == 0:
            out.append((dev(1), dict(mdc=160184, val=90 + i % 50, unit="mg/dL", dts=T0 + i, rec=i)))
        elif k == 1:
            out.append((dev(1), dict(mdc=8417864, val=1 + i % 5, rec=i - 1)))
        elif k == 2:
            out.append((dev(4), dict(mdc=150020, val=[120, 80, 93], unit="mm[Hg]", comp=[150021, 150022, 150023],
                                     dts=T0 + i)))
        elif k in (3, 4):
            out.append((dev(5), dict(mdc=150456 if k == 3 else 149530, val=97, unit="%" if k == 3 else "/min")))
        elif k == 5:
            out.append((dev(6), dict(mdc=188424, val=3671, exp=-2, unit="Cel", dts=T0 + i)))
        elif k == 6:
            out.append((dev(7), dict(mdc=188736, val=70100, exp=-3, unit="kg", dts=T0 + i)))
        else:
            out.append((dev(3), dict(mdc=131328, val=list(range(-36, 37)), unit="uV", period=7692, dts=T0 + i,
                                     ctx={"ns": 5_000_000})))
    return out


def main():
    with tempfile.TemporaryDirectory() as d:
        s = open_store(str(Path(d) / "b.db"))
        rows = []
        for i, (dev, kw) in enumerate(_items(N)):
            kw = dict(kw)
            rows.append((i + 1, 1, R.make(i + 1, dev, kw.pop("mdc"), kw.pop("val"), [1, i], hts=T0 * 1000 + i, **kw)))
        s.store("00005a4d0001", rows)
        t = time.perf_counter()
        readings = s.readings()
        infos = device_infos(s)
        t_read = time.perf_counter() - t
        s.close()
    t = time.perf_counter()
    ex = F.export(readings, infos)
    texts = [F.to_json(b) for b in ex.bundles]
    t_export = time.perf_counter() - t
    t = time.perf_counter()
    errs = sum(len(K.bundle_errors(json.loads(x))) for x in texts)
    t_check = time.perf_counter() - t
    from fhir.resources.R4B.bundle import Bundle
    t = time.perf_counter()
    for x in texts:
        Bundle.model_validate(json.loads(x, parse_float=Decimal))
    t_model = time.perf_counter() - t
    figure("fhir readings", N)
    figure("fhir store read (readings + device infos)", t_read * 1000, "ms")
    figure("fhir export to JSON", ex.observations / t_export, "observations/s")
    figure("fhir PHD checker", ex.observations / t_check, "observations/s")
    figure("fhir R4B model parse", ex.observations / t_model, "observations/s")
    figure("fhir bytes per observation (mean, mixed, ECG frames 73 samples)", sum(map(len, texts)) / ex.observations,
           "B")
    figure("fhir checker errors", errs)


if __name__ == "__main__":
    main()
