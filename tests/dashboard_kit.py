"""A receiver database with what the dashboard shows, written through the real store.

Shared by the dashboard's HTTP and browser tests: one CGM over 14 days, an ECG
belt's frames, a cuff, an oximeter, a thermometer, a scale, alerts of both kinds,
and a users file with one user of each role (password = the name + "-pw").
"""

import math

from hub import reading as rd
from samband.receiver import alerts_db
from samband.receiver.dashboard import users
from samband.receiver.store import open_store

HUB = "00005a4d0001"
CGM = bytes.fromhex("00c05a4b000001")
ECG = bytes.fromhex("00c05a4b000002")
CUFF = bytes.fromhex("00c05a4b000003")
OXI = bytes.fromhex("00c05a4b000004")
THERMO = bytes.fromhex("00c05a4b000005")
SCALE = bytes.fromhex("00c05a4b000006")
T0 = 1_764_547_200  # 2025-12-01 00:00 on the device clocks (read as UTC)
ECG_PERIOD_US = 7692  # 130 Hz
ECG_FRAME = 73
ECG_FRAMES = 30


def name(dev):
    return ":".join("%02X" % b for b in dev[1:])


def glucose_value(i):
    """The i-th CGM reading (every 5 minutes from T0): a daily wave, shifted by day, with scatter."""
    tod = (i * 300) % 86400
    day = i // 288
    return int(round(140 + 90 * math.sin(2 * math.pi * tod / 86400) + (day * 37) % 50 - 25 + (i * 13) % 31 - 15))


def ecg_frames():
    """(dts, ns, samples) of contiguous frames; sample j of the whole run at j periods."""
    out = []
    for k in range(ECG_FRAMES):
        idx = range(k * ECG_FRAME, (k + 1) * ECG_FRAME)
        samples = [int(1200 * math.exp(-((j % 104) - 20) ** 2 / 4.0)) - 100 for j in idx]  # R waves at 75/min
        last_us = (idx[-1]) * ECG_PERIOD_US
        t = T0 + 3600 * 24 * 13 + last_us / 1e6
        out.append((int(t), round((t - int(t)) * 1e9), samples))
    return out


def ecg_sample_times():
    return [T0 + 3600 * 24 * 13 + j * ECG_PERIOD_US / 1e6 for j in range(ECG_FRAMES * ECG_FRAME)]


def build(path, cgm_days=14):
    s = open_store(path)  # a SQLite path or a postgresql:// URL
    rows, seq = [], 0

    def add(dev, mdc, val, **kw):
        nonlocal seq
        seq += 1
        rows.append((seq, 1, rd.make(seq, dev, mdc, val, [1, seq], hts=(T0 + seq) * 1000, **kw)))

    for i in range(cgm_days * 288):
        add(CGM, 160212, glucose_value(i), unit="mg/dL", dts=T0 + i * 300, rec=i + 1)
    for dts, ns, samples in ecg_frames():
        add(ECG, 131328, samples, unit="uV", period=ECG_PERIOD_US, dts=dts, ctx={"ns": ns})
    for d, (sy, di, me) in enumerate([(128, 84, 98), (135, 88, 104), (122, 80, 94)]):
        add(CUFF, 150020, [sy, di, me], unit="mm[Hg]", comp=[150021, 150022, 150023], dts=T0 + d * 86400)
    for d, v in enumerate([97, 95, 96]):
        add(OXI, 150456, v, unit="%", dts=T0 + d * 86400)
    for d, v in enumerate([3670, 3710]):
        add(THERMO, 150364, v, exp=-2, unit="Cel", dts=T0 + d * 86400)
    for d, v in enumerate([812, 809]):
        add(SCALE, 188736, v, exp=-1, unit="kg", dts=T0 + d * 86400)
    add(OXI, 67996, 15, unit="%")
    s.store(HUB, rows)
    alerts_db.migrate(s)
    put_alert(s, "clinical", "critical", name(CGM), "glucose (CGM) 40 mg/dL", patient="child A")
    put_alert(s, "battery-low", "warning", name(OXI), "battery 15 %")
    return s


def put_alert(s, kind, severity, device, text, patient=None, hub=HUB, at=T0):
    cur = s.conn.cursor()
    cur.execute(s.q("INSERT INTO alerts (akey, kind, severity, hub, device, patient, detail, first_seen, last_seen, "
                     "grp_level, grp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'nurse') RETURNING id"),
                (f"{kind}/{device}/{at}", kind, severity, hub, device, patient, '{"text": "%s"}' % text, at, at))
    aid = cur.fetchone()[0]
    s.conn.commit()
    return aid


def users_file(path):
    text = "".join(users.entry(n, r, n + "-pw") for n, r in
                   (("kari", "nurse"), ("ola", "doctor"), ("tore", "technician")))
    path.write_text(text)
    return path
