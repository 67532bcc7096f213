"""`samband limits`: per-patient alarm limits for one hub, made with the depot's authority key."""

from argparse import Namespace

from samband.errors import SambandError


def cmd_limits(args: Namespace) -> None:
    from samband.device import limits
    from samband.device.depot import Depot
    from samband.device.provision import parse_uid, to_flash
    if not (args.flash or args.port):
        raise SambandError("say where the hub is: --flash DIR (virtual hub) or --port /dev/ttyUSB0")
    rules = limits.parse_specs(args.set)  # every argument checked before anything is made or written
    uid = parse_uid(args.uid or "00005a4d0001") if args.flash else limits.hub_uid(args.port)
    depot = Depot(args.depot, create=False)
    serial, blob = limits.make(depot, uid, rules)
    files = {limits.NEW: blob}
    if args.flash:
        to_flash(args.flash, files)
        where = f"the virtual hub's flash {args.flash}"
    else:
        limits.to_port(args.port, blob)
        where = args.port + " (the hub restarted)"
    print(f"limits config {serial} for hub {uid.hex()} written to {where}:")
    for line in limits.describe(rules):
        print("  " + line)
    print(("the hub takes it as it boots now" if args.port else "the hub takes it at its next boot")
          + f"; `samband status` shows \"limits {serial}\", or (--json) in its problems why it refused it")
