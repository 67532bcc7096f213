# The bearer manager: which bearer carries what, judged by traffic.
#
# Every bearer runs its own MQTT session to the broker (its own client id
# "hub-<id>-<bearer>", keepalive and deadlines), so a bearer's health is what
# its own session hears: a CONNACK, a SUBACK, a PUBACK, a PINGRESP. Interface
# flags say nothing about a NAT that forgot the flow or a cell that stopped
# forwarding; peers that trust them notice a dead link after 15-60 s.
#
# Hysteresis: `degrade_after` failures in a row (a session that could not
# connect, went silent for 1.5 keepalives, or lost its socket) mark an UP
# bearer DEGRADED; `recover_after` successes in a row (each a reply heard on
# a fresh session) bring it back. One lost packet does not move routine data
# and a flapping link does not pull it back and forth.
#
# Re-up: a bearer can sit DEGRADED with nothing in the manager able to mend
# it: a modem that said NO CARRIER (its data context gone, the bearer marks
# itself degraded) or a context the network dropped without a word; sessions
# over it fail forever while the bearer's own state never moves. A demanding
# user expects the hub to try what a person would: switch it off and on. A
# bearer DEGRADED for `reup_after_ms` (60 s) in one stretch is taken down and
# brought up again (for a modem: context, registration, all of it). The bound
# doubles after each re-up that does not end in a recovery (up to 8x), so a
# link that stays bad is not torn down every minute, and starts again from
# one bound once `recover_after` successes in a row are heard on it while UP.
# 0 turns re-ups off. Every re-up is counted (stats()["reups"]) and its state
# changes go to telemetry like any other.
#
# Routing: routine data on the first healthy (UP, session live) bearer in
# provisioned order, the cheapest; if none is healthy, on the first with a
# live session at all. Alarms on every healthy bearer at once (every live
# one if none is healthy): they do not wait for a failover, and the
# receiver keeps one copy per (hub, seq).
#
# Causes: every session that ends is counted by why (hub.mqtt.cause: memory,
# tls, refused, timeout, lost, bearer, protocol, other), per bearer in
# stats() with the last error's text, so a technician tells a hub short of
# heap (on the unix port mbedTLS's buffers come from MicroPython's heap, on
# an ESP32 from the IDF's) from a dead link. A bearer degraded by memory
# failures says "memory", not "traffic", and is not re-upped for it: taking
# a radio down and up gives no heap back. MemoryErrors are summed over the
# bearers too (memory_errors: the hub's status counts them hub-wide).
#
# The manager never writes to the journal: each bearer state change goes to
# `telemetry(mdc, val)` (the hub makes it a telemetry reading) and to the
# counters in stats().

import errno  # the port's own numbers (newlib's on an ESP32 differ from Linux's)

from hub.bearers import DEGRADED, OFF, STATES, UP, BearerError, sleep_ms
from hub.mqtt import LOST, MEMORY, OTHER, cause, error_text, wait_ms, ticks_diff, ticks_ms
from hub.ticks import backoff_ms

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

# Hub telemetry code for a bearer state change (private partition 1024 of
# IEEE 11073-10101, beside hub.collect's 1..4): val = index * 16 + state
# (index in provisioned order, state = position in hub.bearers.STATES).
MDC_HUB_BEARER_STATE = 1024 << 16 | 32
DEGRADE_AFTER = 2
RECOVER_AFTER = 3
OUTBOX = 4  # batches a bearer may hold unsent; past that it is not offered more
REUP_AFTER_MS = 60000
REUP_MAX_DOUBLINGS = 3
BACKOFF_MS = (500, 1000, 2000, 4000, 8000, 15000)
TRAFFIC = "traffic"  # the degraded reasons the manager gives (a bearer gives its own)


def state_code(index, state):
    """The telemetry value of a bearer state change (see MDC_HUB_BEARER_STATE)."""
    return index * 16 + STATES.index(state)


class Link:
    """One bearer, its MQTT session and what the manager knows of it."""

    def __init__(self, index, bearer, client):
        self.i = index
        self.b = bearer
        self.client = client
        self.ready = False     # session connected and subscribed to the ack topic
        self.fails = 0         # failures in a row
        self.oks = 0           # successes in a row
        self.outbox = []       # [payload, seqs, stream, qos]
        self.busy = None       # the item being published
        self.ev = asyncio.Event()
        client.on_lost = self.ev.set  # a reset link is seen at once, not at the next look (a quarter keepalive)
        self.sent = 0
        self.sessions = 0
        self.error = None        # the last failure, as text for the status
        self.causes = None       # {cause: failures}, made at the first failure
        self.since = ticks_ms()  # when the bearer entered its present state
        self.reups = 0           # re-ups in a row not (yet) followed by a recovery
        self.reups_total = 0

    def live(self):
        c = self.client
        return self.ready and c.connected and c.alive()

    def healthy(self):
        return self.live() and self.b.state == UP

    def room(self):
        return len(self.outbox) < OUTBOX

    def idle(self):
        return not self.outbox and self.busy is None


class Manager:
    """Manager(bearers, make_client, ack_topic, cfg).

    make_client(bearer) -> hub.mqtt.Client whose opener is bearer.open.
    cfg: degrade_after (2), recover_after (3), keepalive (s, for probes),
    ack_timeout_ms. on_release(seqs, stream): items a dropped session never
    published, for the uplink to send again elsewhere. telemetry(mdc, val),
    log(text), on_sent(), on_up(bearer): optional."""

    def __init__(self, bearers, make_client, ack_topic, cfg=None, on_release=None,
                 telemetry=None, log=None, on_sent=None, on_up=None):
        cfg = cfg or {}
        if not bearers:
            raise BearerError("no-bearer", "no bearer provisioned")
        self.degrade_after = cfg.get("degrade_after", DEGRADE_AFTER)
        self.recover_after = cfg.get("recover_after", RECOVER_AFTER)
        self.ack_timeout = cfg.get("ack_timeout_ms", 15000)
        self.reup_after = cfg.get("reup_after_ms", REUP_AFTER_MS)
        self.ack_topic = ack_topic
        self.topics = []  # more to subscribe to on every session (the uplink's ota topic)
        self.on_release = on_release
        self.telemetry = telemetry
        self.log = log
        self.on_sent = on_sent
        self.on_up = on_up  # on_up(bearer) after each bring-up: the hub sets its clock from it
        self.links = []
        for i, b in enumerate(bearers):
            b.on_change = self._changed
            self.links.append(Link(i, b, make_client(b)))
        self.changes = 0
        self.memory_errors = 0  # sessions that ended in a MemoryError, every bearer
        self.tasks = []

    # ------------------------------------------------------------ choice

    def routine_link(self):
        """The cheapest healthy bearer, else the cheapest live one, else None."""
        for l in self.links:
            if l.healthy():
                return l
        for l in self.links:
            if l.live():
                return l
        return None

    def alarm_links(self):
        """Every healthy bearer, else every live one (possibly none)."""
        out = [l for l in self.links if l.healthy()]
        return out or [l for l in self.links if l.live()]

    def offer(self, payload, seqs, stream, alarm, qos=1):
        """Queue a batch on the bearers that should carry it; returns how many
        took it (0: no bearer, or the routine bearer still busy)."""
        if alarm:
            links = [l for l in self.alarm_links() if l.room()]
        else:
            l = self.routine_link()
            links = [l] if l is not None and l.idle() else []
        for l in links:
            l.outbox.append((payload, seqs, stream, qos))
            l.ev.set()
        return len(links)

    def routine_ready(self):
        l = self.routine_link()
        return l is not None and l.idle()

    # ------------------------------------------------------------ health

    def _changed(self, bearer, old, new):
        self.changes += 1
        for l in self.links:
            if l.b is bearer:
                l.since = ticks_ms()
                if self.log:
                    self.log("bearer %s: %s -> %s%s" % (bearer.name, old, new,
                                                         " (%s)" % bearer.reason if bearer.reason else ""))
                if self.telemetry:
                    try:
                        self.telemetry(MDC_HUB_BEARER_STATE, state_code(l.i, new))
                    except Exception as e:  # a full journal must not stop the bearer logic
                        if self.log:
                            self.log("telemetry: %r" % (e,))

    def success(self, l):
        l.fails = 0
        l.oks += 1
        if l.b.state == DEGRADED and l.oks >= self.recover_after:
            l.b.set_state(UP)
        if l.b.state == UP and l.oks >= self.recover_after:
            l.reups = 0  # it works again: the next degradation gets one bound, not a doubled one

    def failure(self, l, why, kind=OTHER):
        """A session on l failed: why is its text, kind its cause (hub.mqtt.cause)."""
        l.oks = 0
        l.fails += 1
        l.error = why
        c = l.causes
        if c is None:
            c = l.causes = {}
        c[kind] = c.get(kind, 0) + 1
        if kind == MEMORY:
            self.memory_errors += 1
        reason = MEMORY if kind == MEMORY else TRAFFIC
        b = l.b
        if b.state == UP and l.fails >= self.degrade_after:
            b.set_state(DEGRADED, reason)
        elif b.state == DEGRADED and b.reason in (TRAFFIC, MEMORY):
            b.reason = reason  # the latest says why it stays degraded (not a state change)

    def reup_bound(self, l):
        """How long l may stay DEGRADED before it is taken down and up again."""
        return self.reup_after << min(l.reups, REUP_MAX_DOUBLINGS)

    def overdue(self, l):
        return (l.b.state == DEGRADED and self.reup_after > 0 and l.b.reason != MEMORY
                and ticks_diff(ticks_ms(), l.since) >= self.reup_bound(l))

    async def reup(self, l):
        """Take l's bearer down so that the link task brings it up again."""
        b = l.b
        l.reups += 1
        l.reups_total += 1
        if self.log:
            self.log("bearer %s: degraded for %d ms (%s): down and up again" %
                     (b.name, ticks_diff(ticks_ms(), l.since), b.reason))
        try:
            await b.down()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa - a radio that will not go down is still brought up again
            if self.log:
                self.log("bearer %s: down: %r" % (b.name, e))
        if b.state in (UP, DEGRADED):
            b.set_state(OFF, "reup")  # down() failed half-way: up() must still run

    # ------------------------------------------------------------ sessions

    def start(self):
        self.tasks = [asyncio.create_task(self._link_task(l)) for l in self.links]

    def stop(self):
        for t in self.tasks:
            t.cancel()
        for l in self.links:
            l.client.close()
        self.tasks = []

    def _release(self, l):
        items = l.outbox
        if l.busy is not None:
            items = [l.busy] + items
        l.outbox = []
        l.busy = None
        l.ready = False
        if self.on_release:
            for it in items:
                if it[1]:
                    self.on_release(it[1], it[2])

    async def _link_task(self, l):
        fails = 0
        while True:
            b = l.b
            had = l.sessions
            try:
                if self.overdue(l):
                    await self.reup(l)
                if b.state not in (UP, DEGRADED):
                    await b.up()
                    if self.on_up:
                        self.on_up(b)
                await self._session(l)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa - every way a bearer fails counts against it
                kind = cause(e)
                err = getattr(l.client, "error", None)
                if kind == LOST and err is not None:
                    # "link lost": the reader task saw why (a MemoryError in its read, a TLS alert)
                    k = cause(err)
                    if k != OTHER:
                        kind = k
                self.failure(l, error_text(e), kind)
                if self.log:
                    self.log("bearer %s: session down (%s): %r" % (b.name, kind, e))
            l.client.close()
            self._release(l)
            if l.sessions != had:
                fails = 0  # a session was up: start the backoff again from its shortest step
            delay = backoff_ms(BACKOFF_MS, fails)  # spread: hub.ticks.backoff_ms says why
            fails += 1
            await sleep_ms(delay)

    async def _session(self, l):
        c = l.client
        await c.connect(c.keepalive * 1000 if c.keepalive else 10000)
        await c.subscribe(self.ack_topic, 1)
        for t in self.topics:
            await c.subscribe(t, 1)
        l.sessions += 1
        l.ready = True
        self.success(l)
        heard = c.last_rx
        half = c.keepalive * 500 if c.keepalive else 15000
        while True:
            if self.overdue(l):
                return  # the link task takes the bearer down and up again
            if not c.connected:
                raise OSError(errno.ECONNRESET, "link lost: %r" % (c.error,))
            if not c.alive():
                raise OSError(errno.ETIMEDOUT, "nothing heard from the broker for %d ms" % c.idle_ms())
            if l.outbox:
                l.busy = l.outbox.pop(0)
                payload, seqs, stream, qos = l.busy
                await c.publish(self._topic(stream), payload, qos, self.ack_timeout)
                l.busy = None
                l.sent += 1
                if qos:
                    self.success(l)  # a PUBACK heard; a QoS 0 publish proves nothing
                    heard = c.last_rx
                if self.on_sent:
                    self.on_sent()
                continue
            if ticks_diff(c.last_rx, heard) > 0:
                heard = c.last_rx
                self.success(l)   # a PINGRESP (or an ack) on this bearer's own session
            if ticks_diff(ticks_ms(), c.last_tx) >= half or (l.b.state == DEGRADED and c.idle_ms() >= half // 4):
                await c.ping()    # a degraded bearer is probed more often, to recover sooner
            l.ev.clear()
            try:
                await wait_ms(asyncio, l.ev.wait(), max(20, half // 4))
            except asyncio.TimeoutError:
                pass

    def _topic(self, stream):
        return self.topic_for(stream)

    def topic_for(self, stream):  # set by the uplink: up or status topic
        raise NotImplementedError

    # ------------------------------------------------------------ status

    def stats(self):
        out = []
        for l in self.links:
            out.append({"name": l.b.name, "kind": l.b.kind, "state": l.b.state, "reason": l.b.reason,
                        "live": l.live(), "sessions": l.sessions, "sent": l.sent, "fails": l.fails,
                        "queued": len(l.outbox) + (l.busy is not None), "reups": l.reups_total,
                        "error": l.error, "causes": l.causes or {}})
        return out

    def any_live(self):
        for l in self.links:
            if l.live():
                return True
        return False
