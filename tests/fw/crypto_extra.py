# libsodium's whole-message calls that the hub itself never makes, built from
# the pieces it ships (hub.crypto.salsa20, hub.crypto.box), so that the NaCl
# vectors and the libsodium cross-check can still reach every layer. The hub
# only seals in place (box.Boxer, box.secretbox) and opens secretboxes; these
# lived on its flash unused until issue 11.

from hub.crypto import box, check_len, salsa20


def salsa20_xor(key, nonce8, data, counter=0):
    """crypto_stream_salsa20_xor_ic: the 64-bit block counter is the state's last 8 input bytes."""
    check_len("key", key, 32)
    check_len("nonce", nonce8, 8)
    le = bytearray(8)
    for i in range(8):
        le[i] = (counter >> (8 * i)) & 0xFF
    return _xor(salsa20.state(key, nonce8 + bytes(le)), data)


def xsalsa20_xor(key, nonce, data):
    """crypto_stream_xsalsa20_xor."""
    return _xor(salsa20.xsalsa20_state(key, nonce), data)


def box_open(c, nonce, pk, sk):
    """crypto_box_open_easy: a secretbox under the pair's beforenm key."""
    return box.secretbox_open(c, nonce, box.beforenm(pk, sk))


def _xor(st, data):
    out = bytearray(data)
    salsa20.stream_xor_into(st, out, len(out))
    return bytes(out)
