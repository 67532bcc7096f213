# The bearer manager's choices (hub/bearers/manager.py) on both runtimes,
# with stand-in sessions: routine on the cheapest healthy bearer, alarms on
# every healthy one, hysteresis in both directions, a telemetry value for
# every state change, and what a dropped session gives back to the uplink.
from fwtest import raises
from hub.bearers import DEGRADED, OFF, STATES, UP, Bearer, BearerError
from hub.bearers import manager as mgr
from hub.ticks import sleep_ms, ticks_diff, ticks_ms


class FakeClient:
    def __init__(self):
        self.connected = True
        self.is_alive = True

    def alive(self):
        return self.is_alive

    def close(self):
        self.connected = False


def setup(n=2, **cfg):
    tel = []
    bs = [Bearer("b%d" % i) for i in range(n)]
    for b in bs:
        b.set_state(UP)
    released = []
    m = mgr.Manager(bs, lambda b: FakeClient(), "samband/x/ack", cfg,
                    on_release=lambda seqs, stream: released.append((seqs, stream)),
                    telemetry=lambda mdc, val: tel.append((mdc, val)))
    for link in m.links:
        link.ready = True
    return m, tel, released


def test_no_bearer_is_refused():
    raises(BearerError, mgr.Manager, [], None, "t")


def test_routine_on_the_cheapest_healthy_alarms_on_every_healthy():
    m, tel, _ = setup(3)
    a, b, c = m.links
    assert m.routine_link() is a
    assert m.alarm_links() == [a, b, c]
    a.client.is_alive = False               # silent: not live, whatever its state says
    assert m.routine_link() is b and m.alarm_links() == [b, c]
    a.client.is_alive = True
    b.b.set_state(DEGRADED)                      # degraded: routine and alarms avoid it while others are healthy
    assert m.routine_link() is a and m.alarm_links() == [a, c]
    a.ready = c.ready = False
    assert m.routine_link() is b and m.alarm_links() == [b]  # a degraded but live bearer beats none
    b.ready = False
    assert m.routine_link() is None and m.alarm_links() == [] and not m.any_live()
    assert m.offer(b"x", [1], 0, True) == 0 and m.offer(b"x", [2], 0, False) == 0


def test_offer_queues_alarms_on_all_and_routine_only_on_an_idle_bearer():
    m, tel, released = setup(2)
    a, b = m.links
    assert m.offer(b"alarm", [7], 1, True) == 2
    assert a.outbox[0][:3] == (b"alarm", [7], 1) and b.outbox[0][:3] == (b"alarm", [7], 1)
    assert not m.routine_ready() and m.offer(b"r", [8], 0, False) == 0  # a still holds the alarm
    for _ in range(mgr.OUTBOX - 1):
        m.offer(b"alarm", [9], 1, True)
    assert m.offer(b"alarm", [10], 1, True) == 0   # both full: not taken, the uplink keeps it
    a.busy = a.outbox.pop(0)
    m._release(a)                                  # a's session ended before it sent them
    assert [r[0] for r in released] == [[7], [9], [9], [9]] and not a.outbox and not a.ready


def test_hysteresis_and_telemetry():
    m, tel, _ = setup(2, degrade_after=2, recover_after=3)
    a = m.links[0]
    m.failure(a, "x")
    assert a.b.state == UP                         # one failure is not enough
    m.success(a)
    m.failure(a, "x")
    assert a.b.state == UP                         # a success in between starts the count again
    m.failure(a, "x")
    assert a.b.state == DEGRADED and a.b.reason == "traffic"
    assert tel == [(mgr.MDC_HUB_BEARER_STATE, 0 * 16 + STATES.index(DEGRADED))]
    m.success(a)
    m.success(a)
    m.failure(a, "x")
    m.success(a)
    m.success(a)
    assert a.b.state == DEGRADED                   # two in a row, then a failure: still degraded
    m.success(a)
    assert a.b.state == UP
    assert tel[-1] == (mgr.MDC_HUB_BEARER_STATE, STATES.index(UP))
    assert mgr.state_code(1, DEGRADED) == 16 + 5
    st = m.stats()
    assert [s["name"] for s in st] == ["b0", "b1"] and st[0]["state"] == "up" and st[0]["live"]


def test_port_builds_the_provisioned_bearers_in_order():
    from hub.ports.unix import Port
    p = Port({"name": "vhub", "port": "unix", "pins": {}})
    assert p.bearers({}) == [] and p.bearers(None) == []
    bs = p.bearers({"bearers": [{"kind": "hostnet", "name": "a", "port": 1883, "keepalive": 5},
                                {"kind": "hostnet", "port": 1884}]})
    assert [(b.kind, b.name, b.port, b.keepalive) for b in bs] == [("hostnet", "a", 1883, 5),
                                                                  ("hostnet", "hostnet1", 1884, None)]
    e = raises(BearerError, p.bearers, {"bearers": [{"kind": "wifi", "ssid": "x"}]})
    assert e.reason == "not-supported" and "wifi" in str(e)
    assert raises(BearerError, p.bearers, {"bearers": [{"name": "x"}]}).reason == "bad-config"
    twice = [{"kind": "hostnet", "name": "a", "port": 1}, {"kind": "hostnet", "name": "a", "port": 2}]
    assert raises(BearerError, p.bearers, {"bearers": twice}).reason == "bad-config"
    assert raises(BearerError, p.bearers, {"bearers": [{"kind": "hostnet"}]}).reason == "bad-config"
    # pinned to an interface (a veth in a namespace), with its own DNS server; DNS needs the pin
    pinned = p.bearers({"bearers": [{"kind": "hostnet", "name": "a", "port": 8883, "dev": "sb-a", "dns": "10.99.1.1"}]})
    assert (pinned[0].dev, pinned[0].dns) == ("sb-a", "10.99.1.1")
    for bad in ({"dev": "x" * 16}, {"dev": 5}, {"dns": "10.99.1.1"}):
        spec = dict({"kind": "hostnet", "port": 1}, **bad)
        assert raises(BearerError, p.bearers, {"bearers": [spec]}).reason == "bad-config", bad
    # cellular needs a modem the virtual hub has only with SAMBAND_MODEM set
    import os
    if not os.getenv("SAMBAND_MODEM"):
        assert raises(BearerError, p.bearers, {"bearers": [{"kind": "cellular", "apn": "x"}]}).reason == "not-supported"


class ModemLike(Bearer):
    """A bearer whose data context can be lost (NO CARRIER) and comes back
    only when the bearer is taken down and brought up again, as a modem's."""

    kind = "modemlike"

    def __init__(self, name, down_fails=False):
        Bearer.__init__(self, name)
        self.context = False
        self.ups = 0
        self.downs = 0
        self.down_fails = down_fails

    async def up(self):
        self.ups += 1
        self.context = True
        self.set_state(UP)

    async def down(self):
        self.downs += 1
        self.context = False
        if self.down_fails:
            raise OSError("modem did not answer")
        self.set_state(OFF)

    def no_carrier(self):
        self.context = False
        self.set_state(DEGRADED, "data-lost")


class SessionClient:
    """An MQTT session that connects only while its bearer has its context."""

    keepalive = 1

    def __init__(self, bearer):
        self.b = bearer
        self.connected = False
        self.error = None
        self.last_rx = self.last_tx = ticks_ms()

    async def connect(self, timeout_ms):
        if not self.b.context:
            raise OSError("no carrier")
        self.connected = True
        self.last_rx = ticks_ms()

    async def subscribe(self, topic, qos):
        self.last_rx = ticks_ms()

    async def ping(self):
        self.last_tx = ticks_ms()
        if self.b.context:
            self.last_rx = ticks_ms()

    def alive(self):
        return self.connected

    def idle_ms(self):
        return ticks_diff(ticks_ms(), self.last_rx)

    def close(self):
        self.connected = False


def test_a_bearer_degraded_past_the_bound_is_taken_down_and_up_again():
    """NO CARRIER on the modem-sockets path: the bearer marks itself degraded
    and every new session fails; past reup_after_ms the manager takes it down
    and brings it up, which re-activates the context, and it carries again."""
    try:
        import asyncio
    except ImportError:  # pragma: no cover
        import uasyncio as asyncio
    tel = []
    b = ModemLike("cell")
    m = mgr.Manager([b], SessionClient, "samband/x/ack", {"reup_after_ms": 300},
                    telemetry=lambda mdc, val: tel.append(val))
    link = m.links[0]

    async def until(cond, what):
        t0 = ticks_ms()
        while not cond():
            if ticks_diff(ticks_ms(), t0) > 20000:
                raise AssertionError("timed out waiting for " + what)
            await sleep_ms(10)

    async def main():
        m.start()
        try:
            await until(lambda: link.live() and b.state == UP, "the first session")
            assert b.ups == 1 and m.stats()[0]["reups"] == 0
            b.no_carrier()
            link.client.connected = False           # the modem's socket went with the context
            await until(lambda: b.ups == 2, "the bearer brought up again")
            await until(lambda: link.live() and b.state == UP, "a session on the re-upped bearer")
        finally:
            m.stop()

    asyncio.run(main())
    assert b.downs == 1 and m.stats()[0]["reups"] == 1
    assert link.fails == 0 and link.sessions == 2
    code = lambda s: STATES.index(s)  # noqa: E731
    assert tel == [code(UP), code(DEGRADED), code(OFF), code(UP)], tel


def test_reup_bound_doubles_until_a_recovery_and_can_be_turned_off():
    import asyncio
    m, tel, _ = setup(1, reup_after_ms=1000, recover_after=3)
    a = m.links[0]
    assert m.reup_bound(a) == 1000 and not m.overdue(a)   # UP is never overdue
    a.b.set_state(DEGRADED, "traffic")
    assert not m.overdue(a)                               # the bound counts from the degradation
    a.since -= 1000
    assert m.overdue(a)
    asyncio.run(m.reup(a))
    assert a.b.state == OFF and a.reups == 1 and m.stats()[0]["reups"] == 1
    a.b.set_state(UP)                                     # as up() does
    m.success(a)
    m.success(a)                                          # two successes: not yet a recovery
    a.b.set_state(DEGRADED, "traffic")
    assert m.reup_bound(a) == 2000
    a.since -= 1500
    assert not m.overdue(a)                               # the doubled bound holds it
    a.since -= 500
    assert m.overdue(a)
    a.b.set_state(UP)
    for _ in range(3):
        m.success(a)                                      # recover_after successes while UP
    assert a.reups == 0 and m.reup_bound(a) == 1000
    a.reups = 10
    assert m.reup_bound(a) == 1000 << mgr.REUP_MAX_DOUBLINGS  # capped
    off, _, _ = setup(1, reup_after_ms=0)
    o = off.links[0]
    o.b.set_state(DEGRADED)
    o.since -= 10 ** 6
    assert not off.overdue(o)


def test_a_bearer_that_will_not_go_down_is_still_brought_up_again():
    import asyncio
    b = ModemLike("cell", down_fails=True)
    b.set_state(DEGRADED, "data-lost")
    logs = []
    m = mgr.Manager([b], SessionClient, "t", {"reup_after_ms": 1}, log=logs.append)
    asyncio.run(m.reup(m.links[0]))
    assert b.state == OFF and b.reason == "reup" and b.downs == 1   # so the link task runs up()
    assert any("did not answer" in x for x in logs)


def test_failures_are_counted_by_cause_and_memory_degrades_as_memory():
    """A technician must tell a hub short of heap from a dead link: each failed session
    is counted under its cause (hub.mqtt.cause) with its text; memory failures degrade a
    bearer as "memory", not "traffic", and no re-up is spent on them (a radio taken down
    and up gives no heap back); they are summed for the hub's status."""
    import errno
    from hub import mqtt
    m, tel, _ = setup(2, degrade_after=2, reup_after_ms=1)
    a, b = m.links
    m.failure(a, mqtt.error_text(MemoryError()), mqtt.MEMORY)
    m.failure(a, "MemoryError", mqtt.MEMORY)
    assert a.b.state == DEGRADED and a.b.reason == "memory"
    a.since -= 10
    assert not m.overdue(a)                        # past the bound, yet no re-up for memory
    m.failure(b, mqtt.error_text(OSError(-0x2700, "TLS: bad")), mqtt.TLS)
    m.failure(b, mqtt.error_text(OSError(errno.ETIMEDOUT, "no acknowledgement of packet 2")), mqtt.TIMEOUT)
    assert b.b.state == DEGRADED and b.b.reason == "traffic"
    b.since -= 10
    assert m.overdue(b)                            # a link gone bad is re-upped as before
    m.failure(a, "OSError: link lost", mqtt.LOST)
    assert a.b.reason == "traffic" and a.b.state == DEGRADED  # the latest failure says why it stays degraded
    st = m.stats()
    assert st[0]["causes"] == {"memory": 2, "lost": 1} and st[0]["error"] == "OSError: link lost"
    assert st[1]["causes"] == {"tls": 1, "timeout": 1}
    # CPython names it TimeoutError
    assert st[1]["error"].endswith("Error: no acknowledgement of packet 2 (%d)" % errno.ETIMEDOUT)
    assert m.memory_errors == 2
    b.b.set_state(DEGRADED, "data-lost")           # a bearer's own reason is its own
    m.failure(b, "x", mqtt.MEMORY)
    assert b.b.reason == "data-lost" and m.memory_errors == 3


class FailingClient(SessionClient):
    """A session whose connects fail as scripted; then one that connects and whose
    reader task dies of a MemoryError (the session sees only "link lost")."""

    script = []
    drops = 1

    def __init__(self, bearer):
        SessionClient.__init__(self, bearer)
        self.n = 0

    async def connect(self, timeout_ms):
        self.error = None
        s = FailingClient.script
        if self.n < len(s):
            self.n += 1
            raise s[self.n - 1]
        self.connected = True
        self.last_rx = ticks_ms()
        self.n += 1

    async def ping(self):
        self.last_tx = ticks_ms()
        if FailingClient.drops:
            FailingClient.drops -= 1
            self.error = MemoryError()   # as mqtt.Client's _reader records it
            self.connected = False
        else:
            self.last_rx = ticks_ms()


def test_the_link_task_counts_each_way_a_session_ends():
    import asyncio
    from hub import mqtt
    refused = mqtt.MQTTError("broker refused the connection (return code 5)")
    refused.rc = 5
    FailingClient.script = [MemoryError(), OSError(-0x2700, "TLS: certificate"), refused,
                            asyncio.TimeoutError(), BearerError("connect-failed", "no answer")]
    b = ModemLike("cell")
    logs = []
    m = mgr.Manager([b], FailingClient, "t", {"reup_after_ms": 0}, log=logs.append)
    link = m.links[0]
    steps = mgr.BACKOFF_MS
    mgr.BACKOFF_MS = (2, 4)  # the ladder's real steps are seconds

    async def main():
        m.start()
        try:
            t0 = ticks_ms()
            while sum(link.causes.values() if link.causes else ()) < 6:
                assert ticks_diff(ticks_ms(), t0) < 10000, link.causes
                await sleep_ms(5)
        finally:
            m.stop()

    try:
        asyncio.run(main())
    finally:
        mgr.BACKOFF_MS = steps
    # the sixth: a session that came up, then lost its link to a MemoryError in the reader
    assert link.causes == {"memory": 2, "tls": 1, "refused": 2, "timeout": 1}, link.causes
    assert m.memory_errors == 2 and link.sessions in (1, 2)  # the next session stays up
    assert "link lost: MemoryError" in m.stats()[0]["error"]
    assert any("session down (tls)" in x for x in logs), logs


def test_the_hubs_status_counts_memory_errors_hub_wide():
    # app.Hub.status: every MemoryError the hub lived through, at its top level (BLE
    # events, sessions the bearers lost to it, batch copies), beside each part's own
    from hub import app

    class Port:  # what status.snapshot asks of a port
        board = {"name": "vhub"}
        name = "unix"

        def ticks_ms(self):
            return 0

        def ticks_diff(self, a, b):
            return a - b

        def mem(self):
            return 1, 2

        def fs(self):
            return 3, 4

        def unique_id(self):
            return b"\x01"

        def reset_cause(self):
            return "power-on"

        def utc_ms(self):
            return None

    class Part:
        def __init__(self, s):
            self.s = s

        def stats(self):
            return self.s

    h = app.Hub(Port(), 1)
    assert h.status()["memory_errors"] == 0
    h.collector = Part({"memory_errors": 2})
    h.uplink = Part({"memory_errors": 3, "no_memory": 1})
    s = h.status()
    assert s["memory_errors"] == 6 and s["uplink"]["memory_errors"] == 3 and s["ble"]["memory_errors"] == 2
