#!/usr/bin/env python3
"""Writes the seed corpus (small byte vectors from the codec tests).

Run from fuzz/: python3 seeds/make_seeds.py. Every target but open,
capabilities and notification takes a first octet choosing the context:
bit 0 4-octet AS, bit 1 ADD-PATH, bit 2 extended next hop, bit 3 eBGP,
bit 4 extended messages.
"""
import os

def h(s):
    return bytes.fromhex("".join(c for c in s if c in "0123456789abcdefABCDEF"))

def msg(kind, body):
    b = h(body) if isinstance(body, str) else body
    return b"\xff" * 16 + (19 + len(b)).to_bytes(2, "big") + bytes([kind]) + b

def upd_body(w, a, n):
    w, a, n = h(w), h(a), h(n)
    return len(w).to_bytes(2, "big") + w + len(a).to_bytes(2, "big") + a + n

CAPS = ("010400010001 010400020001 0200 4600 4104 0000fde9 400a 8078 00010180 00020100 "
        "4707 00010180 000e10 4508 00010103 00020101 0506 000100010002 0600 090103 8000")
OPEN = "04 fde9 005a c6120001 46 02 44 " + CAPS
OPEN_EXT = "04 fde9 005a c6120001 ff ff 0009 02 0006 010400010001"
FULL_ATTRS = ("40 01 01 00 40 02 0a 02 02 0000fde9 0000fdea 40 03 04 c6120001 80 04 04 00000064 "
              "40 05 04 000000c8 40 06 00 c0 07 08 0000fde9 c6120001 c0 08 08 fde90064 ffffff01 "
              "80 09 04 c6120002 80 0a 04 c6120003 c0 10 08 0002fde900000064 "
              "c0 20 0c 0000fde9 00000001 00000002 c0 23 04 0000fde9 e0 63 02 abcd")
AS4_ATTRS = ("40 01 01 00 40 02 06 0202 5ba0 fde9 40 03 04 c6120001 c0 07 06 5ba0 c6120001 "
             "c0 11 0a 0202 00011170 0000fde9 c0 12 08 00011170 c6120001")
MP6 = ("80 0e 34 0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00 "
       "30 20010db81000 31 20010db8100180 40 01 01 00 40 02 00")
ENH = "80 0e 19 0001 01 10 20010db8000000000000000000000001 00 18 644001 40 01 01 00 40 02 00"
ADDP = "80 0f 0e 0002 01 00000002 30 20010db81000 40 01 01 00 40 02 00 40 03 04 c6120001"

updates = [
    (0x01, upd_body("18 644009", FULL_ATTRS, "18 644001 10 6440 00 20 c6130007")),
    (0x00, upd_body("", AS4_ATTRS, "18 644001")),
    (0x01, upd_body("", MP6, "")),
    (0x05, upd_body("", ENH, "")),
    (0x03, upd_body("00000007 18 644002", ADDP, "00000001 18 644001")),
    (0x01, upd_body("", "80 0f 03 0002 01", "")),
    (0x09, upd_body("", FULL_ATTRS, "18 644001")),
]
messages = [(c, msg(2, b)) for c, b in updates] + [
    (0x00, msg(4, "")),
    (0x00, msg(1, OPEN)),
    (0x00, msg(1, OPEN_EXT)),
    (0x00, msg(3, "06 02 03 627965")),
    (0x00, msg(5, "0002 01 01")),
    (0x01, msg(2, upd_body("", "", ""))),
]

def write(target, items):
    d = os.path.join("seeds", target)
    os.makedirs(d, exist_ok=True)
    for i, data in enumerate(items):
        with open(os.path.join(d, f"seed-{i:02}"), "wb") as f:
            f.write(data)

write("message", [bytes([c]) + m for c, m in messages])
write("roundtrip", [bytes([c]) + m for c, m in messages])
write("framing", [bytes([0x01]) + b"".join(m for _, m in messages)])
write("update", [bytes([c]) + b for c, b in updates])
write("attributes", [bytes([c]) + h(a) for c, a in [(1, FULL_ATTRS), (0, AS4_ATTRS), (1, MP6), (5, ENH), (3, ADDP)]])
write("nlri", [h("00 18 644001 10 6440 00 20 c6130007"), h("01 30 20010db81000 31 20010db8100180 80 20010db8000000000000000000000001"),
               h("02 00000001 18 644001")])
write("open", [h(OPEN), h(OPEN_EXT), h("04 fde9 005a c6120001 05 01 03 aabbcc")])
write("capabilities", [h(CAPS)])
write("notification", [h("06 02 03 627965"), h("06 04 c8 616263"), h("01 02 0012")])
