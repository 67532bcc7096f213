# Date Time, Current Time and friends (hub.profiles.timefmt): published
# examples, epoch conversion, setting a device clock, range errors.
# Runs on both runtimes.

from fwtest import raises

from hub import profiles as P
from hub.profiles import ProfileError
from hub.profiles import timefmt as T


def test_epoch_reads_the_clock_fields_as_utc():
    assert T.epoch((1970, 1, 1, 0, 0, 0)) == 0
    assert T.epoch((2000, 1, 1, 0, 0, 0)) == 946684800
    assert T.epoch((2019, 2, 27, 11, 5, 30)) == 1551265530
    assert T.epoch((2024, 2, 29, 23, 59, 59)) == 1709251199
    assert T.epoch((1582, 10, 15, 0, 0, 0)) == -12219292800
    assert T.epoch((9999, 12, 31, 23, 59, 59)) == 253402300799
    assert T.epoch((0, 4, 17, 20, 41, 59)) is None  # year unknown
    assert T.epoch((2020, 0, 1, 0, 0, 0)) is None
    assert T.epoch((2020, 1, 0, 0, 0, 0)) is None


def test_civil_is_the_inverse():
    for secs in (0, 86399, 951782400, 1551265530, 1709251199, 4102444800, -12219292800, 253402300799):
        c = T.civil(secs)
        assert T.epoch(c[:6]) == secs, (secs, c)
    assert T.civil(0)[6] == 4                      # 1970-01-01 was a Thursday
    assert T.civil(T.epoch((2023, 1, 2, 20, 22, 7)))[6] == 1   # a Monday


def test_current_time_published_examples():
    # eisaev/blevalueparser currenttimetest.cpp
    f = P.parse(0x2A2B, bytes([0xE7, 0x07, 0x01, 0x02, 0x14, 0x16, 0x07, 0x01, 0xFF, 0x01]))
    assert f == {"time": (2023, 1, 2, 20, 22, 7), "dow": 1, "frac256": 255, "adjust": 1}
    f = P.parse(0x2A2B, bytes([0xE6, 0x07, 0x0C, 0x1F, 0x17, 0x3B, 0x3B, 0x07, 0xFF, 0x01]))
    assert f["time"] == (2022, 12, 31, 23, 59, 59) and f["dow"] == 7
    # an unknown day of week is carried raw, not rejected
    f = P.parse(0x2A2B, bytes([0xE6, 0x07, 0x0C, 0x1F, 0x17, 0x3B, 0x3B, 0xAA, 0xFF, 0x01]))
    assert f["dow"] == 0xAA
    # too short: the adjust reason is missing
    e = raises(ProfileError, P.parse, 0x2A2B, bytes([0xE7, 0x07, 0x01, 0x04, 0x14, 0x16, 0x07, 0x03, 0x80]))
    assert e.offset == 9 and "Current Time (0x2A2B)" in str(e)
    assert P.decode(0x2A2B, bytes([0xE7, 0x07, 0x01, 0x02, 0x14, 0x16, 0x07, 0x01, 0xFF, 0x01])) == []


def test_setting_a_device_clock():
    secs = T.epoch((2023, 1, 3, 20, 22, 7))
    b = T.current_time_at(secs)
    assert b == bytes([0xE7, 0x07, 0x01, 0x03, 0x14, 0x16, 0x07, 0x02, 0x00, 0x02])  # Tuesday, external reference
    assert T.current_time_at(secs, 128, T.ADJUST_EXTERNAL | T.ADJUST_TZ)[-2:] == bytes([0x80, 0x06])
    assert P.encode(0x2A2B, P.parse(0x2A2B, b)) == b


def test_date_time_ranges():
    good = bytes([0xE3, 0x07, 2, 28, 23, 59, 59])
    assert P.parse(0x2A08, good)["time"] == (2019, 2, 28, 23, 59, 59)
    assert P.parse(0x2A08, bytes(7))["time"] == (0, 0, 0, 0, 0, 0)  # "no usable time"
    for b, off in ((bytes([0xE3, 0x07, 2, 29, 0, 0, 0]), 3),     # 2019 is not a leap year
                   (bytes([0xE3, 0x07, 13, 1, 0, 0, 0]), 2),
                   (bytes([0xE3, 0x07, 1, 32, 0, 0, 0]), 3),
                   (bytes([0xE3, 0x07, 1, 1, 24, 0, 0]), 4),
                   (bytes([0xE3, 0x07, 1, 1, 0, 60, 0]), 5),
                   (bytes([0xE3, 0x07, 1, 1, 0, 0, 60]), 6),
                   (bytes([0x2D, 0x06, 1, 1, 0, 0, 0]), 0)):     # year 1581
        e = raises(ProfileError, P.parse, 0x2A08, b)
        assert e.offset == off, (b, e.offset, str(e))
    assert P.parse(0x2A08, bytes([0xE8, 0x07, 2, 29, 0, 0, 0]))["time"][2] == 29
    raises(ProfileError, P.encode, 0x2A08, {"time": (2019, 2, 29, 0, 0, 0)})
    raises(ProfileError, P.encode, 0x2A08, {"time": (2019, 2, 1, 0, 0)})


def test_time_zone_and_dst():
    assert P.parse(0x2A0F, bytes([0x04, 0x04])) == {"tz": 4, "dst": 4}
    assert T.offset_minutes(4, 4) == 120   # UTC+1 plus one hour of DST
    assert T.offset_minutes(-20, 0) == -300
    assert T.offset_minutes(-128, 0) is None
    assert T.offset_minutes(4, 255) is None
    assert T.offset_minutes(57, 0) is None and T.offset_minutes(-49, 0) is None   # reserved
    assert T.offset_minutes(56, 0) == 840 and T.offset_minutes(-48, 0) == -720
    assert T.offset_minutes(4, 1) is None
    assert P.parse(0x2A0E, bytes([0xEC])) == {"tz": -20}
    assert P.parse(0x2A0D, bytes([8])) == {"dst": 8}
