# The modem's byte stream as an asyncio stream (read(n), write(b), drain()).
#
# Why two adapters: on a board, machine.UART with timeout=0 returns whatever
# has arrived, and MicroPython's asyncio polls it directly; the port builds
# the UART (only ports import machine) and hands it to `stream()`. On the
# virtual hub the modem simulator sits on a pty, and the unix port's file
# read(n) blocks until n bytes arrive unless the tty is told otherwise: with
# VMIN = VTIME = 0 a read returns what is there, and asyncio only reads
# after poll() says something is.

import asyncio

_VTIME = 5  # indexes into termios cc on Linux
_VMIN = 6


def stream(uart):
    """A machine.UART (timeout=0) or any pollable stream object -> asyncio stream."""
    return asyncio.StreamReader(uart)


def open_pty(path):
    """A tty device (the modem simulator's pty) opened raw and non-blocking for
    asyncio. Raw also turns off ONLCR and echo, which would corrupt AT bytes."""
    import termios
    f = open(path, "r+b")
    fd = f.fileno()
    termios.setraw(fd)
    a = termios.tcgetattr(fd)
    a[6][_VMIN] = 0
    a[6][_VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)
    return asyncio.StreamReader(f)
