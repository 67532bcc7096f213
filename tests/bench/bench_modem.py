"""Cellular bearer figures (docs/bearers.md): the real AT engine and bring-up
(hub/bearers) on the unix port, 100 KB heap, against the modem simulator on
a pty, for each vendor profile:

* heap taken by importing the bearer (engine, framer, cellular) and held
  once the link is up (with its profile), imported from the flash folder and
  run in place from the ROMFS image;
* bytes on the line for one bring-up, hub -> modem and modem -> hub;
* time from the first AT to the data context, with a network that
  registers at once (the engine's own overhead over a real tty);
* heap once an MQTT session runs over TLS (on the hub) over a modem socket,
  and the bytes on the modem's line for one subscribe + one QoS 1 publish of
  23 bytes + the receiver's reply, against a real Mosquitto;
* bytes on the line per payload byte through the modem's own TCP socket
  (AT+CASEND/CARECV, AT+QISEND/QIRD framing, prompts and data URCs), each way,
  for 1 KB echoed back by a host server;
* bytes per glucose reading per bearer: IP bytes (Wi-Fi, Ethernet, and every
  bearer over the air), UART bytes over the modem's sockets (measured) and
  over PPP (computed from the same packets).
"""

import json
import os
import tempfile
from pathlib import Path

from benchlib import FW_TESTS, figure, run_mpy
from host_kit import acking_receiver, echo_server

from samband.device import build
from samband.modem.sim import ModemSim, Scenario


def bring_up(dialect, action="up", romfs=None, sc=None, **cfg):
    cfg.setdefault("apn", "internet")
    heap = "100k"
    if romfs:  # the image is read into the heap first (no flash to map it from): the limit grows by it
        os.environ["SAMBAND_MODEM_ROMFS"] = str(romfs)
        heap = str(100 * 1024 + romfs.stat().st_size + 1024)
    try:
        with ModemSim(Scenario(dialect=dialect, registration=[(0, 1)], **(sc or {}))) as sim:
            out = run_mpy([str(FW_TESTS / "modem_check.py"), sim.path, dialect, json.dumps(cfg), action],
                          heap=heap)
    finally:
        os.environ.pop("SAMBAND_MODEM_ROMFS", None)
    r = json.loads(out.strip().splitlines()[-1])
    r["commands"] = len(sim.commands)
    if r["outcomes"] != ["up"]:
        raise RuntimeError(f"{dialect} bring-up failed: {r}")
    return r


def mqtt_tls(dialect, tmp, payload_n=None, ack=b"ack"):
    hub = "00005a4d00c7"
    with acking_receiver(tmp, hub, "receiver-bench", lambda payload: ack) as (broker, pw, _):
        r = bring_up(dialect, "mqtt", hub=hub, password=pw, port=broker.port, ca=str(broker.ca_der),
                     server_hostname="localhost", payload_n=payload_n)
    if not r["extra"].get("acks"):
        raise RuntimeError(f"MQTT over the modem failed: {r}")
    return r


def per_reading():
    """One glucose reading sent on its own (bench_uplink's model: the hub's PUBLISH, the
    broker's PUBACK, the receiver's ack PUBLISH, the hub's PUBACK; each a TLS record in
    one TCP segment), per bearer, each way: Wi-Fi / Ethernet carry the IP packets; the
    modem's sockets put AT framing on the UART (measured: TLS on the hub, the simulator,
    Mosquitto) while the modem's own IP stack sends the same packets over the air; PPP
    puts the IP packets on the UART in HDLC-like framing (RFC 1662: flag, address,
    control, protocol, FCS-16, flag = 8 bytes a frame, with the ACCM modems negotiate (0)
    only 0x7E and 0x7D escaped: ciphertext, 2 byte values of 256)."""
    from bench_uplink import HUB, TCPIP, TLS_RECORD, glucose

    from hub import mqtt, reading
    from hub.uplink import encode_ack
    from samband.receiver.opener import batch
    up = batch([bytes(62), bytes(20 + len(reading.encode(glucose(17))))])
    ack = encode_ack(range(17, 18))
    pub = len(mqtt.publish("samband/" + HUB.hex() + "/up", up, 1, 1))
    back = len(mqtt.publish("samband/" + HUB.hex() + "/ack", ack, 1, 1))
    out_segs, in_segs = (pub, 4), (4, back)  # hub -> broker: PUBLISH, PUBACK; broker -> hub: PUBACK, ack

    def ip(segs):
        return sum(n + TLS_RECORD + TCPIP for n in segs)

    def hdlc(segs):
        return round(sum((n + TLS_RECORD + TCPIP) * (1 + 2 / 256) + 8 for n in segs))

    figure("glucose reading, Wi-Fi / Ethernet (and any bearer over the air): IP bytes hub -> broker / back",
           f"{ip(out_segs)} / {ip(in_segs)}", "B")
    figure("glucose reading, cellular over PPP: UART bytes hub -> modem / back (computed)",
           f"{hdlc(out_segs)} / {hdlc(in_segs)}", "B")
    for dialect in ("sim7080g", "bg96"):
        with tempfile.TemporaryDirectory() as tmp:
            q = mqtt_tls(dialect, Path(tmp), payload_n=len(up), ack=ack)
        tx, rx = q["extra"]["line_pub"]
        figure(f"glucose reading, cellular over {dialect} sockets: UART bytes hub -> modem / back (measured)",
               f"{tx} / {rx}", "B")


def main():
    per_reading()
    for dialect in ("sim7080g", "bg96"):
        runs = [bring_up(dialect) for _ in range(5)]
        r = runs[0]
        m = r["metrics"]
        figure(f"{dialect} heap, bearer imported", r["heap_import"], "B")
        figure(f"{dialect} heap, bearer up", r["heap_up"], "B")
        figure(f"{dialect} bytes per bring-up, hub -> modem", m["at_tx"], "B")
        figure(f"{dialect} bytes per bring-up, modem -> hub", m["at_rx"], "B")
        figure(f"{dialect} commands per bring-up", r["commands"])
        figure(f"{dialect} first AT to data context, best of 5", min(x["metrics"]["connect_ms"] for x in runs), "ms")
        figure(f"{dialect} first AT to registered, best of 5", min(x["metrics"]["register_ms"] for x in runs), "ms")
        ppp = [bring_up(dialect, "ppp", sc={"ppp": True, "guard_s": 0.2}, guard_ms=250) for _ in range(3)]
        figure(f"{dialect} first AT to PPP up (ATD*99#, network.PPP's stand-in, the simulator's LCP), best of 3",
               min(x["extra"]["connect_ms"] for x in ppp), "ms")
        figure(f"{dialect} heap, bearer up over PPP (its stand-in included)", ppp[0]["heap_up"], "B")
        rom = bring_up(dialect, romfs=build.romfs_path("vhub"))
        figure(f"{dialect} heap, bearer imported, hub package run in place from ROMFS", rom["heap_import"], "B")
        figure(f"{dialect} heap, bearer up, from ROMFS", rom["heap_up"], "B")
        with tempfile.TemporaryDirectory() as tmp:
            q = mqtt_tls(dialect, Path(tmp))
        figure(f"{dialect} heap, MQTT session over TLS over a modem socket", q["extra"]["heap_session"], "B")
        tx, rx = q["extra"]["line"]
        figure(f"{dialect} line bytes, subscribe + QoS 1 publish of 23 B + reply, TLS, hub -> modem", tx, "B")
        figure(f"{dialect} line bytes, the same, modem -> hub", rx, "B")
        t = bring_up(dialect, "tcp", port=echo_server()[1])
        e, mt = t["extra"], t["metrics"]
        figure(f"{dialect} socket: line bytes per payload byte, hub -> modem",
               (mt["at_tx"] - m["at_tx"]) / e["tx"])
        figure(f"{dialect} socket: line bytes per payload byte, modem -> hub",
               (mt["at_rx"] - m["at_rx"]) / e["rx"])


if __name__ == "__main__":
    main()
