"""`samband provision` for the hub's bearers and secrets: Wi-Fi networks, Ethernet,
cellular (APN, user, password, PIN) and their order into /config/hub.json; every
secret sealed under the hub's own key (never in clear on the flash, in the output,
the hub's status or its log); re-provisioning keeps the key, the settings and says
what changes; each bad option refused in one line with nothing written."""

import json
import time

import pytest
from conftest import firmware_tree

from samband.cli import main
from samband.device import console, vault
from samband.device.depot import Depot
from samband.vhub import Flash, VirtualHub

SECRETS = {"home": 'home "pass" 1', "clinic": "clinic passphrase 2", "apn": "apn-Secret-99",
           "pin": "58203716", "mqtt": 'mqtt-s3cret-ü"pw'}


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def files(tmp_path):
    out = {}
    for name, text in SECRETS.items():
        p = tmp_path / f"{name}.secret"
        p.write_text(text + "\n")
        out[name] = p
    return out


def assert_no_secret(blob):
    data = blob if isinstance(blob, bytes) else blob.encode()
    for s in SECRETS.values():
        assert s.encode() not in data, s


def test_bearers_and_secrets_for_an_esp32(tmp_path, files, capsys):
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    code, out, err = cli(capsys, "provision", "--flash", flash, "--depot", depot, "--board", "esp32-devkit",
                         "--wifi", "Home", files["home"], "--wifi", "Clinic", files["clinic"],
                         "--apn", "health.example.com", "--apn-user", "hub", "--apn-password-file", files["apn"],
                         "--apn-auth", "chap", "--sim-pin-file", files["pin"], "--modem", "bg96",
                         "--broker", "broker.example.org:8883", "--broker-password-file", files["mqtt"],
                         "--bearer-order", "wifi,cellular")
    assert code == 0, err
    image = Flash(flash)
    cfg = json.loads(image.read("/config/hub.json"))
    assert cfg["bearers"] == [
        {"kind": "wifi", "name": "wifi", "networks": [{"ssid": "Home", "password_sealed": "wifi/Home"},
                                                      {"ssid": "Clinic", "password_sealed": "wifi/Clinic"}]},
        {"kind": "cellular", "name": "cellular", "apn": "health.example.com", "user": "hub", "auth": "chap",
         "modem": "bg96", "password_sealed": "cellular/password", "pin_sealed": "cellular/pin"}]
    assert cfg["uplink"] == {"host": "broker.example.org", "port": 8883, "password_sealed": "mqtt"}
    assert "+ bearer order = wifi, cellular" in out and "secret wifi/Home: (new)" in out
    assert "hub key: new" in out
    assert_no_secret(out + err)
    assert_no_secret(image.image.read_bytes())  # the whole flash image: nothing in clear
    key = image.read("/keys/hub.key")
    blob = image.read("/keys/vault")
    table = {"wifi/Home": SECRETS["home"], "wifi/Clinic": SECRETS["clinic"], "cellular/password": SECRETS["apn"],
             "cellular/pin": SECRETS["pin"], "mqtt": SECRETS["mqtt"]}
    assert vault.unseal(blob, key) == table
    # the firmware's own vault opens it and fills the config the bearers and uplink read
    from hub import vault as fw
    filled, missing = json.loads(json.dumps(cfg)), []
    fw.fill(filled, fw.unseal(blob, key), missing)
    assert missing == []
    assert [n["password"] for n in filled["bearers"][0]["networks"]] == [SECRETS["home"], SECRETS["clinic"]]
    assert (filled["bearers"][1]["password"], filled["bearers"][1]["pin"]) == (SECRETS["apn"], SECRETS["pin"])
    assert filled["uplink"]["password"] == SECRETS["mqtt"]
    with pytest.raises(ValueError, match="does not open"):
        fw.unseal(blob, bytes(32))  # a flash dump without hub.key reveals nothing
    # Ethernet on a board that has a PHY, cheapest first unless told otherwise
    code, out, err = cli(capsys, "provision", "--flash", tmp_path / "eth", "--depot", depot, "--board", "wt32-eth01",
                         "--wifi", "Home", files["home"], "--ethernet", "on")
    assert code == 0, err
    cfg = json.loads(Flash(tmp_path / "eth").read("/config/hub.json"))
    assert [b["kind"] for b in cfg["bearers"]] == ["lan", "wifi"]


def test_reprovisioning_keeps_the_key_and_settings_and_says_what_changes(tmp_path, files, capsys):
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    first = ("provision", "--flash", flash, "--depot", depot, "--device", "glucose=C0:FF:EE:00:00:01",
             "--pairing", "60", "--broker", "127.0.0.1:8883", "--broker-password-file", files["mqtt"],
             "--apn", "internet")
    assert cli(capsys, *first)[0] == 0
    image = Flash(flash)
    key = image.read("/keys/hub.key")
    # a bond made by the hub (sealed under its key as firmware/hub/ble/bonds.py does)
    bond = vault._box(key, vault.BOND_LABEL).encrypt(b"bond-keys", bytes(24))
    image.write("/keys/bonds", bytes(bond))

    code, out, err = cli(capsys, "provision", "--flash", flash, "--depot", depot,
                         "--device", "polar=C0:FF:EE:00:00:02", "--apn-password-file", files["apn"])
    assert code == 0, err
    assert image.read("/keys/hub.key") == key
    cfg = json.loads(image.read("/config/hub.json"))
    assert cfg["pairing_s"] == 60 and cfg["uplink"]["host"] == "127.0.0.1"  # kept
    assert cfg["bearers"] == [{"kind": "cellular", "name": "cellular", "apn": "internet",
                               "password_sealed": "cellular/password"}]
    devices = json.loads(image.read("/config/devices.json"))["devices"]
    assert [d["kind"] for d in devices] == ["glucose", "polar"]
    lines = [x.strip() for x in out.splitlines()]
    assert "+ device C0:FF:EE:00:00:02 = polar" in lines
    assert "secret cellular/password: (new)" in lines and "secret mqtt: (kept)" in lines
    assert "hub key: kept" in lines and not any(x.startswith("-") for x in lines)
    assert any("setting(s) unchanged" in x for x in lines)
    assert_no_secret(out + err)

    files["mqtt"].write_text("another-mqtt-pw\n")
    code, out, err = cli(capsys, "provision", "--flash", flash, "--depot", depot, "--broker-password-file",
                         files["mqtt"], "--broker", "broker.example.org:8883", "--pairing", "0",
                         "--remove-device", "C0:FF:EE:00:00:01")
    assert code == 0, err
    assert "secret mqtt: (changed)" in out and "secret cellular/password: (kept)" in out
    assert "~ uplink.host: \"127.0.0.1\" -> \"broker.example.org\"" in out
    assert "- pairing_s (was 60)" in out and "- device C0:FF:EE:00:00:01 (was glucose)" in out
    assert "another-mqtt-pw" not in out

    code, out, err = cli(capsys, "provision", "--flash", flash, "--depot", depot, "--rekey")
    assert code == 0, err
    new = image.read("/keys/hub.key")
    assert new != key and "hub key: new (--rekey)" in out
    assert Depot(depot, create=False).hubs()["00005a4d0001"]["public"] != ""
    assert vault.unseal(image.read("/keys/vault"), new) == {"mqtt": "another-mqtt-pw",
                                                            "cellular/password": SECRETS["apn"]}
    assert vault._box(new, vault.BOND_LABEL).decrypt(image.read("/keys/bonds")) == b"bond-keys"
    # a hub from before the vault: its clear MQTT password is sealed and the clear file removed
    image.write("/keys/mqtt.password", b"old-clear-pw")
    code, out, err = cli(capsys, "provision", "--flash", flash, "--depot", depot, "--no-cellular")
    assert code == 0, err
    assert not image.exists_file("/keys/mqtt.password") and "secret cellular/password: (removed)" in out
    assert vault.unseal(image.read("/keys/vault"), new) == {"mqtt": "another-mqtt-pw"}


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


REFUSALS = [  # (board, arguments, what the one line says)
    ("vhub", ["--broker", "host:99999"], "port from 1 to 65535"),
    ("vhub", ["--broker", "host:0"], "port from 1 to 65535"),
    ("vhub", ["--pairing", "-5"], "--pairing -5"),
    ("vhub", ["--broker-ca", "/etc/passwd"], "not a certificate"),
    ("vhub", ["--broker-ca", "{tmp}/none.pem"], "No such file"),
    ("vhub", ["--device", "glucose=C0:FF:EE:00:00:01", "--device", "glucose=C0:FF:EE:00:00:01"], "given twice"),
    ("vhub", ["--device", "toaster=C0:FF:EE:00:00:01"], "KIND one of"),
    ("esp32-devkit", ["--wifi", "", "{home}"], "1 to 32 bytes"),
    ("esp32-devkit", ["--wifi", "x" * 33, "{home}"], "1 to 32 bytes, this one is 33"),
    ("esp32-devkit", ["--wifi", "é" * 17, "{home}"], "this one is 34"),
    ("esp32-devkit", ["--wifi", "Home", "{tmp}/none"], "No such file"),
    ("esp32-devkit", ["--wifi", "Home", "{empty}"], "the file is empty"),
    ("esp32-devkit", ["--wifi", "Home", "{short}"], "7 characters; want 8 to 63"),
    ("esp32-devkit", ["--wifi", "Home", "{long}"], "64 characters; want 8 to 63"),
    ("esp32-devkit", ["--wifi", "Home", "{latin}"], "printable ASCII"),
    ("esp32-devkit", ["--wifi", "Home", "{twolines}"], "more than one line"),
    ("esp32-devkit", ["--wifi", "Home", "{home}", "--wifi", "Home", "{home}"], "given twice"),
    ("vhub", ["--wifi", "Home", "{home}"], "board vhub has no Wi-Fi; boards that have: esp32-devkit, picow"),
    ("esp32-devkit", ["--ethernet", "on"], "no Ethernet PHY in its board.json; boards that have: wt32-eth01"),
    ("wt32-eth01", ["--apn", "internet"], "board wt32-eth01 has no modem"),
    ("vhub", ["--apn", "bad apn!"], "want an APN"),
    ("vhub", ["--apn=-internet"], "want an APN"),
    ("vhub", ["--apn", "internet.mnc001.mcc242.gprs"], "want an APN"),
    ("vhub", ["--apn", "a" * 101], "want an APN"),
    ("vhub", ["--apn-user", "hub"], "--apn-user needs --apn"),
    ("vhub", ["--apn", "internet", "--apn-user", 'a"b'], "without '\"'"),
    ("vhub", ["--apn", "internet", "--sim-pin-file", "{pinletters}"], "4 to 8 digits"),
    ("vhub", ["--apn", "internet", "--sim-pin-file", "{pinshort}"], "want 4 to 8"),
    ("vhub", ["--apn", "internet", "--apn-password-file", "{quote}"], "without '\"'"),
    ("vhub", ["--apn", "internet", "--no-cellular"], "choose one"),
    ("esp32-devkit", ["--wifi", "Home", "{home}", "--apn", "internet", "--bearer-order", "wifi,lan"],
     "no bearer named 'lan' is given (bearers: wifi, cellular)"),
    ("esp32-devkit", ["--wifi", "Home", "{home}", "--apn", "internet", "--bearer-order", "wifi"],
     "leaves out cellular"),
    ("esp32-devkit", ["--wifi", "Home", "{home}", "--apn", "internet", "--bearer-order", "wifi,wifi,cellular"],
     "named twice"),
    ("esp32-devkit", ["--apn", "internet", "--apn-user", "hub", "--apn-auth", "any"],
     "network.PPP, which takes pap or chap"),
    ("vhub", ["--broker-password-file", "{home}"], "no broker yet"),
    ("vhub", ["--broker", "h:1", "--broker-password-file", "{empty}"], "the file is empty"),
    ("vhub", ["--remove-device", "C0:FF:EE:00:00:09"], "not on the hub's allow-list"),
    ("vhub", ["--broker", "h:1", "--broker-password-file", "{latin1}"], "not UTF-8 text"),
]


@pytest.mark.parametrize("board,args,says", REFUSALS, ids=[f"{i}-{r[2][:24]}" for i, r in enumerate(REFUSALS)])
def test_every_bad_option_is_refused_in_one_line_with_nothing_written(tmp_path, capsys, board, args, says):
    paths = {"tmp": tmp_path, "home": _write(tmp_path, "home", b"home-passphrase\n"),
             "empty": _write(tmp_path, "empty", b"\n"), "short": _write(tmp_path, "short", b"1234567\n"),
             "long": _write(tmp_path, "long", b"x" * 64), "latin": _write(tmp_path, "latin", "pässword1".encode()),
             "latin1": _write(tmp_path, "latin1", "pässword1".encode("latin-1")),
             "twolines": _write(tmp_path, "twolines", b"password1\npassword2\n"),
             "pinletters": _write(tmp_path, "pinletters", b"12ab"), "pinshort": _write(tmp_path, "pinshort", b"123"),
             "quote": _write(tmp_path, "quote", b'pass"word')}
    args = [a.format(**paths) for a in args]
    code, out, err = cli(capsys, "provision", "--flash", tmp_path / "flash", "--depot", tmp_path / "depot",
                         "--board", board, *args)
    assert code == 1 and err.startswith("samband: ") and err.count("\n") == 1, err
    assert says in err, err
    assert not (tmp_path / "flash").exists() and not (tmp_path / "depot").exists()


def test_provision_over_the_port_of_a_running_virtual_hub(tmp_path, files, capsys):
    firmware_tree()
    flash, depot = tmp_path / "flash", tmp_path / "depot"
    with VirtualHub(flash, heap="256k", uid="00005a4d00aa") as hub:
        code, out, err = cli(capsys, "provision", "--port", hub.port, "--depot", depot, "--apn", "internet",
                             "--apn-password-file", files["apn"], "--sim-pin-file", files["pin"],
                             "--broker", "127.0.0.1:9", "--broker-password-file", files["mqtt"])
        assert code == 0, err
        assert "provisioned hub 00005a4d00aa" in out and "hub key: new" in out  # the uid from the port
        code, out, err = cli(capsys, "provision", "--port", hub.port, "--depot", depot, "--pairing", "30")
        assert code == 0, err
        assert "hub key: kept" in out and "secret cellular/pin: (kept)" in out and "+ pairing_s = 30" in out
        assert_no_secret(out + err)
        code, out, err = cli(capsys, "provision", "--port", hub.port, "--depot", depot, "--wifi", "Home", files["home"])
        assert code == 1 and "board vhub has no Wi-Fi" in err and err.count("\n") == 1, err
        # the application runs again after provisioning (and after a refusal), its secrets unsealed, never shown
        with console.open_port(hub.port) as ser:
            s = console.status(ser, timeout=20)
            assert s is not None  # only the running application answers ?status on its console
            assert s["uid"] == "00005a4d00aa" and s["uplink"]["error"] is None
            # the vault opened (no "vault:" problem); the cellular bearer is configured, and this
            # virtual hub has no modem simulator attached (SAMBAND_MODEM) to run it
            assert s["problems"] == ["bearers: not-supported: board vhub has no cellular bearer"], s
            log = []
            end = time.monotonic() + 1.5
            for line in console.lines(ser, end):
                log.append(line)
        assert_no_secret(json.dumps(s) + "\n".join(log))
    assert Depot(depot, create=False).hubs()["00005a4d00aa"]
    image = Flash(flash)
    assert_no_secret(image.image.read_bytes())
    assert vault.unseal(image.read("/keys/vault"), image.read("/keys/hub.key")) == {
        "cellular/password": SECRETS["apn"], "cellular/pin": SECRETS["pin"], "mqtt": SECRETS["mqtt"]}


def test_the_hub_logs_in_to_mosquitto_with_its_sealed_password(tmp_path, capsys):
    """The whole chain: the password file -> the vault on the flash -> unsealed by the
    firmware at boot -> the MQTT login a real Mosquitto (no anonymous logins) accepts."""
    from samband.rig.broker import Broker
    firmware_tree()
    uid = "00005a4d00bb"
    broker = Broker(tmp_path / "broker")
    pw = tmp_path / "mqtt.pw"
    pw.write_text(broker.add_hub(uid) + "\n")
    with broker:
        code, out, err = cli(capsys, "provision", "--flash", tmp_path / "flash", "--depot", tmp_path / "depot",
                             "--uid", uid, "--broker", f"localhost:{broker.port}", "--broker-ca", broker.ca_pem,
                             "--broker-password-file", pw)
        assert code == 0, err
        image = Flash(tmp_path / "flash")
        assert not image.exists_file("/keys/mqtt.password") and pw.read_text().strip().encode() \
            not in image.image.read_bytes()
        with VirtualHub(tmp_path / "flash", heap="256k", uid=uid) as hub, console.open_port(hub.port) as ser:
            end, s = time.monotonic() + 30, None
            while time.monotonic() < end:
                s = console.status(ser, timeout=5)
                if s and s.get("uplink", {}).get("connected"):
                    break
                time.sleep(0.2)
            assert s and s["uplink"]["connected"] and s["uplink"]["connects"] >= 1, s
            assert s["problems"] == [], s
            assert pw.read_text().strip() not in json.dumps(s)
