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


def cmd_config_push(args: Namespace) -> None:
    """`samband config push`: limits (--set) or the depot's receiver keys (--receiver-keys) to one hub
    over its broker, retained; waits until the hub reports the config in force."""
    from samband.cli.ota import login_of
    from samband.device import hubcfg, limits
    from samband.device.depot import Depot
    from samband.device.provision import parse_uid
    if bool(args.set) == bool(args.receiver_keys):
        raise SambandError("say what to push: --set MEASURE:low=N,high=N (limits) or --receiver-keys, not both")
    rules = limits.parse_specs(args.set) if args.set else None  # every argument checked before anything is made
    uid = parse_uid(args.hub, "--hub")
    login = login_of(args)
    depot = Depot(args.depot, create=False)
    if rules is not None:
        serial, blob = limits.make(depot, uid, rules)
        what = f"limits config {serial}"
    else:
        serial, blob = hubcfg.receivers_config(depot, uid)
        what = f"receiver-key config {serial} (keys {', '.join(str(k) for k, _ in depot.receiver_publics()[:4])})"
    p = hubcfg.Push(uid.hex(), blob, serial, **login).start()
    try:
        print(f"{what} for hub {uid.hex()} sent (retained: an offline hub takes it when it connects)", flush=True)
        if p.wait(args.timeout):
            print(f"hub {uid.hex()} runs {what}")
            return
        code = p.refused()
    finally:
        p.close()
    if code is not None:
        raise SambandError(f"hub {uid.hex()} refused {what} ({code}): see its status's problems or the receiver's "
                           f"telemetry; nothing changed on it")
    raise SambandError(f"hub {uid.hex()} did not report {what} within {args.timeout:g} s: it stays retained on the "
                       f"broker and the hub takes it when it connects (`samband config push` again to wait)")
