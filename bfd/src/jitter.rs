//! Transmit jitter (RFC 5880 §6.8.7) and the seeded random source that
//! drives it, so that a session is deterministic for a given seed.

use std::time::Duration;

/// The interval to wait before the next periodic packet: `interval` reduced
/// by 0 to 25 % (75 to 100 % of it), or, with a Detect Mult of 1, by 10 to
/// 25 % (75 to 90 %), chosen by `random`.
pub fn jittered(interval: Duration, detect_mult: u8, random: u32) -> Duration {
    let span = if detect_mult == 1 { 151 } else { 251 };
    let permille = 750 + u64::from(random % span);
    let us = interval.as_micros() as u64 * permille / 1000;
    Duration::from_micros(us)
}

/// SplitMix64: small, fast and good enough to spread transmissions; not a
/// secret (the authentication sequence number it seeds is public on the
/// wire).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }
}
