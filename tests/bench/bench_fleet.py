"""The receiver fleet on a 3-node NATS cluster (docs/uplink.md, "Fleet"),
sized for production in docs/deploy.md:

* throughput, readings/s from the stream into PostgreSQL, with 1, 2 and 4
  receiver processes sharing the lanes' consumers, and their ratios to 1 in
  this run. The same sealed batches each round (20 hubs x 25 batches x 20
  readings), published beforehand through the MQTT gateway by paho hubs;
  the database emptied between rounds. The rate is the readings committed
  (the `received` column) from the moment the last receiver is up (they
  start side by side; the first to be up works alone until then) or the
  first commit, if later, to the last commit: neither the receivers'
  start-up nor the publishing is counted. Beside it the receivers' CPU
  time per reading (/proc; start-up excluded), all of them together and
  each one over the readings it stored: what a receiver costs whatever
  else the machine is doing; and likewise PostgreSQL's processes' and the
  three NATS nodes' CPU per reading over the same span.
* the steady state's shape: 20 hubs x 60 batches of one reading each (a
  hub sends a reading within batch_age_ms, 2 s, and its readings are a
  minute or more apart), with 4 receivers: batches/s and CPU per batch.
* the ceiling, in the same run and the same database: the rows the
  receivers wrote, read back and written again by a plain bulk-insert loop
  (COPY, and executemany of the receiver's own INSERT, in transactions of
  5,000 rows; the receiver commits one transaction per batch of 20 and
  opens, de-duplicates and counts besides). The fleet's rate as a share of
  it says how much room is left above the receivers in this database.
* for reference: the same batches through one Ingest in this process
  straight into the same database (no broker); and hub statuses (a
  transaction each, one per hub every 10 s) written by it.
* failover: two receivers working while hubs publish a batch every 50 ms
  each; the node that leads the stream is killed. Figure: the longest pause
  between two commits after the kill (the new leader's election and the
  receivers' and hubs' reconnects), next to the longest pause before it.

A throwaway PostgreSQL (fsync off, as the tests start it) and the cluster
share this machine's cores with the receivers (the first line says how
many): the figures say how the work scales here, not what a server room
would do. With 2 cores, 4 receivers cannot scale past 2.
"""

import asyncio
import os
import ssl
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
ROUNDS = (1, 2, 4)
SINGLES = 60  # batches of one reading per hub in the steady-state round
CHUNK = 5000  # rows per transaction of the bulk-insert ceiling
COLUMNS = ("hub, seq, epoch, device, mdc, prio, hts, dts, unit, reading, received, "
           "devkey, dup_of, boot, mono, utc, utc_src")  # Store.INSERT's, in its order


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
        cores = os.cpu_count()
        figure(f"this machine: {cores} cores shared by PostgreSQL, the 3 NATS nodes, the receivers and this process"
               f" (so {max(ROUNDS)} receivers cannot scale past {cores}); load average now",
               os.getloadavg()[0])
        rates = {}
        for n in ROUNDS:
            rates[n], cpu, each, stored, inside, side = fleet_round(tmp, url, cl, depot, keys, hubs, batches, n)
            figure(f"fleet ingest, {n} receiver process(es), stream -> PostgreSQL", round(rates[n]),
                   f"readings/s ({inside} of {total} readings committed once all {n} were up)")
            if n > 1:
                figure(f"  fleet scaling, {n} receivers / 1, same run ({cores} cores)",
                       round(rates[n] / rates[1], 2), "x")
            figure(f"  the receivers' CPU per reading, all {n} together", round(cpu / total * 1e6), "us")
            figure(f"  each receiver's CPU per reading it stored ({n})",
                   " ".join(f"{e / s * 1e6:.0f}" if s else "-" for e, s in zip(each, stored)),
                   "us (readings each: " + " ".join(str(s) for s in stored) + ")")
            for what, sec in side.items():
                figure(f"  {what}'s CPU per reading ({n}; over those committed once all were up)",
                       round(sec / inside * 1e6), "us")
        # A hub's steady state: a reading every minute or so and batch_age_ms 2 s make
        # nearly every batch one reading, so the per-batch cost is what a fleet pays.
        singles = {u: [[sealers[u].header, sealers[u].seal(q, glucose(q))] for q in range(1001, 1001 + SINGLES)]
                   for u in HUBS}
        n = max(ROUNDS)
        rate1, cpu, each, stored, inside, side = fleet_round(tmp, url, cl, depot, keys, hubs, singles, n)
        figure(f"fleet ingest, batches of 1 reading (a hub's steady state), {n} receivers", round(rate1),
               f"batches/s ({inside} of {len(HUBS) * SINGLES} committed once all {n} were up)")
        figure(f"  the receivers' CPU per batch of 1, all {n} together", round(cpu / (len(HUBS) * SINGLES) * 1e6),
               "us")
        for what, sec in side.items():
            figure(f"  {what}'s CPU per batch of 1", round(sec / inside * 1e6), "us")
        empty(url)
        from samband.receiver.ingest import Ingest
        ing = Ingest(depot.opener(), open_store(url))
        t = time.perf_counter()
        for u in HUBS:
            for items in batches[u]:
                ing.batch(u, batch(items))
        direct = total / (time.perf_counter() - t)
        figure("reference: one Ingest in-process, no broker, same database", round(direct), "readings/s")
        status_figures(ing)
        ing.store.close()
        ceiling = bulk_insert(url, total)
        for how, rate in ceiling.items():
            figure(f"ceiling: plain bulk insert of the same rows, {how}, {CHUNK} rows a transaction",
                   round(rate), "readings/s")
        top = max(ceiling.values())
        for n in ROUNDS:
            figure(f"fleet's share of the ceiling (the faster bulk loop), {n} receiver(s)",
                   round(rates[n] / top * 100, 1), "%")
        failover(tmp, url, cl, depot, hubs, sealers, keys)
        for h in hubs.values():
            h.close()


def status_figures(ing, n=2000):
    """A hub sends its status every status_ms (10 s) while connected, and each
    is a transaction of its own (Store.status): at 10,000 hubs that is 1,000 a
    second, more transactions than the readings need (docs/deploy.md)."""
    import cbor2
    payload = cbor2.dumps({"pending": 3, "alarms": 0, "ota": {"st": "none", "v": "0.1.0"}})
    before = dict(ing.counters)
    t, c = time.perf_counter(), time.process_time()
    for i in range(n):
        if ing.status(HUBS[i % len(HUBS)], payload) is None:
            raise RuntimeError(f"status refused: {dict(ing.counters)} (before: {before})")
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    figure("reference: hub statuses written by one Ingest in-process, same database", round(n / wall), "statuses/s")
    figure("  its CPU per status (this process: open, parse, the driver; PostgreSQL not counted)",
           round(cpu / n * 1e6), "us")


def fleet_round(tmp, url, cl, depot, keys, hubs, batches, n):
    """Publish the batches, start n receivers side by side, wait until all is
    stored; (rate over the span once all n were up, their CPU seconds from
    each one's start, [CPU each], [stored each], readings in the span)."""
    total = sum(len(items) - 1 for bs in batches.values() for items in bs)
    count = sum(len(bs) for bs in batches.values())
    empty(url)
    for u, bs in batches.items():
        for items in bs:
            hubs[u].send(items)
    wait(lambda: queue_depth(cl) == count, 120, "the batches in the stream")
    rxs = [ReceiverProcess(tmp, f"rx{n}-{i}-{count}", {7: depot.rsk}, keys, url, cl, ack_wait=3.0) for i in range(n)]
    try:
        with ThreadPoolExecutor(n) as pool:  # side by side, so that the first has little head start
            cpu0 = list(pool.map(started_cpu, rxs))  # each after its own start-up (imports, connecting)
        t_all = time.time()
        side0 = side_cpu(url, cl)
        wait(lambda: len(commits(url)) >= total, 300, f"{total} readings with {n} receiver(s)")
        each = [rx.cpu() - c0 for rx, c0 in zip(rxs, cpu0)]
        side = {k: v - side0[k] for k, v in side_cpu(url, cl).items()}
        wait(lambda: sum(rx.counters().get("stored", 0) for rx in rxs) >= total, 10,
             "the receivers' reports of what they stored")
        stored = [rx.counters().get("stored", 0) for rx in rxs]
    finally:
        for rx in rxs:
            rx.stop()
    c = commits(url)
    inside = [x for x in c if x >= t_all]  # while all n were up (the first starts earlier than the last)
    return len(inside) / max(c[-1] - max(t_all, c[0]), 1e-6), sum(each), each, stored, len(inside), side


def proc_cpu(pid):
    """CPU seconds (user + system) of one process from /proc; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def side_cpu(url, cl):
    """{"PostgreSQL": CPU s of the postmaster and its children (backends, WAL
    writer, checkpointer; a process that ended meanwhile is not counted),
    "NATS": CPU s of the three nodes}."""
    from urllib.parse import parse_qs, urlsplit
    out = {"NATS": sum(proc_cpu(nd.proc.pid) for nd in cl.nodes if nd.alive())}
    data = Path(parse_qs(urlsplit(url).query)["host"][0]) / "data"
    master = int((data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(d))
            except OSError:
                pass
    out["PostgreSQL"] = sum(proc_cpu(p) for p in pids)
    return out


def started_cpu(rx):
    rx.start()
    return rx.cpu()


def bulk_insert(url, total):
    """{how: readings/s} of a plain loop writing the rows now in `readings`
    (the receivers' own) back into the emptied table, indexes and all: what
    this database takes when nothing but inserting is done."""
    import psycopg
    with psycopg.connect(url) as c:
        rows = c.execute(f"SELECT {COLUMNS} FROM readings ORDER BY received, hub, seq").fetchall()
    if len(rows) != total:
        raise RuntimeError(f"{len(rows)} rows to copy, expected {total}")
    ins = "INSERT INTO readings (%s) VALUES (%s) ON CONFLICT (hub, seq) DO NOTHING" % (
        COLUMNS, ", ".join(["%s"] * len(COLUMNS.split(","))))
    out = {}
    for how in ("COPY", "executemany"):
        empty(url)
        with psycopg.connect(url) as c:
            t = time.perf_counter()
            for i in range(0, len(rows), CHUNK):
                part = rows[i:i + CHUNK]
                with c.cursor() as cur:
                    if how == "COPY":
                        with cur.copy(f"COPY readings ({COLUMNS}) FROM STDIN") as cp:
                            for r in part:
                                cp.write_row(r)
                    else:
                        cur.executemany(ins, part)
                c.commit()
            out[how] = len(rows) / (time.perf_counter() - t)
            n = c.execute("SELECT count(*) FROM readings").fetchone()[0]
            if how == "COPY":
                size, heap = c.execute("SELECT pg_total_relation_size('readings'), "
                                       "pg_relation_size('readings')").fetchone()
                figure("PostgreSQL bytes per glucose reading stored (table, TOAST and every index)",
                       round(size / n), f"B (the table alone {round(heap / n)} B)")
        if n != total:
            raise RuntimeError(f"the bulk {how} stored {n} rows, expected {total}")
    return out


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
