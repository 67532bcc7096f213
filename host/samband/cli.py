"""The `samband` command: a table of thin subcommands with one error exit.

Failures the user can act on print one line `samband: ...` and exit 1;
`-v` shows the traceback too."""

import argparse
import importlib
import json
import signal
import sys
import time
from pathlib import Path

from samband import __version__
from samband.errors import SambandError
from samband.paths import BUILD


# One line per module that adds subcommands (see parser()).
COMMAND_MODULES = [
    "samband.provision",
    "samband.journal",
    "samband.decode",
    "samband.blebridge",
    "samband.receiver",
    "samband.uplinkrig",
]


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def cmd_boards(args):
    from samband import boards
    for name in boards.names():
        b = boards.load(name)
        print(f"{name:14} {b['arch']:10} {b['port']:6} {','.join(b['features']):28} {b['description']}")


def cmd_firmware(args):
    from samband import boards, build
    names = boards.names() if args.board == "all" else [args.board]
    for name in names:
        build.build(name, args.out, progress=_progress)


def _vhub(args, log):
    from samband import build
    from samband.vhub import VirtualHub
    if not args.no_deploy:
        build.build(args.board, progress=log)
    flash = args.flash or (BUILD / f"{args.board}-flash")
    romfs = None
    if args.romfs:
        romfs = build.romfs_path(args.board)
        if not romfs.exists():
            raise SambandError(f"no ROMFS image at {romfs}: run `make firmware` (or drop --no-deploy)")
    return VirtualHub(flash, heap=args.heap, uid=args.uid, link=args.link, board=args.board,
                      deploy_firmware=not args.no_deploy, log=log, romfs=romfs)


def _wait_for_signal(hub, seconds=None):
    stop = {"now": False}

    def on_term(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, lambda s, f: hub.power_cut())
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop["now"] and (end is None or time.monotonic() < end):
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass


def cmd_vhub(args):
    hub = _vhub(args, _progress)
    port = hub.start()
    print(f"virtual hub on {port}" + (f" (link {args.link})" if args.link else ""), flush=True)
    rom = f" + {hub.rom_bytes} bytes of ROMFS image" if hub.romfs else ""
    print(f"flash folder {hub.flash}, heap {hub.heap} bytes{rom}; connect with: mpremote connect {port}", flush=True)
    print("Ctrl-C stops it; SIGUSR1 cuts its power.", flush=True)
    try:
        _wait_for_signal(hub, args.seconds)
    finally:
        hub.stop()


def cmd_run(args):
    """The virtual rig, live: emulated devices, a provisioned virtual hub, readings as they arrive."""
    from samband import live
    try:
        live.run(seconds=args.seconds, heap=args.heap, root=args.root)
    except KeyboardInterrupt:
        pass


def cmd_status(args):
    """Ask a hub (virtual or real) for its status over the raw REPL."""
    from samband.transport import Hub
    with Hub(args.port) as h:
        s = h.status()
    from samband.console import format_status
    print(json.dumps(s, indent=1, sort_keys=True) if args.json else format_status(s))


def _add_vhub_options(p):
    p.add_argument("--board", default="vhub", help="board definition to build and run (default vhub)")
    p.add_argument("--flash", type=Path, help="flash folder (default build/<board>-flash)")
    p.add_argument("--heap", default="100k", help="MicroPython heap, like an ESP32's (default 100k)")
    p.add_argument("--uid", help="unique id in hex (default 00005a4d0001)")
    p.add_argument("--link", type=Path, help="also make this symlink to the serial port")
    p.add_argument("--no-deploy", action="store_true", help="run what is on the flash folder, do not build or copy")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--romfs", action="store_true",
                   help="run the hub package from its ROMFS image (build/<board>.romfs), in place as from a "
                        "board's ROM partition; the heap grows by the image's size")


def parser():
    ap = argparse.ArgumentParser(prog="samband", description="Samband medical edge hub tools")
    ap.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    ap.add_argument("--version", action="version", version=f"samband {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True)

    p = sub.add_parser("boards", help="list the reference boards")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("firmware", help="compile firmware/ into build/<board>/ with mpy-cross")
    p.add_argument("--board", default="all", help="board name or 'all' (default)")
    p.add_argument("--out", type=Path, help="output folder (default build/)")
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("vhub", help="run a virtual hub on a pseudo-terminal")
    _add_vhub_options(p)
    p.set_defaults(func=cmd_vhub)

    p = sub.add_parser("run", help="the virtual rig: emulated BLE devices, a provisioned virtual hub, readings live")
    p.add_argument("--heap", default="512k", help="the virtual hub's heap (default 512k: the full firmware, 7 devices)")
    p.add_argument("--root", type=Path, help="where the rig keeps its flash and depot (default build/run)")
    p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="print a hub's status (over its serial port)")
    p.add_argument("port", help="serial port, e.g. /dev/ttyUSB0 or a virtual hub's /dev/pts/N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    # Subcommands that live in their own modules: each has add_parser(sub),
    # which adds its parser and sets func. Imported lazily by name so that
    # heavy dependencies load only when used.
    for modname in COMMAND_MODULES:
        importlib.import_module(modname).add_parser(sub)
    return ap


def main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except SambandError as e:
        if args.verbose:
            raise
        print(f"samband: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
