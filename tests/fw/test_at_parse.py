# hub/bearers/atparse.py: the AT framer and reply parsers, on both runtimes.
# Bytes are what SIM7080G / BG96 modules send (manuals and the research note).

from fwtest import raises

from hub.bearers import atparse as ap
from hub.bearers.atparse import FINAL, LINE, PROMPT, STRAY, URC


def feed_all(fr, data, step=None):
    out = []
    if step is None:
        return fr.feed(data)
    for i in range(0, len(data), step):
        out.extend(fr.feed(data[i:i + step]))
    return out


def test_reply_with_echo_and_urc_inside_it():
    # The research probe saw a +CEREG URC land inside the ATE0 response.
    wire = b"AT+CPIN?\r\r\n+CEREG: 2\r\n\r\n+CPIN: READY\r\n\r\nOK\r\n"
    for step in (None, 1, 3, 7):
        fr = ap.Framer()
        fr.expect("AT+CPIN?")
        ev = feed_all(fr, wire, step)
        assert ev == [(URC, "+CEREG: 2"), (LINE, "+CPIN: READY"), (FINAL, "OK")], (step, ev)


def test_cpin_is_a_urc_when_nothing_asked_for_it():
    fr = ap.Framer()
    ev = fr.feed(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nSMS Ready\r\n")
    assert ev == [(URC, "RDY"), (URC, "+CFUN: 1"), (URC, "+CPIN: READY"), (URC, "SMS Ready")]
    # ... and a reply when AT+CPIN? is pending
    fr.expect("AT+CPIN?")
    assert fr.feed(b"\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n") == [(LINE, "+CPIN: SIM PIN"), (FINAL, "OK")]


def test_own_prefix_wins_over_urc_prefix():
    # "+CEREG: 2,1" is the reply to AT+CEREG?, not a URC, though +CEREG: is a URC prefix
    fr = ap.Framer()
    fr.expect("AT+CEREG?")
    ev = fr.feed(b'\r\n+CEREG: 1\r\n\r\n+CEREG: 2,1,"1A2B","01A2D101",7\r\n\r\nOK\r\n')
    assert ev == [(LINE, "+CEREG: 1"), (LINE, '+CEREG: 2,1,"1A2B","01A2D101",7'), (FINAL, "OK")]


def test_errors_and_connect_are_final():
    assert ap.final("OK") == (True, None, None)
    assert ap.final("ERROR") == (False, None, None)
    assert ap.final("+CME ERROR: 10") == (False, 10, None)
    assert ap.final("+CME ERROR: SIM not inserted") == (False, 10, None)
    assert ap.final("+CME ERROR: something new") == (False, 100, None)
    assert ap.final("+CMS ERROR: 500") == (False, None, 500)
    assert ap.final("CONNECT 150000000") == (True, None, None)
    assert ap.final("CONNECT") == (True, None, None)
    assert ap.final("NO CARRIER") == (False, None, None)
    assert ap.final("+CSQ: 1,2") is None
    assert ap.final("CONNECTED") is None


def test_no_carrier_is_final_for_a_dial_and_a_urc_otherwise():
    assert ap.classify("NO CARRIER", "ATD*99#", None) == FINAL
    assert ap.classify("NO CARRIER", "AT+CSQ", "+CSQ") == URC
    assert ap.classify("NO CARRIER", None, None) == URC
    assert ap.classify("OK", None, None) == STRAY
    assert ap.classify("862012345678901", "AT+CGSN", "+CGSN") == LINE  # a bare reply line


def test_prompt():
    fr = ap.Framer()
    fr.expect("AT+CASEND=0,5")
    assert fr.feed(b"AT+CASEND=0,5\r\r\n> ") == [(PROMPT, ">")]
    assert fr.feed(b"\r\nOK\r\n") == [(FINAL, "OK")]


def test_garbage_is_dropped_and_counted_never_raised():
    fr = ap.Framer()
    fr.expect("AT")
    ev = fr.feed(b"\x00\xff\x80\x1b\r\nO\xfeK\r\n")
    assert ev == [(FINAL, "OK")]
    assert fr.garbage == 4 + 1
    assert fr.feed(b"\r\n" + b"x" * 300 + b"\r\nOK\r\n") == [(FINAL, "OK")]  # the long line is dropped whole
    assert fr.overlong == 300
    assert len(fr.buf) == 0


def test_prefix_of():
    assert ap.prefix_of("AT+CEREG?") == "+CEREG"
    assert ap.prefix_of("AT+CSQ") == "+CSQ"
    assert ap.prefix_of("AT+CPIN=\"1234\"") == "+CPIN"
    assert ap.prefix_of("ATD*99#") is None
    assert ap.prefix_of("ATE0") is None


def test_csq():
    assert ap.csq_dbm("+CSQ: 18,99") == -77
    assert ap.csq_dbm("+CSQ: 0,0") == -113
    assert ap.csq_dbm("+CSQ: 31,0") == -51
    assert ap.csq_dbm("+CSQ: 99,99") is None
    raises(ap.ATParseError, ap.csq_dbm, "+CSQ: 40,99")
    raises(ap.ATParseError, ap.csq_dbm, "+CSQ: x,99")
    raises(ap.ATParseError, ap.csq_dbm, "+COPS: 0")


def test_cesq():
    assert ap.cesq("+CESQ: 99,99,255,255,20,45") == (-95, -95)  # -95 dBm, -9.5 dB
    assert ap.cesq("+CESQ: 99,99,255,255,0,0") == (-140, -195)
    assert ap.cesq("+CESQ: 99,99,255,255,34,97") == (-43, -25)
    assert ap.cesq("+CESQ: 99,99,255,255,255,255") == (None, None)
    raises(ap.ATParseError, ap.cesq, "+CESQ: 99,99,255,255,35,45")
    raises(ap.ATParseError, ap.cesq, "+CESQ: 99,99,255")


def test_cops():
    assert ap.cops('+COPS: 0,0,"Telia N",7') == (0, "Telia N", 7)
    assert ap.cops('+COPS: 0,0,"Op, with comma",9') == (0, "Op, with comma", 9)
    assert ap.cops("+COPS: 0") == (0, None, None)
    raises(ap.ATParseError, ap.cops, '+COPS: 0,0,"unbalanced')


def test_creg_reply_and_urc_forms():
    assert ap.creg('+CEREG: 2,1,"1A2B","01A2D101",7', False) == (1, "1A2B", "01A2D101")
    assert ap.creg("+CEREG: 0,2", False) == (2, None, None)
    assert ap.creg('+CEREG: 5,"1A2B","01A2D101",7', True) == (5, "1A2B", "01A2D101")
    assert ap.creg("+CEREG: 3", True) == (3, None, None)
    assert ap.creg("+CGREG: 1,1", False) == (1, None, None)
    raises(ap.ATParseError, ap.creg, "+CEREG: 2", False)
    raises(ap.ATParseError, ap.creg, "+CEREG: 77", True)
    raises(ap.ATParseError, ap.creg, "+CSQ: 1,1", True)
    assert ap.creg_is_urc("+CEREG: 1") and ap.creg_is_urc('+CEREG: 5,"1A2B","01A2D101",7')
    assert not ap.creg_is_urc("+CEREG: 2,1") and not ap.creg_is_urc('+CEREG: 2,1,"1A2B","01A2D101",7')
    assert ap.reg_name(5) == "roaming" and ap.reg_name(3) == "denied" and ap.reg_name(9) == "state-9"


def test_cpin_and_quote():
    assert ap.cpin("+CPIN: SIM PIN") == "SIM PIN"
    assert ap.quote("internet.telia") == '"internet.telia"'
    raises(ap.ATParseError, ap.quote, 'a"b')
    raises(ap.ATParseError, ap.quote, "a\rAT+CFUN=0")


def test_boot_urcs():
    assert ap.is_boot("RDY") and ap.is_boot("*ATREADY: 1") and not ap.is_boot("APP RDY")
    assert not ap.is_boot("+CPIN: READY")
    assert ap.is_urc("+CEREG: 1") and ap.is_urc("SMS Ready") and ap.is_urc("+APP PDP: 0,ACTIVE")
    assert not ap.is_urc("+CSQ: 1,2") and not ap.is_urc("SMS") and not ap.is_urc("RDY|START")


def test_cme_tables():
    assert ap.cme_reason(10) == "no-sim" and ap.cme_reason(16) == "bad-pin" and ap.cme_reason(100) == "unknown"
    assert ap.cme_reason(1, "x") == "x" and ap.cme_reason(0) is None
    assert ap.cme_code("SIM PIN required") == 11 and ap.cme_code("incorrect password") == 16
    assert ap.cme_code("no-sim") == 100 and ap.cme_code("unknown") == 100 and ap.cme_code("sim|") == 100


def fed_in_steps(cmd, wire, payload, steps):
    """The events of wire fed to a fresh Framer expecting cmd, whole (step None) and in each
    step size; every time its DATA bytes must be payload exactly."""
    evs = []
    for step in steps:
        fr = ap.Framer()
        fr.expect(cmd)
        ev = feed_all(fr, wire, step)
        assert b"".join(t for k, t in ev if k == ap.DATA) == payload, (step, ev)
        evs.append(ev)
    return evs


def test_carecv_data_is_taken_raw():
    # SIM7080G: '+CARECV: <n>,<n bytes>' and the bytes may hold CR, LF, "OK" and anything
    payload = b"\r\nOK\r\n\x00\xff+CEREG: 1\r\n"
    wire = b"\r\n+CARECV: %d," % len(payload) + payload + b"\r\n\r\nOK\r\n"
    for ev in fed_in_steps("AT+CARECV=0,512", wire, payload, (None, 1, 5)):
        assert [e for e in ev if e[0] != ap.DATA] == [(LINE, "+CARECV: %d" % len(payload)), (FINAL, "OK")]
    fr = ap.Framer()
    fr.expect("AT+CARECV=0,512")
    assert fr.feed(b"\r\n+CARECV: 0\r\n\r\nOK\r\n") == [(LINE, "+CARECV: 0"), (FINAL, "OK")]


def test_qird_data_is_taken_raw():
    # BG96: '+QIRD: <n>' CR LF, then n bytes, then CR LF, OK
    payload = b"\n\r\nOK\r\n\x01"
    wire = b"\r\n+QIRD: %d\r\n" % len(payload) + payload + b"\r\n\r\nOK\r\n"
    for ev in fed_in_steps("AT+QIRD=0,512", wire, payload, (None, 1, 3)):
        assert ev[-1] == (FINAL, "OK")


def test_a_data_length_we_never_asked_for_is_noise():
    fr = ap.Framer()
    fr.expect("AT+CARECV=0,512")
    ev = fr.feed(b"\r\n+CARECV: 99999,abc\r\nOK\r\n")
    assert ev[-1] == (FINAL, "OK") and not [e for e in ev if e[0] == ap.DATA]
