# Every device kind is one complete file in hub/kinds/, found by listing
# the folder -- on CPython from source and on the unix port from the
# compiled tree (.mpy), as a board finds them on its flash or ROMFS.

from hub import kinds, profiles
from hub.ble import uuid_str
from hub.kinds import INDICATE, NOTIFY

EXPECTED = ["bp", "cgm", "glucose", "hr", "plx", "polar", "scale", "thermo"]


def test_kinds_are_the_files_in_the_folder():
    assert kinds.names() == EXPECTED


def test_every_kind_file_is_complete():
    services = {}
    for name in kinds.names():
        k = kinds.get(name)
        for f in kinds.FIELDS:
            assert hasattr(k, f), "hub/kinds/%s.py has no %s" % (name, f)
        assert isinstance(k.TITLE, str) and k.TITLE
        assert isinstance(k.SERVICE, int) or (isinstance(k.SERVICE, bytes) and len(k.SERVICE) == 16)
        assert k.BOND in (True, False) and k.GENERIC in (True, False)
        assert isinstance(k.SILENCE_S, int) and k.SILENCE_S >= 0
        assert k.SUBSCRIBE, name
        chars = []
        for uuid, mode in k.SUBSCRIBE:
            assert mode in (NOTIFY, INDICATE), (name, uuid)
            puuid = uuid if isinstance(uuid, int) else uuid_str(uuid)
            assert profiles.name(puuid), (name, uuid)  # the profile registry has a codec for it
            chars.append(uuid)
        assert k.RECORDS is None or k.RECORDS in chars, name
        assert k.SUMMARISE is None or k.SUMMARISE in chars, name
        for codes, unit, lo, hi in k.LIMITS:
            assert codes and isinstance(unit, str) and (lo is not None or hi is not None), name
        if not k.GENERIC:
            assert k.SERVICE not in services, "%s and %s advertise the same service" % (name, services.get(k.SERVICE))
            services[k.SERVICE] = name


def test_unknown_kind_is_a_clear_error():
    try:
        kinds.get("toaster")
    except ValueError as e:
        assert "toaster" in str(e) and "glucose" in str(e)
    else:
        raise AssertionError("no error for an unknown kind")


def test_kind_from_advertised_services():
    assert kinds.for_services([0x1808]) == "glucose"
    assert kinds.for_services([0x180D]) == "hr"
    assert kinds.for_services([0x180D, kinds.get("polar").SERVICE]) == "polar"  # the specific kind wins
    assert kinds.for_services([0x180D, 0x1822]) == "plx"
    assert kinds.for_services([0x180F]) is None
