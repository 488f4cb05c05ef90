//! BFD Control packets as byte vectors, checked in both directions, and one
//! vector per §6.8.6 reason to discard.

mod common;

use common::hex;
use tabby_bfd::AuthConfig;
use tabby_bfd::packet::{Auth, AuthType, DecodeError, Diag, Packet, Password, State};

fn both_ways(bytes: &str, p: &Packet) {
    let bytes = hex(bytes);
    assert_eq!(&Packet::decode(&bytes).expect("decodes"), p, "decode");
    assert_eq!(p.encode(), bytes, "encode");
    assert_eq!(p.wire_len(), bytes.len());
}

fn base(state: State) -> Packet {
    Packet {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        fin: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x0a0a_0001,
        your_discriminator: 0x0b0b_0002,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
}

#[test]
fn down_with_discriminators() {
    let p = Packet {
        diag: Diag::ControlDetectionTimeExpired,
        desired_min_tx_us: 1_000_000,
        ..base(State::Down)
    };
    both_ways(
        "21 40 03 18 | 0a0a0001 | 0b0b0002 | 000f4240 | 000493e0 | 00000000",
        &p,
    );
}

#[test]
fn up_with_poll() {
    let p = Packet {
        poll: true,
        ..base(State::Up)
    };
    both_ways(
        "20 e0 03 18 | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000",
        &p,
    );
}

#[test]
fn up_with_final_cpi_and_demand() {
    let p = Packet {
        fin: true,
        control_plane_independent: true,
        demand: true,
        detect_mult: 5,
        my_discriminator: 0x0b0b_0002,
        your_discriminator: 0x0a0a_0001,
        desired_min_tx_us: 100_000,
        required_min_rx_us: 100_000,
        required_min_echo_rx_us: 50_000,
        ..base(State::Up)
    };
    both_ways(
        "20 da 05 18 | 0b0b0002 | 0a0a0001 | 000186a0 | 000186a0 | 0000c350",
        &p,
    );
}

#[test]
fn admin_down_and_reserved_diag() {
    let p = Packet {
        diag: Diag::AdministrativelyDown,
        my_discriminator: 1,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 1_000_000,
        ..base(State::AdminDown)
    };
    both_ways(
        "27 00 03 18 | 00000001 | 00000000 | 000f4240 | 000f4240 | 00000000",
        &p,
    );
    let p = Packet {
        diag: Diag::Unknown(31),
        detect_mult: 1,
        my_discriminator: 1,
        your_discriminator: 2,
        desired_min_tx_us: 1,
        required_min_rx_us: 1,
        required_min_echo_rx_us: 1,
        ..base(State::Init)
    };
    both_ways(
        "3f 80 01 18 | 00000001 | 00000002 | 00000001 | 00000001 | 00000001",
        &p,
    );
}

#[test]
fn every_diag_code() {
    for v in 0..32u8 {
        let d = Diag::from(v);
        assert_eq!(d.code(), v);
        assert_eq!(matches!(d, Diag::Unknown(_)), v > 8, "{v}");
    }
    assert_eq!(Diag::from(3), Diag::NeighborSignaledSessionDown);
    assert_eq!(Diag::from(8), Diag::ReverseConcatenatedPathDown);
}

#[test]
fn meticulous_keyed_sha1_with_the_hash_computed_independently() {
    // The hash in this vector was computed outside this crate: SHA1 over
    // the packet with the key "tabby", zero-padded to 20 octets, in the
    // hash field (§6.7.4).
    let vector = "20 c4 03 34 | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000 | \
                  05 1c 07 00 | 00000005 | 96b3dbb4ddfafffe46c039ac9f0dfc54a7081842";
    let mut hash = [0; 20];
    hash.copy_from_slice(&hex("96b3dbb4ddfafffe46c039ac9f0dfc54a7081842"));
    let p = Packet {
        auth: Some(Auth::KeyedSha1 {
            meticulous: true,
            key_id: 7,
            seq: 5,
            hash,
        }),
        ..base(State::Up)
    };
    both_ways(vector, &p);
    // Our signer produces the same octets.
    let key = AuthConfig::keyed_sha1(7, b"tabby", true).unwrap();
    let mut unsigned = Packet {
        auth: Some(key.section(5)),
        ..p.clone()
    }
    .encode();
    key.sign(&mut unsigned);
    assert_eq!(unsigned, hex(vector));
}

#[test]
fn keyed_sha1_md5_and_password() {
    let mut hash = [0; 20];
    hash.copy_from_slice(&hex("0102030405060708090a0b0c0d0e0f1011121314"));
    let down = Packet {
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        ..base(State::Down)
    };
    both_ways(
        "20 44 03 34 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
         04 1c 01 00 | fffffffe | 0102030405060708090a0b0c0d0e0f1011121314",
        &Packet {
            auth: Some(Auth::KeyedSha1 {
                meticulous: false,
                key_id: 1,
                seq: 0xffff_fffe,
                hash,
            }),
            ..down.clone()
        },
    );
    let mut digest = [0; 16];
    digest.copy_from_slice(&hex("00112233445566778899aabbccddeeff"));
    both_ways(
        "20 44 03 30 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
         03 18 02 00 | 0000002a | 00112233445566778899aabbccddeeff",
        &Packet {
            auth: Some(Auth::KeyedMd5 {
                meticulous: true,
                key_id: 2,
                seq: 42,
                digest,
            }),
            ..down.clone()
        },
    );
    both_ways(
        "20 44 03 21 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
         01 09 01 736563726574",
        &Packet {
            auth: Some(Auth::SimplePassword {
                key_id: 1,
                password: Password::new(b"secret").unwrap(),
            }),
            ..down
        },
    );
}

#[test]
fn reserved_octet_is_ignored_and_trailing_octets_too() {
    // §4.2.4: Reserved ignored on receipt; written back as zero.
    let sent = hex(
        "20 44 03 34 | 0a0a0001 | 00000000 | 000f4240 | 000493e0 | 00000000 | \
         04 1c 01 ff | 00000001 | 0102030405060708090a0b0c0d0e0f1011121314",
    );
    let p = Packet::decode(&sent).unwrap();
    assert_eq!(p.encode()[27], 0);
    // Octets after Length (UDP padding) are not part of the packet.
    let mut padded = hex("20 e0 03 18 | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000");
    let want = Packet::decode(&padded).unwrap();
    padded.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(Packet::decode(&padded).unwrap(), want);
    // Without A, Length above 24 is accepted and the excess ignored.
    let mut long = hex("20 e0 03 1a | 0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000 | 0000");
    assert_eq!(Packet::decode(&long).unwrap(), want);
    long.truncate(24);
    assert!(Packet::decode(&long).is_err(), "Length 26 beyond 24 octets");
}

fn err(s: &str) -> DecodeError {
    Packet::decode(&hex(s)).expect_err("must be discarded")
}

#[test]
fn reception_checks() {
    use DecodeError::*;
    let tail = "0a0a0001 | 0b0b0002 | 000493e0 | 000493e0 | 00000000";
    assert_eq!(err(""), Truncated { len: 0 });
    assert_eq!(err("20 c0 03"), Truncated { len: 3 });
    assert_eq!(err(&format!("00 c0 03 18 | {tail}")), BadVersion(0));
    assert_eq!(err(&format!("40 c0 03 18 | {tail}")), BadVersion(2));
    assert_eq!(
        err(&format!("20 c0 03 17 | {tail}")),
        LengthTooSmall {
            length: 23,
            auth: false,
            min: 24
        }
    );
    assert_eq!(
        err(&format!("20 c4 03 19 | {tail} | 04")),
        LengthTooSmall {
            length: 25,
            auth: true,
            min: 26
        }
    );
    assert_eq!(
        err(&format!("20 c0 03 19 | {tail}")),
        LengthExceedsPayload {
            length: 25,
            payload: 24
        }
    );
    assert_eq!(err(&format!("20 c0 00 18 | {tail}")), ZeroDetectMult);
    assert_eq!(err(&format!("20 c1 03 18 | {tail}")), MultipointSet);
    assert_eq!(
        err("20 c0 03 18 | 00000000 | 0b0b0002 | 000493e0 | 000493e0 | 00000000"),
        ZeroMyDiscriminator
    );
    assert_eq!(
        err("20 c0 03 18 | 0a0a0001 | 00000000 | 000493e0 | 000493e0 | 00000000"),
        ZeroYourDiscriminator(State::Up)
    );
    assert_eq!(
        err("20 80 03 18 | 0a0a0001 | 00000000 | 000493e0 | 000493e0 | 00000000"),
        ZeroYourDiscriminator(State::Init)
    );
    // A bit and the section disagree.
    assert_eq!(
        err(&format!("20 c4 03 1a | {tail} | 04 1c")),
        AuthLengthMismatch {
            auth_len: 28,
            available: 2
        }
    );
    assert_eq!(
        err(&format!("20 c4 03 1c | {tail} | 01 03 01 41")),
        AuthLengthMismatch {
            auth_len: 3,
            available: 4
        }
    );
    assert_eq!(
        err(&format!("20 c4 03 1b | {tail} | 00 03 01")),
        UnknownAuthType(0)
    );
    assert_eq!(
        err(&format!("20 c4 03 1b | {tail} | 06 03 01")),
        UnknownAuthType(6)
    );
    // Auth Len wrong for its type.
    let bad_len = |ty: u8, len: u8| {
        let body = "00".repeat(usize::from(len) - 2);
        err(&format!(
            "20 c4 03 {:02x} | {tail} | {ty:02x} {len:02x} {body}",
            24 + len
        ))
    };
    assert_eq!(
        bad_len(1, 3),
        BadAuthLength {
            auth_type: AuthType::SimplePassword,
            len: 3
        }
    );
    assert_eq!(
        bad_len(1, 20),
        BadAuthLength {
            auth_type: AuthType::SimplePassword,
            len: 20
        }
    );
    assert_eq!(
        bad_len(2, 28),
        BadAuthLength {
            auth_type: AuthType::KeyedMd5,
            len: 28
        }
    );
    assert_eq!(
        bad_len(3, 23),
        BadAuthLength {
            auth_type: AuthType::MeticulousKeyedMd5,
            len: 23
        }
    );
    assert_eq!(
        bad_len(4, 24),
        BadAuthLength {
            auth_type: AuthType::KeyedSha1,
            len: 24
        }
    );
    assert_eq!(
        bad_len(5, 29),
        BadAuthLength {
            auth_type: AuthType::MeticulousKeyedSha1,
            len: 29
        }
    );
    // The passwords at the bounds decode.
    assert!(Packet::decode(&hex(&format!("20 c4 03 1c | {tail} | 01 04 01 41"))).is_ok());
    let sixteen = "41".repeat(16);
    assert!(Packet::decode(&hex(&format!("20 c4 03 2b | {tail} | 01 13 01 {sixteen}"))).is_ok());
    assert!(Password::new(b"").is_none() && Password::new(&[0; 17]).is_none());
}
