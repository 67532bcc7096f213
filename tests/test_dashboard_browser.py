"""The dashboard in a real browser: Debian's Chromium (/usr/bin/chromium, installed by
`make setup`) driven by Playwright, against `samband dashboard` started as a process
on a database written by the receiver's store (tests/dashboard_kit.py).

It logs in, loads each page, acknowledges an alert, watches a live view pick up
what another process stores, and takes screenshots whose pixels it checks (the
AGP bands and the ECG trace are drawn), besides the numbers in the DOM against
the database. Screenshots are kept in $SAMBAND_SCREENSHOTS when set."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dashboard_kit as kit
import pytest

from samband.receiver import alerts_db
from samband.receiver.store import open_store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
def served(tmp_path):
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: run make setup"
    db = tmp_path / "r.db"
    kit.build(db).close()
    usersf = kit.users_file(tmp_path / "users.toml")
    log = open(tmp_path / "dashboard.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "samband.cli", "dashboard", "--db", str(db), "--users", str(usersf),
                          "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=log, text=True)
    line = p.stdout.readline()
    assert line.startswith("samband dashboard: http://"), line + (tmp_path / "dashboard.log").read_text()
    url = line.split()[2]
    yield url, db, tmp_path
    p.terminate()
    rest = p.communicate(timeout=10)[0]
    log.close()
    # SIGTERM ends it as Ctrl-C does, with its counters: the refusals the test made were counted
    assert p.returncode == 0 and "login_failed 1" in rest and "acked 1" in rest, rest
    assert "failed login as 'kari'" in (tmp_path / "dashboard.log").read_text()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def shot(page, tmp_path, name, element=None):
    """A screenshot (of the page or one element), kept; its pixels as an RGB image."""
    from PIL import Image
    path = tmp_path / f"{name}.png"
    (element or page).screenshot(path=str(path))
    keep = os.environ.get("SAMBAND_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return Image.open(path).convert("RGB")


def pixels_near(img, rgb, tol=24):
    raw = img.tobytes()
    return sum(1 for i in range(0, len(raw), 3) if all(abs(raw[i + k] - rgb[k]) <= tol for k in range(3)))


def stored(db, device, mdc):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = [json.loads(r[0]) for r in conn.execute(
        "SELECT reading FROM readings WHERE device = ? AND mdc = ? AND dup_of IS NULL ORDER BY seq", (device, mdc))]
    conn.close()
    return rows


def login(browser, url, name):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url + "hubs")
    assert "/login" in page.url
    page.fill("#name", name)
    page.fill("#password", name + "-pw")
    page.click("#login")
    page.wait_for_url("**/hubs")
    return page


def test_each_page_in_chromium_with_login_ack_live_update_and_screenshots(served, browser):
    url, db, tmp = served
    page = browser.new_page()
    page.goto(url)
    page.fill("#name", "kari")
    page.fill("#password", "wrong")
    page.click("#login")
    assert page.text_content("#error") == "wrong name or password"
    shot(page, tmp, "01-login-refused")

    page = login(browser, url, "kari")
    # hubs and devices: one row per device, the reading counts the database holds
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    counts = dict(conn.execute("SELECT device, count(*) FROM readings WHERE dup_of IS NULL GROUP BY device"))
    conn.close()
    assert page.locator("tr[data-device]").count() == len(counts) == 6
    for dev, n in counts.items():
        assert page.text_content(f'tr[data-device="{dev}"] td.count') == str(n)
    assert page.text_content(f'tr[data-device="{kit.name(kit.OXI)}"] td:nth-child(5)') == "15 %"
    shot(page, tmp, "02-hubs")

    # glucose: the AGP with 96 bins, its numbers counted here from the stored values
    page.click(f'a:text("{kit.name(kit.CGM)}")')
    page.wait_for_selector("svg.agp")
    values = [r["val"] for r in stored(db, kit.name(kit.CGM), 160212)]
    assert len(values) == 14 * 288
    n = len(values)
    shown = {k: page.text_content(f'td[data-k="{k}"]') for k in
             ("n", "mean", "gmi", "in_range", "below_70", "below_54", "above_180", "above_250")}
    assert shown["n"] == str(n)
    assert shown["mean"] == "%.1f mg/dL" % (sum(values) / n)
    assert shown["gmi"] == "%.1f %%" % (3.31 + 0.02392 * sum(values) / n)
    assert shown["in_range"] == "%.1f %%" % (100 * len([v for v in values if 70 <= v <= 180]) / n)
    assert shown["below_70"] == "%.1f %%" % (100 * len([v for v in values if v < 70]) / n)
    assert shown["below_54"] == "%.1f %%" % (100 * len([v for v in values if v < 54]) / n)
    assert shown["above_180"] == "%.1f %%" % (100 * len([v for v in values if v > 180]) / n)
    assert shown["above_250"] == "%.1f %%" % (100 * len([v for v in values if v > 250]) / n)
    assert page.text_content('td[data-k="active"]') == "14 / 100 %"
    assert page.locator("#sufficiency").count() == 0  # 14 full days: no data-sufficiency warning
    assert page.get_attribute("svg.agp", "data-bins") == "96"
    assert len(page.get_attribute("svg.agp polyline.median", "points").split()) == 96
    assert len(page.get_attribute("svg.agp polygon.band-5-95", "points").split()) == 192
    assert len(page.get_attribute("svg.agp polygon.band-25-75", "points").split()) == 192
    img = shot(page, tmp, "03-agp", page.locator("svg.agp"))
    assert pixels_near(img, (0x6F, 0x97, 0xCF)) > 5000   # the 25-75 % band is drawn
    assert pixels_near(img, (0xB9, 0xCD, 0xE8)) > 2000   # the 5-95 % band
    assert pixels_near(img, (0x0B, 0x2D, 0x5C), tol=40) > 500  # the median line
    shot(page, tmp, "04-glucose-page")

    # ECG: the last 10 s at 25 mm/s, 10 mm/mV
    page.goto(url + f"device?hub={kit.HUB}&dev={kit.name(kit.ECG)}")
    page.wait_for_selector("svg.ecg polyline.trace")
    times = kit.ecg_sample_times()
    expect = sum(1 for t in times if t >= times[-1] - 10)
    assert expect == 1301  # 10 s at 130 Hz, both ends
    assert page.get_attribute("svg.ecg", "data-samples") == str(expect)
    assert len(page.get_attribute("svg.ecg polyline.trace", "points").split()) == expect
    box = page.locator("svg.ecg").bounding_box()
    px_per_mm = 96 / 25.4
    assert box["width"] == pytest.approx((10 + 250) * px_per_mm, abs=1)  # 10 mm calibration + 10 s x 25 mm/s
    assert box["height"] == pytest.approx(40 * px_per_mm, abs=1)
    img = shot(page, tmp, "05-ecg", page.locator("svg.ecg"))
    assert pixels_near(img, (0, 0, 0), tol=60) > 1000          # the trace
    assert pixels_near(img, (0xE0, 0x8A, 0x8A), tol=40) > 1000  # the large-box grid

    # trends: the newest blood pressure as stored
    page.goto(url + f"device?hub={kit.HUB}&dev={kit.name(kit.CUFF)}")
    bp = stored(db, kit.name(kit.CUFF), 150020)[-1]["val"]
    assert page.text_content('section[data-label="blood pressure"] .latest') == "%d/%d/%d mmHg" % tuple(bp)
    assert page.get_attribute('section[data-label="blood pressure"] polyline.s0', "data-n") == "3"
    shot(page, tmp, "06-blood-pressure")
    for dev, label, text in ((kit.OXI, "SpO2", "96 %"), (kit.THERMO, "temperature", "37.10 °C"),
                             (kit.SCALE, "weight", "80.9 kg")):
        page.goto(url + f"device?hub={kit.HUB}&dev={kit.name(dev)}")
        assert page.text_content(f'section[data-label="{label}"] .latest') == text
        shot(page, tmp, f"07-{label}")

    # alerts: acknowledge the clinical one in the browser; the database says who
    page.goto(url + "alerts")
    row = page.locator('tr[data-alert]:has-text("glucose (CGM) 40 mg/dL")')
    aid = int(row.get_attribute("data-alert"))
    row.locator("button.ack").click()
    page.wait_for_selector("#message")
    assert page.text_content("#message") == f"alert {aid} acknowledged by kari"
    s = open_store(db, create=False)
    assert alerts_db.get_alert(s, aid)["acked_by"] == "kari"
    shot(page, tmp, "08-alert-acknowledged")

    # live: an alert raised by another process shows without a reload
    page.goto(url + "alerts")
    page.wait_for_function("document.getElementById('live').dataset.polls >= 1")
    new = kit.put_alert(s, "hub-offline", "high", None, "hub silent for 300 s", at=kit.T0 + 10)
    s.close()
    page.wait_for_selector(f'tr[data-alert="{new}"]', timeout=10_000)
    shot(page, tmp, "09-alert-live")

    # a technician: hubs yes, clinical pages and values no
    tech = login(browser, url, "tore")
    assert tech.locator(f'a:text("{kit.name(kit.CGM)}")').count() == 0
    r = tech.goto(url + f"device?hub={kit.HUB}&dev={kit.name(kit.CGM)}")
    assert r.status == 403
    tech.goto(url + "alerts")
    assert "40 mg/dL" not in tech.content() and tech.locator("button.ack").count() == 0
    shot(tech, tmp, "10-technician-alerts")
