"""What a technician needs to know before leaving a hub in a patient's home:
each check passed or failed, and for a failure what to do. Pure: the running
hub's status map in, checks out (the LED blink is the one thing only a person
can check, so the command asks the hub to blink and says to look)."""

from __future__ import annotations

from typing import Any

from hub import VERSION

HEAP_MARGIN = 16 * 1024  # below this a reconnect storm or a big batch can fail to allocate
FLASH_MARGIN = 0.10


def checks(s: dict[str, Any], want_version: str = VERSION) -> list[tuple[str, bool, str]]:
    """[(name, ok, detail)] for a status map from the hub's console."""
    out = []

    def check(name: str, ok: object, good: str, bad: str) -> None:
        out.append((name, bool(ok), good if ok else bad))

    problems = s.get("problems") or []
    check("firmware", s.get("version") == want_version, f"version {s.get('version')}",
          f"the hub runs {s.get('version')}, this build is {want_version}: deploy the firmware again")
    unprov = [p for p in problems if p.startswith("not provisioned")]
    check("keys", not unprov, "hub key present", "not provisioned: run samband provision --port PORT ...")
    check("problems", not problems, "none reported", "; ".join(problems[:3]))
    check("clock", s.get("clock"), "set", "not set: no bearer has given the hub the time yet (check the uplink)")
    j = s.get("journal")
    check("journal", j is not None and not j.get("damaged"),
          f"{(j or {}).get('pending', 0)} readings waiting to be sent",
          "no journal (see problems)" if j is None
          else f"{j.get('damaged')} damaged records: replace the board's flash")
    total, free = s.get("fs_total") or 0, s.get("fs_free") or 0
    check("flash", total and free >= FLASH_MARGIN * total, f"{free // 1024} of {total // 1024} KiB free",
          f"only {free // 1024} of {total // 1024} KiB free: the uplink has not sent for long; check the bearer")
    hf = s.get("heap_free") or 0
    check("heap", hf >= HEAP_MARGIN, f"{hf // 1024} KiB free",
          f"only {hf} bytes free: too many device kinds for this board")
    ble = s.get("ble")
    devices = (ble or {}).get("devices", [])
    if ble is None:
        check("ble", False, "", "no BLE collector running (see problems)")
    for d in devices:
        name = f"device {d.get('kind')} {d.get('addr')}"
        if d.get("needs_pairing"):
            check(name, False, "", "its bond was lost: open a pairing window (samband console PORT --send 'pair 120') "
                                   "and pair the device")
        else:
            check(name, d.get("connects", 0) > 0, f"seen, {d.get('readings', 0)} readings",
                  "never seen: switch the device on near the hub (and take a measurement)")
    up = s.get("uplink")
    if up is None:
        check("uplink", False, "", "no uplink configured: provision --broker HOST:PORT")
    else:
        check("uplink", up.get("connected"), f"connected, {up.get('pending', 0)} pending",
              f"not connected ({up.get('error') or 'no error yet'}): check the bearer and the broker address")
    return out
