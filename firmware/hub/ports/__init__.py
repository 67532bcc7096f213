# One small module per board family holds everything platform-specific.
# Application code asks the port for what it needs (clock, unique id,
# reset cause, LED, BLE, bearers) and never imports machine, network or
# bluetooth itself, so the same code runs on the virtual hub in tests.
#
# Every port offers:
#   name                      "unix", "esp32", "rp2"
#   board                     the parsed board.json
#   unique_id() -> bytes      stable per board
#   reset_cause() -> str      "power-on", "soft", "hard" (machine.reset(), asked for), "watchdog",
#                             "crash" (a panic), "deep-sleep", "unknown" (ports/base.py reset_name)
#   ticks_ms() / ticks_diff(a, b)
#   utc_ms() -> int or None   wall clock in ms since 1970 UTC, None until set
#   set_utc_ms(ms)
#   rtc_ms() -> int or None   ms on a clock that only a power-on restarts (ESP32's RTC), set or
#                             not: links boots before the wall clock is known (hub/clock.py)
#   led(on)
#   mem() -> (alloc, free)    bytes of the MicroPython heap
#   fs() -> (total, free)     bytes of the flash filesystem
#   reset()                   hard reset (the virtual hub restarts its process)
#   ble() -> object or None   the BLE interface (later)
#   bearers(config) -> list   the provisioned network bearers, cheapest first (hub.bearers)
#   modem() -> (stream, pwrkey) or None
#                             the cellular modem's UART (a pty on the virtual hub)
#                             and its PWRKEY pulse, for hub.bearers.cellular


def load(board):
    """Import only the port this board names; other ports need modules this board lacks."""
    name = board["port"]
    if name == "unix":
        from hub.ports import unix as mod
    elif name == "esp32":
        from hub.ports import esp32 as mod
    elif name == "rp2":
        from hub.ports import rp2 as mod
    else:
        raise ValueError("board %s names unknown port %r" % (board.get("name"), name))
    return mod.Port(board)
