# Cross-check driver: reads cases from stdin, one per line, and answers one
# line each (hex, or "ERR <reason>"), so that tests/test_crypto_crosscheck.py
# can compare hub.crypto with pynacl/libsodium on the unix port (and on
# CPython). Fields are hex; "-" is the empty string.
#   S key nonce msg         crypto_secretbox_easy
#   O key nonce box         crypto_secretbox_open_easy
#   B pk sk nonce msg       crypto_box_easy
#   U pk sk nonce box       crypto_box_open_easy
#   K pk sk                 crypto_box_beforenm
#   X n p                   crypto_scalarmult
#   G n                     crypto_scalarmult_base
#   P key msg               crypto_onetimeauth_poly1305
#   H key in16              crypto_core_hsalsa20
#   Z key nonce msg         crypto_stream_xsalsa20_xor
#   C key nonce8 ic msg     crypto_stream_salsa20_xor_ic (ic in decimal)
#   M key msg               HMAC-SHA256
#   E pk msg sig            crypto_sign_verify_detached: "01" valid, "ERR ..." refused
#   D msg                   SHA-512 (hashlib.sha512; "H" is HSalsa20's)


from fwtest import serve_lines

from crypto_extra import box_open, salsa20_xor, xsalsa20_xor
from hub.crypto import CryptoError, box, hmac, poly1305, salsa20, x25519


def _b(field):
    return b"" if field == "-" else bytes.fromhex(field)


def answer(line):
    f = line.split(" ")
    k = f[0]
    a = [_b(x) for x in f[1:]] if k != "C" else None
    try:
        if k == "S":
            out = box.secretbox(a[2], a[1], a[0])
        elif k == "O":
            out = box.secretbox_open(a[2], a[1], a[0])
        elif k == "B":
            out = box.box(a[3], a[2], a[0], a[1])
        elif k == "U":
            out = box_open(a[3], a[2], a[0], a[1])
        elif k == "K":
            out = box.beforenm(a[0], a[1])
        elif k == "X":
            out = x25519.scalarmult(a[0], a[1])
        elif k == "G":
            out = x25519.scalarmult_base(a[0])
        elif k == "P":
            out = poly1305.poly1305(a[1], a[0])
        elif k == "H":
            out = salsa20.hsalsa20(a[0], a[1])
        elif k == "Z":
            out = xsalsa20_xor(a[0], a[1], a[2])
        elif k == "C":
            out = salsa20_xor(_b(f[1]), _b(f[2]), _b(f[4]), int(f[3]))
        elif k == "M":
            out = hmac.hmac_sha256(a[0], a[1])
        elif k == "E":
            from hub.crypto import ed25519  # on demand: the other cases keep their heap
            if not ed25519.verify(a[0], a[1], a[2]):
                return "ERR bad signature"
            out = b"\x01"
        elif k == "D":
            from hub.crypto import sha512
            out = sha512.sha512(a[0]).digest()
        else:
            return "ERR unknown case " + k
    except CryptoError as e:
        return "ERR " + str(e)
    return out.hex() or "-"


def main(inp=None, out=None):
    serve_lines(answer, inp, out)


if __name__ == "__main__":
    main()
