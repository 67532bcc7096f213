"""The cellular bearer (hub/bearers: AT engine, framer, cellular bring-up) on
the MicroPython unix port, under the board's heap limit, against the modem
simulator (samband.modem.sim) over a real pty: every fault the simulator
can play ends in the failure reason a technician would need, and a good
bring-up reports its telemetry (signal, operator, access technology, time
to register and to connect)."""

import json
import socket

import host_kit
import pytest

from samband.modem.sim import ModemSim, Scenario


def bring_up(mpy, scenario, action="up", via=None, **cfg):
    """Run tests/fw/modem_check.py against a simulator playing scenario; returns (result, sim)."""
    cfg.setdefault("apn", "internet")
    sim = ModemSim(scenario).start()
    try:
        if via is not None:  # the unix port's modem() hook finds the pty by SAMBAND_MODEM
            via.setenv("SAMBAND_MODEM", sim.path)
        p = mpy(["modem_check.py", sim.path if via is None else "port", scenario.dialect, json.dumps(cfg), action],
                timeout=120)
    finally:
        sim.stop()
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    return json.loads(out.strip().splitlines()[-1]), sim


def _scripted_ms(sim, at_s):
    """The least time to register the hub can truthfully report: the network
    registers at_s after the simulated radio started, and the hub's clock
    starts at its first command (a bound that a busy machine only loosens)."""
    first = sim.events[0][0]
    return int((at_s - (first - sim.radio_t0)) * 1000) - 1


def test_sim7080g_registers_and_activates_its_context(mpy, monkeypatch):
    r, sim = bring_up(mpy, Scenario(registration=[(0.05, 2), (0.3, 1)]), via=monkeypatch)
    assert r["outcomes"] == ["up"] and r["state"] == "up"
    m = r["metrics"]
    assert (m["operator"], m["act"], m["rssi_dbm"], m["reg"]) == ("Telia N", "cat-m", -77, "home")
    assert (m["tac"], m["ci"], m["ip"]) == ("1A2B", "01A2D101", "10.64.1.9")
    assert 0 < m["register_ms"] <= m["connect_ms"]
    assert m["register_ms"] >= _scripted_ms(sim, 0.3)
    assert [c[0] for c in r["changes"]] == ["starting", "searching", "connecting", "up"]
    assert 'AT+CGDCONT=1,"IP","internet"' in sim.commands and 'AT+CNCFG=0,1,"internet"' in sim.commands
    assert m["at_tx"] == sim.rx and m["at_rx"] == sim.tx  # every byte accounted for on both sides
    assert sim.commands[:2] == ["AT", "ATE0"]  # one AT is enough for a modem that answers
    # power saving off before registering: an alarm-capable hub must send and be reached at once
    assert not sim.psm and not sim.edrx and m["radio_duty"] == "off"
    assert sim.commands.index("AT+CEDRXS=0") < sim.commands.index("AT+CEREG=2")


def test_bg96_with_chap_credentials_and_cesq(mpy):
    sc = Scenario(dialect="bg96", apn="health.apn", user="hub", password="s3cret", rsrp=45, rsrq=20)
    r, sim = bring_up(mpy, sc, apn="health.apn", user="hub", password="s3cret", auth="chap")
    assert r["outcomes"] == ["up"], r
    m = r["metrics"]
    assert (m["act"], m["rsrp_dbm"], m["rsrq_ddb"]) == ("cat-m", -95, -95)  # BG96 says Cat-M is AcT 8
    assert 'AT+QICSGP=1,1,"health.apn","hub","s3cret",2' in sim.commands
    assert not sim.psm and not sim.edrx and m["radio_duty"] == "off"


def test_a_modem_without_power_saving_commands_still_comes_up_and_says_so(mpy):
    r, sim = bring_up(mpy, Scenario(power_saving=False))
    assert r["outcomes"] == ["up"], r
    assert r["metrics"]["radio_duty"] == "unknown" and "AT+CPSMS=0" in sim.commands


@pytest.mark.parametrize("scenario, cfg, reason", [
    (Scenario(sim="absent"), {}, "no-sim"),
    (Scenario(sim="pin"), {}, "pin-locked"),
    (Scenario(sim="pin", pin="1234"), {"pin": "0000"}, "bad-pin"),
    (Scenario(sim="puk"), {}, "puk-locked"),
    (Scenario(registration=[(0.05, 2), (0.2, 3)]), {}, "denied"),
    (Scenario(registration=[(0.05, 2), (0.2, 5)]), {"roaming": False}, "roaming-not-allowed"),
    (Scenario(registration=[(0, 2)]), {"search_ms": 600, "poll_ms": 200}, "search-timeout"),
    (Scenario(apn="health.apn"), {"apn": "internet"}, "pdp-failed"),
    (Scenario(apn="health.apn", user="hub", password="right"),
     {"apn": "health.apn", "user": "hub", "password": "wrong", "auth": "pap"}, "pdp-failed"),
    (Scenario(silent=True), {}, "no-response"),
    (Scenario(dialect="bg96", sim="absent"), {}, "no-sim"),
    (Scenario(dialect="bg96", registration=[(0.05, 3)]), {}, "denied"),
    (Scenario(corrupt={"AT+CEREG?": "+CEREG: 2,x"}), {}, "bad-reply"),
    (Scenario(corrupt={"AT+CPIN?": "+CPIN: SIM BUSY?"}), {}, "sim-failure"),
    (Scenario(dialect="bg96", sim="pin"), {}, "pin-locked"),
    (Scenario(dialect="bg96", sim="pin", pin="1234"), {"pin": "0000"}, "bad-pin"),
    (Scenario(dialect="bg96", sim="puk"), {}, "puk-locked"),
    (Scenario(dialect="bg96", registration=[(0.05, 2), (0.2, 5)]), {"roaming": False}, "roaming-not-allowed"),
    (Scenario(dialect="bg96", registration=[(0, 2)]), {"search_ms": 600, "poll_ms": 200}, "search-timeout"),
    (Scenario(dialect="bg96", apn="health.apn"), {"apn": "internet"}, "pdp-failed"),
    (Scenario(dialect="bg96", silent=True), {}, "no-response"),
    # +CME ERROR as the final result with a URC between the command's echo and it
    (Scenario(sim="absent", urc_in_replies=True, chunked=True), {}, "no-sim"),
    (Scenario(dialect="bg96", sim="absent", urc_in_replies=True, chunked=True), {}, "no-sim"),
    (Scenario(dialect="bg96", urc_in_replies=True, registration=[(0.05, 2), (0.2, 3)]), {}, "denied"),
], ids=["no-sim", "pin-locked", "bad-pin", "puk-locked", "denied", "roaming", "search-timeout", "wrong-apn",
        "wrong-password", "modem-off", "bg96-no-sim", "bg96-denied", "bad-reply",
        "odd-sim-state", "bg96-pin-locked", "bg96-bad-pin", "bg96-puk-locked", "bg96-roaming",
        "bg96-search-timeout", "bg96-wrong-apn", "bg96-modem-off", "cme-between-urcs",
        "bg96-cme-between-urcs", "bg96-denied-between-urcs"])
def test_every_fault_has_its_reason(mpy, scenario, cfg, reason):
    r, sim = bring_up(mpy, scenario, **cfg)
    assert r["outcomes"] == [reason], r
    assert r["state"] == "failed" and r["reason"] == reason
    if reason == "bad-reply":
        assert r["metrics"]["bad_replies"] == 1
    if reason == "bad-pin":
        assert sim.commands.count('AT+CPIN="0000"') == 1  # a refused PIN is never tried twice
    if scenario.urc_in_replies:
        m = r["metrics"]
        assert m["stray"] == 0 and m["garbage"] == 0  # each URC taken as one, not as a reply line
        assert sim.commands[-1] in ("AT+CPIN?", "AT+CEREG?")  # the hub stopped at the first refusal


DIALECTS = ["sim7080g", "bg96"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_pin_from_provisioning_unlocks_the_sim(mpy, dialect):
    r, sim = bring_up(mpy, Scenario(dialect=dialect, sim="pin", pin="4321"), pin="4321")
    assert r["outcomes"] == ["up"], r
    assert 'AT+CPIN="4321"' in sim.commands


@pytest.mark.parametrize("dialect", DIALECTS)
def test_roaming_allowed_registers_as_roaming(mpy, dialect):
    r, _ = bring_up(mpy, Scenario(dialect=dialect, registration=[(0.05, 2), (0.2, 5)]))
    assert r["outcomes"] == ["up"] and r["metrics"]["reg"] == "roaming"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_sixty_second_search_within_the_ninety_second_bound(mpy, dialect):
    # Scaled by 0.05: the network answers after "60 s" (3 s), the hub waits "90 s" (4.5 s).
    r, sim = bring_up(mpy, Scenario(dialect=dialect, registration=[(0, 2), (60, 1)], scale=0.05),
                      search_ms=4500, poll_ms=500)
    assert r["outcomes"] == ["up"], r
    assert r["metrics"]["register_ms"] >= _scripted_ms(sim, 3.0)


@pytest.mark.parametrize("dialect, command", [("sim7080g", "AT+CNACT=0,1"), ("bg96", "AT+QIACT=1")])
def test_reboot_mid_bring_up_fails_it_then_a_retry_succeeds(mpy, dialect, command):
    r, sim = bring_up(mpy, Scenario(dialect=dialect, reboot_on=command), action="retry")
    assert r["outcomes"] == ["rebooted", "up"], r
    assert sim.reboots == 1 and r["metrics"]["reboots"] == 1
    assert sim.commands.count("ATE0") == 2  # echo back on after the reboot: set again


@pytest.mark.parametrize("dialect, last", [("sim7080g", "AT+CNACT?"), ("bg96", "AT+QIACT?")])
def test_reboot_while_up_marks_the_bearer_failed(mpy, dialect, last):
    r, sim = bring_up(mpy, Scenario(dialect=dialect, reboot_after=(last, 0.2)), action="watch")
    assert r["outcomes"] == ["up"]
    assert r["state"] == "failed" and r["reason"] == "rebooted", r
    assert sim.reboots == 1


def test_a_modem_left_in_a_data_call_is_escaped_first(mpy):
    # The hub restarted during a data call: the modem loops AT back as data until '+++'.
    r, sim = bring_up(mpy, Scenario(in_data_call=True, guard_s=0.2), guard_ms=250)
    assert r["outcomes"] == ["up"], r
    assert sim.commands[0] == "AT"  # the first command the modem heard was after the escape
    heard = sum(len(c) + 1 for c in sim.commands)
    assert r["metrics"]["at_tx"] - heard == 5 * len("AT\r") + len("+++")  # five ATs went as data, then +++


@pytest.mark.parametrize("dialect", DIALECTS)
def test_urcs_inside_every_reply_go_to_the_urc_side(mpy, dialect):
    # including a +CEREG URC inside the reply to AT+CEREG?, whose lines share its prefix
    r, sim = bring_up(mpy, Scenario(dialect=dialect, urc_in_replies=True, chunked=True,
                                    registration=[(0.05, 2), (0.3, 5)]))
    assert r["outcomes"] == ["up"], r
    m = r["metrics"]
    assert (m["operator"], m["rssi_dbm"], m["ip"], m["reg"]) == ("Telia N", -77, "10.64.1.9", "roaming")
    assert m["stray"] == 0 and m["garbage"] == 0


@pytest.mark.parametrize("dialect, last", [("sim7080g", "AT+CNACT?"), ("bg96", "AT+QIACT?")])
def test_no_carrier_while_up_degrades_the_bearer(mpy, dialect, last):
    # The network drops the data link: NO CARRIER with no command pending is a URC
    # (the final result of ATD/ATO otherwise); the bearer says data-lost, and stays
    # usable for a manager to judge (degraded, not failed).
    r, sim = bring_up(mpy, Scenario(dialect=dialect, urc_after=(last, 0.2, "NO CARRIER")), action="watch")
    assert r["outcomes"] == ["up"], r
    assert (r["state"], r["reason"]) == ("degraded", "data-lost"), r
    assert r["changes"][-1] == ["degraded", "data-lost"]
    assert r["metrics"]["stray"] == 0 and sim.reboots == 0


@pytest.mark.parametrize("dialect, last, urc", [("sim7080g", "AT+CNACT?", "+APP PDP: 0,DEACTIVE"),
                                                ("bg96", "AT+QIACT?", '+QIURC: "pdpdeact",1')])
def test_context_taken_down_by_the_network_fails_the_bearer(mpy, dialect, last, urc):
    # The network deactivates the data context: nothing comes back by itself, so the
    # bearer is failed (a manager brings it up again), not merely degraded.
    r, sim = bring_up(mpy, Scenario(dialect=dialect, urc_after=(last, 0.2, urc)), action="watch")
    assert r["outcomes"] == ["up"], r
    assert (r["state"], r["reason"]) == ("failed", "data-lost"), r
    assert r["metrics"]["stray"] == 0


def test_garbage_and_fragmented_replies_do_not_stop_a_bring_up(mpy):
    r, _ = bring_up(mpy, Scenario(garbage=True, chunked=True))
    assert r["outcomes"] == ["up"], r
    m = r["metrics"]
    assert m["garbage"] > 0 and m["operator"] == "Telia N" and m["rssi_dbm"] == -77


def test_data_call_and_escape_with_guard_times(mpy):
    r, sim = bring_up(mpy, Scenario(guard_s=0.2), action="dial", guard_ms=250)
    e = r["extra"]
    assert e["connect"] == "CONNECT 150000000"
    assert e["data"] == "ping over the data call"  # the simulator's network loops data back
    assert e["escape"] == "OK" and e["after"] == "+CSQ: 18,99"  # and commands work again


def test_down_releases_the_context_and_keeps_a_modem_no_pwrkey_could_wake(mpy):
    # this hub has no PWRKEY pin (as the Pico W's board): powered off by command the modem
    # would stay off; the power-off with a PWRKEY is tests/fw/test_cellular.py's
    r, sim = bring_up(mpy, Scenario(), action="down")
    assert r["state"] == "off"
    assert sim.commands[-1] == "AT+CNACT=0,0" and "AT+CPOWD=1" not in sim.commands
    assert not sim.off


@pytest.mark.parametrize("dialect", ["sim7080g", "bg96"])
def test_down_and_up_again_as_the_manager_re_ups_a_degraded_bearer(mpy, dialect):
    r, sim = bring_up(mpy, Scenario(dialect=dialect), action="reup")
    assert r["outcomes"] == ["up", "up"] and r["state"] == "up", r


@pytest.fixture
def echo_server():
    srv, port, seen = host_kit.echo_server()
    yield port, seen
    srv.close()


@pytest.mark.parametrize("dialect", ["sim7080g", "bg96"])
def test_modem_socket_carries_real_tcp(mpy, echo_server, dialect):
    port, seen = echo_server
    r, sim = bring_up(mpy, Scenario(dialect=dialect), action="tcp", port=port)
    e = r["extra"]
    assert r["outcomes"] == ["up"], r
    # 1041 bytes holding every byte value, CR LF, "OK" and a URC look-alike, there and back intact
    assert e["echo_ok"] and e["n"] == 1041 and e["tail"] == "bye"
    assert e["eof"]  # the server closed: the stream ends
    assert len(seen[0]) == 1044
    send = "AT+CASEND=0," if dialect == "sim7080g" else "AT+QISEND=0,"
    assert [c for c in sim.commands if c.startswith(send)] == [send + "1024", send + "17", send + "3"]
    assert sim.commands[-1] == ("AT+CACLOSE=0" if dialect == "sim7080g" else "AT+QICLOSE=0")


def test_modem_socket_refused_is_a_bearer_error(mpy):
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r, _ = bring_up(mpy, Scenario(), action="tcp", port=port)
    assert r["outcomes"] == ["up"] and r["extra"]["error"].startswith("connect-failed"), r


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("dialect", ["sim7080g", "bg96"])
def test_hub_mqtt_client_over_a_modem_socket_to_mosquitto(mpy, tmp_path, dialect, tls):
    # The uplink's own MQTT client, unchanged, on the modem socket stream:
    # CONNECT, SUBSCRIBE, PUBLISH QoS 1 (PUBACK awaited), and a message back;
    # with tls, TLS runs on the hub (hub/bearers/tlsstream.py) and verifies
    # Mosquitto's certificate against the hub's CA; the modem only carries bytes.
    hub = "00005a4d00c7"
    with host_kit.acking_receiver(tmp_path, hub, "receiver-test", lambda p: b"ack for " + p) as (broker, pw, ups):
        cfg = {"port": broker.plain_port}
        if tls:
            cfg = {"port": broker.port, "ca": str(broker.ca_der), "server_hostname": "localhost"}
        r, sim = bring_up(mpy, Scenario(dialect=dialect), action="mqtt", hub=hub, password=pw, **cfg)
    assert ups == [b"sealed batch over LTE-M"], r
    assert r["extra"]["acks"] == [["samband/%s/ack" % hub, "ack for sealed batch over LTE-M"]], r
    opened = 'AT+CAOPEN=0,0,"TCP","127.0.0.1",%d' if dialect == "sim7080g" else 'AT+QIOPEN=1,0,"TCP","127.0.0.1",%d,0,0'
    assert opened % cfg["port"] in sim.commands


def test_tls_refuses_a_broker_the_hub_cannot_verify(mpy, tmp_path):
    # The broker's certificate is signed by a CA the hub does not hold: the
    # first write (the CONNECT, which runs the handshake) fails with a TLS
    # error, nothing reaches the broker, and the modem socket is closed, not leaked.
    from samband.rig.broker import Broker, make_certs

    make_certs(tmp_path / "other")
    broker = Broker(tmp_path / "b")
    pw = broker.add_hub("00005a4d00c7")
    with broker:
        r, sim = bring_up(mpy, Scenario(), action="mqtt", hub="00005a4d00c7", password=pw, port=broker.port,
                          ca=str(tmp_path / "other" / "ca.der"), server_hostname="localhost")
    err = r["extra"]["error"]
    assert err.startswith("TLS: ") and "certificate" in err, r
    assert r["extra"]["cause"] == "tls", r  # counted as a TLS failure, not a dead link (hub.mqtt.cause)
    assert sim.commands[-1] == "AT+CACLOSE=0"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ppp_takes_the_uart_after_connect_and_gives_it_back(mpy, dialect):
    # The PPP data path (hub/bearers/ppp.py) over the real pty: ATD*99# -> CONNECT, the
    # AT engine's reader stopped and network.PPP's stand-in (tests/fw/pppstand.py) on the
    # tty, the simulator as the network's PPP peer; down: LCP terminate, the modem back
    # in command mode by itself (NO CARRIER, so no '+++'), ATH.
    r, sim = bring_up(mpy, Scenario(dialect=dialect, ppp=True, guard_s=0.2), action="ppp", guard_ms=250)
    assert r["outcomes"] == ["up"] and r["state"] == "off", r
    e = r["extra"]
    assert (e["data"], e["ppp_dials"], e["ppp_status"], e["ip"]) == ("ppp", 1, 4, "10.64.7.3")
    assert e["uart_bytes"][0] > 0 and e["uart_bytes"][1] > 0  # PPP frames went both ways on the tty
    pdp = "AT+CNACT=0,1" if dialect == "sim7080g" else "AT+QIACT=1"
    assert pdp not in sim.commands  # the call is PPP's, no vendor context
    i = sim.commands.index("ATD*99#")
    # back: AT (a '+++' sent to a modem already in command mode would have made it "+++AT"), ATH;
    # no power-off: this hub has no PWRKEY that could switch the modem on again
    assert sim.commands[i + 1:] == ["AT", "ATH"]
    assert [w for _, w in sim.events if str(w).startswith("ppp ")] == ["ppp 1", "ppp 5"]  # configure, terminate
