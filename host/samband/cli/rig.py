"""`samband run` and `samband uplink-demo`: the virtual rig, live."""

import signal
from argparse import Namespace


def _ctrl_c_stops() -> None:
    """Ctrl-C (SIGINT) stops the rig in order, whoever started us. A shell starts
    background jobs with SIGINT ignored (and some CI runners do the same), and
    Python then leaves it ignored: the rig would never stop on Ctrl-C."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def cmd_run(args: Namespace) -> None:
    """The virtual rig, live: emulated devices, a provisioned virtual hub, readings as they arrive
    (a view that updates in place on a terminal, plain lines elsewhere)."""
    import sys

    from samband.rig import live
    _ctrl_c_stops()
    try:
        live.run(seconds=args.seconds, heap=args.heap, root=args.root, db=args.db, live=sys.stdout.isatty())
    except KeyboardInterrupt:
        pass


def cmd_uplink_demo(args: Namespace) -> None:
    from samband.rig.uplink import demo
    _ctrl_c_stops()
    demo(args.seconds, args.hubs, args.folder)
