# The uplink: sealed records from the journal to the receiver over MQTT.
#
# One module: the Uplink (below) has one table of what is in flight per stream
# (seq -> ticks sent), which building a batch, resending, taking acks, the
# MQTT session and the bearer manager's release all read and change; the
# status message and the time request ride the same session and backoff.
# topics/decode_ack/encode_ack are here because the receiver imports them from
# their one owner. It runs on every hub from boot, so a split would add a
# module's heap and unload nothing; the bearers and MQTT are already apart.
#
# Batches (hub.seal.batch: epoch headers, then records in rising seq) go to
# samband/<hub>/up with QoS 1; the receiver answers on samband/<hub>/ack
# with the seqs it has committed (CBOR, docs/uplink.md), and only then does
# the journal's delivered cursor move (journal.ack). Alarms go at once,
# ahead of any backlog; routine records when enough bytes have gathered or
# the oldest has waited long enough. What is sent but not acknowledged is
# sent again after a reconnect, or when the acknowledgement is overdue.
import errno

from hub import cbor
from hub import mqtt
from hub.segment import ROUTINE, ALARM
from hub.mqtt import ticks_ms, ticks_diff
from hub.ticks import backoff_ms
from hub.errors import HubError
from hub.seal import EPOCH_BYTES, LEB_MAX_BYTES, MAX_BATCH_BYTES, MAX_BATCH_ITEMS, batch_into, batch_room, epoch_of

try:
    import asyncio
except ImportError:  # pragma: no cover
    import uasyncio as asyncio

BACKOFF_MS = (500, 1000, 2000, 4000, 8000, 15000, 30000)  # capped
# The receiver refuses batches over hub.seal's MAX_BATCH_BYTES / MAX_BATCH_ITEMS
# (docs/protocol.md, "Limits"). hub.seal (with its crypto) is loaded before the
# uplink on every hub: importing the format from its owner costs no heap.
_HEADER_COST = EPOCH_BYTES + LEB_MAX_BYTES  # an epoch header and its length, at most one per record


class UplinkError(HubError):
    pass


def topics(hub_hex):
    base = "samband/" + hub_hex
    return base + "/up", base + "/ack", base + "/status"


def ota_topic(hub_hex):
    """Where `samband ota` sends a hub its update (docs/ota.md): offers and chunks."""
    return "samband/" + hub_hex + "/ota"


def cfg_topic(hub_hex):
    """Where `samband config push` sends a hub its signed configs (hub/hubcfg.py): one
    retained message per kind under it, samband/<hub>/cfg/limits and .../cfg/keys."""
    return "samband/" + hub_hex + "/cfg/"


def decode_ack(payload):
    """The seqs acknowledged by a receiver's ack message: CBOR array of [first, last] ranges."""
    v = cbor.loads(payload)
    if not isinstance(v, list):
        raise UplinkError("ack is not an array")
    out = []
    for r in v:
        if not isinstance(r, list) or len(r) != 2 or not isinstance(r[0], int) \
                or not isinstance(r[1], int) or r[0] < 0 or r[1] < r[0] or r[1] - r[0] > 65535:
            raise UplinkError("bad ack range")
        out.extend(range(r[0], r[1] + 1))
    return out


def encode_ack(seqs):
    """Ranges of consecutive seqs as the receiver sends them (also used by tests)."""
    rr = []
    for q in sorted(set(seqs)):
        if rr and rr[-1][1] + 1 == q:
            rr[-1][1] = q
        else:
            rr.append([q, q])
    return cbor.dumps(rr)


class Uplink:
    """Uplink(journal, config, port).run() forever.

    config (dict): host, port (8883), ca (DER bytes or a path on flash),
    hub_id (bytes), user (default hub id hex), password or password_file
    (a path on flash), server_hostname,
    keepalive (s, 30), batch_bytes (4096), batch_age_ms (2000),
    ack_timeout_ms (15000), poll_ms (50). `port` (the board port) is only
    used for its `log(text)` if it has one.

    bearers: the board's bearers (port.bearers(config)); with them a
    bearer manager (hub/bearers/manager.py) runs one session per bearer,
    routine data on the cheapest healthy one, alarms on all of them.
    Without them the uplink uses the default route as it always did.
    telemetry(mdc, val): where bearer state changes go (the hub's store);
    on_bearer_up(bearer): called after each bring-up (the hub's clock).
    on_time(utc_ms, uncertainty_ms): the receiver's time, asked for in a
    status message (first one, then every time_ms, 10 min; again after
    time_retry_ms, 15 s, while unanswered) and measured against the round trip."""

    def __init__(self, journal, config, port=None, bearers=None, telemetry=None, on_bearer_up=None,
                 on_time=None):
        self.j = journal
        self.cfg = config
        self.port = port
        hid = config["hub_id"]
        self.hub_hex = hid.hex() if hasattr(hid, "hex") else "".join("%02x" % b for b in hid)
        self.up, self.ack_topic, self.status_topic = topics(self.hub_hex)
        # a configured size beyond what a receiver takes is cut down to it
        self.batch_bytes = min(config.get("batch_bytes", 4096), MAX_BATCH_BYTES // 2)
        self.batch_age = config.get("batch_age_ms", 2000)
        # a batch is full at this many record bytes (room left for its epoch headers)
        self.full = max(self.batch_bytes - 256, self.batch_bytes // 2)
        self.ack_timeout = config.get("ack_timeout_ms", 15000)
        self.poll = config.get("poll_ms", 50)
        self.inflight = ({}, {})  # per stream (ROUTINE, ALARM): seq -> ticks when sent
        self.client = None
        self.wake = asyncio.Event()
        self.counters = {"connects": 0, "batches": 0, "records": 0, "acked": 0, "resent": 0,
                      "bad_acks": 0, "link_lost": 0}
        self._waiting_since = None
        self._acks = []
        self._out = bytearray(self.batch_bytes + 512)
        self.last_error = None
        self.memory_errors = 0  # sessions without bearers that ended in a MemoryError (with them: the manager's)
        self.status_every = config.get("status_ms", 10000)
        self._status_at = None
        self.on_time = on_time
        self.time_every = config.get("time_ms", 600000)
        # an unanswered request (the reply is QoS 0: lost with a session that dropped) is
        # asked again after this, not after time_ms: a hub without a clock waits seconds,
        # not 10 minutes. Above the receiver's 10 s limit, or the retry is refused too.
        self.time_retry = config.get("time_retry_ms", 15000)
        self._tq = None        # [number, ticks sent] of the time request in flight
        self._tq_at = None     # ticks of the last request
        self._tq_n = 0
        self._times = []       # (payload, ticks received) of time replies
        self.manager = None
        # an update over the air (hub.ota.Ota), set by the hub when it has a release
        # key: it is asked for chunks only while no alarm is unsent or in flight
        self.ota = None
        self._ota_factory = None
        self.ota_topic = ota_topic(self.hub_hex)
        # signed configs (limits, receiver keys): on_cfg(payload) takes one (set_config),
        # cfg the status's "cfg" entry (the serials in force), version the running release
        self.on_cfg = None
        self.cfg_state = None
        self.version = config.get("version")
        if bearers:
            from hub.bearers.manager import Manager
            self.manager = Manager(bearers, self._make_client, self.ack_topic, config,
                                   on_release=self._release, telemetry=telemetry, log=self.log,
                                   on_sent=self.wake.set, on_up=on_bearer_up)
            self.manager.topic_for = lambda stream: self.status_topic if stream is None else self.up

    def stats(self):
        """Counters, backlog and link state, for the hub's status report."""
        s = dict(self.counters)
        s["pending"] = self.j.count()
        s["pending_alarms"] = self.j.count(ALARM)
        s["in_flight"] = len(self.inflight[0]) + len(self.inflight[1])
        s["connected"] = bool(self.client and self.client.connected)
        s["error"] = self.last_error
        m = self.manager
        s["memory_errors"] = self.memory_errors + (m.memory_errors if m is not None else 0)
        if m is not None:
            s["connected"] = m.any_live()
            s["bearers"] = m.stats()
            r = m.routine_link()
            s["bearer"] = r.b.name if r is not None else "none"  # "none": no bearer can carry data
        return s

    def link_state(self):
        """What the status LED shows (hub/led.py), cheaply: whether data can leave now,
        and how many alarms wait."""
        m = self.manager
        return {"connected": m.any_live() if m is not None else bool(self.client and self.client.connected),
                "pending_alarms": self.j.count(ALARM)}

    def _release(self, seqs, stream):
        # a bearer's session ended before these left it: send them again (elsewhere)
        fl = self.inflight[stream]
        for q in seqs:
            fl.pop(q, None)
        self.wake.set()

    def log(self, text):
        f = getattr(self.port, "log", None)
        if f:
            f("uplink: " + text)

    def set_ota(self, ota, factory=None):
        """Take updates over the air: subscribe to this hub's ota topic (every bearer's
        session). ota: the service (hub.ota.Ota), or None and factory() makes it when the
        first update message arrives (a hub with no update does not load it)."""
        self.ota = ota
        self._ota_factory = factory
        if self.manager is not None:
            self.manager.topics.append(self.ota_topic)

    def set_config(self, on_cfg, state):
        """Take signed configs (hub/hubcfg.py): subscribe to samband/<hub>/cfg/+ on every
        session; on_cfg(payload) for each message; state is reported as the status's "cfg"."""
        self.on_cfg = on_cfg
        self.cfg_state = state
        if self.manager is not None:
            self.manager.topics.append(cfg_topic(self.hub_hex) + "+")

    def _ota_due(self):
        # The update's turn: only with no alarm unsent or in flight, so a chunk
        # never goes ahead of an alarm; True if a status (with the request) should go now.
        o = self.ota
        if o is None or self.j.count(ALARM) or self.inflight[1]:
            return False
        if self.manager is not None:
            r = self.manager.routine_link()
            o.cellular = r is not None and r.b.kind == "cellular"
        return o.wants(ticks_ms(), ticks_diff)

    def notify(self):
        """Call after appending: the uplink looks at the journal now (alarms at once)."""
        self.wake.set()

    def tls_context(self):
        """The broker's pinned CA as a TLS context (None: plain TCP); an update fetched
        over HTTPS (hub.otahttp) is checked against the same one."""
        ca = self.cfg.get("ca")
        if ca is None:
            return None
        if isinstance(ca, str):
            with open(ca, "rb") as f:
                ca = f.read()
        return mqtt.tls_context(ca)

    def _password(self):
        pw = self.cfg.get("password")
        if pw is None and self.cfg.get("password_file"):
            with open(self.cfg["password_file"]) as f:
                pw = f.read().strip()
        return pw

    def _on_message(self, topic, payload):
        if topic == self.ota_topic and (self.ota is not None or self._ota_factory is not None):
            if payload:  # empty: a retained offer withdrawn
                if self.ota is None:
                    self.ota = self._ota_factory()
                self.ota.on_message(payload)
            self.wake.set()
        elif self.on_cfg is not None and topic.startswith(cfg_topic(self.hub_hex)):
            if payload:  # empty: a retained config cleared
                self.on_cfg(payload)
                self._status_at = None  # report the config in force at once
            self.wake.set()
        elif topic == self.ack_topic:
            if payload[:1] and payload[0] & 0xE0 == 0xA0:  # a CBOR map: the receiver's time
                if len(self._times) < 4:
                    self._times.append((bytes(payload), ticks_ms()))
            else:
                self._acks.append(payload)
            self.wake.set()

    def _status_payload(self):
        st = {"pending": self.j.count(), "alarms": self.j.count(ALARM)}
        if self.ota is not None:
            st["ota"] = self.ota.status(True)
        elif self.version:  # a hub never offered an update still says what it runs
            st["ota"] = {"st": "none", "v": self.version}
        if self.cfg_state is not None:
            st["cfg"] = self.cfg_state
        if self.on_time is not None and (self._tq_at is None or ticks_diff(ticks_ms(), self._tq_at) >= (
                self.time_every if self._tq is None else self.time_retry)):
            self._tq_n = self._tq_n % 0x7FFFFFFF + 1
            self._tq_at = ticks_ms()
            self._tq = [self._tq_n, self._tq_at]
            st["tq"] = self._tq_n
        return cbor.dumps(st)

    def _handle_times(self):
        # the reply to our request only (every bearer's session hears it): the
        # receiver's clock read between our request and the reply's arrival
        while self._times:
            payload, at = self._times.pop(0)
            try:
                m = cbor.loads(payload)
                q, t = m.get("tq"), m.get("t")
            except (ValueError, TypeError, IndexError, AttributeError):
                self.counters["bad_times"] = self.counters.get("bad_times", 0) + 1
                continue
            if self._tq is None or q != self._tq[0] or not isinstance(t, int):
                continue  # a copy on another bearer, or an answer to an older request
            rtt = ticks_diff(at, self._tq[1])
            self._tq = None
            self.on_time(t + rtt // 2, rtt // 2 + 1)

    def _handle_acks(self):
        if self._times:
            self._handle_times()
        while self._acks:
            p = self._acks.pop(0)
            try:
                seqs = decode_ack(p)
            except (ValueError, TypeError, IndexError):
                self.counters["bad_acks"] += 1
                continue
            n = self.j.ack(seqs)
            self.counters["acked"] += n
            for q in seqs:
                self.inflight[0].pop(q, None)
                self.inflight[1].pop(q, None)

    # -------------------------------------------------------- batching

    def _candidates(self, stream, limit):
        # (seq, data, context) not in flight, up to `limit` bytes
        out = []
        size = 0
        now = ticks_ms()
        fl = self.inflight[stream]
        if self.j.count(stream) <= len(fl) and not self._overdue(fl, now):
            return out, size  # nothing new: no walk over the flash
        if self.j.count(stream) < len(fl):
            # records in flight left the journal without our ack (evicted when
            # full): forget them, or they would hide new ones from the check above
            for q in [q for q in fl if not self.j.is_pending(q, stream)]:
                del fl[q]
        it = self.j.alarms() if stream == ALARM else self.j.pending(ROUTINE)
        worst = 1  # the batch's size if every record needed its own epoch header
        for seq, prio, data, ctx in it:
            t = fl.get(seq)
            if t is not None:
                if ticks_diff(now, t) < self.ack_timeout:
                    continue
            cost = len(data) + LEB_MAX_BYTES + _HEADER_COST
            if out and (worst + cost > MAX_BATCH_BYTES or 2 * (len(out) + 1) > MAX_BATCH_ITEMS):
                break  # within what a receiver takes: the rest goes in the next batch
            worst += cost
            if t is not None:
                self.counters["resent"] += 1
            out.append((seq, data, ctx))
            size += len(data) + LEB_MAX_BYTES
            if size >= self.full:
                break
        return out, size

    def _overdue(self, fl, now):
        for t in fl.values():
            if ticks_diff(now, t) >= self.ack_timeout:
                return True
        return False

    def _header_for(self, record, ctx):
        if ctx is not None and epoch_of(ctx) is not None and (epoch_of(ctx) & 0xFF) == record[1]:
            return ctx
        best = None
        for c in self.j.contexts():  # oldest first: the last match is the newest epoch with that tag
            e = epoch_of(c)
            if e is not None and (e & 0xFF) == record[1]:
                best = c
        return best

    def _build(self, recs):
        # The batch (hub.seal's format, written by seal.batch_into) in one buffer
        # allocated once: a fresh 4 KB per batch fragments a heap that mbedTLS shares.
        items = []
        seqs = []
        last = None
        for seq, data, ctx in recs:
            h = self._header_for(data, ctx)
            if h is not None and h != last:
                items.append(h)
                last = h
            items.append(data)
            seqs.append(seq)
        need = batch_room(items)
        out = self._out
        if out is None or len(out) < need:
            out = self._out = bytearray(need + 256)
        return memoryview(out)[:batch_into(out, items)], seqs

    async def _send(self, stream, recs):
        """Publish one batch (with bearers: hand it to them); False if no bearer took it."""
        recs.sort(key=lambda r: r[0])
        payload, seqs = self._build(recs)
        if self.manager is not None:
            # each bearer publishes from its own queue: a black-holed one holds only its copy
            try:
                data = bytes(payload)  # one copy, shared by every bearer that carries it
            except MemoryError:
                # two TLS sessions share the heap: wait for a bearer to finish, never crash
                import gc
                gc.collect()
                self.counters["no_memory"] = self.counters.get("no_memory", 0) + 1
                return False
            if not self.manager.offer(data, seqs, stream, stream == ALARM):
                return False
        now = ticks_ms()
        fl = self.inflight[stream]
        for q in seqs:
            fl[q] = now
        if self.manager is None:
            await self.client.publish(self.up, payload, 1, self.ack_timeout)
        self.counters["batches"] += 1
        self.counters["records"] += len(seqs)
        return True

    async def _pump(self):
        """Send what is due; True if something was sent."""
        sent = False
        while True:
            recs, size = self._candidates(ALARM, self.batch_bytes)
            if not recs:
                break
            if not await self._send(ALARM, recs):
                break
            sent = True
        if self.manager is not None and not self.manager.routine_ready():
            return sent  # the routine bearer is still busy (or there is none): nothing to walk for
        recs, size = self._candidates(ROUTINE, self.batch_bytes)
        if not recs:
            self._waiting_since = None
            return sent
        now = ticks_ms()
        if self._waiting_since is None:
            self._waiting_since = now
        if size >= self.full or ticks_diff(now, self._waiting_since) >= self.batch_age:
            if not await self._send(ROUTINE, recs):
                return sent
            self._waiting_since = None if size < self.full else now
            return True
        return sent

    # -------------------------------------------------------- session

    async def _session(self):
        c = self.client
        await c.connect()
        self.counters["connects"] += 1
        await c.subscribe(self.ack_topic, 1)
        if self.ota is not None or self._ota_factory is not None:
            await c.subscribe(self.ota_topic, 1)
        if self.on_cfg is not None:
            await c.subscribe(cfg_topic(self.hub_hex) + "+", 1)
        self.inflight = ({}, {})  # the broker session is clean: what was in flight goes again
        self._up = True
        self.log("connected to %s:%d" % (self.cfg["host"], self.cfg.get("port", 8883)))
        while True:
            self._handle_acks()
            if not c.connected:
                raise OSError(errno.ECONNRESET, "link lost: %r" % (c.error,))
            if not c.alive():
                raise OSError(errno.ETIMEDOUT, "nothing heard from the broker for %d ms" % c.idle_ms())
            if ticks_diff(ticks_ms(), c.last_tx) > c.keepalive * 500 or c.idle_ms() > c.keepalive * 500:
                await c.ping()
            if await self._pump():
                continue
            if self._ota_due() or self._status_at is None or \
                    ticks_diff(ticks_ms(), self._status_at) >= self.status_every:
                self._status_at = ticks_ms()
                await c.publish(self.status_topic, self._status_payload(), 0)
                if self.ota is not None:
                    self.ota.reported()  # booted, broker reached, status sent: confirms a trial
            self.wake.clear()
            try:
                await mqtt.wait_ms(asyncio, self.wake.wait(), self.poll)
            except asyncio.TimeoutError:
                pass

    def _make_client(self, bearer=None):
        # with a bearer: its own client id (the broker would otherwise end one
        # bearer's session when the other connects), keepalive and path
        cfg = self.cfg
        cid = cfg.get("client_id", "hub-" + self.hub_hex)
        ka = cfg.get("keepalive", 30)
        if bearer is not None:
            cid += "-" + bearer.name
            ka = getattr(bearer, "keepalive", None) or ka
        return mqtt.Client(
            cfg["host"], cfg.get("port", 8883), cid, cfg.get("user", self.hub_hex), self._password(), ka,
            self.tls_context(), cfg.get("server_hostname"), self._on_message,
            opener=bearer.open if bearer is not None else None)

    async def _run_managed(self):
        m = self.manager
        m.start()
        try:
            while True:
                self._handle_acks()
                if m.any_live():
                    if await self._pump():
                        continue
                    if m.routine_ready() and (self._ota_due() or self._status_at is None or
                                              ticks_diff(ticks_ms(), self._status_at) >= self.status_every):
                        self._status_at = ticks_ms()
                        if m.offer(self._status_payload(), None, None, False, 0) and self.ota is not None:
                            self.ota.reported()
                self.wake.clear()
                try:
                    await mqtt.wait_ms(asyncio, self.wake.wait(), self.poll)
                except asyncio.TimeoutError:
                    pass
        finally:
            m.stop()

    async def run(self):
        if self.manager is not None:
            return await self._run_managed()
        self.client = self._make_client()
        fails = 0
        while True:
            self._up = False
            try:
                await self._session()
            except asyncio.CancelledError:
                self.client.close()
                raise
            except Exception as e:
                self.counters["link_lost"] += 1
                k = mqtt.cause(e)
                if k == mqtt.LOST and self.client.error is not None:
                    k = mqtt.cause(self.client.error)  # why the reader task saw the link go
                if k == mqtt.MEMORY:
                    self.memory_errors += 1
                self.last_error = repr(e)
                try:
                    import io, sys
                    b = io.StringIO()
                    sys.print_exception(e, b)
                    self.last_error = b.getvalue()
                except Exception:
                    pass
                self.log("down: %r" % (e,))
            self.client.close()
            self._handle_acks()
            if self._up:
                fails = 0  # a session was up: start the backoff again from its shortest step
            delay = backoff_ms(BACKOFF_MS, fails)
            fails += 1
            await asyncio.sleep_ms(delay) if hasattr(asyncio, "sleep_ms") else await asyncio.sleep(delay / 1000)
