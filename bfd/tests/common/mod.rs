//! Hex byte vectors shared by the codec tests.
#![allow(dead_code)]

/// Parses hex, ignoring whitespace and `|` separators used for readability.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    hex::decode(&digits).unwrap_or_else(|e| panic!("bad hex vector {s:?}: {e}"))
}

/// Real-looking packets of every kind the codec knows, as hex.
pub const VECTORS: &[&str] = &[
    // Down, diag 1, after a timeout: discriminators, 1 s / 300 ms × 3.
    "21 40 03 18 | 0a0a0001 | 0b0b0002 | 000f4240 | 000493e0 | 00000000",
    // Up with Poll, 300 ms × 3.
    "20 e0 03 18 | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000",
    // Up with Final and C, Demand set, echo 50 ms, mult 5.
    "20 da 05 18 | 0b0b0002 | 0a0a0001 | 000186a0 | 000186a0 | 0000c350",
    // AdminDown, diag 7, Your Discriminator still 0.
    "27 00 03 18 | 00000001 | 00000000 | 000f4240 | 000f4240 | 00000000",
    // Init, reserved diag 31.
    "3f 80 01 18 | 00000001 | 00000002 | 00000001 | 00000001 | 00000001",
    // Up, Meticulous Keyed SHA1, key id 7, sequence 5.
    "20 c4 03 34 | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000 | \
     05 1c 07 00 | 00000005 | 96b3dbb4ddfafffe46c039ac9f0dfc54a7081842",
    // Down, Keyed SHA1.
    "20 44 03 34 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
     04 1c 01 00 | fffffffe | 0102030405060708090a0b0c0d0e0f1011121314",
    // Down, Meticulous Keyed MD5, key id 2, sequence 42.
    "20 44 03 30 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
     03 18 02 00 | 0000002a | 00112233445566778899aabbccddeeff",
    // Down, Keyed MD5.
    "20 44 03 30 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
     02 18 02 00 | 00000001 | ffeeddccbbaa99887766554433221100",
    // Down, Simple Password "secret", key id 1.
    "20 44 03 21 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
     01 09 01 736563726574",
];
