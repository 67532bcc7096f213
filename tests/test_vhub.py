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

from samband.paths import tool
from samband.transport import Hub
from samband.vhub import VirtualHub, parse_heap
from samband.errors import HubError

from conftest import firmware_tree


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
    ser.write(b"\r\x03")
    read_until(ser, b">>> ")
    ser.reset_input_buffer()


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
        ser.write(b"while True: pass\r\r")
        time.sleep(0.3)
        ser.write(b"\x03")
        out = read_until(ser, b">>> ").decode()
        assert "KeyboardInterrupt" in out
        assert "1" in repl(ser, "1")  # still alive, same interpreter
        assert vhub.boots == 1


def test_interpreter_dying_of_a_ctrl_c_resumes_at_the_repl(vhub):
    """The unix port can die of a badly timed SIGINT; a board would just be at
    its REPL. Here the code swallows the interrupt and the interpreter is then
    killed while the supervisor still waits for it to stop: the client gets a
    prompt, the reset cause stays, and neither boot.py nor main.py runs again."""
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        ser.write(b"import time\rwhile True:\r try: time.sleep_ms(5)\r except KeyboardInterrupt: pass\r\r\r")
        time.sleep(0.3)
        ser.reset_input_buffer()
        ser.write(b"\x03")
        time.sleep(0.2)
        os.kill(vhub.pid, signal.SIGTERM)
        ser.write(b"print(6 * 7)\r")  # typed while the interpreter is going down: kept
        out = read_until(ser, b"42\r\n>>> ").decode()
        assert "MPY: soft reboot" not in out and "samband hub" not in out and "MicroPython" not in out
        assert vhub.boots == 2 and vhub.artefacts == 1
        assert vhub.resets == ["power-on", "power-on"]
        assert "'power-on'" in repl(ser, "__import__('os').getenv('SAMBAND_VHUB_RESET')")


def test_deadlocked_interpreter_resumes_at_the_repl(vhub):
    """The unix port can deadlock on its own lock (seen with a Ctrl-C during
    imports from ROMFS); here the code deadlocks itself on purpose. The
    supervisor notices, and the client gets a prompt back, as from a board."""
    with open_port(vhub) as ser:
        interrupt_to_repl(ser)
        ser.write(b"import _thread; l = _thread.allocate_lock(); l.acquire(); l.acquire()\r")
        out = read_until(ser, b"True\r\n", timeout=5)  # the first acquire; the second never returns
        out += read_until(ser, b">>> ", timeout=15)
        assert b"MPY: soft reboot" not in out and b"samband hub" not in out and b"MicroPython" not in out, out
        assert vhub.deadlocks == 1 and vhub.artefacts == 0 and vhub.boots == 2
        assert vhub.resets == ["power-on", "power-on"]
        assert "42\r\n" in repl(ser, "print(6 * 7)")


CODE_HEAP = ("import gc\ngc.collect()\na = gc.mem_alloc()\n"
             "import hub.collect, hub.journal, hub.seal, hub.uplink\n"
             "gc.collect()\nprint(gc.mem_alloc() - a, hub.journal.__file__)")


def test_romfs_runs_the_hub_package_in_place(tmp_path):
    """From its ROMFS image (as from a board's ROM partition) the hub package
    runs in place: importing it costs far less heap than from the flash
    filesystem, whose .mpy bytecode is copied into the heap."""
    from samband import build
    firmware_tree()
    image = build.romfs_path("vhub")
    used = {}
    for rom in (None, image):
        with VirtualHub(tmp_path / ("rom" if rom else "fs"), heap="256k", romfs=rom) as hub:
            # Not during the boot's imports: a Ctrl-C that lands while the unix port
            # imports from ROMFS can deadlock it (the supervisor then restarts it at
            # the REPL, test_deadlocked_interpreter_resumes_at_the_repl, but this
            # connection's first command would be lost).
            time.sleep(2)
            with Hub(hub.port) as h:
                n, where = h.exec(CODE_HEAP).split()
                used[bool(rom)] = int(n)
                assert where == ("/rom/hub/journal.mpy" if rom else "hub/journal.mpy")
                free = int(h.eval("__import__('gc').mem_free()"))
            assert hub.rom_bytes == (image.stat().st_size if rom else 0)
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
        h.exec("open('/marker', 'w').write('x')")
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
        h.exec("import os\nos.mkdir('/d')\nopen('/d/a.tmp','w').write('1')\nos.rename('/d/a.tmp', '/d/a')")
        assert h.eval("__import__('os').listdir('/d')") == "['a']"
    assert (vhub.flash / "d" / "a").read_text() == "1"


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
    assert (vhub.flash / "hello.py").read_text() == src.read_text()
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
