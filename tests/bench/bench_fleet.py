"""The receiver fleet on a 3-node NATS cluster (docs/uplink.md, "Fleet"):

* throughput, readings/s from the stream into PostgreSQL, with 1, 2 and 3
  receiver processes sharing the one durable consumer. The same sealed
  batches each round (20 hubs x 25 batches x 20 readings), published
  beforehand through the MQTT gateway by paho hubs; the database emptied
  between rounds. The rate is the readings over the span between the first
  and the last commit (the `received` column), so neither the receivers'
  start-up nor the publishing is counted. Beside it the receivers' own CPU
  time per reading (/proc; start-up excluded), which says what a receiver
  costs whatever else the machine is doing.
* for reference, in the same run: the same batches through one Ingest in
  this process straight into the same database (no broker): what one
  receiver's own work costs here.
* failover: two receivers working while hubs publish a batch every 50 ms
  each; the node that leads the stream is killed. Figure: the longest pause
  between two commits after the kill (the new leader's election and the
  receivers' and hubs' reconnects), next to the longest pause before it.

A throwaway PostgreSQL (fsync off, as the tests start it) and the cluster
share this machine's cores with the receivers: the figures say how the
work scales here, not what a server room would do.
"""

import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

from benchlib import TESTS, figure

sys.path.insert(0, str(TESTS))

from fleet_kit import ReceiverProcess  # noqa: E402
from receiver_kit import Depot, MqttHub, glucose  # noqa: E402
from test_uplink_store import PgUnavailable, pg_cluster  # noqa: E402

from hub.seal import batch  # noqa: E402
from samband.receiver.fleet import ensure_queue  # noqa: E402
from samband.receiver.store import open_store  # noqa: E402
from samband.rig import cluster as nc  # noqa: E402

HUBS = ["00005a4d%04x" % (0x1000 + i) for i in range(20)]
BATCHES, PER = 25, 20


def _js(cl):
    import nats

    async def go():
        ctx = ssl.create_default_context(cafile=str(cl.ca_pem))
        n = await nats.connect(servers=cl.servers, tls=ctx, user="receiver", password=cl.users["receiver"])
        return n, n.jetstream()
    return go()


def queue_depth(cl):
    async def go():
        n, js = await _js(cl)
        try:
            end = time.monotonic() + 60
            while True:
                try:
                    await ensure_queue(js)
                    return (await js.stream_info(nc.STREAM)).state.messages
                except Exception:
                    if time.monotonic() > end:
                        raise
                    await asyncio.sleep(0.3)
        finally:
            await n.close()
    return asyncio.run(go())


def stream_leader(cl):
    async def go():
        n, js = await _js(cl)
        try:
            return (await js.stream_info(nc.STREAM)).cluster.leader
        finally:
            await n.close()
    return asyncio.run(go())


def commits(url):
    import psycopg
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute("SELECT received FROM readings ORDER BY received").fetchall()]


def empty(url):
    import psycopg
    with psycopg.connect(url) as c:
        c.execute("TRUNCATE readings, hubs, quarantine")


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.1)


def main():
    why = nc.available()
    if why:
        print("skipped:", why)
        return
    try:
        with pg_cluster() as url, tempfile.TemporaryDirectory(prefix="samband-fleet-") as tmp:
            run(Path(tmp), url)
    except PgUnavailable as e:
        print("skipped:", e)


def run(tmp, url):
    depot = Depot(HUBS)
    cl = nc.NatsCluster(tmp / "cluster")
    pw = {u: cl.add_hub(u) for u in HUBS}
    open_store(url).close()  # the schema, before any receiver
    with cl:
        queue_depth(cl)  # the stream and consumer exist before anything is published
        hubs = {u: MqttHub(cl, u, pw[u]) for u in HUBS}
        sealers = {u: depot.sealer(u) for u in HUBS}
        batches = {u: [] for u in HUBS}
        for u in HUBS:
            s = sealers[u]
            for b in range(BATCHES):
                seqs = range(b * PER + 1, (b + 1) * PER + 1)
                batches[u].append([s.header] + [s.seal(q, glucose(q)) for q in seqs])
        total = len(HUBS) * BATCHES * PER
        keys = {u: pk for u, (sk, pk) in depot.hubs.items()}
        rates, cpu = {}, {}
        for n in (1, 2, 3):
            empty(url)
            for u in HUBS:
                for items in batches[u]:
                    hubs[u].send(items)
            wait(lambda: queue_depth(cl) == len(HUBS) * BATCHES, 120, "the batches in the stream")
            rxs = [ReceiverProcess(tmp, f"rx{n}-{i}", {7: depot.rsk}, keys, url, cl, ack_wait=3.0)
                   for i in range(n)]
            try:
                for rx in rxs:
                    rx.start()
                cpu0 = sum(rx.cpu() for rx in rxs)  # after start-up (imports, connecting)
                wait(lambda: len(commits(url)) >= total, 300, f"{total} readings with {n} receiver(s)")
                cpu[n] = sum(rx.cpu() for rx in rxs) - cpu0
            finally:
                for rx in rxs:
                    rx.stop()
            c = commits(url)
            rates[n] = total / max(c[-1] - c[0], 1e-6)
            figure(f"fleet ingest, {n} receiver process(es), stream -> PostgreSQL", round(rates[n]), "readings/s")
            figure(f"  the receivers' CPU per reading ({n})", round(cpu[n] / total * 1e6), "us")
        empty(url)
        from samband.receiver.ingest import Ingest
        ing = Ingest(depot.opener(), open_store(url))
        t = time.perf_counter()
        for u in HUBS:
            for items in batches[u]:
                ing.batch(u, batch(items))
        direct = total / (time.perf_counter() - t)
        ing.store.close()
        figure("reference: one Ingest in-process, no broker, same database", round(direct), "readings/s")
        figure("fleet scaling, 2 receivers / 1", round(rates[2] / rates[1], 2), "x")
        figure("fleet scaling, 3 receivers / 1", round(rates[3] / rates[1], 2), "x")
        failover(tmp, url, cl, depot, hubs, sealers, keys)
        for h in hubs.values():
            h.close()


def failover(tmp, url, cl, depot, hubs, sealers, keys):
    empty(url)
    rxs = [ReceiverProcess(tmp, f"fo-{i}", {7: depot.rsk}, keys, url, cl, ack_wait=3.0) for i in range(2)]
    for rx in rxs:
        rx.start()
    seq = {u: 10_000 for u in HUBS}
    send_hubs = HUBS[:6]
    t_kill = None
    try:
        end = time.monotonic() + 16
        killed = False
        while time.monotonic() < end:
            for u in send_hubs:
                q = seq[u] = seq[u] + 1
                try:
                    hubs[u].c.publish(f"samband/{u}/up", batch_of(sealers[u], q), qos=1)
                except Exception:
                    pass
            time.sleep(0.05)
            if not killed and time.monotonic() > end - 12:
                leader = stream_leader(cl)
                t_kill = time.time()
                cl.kill([nd.name for nd in cl.nodes].index(leader))
                killed = True
        time.sleep(4)
    finally:
        for rx in rxs:
            rx.stop()
    c = commits(url)
    before = [b - a for a, b in zip(c, c[1:]) if b < t_kill]
    after = [b - a for a, b in zip(c, c[1:]) if b >= t_kill]
    figure("fleet failover: longest pause between commits after the stream leader's node is killed",
           round(max(after) if after else float("nan"), 2), "s")
    figure("fleet failover: longest pause between commits before it", round(max(before) if before else 0, 3), "s")


def batch_of(sealer, q):
    return batch([sealer.header, sealer.seal(q, glucose(q))])


if __name__ == "__main__":
    main()
