"""The virtual hub behaves like a board on a USB serial port: tested with
pyserial and with unmodified mpremote, as against a real board."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import serial
from conftest import firmware_tree

from samband.device.transport import Hub
from samband.errors import HubError
from samband.paths import tool
from samband.vhub import VirtualHub, parse_heap
from samband.vhub.supervisor import caught_signals


@pytest.fixture
def vhub(tmp_path):
    firmware_tree()
    # the supervisor's log goes to stdout, which pytest shows for a failing test
    with VirtualHub(tmp_path / "flash", link=tmp_path / "tty", log=print) as hub:
        yield hub


def read_until(ser, marker, timeout=10):
    buf = b""
    end = time.monotonic() + timeout
    while marker not in buf:
        if time.monotonic() > end:
            raise AssertionError(f"{marker!r} not seen within {timeout}s; got {buf[-800:]!r}")
        buf += ser.read(ser.in_waiting or 1)
    return buf


def open_port(hub):
    return serial.Serial(hub.port, 115200, timeout=0.05)


def interrupt_to_repl(ser):
    """Ctrl-C alone: a prompt comes back whether code ran (KeyboardInterrupt)
    or the REPL was waiting (the line is cancelled), and exactly one; an extra
    "\r" would make the REPL print a second prompt after this one, which the
    next command would then take for its own."""
    ser.write(b"\x03")
    read_until(ser, b">>> ")
    ser.reset_input_buffer()


def run_until(ser, code, marker):
    """Start code at the friendly REPL; return once it printed marker, i.e. is running.

    The code goes in as one exec() line: no auto-indent to fight, and no
    second Enter left unread, to print a stray prompt after an interrupt."""
    ser.write(f"exec({code!r})\r".encode())
    return read_until(ser, marker.encode() + b"\r\n")


def repl(ser, line, timeout=10):
    ser.write(line.encode() + b"\r")
    out = read_until(ser, b"\r\n>>> ", timeout)
    return out.decode()


def soft_reboot(ser):
    """Ctrl-C, Ctrl-D at the friendly REPL; returns (boot number, reset cause) the hub prints."""
    interrupt_to_repl(ser)
    ser.write(b"\x04")
    out = read_until(ser, b"STATUS ").decode()
    assert "MPY: soft reboot\r\n" in out
    m = re.search(r"samband hub \S+ on vhub \(unix port\), boot (\d+), reset: (\S+)\r\n", out)
    assert m, out
    return int(m.group(1)), m.group(2)


def test_boots_like_a_board(vhub):
    with open_port(vhub) as ser:
        # What the first boot printed may be gone before the port was open (as on USB): reboot twice.
        first, _ = soft_reboot(ser)
        second, cause = soft_reboot(ser)
        assert second == first + 1 and cause == "soft"
        assert vhub.resets[0] == "power-on" and vhub.resets[-1] == "soft"


def test_friendly_repl_output_is_cooked(vhub):
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        out = repl(ser, "print(6 * 7)")
        assert "42\r\n>>> " in out
        out = repl(ser, "import sys; sys.implementation.name")
        assert "'micropython'" in out


def test_ctrl_c_interrupts_running_code(vhub):
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        n = vhub.interrupts
        run_until(ser, "print('spinning')\nwhile True: pass", "spinning")
        ser.write(b"\x03")
        out = read_until(ser, b">>> ").decode()
        assert "KeyboardInterrupt" in out
        assert "1" in repl(ser, "1")  # still alive, same interpreter
        assert vhub.boots == 1 and vhub.interrupts == n + 1 and vhub.deadlocks == 0


def test_ctrl_c_interrupts_a_blocking_call(vhub):
    """A Ctrl-C while the code waits in a system call (sleep, poll, read)
    ends the wait with EINTR and raises there, as on a board."""
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        run_until(ser, "import time; print('sleeping'); time.sleep(3600)", "sleeping")
        ser.write(b"\x03")
        out = read_until(ser, b">>> ").decode()
        assert "KeyboardInterrupt" in out and vhub.boots == 1


def test_ctrl_c_at_the_repl_is_a_character(vhub):
    """While the REPL reads, a board passes Ctrl-C on as a character: it
    cancels the line typed so far. No KeyboardInterrupt, no signal."""
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        n = vhub.interrupts
        ser.write(b"print('never')\x03")
        out = read_until(ser, b"\r\n>>> ").decode()
        assert "never\r\n" not in out and "KeyboardInterrupt" not in out
        assert "42\r\n" in repl(ser, "print(6 * 7)")
        assert vhub.interrupts == n and vhub.boots == 1


@pytest.mark.parametrize("romfs", [False, True], ids=["flash", "romfs"])
def test_ctrl_c_storm_never_kills_the_interpreter(tmp_path, romfs):
    """Ctrl-Cs in quick succession, landing anywhere in code that imports
    (from the flash folder, or from a ROMFS image, where the unix port's own
    SIGINT handler left its qstr lock held), allocates and collects, where
    that handler also died of "FATAL: uncaught NLR": every one ends in a
    prompt of the same interpreter, as on a board."""
    from samband.device import build
    firmware_tree()
    code = ("import gc, sys\nprint('busy')\nwhile True:\n"
            " import hub.cbor, hub.summary\n del sys.modules['hub.cbor'], sys.modules['hub.summary']\n"
            " b = [bytearray(64) for i in range(50)]\n gc.collect()")
    rom = build.romfs_path("vhub") if romfs else None
    with VirtualHub(tmp_path / "flash", heap="256k", romfs=rom, log=print) as vhub, open_port(vhub) as ser:
        interrupt_to_repl(ser)
        for _ in range(20):
            run_until(ser, code, "busy")
            ser.write(b"\x03\x03")  # the second one may land while the first is being raised
            read_until(ser, b"KeyboardInterrupt")
            ser.write(b"print(1 + 2)\r")
            read_until(ser, b"3\r\n>>> ")  # past any prompt the second Ctrl-C printed
        assert vhub.boots == 1 and vhub.deadlocks == 0


def test_deadlocked_interpreter_is_counted_not_hidden(vhub):
    """An interpreter parked on its own lock (the unix port's qstr lock when it
    took a Ctrl-C inside C code) is logged and counted, so that tests can
    assert it never happens; it is not quietly restarted. Here the code
    deadlocks itself on purpose."""
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        ser.write(b"import _thread; l = _thread.allocate_lock(); l.acquire(); l.acquire()\r")
        read_until(ser, b"True\r\n", timeout=5)  # the first acquire; the second never returns
        end = time.monotonic() + 30
        while vhub.deadlocks == 0:
            assert time.monotonic() < end, "the deadlock was not noticed"
            time.sleep(0.05)
        assert vhub.deadlocks == 1 and vhub.boots == 1


CODE_HEAP = ("import gc\ngc.collect()\na = gc.mem_alloc()\n"
             "import hub.collect, hub.journal, hub.seal, hub.uplink\n"
             "gc.collect()\nprint(gc.mem_alloc() - a, hub.journal.__file__)")


def test_romfs_runs_the_hub_package_in_place(tmp_path):
    """From its ROMFS image (as from a board's ROM partition) the hub package
    runs in place: importing it costs far less heap than from the flash
    filesystem, whose .mpy bytecode is copied into the heap."""
    from samband.device import build
    firmware_tree()
    image = build.romfs_path("vhub")
    used = {}
    for rom in (None, image):
        with VirtualHub(tmp_path / ("rom" if rom else "fs"), heap="256k", romfs=rom) as hub:
            with Hub(hub.port) as h:  # its Ctrl-C may land during the boot's imports from the image
                n, where = h.exec(CODE_HEAP).split()
                used[bool(rom)] = int(n)
                assert where == ("/rom/hub/journal.mpy" if rom else "hub/journal.mpy")
                free = int(h.eval("__import__('gc').mem_free()"))
            assert hub.rom_bytes == (image.stat().st_size if rom else 0)
            assert hub.boots == 1 and hub.deadlocks == 0
        assert free > 256 * 1024 - used[bool(rom)] - 64 * 1024  # the image does not eat the application's heap
    assert used[True] < 0.7 * used[False], used


def test_machine_soft_reset_reruns_boot_and_main(vhub):
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        ser.write(b"import machine; machine.soft_reset()\r")
        out = read_until(ser, b"STATUS ").decode()
        assert "MPY: soft reboot" in out and "reset: soft" in out
    assert vhub.boots == 2


def test_heap_is_limited_like_an_esp32(vhub):
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        out = repl(ser, "import gc; gc.collect(); print('heap', gc.mem_alloc() + gc.mem_free())")
        total = int(re.search(r"heap (\d+)", out).group(1))
        assert 90_000 < total <= 102_400
        out = repl(ser, "b = bytearray(150_000)")
        assert "MemoryError" in out


def test_heap_is_configurable(tmp_path):
    firmware_tree()
    with VirtualHub(tmp_path / "flash", heap="300k") as hub, Hub(hub.port) as h:
        assert 290_000 < int(h.eval("__import__('gc').mem_free() + __import__('gc').mem_alloc()")) <= 300 * 1024
        h.exec("import gc; gc.collect(); b = bytearray(120_000)")  # more than a 100k heap holds


def test_caught_signals_from_proc_status():
    status = "Name:\tpython3\nSigIgn:\t0000000001001000\nSigCgt:\t0000004000000802\nCapInh:\t0\n"
    assert caught_signals(status) == {signal.SIGINT, signal.SIGUSR2, 39}
    assert caught_signals("SigCgt:\t0000000000000000\n") == set()
    with pytest.raises(ValueError):
        caught_signals("Name:\tx\n")


def test_heap_size_parsing():
    assert parse_heap("100k") == 102400 and parse_heap("2m") == 2 * 1024 * 1024 and parse_heap(65536) == 65536
    for bad in ("lots", "1k", "-5k"):
        with pytest.raises(HubError):
            parse_heap(bad)


def test_raw_repl_and_raw_paste(vhub):
    with Hub(vhub.port) as h:
        assert h.eval("1 + 2") == "3"
        # more than one raw-paste window (the unix port offers 128 bytes) in one go
        code = "x = 0\n" + "".join(f"x += {i}\n" for i in range(200)) + "print(x)\n"
        assert h.exec(code).strip() == str(sum(range(200)))
        assert h.t.use_raw_paste, "mpremote fell back from raw-paste mode"
        with pytest.raises(HubError, match="ZeroDivisionError"):
            h.exec("1/0")


def test_power_cut_restarts_with_power_on_cause(vhub):
    with Hub(vhub.port) as h:
        h.exec("f = open('/marker', 'w')\nf.write('x')\nf.close()")  # closed: synced to flash
    vhub.power_cut()
    vhub.wait_boots(2)
    assert vhub.resets[-1] == "power-on"
    with Hub(vhub.port) as h:
        assert h.eval("open('/marker').read()") == "'x'"  # the flash survives
        assert h.eval("__import__('os').getenv('SAMBAND_VHUB_RESET')") == "'power-on'"


def test_flash_is_the_root_filesystem(vhub):
    with Hub(vhub.port) as h:
        listing = h.eval("sorted(__import__('os').listdir('/'))")
        assert "'boot.py'" in listing and "'main.py'" in listing and "'hub'" in listing and "'board.json'" in listing
        h.exec("import os\nos.mkdir('/d')\nf = open('/d/a.tmp','w')\nf.write('1')\nf.close()\n"
               "os.rename('/d/a.tmp', '/d/a')")
        assert h.eval("__import__('os').listdir('/d')") == "['a']"
    assert vhub.snapshot().read("/d/a") == b"1"  # on the image, as the host reads it


def mpremote(hub, *args, timeout=30):
    p = subprocess.run([tool("mpremote"), "connect", hub.port, *args], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"mpremote {' '.join(args)} failed: {p.stdout}{p.stderr}"
    return p.stdout


def test_unmodified_mpremote(vhub, tmp_path):
    assert mpremote(vhub, "exec", "print('hi', 6 * 7)").strip() == "hi 42"
    src = tmp_path / "hello.py"
    src.write_text("print('hello from', __name__)\n")
    mpremote(vhub, "fs", "cp", str(src), ":hello.py")
    assert vhub.snapshot().read("/hello.py") == src.read_bytes()
    out = mpremote(vhub, "fs", "ls")
    assert re.search(r"\d+ hello.py", out) and "hub/" in out
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(20_000))
    mpremote(vhub, "fs", "cp", str(big), ":big.bin")
    mpremote(vhub, "fs", "cp", ":big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    assert "hello from __main__" in mpremote(vhub, "run", str(src))
    boots = vhub.boots
    mpremote(vhub, "soft-reset")
    assert vhub.boots > boots
    assert mpremote(vhub, "exec", "import hello").strip() == "hello from hello"
    # chained commands in one session, as technicians use them
    out = mpremote(vhub, "fs", "rm", ":hello.py", "+", "exec", "import os; print('hello.py' in os.listdir())")
    assert out.strip().endswith("False")


def test_samband_status_over_the_port(vhub):
    p = subprocess.run([sys.executable, "-m", "samband.cli", "status", "--json", vhub.port],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    import json
    s = json.loads(p.stdout)
    assert s["board"] == "vhub" and s["port"] == "unix" and s["uid"] == "00005a4d0001"
    assert s["heap_free"] > 0 and s["fs_total"] == 2 * 1024 * 1024


def test_no_firmware_is_a_clear_error(tmp_path):
    with pytest.raises(HubError, match="no firmware build"):
        VirtualHub(tmp_path / "f", firmware=tmp_path / "missing").start()
