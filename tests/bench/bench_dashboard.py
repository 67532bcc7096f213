"""Dashboard figures (docs/dashboard.md):

* stored to shown, p50/p99 of 40: an alert committed to SQLite by another connection,
  until it is in the DOM of the alerts page open in Debian's Chromium
  (Playwright), served by a `samband dashboard` process; 1 s live poll. The
  inserts are spaced at varied intervals so that they land at every phase of
  the poll. Requirement: within 2 s.
* one page's server time (Flask test client, best of 5): the glucose page with
  14 days of 5-minute CGM readings (4032), the ECG page, the hubs page.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import TESTS, figure, timed

sys.path.insert(0, str(TESTS))

import dashboard_kit as kit  # noqa: E402

from samband.receiver.dashboard import users  # noqa: E402
from samband.receiver.dashboard.app import create_app  # noqa: E402
from samband.receiver.store import open_store  # noqa: E402

ROUNDS = 40


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def stored_to_shown(folder):
    from playwright.sync_api import sync_playwright
    db = folder / "r.db"
    kit.build(db).close()
    uf = kit.users_file(folder / "users.toml")
    p = subprocess.Popen([sys.executable, "-m", "samband.cli", "dashboard", "--db", str(db), "--users", str(uf),
                          "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    url = p.stdout.readline().split()[2]
    lat = []
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                   args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = b.new_page()
            page.goto(url + "login")
            page.fill("#name", "kari")
            page.fill("#password", "kari-pw")
            page.click("#login")
            page.wait_for_url("**/hubs")
            page.goto(url + "alerts")
            page.wait_for_function("document.getElementById('live').dataset.polls >= 1")
            s = open_store(db, create=False)
            for i in range(ROUNDS):
                time.sleep(0.2 + (i * 0.37) % 1.0)  # every phase of the 1 s poll
                t = time.perf_counter()
                aid = kit.put_alert(s, "battery-low", "warning", f"AA:00:00:00:00:{i:02X}", f"battery {i} %",
                                    at=kit.T0 + 100 + i)
                page.wait_for_selector(f'tr[data-alert="{aid}"]', timeout=10_000)
                lat.append(time.perf_counter() - t)
            s.close()
            b.close()
    finally:
        p.terminate()
        p.wait(timeout=10)
    return lat


def page_times(folder):
    db = folder / "p.db"
    kit.build(db).close()
    app = create_app(db, users.load(kit.users_file(folder / "u2.toml")))
    c = app.test_client()
    c.post("/login", data={"name": "kari", "password": "kari-pw"})
    out = {}
    for name, path in (("glucose page (4032 CGM readings)", f"/device?hub={kit.HUB}&dev={kit.name(kit.CGM)}"),
                       ("ECG page (10 s strip)", f"/device?hub={kit.HUB}&dev={kit.name(kit.ECG)}"),
                       ("hubs page", "/hubs")):
        out[name] = timed(c.get, path + ("&" if "?" in path else "?") + "fragment=1")
    return out


def main():
    with tempfile.TemporaryDirectory() as d:
        lat = stored_to_shown(Path(d))
        figure("dashboard stored to shown p50", pct(lat, 50) * 1000, "ms")
        figure("dashboard stored to shown p99", pct(lat, 99) * 1000, "ms")
        figure("dashboard stored to shown max", max(lat) * 1000, "ms")
        for name, t in page_times(Path(d)).items():
            figure(f"dashboard {name}", t * 1000, "ms")


if __name__ == "__main__":
    main()
