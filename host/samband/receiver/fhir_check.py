"""A checker of the HL7 PHD IG STU2 profiles: required elements, cardinalities,
fixed values and the bindings that matter, written from the IG's FSH
(shared/reference/phd-ig/profiles/StructureDefinition.*.fsh; each rule names
its profile and element).

Why our own: no validator that knows the PHD profiles runs offline here (the
HL7 Java validator and the IG package must be downloaded), and fhir.resources
(R4B models) checks the base types and cardinalities only, not profiles, fixed
values or code bindings (it accepts status "done"). This checker is run on every
bundle the tests produce, and on the IG's own examples, which must pass.

check(resource) -> [Problem]; a Problem with warning=True (the IG's warning
invariants, mdc-1) does not make a resource fail. errors(resource) lists only
the failures, as 'Profile: element: what is wrong' strings.

One module: one checker, one method per IG profile (named as the profile),
built on shared base rules (base_observation, quantity, identifiers,
absent); a profile's rules read next to the base rules they extend, as the
IG's FSH is organised. Split per profile, the shared rules would become a
public interface that every part imports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from samband.receiver import fhir as F
from samband.receiver import fhir_codes as C

MEASUREMENT_STATUS = "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status"
OBS_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
              "unknown"}
CLOCK_TYPES = {"67975", "68226", "67983", "68072"}  # ValueSet MDCClockTypes
DEVICE_TYPES = {  # ValueSet DeviceTypes11073MDC
    "528385", "528384", "528388", "528390", "528391", "528392", "528397", "528399", "528401", "528402",
    "528403", "528404", "528405", "528406", "528408", "528409", "528412", "528413", "528425", "528426",
    "528455", "528456", "528457", "528484", *(str(c) for c in range(528501, 528515)), "528524", "528525",
    "528532", "528533", "528534", "528535", "528536"}
VERSION_TYPES = {"531974", "531975", "531976", "531977", "532352", "67912"}  # ValueSet MDCDeviceVersionTypes
ETHMAC_SYSTEM = "http://hl7.org/fhir/sid/eui-48/ethernet"
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")

BASE_KINDS = {"PhdNumericObservation", "PhdCompoundNumericObservation", "PhdCompoundObservation",
              "PhdRtsaObservation", "PhdCodedEnumerationObservation", "PhdBitsEnumerationObservation",
              "PhdStringObservation"}
KNOWN = BASE_KINDS | {"PhdCoincidentTimeStampObservation", "PhdDevice", "PhgDevice", "PhdPatient", "PhdDeviceMetric"}


class Problem:
    def __init__(self, profile: str, path: str, what: str, warning: bool = False) -> None:
        self.profile, self.path, self.what, self.warning = profile, path, what, warning

    def __str__(self) -> str:
        return "%s: %s: %s%s" % (self.profile, self.path, self.what, " (warning)" if self.warning else "")

    __repr__ = __str__


def profiles_of(res: dict[str, Any]) -> list[str]:
    """The PHD profile names a resource claims in meta.profile (version suffix dropped)."""
    out = []
    for url in (res.get("meta") or {}).get("profile") or []:
        url = url.split("|", 1)[0]
        if url.startswith(F.PHD):
            out.append(url[len(F.PHD):])
    return out


def check(res: dict[str, Any]) -> list[Problem]:
    """Every Problem of one resource against each PHD profile it claims."""
    probs = []
    names = profiles_of(res)
    if not names:
        return [Problem(res.get("resourceType", "?"), "meta.profile", "claims no PHD IG profile")]
    for name in names:
        if name not in KNOWN:
            probs.append(Problem(name, "meta.profile", "not a PHD IG profile this checker knows"))
            continue
        p = _Checker(name, res)
        if name in BASE_KINDS:
            p.base_observation()
            getattr(p, name)()
        else:
            getattr(p, name)()
        probs += p.problems
    return probs


def errors(res: dict[str, Any]) -> list[str]:
    return [str(p) for p in check(res) if not p.warning]


def check_bundle(bundle: dict[str, Any]) -> list[Problem]:
    """Problems of a transaction bundle: its own structure (entries, requests,
    conditional creates that match the resource's identifier, urn:uuid references
    that resolve inside it) and of every resource in it."""
    probs = []
    b = "Bundle"
    if bundle.get("resourceType") != "Bundle":
        return [Problem(b, "resourceType", "not a Bundle")]
    if bundle.get("type") != "transaction":
        probs.append(Problem(b, "type", "want transaction, got %r" % bundle.get("type")))
    urls = {e.get("fullUrl") for e in bundle.get("entry") or []}
    for i, e in enumerate(bundle.get("entry") or []):
        where = "entry[%d]" % i
        res, req = e.get("resource"), e.get("request") or {}
        if not e.get("fullUrl"):
            probs.append(Problem(b, where + ".fullUrl", "missing"))
        if not isinstance(res, dict):
            probs.append(Problem(b, where + ".resource", "missing"))
            continue
        if req.get("method") not in ("POST", "PUT"):
            probs.append(Problem(b, where + ".request.method", "want POST or PUT, got %r" % req.get("method")))
        if req.get("url") != res.get("resourceType") and req.get("method") == "POST":
            probs.append(Problem(b, where + ".request.url", "%r for a %s" % (req.get("url"), res.get("resourceType"))))
        cond = req.get("ifNoneExist")
        if cond is not None:
            m = re.fullmatch(r"identifier=([^|]+)\|(.+)", cond)
            ids = {(x.get("system"), x.get("value")) for x in res.get("identifier") or []}
            if not m or (m.group(1), m.group(2)) not in ids:
                probs.append(Problem(b, where + ".request.ifNoneExist",
                                     "%r names no identifier of the resource" % cond))
        for ref in _references(res):
            if ref.startswith("urn:uuid:") and ref not in urls:
                probs.append(Problem(b, where, "reference %s is not in the bundle" % ref))
        probs += [Problem(p.profile, "%s %s" % (where, p.path), p.what, p.warning) for p in check(res)]
    return probs


def bundle_errors(bundle: dict[str, Any]) -> list[str]:
    return [str(p) for p in check_bundle(bundle) if not p.warning]


def _references(o: object) -> Iterator[str]:
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _references(v)
    elif isinstance(o, list):
        for v in o:
            yield from _references(v)


def _present(res: dict[str, Any], name: str) -> bool:
    """An element is there with a value, or as a primitive with only extensions
    (e.g. data-absent-reason): FHIR's '_name'."""
    v = res.get(name)
    return (v is not None and v != "" and v != []) or bool((res.get("_" + name) or {}).get("extension"))


def _codings(cc: dict[str, Any] | None) -> list[dict[str, Any]]:
    return (cc or {}).get("coding") or []


def _has(cc: dict[str, Any] | None, system: str, code: object = None) -> bool:
    return any(c.get("system") == system and (code is None or str(c.get("code")) == str(code))
               for c in _codings(cc))


def _values(o: dict[str, Any], prefix: str = "value") -> list[str]:
    return [k for k in o if k.startswith(prefix) and k != prefix and k[len(prefix)].isupper()]


class _Checker:
    def __init__(self, profile: str, res: dict[str, Any]) -> None:
        self.profile, self.res, self.problems = profile, res, []

    def bad(self, path: str, what: str, warning: bool = False) -> None:
        self.problems.append(Problem(self.profile, path, what, warning))

    def kind(self, resource_type: str) -> None:
        """Every profile first: the resource is of the type the profile constrains."""
        if self.res.get("resourceType") != resource_type:
            self.bad("resourceType", "want " + resource_type)

    def ref(self, path: str, element: object) -> None:
        if not isinstance(element, dict) or not element.get("reference"):
            self.bad(path + ".reference", "required (1..1)")

    # ------------------------------------------------ PhdBaseObservation
    def base_observation(self) -> None:
        r = self.res
        self.kind("Observation")
        ext = r.get("extension") or []
        gw = [x for x in ext if (x.get("url") or "").split("|")[0] == F.GATEWAY_EXT]
        if len(gw) != 1:
            self.bad("extension[GatewayDevice]", "want exactly 1, got %d" % len(gw))
        for x in gw:
            self.ref("extension[GatewayDevice].valueReference", x.get("valueReference"))
        cts = [x for x in ext if x.get("url") == F.CTS_EXT]
        if len(cts) > 1:
            self.bad("extension[CoincidentTimeStamp]", "at most 1, got %d" % len(cts))
        for x in cts:
            self.ref("extension[CoincidentTimeStamp].valueReference", x.get("valueReference"))
        phd = [c for c in r.get("category") or [] if _has(c, F.CATEGORY_SYSTEM, "phd")]
        if len(phd) != 1:
            self.bad("category[PHD-Observation]", "want exactly 1 coded %s#phd, got %d" % (F.CATEGORY_SYSTEM, len(phd)))
        cc = [i for i in r.get("identifier") or [] if i.get("system") == F.OBS_ID_SYSTEM]
        if len(cc) > 1:
            self.bad("identifier[conditionalCreate]", "at most 1, got %d" % len(cc))
        for i in cc:
            if "type" in i:
                self.bad("identifier[conditionalCreate].type", "not allowed (0..0)")
            if not i.get("value"):
                self.bad("identifier[conditionalCreate].value", "required")
        ht = [s for s in (r.get("meta") or {}).get("security") or [] if s.get("code") == "HTEST"]
        for s in ht:
            if s.get("system") != F.HTEST["system"]:
                self.bad("meta.security[PhdHtest].system", "want %s" % F.HTEST["system"])
        if len(ht) > 1:
            self.bad("meta.security[PhdHtest]", "at most 1")
        self.status()
        if not _codings(r.get("code")):
            self.bad("code.coding", "required")
        elif not _has(r.get("code"), C.MDC):
            self.bad("code", "mdc-1: no %s coding" % C.MDC, warning=True)
        subj = r.get("subject")
        self.ref("subject", subj)
        eff = _values(r, "effective")
        if not eff:
            self.bad("effective[x]", "required (1..)")
        for k in eff:
            if k not in ("effectiveDateTime", "effectivePeriod"):
                self.bad(k, "only dateTime or Period")
        if "device" not in r:
            self.bad("device", "required (1..)")
        else:
            self.ref("device", r["device"])
        for n, it in enumerate(r.get("interpretation") or []):
            ms = [c for c in _codings(it) if c.get("system") == MEASUREMENT_STATUS]
            if len(ms) != 1:
                self.bad("interpretation[%d].coding[MsmtStatusInterpretation]" % n, "want exactly 1, got %d" % len(ms))
            for c in ms:
                if not c.get("code"):
                    self.bad("interpretation[%d].coding[MsmtStatusInterpretation].code" % n, "required")
        for n, comp in enumerate(r.get("component") or []):
            if _has(comp.get("code"), C.MDC, "68193"):
                v = comp.get("valueCodeableConcept")
                if _values(comp) != ["valueCodeableConcept"] or not v:
                    self.bad("component[supplementalTypesComponent][%d].value[x]" % n, "only CodeableConcept, required")
                elif not any(c.get("system") == C.MDC and c.get("code") for c in _codings(v)):
                    self.bad("component[supplementalTypesComponent][%d].valueCodeableConcept.coding" % n,
                             "want an MDC code")
                if "dataAbsentReason" in comp:
                    self.bad("component[supplementalTypesComponent][%d].dataAbsentReason" % n, "not allowed (0..0)")
        self.absent(r, "dataAbsentReason")

    def status(self) -> None:
        st = self.res.get("status")
        if st not in OBS_STATUS:
            self.bad("status", "required, from ObservationStatus; got %r" % (st,))

    def absent(self, o: dict[str, Any], path: str) -> None:
        """A value and a dataAbsentReason never both (obs-6); the reason from data-absent-reason."""
        dar = o.get("dataAbsentReason")
        if dar is None:
            return
        if _values(o):
            self.bad(path, "obs-6: only when there is no value")
        if not any(c.get("system") == F.DATA_ABSENT_SYSTEM and c.get("code") for c in _codings(dar)):
            self.bad(path + ".coding", "want a code from %s" % F.DATA_ABSENT_SYSTEM)

    def quantity(self, path: str, q: dict[str, Any]) -> None:
        if not isinstance(q, dict):
            return
        if q.get("value") is None:
            self.bad(path + ".value", "required")
        elif not _DECIMAL.match(str(q["value"])):
            self.bad(path + ".value", "not a decimal: %r" % (q["value"],))
        if q.get("system") != C.UCUM:
            self.bad(path + ".system", "want %s exactly, got %r" % (C.UCUM, q.get("system")))
        if not q.get("code"):
            self.bad(path + ".code", "required (a UCUM code)")

    def only(self, o: dict[str, Any], path: str, allowed: Iterable[str]) -> None:
        for k in _values(o):
            if k not in allowed:
                self.bad(path + k, "not allowed here (only %s)" % ", ".join(sorted(allowed)) if allowed else
                         "not allowed (value[x] 0..0)")

    # ------------------------------------------------ the observation profiles
    def PhdNumericObservation(self) -> None:
        r = self.res
        self.only(r, "", {"valueQuantity"})
        if "valueQuantity" in r:
            self.quantity("valueQuantity", r["valueQuantity"])
        elif "dataAbsentReason" not in r:
            self.bad("valueQuantity", "required unless dataAbsentReason says why not")

    def PhdCompoundNumericObservation(self) -> None:
        r = self.res
        self.only(r, "", set())
        for n, comp in enumerate(r.get("component") or []):
            if _has(comp.get("code"), C.MDC, "68193"):
                continue
            path = "component[compound][%d]" % n
            mdc = [c for c in _codings(comp.get("code")) if c.get("system") == C.MDC]
            if len(mdc) != 1:
                self.bad(path + ".code.coding[MdcType]", "want exactly 1, got %d" % len(mdc))
            elif not mdc[0].get("code"):
                self.bad(path + ".code.coding[MdcType].code", "required")
            self.only(comp, path + ".", {"valueQuantity"})
            if "valueQuantity" in comp:
                self.quantity(path + ".valueQuantity", comp["valueQuantity"])
            self.absent(comp, path + ".dataAbsentReason")
            for k, it in enumerate(comp.get("interpretation") or []):
                if len([c for c in _codings(it) if c.get("system") == MEASUREMENT_STATUS]) != 1:
                    self.bad(path + ".interpretation[%d]" % k, "want exactly 1 measurement-status coding")

    def PhdCompoundObservation(self) -> None:
        r = self.res
        self.only(r, "", set())
        for n, comp in enumerate(r.get("component") or []):
            path = "component[measurement][%d]" % n
            self.only(comp, path + ".", {"valueQuantity", "valueCodeableConcept", "valueString", "valueSampledData"})
            if "valueQuantity" in comp:
                self.quantity(path + ".valueQuantity", comp["valueQuantity"])
            sd = comp.get("valueSampledData")
            if isinstance(sd, dict):
                for k in ("origin", "period", "factor", "lowerLimit", "upperLimit", "dimensions", "data"):
                    if sd.get(k) is None:
                        self.bad(path + ".valueSampledData." + k, "required")
            self.absent(comp, path + ".dataAbsentReason")

    def PhdRtsaObservation(self) -> None:
        r = self.res
        self.only(r, "", {"valueSampledData"})
        sd = r.get("valueSampledData")
        if sd is None:
            if "dataAbsentReason" not in r:
                self.bad("valueSampledData", "required unless dataAbsentReason says why not")
            return
        o = sd.get("origin") or {}
        if o.get("value") is None:
            self.bad("valueSampledData.origin.value", "required")
        if o.get("system") != C.UCUM:
            self.bad("valueSampledData.origin.system", "want %s exactly, got %r" % (C.UCUM, o.get("system")))
        if not o.get("code"):
            self.bad("valueSampledData.origin.code", "required (UCUM)")
        if sd.get("factor") is None:
            self.bad("valueSampledData.factor", "required (1..)")
        for k in ("period", "dimensions"):
            if sd.get(k) is None:
                self.bad("valueSampledData." + k, "required")
        data = sd.get("data")
        if data is not None:
            bad = [t for t in str(data).split() if not _DECIMAL.match(t)]
            if bad:
                self.bad("valueSampledData.data", "only decimals (no E/L/U); got %r" % bad[:3])

    def PhdCodedEnumerationObservation(self) -> None:
        self.only(self.res, "", {"valueCodeableConcept"})

    def PhdBitsEnumerationObservation(self) -> None:
        self.only(self.res, "", set())

    def PhdStringObservation(self) -> None:
        self.only(self.res, "", {"valueString"})

    def PhdCoincidentTimeStampObservation(self) -> None:
        r = self.res
        if r.get("status") != "final":
            self.bad("status", "fixed to final, got %r" % (r.get("status"),))
        clocks = [c for c in _codings(r.get("code")) if c.get("system") == C.MDC and str(c.get("code")) in CLOCK_TYPES]
        if len(clocks) != 1:
            self.bad("code.coding[MDCType]", "want exactly 1 from MDCClockTypes, got %d" % len(clocks))
        self.ref("subject", r.get("subject"))
        self.ref("device", r.get("device"))
        self.only(r, "", {"valueDateTime", "valueQuantity"})
        if not _values(r) and "dataAbsentReason" not in r:
            self.bad("value[x]", "the device's time, or dataAbsentReason for a time fault")
        self.absent(r, "dataAbsentReason")
        for k in ("derivedFrom", "hasMember", "specimen", "focus"):
            if r.get(k):
                self.bad(k, "not allowed (0..0)")
        for n, comp in enumerate(r.get("component") or []):
            if _has(comp.get("code"), C.MDC, "68220") and "dataAbsentReason" in comp:
                self.bad("component[clockSyncMethod][%d].dataAbsentReason" % n, "not allowed (0..0)")

    # ------------------------------------------------ devices and patient
    def identifiers(self) -> None:
        r = self.res
        ids = r.get("identifier") or []
        if not ids:
            self.bad("identifier", "required (1..)")
        slices = (("systemIdIdentifier", "SYSID", F.EUI64_SYSTEM), ("btmacAddressIdentifier", "BTMAC", F.BTMAC_SYSTEM),
                  ("macAddressIdentifier", "ETHMAC", ETHMAC_SYSTEM))
        for name, code, system in slices:
            got = [i for i in ids if _has(i.get("type"), F.ID_TYPES, code)]
            if len(got) > 1:
                self.bad("identifier[%s]" % name, "at most 1, got %d" % len(got))
            for i in got:
                if i.get("system") != system:
                    self.bad("identifier[%s].system" % name, "want %s exactly, got %r" % (system, i.get("system")))
                if not i.get("value"):
                    self.bad("identifier[%s].value" % name, "required")

    def versions(self) -> None:
        vs = [v for v in self.res.get("version") or []
              if any(c.get("system") == C.MDC and str(c.get("code")) in VERSION_TYPES for c in _codings(v.get("type")))]
        if not vs:
            self.bad("version[MDCType]", "want at least 1 typed from MDCDeviceVersionTypes")
        for n, v in enumerate(self.res.get("version") or []):
            if not _present(v, "value"):
                self.bad("version[%d].value" % n, "required (1..1)")
            if v.get("component"):
                self.bad("version[%d].component" % n, "not allowed (0..0)")
        if self.res.get("parent"):
            self.bad("parent", "not allowed (0..0)")

    def specializations(self, need_version: bool) -> None:
        specs = [s for s in self.res.get("specialization") or []
                 if any(c.get("system") == C.MDC and str(c.get("code")) in DEVICE_TYPES
                        for c in _codings(s.get("systemType")))]
        if not specs:
            self.bad("specialization[MDCType]", "want at least 1 coded from DeviceTypes11073MDC")
        for n, s in enumerate(specs):
            if need_version and not _present(s, "version"):
                self.bad("specialization[MDCType][%d].version" % n, "required (1..)")

    def PhdDevice(self) -> None:
        r = self.res
        self.kind("Device")
        self.identifiers()
        for k in ("manufacturer", "modelNumber"):
            if not _present(r, k):
                self.bad(k, "required (1..)")
        if len([c for c in _codings(r.get("type")) if c.get("system") == C.MDC and str(c.get("code")) == "65573"]) != 1:
            self.bad("type.coding[PhdCode]", "want exactly 1 %s#65573" % C.MDC)
        self.specializations(need_version=True)
        self.versions()
        for n, u in enumerate(r.get("udiCarrier") or []):
            if u.get("entryType") == "electronic-transmission":
                if u.get("carrierAIDC"):
                    self.bad("udiCarrier[PhdProvidedUdi][%d].carrierAIDC" % n, "not allowed (0..0)")
                if not u.get("carrierHRF"):
                    self.bad("udiCarrier[PhdProvidedUdi][%d].carrierHRF" % n, "required (1..1)")

    def PhgDevice(self) -> None:
        r = self.res
        self.kind("Device")
        self.identifiers()
        mdc = [c for c in _codings(r.get("type")) if c.get("system") == C.MDC]
        if len(mdc) != 1:
            self.bad("type.coding[MDCType]", "want exactly 1 MDC coding, got %d" % len(mdc))
        elif str(mdc[0].get("code")) != "531981":
            self.bad("type.coding[MDCType].code", "fixed to 531981, got %r" % mdc[0].get("code"))
        self.specializations(need_version=False)
        self.versions()

    def PhdDeviceMetric(self) -> None:
        r = self.res
        self.kind("DeviceMetric")
        self.ref("source", r.get("source"))
        if r.get("parent"):
            self.bad("parent", "not allowed (0..0)")

    def PhdPatient(self) -> None:
        self.kind("Patient")
