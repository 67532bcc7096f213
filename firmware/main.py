# Starts the hub. Interrupt with Ctrl-C to reach the REPL.
# A trial image (boot.py: pointer "b!a") that cannot start resets the
# board, and boot.py rolls it back; so does a firmware trial (an ESP32
# running the OTA partition /fw/ota/fw-to names, hub/otafw.py), and the
# bootloader rolls it back. Any other failure stops at the REPL.
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
    try:
        import esp32

        with open("/fw/ota/fw-to") as _f:
            if _f.read() == esp32.Partition(esp32.Partition.RUNNING).info()[4]:
                _t += "!"
    except (ImportError, OSError):
        pass
    if "!" in _t:
        print("main: the trial image failed: reset")
        try:
            import machine  # the loader is board-independent; no hub.ports here (it may be what failed)

            machine.reset()
        except (ImportError, AttributeError):
            sys.exit(75)  # the unix port: the virtual hub's supervisor treats 75 as a hard reset
    raise
