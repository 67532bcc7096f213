"""Stored readings -> FHIR R4 transaction Bundles per the HL7 Personal Health Device
IG STU2 (hl7.fhir.uv.phd 2.0.0). Pure functions: readings and device information
in (Store.readings(), store.device_infos()), plain dicts out; nothing here reads
a clock, a database or the network, so the same readings always give the same
bundles, byte for byte (docs/fhir.md says what maps to what and why).

Why conditional creates everywhere: a clinical system must see one Observation
per measurement. Every resource carries a stable identifier derived from what it
is (hub unique id, device address, MDC code, device record number and time, or
hub seq), its bundle entry says `ifNoneExist: identifier=<system>|<value>`, and
its temporary `urn:uuid:` is a UUID5 of the same identifier. Exporting the same
readings again, or a device record that reached the receiver through two hubs,
names the same resources, which a server then does not create twice.

Times: the receiver corrects device times at ingest (receiver/timeline.py,
issue 14 item 1): a reading from the store carries `dtc`, its device time
corrected for the device clock's offset (ms UTC), and `utc`, the hub's UTC
(from hts, or from the hub's clock report when its clock was not set yet).
`effective` is the corrected time when there is one, else the device's own time
as reported (fields without a zone read as UTC; with the device's own offset,
local time with that offset), else the hub's UTC. The coincident time stamp
Observation gives the pair the correction came from: the device's Current Time
read by the hub at connection (or its time fault), else the reading whose
device time gave the newest-record offset, else a streamed ECG frame.

One module: what remains here is the mapping of a stored reading to its
Observation and of readings to bundles; the vocabulary (fhir_codes) and the
device and patient identity (fhir_devices) are apart already. Identifiers,
fullUrls, references and times are made in one place on purpose: two exports
of the same readings must name the same resources byte for byte, and that is
one rule to read, not one spread over modules.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from samband.receiver import fhir_codes as C
from samband.receiver.fhir_codes import (  # noqa: F401 - the export's vocabulary, also as fhir.<NAME>
    BTMAC_SYSTEM,
    CATEGORY_SYSTEM,
    CTS_EXT,
    CTS_ID_SYSTEM,
    DATA_ABSENT_EXT,
    DATA_ABSENT_SYSTEM,
    EUI64_SYSTEM,
    GATEWAY_EXT,
    HTEST,
    ID_TYPES,
    OBS_ID_SYSTEM,
    PHD,
    TEST_DEVICE_PREFIX,
    TEST_HUB_PREFIX,
    VITAL_CATEGORY,
)
from samband.receiver.fhir_devices import (  # noqa: F401 - device identity, also as fhir.<name>
    FhirError,
    address_octets,
    coding,
    eui64,
    hub_octets,
    parse_patient,
    patient_resource,
    phd_device,
    phg_device,
    split_info,
)

_NS = uuid.UUID("5d1c3f0e-9a0b-4a43-8a65-73616d62616e")  # UUID5 namespace of this export's fullUrls

# A stored reading as Store.readings() gives it (the named reading plus hub, received, utc, dtc ...),
# and a FHIR resource or bundle as JSON-able data.
Row = dict[str, Any]
Resource = dict[str, Any]
# {(device, record number): (dts, tzo, corrected ms)}: record_times_of().
RecordTimes = dict[tuple[str, int], tuple[int, int | None, int | None]]


class Export:
    """The result of one export: the bundles, how many Observations they hold (of
    them `derived`: glucose sample locations, one more per glucose reading that has
    one), and the readings left out, counted by why (never silently)."""

    def __init__(self) -> None:
        self.bundles = []
        self.observations = 0
        self.derived = 0
        self.skipped = Counter()

    def __repr__(self) -> str:
        return "Export(%d bundles, %d observations, skipped %s)" % (
            len(self.bundles), self.observations, dict(self.skipped))


# ---------------------------------------------------------------- identifiers

def observation_identifier(r: Row) -> str:
    """The conditional-create identifier value of a reading's Observation. A device
    record (it has a record number) is named by the device, code, record number and
    device time, whichever hub brought it; anything else by the hub and its seq,
    which the hub never reuses."""
    mdc = r["mdc"]
    if r.get("rec") is not None:
        return "%s-%d-rec%d-%s" % (eui64(address_octets(r["dev"])), mdc, r["rec"], r.get("dts", "none"))
    return "%s-seq%d-%d" % (eui64(hub_octets(r["hub"])), r["seq"], mdc)


def _full_url(system: str, value: str) -> str:
    return "urn:uuid:%s" % uuid.uuid5(_NS, system + "|" + value)


def _entry(resource: Resource, system: str, value: str, rtype: str) -> Resource:
    return {"fullUrl": _full_url(system, value), "resource": resource,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": "identifier=%s|%s" % (system, value)}}


# ---------------------------------------------------------------- values and times

def decimal_value(val: int, exp: int | None = 0) -> Decimal | int:
    """An integer mantissa and decimal exponent as a Decimal that keeps the device's
    precision (3670, -2 -> 36.70); a positive exponent gives a whole number."""
    d = Decimal(int(val)).scaleb(int(exp or 0))
    return int(d) if (exp or 0) > 0 else d


def absent_reason(val: object, special: object = None) -> str | None:
    """The data-absent-reason code for a value that is not a number, or None for a number."""
    if special is not None:
        return "error"  # NRes (not at this resolution) and reserved: the IG says 'error'
    if isinstance(val, str):
        return C.ABSENT.get(val, "error")
    if isinstance(val, float):
        if val != val:
            return "not-a-number"
        if val in (float("inf"), float("-inf")):
            return "positive-infinity" if val > 0 else "negative-infinity"
        return "error"  # the reading model has no other floats
    if isinstance(val, bool) or not isinstance(val, int):
        return "error"
    return None


def iso_utc(ms: int) -> str:
    """ms since 1970 UTC -> FHIR dateTime with milliseconds and Z."""
    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=int(ms))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def iso_device(dts: int, tzo: int | None = None, extra_ms: int | None = None) -> str:
    """A device time (its clock fields read as UTC, reading.md) as a FHIR dateTime:
    with the device's own UTC offset in minutes when it gave one, else as UTC;
    with milliseconds when extra_ms (ms after dts) is given."""
    t = datetime(1970, 1, 1) + timedelta(seconds=int(dts), milliseconds=int(extra_ms or 0))
    frac = ".%03d" % (t.microsecond // 1000) if extra_ms is not None else ""
    if tzo is None:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
    sign = "-" if tzo < 0 else "+"
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "%s%02d:%02d" % (sign, abs(tzo) // 60, abs(tzo) % 60)


def corrected(r: Row) -> int | None:
    """The device time corrected at ingest (ms UTC), or None where the device's own
    time stands as it said it ("as-reported": written with its own zone offset)."""
    return None if r.get("dtc_method") in (None, "as-reported") else r.get("dtc")


def effective(r: Row, record_times: RecordTimes | None = None) -> dict[str, Any] | None:
    """{"effectiveDateTime": ...} or {"effectivePeriod": ...} of a reading, or None
    when it has neither a device time nor the hub's UTC (a hub that had not set its
    clock: the (boot, mono) -> UTC mapping is not in the store yet). A sample run's
    device time is its last sample's: the period runs from the first to the last.
    record_times: {(device, record number): (dts, tzo)} of the readings exported
    with it, for a glucose context, which has no time of its own: it is the
    measurement's with the same record number (record_times_of)."""
    dts, tzo, dtc = r.get("dts"), r.get("tzo"), corrected(r)
    if dts is None and r.get("rec") is not None and record_times:
        dts, tzo, dtc = record_times.get((r["dev"], r["rec"]), (None, None, None))
    if dtc is not None and dts is not None:  # corrected at ingest: UTC
        if r.get("period") and isinstance(r.get("val"), list):
            end = dtc + ((r.get("ctx") or {}).get("ns", 0) or 0) // 1_000_000
            start = end - (len(r["val"]) - 1) * r["period"] // 1000
            return {"effectivePeriod": {"start": iso_utc(start), "end": iso_utc(end)}}
        return {"effectiveDateTime": iso_utc(dtc)}
    if dts is not None and r.get("period") and isinstance(r.get("val"), list):
        ns = (r.get("ctx") or {}).get("ns", 0) or 0
        end_us = ns // 1000
        start_us = end_us - (len(r["val"]) - 1) * r["period"]
        return {"effectivePeriod": {"start": iso_device(dts, tzo, start_us // 1000),
                                    "end": iso_device(dts, tzo, end_us // 1000)}}
    if dts is not None:
        return {"effectiveDateTime": iso_device(dts, tzo)}
    utc = r.get("utc", r.get("hts"))
    if utc is not None:
        return {"effectiveDateTime": iso_utc(utc)}
    return None


# ---------------------------------------------------------------- codes

def record_times_of(readings: Iterable[Row]) -> RecordTimes:
    """{(device, record number): (dts, tzo, dtc)} of the readings that have a device time."""
    return {(r["dev"], r["rec"]): (r["dts"], r.get("tzo"), corrected(r)) for r in readings
            if r.get("rec") is not None and r.get("dts") is not None}


def code_concept(mdc: int, unit: str | None = None) -> dict[str, Any]:
    """Observation.code: the MDC code, and LOINC codes alongside where there are ones."""
    codings = [coding(mdc)]
    loinc = C.LOINC_BY_UNIT.get(mdc, {}).get(unit)
    loincs = (loinc,) if loinc else C.LOINC_CODES.get(mdc, ())
    codings += [{"system": C.LOINC, "code": x} for x in loincs]
    out = {"coding": codings}
    if mdc in C.MDC_NAMES:
        out["text"] = C.MDC_NAMES[mdc]
    return out


def quantity(value: Decimal | int, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": C.UCUM, "code": unit}


def _absent(code: str) -> dict[str, Any]:
    return {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": code}]}


# ---------------------------------------------------------------- readings -> Observations

def with_derived(readings: Iterable[Row]) -> Iterator[Row]:
    """The readings, each glucose measurement followed by its sample location (ctx
    loc, when it is a defined one) as a reading of its own, marked derived
    (MDC_CTXT_GLU_SAMPLELOCATION): the IG reports it as a coded observation, not
    inside the measurement."""
    for r in readings:
        yield r
        loc = (r.get("ctx") or {}).get("loc")
        if r.get("mdc") in C.GLUCOSE_CONCENTRATIONS and loc in C.SAMPLE_LOCATION:
            d = {k: v for k, v in r.items() if k not in ("ctx", "unit", "exp", "flags", "info")}
            d.update(mdc=C.MDC_CTXT_GLU_SAMPLELOCATION, val=loc, derived=True)
            yield d


def classify(r: Row) -> str | tuple[str, str]:
    """What a reading becomes: 'numeric', 'compound', 'rtsa', 'coded', or ('skip', why)."""
    mdc, val = r.get("mdc"), r.get("val")
    ctx = r.get("ctx") or {}
    if not isinstance(mdc, int) or mdc >> 16 == C.HUB_PARTITION:
        return ("skip", "hub event, not a measurement")
    if mdc == C.MDC_CONC_GLU_CONTROL:
        return ("skip", "glucose control-solution test, not patient data")
    if ctx.get("interim"):
        return ("skip", "intermediate cuff pressure, not a result")
    if isinstance(val, list):
        if r.get("comp") and len(r["comp"]) == len(val) and r.get("unit"):
            return "compound"
        if r.get("period") and r.get("unit") and all(isinstance(v, int) for v in val):
            return "rtsa"
        return ("skip", "list value with no components or sample period")
    if mdc in C.CODED:
        return "coded" if val in C.CODED[mdc] else ("skip", "glucose context value with no MDC code")
    if r.get("unit"):
        return "numeric"
    return ("skip", "no unit and no coded mapping (device status, enumerations)")


def _numeric(obs: Resource, r: Row) -> None:
    why = absent_reason(r["val"], (r.get("ctx") or {}).get("special"))
    if why:
        obs["dataAbsentReason"] = _absent(why)
    else:
        obs["valueQuantity"] = quantity(decimal_value(r["val"], r.get("exp", 0)), r["unit"])
    mod = (r.get("ctx") or {}).get("mod")
    if mod:
        obs["component"] = [{"code": {"coding": [coding(68193)], "text": "Supplemental type"},
                             "valueCodeableConcept": {"coding": [coding(mod)]}}]


def _compound(obs: Resource, r: Row) -> None:
    specials = (r.get("ctx") or {}).get("special")
    comps = []
    for i, (code, v) in enumerate(zip(r["comp"], r["val"])):
        sp = specials[i] if isinstance(specials, list) and i < len(specials) else None
        c = {"code": code_concept(code, r["unit"])}
        why = absent_reason(v, sp)
        if why:
            c["dataAbsentReason"] = _absent(why)
        else:
            c["valueQuantity"] = quantity(decimal_value(v, r.get("exp", 0)), r["unit"])
        comps.append(c)
    obs["component"] = comps


def _rtsa(obs: Resource, r: Row) -> None:
    exp = r.get("exp", 0) or 0
    obs["valueSampledData"] = {
        "origin": {"value": 0, "unit": r["unit"], "system": C.UCUM, "code": r["unit"]},
        "period": Decimal(int(r["period"])).scaleb(-3),  # µs -> ms
        "factor": decimal_value(1, exp) if exp else 1,
        "dimensions": 1,
        "data": " ".join(str(int(v)) for v in r["val"]),
    }


def _coded(obs: Resource, r: Row) -> None:
    obs["valueCodeableConcept"] = {"coding": [coding(C.CODED[r["mdc"]][r["val"]])]}


_PROFILES = {"numeric": "PhdNumericObservation", "compound": "PhdCompoundNumericObservation",
             "rtsa": "PhdRtsaObservation", "coded": "PhdCodedEnumerationObservation"}
_VALUES = {"numeric": _numeric, "compound": _compound, "rtsa": _rtsa, "coded": _coded}


def observation(r: Row, kind: str, refs: Mapping[str, str], test: bool,
                record_times: RecordTimes | None = None) -> Resource:
    """One PHD Observation of a reading. refs: fullUrls of 'gateway', 'device',
    'subject' and, when there is one, 'cts'."""
    meta = {"profile": [PHD + _PROFILES[kind]]}
    if test:
        meta["security"] = [dict(HTEST)]
    ext = [{"url": GATEWAY_EXT, "valueReference": {"reference": refs["gateway"]}}]
    if refs.get("cts"):
        ext.append({"url": CTS_EXT, "valueReference": {"reference": refs["cts"]}})
    category = [{"coding": [{"system": CATEGORY_SYSTEM, "code": "phd"}]}]
    if r["mdc"] in C.VITAL_SIGNS:
        category.append(VITAL_CATEGORY)
    obs = {"resourceType": "Observation", "meta": meta, "extension": ext,
           "identifier": [{"system": OBS_ID_SYSTEM, "value": observation_identifier(r)}],
           "status": "final", "category": category,
           "code": code_concept(r["mdc"], r.get("unit") if kind == "numeric" else None),
           "subject": {"reference": refs["subject"]}}
    obs.update(effective(r, record_times))
    _VALUES[kind](obs, r)
    obs["device"] = {"reference": refs["device"]}
    return obs


def coincident_pair(readings: Sequence[Row], stamps: Iterable[Row] = ()) -> Row | None:
    """The reading that holds the device clock and the hub's UTC at one instant, best
    first: the newest Current Time the hub read from the device at a connection (or
    its time fault; `stamps`: the device's MDC 1024:5 readings, timeline.py); the
    reading whose device time gave its newest-record offset; a streamed sample run
    (ECG), whose device time is its last sample's. Stored records (glucose, CGM) and
    measurements a cuff kept while out of reach carry an old device time, so they
    are no pair by themselves. None when there is no such reading."""
    read = [r for r in stamps if r.get("utc") is not None and r.get("val") in (C.CLOCK_READ, C.CLOCK_FAULT)]
    if read:
        return max(read, key=lambda r: r["utc"])
    best = None
    for r in readings:
        if (r.get("dtc_method") == "newest-record" and r.get("dts") is not None and r.get("utc") is not None
                and r["dts"] * 1000 - r["utc"] == r.get("dtc_offset")):
            if best is None or r["utc"] > best["utc"]:
                best = r
    if best is not None:
        return best
    for r in readings:
        if r.get("period") and r.get("dts") is not None and r.get("hts") is not None:
            if best is None or r["hts"] > best["hts"]:
                best = r
    return best


def coincident_observation(r: Row, device_url: str, gateway_url: str, test: bool) -> Resource:
    """PhdCoincidentTimeStampObservation: the device's clock (value) at the hub's UTC
    (effective); for a device with a time fault (never set), dataAbsentReason."""
    ns = (r.get("ctx") or {}).get("ns", 0) or 0
    o = {"resourceType": "Observation",
         "meta": {"profile": [PHD + "PhdCoincidentTimeStampObservation"]},
         "identifier": [{"system": CTS_ID_SYSTEM, "value": "%s-seq%d" % (eui64(hub_octets(r["hub"])), r["seq"])}],
         "status": "final",
         "code": {"coding": [coding(67975)], "text": "Absolute time clock"},
         "subject": {"reference": device_url},
         "effectiveDateTime": iso_utc(r.get("utc", r.get("hts")))}
    if r.get("mdc") == C.MDC_HUB_DEVICE_CLOCK:
        if r.get("dts") is None:
            o["dataAbsentReason"] = {"coding": [{"system": DATA_ABSENT_SYSTEM, "code": "unknown"}],
                                     "text": "Sensor Time Fault"}
        else:
            o["valueDateTime"] = iso_device(r["dts"], None, (r.get("ctx") or {}).get("ms", 0))
    else:
        o["valueDateTime"] = iso_device(r["dts"], r.get("tzo"), ns // 1_000_000)
    o["device"] = {"reference": gateway_url}
    if test:
        o["meta"]["security"] = [dict(HTEST)]
    return o


# ---------------------------------------------------------------- bundles

def is_test(hub_hex: str, dev: str) -> bool:
    return hub_hex.lower().startswith(TEST_HUB_PREFIX) or str(dev).upper().startswith(TEST_DEVICE_PREFIX)


def export(readings: Sequence[Row], infos: Mapping[str, str] | None = None, patient: tuple[str, str] | None = None,
           test: bool | None = None, max_observations: int = 200) -> Export:
    """Readings (Store.readings() dicts) -> Export: one transaction Bundle per hub and
    per max_observations of its readings. infos: {device address: information text}
    (store.device_infos(store)). A reading's own 'patient' (system, value), which
    patients.attribute sets from the hub's patient links, makes that Patient its
    subject; `patient` is the one for readings without their own; with neither, the
    PhdDevice is the subject. One bundle per hub and patient. test: True/False tags
    everything HTEST or nothing; None tags the data of virtual hubs and emulated devices."""
    infos = infos or {}
    out = Export()
    by_hub = {}
    times = record_times_of(readings)
    stamps = {}
    for r in readings:
        if r.get("mdc") == C.MDC_HUB_DEVICE_CLOCK:
            stamps.setdefault(r["dev"], []).append(r)
    for r in with_derived(readings):
        kind = classify(r)
        if isinstance(kind, tuple):
            out.skipped[kind[1]] += 1
            continue
        if effective(r, times) is None:
            out.skipped["no time: neither a device time nor the hub's UTC"] += 1
            continue
        try:
            eui64(hub_octets(r["hub"]))
            address_octets(r["dev"])
        except FhirError:
            out.skipped["hub id or device address not an EUI-48/EUI-64"] += 1
            continue
        by_hub.setdefault((r["hub"], r.get("patient") or patient), []).append((r, kind))
        out.derived += 1 if r.get("derived") else 0
    for hub_hex, who in sorted(by_hub, key=lambda k: (k[0], tuple(k[1] or ()))):
        rows = by_hub[hub_hex, who]
        for i in range(0, len(rows), max_observations):
            out.bundles.append(_bundle(hub_hex, rows[i:i + max_observations], infos, who, test, times, stamps))
            out.observations += len(rows[i:i + max_observations])
    return out


def _bundle(hub_hex: str, rows: Sequence[tuple[Row, str]], infos: Mapping[str, str], patient: tuple[str, str] | None,
            test: bool | None, times: RecordTimes, stamps: Mapping[str, list[Row]] | None = None) -> Resource:
    entries = []
    hub_test = test if test is not None else any(is_test(hub_hex, r["dev"]) for r, _ in rows)
    subject_url = None
    if patient is not None:
        system, value = patient
        entries.append(_entry(patient_resource(system, value), system, value, "Patient"))
        subject_url = entries[-1]["fullUrl"]
    devices = {}
    for r, _ in rows:
        devices.setdefault(r["dev"], []).append(r)
    dev_entries, refs = [], {}
    for dev, rs in devices.items():
        codes = {r["mdc"] for r in rs} | {c for r in rs for c in (r.get("comp") or ())}
        dev_test = test if test is not None else is_test(hub_hex, dev)
        d = phd_device(dev, codes, infos.get(dev), dev_test)
        sysid = d["identifier"][0]["value"]
        dev_entries.append(_entry(d, EUI64_SYSTEM, sysid, "Device"))
        refs[dev] = {"device": dev_entries[-1]["fullUrl"]}
    gw = phg_device(hub_hex, hub_test)
    entries.append(_entry(gw, EUI64_SYSTEM, gw["identifier"][0]["value"], "Device"))
    gw_url = entries[-1]["fullUrl"]
    entries += dev_entries
    for dev, rs in devices.items():
        refs[dev]["gateway"] = gw_url
        refs[dev]["subject"] = subject_url or refs[dev]["device"]
        pair = coincident_pair(rs, (stamps or {}).get(dev, ()))
        if pair is not None:
            cts = coincident_observation(pair, refs[dev]["device"], gw_url,
                                         test if test is not None else is_test(hub_hex, dev))
            ident = cts["identifier"][0]["value"]
            entries.append(_entry(cts, CTS_ID_SYSTEM, ident, "Observation"))
            refs[dev]["cts"] = entries[-1]["fullUrl"]
    for r, kind in rows:
        ref = refs[r["dev"]]
        if r["mdc"] in C.DEVICE_SUBJECT:  # the device's own state (battery), not the patient's
            ref = dict(ref, subject=ref["device"])
        o = observation(r, kind, ref, test if test is not None else is_test(hub_hex, r["dev"]), times)
        entries.append(_entry(o, OBS_ID_SYSTEM, o["identifier"][0]["value"], "Observation"))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# ---------------------------------------------------------------- JSON

def to_json(obj: object) -> str:
    """JSON text of a bundle, Decimals written as they are (36.70 stays 36.70: the
    json module would make a float of it and lose the device's precision)."""
    import json
    parts = []

    def emit(o: object) -> None:
        if isinstance(o, dict):
            parts.append("{")
            for i, (k, v) in enumerate(o.items()):
                if i:
                    parts.append(",")
                parts.append(json.dumps(k))
                parts.append(":")
                emit(v)
            parts.append("}")
        elif isinstance(o, (list, tuple)):
            parts.append("[")
            for i, v in enumerate(o):
                if i:
                    parts.append(",")
                emit(v)
            parts.append("]")
        elif isinstance(o, Decimal):
            parts.append(str(o))
        else:
            parts.append(json.dumps(o, allow_nan=False))

    emit(obj)
    return "".join(parts)
