"""The virtual hub: the MicroPython unix port behind a pseudo-terminal that
behaves like a board's USB serial port.

Two ptys and a relay. The client (mpremote, pyserial, picocom) opens the
"port" pty; the interpreter runs with the other pty as its controlling
terminal. The relay between them is where the board-like behaviour lives:

* Ctrl-C: a board's UART/USB driver schedules a KeyboardInterrupt when the
  interrupt character arrives while code runs, and passes it on as a plain
  character while the REPL reads. The unix port's own SIGINT handler instead
  raises from inside the signal handler, in the middle of any C code (the
  cause of "FATAL: uncaught NLR", deadlocks and double boots on a busy
  machine), so the pty generates no SIGINT (no ISIG) and the interpreter runs
  under unixport.py, whose SIGUSR2 handler only schedules the interrupt. On
  a Ctrl-C from the client the relay stops the interpreter (SIGSTOP), looks
  in /proc/PID/status whether it is executing code (the port catches SIGINT
  only then), sends SIGUSR2 or passes the byte on, and lets it go (SIGCONT).
  See _ctrl_c.
* the interpreter ends on Ctrl-D (friendly REPL), in the raw REPL, on
  sys.exit() and machine.soft_reset(); a board soft-resets instead. The
  supervisor prints "MPY: soft reboot" and starts a new interpreter, which
  runs boot.py and main.py again. After a soft reset from the raw REPL
  the new interpreter is put back into the raw REPL, as a board stays in
  it, which is what mpremote expects.
* power_cut() kills the interpreter with SIGKILL (a pulled plug) and
  starts a fresh one with reset cause "power-on".
* output is dropped while no client has the port open, like a USB CDC
  port without a host.
* an interpreter found deadlocked is logged and counted (`deadlocks`), not
  hidden: tests assert there were none (see _check_stuck).

One module: VirtualHub is one relay over one process and two ptys: spawning
and restarting the interpreter, Ctrl-C, soft and hard resets, the raw-REPL
state kept across a soft reset, deadlock checks and the warp all read and
change the same process, fds and REPL state inside one loop (_relay). The
flash (vhub/flash.py), the boot script and the launcher are already apart.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from samband.device import build
from samband.errors import HubError
from samband.paths import BUILD
from samband.vhub.flash import Flash, as_flash
from samband.vhub.unixport import INTERRUPT_SIGNAL

BOOT_SCRIPT = Path(__file__).with_name("boot.py")
LAUNCHER = Path(__file__).with_name("unixport.py")
DEFAULT_HEAP = "100k"
EXIT_HARD_RESET = 75  # hub.ports.unix.Port.reset()
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b"MicroPython "
PROMPT = b">>> "
READY = b"\x1dvhub-ready\x1d"  # printed by boot.py once the flash is mounted
EXIT_MARK = re.compile(rb"\x1dvhub-exit:(-?\d+)\x1d")  # boot.py: main.py ended with sys.exit(code)
STUCK_POLL_S = 0.5  # how often the supervisor looks for a deadlocked interpreter
STUCK_S = 2.0  # parked on a futex this long: deadlocked
CTRL_C = b"\x03"


def parse_heap(text: str | int) -> int:
    """'100k', '2m' or bytes, as `micropython -X heapsize=` takes it; returns bytes."""
    t = str(text).strip().lower()
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        n = int(t) * mult
    except ValueError:
        raise HubError(f"heap size {text!r} is not a number of bytes (e.g. 100k, 2m)") from None
    if n < 16 * 1024:
        raise HubError(f"heap size {text!r} is too small: the firmware needs at least 16k")
    return n


def deploy(board_tree: str | Path, flash: Flash | str | Path) -> int:
    """Copy a firmware tree onto a virtual hub's flash (a folder's image, or a
    Flash): only what changed, leaving the hub's data alone.

    Firmware files that the new build no longer has are removed; files the
    hub wrote itself (journal, state) are not firmware and stay. The whole
    change is one replacement of the image (vhub/flash.py)."""
    import json
    board_tree = Path(board_tree)
    flash = as_flash(flash).ensure()
    new = build.tree(board_tree)
    changed = 0
    with flash.edit() as m:
        try:
            old = json.loads(m.read("/.firmware.json"))
        except (OSError, ValueError):
            old = {}
        have = m.listing("/")
        for rel, digest in new.items():
            if old.get(rel) == digest and "/" + rel in have:
                continue
            m.write("/" + rel, (board_tree / rel).read_bytes())
            changed += 1
        for rel in old:
            if rel not in new:
                m.remove("/" + rel)
        if changed or set(old) != set(new):
            m.write("/.firmware.json", json.dumps(new, indent=1, sort_keys=True).encode())
    return changed


def _raw_tty(fd: int) -> None:
    """Raw terminal: every byte, Ctrl-C included, reaches the interpreter as
    data. No ISIG: the line discipline must not turn Ctrl-C into SIGINT (the
    unix port's SIGINT handler raises from inside C code; see _ctrl_c) nor
    flush the input queue when it does."""
    a = termios.tcgetattr(fd)
    a[0] = 0  # iflag: no CR/NL mapping, no XON/XOFF
    a[1] = 0  # oflag: no ONLCR, bytes go out as written
    a[2] = (a[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD
    a[3] = 0  # lflag: no echo, no canonical mode, no signals
    cc = a[6]
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)


def caught_signals(status: str) -> set[int]:
    """The signals a process catches, from the text of /proc/PID/status (its SigCgt mask)."""
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split(":", 1)[1].strip(), 16)
            return {n + 1 for n in range(mask.bit_length()) if mask >> n & 1}
    raise ValueError("no SigCgt line in /proc/PID/status")


def _kill_group(p: subprocess.Popen | None) -> bool:
    """SIGKILL a running unix port's process group (a power cut, or its sys.exit() seen on the
    console); False if there was none still running. The caller decides whether to reap it."""
    if not (p and p.poll() is None):
        return False
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


class VirtualHub:
    """One virtual hub. start() returns the path of its serial port."""

    def __init__(self, flash: Flash | str | Path, heap: str | int = DEFAULT_HEAP, uid: str | None = None,
                 link: str | Path | None = None, board: str = "vhub", firmware: str | Path | None = None,
                 deploy_firmware: bool = True, log: Callable[[str], None] | None = None,
                 env: dict[str, str] | None = None, romfs: str | Path | None = None,
                 warp_file: str | Path | None = None) -> None:
        # The folder that holds the hub's flash image (flash.img, vhub/flash.py).
        self.flash = Path(flash.folder if isinstance(flash, Flash) else flash).resolve()
        self.image = Flash(self.flash)
        self.heap = parse_heap(heap)
        # A ROMFS image (build/<board>.romfs): the hub package runs from it in
        # place, as from a board's ROM partition. The unix port has no flash
        # to map, so the image is read into the heap; the heap is enlarged by
        # its size so that `heap` stays what the application has.
        self.romfs = Path(romfs).resolve() if romfs else None
        self.rom_bytes = self.romfs.stat().st_size if self.romfs else 0
        self.uid = uid or "00005a4d0001"
        self.link = Path(link) if link else None
        self.board = board
        self.firmware = Path(firmware) if firmware else BUILD / board
        self.deploy_firmware = deploy_firmware
        self.log = log  # callable(str) for supervisor events
        self.extra_env = dict(env or {})
        # A host file through which warp() moves the hub's clock on while it runs (a soak's
        # accelerated time, samband.rig.soak); None: the hub's clock is the host's.
        self.warp_file = Path(warp_file).resolve() if warp_file else None
        self.warped_ms = 0
        if self.warp_file is not None:
            self._write_warp()
        # a network namespace to run the interpreter in (samband.rig.netns: one veth per bearer)
        self.netns = None
        self.port = None
        self.boots = 0
        self.resets = []  # reset causes, in order
        self._proc = None
        self._exit_code = None  # set when boot.py reports sys.exit(code) from main.py
        self._hub_fd = None
        self._cli_fd = None
        self._raw = False
        self._suppress = False
        self._suppress_buf = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._pending_cause = "power-on"
        self._powered_at = None  # host CLOCK_MONOTONIC ms of the last power-on
        self._to_hub = b""
        self.interrupts = 0  # Ctrl-Cs delivered as a scheduled KeyboardInterrupt (the rest went as a byte)
        self.deadlocks = 0  # interpreters found deadlocked (logged; see _check_stuck)
        self._stuck_checks = 0
        self._stuck_at = 0.0
        self._last_cr = False
        trace = os.environ.get("SAMBAND_VHUB_TRACE")
        self._trace_file = open(trace, "a") if trace else None  # every byte both ways, for debugging

    # -- life cycle ----------------------------------------------------------------
    def start(self) -> str:
        if self.deploy_firmware:
            if not self.firmware.is_dir():
                raise HubError(f"no firmware build at {self.firmware}: run `make firmware`")
            deploy(self.firmware, self.image)
        elif not self.image.ensure().exists_file("/board.json"):
            raise HubError(f"{self.image.image} holds no firmware (no board.json)")
        self.image.hold()  # until stop(): host tools read it through snapshot()
        self._cli_fd, slave = os.openpty()
        self.port = os.ttyname(slave)
        tty.setraw(slave)
        os.close(slave)
        os.set_blocking(self._cli_fd, False)
        if self.link:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            self.link.unlink(missing_ok=True)
            self.link.symlink_to(self.port)
        self._spawn()
        self._thread = threading.Thread(target=self._relay, name="vhub-relay", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        with self._lock:  # not while the relay holds the interpreter stopped for a Ctrl-C
            self._kill()
        if self._thread:
            self._thread.join(5)
        for fd in (self._cli_fd,):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._cli_fd = None
        if self.link and self.link.is_symlink():
            self.link.unlink()
        self.image.release()

    def snapshot(self, dest: str | Path | None = None) -> Flash:
        """The hub's flash at this instant (a FlashCopy in memory, or a Flash
        in dest): the interpreter is stopped while the image is copied, so the
        copy is what a power cut now would leave. Works on a stopped hub too."""
        with self._lock:
            pid = self._proc.pid if self._proc and self._proc.poll() is None else None
            return self.image.snapshot(pid, dest)

    def __enter__(self) -> VirtualHub:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def power_cut(self) -> None:
        """Pull the plug: SIGKILL the interpreter mid-whatever, then power on again."""
        with self._lock:
            self._pending_cause = "power-on"
            self._raw = False
            self._kill()

    def warp(self, ms: int) -> None:
        """Move the running hub's clock ms ahead at once (what hub.ports.unix.Port reads as
        ticks_ms and, with the host's clock, utc_ms): to the firmware, ms of uptime passed.
        The warp is kept across resets and power cuts, as the time that passed stays passed.
        Only the port's clock moves: asyncio's sleeps and the network's timeouts keep real time."""
        if self.warp_file is None:
            raise HubError("this virtual hub was started without a warp file (VirtualHub(warp_file=...))")
        if ms < 0:
            raise HubError("a hub's clock only moves ahead")
        self.warped_ms += int(ms)
        self._write_warp()

    def _write_warp(self) -> None:
        # the value twice, in one write: the port takes it only when both halves agree
        v = self.warped_ms.to_bytes(8, "little")
        fd = os.open(self.warp_file, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, v + v, 0)
        finally:
            os.close(fd)

    def wait_boots(self, n: int, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while self.boots < n:
            if time.monotonic() > end:
                raise HubError(f"virtual hub did not boot {n} times within {timeout}s")
            time.sleep(0.01)

    # -- internals -----------------------------------------------------------------
    def _kill(self) -> None:
        p = self._proc
        if _kill_group(p):
            p.wait()

    def _spawn(self) -> None:
        master, slave = os.openpty()
        _raw_tty(slave)
        env = dict(os.environ)
        env.update(self.extra_env)
        if self._pending_cause == "power-on" or self._powered_at is None:
            self._powered_at = time.monotonic_ns() // 1000000  # the RTC restarts (hub/ports/unix.py rtc_ms)
        env.update({
            "SAMBAND_VHUB_POWERED_AT": str(self._powered_at),
            "SAMBAND_FLASH": str(self.image.image),
            "SAMBAND_VHUB_UID": self.uid,
            "SAMBAND_VHUB_RESET": self._pending_cause,
            "SAMBAND_VHUB_RAW": "1" if self._raw else "0",
            "SAMBAND_VHUB_ROMFS": str(self.romfs or ""),
            "SAMBAND_VHUB_WARP": str(self.warp_file or ""),
            "MICROPYPATH": "",
        })

        def child_setup() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        cmd = [sys.executable, str(LAUNCHER), "-X", f"heapsize={self.heap + self._rom_heap()}", "-i", str(BOOT_SCRIPT)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd  # it execs: the pid and session stay the hub's
        self._proc = subprocess.Popen(
            cmd,
            stdin=slave, stdout=slave, stderr=slave, cwd=str(self.flash), env=env,
            preexec_fn=child_setup, close_fds=True)
        os.close(slave)
        if self._hub_fd is not None:
            os.close(self._hub_fd)
        self._hub_fd = master
        os.set_blocking(master, False)
        self.resets.append(self._pending_cause)
        self.boots += 1
        self._ready = False
        self._ready_buf = b""
        # What the client typed while the old interpreter was going down is
        # meant for the new one and is kept, not dropped.
        self._tail = b""
        self._stuck_checks = 0
        pending = self._to_hub if self.boots > 1 else b""
        if self._raw:
            # No friendly banner: back into the raw REPL, as a board stays in it.
            self._suppress = True
            self._suppress_buf = b""
            pending = b"\x01" + pending
        self._to_hub = pending
        self._pending_cause = "soft"
        if self.log:
            self.log(f"vhub: interpreter pid {self._proc.pid} started (boot {self.boots}, reset {self.resets[-1]})")

    def _died(self, code: int) -> None:
        """Decide how the next interpreter starts, from how this one ended."""
        if self._exit_code is not None:
            code, self._exit_code = self._exit_code, None
        if self.log:
            self.log(f"vhub: interpreter exited with code {code} (tail {self._tail[-40:]!r})")
        if self._pending_cause == "power-on":
            return  # power_cut(): a pulled plug, already decided
        if code == EXIT_HARD_RESET:
            self._pending_cause = "hard"
            self._raw = False
        elif code < 0:
            self._pending_cause = "crash"
            self._raw = False
        if self._pending_cause == "soft":
            self._to_client(b"MPY: soft reboot\r\n")

    def _ctrl_c(self, proc: subprocess.Popen, hub_fd: int) -> bool:
        """Deliver a Ctrl-C the client typed, as a board's serial driver does.

        While code runs, a board schedules a KeyboardInterrupt, raised at the
        next bytecode boundary; while the REPL reads, Ctrl-C is an ordinary
        character (it cancels the line, or is what a raw-REPL client sends).
        The unix port catches SIGINT exactly while it runs code (pyexec sets
        the interrupt char around execution), so its SigCgt mask tells the two
        apart. The interpreter is stopped while it is looked at, so that it
        cannot start or finish running code between the look and the
        delivery. Returns False if the byte could not be written yet (the
        pty is full): the relay tries again when it next writes."""
        pid = proc.pid
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return True  # gone already: the relay starts its successor
        try:
            _, status = os.waitpid(pid, os.WUNTRACED)
        except ChildProcessError:
            return True  # reaped elsewhere (stop(), power_cut())
        if not os.WIFSTOPPED(status):
            proc.returncode = os.waitstatus_to_exitcode(status)  # it ended meanwhile; Popen.poll() reports this
            return True
        try:
            try:
                with open(f"/proc/{pid}/status") as f:
                    caught = caught_signals(f.read())
            except OSError:
                caught = set()
            if signal.SIGINT in caught and INTERRUPT_SIGNAL in caught:
                os.kill(pid, INTERRUPT_SIGNAL)
                self.interrupts += 1
                self._trace("interrupt", CTRL_C)
                return True
            try:
                n = os.write(hub_fd, CTRL_C)
            except OSError:
                n = 0
            if n:
                self._trace("to-hub", CTRL_C)
            return n == 1
        finally:
            os.kill(pid, signal.SIGCONT)

    def _check_stuck(self, now: float) -> None:
        """Log and count an interpreter that deadlocked. With Ctrl-C raised
        from inside C code the unix port could leave its qstr lock held
        (seen during imports from ROMFS); scheduled interrupts should never
        do that, and tests assert `deadlocks == 0` to prove it. MicroPython
        code on the virtual hub never waits on a futex (asyncio sleeps in
        poll), so a single-threaded interpreter parked on one for STUCK_S is
        deadlocked. Nothing is restarted: hiding it would hide the bug."""
        if now - self._stuck_at < STUCK_POLL_S or self._proc is None:
            return
        self._stuck_at = now
        try:
            with open(f"/proc/{self._proc.pid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{self._proc.pid}/status") as f:
                single = "\nThreads:\t1\n" in f.read()
        except OSError:
            return
        if not ("futex" in wchan and single):
            self._stuck_checks = 0
            return
        self._stuck_checks += 1
        if self._stuck_checks == round(STUCK_S / STUCK_POLL_S):  # counted once per deadlock
            self.deadlocks += 1
            if self.log:
                self.log(f"vhub: interpreter pid {self._proc.pid} deadlocked ({wchan})")

    @property
    def rom_heap(self) -> int:
        """Bytes of the heap the ROMFS image takes (0 without one): on a board it stays in flash,
        so heap figures of the application leave it out."""
        return self._rom_heap()

    def _rom_heap(self):
        # the image as one bytearray: its size, rounded up to 32-byte GC blocks, plus the object
        return (self.rom_bytes + 31) // 32 * 32 + 64 if self.romfs else 0

    def _to_client(self, data: bytes) -> None:
        if not data:
            return
        raw_at, friendly_at = data.rfind(RAW_BANNER), data.rfind(FRIENDLY_BANNER)
        if raw_at != friendly_at:  # both -1 when neither: the mode stays
            self._raw = raw_at > friendly_at
        if not self._raw:
            # A board's console is cooked: every "\n" goes out as "\r\n".
            # The raw REPL's output is passed exactly as the interpreter wrote it.
            cooked = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if self._last_cr and cooked.startswith(b"\r\n") and data.startswith(b"\n"):
                cooked = cooked[1:]
            self._last_cr = data.endswith(b"\r")
            data = cooked
        try:
            os.write(self._cli_fd, data)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EIO):
                raise
            # nobody listening, or the client is not reading: a USB port drops it too

    def _trace(self, what: str, data: bytes) -> None:
        if self._trace_file:
            self._trace_file.write(f"{time.monotonic():.6f} {what} {data!r}\n")
            self._trace_file.flush()

    def _from_hub(self, data: bytes) -> None:
        self._trace("from-hub", data)
        seen = self._tail + data
        self._tail = seen[-64:]
        m = EXIT_MARK.search(seen)
        if m and self._exit_code is None:
            # sys.exit() in main.py (Port.reset(): 75): the unix port run with -i would
            # drop into its REPL; a board resets, so the process ends here with that code
            self._exit_code = int(m.group(1))
            self._tail = seen[m.end():][-64:]
            _kill_group(self._proc)
        if not self._ready:
            buf = self._ready_buf + data
            i = buf.find(READY)
            if i < 0:
                self._ready_buf = buf[-64:]
                return
            self._ready = True
            self._ready_buf = b""
            data = buf[:i] + buf[i + len(READY):]
        if not self._suppress:
            self._to_client(data)
            return
        buf = self._suppress_buf + data
        i = buf.find(FRIENDLY_BANNER)
        if i < 0:
            # keep a tail that could be the start of the banner
            keep = len(FRIENDLY_BANNER) - 1
            self._to_client(buf[:-keep] if len(buf) > keep else b"")
            self._suppress_buf = buf[-keep:] if len(buf) > keep else buf
            return
        self._to_client(buf[:i])
        j = buf.find(PROMPT, i)
        if j < 0:
            self._suppress_buf = buf[i:]
            return
        self._suppress = False
        self._suppress_buf = b""
        rest = buf[j + len(PROMPT):]
        if rest:
            self._to_client(rest)

    def _write_hub(self, proc: subprocess.Popen, hub_fd: int) -> None:
        """Pass what the client typed to the interpreter, in order; a Ctrl-C
        goes through _ctrl_c once everything typed before it is written.
        Stops early when the pty is full (the rest waits for the next round)
        or the interpreter was replaced (the rest is for its successor)."""
        while self._to_hub:
            i = self._to_hub.find(CTRL_C)
            if i == 0:
                with self._lock:
                    if proc is not self._proc or not self._ctrl_c(proc, hub_fd):
                        return
                self._to_hub = self._to_hub[1:]
                continue
            chunk = self._to_hub if i < 0 else self._to_hub[:i]
            try:
                n = os.write(hub_fd, chunk)
            except OSError:
                return
            self._trace("to-hub", chunk[:n])
            self._to_hub = self._to_hub[n:]
            if n < len(chunk):
                return

    def _relay(self) -> None:
        poller = select.poll()
        while not self._stop.is_set():
            with self._lock:
                hub_fd = self._hub_fd
                proc = self._proc
            poller = select.poll()
            poller.register(hub_fd, select.POLLIN)
            poller.register(self._cli_fd, select.POLLIN)
            cli_hup = False
            for fd, ev in poller.poll(50):
                if fd == hub_fd and ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    try:
                        data = os.read(hub_fd, 4096)
                    except OSError:
                        data = b""
                    if data:
                        self._from_hub(data)
                elif fd == self._cli_fd:
                    if ev & select.POLLIN:
                        try:
                            data = os.read(self._cli_fd, 4096)
                        except OSError:
                            data = b""
                        if data:
                            self._to_hub += data
                    elif ev & (select.POLLHUP | select.POLLERR):
                        cli_hup = True
            now = time.monotonic()
            if self._to_hub and self._ready:
                self._write_hub(proc, hub_fd)
            self._check_stuck(now)
            if proc.poll() is not None and not self._stop.is_set():
                # drain what the interpreter said last
                while True:
                    try:
                        data = os.read(hub_fd, 4096)
                    except OSError:
                        break
                    if not data:
                        break
                    self._from_hub(data)
                with self._lock:
                    if self._stop.is_set():
                        break
                    if proc is self._proc:
                        self._died(proc.returncode)
                        self._spawn()
            if cli_hup:
                time.sleep(0.02)  # no client: poll slowly instead of spinning on HUP
        if self._hub_fd is not None:
            try:
                os.close(self._hub_fd)
            except OSError:
                pass
            self._hub_fd = None
