# NaCl-compatible cryptography for the hub, byte-identical to libsodium
# (tests/test_crypto_crosscheck.py checks it against pynacl):
#   salsa20   Salsa20, HSalsa20, XSalsa20
#   poly1305  the one-time authenticator
#   x25519    Curve25519 Diffie-Hellman (RFC 7748)
#   box       crypto_secretbox, crypto_box, crypto_box_beforenm/afternm
#   hmac      HMAC-SHA256 on hashlib.sha256
#   sha512    SHA-512 (hashlib has none on MicroPython)
#   ed25519   Ed25519 verification only (release signatures; docs/ota.md)
#   ct        constant-time comparison
#
# Pure MicroPython that also runs on CPython. Arithmetic works in 13-bit
# (Poly1305), 16-bit (X25519) and 32-bit (Salsa20) pieces, so that the
# viper kernels are exact in the boards' 32-bit machine words and nothing
# depends on the unix port's 63-bit small ints.
# The hot loops have @micropython.viper twins in the _v*.py modules,
# chosen at import; CPython (and a MicroPython without the native
# emitter) runs the pure-Python kernels, which compute the same words.
# Submodules are imported on demand: this file stays tiny.


from hub.errors import HubError


class CryptoError(HubError):
    """A box or tag that does not verify, a weak public key, or an argument of the wrong size."""


def check_len(name, value, n):
    if len(value) != n:
        raise CryptoError("%s must be %d bytes, not %d" % (name, n, len(value)))
