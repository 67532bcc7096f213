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


async def _broker_that_hangs_up(hang_up):
    """A broker that answers CONNECT and every SUBSCRIBE, then closes the connection
    when hang_up (an asyncio.Event) is set: a link reset, as a relay cut makes."""
    async def packet(r):
        head = (await r.readexactly(1))[0]
        n, shift = 0, 0
        while True:
            b = (await r.readexactly(1))[0]
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return head >> 4, await r.readexactly(n)

    async def serve(r, w):
        kind, _ = await packet(r)
        assert kind == 1  # CONNECT
        w.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
        await w.drain()

        async def subacks():
            while True:
                kind, body = await packet(r)
                if kind == 8:  # SUBSCRIBE: SUBACK with its packet id, QoS 1 granted
                    w.write(b"\x90\x03" + body[:2] + b"\x01")
                    await w.drain()

        task = asyncio.ensure_future(subacks())
        await hang_up.wait()
        task.cancel()
        w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


def test_a_reset_link_is_seen_at_once_not_at_the_next_look():
    """The bearer manager looks at an idle session a quarter keepalive apart; a link
    reset in between wakes it through the client's on_lost, so the bearer is marked
    degraded long before that look (here the look is 15 minutes away)."""
    from hub.bearers import DEGRADED, UP, Bearer
    from hub.bearers import manager as mgr

    async def main():
        hang_up = asyncio.Event()
        srv, port = await _broker_that_hangs_up(hang_up)
        b = Bearer("a")
        b.set_state(UP)
        m = mgr.Manager([b], lambda b: mqtt.Client("127.0.0.1", port, "hub-test-a", keepalive=3600),
                        "samband/x/ack", {"degrade_after": 1})
        m.start()
        link = m.links[0]
        while not link.live():
            await asyncio.sleep(0.01)
        hang_up.set()
        while b.state != DEGRADED:  # bounded by _run's 20 s, far below the 900 s look
            await asyncio.sleep(0.01)
        error = link.error
        m.stop()
        srv.close()
        return error

    assert "link lost" in _run(main())
