# hub/bearers/at.py: the AT engine over a scripted in-memory stream, on both
# runtimes. The same engine meets the byte-exact modem simulator over a real
# pty in tests/test_modem.py.

import asyncio

from atfake import FakeModem
from fwtest import raises

from hub.bearers.at import ATError, Engine, URC_QUEUE


def run(coro):
    return asyncio.run(coro)


def test_reply_lines_and_urcs_routed_apart():
    m = FakeModem({"AT+CPIN?": b"\r\n+CEREG: 2\r\n\r\n+CPIN: READY\r\n\r\nOK\r\n"}, echo=True)
    seen = []

    async def main():
        e = Engine(m, on_urc=seen.append)
        e.start()
        r = await e.cmd("AT+CPIN?")
        e.stop()
        return r

    r = run(main())
    assert r.ok and r.lines == ["+CPIN: READY"], r.lines
    assert seen == ["+CEREG: 2"]


def test_cme_error_raises_with_its_code():
    m = FakeModem({"AT+CPIN?": b"\r\n+CME ERROR: 10\r\n"})

    async def main():
        e = Engine(m)
        e.start()
        try:
            await e.cmd("AT+CPIN?")
        except ATError as err:
            return err
        finally:
            e.stop()

    err = run(main())
    assert err.kind == "cme" and err.code == 10, (err.kind, err.code)


def test_timeout_then_a_late_answer_is_not_taken_for_the_next_command():
    m = FakeModem({"AT+COPS=?": None, "AT+CSQ": b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"})

    async def main():
        e = Engine(m)
        e.start()
        try:
            await e.cmd("AT+COPS=?", timeout_ms=50)
        except ATError as err:
            first = err
        m.push(b'\r\n+COPS: (2,"Telia N","Telia","24201",7)\r\n\r\nOK\r\n')  # too late
        await asyncio.sleep_ms(20) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(0.02)
        line = await e.query("AT+CSQ")
        e.stop()
        return first, line, e

    first, line, e = run(main())
    assert first.kind == "timeout"
    assert line == "+CSQ: 20,99"
    assert e.timeouts == 1 and e.stray == 2  # the late +COPS line and its OK


def test_a_reboot_fails_the_command_in_flight_at_once():
    m = FakeModem({"AT+CGATT=1": None})
    rebooted = []

    async def main():
        e = Engine(m, on_reboot=lambda: rebooted.append(1))
        e.start()

        async def boot():
            await asyncio.sleep(0.05)
            m.push(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n")

        asyncio.create_task(boot())
        try:
            await e.cmd("AT+CGATT=1", timeout_ms=60000)  # a minute, were the reboot not noticed
        except ATError as err:
            return err, e
        finally:
            e.stop()

    err, e = run(main())
    assert err.kind == "rebooted", err.kind
    assert rebooted == [1] and e.reboots == 1
    assert "+CPIN: READY" in e.urcs


def test_escape_keeps_silence_on_both_sides_of_the_plus_signs():
    m = FakeModem({"ATD*99#": b"\r\nCONNECT 150000000\r\n", "+++": None, "AT": b"\r\nOK\r\n"})

    async def main():
        e = Engine(m)
        e.start()
        await e.cmd("ATD*99#", timeout_ms=5000)
        assert e.data_mode
        m.write(b"hello")  # data mode: the PPP stack writes the UART itself, not through the engine
        await m.drain()
        m.push(b"\r\nOK\r\nworld")  # in data mode, even "OK" is just data
        await asyncio.sleep(0.02)
        got = e.take_data()

        async def answer():
            # the modem answers once the trailing guard time has passed
            while not any(w[1] == b"+++" for w in m.writes):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            m.push(b"\r\nOK\r\n")

        asyncio.create_task(answer())
        final = await e.escape(guard_ms=100)
        await e.cmd("AT")
        e.stop()
        return got, final, e

    got, final, e = run(main())
    assert got == b"\r\nOK\r\nworld"
    assert final == "OK" and not e.data_mode
    i = [w[1] for w in m.writes].index(b"+++")
    assert m.writes[i - 1][1] == b"hello"
    assert m.writes[i][0] - m.writes[i - 1][0] >= 100  # leading guard: nothing sent for 100 ms
    assert m.writes[i + 1][0] - m.writes[i][0] >= 100  # trailing guard


def test_prompt_then_payload():
    m = FakeModem({"AT+CASEND=0,5": b"\r\n> "})

    async def main():
        e = Engine(m)
        e.start()

        async def sent():
            while not any(w[1] == b"hello" for w in m.writes):
                await asyncio.sleep(0.01)
            m.push(b"\r\nOK\r\n")

        asyncio.create_task(sent())
        r = await e.cmd("AT+CASEND=0,5", timeout_ms=2000, payload=b"hello")
        e.stop()
        return r

    assert run(main()).ok


def test_closed_stream_fails_pending_and_later_commands():
    m = FakeModem({"AT+CSQ": None})

    async def main():
        e = Engine(m)
        e.start()

        async def close():
            await asyncio.sleep(0.02)
            m.close()

        asyncio.create_task(close())
        out = []
        for _ in range(2):
            try:
                await e.cmd("AT+CSQ", timeout_ms=60000)
            except ATError as err:
                out.append(err.kind)
        e.stop()
        return out

    assert run(main()) == ["closed", "closed"]


def test_urc_queue_is_bounded():
    m = FakeModem({})

    async def main():
        e = Engine(m)
        e.start()
        for _ in range(URC_QUEUE + 5):
            m.push(b"\r\n+CEREG: 2\r\n")
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        e.stop()
        return e

    e = run(main())
    assert len(e.urcs) == URC_QUEUE and e.urc_dropped == 5


def test_command_refused_in_data_mode():
    m = FakeModem({"ATD*99#": b"\r\nCONNECT\r\n"})

    async def main():
        e = Engine(m)
        e.start()
        await e.cmd("ATD*99#")
        try:
            await e.cmd("AT+CSQ")
        except ATError as err:
            return err.kind
        finally:
            e.stop()

    assert run(main()) == "data-mode"


def test_error_kinds_in_messages():
    assert "no answer" in str(ATError("AT+CSQ", "timeout"))
    assert "+CME ERROR: 10" in str(ATError("AT+CPIN?", "cme", 10))
    raises(ATError, lambda: (_ for _ in ()).throw(ATError("AT", "error", line="ERROR")))


def test_modem_profiles_are_complete_and_found_by_name():
    from hub.bearers import modems
    for name in ("sim7080g", "bg96"):
        p = modems.get(name)
        assert p["name"] == name
        missing = [k for k in modems.KEYS if k not in p]
        assert not missing, (name, missing)
        assert p["sock_urc"]("+CEREG: 1") is None
    assert modems.get("sim7080g")["sock_urc"]("+CADATAIND: 3") == (3, "data")
    assert modems.get("bg96")["sock_urc"]('+QIURC: "closed",2') == (2, "closed")
    assert modems.get("bg96")["pdp"]("a", "u", "p", "chap")[0][0] == 'AT+QICSGP=1,1,"a","u","p",2'
    for bad in ("nope", "../x", "__init__", "AUTH"):
        raises(ValueError, modems.get, bad)


class ShortOfHeap(FakeModem):
    """A modem whose stream's read finds no heap `fail` times (the unix port's read
    allocates the bytes it returns)."""

    def __init__(self, answers, fail):
        FakeModem.__init__(self, answers)
        self.fail = fail

    async def read(self, n):
        d = await FakeModem.read(self, n)
        if self.fail:
            self.fail -= 1
            raise MemoryError("memory allocation failed, allocating %d bytes" % n)
        return d


def test_a_memory_error_in_the_reader_loses_a_reply_not_the_engine():
    # Taken for a closed stream, it left a cellular bearer "up" with every command failing
    # at once until the hub restarted. Now the chunk is lost (its command times out, as
    # after line noise) and the next command is answered.
    m = ShortOfHeap({"AT+CSQ": b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"}, fail=1)

    async def main():
        e = Engine(m)
        e.start()
        out = []
        for _ in range(2):
            try:
                out.append((await e.query("AT+CSQ", timeout_ms=300)))
            except ATError as err:
                out.append(err.kind)
        e.stop()
        return out, e

    out, e = run(main())
    assert out == ["timeout", "+CSQ: 20,99"], out
    assert e.memory_errors == 1 and e.closed is None
