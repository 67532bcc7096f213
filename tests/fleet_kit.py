"""Helpers for the fleet tests and benchmark: receivers of a fleet as real
processes (`python -m samband.receiver.fleet`), so that killing one is a
SIGKILL in the middle of whatever it was doing, and the rows of a
PostgreSQL database read through a connection of the test's own."""

import os
import signal
import subprocess
import sys
import threading
import time

from samband.receiver.fleet import worker_config
from samband.rig.broker import RECEIVER_USER


class ReceiverProcess:
    def __init__(self, folder, name, receiver_keys, hubs, db, cluster, ack_wait=3.0):
        self.name = name
        self.cfg = folder / f"{name}.json"
        self.log = folder / f"{name}.log"
        self.report_file = folder / f"{name}.report.json"
        worker_config(self.cfg, receiver_keys, hubs, db, cluster.servers, cluster.ca_pem,
                      cluster.users[RECEIVER_USER], ack_wait=ack_wait, replicas=min(3, len(cluster.nodes)),
                      report=self.report_file)
        self.proc = None

    def start(self, timeout=60):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "samband.receiver.fleet", str(self.cfg)],
                                     stdout=subprocess.PIPE, stderr=logf, start_new_session=True)
        logf.close()
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                if line.strip() == b"ready":
                    ready.set()
        threading.Thread(target=read, daemon=True).start()
        end = time.monotonic() + timeout
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"receiver {self.name} did not start: " + self.log_tail())
        return self

    def cpu(self):
        """CPU seconds the process has used so far (user + system, from /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self):
        """SIGKILL: no goodbye to the cluster, its unacked batches left for ack_wait."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def counters(self):
        """Its counters as it last wrote them ({} before the first report)."""
        import json
        try:
            return json.loads(self.report_file.read_text()).get("counters", {})
        except (OSError, ValueError):
            return {}

    def log_tail(self, n=1500):
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def pg_rows(url, hub):
    """[(seq, rec)] of a hub's readings, in seq order (dup_of rows included: they are rows too)."""
    import json

    import psycopg
    with psycopg.connect(url) as c:
        cur = c.execute("SELECT seq, reading FROM readings WHERE hub = %s ORDER BY seq", (hub,))
        return [(s, json.loads(r).get("rec")) for s, r in cur.fetchall()]


def pg_count(url):
    import psycopg
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM readings").fetchone()[0]
