# Reset causes in the words every port uses (issue 18 item 14): the ESP32's
# HARD_RESET covers machine.reset() and a panic alike; the marker written
# before machine.reset() tells them apart. Both runtimes.

from hub.ports.base import reset_name


def test_esp32_hard_reset_is_split_by_the_marker():
    assert reset_name("hard", 1) == "hard"
    assert reset_name("hard", 0) == "crash"


def test_other_causes_pass_through_and_unknown_is_named():
    for c in ("power-on", "deep-sleep", "soft"):
        assert reset_name(c, 0) == c and reset_name(c, 1) == c
    assert reset_name(None, 0) == "unknown"


def test_rp2_reset_through_the_watchdog_is_a_hard_reset_when_asked():
    assert reset_name("watchdog", 1) == "hard"
    assert reset_name("watchdog", 0) == "watchdog"


def test_the_marker_counts_for_one_boot_only():
    from fwtest import Scratch

    from hub import state
    from hub.ports.base import RESET_ASKED, reset_at_boot
    saved = state.DIR
    with Scratch("reset") as root:
        state.DIR = root + "/state"
        try:
            state.write_int(RESET_ASKED, 1)  # as Port.reset() does just before machine.reset()
            assert reset_at_boot("hard") == "hard"
            assert state.read_int(RESET_ASKED, 0) == 0
            assert reset_at_boot("hard") == "crash"  # the next boot's own reset: not asked for
        finally:
            state.DIR = saved
