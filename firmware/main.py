# Starts the hub. Interrupt with Ctrl-C to reach the REPL.
# A trial image (boot.py: pointer "b!a") that cannot start resets the
# board, and boot.py rolls it back; any other failure stops at the REPL.
try:
    from hub import app

    app.run()
except Exception as _e:
    import sys

    sys.print_exception(_e)
    try:
        with open("/fw/active") as _f:
            _t = _f.read()
    except OSError:
        _t = ""
    if "!" in _t:
        print("main: the trial image failed: reset")
        try:
            import machine  # the loader is board-independent; no hub.ports here (it may be what failed)

            machine.reset()
        except (ImportError, AttributeError):
            sys.exit(75)  # the unix port: the virtual hub's supervisor treats 75 as a hard reset
    raise
