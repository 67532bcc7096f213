"""Commands that work on a hub or its firmware: boards, firmware, vhub,
status, provision, journal, decode."""

from __future__ import annotations

import json
import signal
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from samband.errors import SambandError
from samband.paths import BUILD

if TYPE_CHECKING:
    from samband.vhub import VirtualHub


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_boards(args: Namespace) -> None:
    from samband.device import boards
    for name in boards.names():
        b = boards.load(name)
        print(f"{name:14} {b['arch']:10} {b['port']:6} {','.join(b['features']):28} {b['description']}")


class _Bar:
    """Progress on stderr: in place on a terminal, a line per tenth elsewhere (logs, CI)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if self.tty:
            bar = "#" * (pct // 4)
            print(f"\r{self.what} [{bar:25}] {pct:3}%", end="\n" if done >= total else "", file=sys.stderr, flush=True)
        elif pct // 10 > self.shown or done >= total:
            self.shown = pct // 10
            print(f"{self.what} {pct}%", file=sys.stderr, flush=True)


def cmd_flash(args: Namespace) -> None:
    from samband.device import boards, flashing
    board = boards.load(args.board)
    print(flashing.flash(board, args.image, port=args.port, drive=args.drive, erase=args.erase,
                         baud=args.baud, progress=_Bar("writing")))


def cmd_firmware(args: Namespace) -> None:
    from samband.device import boards, build
    names = boards.names() if args.board == "all" else [args.board]
    for name in names:
        build.build(name, args.out, progress=_progress)


def _vhub(args: Namespace, log: Callable[[str], None]) -> VirtualHub:
    from samband.device import build
    from samband.device.provision import parse_uid
    from samband.vhub import VirtualHub
    if args.uid is not None:
        parse_uid(args.uid)
    if not args.no_deploy:
        build.build(args.board, progress=log)
    flash = args.flash or (BUILD / f"{args.board}-flash")
    if getattr(args, "convert", False):
        from samband.vhub.flash import Flash
        n = Flash(flash).convert()
        log(f"converted {flash}: {n} files onto {flash}/flash.img (originals in {flash}/pre-image)")
    romfs = None
    if args.romfs:
        romfs = build.romfs_path(args.board)
        if not romfs.exists():
            raise SambandError(f"no ROMFS image at {romfs}: run `make firmware` (or drop --no-deploy)")
    heap = args.heap or "100k"
    if args.provisioned:
        full = _provision_vhub(flash, args.uid, args.depot, log)
        heap = args.heap or full
    return VirtualHub(flash, heap=heap, uid=args.uid, link=args.link, board=args.board,
                      deploy_firmware=not args.no_deploy, log=log, romfs=romfs)


def _provision_vhub(flash: str | Path, uid_hex: str | None, depot_path: str | None,
                    log: Callable[[str], None]) -> str:
    """Keys for a virtual hub's flash unless it has them (the rig's defaults), so that
    `make vhub` runs the whole firmware - journal, seal, BLE collection - and not the
    unprovisioned hub that only says so. Returns the heap that firmware needs."""
    from samband.device.depot import Depot
    from samband.device.provision import files_for, parse_uid, to_flash
    from samband.rig.hubs import FULL_HEAP, UID, rig_flash
    uid = parse_uid(uid_hex) if uid_hex else UID
    if not rig_flash(Path(flash)).exists_file("/keys/hub.key"):
        depot = Depot(depot_path)
        to_flash(flash, files_for(depot, uid, [], {}))
        log(f"provisioned virtual hub {uid.hex()} in {flash} (depot {depot.path})")
    return FULL_HEAP


def _wait_for_signal(hub: VirtualHub, seconds: float | None = None) -> None:
    stop = {"now": False}

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, lambda s, f: hub.power_cut())
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop["now"] and (end is None or time.monotonic() < end):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass


def cmd_vhub(args: Namespace) -> None:
    hub = _vhub(args, _progress)
    port = hub.start()
    print(f"virtual hub on {port}" + (f" (link {args.link})" if args.link else ""), flush=True)
    rom = f" + {hub.rom_bytes} bytes of ROMFS image" if hub.romfs else ""
    print(f"flash image {hub.image.image}, heap {hub.heap} bytes{rom}; connect with: mpremote connect {port}",
          flush=True)
    print("Ctrl-C stops it; SIGUSR1 cuts its power.", flush=True)
    try:
        _wait_for_signal(hub, args.seconds)
    finally:
        hub.stop()


def _no_answer(port: str) -> SambandError:
    return SambandError(f"no MicroPython hub answered on {port}: is it a Samband hub, running? "
                        "(at its REPL? press Ctrl-D or reset it)")


def cmd_status(args: Namespace) -> None:
    """Ask the running hub for its status on its console; it goes on collecting."""
    from samband.device import console
    with console.open_port(args.port) as ser:
        s = console.status(ser, timeout=args.timeout)
    if s is None:
        raise _no_answer(args.port)
    print(json.dumps(s, indent=1, sort_keys=True) if args.json else console.format_status(s))


def cmd_console(args: Namespace) -> None:
    """The hub's console live: STATUS lines in words, logs as they come."""
    from samband.device import console
    end = time.monotonic() + args.seconds if args.seconds else None
    with console.open_port(args.port) as ser:
        for cmd in args.send or ():
            ser.write(b"\n?" + cmd.encode() + b"\n")
        try:
            for line in console.lines(ser, end):
                s = console.parse_status(line)
                print(console.format_status(s) if s is not None else line, flush=True)
        except KeyboardInterrupt:
            pass


def cmd_selftest(args: Namespace) -> None:
    """Every check a technician needs before leaving, with what to do; exit 1 if one fails."""
    from samband.device import console, selftest
    with console.open_port(args.port) as ser:
        blink = console.command(ser, "blink", args.blink, timeout=args.timeout)
        s = console.status(ser, timeout=args.timeout)
    if s is None or blink is None:
        raise _no_answer(args.port)
    results = selftest.checks(s)
    for name, ok, detail in results:
        print(f"{'pass' if ok else 'FAIL'}  {name:28} {detail}")
    if blink[0]:
        print(f"look  {'led':28} the LED blinks {args.blink} times now: if it does not, this port is another board")
    else:
        print(f"FAIL  {'led':28} {blink[1]}")
    failed = [r for r in results if not r[1]]
    print(f"{len(results) - len(failed)} of {len(results)} checks passed")
    if failed:
        sys.exit(1)


def cmd_provision(args: Namespace) -> None:
    """Provision or re-provision a hub: every option checked before anything is written (a
    refused command leaves no half-provisioned hub), then what changes is shown and written."""
    from samband.device.depot import Depot
    from samband.device.netcfg import SEALED, read_secret
    from samband.device.provision import (
        FlashTarget,
        PortTarget,
        ca_der,
        check_pairing,
        parse_broker,
        parse_devices,
        parse_uid,
        plan,
    )
    uid = parse_uid(args.uid or "00005a4d0001") if args.flash else None
    devices = parse_devices(args.device)
    if args.pairing is not None:
        check_pairing(args.pairing)
    broker = parse_broker(args.broker) if args.broker else None
    if not (args.flash or args.port):
        raise SambandError("say where the hub is: --flash DIR (virtual hub) or --port /dev/ttyUSB0")
    extra = {}
    if args.broker_ca:
        extra["/keys/ca.der"] = ca_der(args.broker_ca)
    mqtt_pw = None
    if args.broker_password_file:
        mqtt_pw = read_secret(args.broker_password_file, "--broker-password-file", 1, 256, chars="utf8")

    def base(cfg: dict[str, Any], secrets: dict[str, Any]) -> None:
        if args.pairing is not None:
            if args.pairing:
                cfg["pairing_s"] = args.pairing
            else:
                cfg.pop("pairing_s", None)
        if args.rebond:
            cfg["rebond"] = args.rebond
        if args.rr_intervals:
            cfg["keep_rr"] = args.rr_intervals == "keep"
        if broker:
            up = cfg.get("uplink") if isinstance(cfg.get("uplink"), dict) else {}
            up.update(host=broker[0], port=broker[1])
            cfg["uplink"] = up
        if mqtt_pw is not None:
            if not isinstance(cfg.get("uplink"), dict):
                raise SambandError("--broker-password-file: the hub has no broker yet; give --broker HOST:PORT too")
            secrets["mqtt"] = mqtt_pw
            cfg["uplink"]["password" + SEALED] = "mqtt"

    target = FlashTarget(args.flash, uid, args.board) if args.flash else PortTarget(args.port, args.board)
    with target:
        files, remove, lines, uid, board = plan(target, args, lambda: Depot(args.depot), devices, base)
        print(f"hub {uid.hex()} ({board['name']}) at {target.where}:")
        for line in lines:
            print("  " + line)
        target.write({**files, **extra}, remove)
    n = len(json.loads(files["/config/devices.json"])["devices"])
    print(f"provisioned hub {uid.hex()} at {target.where}: {n} device(s); depot {Depot(args.depot).path}")


def cmd_journal(args: Namespace) -> None:
    from hub import reading
    from samband.device.depot import Depot
    from samband.device.journal import readings
    from samband.device.provision import parse_uid
    uid = parse_uid(args.uid)
    rows = readings(args.flash, Depot(args.depot, create=False), uid, args.pending)
    for seq, prio, r, err in rows:
        if args.json:
            print(json.dumps({"seq": seq, "prio": prio, "reading": reading.to_named(r) if r else None, "error": err},
                             default=lambda b: b.hex()))
        else:
            text = json.dumps(reading.to_named(r), default=lambda b: b.hex()) if r else f"ERROR {err}"
            print(f"{seq:8d} p{prio} {text}")
    print(f"{len(rows)} records", file=sys.stderr)


def cmd_decode(args: Namespace) -> None:
    from samband.device.decode import decode, dumps, parse_hex
    payload = parse_hex(" ".join(args.hex))
    opts = {k: getattr(args, k) for k in ("crc", "start", "tzo", "rate") if getattr(args, k) is not None}
    print(dumps(decode(args.uuid, payload, **opts), args.compact))


def cmd_deploy(args: Namespace) -> None:
    """Copy a build onto the hub: only what changed, staged, verified, switched in one rename."""
    from samband.device import build, deploy
    if args.romfs:
        raise SambandError("deploy --romfs is not supported yet: deploy the folder tree (without --romfs), "
                           "or write build/<board>.romfs with `mpremote romfs deploy` on a MicroPython built "
                           "with a ROM partition")
    tree = args.tree
    if tree is None:
        board = args.board or deploy.hub_board(args.port)
        tree = build.build(board, progress=_progress) if not args.no_build else BUILD / board
    s = deploy.deploy(args.port, tree, progress=_Bar("sending"), log=_progress)
    st = s.get("status") or {}
    if not s["sent"]:
        print(f"{args.port}: already runs this build ({s['files']} files, tree {s['tree']}); nothing copied")
    else:
        print(f"{args.port}: {s['sent']} of {s['files']} files sent ({s['bytes']} bytes); runs {s['tree']}, "
              f"version {st.get('version')}, boot {st.get('boot')}")


def cmd_discover(args: Namespace) -> None:
    """Hubs on USB (VID:PID from board.json) and given ports, each asked ?status on its console;
    with --lan or --mdns also those that answer mDNS."""
    from samband.device import discover, lan
    rows = discover.discover(args.port, timeout=args.timeout)
    for where in args.mdns:
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SambandError(f"--mdns {where}: give HOST:PORT")
        rows.append(lan.ask(host, int(port), timeout=args.lan_timeout))
    if args.lan:
        rows += lan.browse(args.lan_timeout)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print("no hub found on USB (no serial port with a board's VID:PID)" + (" nor on the LAN" if args.lan else "")
              + "; a virtual hub: --port build/vhub.tty")
    else:
        print(discover.table(rows))


def cmd_label(args: Namespace) -> None:
    """Label files for a hub: from the depot by id, or for the hub running on --port."""
    from samband.device import label
    from samband.device.depot import Depot
    from samband.device.provision import parse_uid
    hub_id, board = args.hub, args.board
    if args.port:
        from samband.device import console
        with console.open_port(args.port) as ser:
            s = console.status(ser, timeout=5.0)
        if s is None:
            raise _no_answer(args.port)
        hub_id, board = hub_id or s.get("uid"), board or s.get("board")
    if not hub_id:
        raise SambandError("which hub? give its id (samband label 00005a4d0001) or --port TTY")
    hub_id = parse_uid(hub_id, "hub id").hex()
    public, known_board = label.hub_record(Depot(args.depot, create=False), hub_id)
    board = board or known_board
    if not board:
        raise SambandError(f"the depot does not know hub {hub_id}'s board: give --board (samband boards)")
    png, pdf = label.write(args.out, hub_id, board, public)
    print(f"{png}\n{pdf}\nhub {hub_id}, board {board}, key {label.fingerprint(public)}")


def cmd_release(args: Namespace) -> None:
    """Build and sign a release; prints where it is and what it holds, never the key."""
    from samband.device import release
    out, m, public = release.make(args.board, args.version, args.min_version, args.kind, args.image, args.out,
                                  args.depot, progress=_progress)
    print(f"{out}: {m['kind']} {m['v']} for {m['board']} (from {m['min']} up), {m['size']} bytes, "
          f"sha512 {m['sha512'].hex()[:16]}..., signed by release key {public.hex()}")


def cmd_release_check(args: Namespace) -> None:
    """Check a release file as a hub would (same code), with the depot's release key."""
    from hub import release as fmt
    from samband.device.depot import Depot
    public = Depot(args.depot, create=False).release_public(create=False)
    try:
        with open(args.file, "rb") as f:
            m = fmt.verify_stream(f, public, args.board, args.running)
    except OSError as e:
        raise SambandError(f"{args.file}: {e.strerror}") from None
    except fmt.ReleaseError as e:
        raise SambandError(f"{args.file}: a {args.board} hub running {args.running} refuses it "
                           f"({e.code}): {e}") from None
    print(f"{args.file}: a {args.board} hub running {args.running} takes it: {m['kind']} {m['v']}, "
          f"{m['size']} bytes, image SHA-512 matches, signed by this depot's release key")
