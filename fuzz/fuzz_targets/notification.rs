#![no_main]
use libfuzzer_sys::fuzz_target;
use tabby_bgp::codec::decode_notification;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = decode_notification(data) {
        let _ = n.shutdown_message();
        let _ = n.to_string();
    }
});
