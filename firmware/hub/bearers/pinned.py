# A TCP stream whose socket is bound to one network interface: the virtual
# hub's bearers when the host gives it one veth per bearer (hostnet.py,
# samband.rig.netns). Imported only by such a bearer's open().

# Linux's numbers (asm-generic/socket.h): the unix port's socket module
# names neither, and its setsockopt passes a bytes value through as the
# option's buffer (ports/unix/modsocket.c, socket_setsockopt).
SOL_SOCKET = 1
SO_BINDTODEVICE = 25


def _writable(s):
    # The scheduler's own wait for a socket, as asyncio's stream module waits
    # for a connect to finish: a plain generator, which MicroPython's asyncio
    # can await.
    from asyncio import core
    yield core._io_queue.queue_write(s)


def _readable(s):
    from asyncio import core
    yield core._io_queue.queue_read(s)


async def resolve(dev, server, name, timeout_ms=2000):
    """name's IPv4 address from DNS server `server`, asked over interface
    dev (hub.bearers.dns); BearerError("dns") when it cannot be had in time."""
    import asyncio
    import os
    import socket

    from hub.bearers import BearerError, dns
    from hub.ticks import ticks_diff, ticks_ms
    qid = int.from_bytes(os.urandom(2), "big")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(SOL_SOCKET, SO_BINDTODEVICE, dev.encode())
        s.setblocking(False)
        s.sendto(dns.query(qid, name), socket.getaddrinfo(server, 53)[0][-1])
        end = ticks_ms() + timeout_ms
        while True:
            left = ticks_diff(end, ticks_ms())
            if left <= 0:
                raise BearerError("dns", "no answer from %s for %s" % (server, name))
            try:
                await asyncio.wait_for_ms(_readable(s), left)
            except asyncio.TimeoutError:
                continue
            try:
                got = dns.answer(s.recv(512), qid)
            except OSError:  # the server's port is closed (ICMP): keep to the deadline
                continue
            if got is not None:
                return got
    finally:
        s.close()


async def open_pinned(dev, host, port, ssl=None, server_hostname=None):
    """A TCP stream whose socket is bound to interface dev before it connects:
    asyncio.open_connection makes its socket itself, too late to pin it."""
    import socket
    from asyncio.stream import Stream
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], ai[1], ai[2])
    try:
        s.setsockopt(SOL_SOCKET, SO_BINDTODEVICE, dev.encode())
        s.setblocking(False)
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != 115:  # EINPROGRESS; anything else (no route: the link is down) is the answer
                raise
        if ssl is not None:
            s = ssl.wrap_socket(s, server_hostname=server_hostname or host, do_handshake_on_connect=False)
            s.setblocking(False)
        await _writable(s)
    except BaseException:
        s.close()
        raise
    st = Stream(s)
    return st, st
