"""The rig plugin (samband.rig.pytest_plugin, docs/rig.md): the bench file's
validation, which target the options select, why a test is skipped, the
bench's switch commands, and the plugin itself as another project sees it
(pytest run in a folder outside this repository, found by its entry point)."""

import os
import subprocess
import sys
import textwrap

import pytest

from samband.paths import HARDWARE
from samband.rig.bench import BenchError, load_bench, parse_bench
from samband.rig.target import (
    BenchPower,
    CommandError,
    TargetError,
    known_board_names,
    run_command,
    select_target,
    skip_reason,
)

BOARDS = ["esp32-devkit", "picow", "vhub", "wt32-eth01"]
GOOD = """
name = "b"
[power]
off = "uhubctl -l {usb_hub} -p {usb_port} -a off"
on = "uhubctl -l {usb_hub} -p {usb_port} -a on"
[[hub]]
board = "esp32-devkit"
port = "/dev/ttyUSB0"
usb_hub = "1-1"
usb_port = 1
modem = true
[[hub]]
board = "picow"
port = "/dev/ttyACM0"
usb_hub = "1-1"
usb_port = 2
[[dongle]]
transport = "usb:0"
"""


def test_the_reference_bench_parses_and_names_every_part():
    b = load_bench(HARDWARE / "bench" / "bench.toml")
    assert [h.board for h in b.hubs] == ["esp32-devkit", "picow"]
    assert [h.modem for h in b.hubs] == [True, False]
    assert b.dongles == ("usb:0", "usb:1") and b.modem["model"] == "SIM7080G"
    assert "uhubctl" in b.power_off and b.bearer_cut and b.broker_host


@pytest.mark.parametrize("change, error", [
    (("name = \"b\"", "name = 3"), "'name' must be a non-empty string"),
    (("[power]", "[power\n"), "not valid TOML"),
    (("board = \"picow\"", "board = \"pico\""), "hub[2].board: no board 'pico' (known: esp32-devkit, picow,"),
    (("board = \"picow\"", "board = \"vhub\""), "hub[2].board: the virtual hub is not a bench board"),
    (("port = \"/dev/ttyACM0\"", "port = \"COM3\""), "hub[2].port: 'COM3' is not a device path"),
    (("port = \"/dev/ttyACM0\"", "port = \"/dev/ttyUSB0\""), "two hubs with port '/dev/ttyUSB0'"),
    (("usb_port = 2", "usb_port = \"2\""), "[hub].usb_port must be an integer, not '2'"),
    (("usb_port = 2", "usb_port = 0"), "hub[2].usb_port: 0 is not a USB hub port"),
    (("usb_port = 2\n", ""), "hub[2]: [power] switches ports, so the hub needs usb_hub and usb_port"),
    (("modem = true", "modem = \"yes\""), "[hub].modem must be true or false"),
    (("-a off", "-a off {hubb}"), "[power].off: unknown place {hubb}"),
    (("on = \"uhubctl", "#on = \"uhubctl"), "[power] needs both 'off' and 'on' or neither"),
    (("transport = \"usb:0\"", "transport = \"/dev/hci0\""), "dongle[1].transport: '/dev/hci0' is not a bumble"),
    (("[[dongle]]", "colour = 1\n[[dongle]]"), "unknown key 'colour'"),
    (("[[dongle]]", "[bearer]\ncut = \"ip link set {port} down\"\nup = \"x\"\n[[dongle]]"),
     "[bearer].cut: unknown place {port}"),
    (("[[dongle]]", "[modem]\nmodel = \"SIM7080G\"\nbaud = 9600\n[[dongle]]"), "[modem] has an unknown key 'baud'"),
])
def test_a_wrong_bench_file_is_refused_in_one_line(change, error):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(BenchError) as e:
        parse_bench(text, "bench.toml", BOARDS)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("bench.toml: ")
    assert error in msg, msg


def test_a_missing_bench_file_is_one_line(tmp_path):
    with pytest.raises(BenchError, match=r"^.*nope.toml: cannot read the bench file: No such file"):
        load_bench(tmp_path / "nope.toml")


def test_options_select_the_virtual_hub_or_a_real_board():
    bench = parse_bench(GOOD, "bench.toml", BOARDS)
    t = select_target()
    assert t.virtual and t.board == "vhub" and t.describe() == "the virtual hub"
    t = select_target("/dev/ttyUSB0", "esp32-devkit")
    assert not t.virtual and (t.board, t.port) == ("esp32-devkit", "/dev/ttyUSB0") and t.info["mcu"] == "esp32"
    assert t.capabilities() == {"ble", "wifi"}  # no bench: no modem wired, no power switch, no dongles
    t = select_target(None, "picow", bench)  # the port comes from the bench
    assert t.port == "/dev/ttyACM0" and t.capabilities() == {"ble", "wifi", "ble-radio", "power"}
    t = select_target("/dev/ttyUSB0", None, bench)  # the board too
    assert t.board == "esp32-devkit" and "modem" in t.capabilities()
    assert select_target(None, "vhub").virtual


@pytest.mark.parametrize("args, error", [
    (("/dev/ttyUSB0", None, None), "--hub-port /dev/ttyUSB0: give --board (esp32-devkit, picow, wt32-eth01) or"),
    ((None, "esp32-devkit", None), "--board esp32-devkit needs --hub-port PORT or a --bench file naming its port"),
    ((None, "esp33", None), "--board esp33: no such board (known: esp32-devkit, picow, vhub, wt32-eth01)"),
    (("/dev/ttyUSB0", "vhub", None), "--board vhub is the virtual hub: leave --hub-port out"),
    (("/dev/ttyUSB0", "picow", "bench"), "--hub-port /dev/ttyUSB0 is the esp32-devkit in bench.toml, not a picow"),
    ((None, "wt32-eth01", "bench"), "--board wt32-eth01 needs --hub-port PORT (bench.toml has no wt32-eth01)"),
    ((None, None, "bench"), "bench.toml has 2 hubs: choose one with --board (esp32-devkit, picow) or --hub-port"),
])
def test_options_that_select_no_target_are_refused_in_one_line(args, error):
    port, board, bench = args
    bench = parse_bench(GOOD, "bench.toml", BOARDS) if bench else None
    with pytest.raises(TargetError) as e:
        select_target(port, board, bench)
    assert str(e.value) == error or str(e.value).startswith(error), str(e.value)


def test_skip_reasons_follow_the_markers_and_the_target():
    known = known_board_names()
    assert {"esp32", "rp2", "rp2040", "picow", "esp32-devkit", "vhub", "unix"} <= known
    vhub = select_target()
    esp = select_target("/dev/ttyUSB0", "esp32-devkit")
    bench = parse_bench(GOOD, "bench.toml", BOARDS)
    esp_bench = select_target(None, "esp32-devkit", bench)
    pico = select_target(None, "picow", bench)

    assert skip_reason(vhub, known_boards=known) is None
    why = skip_reason(vhub, hil=True, known_boards=known)
    assert why.startswith("hil: needs a real board and this run drives the virtual hub; run pytest --hub-port")
    assert skip_reason(esp, hil=True, boards=["esp32"], known_boards=known) is None
    assert skip_reason(pico, hil=True, boards=["rp2"], known_boards=known) is None
    assert skip_reason(esp, boards=["picow"], known_boards=known) == \
        "needs board picow; this run drives esp32-devkit on /dev/ttyUSB0"
    assert skip_reason(vhub, boards=["esp32", "rp2"], known_boards=known) == \
        "needs board esp32 or rp2; this run drives the virtual hub"
    why = skip_reason(esp, requires=["modem", "power"], known_boards=known)
    assert why.startswith("needs modem, power, which esp32-devkit on /dev/ttyUSB0 has not; modem: a cellular modem")
    assert skip_reason(esp_bench, requires=["modem", "power", "ble-radio"], known_boards=known) is None
    assert "modem" in skip_reason(pico, requires=["modem"], known_boards=known)
    assert skip_reason(vhub, requires=["modem", "power", "flash-snapshot"], known_boards=known) is None
    assert "flash-snapshot" in skip_reason(esp_bench, requires=["flash-snapshot"], known_boards=known)
    with pytest.raises(TargetError, match=r"^requires\('mdoem'\): unknown; known: bearer-faults, ble, ble-radio, "):
        skip_reason(vhub, requires=["mdoem"], known_boards=known)
    with pytest.raises(TargetError, match=r"^board\('esp8266'\): no board, chip or port has that name"):
        skip_reason(vhub, boards=["esp8266"], known_boards=known)


def test_bench_power_runs_the_commands_for_its_port(tmp_path):
    log = tmp_path / "power.log"
    text = GOOD.replace("uhubctl -l {usb_hub} -p {usb_port} -a off",
                        f"sh -c 'echo off {{usb_hub}} {{usb_port}} {{board}} >> {log}'")
    text = text.replace("uhubctl -l {usb_hub} -p {usb_port} -a on", f"sh -c 'echo on {{usb_port}} {{port}} >> {log}'")
    bench = parse_bench(text.replace("[power]", "[power]\nsettle_s = 0"), "bench.toml", BOARDS)
    p = BenchPower(bench, bench.hub_for(board="picow"))
    p.cut()
    assert log.read_text() == "off 1-1 2 picow\non 2 /dev/ttyACM0\n" and p.cuts == 1


def test_a_failing_bench_command_says_which_and_why():
    with pytest.raises(CommandError, match=r"^power off picow: 'sh -c \"echo no such hub >&2; exit 3\"' exited 3: "
                                           r"no such hub$"):
        run_command('sh -c "echo no such hub >&2; exit 3"', {}, "power off picow")
    with pytest.raises(CommandError, match=r"^power on: uhubctl-not-here is not installed"):
        run_command("uhubctl-not-here -a on", {}, "power on")


PROJECT_TESTS = '''
import pytest

def test_plain():
    pass

def test_target(rig_target):
    print("TARGET", rig_target.board, rig_target.port or "-", sorted(rig_target.capabilities()))

@pytest.mark.hil
@pytest.mark.board("esp32")
def test_on_an_esp32(rig_target):
    assert rig_target.info["mcu"] == "esp32"

@pytest.mark.hil
@pytest.mark.board("picow")
def test_on_a_pico():
    pass

@pytest.mark.requires("modem")
def test_needs_a_modem():
    pass

@pytest.mark.requires("mdoem")
def test_typo():
    pass
'''


def run_project(folder, *args):
    """pytest in another project: its own folder and rootdir, no conftest of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rsf", "-s",
                           "--rootdir", str(folder), str(folder), *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_the_plugin_in_another_project_selects_and_skips(tmp_path):
    (tmp_path / "test_project.py").write_text(textwrap.dedent(PROJECT_TESTS))
    p = run_project(tmp_path, "--hub-port", "/dev/ttyUSB0", "--board", "esp32-devkit")
    out = p.stdout
    assert "TARGET esp32-devkit /dev/ttyUSB0 ['ble', 'wifi']" in out, out
    assert "3 passed, 2 skipped, 1 error" in out, out
    assert "needs board picow; this run drives esp32-devkit on /dev/ttyUSB0" in out
    assert "needs modem, which esp32-devkit on /dev/ttyUSB0 has not; modem: a cellular modem" in out
    assert "\nrequires('mdoem'): unknown; known: bearer-faults, ble," in out and "During handling" not in out

    p = run_project(tmp_path)  # the default: the virtual hub
    out = p.stdout
    assert "TARGET vhub - ['bearer-faults', 'ble', 'ethernet', 'flash-snapshot', 'modem', 'power']" in out, out
    assert "3 passed, 2 skipped, 1 error" in out, out
    assert "SKIPPED [2]" in out and ": hil: needs a real board and this run drives the virtual hub; run pytest " \
        "--hub-port PORT --board BOARD [--bench FILE] (docs/rig.md)" in out, out


def test_wrong_options_stop_the_run_in_one_line(tmp_path):
    (tmp_path / "test_project.py").write_text("def test_plain():\n    pass\n")
    (tmp_path / "bench.toml").write_text(GOOD.replace("usb:0", "bluetooth0"))
    p = run_project(tmp_path, "--bench", str(tmp_path / "bench.toml"))
    assert p.returncode == 4, p.stdout + p.stderr  # pytest's usage error
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert err == [f"ERROR: {tmp_path}/bench.toml: dongle[1].transport: 'bluetooth0' is not a bumble transport "
                   f"(usb:..., serial:..., hci-socket:..., tcp-client:..., android-netsim:..., pty:...)"], p.stderr
    p = run_project(tmp_path, "--board", "esp32-devkit")
    assert p.returncode == 4
    assert "ERROR: --board esp32-devkit needs --hub-port PORT or a --bench file naming its port" in p.stderr


def test_a_bench_broker_certificate_names_its_address(tmp_path):
    """The bench's boards dial the broker by its address on the bench network: the
    certificate must name it as an IP address for their TLS to accept it."""
    import ipaddress

    from cryptography import x509

    from samband.rig.broker import make_certs
    make_certs(tmp_path, "192.168.50.1")
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.IPAddress)
    assert ipaddress.ip_address("192.168.50.1") in ips and ipaddress.ip_address("127.0.0.1") in ips
