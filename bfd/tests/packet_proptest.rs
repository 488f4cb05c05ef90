//! Any valid packet encodes and decodes to itself; no input panics decode.

use proptest::prelude::*;
use tabby_bfd::packet::{Auth, Diag, Packet, Password, State};
use tabby_bfd::testing::check_packet_fuzz_input;

fn diag() -> impl Strategy<Value = Diag> {
    (0u8..32).prop_map(Diag::from)
}

fn state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_code)
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        (any::<u8>(), prop::collection::vec(any::<u8>(), 1..=16)).prop_map(|(key_id, pw)| {
            Auth::SimplePassword {
                key_id,
                password: Password::new(&pw).unwrap(),
            }
        }),
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<[u8; 16]>()).prop_map(
            |(meticulous, key_id, seq, digest)| Auth::KeyedMd5 {
                meticulous,
                key_id,
                seq,
                digest,
            }
        ),
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<[u8; 20]>()).prop_map(
            |(meticulous, key_id, seq, hash)| Auth::KeyedSha1 {
                meticulous,
                key_id,
                seq,
                hash,
            }
        ),
    ]
}

prop_compose! {
    fn packet()(
        diag in diag(),
        state in state(),
        flags in any::<[bool; 4]>(),
        detect_mult in 1u8..,
        my_discriminator in 1u32..,
        your in any::<u32>(),
        intervals in any::<[u32; 3]>(),
        auth in prop::option::of(auth()),
    ) -> Packet {
        // Your Discriminator may be zero only in Down and AdminDown.
        let your_discriminator = if matches!(state, State::Init | State::Up) { your.max(1) } else { your };
        Packet {
            diag,
            state,
            poll: flags[0],
            fin: flags[1],
            control_plane_independent: flags[2],
            demand: flags[3],
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: intervals[0],
            required_min_rx_us: intervals[1],
            required_min_echo_rx_us: intervals[2],
            auth,
        }
    }
}

proptest! {
    #[test]
    fn valid_packets_round_trip(p in packet()) {
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), p.wire_len());
        prop_assert_eq!(usize::from(bytes[3]), bytes.len());
        prop_assert_eq!(Packet::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        check_packet_fuzz_input(&bytes);
    }

    /// Mostly-valid inputs: a valid packet with one octet changed reaches
    /// the deeper checks that random bytes rarely get past.
    #[test]
    fn mutated_packets_never_panic(p in packet(), at in any::<prop::sample::Index>(), v in any::<u8>()) {
        let mut bytes = p.encode();
        let i = at.index(bytes.len());
        bytes[i] = v;
        check_packet_fuzz_input(&bytes);
    }
}
