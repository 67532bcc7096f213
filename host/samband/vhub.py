"""The virtual hub: the MicroPython unix port behind a pseudo-terminal that
behaves like a board's USB serial port.

Two ptys and a relay. The client (mpremote, pyserial, picocom) opens the
"port" pty; the interpreter runs with the other pty as its controlling
terminal, so that a Ctrl-C from the client becomes SIGINT (the line
discipline keeps ISIG) and interrupts running code, as on a board. The
relay between them is where the board-like behaviour lives:

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
* an interpreter that dies of a Ctrl-C (the unix port can, on a badly
  timed SIGINT) is replaced by one that resumes at the REPL with the same
  reset cause, without running boot.py or main.py: where a board would be.
  So is one found deadlocked (see _check_stuck).
"""

import errno
import fcntl
import os
import select
import signal
import subprocess
import termios
import threading
import time
import tty
from pathlib import Path

from samband import build
from samband.errors import HubError
from samband.paths import BUILD, tool

BOOT_SCRIPT = Path(__file__).with_name("vhub_boot.py")
DEFAULT_HEAP = "100k"
EXIT_HARD_RESET = 75  # hub.ports.unix.Port.reset()
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
FRIENDLY_BANNER = b"MicroPython "
PROMPT = b">>> "
READY = b"\x1dvhub-ready\x1d"  # printed by vhub_boot.py once the flash is mounted
# The unix port raises KeyboardInterrupt straight from its SIGINT handler;
# one that lands inside an import or a filesystem call can be swallowed
# there, and when its REPL starts it flushes the terminal's input. A board
# loses neither. So after a Ctrl-C to a busy interpreter the supervisor
# holds back what the client types next until a prompt shows that the
# interpreter stopped, repeating the Ctrl-C if none comes.
INTR_RETRY_S = 1.0  # no sign of a KeyboardInterrupt this long after Ctrl-C: send it again
INTR_TRIES = 5
STUCK_POLL_S = 0.5  # how often the supervisor looks for a deadlocked interpreter
STUCK_S = 2.0  # parked on a futex this long: deadlocked
INTR_DEATH_S = 3.0  # an interpreter that dies this soon after a Ctrl-C died of it
INTR_HOLD_S = 5.0  # longest the client's further input waits for a prompt
PROMPTS = (b">>> ", b"... ", b"\x04>", b"CTRL-B to exit\r\n>")  # the interpreter waits for input


def parse_heap(text):
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


def deploy(board_tree, flash):
    """Copy a firmware tree onto a flash folder: only what changed, leaving the hub's data alone.

    Firmware files that the new build no longer has are removed; files the
    hub wrote itself (journal, state) are not firmware and stay."""
    board_tree, flash = Path(board_tree), Path(flash)
    flash.mkdir(parents=True, exist_ok=True)
    new = build.tree(board_tree)
    marker = flash / ".firmware.json"
    try:
        import json
        old = json.loads(marker.read_text())
    except (OSError, ValueError):
        old = {}
    changed = 0
    for rel, digest in new.items():
        dst = flash / rel
        if old.get(rel) == digest and dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        tmp.write_bytes((board_tree / rel).read_bytes())
        os.replace(tmp, dst)
        changed += 1
    for rel in old:
        if rel not in new:
            (flash / rel).unlink(missing_ok=True)
    import json
    marker.write_text(json.dumps(new, indent=1, sort_keys=True))
    return changed


def _raw_with_isig(fd):
    """Raw terminal that still turns Ctrl-C into SIGINT, and nothing else into a signal."""
    a = termios.tcgetattr(fd)
    a[0] = 0  # iflag: no CR/NL mapping, no XON/XOFF
    a[1] = 0  # oflag: no ONLCR, bytes go out as written
    a[2] = (a[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD
    a[3] = termios.ISIG  # lflag: no echo, no canonical mode
    cc = a[6]
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    cc[termios.VINTR] = 3
    for c in (termios.VQUIT, termios.VSUSP):
        cc[c] = 0  # _POSIX_VDISABLE: Ctrl-\ and Ctrl-Z are data, not signals
    termios.tcsetattr(fd, termios.TCSANOW, a)


class VirtualHub:
    """One virtual hub. start() returns the path of its serial port."""

    def __init__(self, flash, heap=DEFAULT_HEAP, uid=None, link=None, board="vhub",
                 firmware=None, deploy_firmware=True, log=None, env=None, romfs=None):
        self.flash = Path(flash).resolve()
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
        self.port = None
        self.boots = 0
        self.resets = []  # reset causes, in order
        self._proc = None
        self._hub_fd = None
        self._cli_fd = None
        self._raw = False
        self._suppress = False
        self._suppress_keep_prompt = False
        self._suppress_buf = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._pending_cause = "power-on"
        self._to_hub = b""
        self._hold_until = None
        self._retry_at = None
        self._intr_at = None  # when the last Ctrl-C went to the interpreter
        self._resume = False  # next interpreter resumes at the REPL (see _died)
        self.artefacts = 0  # interpreters lost to a Ctrl-C and resumed at the REPL
        self.deadlocks = 0  # interpreters found deadlocked and resumed at the REPL
        self._stuck = False
        self._stuck_checks = 0
        self._stuck_at = 0.0
        self._last_cr = False
        trace = os.environ.get("SAMBAND_VHUB_TRACE")
        self._trace_file = open(trace, "a") if trace else None  # every byte both ways, for debugging

    # -- life cycle ----------------------------------------------------------------
    def start(self):
        if self.deploy_firmware:
            if not self.firmware.is_dir():
                raise HubError(f"no firmware build at {self.firmware}: run `make firmware`")
            deploy(self.firmware, self.flash)
        elif not (self.flash / "board.json").exists():
            raise HubError(f"{self.flash} holds no firmware (no board.json)")
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

    def stop(self):
        self._stop.set()
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

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def power_cut(self):
        """Pull the plug: SIGKILL the interpreter mid-whatever, then power on again."""
        with self._lock:
            self._pending_cause = "power-on"
            self._raw = False
            self._kill()

    def wait_boots(self, n, timeout=10):
        end = time.monotonic() + timeout
        while self.boots < n:
            if time.monotonic() > end:
                raise HubError(f"virtual hub did not boot {n} times within {timeout}s")
            time.sleep(0.01)

    # -- internals -----------------------------------------------------------------
    def _kill(self):
        p = self._proc
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def _spawn(self):
        master, slave = os.openpty()
        _raw_with_isig(slave)
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update({
            "SAMBAND_FLASH": str(self.flash),
            "SAMBAND_VHUB_UID": self.uid,
            "SAMBAND_VHUB_RESET": self._pending_cause,
            "SAMBAND_VHUB_RAW": "1" if self._raw else "0",
            "SAMBAND_VHUB_RESUME": "1" if self._resume else "0",
            "SAMBAND_VHUB_ROMFS": str(self.romfs or ""),
            "MICROPYPATH": "",
        })

        def child_setup():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self._proc = subprocess.Popen(
            [tool("micropython"), "-X", f"heapsize={self.heap + self._rom_heap()}", "-i", str(BOOT_SCRIPT)],
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
        resume, self._resume = self._resume, False
        self._hold_until = None
        self._retry_at = None
        self._intr_at = None
        self._intr_tries = 0
        self._idle = False
        self._tail = b""
        pending = self._to_hub if self.boots > 1 else b""
        if resume or self._raw:
            # No friendly banner: back into the raw REPL, or at the friendly
            # prompt as a board shows it after a KeyboardInterrupt.
            self._suppress = True
            self._suppress_buf = b""
            self._suppress_keep_prompt = not self._raw
            if self._raw:
                pending = b"\x01" + pending
        self._to_hub = pending
        self._pending_cause = "soft"
        if self.log:
            self.log(f"vhub: interpreter pid {self._proc.pid} started (boot {self.boots}, reset {self.resets[-1]})")

    def _died(self, code, now):
        """Decide how the next interpreter starts, from how this one ended."""
        if self.log:
            self.log(f"vhub: interpreter exited with code {code} (tail {self._tail[-40:]!r})")
        stuck, self._stuck = self._stuck, False
        if self._pending_cause == "power-on":
            return  # power_cut(): a pulled plug, already decided
        interrupted = self._hold_until is not None or (
            self._intr_at is not None and now - self._intr_at < INTR_DEATH_S)
        if stuck or (code not in (0, EXIT_HARD_RESET) and interrupted):
            # The unix port can die of a badly timed SIGINT (a second one
            # while the first is being raised: "FATAL: uncaught NLR"). A board
            # would simply be at its REPL after the KeyboardInterrupt, with no
            # reset at all, so the next interpreter resumes there, with the
            # same reset cause, and the client never sees the difference.
            self._resume = True
            self._pending_cause = self.resets[-1] if self.resets else "power-on"
            if not stuck:  # (a deadlock is counted and logged where it is found)
                self.artefacts += 1
                if self.log:
                    self.log(f"vhub: interpreter died of a Ctrl-C (exit {code}); resuming at the REPL")
            return
        if code == EXIT_HARD_RESET:
            self._pending_cause = "hard"
            self._raw = False
        elif code < 0:
            self._pending_cause = "crash"
            self._raw = False
        if self._pending_cause == "soft":
            self._to_client(b"MPY: soft reboot\r\n")

    def _check_stuck(self, now):
        """The unix port can deadlock on its own qstr lock when a Ctrl-C lands
        while it imports from a ROMFS image (4 boots in 60 with Ctrl-C during
        the imports; never from the flash folder). MicroPython code on the
        virtual hub never waits on a futex (asyncio sleeps in poll), so a
        single-threaded interpreter parked on one for 2 s is stuck: it is
        killed and its replacement resumes at the REPL, as a board would be."""
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
        self._stuck_checks = self._stuck_checks + 1 if ("futex" in wchan and single) else 0
        if self._stuck_checks * STUCK_POLL_S >= STUCK_S:
            self._stuck_checks = 0
            self._stuck = True
            self.deadlocks += 1
            if self.log:
                self.log(f"vhub: interpreter pid {self._proc.pid} deadlocked ({wchan}); restarting it at the REPL")
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _rom_heap(self):
        # the image as one bytearray: its size, rounded up to 32-byte GC blocks, plus the object
        return (self.rom_bytes + 31) // 32 * 32 + 64 if self.romfs else 0

    def _to_client(self, data):
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

    def _trace(self, what, data):
        if self._trace_file:
            self._trace_file.write(f"{time.monotonic():.6f} {what} {data!r}\n")
            self._trace_file.flush()

    def _from_hub(self, data):
        self._trace("from-hub", data)
        self._tail = (self._tail + data)[-64:]
        self._idle = self._tail.endswith(PROMPTS)
        if self._idle:
            self._hold_until = self._retry_at = None  # stopped: release what the client typed meanwhile
        elif b"KeyboardInterrupt" in self._tail:
            self._retry_at = None
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
        rest = buf[j:] if self._suppress_keep_prompt else buf[j + len(PROMPT):]
        if rest:
            self._to_client(rest)

    def _relay(self):
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
            if self._hold_until is not None and now > self._hold_until:
                self._hold_until = None
            if self._to_hub and self._ready and self._hold_until is None:
                chunk = self._to_hub
                i = chunk.find(b"\x03")
                stopping = i >= 0 and not self._idle
                if stopping:
                    chunk = chunk[:i + 1]  # the rest waits for the prompt
                try:
                    n = os.write(hub_fd, chunk)
                    self._trace("to-hub", chunk[:n])
                    self._to_hub = self._to_hub[n:]
                    if n:
                        self._idle = False
                        self._tail = b""
                    if stopping and n == len(chunk):
                        self._intr_at = now
                        self._intr_tries = 0
                        self._hold_until = now + INTR_HOLD_S
                        self._retry_at = now + INTR_RETRY_S
                except OSError:
                    pass
            if self._retry_at is not None and now > self._retry_at:
                self._intr_tries += 1
                self._retry_at = now + INTR_RETRY_S if self._intr_tries < INTR_TRIES else None
                try:
                    os.write(hub_fd, b"\x03")
                    self._intr_at = now
                    self._trace("to-hub (Ctrl-C again)", b"\x03")
                except OSError:
                    pass
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
                        code = proc.returncode
                        self._died(proc.returncode, time.monotonic())
                        self._spawn()
            if cli_hup:
                time.sleep(0.02)  # no client: poll slowly instead of spinning on HUP
        if self._hub_fd is not None:
            try:
                os.close(self._hub_fd)
            except OSError:
                pass
            self._hub_fd = None
