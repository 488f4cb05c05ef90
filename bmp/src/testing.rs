//! The fuzz oracle: what the `bmp` cargo-fuzz target (`fuzz/`) checks, kept
//! here so the fuzzer and the tests that replay byte vectors through it
//! (`tests/fuzz_oracle.rs`) run the same checks.
//!
//! Not for the daemon: [`check_fuzz_input`] panics when the codec breaks a
//! promise, which is what a fuzzer looks for.

use crate::codec::{decode, frame_len};
use crate::message::Message;

/// Decoding never panics, nor does reading the embedded BGP PDUs; whatever
/// decodes encodes back to exactly the octets it came from (every field is
/// kept as sent), and that encoding decodes to the same message.
pub fn check_fuzz_input(data: &[u8]) {
    let framed = frame_len(data);
    let Ok(msg) = decode(data) else {
        return;
    };
    assert_eq!(framed, Ok(Some(data.len())), "frame_len agrees with decode");
    let bytes = msg.to_bytes();
    assert_eq!(&bytes[..], data, "encode(decode(b)) == b");
    let again = decode(&bytes).expect("our own encoding decodes");
    assert_eq!(again, msg, "decode(encode(m)) == m");
    match &msg {
        Message::RouteMonitoring(m) => {
            let _ = m.decode_update();
        }
        Message::PeerUp(m) => {
            let _ = m.decode_sent_open();
            let _ = m.decode_received_open();
            let _ = m.local_addr();
        }
        _ => {}
    }
    if let Some(p) = msg.peer() {
        let _ = (
            p.peer_address(),
            p.post_policy(),
            p.two_octet_as(),
            p.filtered(),
        );
    }
}

/// Checks that a message built by this crate survives the round trip:
/// `decode(encode(m)) == m`. For property tests of the encoder.
pub fn check_round_trip(msg: &Message) {
    let bytes = msg.to_bytes();
    assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
    let back = decode(&bytes).unwrap_or_else(|e| panic!("{e}: {msg:?}"));
    assert_eq!(&back, msg);
    check_fuzz_input(&bytes);
}
