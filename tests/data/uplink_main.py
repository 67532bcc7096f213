# main.py for the virtual hub in tests/test_uplink.py and the uplink benchmark
# (test data, not firmware): a provisioned hub that appends sealed readings
# to its journal and runs hub.uplink.Uplink against a real broker.
#
# /uplink.json: {"uplink": {...Uplink config, "ca": "/ca.der"...},
#                "total": N, "alarm_every": K, "interval_ms": T, "burst": B,
#                "ota": {...hub.ota.Ota config} to take updates over the air,
#                "esp32": true: an ESP32's OTA partitions (tests/data/uplink_esp32.py, on the flash beside it),
#                "cfg": true to take signed configs (limits, receiver keys) as hub/app.py does,
#                with "judge" and "hold_cfg" (tests/data/uplink_cfg.py, on the flash beside it),
#                "fill": true for the journal's 70 % warning as the hub's Store makes it
#                (hub/store.py watch_fill, with "journal_telemetry": the readings in the journal)}
# Appends `total` readings over all boots (the number made so far is kept in
# /uplink.made, saved after each append: a power cut between the two makes
# one reading twice, under a new seq). Each append is logged to /uplink.log
# as "A seq prio n"; /uplink.state (rewritten atomically every 100 ms) holds
# the journal's backlog and the uplink's counters, for the host to poll.
import json
import os
import time

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from hub import VERSION, board, ports, reading, seal
from hub.journal import Journal
from hub.uplink import Uplink

DEV = b"\x00\x11\x22\x33\x44\x55\x66"
GLUCOSE = 0x0002711C  # MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD-ish code for the test


def _read_int(path, default=0):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def main():
    cfg = json.load(open("/uplink.json"))
    port = ports.load(board.load())
    uid = port.unique_id()
    j = Journal("/journal", capacity=cfg.get("capacity", 256 * 1024), segment_size=2048)
    keys, sealer = seal.from_flash(uid, on_epoch=j.context)
    sealer.prepare()
    ucfg = cfg["uplink"]
    ucfg["hub_id"] = uid
    ucfg["version"] = VERSION  # as hub/app.py: every status says what the hub runs
    boot = _read_int("/uplink.boots") + 1
    _write("/uplink.boots", str(boot))
    # with "bearers" in the uplink config: one session per bearer (hub/bearers/manager.py);
    # bearer state changes and clock settings are logged to /uplink.bearers as "T mdc val"
    tel = open("/uplink.bearers", "ab")
    if not hasattr(port, "log"):
        # the uplink's and the bearer manager's log lines (why a session went down) to
        # /uplink.events, for a test to show when its counts disagree
        events = open("/uplink.events", "ab")

        def log(text):
            events.write(("%d %s\n" % (port.ticks_ms(), text)).encode())
            events.flush()
        port.log = log

    def telemetry(mdc, val):
        tel.write(("T %d %s\n" % (mdc, json.dumps(val))).encode())
        tel.flush()
        if cfg.get("journal_telemetry"):
            # as hub/app.py's hub_telemetry: a reading about the hub itself, made now, so a
            # clock setting carries the (boot, mono) <-> UTC pair the receiver dates with
            r = reading.make(0, bytes(7), mdc, val, [boot, port.ticks_ms() & 0x3FFFFFFF], prio=reading.PRIO_TELEMETRY,
                             hts=port.utc_ms())

            def make(seq):
                r[reading.SEQ] = seq
                return sealer.seal(seq, reading.encode(r))

            j.stage(make, reading.PRIO_TELEMETRY)
            j.commit()  # durable at once here (on a hub the store's commit task commits it)

    from hub.clock import Clock, boot_anchor
    clock = Clock(port, telemetry)
    if cfg.get("journal_telemetry"):
        boot_anchor(port, telemetry)
    slots = None
    if cfg.get("esp32"):
        import uplink_esp32
        slots = uplink_esp32.boot(_read)
    up = Uplink(j, ucfg, port, port.bearers(ucfg), telemetry,
                on_time=lambda utc, unc: clock.offer("receiver", utc, unc))
    if cfg.get("ota") is not None:
        # updates over the air as hub/app.py takes them (tests/test_ota_e2e.py): hub.ota made
        # at once when an update is under way, else when the first update message comes;
        # every chunk request is logged with the alarms pending then, which must be none
        from hub import ota
        from hub.segment import ALARM
        olog = open("/uplink.ota", "ab")

        def olog_line(text):
            olog.write((text + "\n").encode())
            olog.flush()

        def make():
            o = ota.Ota(board.load()["name"], VERSION, open("/keys/release.pub", "rb").read(), cfg["ota"],
                        telemetry, lambda text: olog_line("L " + text), slots=slots)
            olog_line("S %s %s" % (VERSION, o.start()))
            wants, on_msg = o.wants, o.on_message

            def logged_wants(now, diff):
                due = wants(now, diff)
                if due and o.state == "fetch":  # a status goes now, asking for chunks
                    olog_line("W %d" % j.count(ALARM))
                return due

            def logged_message(payload):
                on_msg(payload)
                olog_line("M %d %s %s" % (len(payload), o.state, o.refused))

            o.wants, o.on_message = logged_wants, logged_message
            return o

        busy = len(_read("/fw/active").strip()) == 3
        try:
            os.stat("/fw/ota")
            busy = True
        except OSError:
            pass
        up.set_ota(make() if busy else None, make)
    store = None
    if cfg.get("fill"):
        from hub.store import Store  # only its fill watch: readings are appended below, not put
        store = Store(j, sealer, port, boot)
        store.telemetry = lambda mdc, val, unit=None: telemetry(mdc, val)
    log = open("/uplink.log", "ab")
    log.write(b"\n")  # ends a line a power cut left unfinished
    log.flush()
    wired = None
    if cfg.get("cfg"):
        import uplink_cfg  # signed configs as hub/app.py takes them (tests/test_hubcfg_e2e.py)
        wired = uplink_cfg.Wired(cfg, up, keys, sealer, telemetry, log)
    total = cfg.get("total", 100)
    # "truth": log each reading's real making time to /uplink.truth; "warp_after": K,
    # "warp_ms": M: after the K-th reading, the port's clock jumps M ms; "reset_after":
    # K: the hub resets after the K-th reading (once: the count is kept on flash);
    # "hold_after": K: a boot that reaches the K-th reading makes no more
    truth = open("/uplink.truth", "ab") if cfg.get("truth") else None
    warped = [0]
    every = cfg.get("alarm_every", 0)
    interval = cfg.get("interval_ms", 10)
    burst = cfg.get("burst", 1)

    def append(n):
        prio = reading.PRIO_ALARM if every and n % every == every - 1 else reading.PRIO_ROUTINE
        r = reading.make(0, DEV, GLUCOSE, 50 + n % 200, [boot, port.ticks_ms() & 0x3FFFFFFF], exp=0,
                         unit="mg/dL", prio=prio, rec=n, hts=port.utc_ms())
        if wired is not None and wired.judging:
            prio = wired.judge(r, GLUCOSE)

        def make(seq):
            r[reading.SEQ] = seq
            return sealer.seal(seq, reading.encode(r))

        seq = j.stage(make, prio)
        j.commit()  # durable now (as the hub's Store does for an alarm)
        log.write(("A %d %d %d\n" % (seq, prio, n)).encode())
        log.flush()
        if truth is not None:
            # the host's clock (the unix port's time.time_ns) less the hub's warp so far:
            # when this reading was really made, for the test to check the receiver's utc by
            truth.write(("%d %d %d\n" % (seq, time.time_ns() // 1000000, warped[0])).encode())
            truth.flush()
        if n + 1 == cfg.get("warp_after"):
            port.warp(cfg["warp_ms"])  # a board idle for warp_ms (the bearer still down)
            warped[0] += cfg["warp_ms"]
        return seq

    async def produce():
        n = _read_int("/uplink.made")
        hold = cfg.get("hold_after") if n < cfg.get("hold_after", 0) else None
        while n < total:
            if wired is not None:
                await wired.hold(n)
            for _ in range(burst):
                if n >= total:
                    break
                append(n)
                n += 1
                _write("/uplink.made", str(n))
                if n == cfg.get("reset_after"):
                    port.reset()  # a reset (a watchdog's, an update's), not a power cut
                if n == hold:
                    return  # nothing more this boot (the test pulls the plug)
            up.notify()
            await asyncio.sleep_ms(interval)

    async def report():
        while True:
            st = up.stats()
            st["clock"] = clock.stats()
            st["made"] = _read_int("/uplink.made")
            st["boot"] = boot
            if store is not None:
                store.watch_fill()  # as the Store's commit task does, every look
                st["fill"] = j.fill_pct()
            if up.ota is not None:
                st["ota"] = up.ota.status()
            _write("/uplink.state", json.dumps(st))
            await asyncio.sleep_ms(100)

    async def ota_run():
        started = time.ticks_ms()
        while up.ota is None:
            await asyncio.sleep_ms(200)
        await ota.run(up.ota, j, port, started, up=up)

    async def keep(coro):
        try:
            await coro
        except Exception as e:
            import sys
            with open("/uplink.crash", "w") as f:
                sys.print_exception(e, f)
            raise

    async def run():
        asyncio.create_task(report())
        asyncio.create_task(keep(produce()))  # a producer that dies says why in /uplink.crash
        if cfg.get("ota") is not None:
            asyncio.create_task(keep(ota_run()))
        try:
            await up.run()
        except Exception as e:  # a test reads why the hub stopped
            import sys
            with open("/uplink.crash", "w") as f:
                sys.print_exception(e, f)
            raise

    asyncio.run(run())


try:
    main()
except Exception as e:
    # as firmware/main.py: a trial image that cannot start resets, and boot.py rolls it back
    import sys
    sys.print_exception(e)
    try:
        t = open("/fw/active").read()
    except OSError:
        t = ""
    if "!" in t:
        sys.exit(75)
    raise
