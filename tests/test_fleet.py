"""A receiver fleet on a 3-node NATS cluster (issue 17, item 4; docs/uplink.md, "Fleet").

The fault test: virtual hubs (the firmware's own hub/uplink.py on the unix
port, MQTT 3.1.1 over TLS to nats-server's MQTT gateway through a loopback
front), two receivers as processes sharing the lanes' JetStream consumers,
and a throwaway PostgreSQL. Virtual hubs rather than paho publishers: what
must hold across a node's death is the hub's own resend-until-acked and
its reconnect (a SUBACK refused while JetStream elects a leader included),
so the firmware that does it is what runs. While the hubs send, a node
a hub is connected to is killed (SIGKILL) and, later, a receiver;
the node comes back afterwards. Every record each hub appended must be in
PostgreSQL exactly once.

The others use paho hubs sealing with the host sealer (receiver_kit), where
the point is the receivers' side: each hub's batches stored in order
across three receivers, a hub the database refuses for a while waiting in
its lane, the per-hub permissions, and `samband receive --nats`.
"""

import asyncio
import time

import pytest
from conftest import TESTS, firmware_tree
from fleet_kit import ReceiverProcess, pg_rows
from receiver_kit import Depot, HostSealer, MqttHub, glucose
from test_cli_errors import one_line, run
from test_uplink_store import pg_url  # noqa: F401 (a throwaway PostgreSQL cluster)

from samband.rig import cluster as nc
from samband.rig.uplink import UplinkRig

MAIN = TESTS / "data" / "uplink_main.py"
HUBS = ["00005a4d0f01", "00005a4d0f02"]
WAIT = 120  # s: a deadline for a condition, not a speed figure


@pytest.fixture
def fleet(tmp_path, pg_url):  # noqa: F811
    why = nc.available()
    if why:
        pytest.skip(why)
    cl = nc.NatsCluster(tmp_path / "cluster")
    rig = UplinkRig(tmp_path, db=pg_url, firmware=firmware_tree(), broker=cl)
    receivers = []
    try:
        yield rig, cl, receivers, pg_url
    finally:
        for rx in receivers:
            rx.kill()
        rig.stop()


def drained(h, total):
    st = h.state()
    return st.get("made") == total and st.get("pending") == 0


def test_node_and_receiver_killed_mid_run(fleet, tmp_path):
    rig, cl, receivers, url = fleet
    total = 160
    hubs = [rig.add_hub(u, MAIN, {"total": total, "interval_ms": 25, "alarm_every": 17}) for u in HUBS]
    rig.start_broker()
    keys = {u: h.public for u, h in rig.hubs.items()}
    for i in range(2):
        receivers.append(ReceiverProcess(tmp_path, f"rx{i}", rig.receiver_keys, keys, url, cl).start())
    for h in hubs:
        h.vhub.start()

    def made(h):
        return h.state().get("made", 0)

    def wait(cond, what):
        rig.wait(cond, WAIT, what)

    wait(lambda: all(made(h) >= 40 for h in hubs), "40 readings from each hub")
    picked = []  # a node hubs are connected to and talking through (the front says which)
    wait(lambda: picked.append(cl.busiest_node()) or picked[-1] is not None, "a hub talking through the front")
    victim = picked[-1]
    cl.kill(victim)
    wait(lambda: all(made(h) >= 80 for h in hubs), "80 readings after a node died")
    wait(lambda: receivers[0].counters().get("batches", 0) > 0, "the first receiver to have stored batches")
    receivers[0].kill()
    wait(lambda: all(made(h) >= 120 for h in hubs), "120 readings after a receiver died")
    cl.start_node(victim)
    for h in hubs:
        wait(lambda h=h: drained(h, total), f"hub {h.uid} to drain")

    for h in hubs:
        got = pg_rows(url, h.uid)
        seqs = [s for s, _ in got]
        appended = h.appended()
        assert len(appended) == total
        missing = sorted(set(appended) - set(seqs))
        assert not missing, f"hub {h.uid} lost {missing[:20]}"
        assert len(seqs) == len(set(seqs)) == total, f"hub {h.uid}: {len(seqs)} rows for {total} readings"
        assert [rec for _, rec in got] == [appended[s][1] for s in seqs]  # each reading is the one appended
    # the faults were real: a hub lost its node and came back through the front
    assert sum(h.state().get("connects", 0) for h in hubs) > len(hubs)
    assert receivers[1].proc.poll() is None, receivers[1].log_tail()
    assert receivers[1].counters().get("batches", 0) > 0  # both took work from the one queue
    assert receivers[1].counters().get("errors", 0) == 0


def test_each_hubs_batches_are_stored_in_order(fleet):
    """Three receivers take four hubs' batches from the lanes: every hub's batches are
    committed one after the other in the order it sent them, however the receivers
    share the work. (One pull consumer for all, as first built, let two receivers hold
    consecutive batches of one hub and commit the later first.)"""
    from samband.receiver.fleet import FleetReceiver
    from samband.receiver.ingest import Ingest
    from samband.receiver.store import open_store
    rig, cl, receivers, url = fleet
    hubs = ["00005a4d0e%02x" % i for i in range(4)]
    depot = Depot(hubs)
    pw = {u: cl.add_hub(u) for u in hubs}
    cl.start()
    rxs = []
    try:
        for i in range(3):
            rxs.append(FleetReceiver(Ingest(depot.opener(), open_store(url)), cl.servers, cl.ca_pem, "receiver",
                                     cl.users["receiver"], ack_wait=3.0, name=f"rx{i}").start())
        clients = {u: MqttHub(cl, u, pw[u]) for u in hubs}
        sealers = {u: depot.sealer(u) for u in hubs}
        for b in range(30):
            for u in hubs:
                seqs = range(b * 5 + 1, b * 5 + 6)
                clients[u].send([sealers[u].header] + [sealers[u].seal(q, glucose(q)) for q in seqs])
        for u in hubs:
            rig.wait(lambda u=u: clients[u].got() >= set(range(1, 151)), WAIT, f"hub {u}'s acks")
        import psycopg
        with psycopg.connect(url) as c:
            for u in hubs:
                by_commit = [q for (q,) in c.execute("SELECT seq FROM readings WHERE hub = %s ORDER BY received, seq",
                                                     (u,)).fetchall()]
                assert by_commit == list(range(1, 151)), f"hub {u} stored out of order: {by_commit}"
        per = [rx.ingest.counters["batches"] for rx in rxs]
        assert sum(per) == 120 and all(n > 0 for n in per), per
        for h in clients.values():
            h.close()
    finally:
        for rx in rxs:
            rx.stop()
            rx.ingest.store.close()


def test_a_hub_the_database_refuses_for_a_while_waits_in_its_lane(fleet):
    """Another session holds one hub's advisory lock (as a long transaction on its rows
    would): the receivers' writes for that hub time out (transient), are nak'ed and come
    back after a delay, while another hub's batches go through; once the lock is gone,
    the waiting hub's batches are all stored, once each, in the order it sent them."""
    import psycopg

    from samband.receiver.fleet import FleetReceiver
    from samband.receiver.ingest import Ingest
    from samband.receiver.store import open_store
    rig, cl, receivers, url = fleet
    stuck, free = "00005a4d0d01", "00005a4d0d02"  # in different lanes (one lane would hold both up)
    depot = Depot([stuck, free])
    pw = {u: cl.add_hub(u) for u in (stuck, free)}
    cl.start()
    open_store(url).close()  # the schema, before the lock is taken
    rxs = []
    lock = psycopg.connect(url, autocommit=True)
    try:
        for i in range(2):
            rxs.append(FleetReceiver(Ingest(depot.opener(), open_store(url)), cl.servers, cl.ca_pem, "receiver",
                                     cl.users["receiver"], ack_wait=3.0, name=f"rx{i}").start())
        clients = {u: MqttHub(cl, u, pw[u]) for u in (stuck, free)}
        sealers = {u: depot.sealer(u) for u in (stuck, free)}
        lock.execute("SELECT pg_advisory_lock(hashtext(%s))", (stuck,))
        for b in range(10):
            for u in (stuck, free):
                seqs = range(b * 4 + 1, b * 4 + 5)
                clients[u].send([sealers[u].header] + [sealers[u].seal(q, glucose(q)) for q in seqs])
        rig.wait(lambda: clients[free].got() >= set(range(1, 41)), WAIT, "the free hub's acks")
        rig.wait(lambda: sum(rx.ingest.counters["transient"] for rx in rxs) >= 3, WAIT, "refused writes")
        assert not clients[stuck].got()  # nothing of the stuck hub was acknowledged while the lock held
        lock.execute("SELECT pg_advisory_unlock(hashtext(%s))", (stuck,))
        rig.wait(lambda: clients[stuck].got() >= set(range(1, 41)), WAIT, "the stuck hub's acks")
        with psycopg.connect(url) as c:
            for u in (stuck, free):
                by_commit = [q for (q,) in c.execute("SELECT seq FROM readings WHERE hub = %s ORDER BY received, seq",
                                                     (u,)).fetchall()]
                assert by_commit == list(range(1, 41)), f"hub {u}: {by_commit}"
        assert sum(rx.ingest.counters["errors"] for rx in rxs) == 0
        for h in clients.values():
            h.close()
    finally:
        lock.close()
        for rx in rxs:
            rx.stop()
            rx.ingest.store.close()


def test_hub_is_confined_to_its_own_topics(tmp_path):
    """Per-hub permissions as strict as Mosquitto's ACL: a hub's publish to another hub's
    up topic is dropped, and it can subscribe neither to another hub's acks nor to the
    gateway's internal delivery subjects."""
    why = nc.available()
    if why:
        pytest.skip(why)
    import threading

    import paho.mqtt.client as mqtt
    with nc.NatsCluster(tmp_path / "cluster") as cl:
        pa, pb = cl.add_hub(HUBS[0]), cl.add_hub(HUBS[1])
        cl.reload()

        def client(uid, pw):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-" + uid, protocol=mqtt.MQTTv311)
            c.username_pw_set(uid, pw)
            c.tls_set(ca_certs=str(cl.ca_pem))
            c.subacks = []
            done = threading.Event()
            c.on_subscribe = lambda cl_, u, mid, codes, p=None: (c.subacks.append([x.value for x in codes]),
                                                                done.set())
            c.on_connect = lambda *a: done.set()
            c.connect("localhost", cl.port, 30)
            c.loop_start()
            assert done.wait(20)
            c.done = done
            return c

        end = time.monotonic() + WAIT
        while True:  # a reload is asynchronous: wait until hub B may log in
            try:
                b = client(HUBS[1], pb)
                break
            except AssertionError:
                if time.monotonic() > end:
                    raise
        a = client(HUBS[0], pa)
        for topic in (f"samband/{HUBS[0]}/ack", "$MQTT/sub/#", f"samband/{HUBS[1]}/ack"):
            b.done.clear()
            b.subscribe(topic, 1)
            assert b.done.wait(20)
        assert b.subacks[0][0] >= 0x80 and b.subacks[1][0] >= 0x80, b.subacks  # refused
        assert b.subacks[2] == [1]  # its own: granted QoS 1
        got = []
        b.on_message = lambda c, u, m: got.append(m.topic)
        a.publish(f"samband/{HUBS[1]}/ack", b"x", qos=1).wait_for_publish(20)  # not a hub's to write

        def publish():  # in this order on one connection: the forged batch reaches the stream first, if at all
            a.publish(f"samband/{HUBS[1]}/up", b"forged", qos=1).wait_for_publish(20)
            a.publish(f"samband/{HUBS[0]}/up", b"mine", qos=1).wait_for_publish(20)
        subjects = asyncio.run(queue_after(cl, publish))
        assert [d for _, d in subjects] == [b"mine"], subjects  # not the forged one
        assert subjects[0][0].startswith("samband.up.") and subjects[0][0].endswith("." + HUBS[0])
        assert got == []
        for c in (a, b):
            c.disconnect()
            c.loop_stop()


def test_samband_receive_takes_the_work_queue(tmp_path, pg_url):  # noqa: F811
    """`samband receive --nats` is a receiver of the fleet: a hub's batch through the
    cluster lands in PostgreSQL and the hub gets its ack; an unreachable cluster is one line."""
    import os
    import subprocess
    import sys
    import threading

    from nacl import bindings as nb

    from samband.device.depot import Depot as DepotFolder
    why = nc.available()
    if why:
        pytest.skip(why)
    uid = "00005a4d0c01"
    folder = DepotFolder(tmp_path / "depot")
    kid, rpk = folder.receiver_publics()[0]
    sk = os.urandom(32)
    folder.add_hub(bytes.fromhex(uid), nb.crypto_scalarmult_base(sk))
    sealer = HostSealer(bytes.fromhex(uid), sk, rpk, kid=kid)
    cl = nc.NatsCluster(tmp_path / "cluster")
    pw = cl.add_hub(uid)
    (tmp_path / "rx.pw").write_text(cl.users["receiver"])
    args = ["receive", "--depot", str(tmp_path / "depot"), "--db", pg_url, "--ca", str(cl.ca_pem),
            "--password-file", str(tmp_path / "rx.pw"), "--quiet"]
    with cl:
        proc = subprocess.Popen([sys.executable, "-m", "samband.cli", *args, "--nats", ",".join(cl.servers)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            banner = []
            t = threading.Thread(target=lambda: banner.append(proc.stdout.readline()), daemon=True)
            t.start()
            t.join(WAIT)
            assert banner and banner[0].startswith("samband receive: NATS tls://"), (banner, proc.poll())
            hub = MqttHub(cl, uid, pw)
            hub.send([sealer.header] + [sealer.seal(q, glucose(q)) for q in range(1, 6)])
            end = time.monotonic() + WAIT
            while hub.got() != set(range(1, 6)):
                assert time.monotonic() < end, "no ack from samband receive"
                time.sleep(0.05)
            assert [q for q, _ in pg_rows(pg_url, uid)] == [1, 2, 3, 4, 5]
            hub.close()
        finally:
            proc.terminate()
            proc.wait(20)
        dead = cl.nodes[0].client_port
    one_line(run(*args, "--nats", f"tls://127.0.0.1:{dead}"), "no work queue on the NATS cluster",
             f"127.0.0.1:{dead}", "--nats")


async def queue_after(cl, publish):
    """Make the work queue (as a receiver does), run publish(), then take everything the
    queue holds through the lanes' consumers: [(subject, payload)]."""
    import ssl

    import nats

    from samband.receiver.fleet import ensure_queue
    ctx = ssl.create_default_context(cafile=str(cl.ca_pem))
    n = await nats.connect(servers=cl.servers, tls=ctx, user="receiver", password=cl.users["receiver"])
    try:
        js = n.jetstream()
        end = time.monotonic() + WAIT
        while True:
            try:
                await ensure_queue(js)
                break
            except Exception:
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.3)
        await asyncio.get_running_loop().run_in_executor(None, publish)
        while (held := (await js.stream_info(nc.STREAM)).state.messages) == 0:
            assert time.monotonic() < end, "nothing reached the stream"
            await asyncio.sleep(0.05)
        out = []

        async def take(m):
            out.append((m.subject, m.data))
            await m.ack()
        for lane in range(cl.partitions):
            await n.subscribe(nc.consumer(lane)[1], queue=nc.GROUP, cb=take)
        while len(out) < held:
            assert time.monotonic() < end, f"{held} in the stream, {len(out)} delivered"
            await asyncio.sleep(0.05)
        return out
    finally:
        await n.close()
