"""The hub's MQTT client (hub/mqtt.py) against a broker that answers the
CONNECT and then goes silent, under CPython's asyncio: the client must give
up after 1.5 keepalive periods whether it waits for an answer (PUBACK) or
for the link to take its bytes (a full send buffer). The same code on the
unix port meets a real Mosquitto in tests/test_uplink.py."""

import asyncio
import re

import pytest

from hub import mqtt


async def _silent_broker(on_conn):
    async def serve(r, w):
        await r.read(2)  # the start of the CONNECT is enough
        w.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
        await w.drain()
        on_conn.append(w)
        await asyncio.sleep(30)  # then nothing: no reading, no writing

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _connected_to_a_silent_broker():
    """(server, client): the hub's MQTT client, keepalive 1 s, connected to a broker that
    then neither reads nor writes."""
    srv, port = await _silent_broker([])
    c = mqtt.Client("127.0.0.1", port, "hub-test", keepalive=1)
    await c.connect()
    return srv, c


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_no_answer_to_a_publish_means_dead_after_one_and_a_half_keepalives():
    async def main():
        srv, c = await _connected_to_a_silent_broker()
        with pytest.raises(OSError, match=r"nothing heard from the broker for (\d+) ms") as e:
            await c.publish("samband/x/up", b"reading", qos=1, timeout_ms=10000)
        c.close()
        srv.close()
        return int(re.search(r"for (\d+) ms", str(e.value)).group(1))

    # The keepalive rule, not the 10 s PUBACK timeout ("no acknowledgement of
    # packet"), and not before 1.5 keepalives of silence on the client's own
    # clock. How soon after that it notices is a bench figure (bench_uplink):
    # a wall-clock bound here failed on a busy machine.
    silent_ms = _run(main())
    assert silent_ms >= 1500, silent_ms


def test_a_link_that_takes_nothing_is_dead_too():
    async def main():
        srv, c = await _connected_to_a_silent_broker()
        block = bytes(256 * 1024)
        sent = 0
        with pytest.raises(OSError, match="the link took nothing for 1500 ms"):
            while sent < 512 * 1024 * 1024:
                await c.publish("samband/x/up", block, qos=0)
                sent += len(block)
        c.close()
        srv.close()
        return sent

    sent = _run(main())
    assert 0 < sent < 512 * 1024 * 1024
