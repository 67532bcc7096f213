# Published test vectors for hub.crypto, shared by the firmware tests.
#   NaCl: the tests of nacl-20110221 (box3/box4, core1..core4, stream5..8,
#         onetimeauth), from Bernstein's "Cryptography in NaCl".
#   RFC 7748 section 5.2 and 6.1 (X25519), RFC 8439 section 2.5.2 and
#   appendix A.3 (Poly1305), RFC 4231 (HMAC-SHA256).


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


ALICE_SK = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PK = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_SK = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PK = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
FIRSTKEY = h("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
SECONDKEY = h("dc908dda0b9344a953629b733820778880f3ceb421bb61b91cbd4c3e66256ce4")
NONCE = h("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
M131 = h("be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc"
         "e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31"
         "0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde"
         "048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864"
         "5e0705")
C131 = h("8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a"
         "c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738"
         "b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da"
         "99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74"
         "e355a5")
TAG131 = h("f3ffc7703f9400e52a7dfb4b3d3305d9")  # box3: the box is TAG131 + C131
STREAM7 = h("eea6a7251c1e72916d11c2cb214d3c252539121d8e234e652d651fa4c8cff880")
STREAM5_SHA256 = h("662b9d0e3463029156069b12f918691a98f7dfb2ca0393c96bbfc6b1fbd630a2")
CORE4_KEY = bytes(range(1, 17)) + bytes(range(201, 217))
CORE4_IN = bytes(range(101, 117))
CORE4_OUT = bytes((
    69, 37, 68, 39, 41, 15, 107, 193, 255, 139, 122, 6, 170, 233, 217, 98,
    89, 144, 182, 106, 21, 51, 200, 65, 239, 49, 222, 34, 215, 114, 40, 126,
    104, 197, 7, 225, 197, 153, 31, 2, 102, 78, 76, 176, 84, 245, 246, 184,
    177, 160, 133, 130, 6, 72, 149, 119, 192, 195, 132, 236, 234, 103, 246, 74))

# RFC 7748 section 5.2: (scalar, u, output)
X25519_VECTORS = (
    (h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
     h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
     h("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")),
    (h("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
     h("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
     h("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")),
)
X25519_ITER_1 = h("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
X25519_ITER_1000 = h("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")

# Points of small order (and their non-canonical encodings) that libsodium refuses.
SMALL_ORDER = (
    bytes(32),
    b"\x01" + bytes(31),
    h("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    h("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    h("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    h("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    h("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
)


def _pk(r, s=""):
    return h(r + "0" * (32 - len(r))) + h(s + "0" * (32 - len(s)))


# Poly1305: (key, message, tag)
POLY1305_VECTORS = (
    (STREAM7, C131, TAG131),  # NaCl onetimeauth
    (h("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"),
     b"Cryptographic Forum Research Group", h("a8061dc1305136c6c22b8baf0c0127a9")),
    # RFC 8439 A.3 #5..#11: the carries and the final reduction
    (_pk("02"), h("ff" * 16), h("03" + "00" * 15)),
    (_pk("02", "ff" * 16), h("02" + "00" * 15), h("03" + "00" * 15)),
    (_pk("01"), h("ff" * 16 + "f0" + "ff" * 15 + "11" + "00" * 15), h("05" + "00" * 15)),
    (_pk("01"), h("ff" * 16 + "fb" + "fe" * 15 + "01" * 16), h("00" * 16)),
    (_pk("02"), h("fd" + "ff" * 15), h("fa" + "ff" * 15)),
    (_pk("01000000000000000400"),
     h("e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
       "0000000000000000000000000000000001000000000000000000000000000000"),
     h("14000000000000005500000000000000")),
    (_pk("01000000000000000400"),
     h("e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
       "00000000000000000000000000000000"),
     h("13000000000000000000000000000000")),
)

# RFC 4231 cases 1, 2, 3, 4, 6, 7: (key, data, HMAC-SHA256)
HMAC_VECTORS = (
    (b"\x0b" * 20, b"Hi There", h("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")),
    (b"Jefe", b"what do ya want for nothing?",
     h("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")),
    (b"\xaa" * 20, b"\xdd" * 50, h("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")),
    (bytes(range(1, 26)), b"\xcd" * 50, h("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b")),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     h("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     h("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")),
)
