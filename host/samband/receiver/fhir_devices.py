"""Device identity for the FHIR export (receiver/fhir.py): the hub as PhgDevice,
each BLE device as PhdDevice, the patient as PhdPatient, and the EUI-64 system
identifiers the HL7 PHD IG wants. Pure functions, plain dicts.

Why data-absent instead of a guess: the IG makes manufacturer, model, a
specialization version and a device version required; where the hub did not
report one, the element carries the data-absent-reason extension 'unknown', so a
reader sees that it is not known rather than a made-up value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from samband import __version__
from samband.errors import SambandError
from samband.receiver import fhir_codes as C
from samband.receiver.fhir_codes import BTMAC_SYSTEM, DATA_ABSENT_EXT, EUI64_SYSTEM, HTEST, ID_TYPES, PHD


class FhirError(SambandError):
    pass


def eui64(octets: bytes) -> str:
    """An IEEE EUI-64 as the IG writes it (FE-ED-AB-EE-DE-AD-77-C3): 8 octets as
    they are; 6 (an EUI-48: an ESP32's MAC, a BLE address) extended with FF-FE
    between the OUI and the rest (IEEE's EUI-48 -> EUI-64 mapping)."""
    b = bytes(octets)
    if len(b) == 6:
        b = b[:3] + b"\xff\xfe" + b[3:]
    if len(b) != 8:
        raise FhirError("want a 6- or 8-octet id for an EUI-64, not %d octets (%s)" % (len(b), b.hex()))
    return "-".join("%02X" % x for x in b)


def hub_octets(hub_hex: str) -> bytes:
    try:
        return bytes.fromhex(hub_hex)
    except ValueError:
        raise FhirError("hub id %r is not hex" % (hub_hex,)) from None


def address_octets(dev: str) -> bytes:
    """'C0:5A:4B:00:00:01/r' (as stored) -> its 6 octets, most significant first."""
    mac = str(dev).split("/", 1)[0]
    try:
        b = bytes.fromhex(mac.replace(":", ""))
    except ValueError:
        b = b""
    if len(b) != 6:
        raise FhirError("device address %r is not a BLE address" % (dev,))
    return b


def coding(code: int) -> dict[str, str]:
    c = {"system": C.MDC, "code": str(code)}
    if code in C.MDC_NAMES:
        c["display"] = C.MDC_NAMES[code]
    return c


def _absent_ext(code: str = "unknown") -> dict[str, Any]:
    return {"extension": [{"url": DATA_ABSENT_EXT, "valueCode": code}]}


def split_info(info: str | None) -> tuple[str | None, str | None, str | None]:
    """The hub's device information text (reading field info: the Device Information
    manufacturer, model and serial strings joined by spaces) -> (manufacturer, model,
    serial). The join loses where a string with spaces ends, so: the serial is the
    last word, the model the one before, the manufacturer the rest; fewer than three
    words are not split (None, None, None) and the whole text stays in deviceName."""
    words = (info or "").split()
    if len(words) < 3:
        return None, None, None
    return " ".join(words[:-2]), words[-2], words[-1]


def _specialization(code: int) -> dict[str, Any]:
    return {"systemType": {"coding": [{"system": C.MDC, "code": str(code),
                                       "display": C.SPECIALIZATION_NAMES[code]}]}}


def phd_device(dev: str, codes: Iterable[int], info: str | None, test: bool) -> dict[str, Any]:
    """PhdDevice of a BLE device: system id (EUI-64 from its address), BT MAC,
    make, model and serial from its information where the hub reported them
    (else marked data-absent 'unknown', never made up), specializations from the
    codes it sent."""
    mac = address_octets(dev)
    maker, model, serial = split_info(info)
    d = {"resourceType": "Device", "meta": {"profile": [PHD + "PhdDevice"]},
         "identifier": [
             {"type": {"coding": [{"system": ID_TYPES, "code": "SYSID"}]}, "system": EUI64_SYSTEM,
              "value": eui64(mac)},
             {"type": {"coding": [{"system": ID_TYPES, "code": "BTMAC"}]}, "system": BTMAC_SYSTEM,
              "value": "-".join("%02X" % x for x in mac)}],
         "type": {"coding": [coding(65573)], "text": "Personal Health Device"}}
    if maker:
        d["manufacturer"] = maker
    else:
        d["_manufacturer"] = _absent_ext()
    if info:
        d["deviceName"] = [{"name": info, "type": "other"}]
    if model:
        d["modelNumber"] = model
    else:
        d["_modelNumber"] = _absent_ext()
    if serial:
        d["serialNumber"] = serial
    specs = sorted({C.SPECIALIZATION[c] for c in codes if c in C.SPECIALIZATION}) or [C.GENERIC_SPECIALIZATION]
    # BLE profiles report no specialization version: data-absent, not a made-up "1"
    d["specialization"] = [dict(_specialization(s), _version=_absent_ext()) for s in specs]
    # the hub does not forward the firmware revision string yet
    d["version"] = [{"type": {"coding": [coding(531976)], "text": "Firmware revision"}, "_value": _absent_ext()}]
    if test:
        d["meta"]["security"] = [dict(HTEST)]
    return d


def phg_device(hub_hex: str, test: bool) -> dict[str, Any]:
    """PhgDevice of a hub: system id (EUI-64 of its unique id), the specializations
    a Samband hub collects (every device kind it has: the same in every bundle, so
    that the resource a server keeps from the first upload stays true), and the
    version of this export (the PHG's software is the hub together with this
    receiver)."""
    d = {"resourceType": "Device", "meta": {"profile": [PHD + "PhgDevice"]},
         "identifier": [{"type": {"coding": [{"system": ID_TYPES, "code": "SYSID"}]}, "system": EUI64_SYSTEM,
                         "value": eui64(hub_octets(hub_hex))}],
         "manufacturer": "Samband", "modelNumber": "Samband hub",
         "deviceName": [{"name": "Samband hub %s" % hub_hex, "type": "user-friendly-name"}],
         "type": {"coding": [coding(531981)], "text": "Personal health gateway"},
         "specialization": [_specialization(s) for s in sorted(set(C.SPECIALIZATION.values()))],
         "version": [{"type": {"coding": [coding(531975)], "text": "Software revision (samband export)"},
                      "value": __version__}]}
    if test:
        d["meta"]["security"] = [dict(HTEST)]
    return d


def parse_patient(text: str) -> tuple[str, str]:
    """'SYSTEM|VALUE' (as a FHIR token) -> (system, value); FhirError otherwise."""
    system, sep, value = (text or "").partition("|")
    if not sep or not system or not value:
        raise FhirError("patient %r: want SYSTEM|VALUE, e.g. urn:oid:2.16.578.1.12.4.1.4.1|12345678901" % (text,))
    return system, value


def patient_resource(system: str, value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "meta": {"profile": [PHD + "PhdPatient"]},
            "identifier": [{"system": system, "value": value}]}
