# Run on the unix port by tests/test_modem.py and tests/bench/bench_modem.py:
# the real cellular bearer (hub/bearers) against the modem simulator's pty.
#   micropython modem_check.py PTY|port PROFILE CONFIG_JSON ACTION
# Prints one JSON object: outcome, reason, metrics, state changes, heap.
# ACTION: up | retry (up; on failure once more) | watch (up, then wait for the
# link to change) | dial (ATD*99#, loopback data, +++ escape) | ppp (up through
# ATD*99# and network.PPP's stand-in, then down) | tcp (a modem socket
# to an echo server) | mqtt (hub/mqtt.py over a modem socket) | down (up, then down)

import gc
import json
import os
import sys

_rom = os.getenv("SAMBAND_MODEM_ROMFS")
if _rom:
    # The hub package run in place from its ROMFS image, as on a board with a
    # ROM partition: the image is read before heap0, so it is not counted.
    import vfs
    with open(_rom, "rb") as f:
        _img = f.read()
    vfs.mount(vfs.VfsRom(_img), "/rom")
    sys.path.insert(0, "/rom")

gc.collect()
heap0 = gc.mem_alloc()

import asyncio  # noqa: E402

from hub.bearers import BearerError, serial  # noqa: E402
from hub.bearers.cellular import Cellular  # noqa: E402

gc.collect()
heap_import = gc.mem_alloc() - heap0


async def attempt(cell, out):
    try:
        await cell.up()
        out.append("up")
    except BearerError as e:
        out.append(e.reason)


async def mqtt_over_modem(cell, cfg):
    """The hub's own MQTT client (hub/mqtt.py) over a modem socket to a real
    Mosquitto: publish QoS 1 to our up topic, get the PUBACK, and receive
    what a receiver answers on our ack topic."""
    from hub import mqtt

    class ModemClient(mqtt.Client):
        # Client.connect with the modem socket in place of asyncio.open_connection
        async def connect(self, timeout_ms=10000):
            self.close()
            self._ev = asyncio.Event()
            self._acked = {}
            s = await cell.open(self.host, self.port, ssl=self.ssl, server_hostname=self.server_hostname)
            self._r = self._w = s
            await self._send(mqtt.connect(self.client_id, self.keepalive, self.user, self.password))
            p = await asyncio.wait_for_ms(self._read_packet(), timeout_ms)
            if p[0] != mqtt.CONNACK or p[2]:
                raise mqtt.MQTTError("CONNACK %r" % (p,))
            self.connected = True
            self._task = asyncio.create_task(self._reader())

    def text(m):
        try:
            return m.decode()
        except UnicodeError:  # a real ack is CBOR
            return m.hex()

    got = []
    hub = cfg["hub"]
    ctx = None
    if cfg.get("ca"):  # TLS on the hub, verifying the broker against this CA (DER)
        with open(cfg["ca"], "rb") as f:
            ctx = mqtt.tls_context(f.read())
    c = ModemClient("127.0.0.1", cfg["port"], hub, user=hub, password=cfg["password"], keepalive=30,
                    on_message=lambda t, m: got.append([t, text(m)]), ssl=ctx,
                    server_hostname=cfg.get("server_hostname"))
    try:
        await c.connect()
    except (BearerError, OSError) as e:
        # the message (an OSError from TLS carries mbedTLS's code too) and the manager's word for it
        msg = e.args[1] if isinstance(e, OSError) and len(e.args) == 2 else str(e)
        return {"error": msg, "cause": mqtt.cause(e)}
    gc.collect()
    heap_session = gc.mem_alloc() - heap0
    tx0, rx0 = cell.at.tx, cell.at.rx
    await c.subscribe("samband/%s/ack" % hub)
    tx1, rx1 = cell.at.tx, cell.at.rx
    payload = bytes(cfg["payload_n"]) if cfg.get("payload_n") else b"sealed batch over LTE-M"
    await c.publish("samband/%s/up" % hub, payload, qos=1)
    for _ in range(1000):
        if got:
            break
        await asyncio.sleep_ms(10)
    await asyncio.sleep_ms(100)  # our PUBACK of the ack message goes out
    line = [cell.at.tx - tx0, cell.at.rx - rx0]  # subscribe, publish, PUBACK, the ack message
    line_pub = [cell.at.tx - tx1, cell.at.rx - rx1]  # publish, PUBACK, the ack message, its PUBACK
    await c.disconnect()
    return {"acks": got, "heap_session": heap_session, "line": line, "line_pub": line_pub}


async def main(path, profile, cfg, action):
    changes = []
    if path == "port":  # through the unix port's hook (SAMBAND_MODEM names the pty)
        from hub.ports.unix import Port
        stream, _ = Port({"pins": {}}).modem()
    else:
        stream = serial.open_pty(path)
    make_ppp = None
    if action == "ppp":  # the data path through network.PPP's stand-in on the same pty
        import pppstand
        uart = pppstand.PtyUart(stream.s)

        def make_ppp():
            return pppstand.PPP(uart)
    cell = Cellular("cell0", stream, cfg, profile,
                    on_change=lambda b, old, new: changes.append([new, b.reason]), make_ppp=make_ppp)
    outcomes = []
    await attempt(cell, outcomes)
    gc.collect()
    heap_up = gc.mem_alloc() - heap0
    extra = {}
    if action == "retry" and outcomes[-1] != "up":
        await attempt(cell, outcomes)
    elif action == "reup":  # taken down and brought up again, as the bearer manager's re-up does
        await cell.down()
        await attempt(cell, outcomes)
    elif action == "watch":
        n = len(changes)
        for _ in range(cfg.get("watch_ms", 3000) // 10):
            if len(changes) > n:
                break
            await asyncio.sleep_ms(10)
    elif action == "dial":
        at = cell.at
        r = await at.cmd("ATD*99#", 5000)
        extra["connect"] = r.final
        at.s.write(b"ping over the data call")  # data mode: straight to the UART, as PPP does
        await at.s.drain()
        for _ in range(200):
            if len(at.data) >= 23:
                break
            await asyncio.sleep_ms(10)
        extra["data"] = at.take_data().decode()
        extra["escape"] = await at.escape(guard_ms=cfg.get("guard_ms", 1000))
        extra["after"] = (await at.query("AT+CSQ"))
    elif action == "tcp":
        # through the modem's own socket to the host's echo server, which closes after "bye"
        payload = bytes(range(256)) * 4 + b"\r\nOK\r\n+CEREG: 1\r\n"
        try:
            s = await cell.open(cfg.get("host", "127.0.0.1"), cfg["port"])
        except BearerError as e:
            extra["error"] = str(e)
            s = None
    if action == "tcp" and s is not None:
        s.write(payload)
        await s.drain()
        back = await s.readexactly(len(payload))
        s.write(b"bye")
        await s.drain()
        tail = await s.readexactly(3)
        eof = await s.read(10)
        await s.aclose()
        extra.update({"echo_ok": back == payload, "n": len(back), "tail": tail.decode(), "eof": eof == b"",
                      "tx": s.tx, "rx": s.rx})
    elif action == "mqtt":
        extra.update(await mqtt_over_modem(cell, cfg))
    elif action in ("down", "ppp"):
        if action == "ppp":
            extra.update(cell.metrics())
            extra["uart_bytes"] = [uart.tx, uart.rx]
        await cell.down()
    m = cell.metrics()
    cell.at.stop()
    print(json.dumps({"outcomes": outcomes, "state": cell.state, "reason": cell.reason, "metrics": m,
                      "changes": changes, "heap_import": heap_import, "heap_up": heap_up, "extra": extra}))


asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "up"))
