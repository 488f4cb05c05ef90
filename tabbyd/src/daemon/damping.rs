//! Damping of a flapping BFD session (RFC 5882 §3.2): each failure adds a
//! penalty that decays exponentially; past a threshold the BGP session is
//! held down until the penalty has decayed below the reuse level. A single
//! failure, or two, never delays anything: only a third in quick succession
//! does, and the longest hold is bounded.

use std::time::{Duration, Instant};

/// Added for each failure.
pub const PENALTY: f64 = 1000.0;
/// At or above this the session is suppressed: three failures within a few
/// seconds.
pub const SUPPRESS: f64 = 2800.0;
/// A suppressed session is released once the penalty decays below this.
pub const REUSE: f64 = 1000.0;
/// The penalty halves every `HALF_LIFE`.
pub const HALF_LIFE: Duration = Duration::from_secs(15);
/// The longest a session stays suppressed after its last failure.
pub const MAX_SUPPRESS: Duration = Duration::from_secs(120);

/// One session's penalty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Damping {
    penalty: f64,
    /// When `penalty` was last brought up to date.
    at: Option<Instant>,
    suppressed: bool,
}

impl Damping {
    /// The penalty as it stands at `now`.
    pub fn penalty(&self, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.penalty * 0.5f64.powf(dt / HALF_LIFE.as_secs_f64())
            }
        }
    }

    /// A failure at `now`; returns whether the session is now suppressed.
    pub fn failure(&mut self, now: Instant) -> bool {
        // The cap keeps the hold after the last failure within MAX_SUPPRESS.
        let cap = REUSE * 2f64.powf(MAX_SUPPRESS.as_secs_f64() / HALF_LIFE.as_secs_f64());
        self.penalty = (self.penalty(now) + PENALTY).min(cap);
        self.at = Some(now);
        if self.penalty >= SUPPRESS {
            self.suppressed = true;
        }
        self.suppressed
    }

    /// Whether the session is held down at `now`; releases it once the
    /// penalty is below [`REUSE`].
    pub fn suppressed(&mut self, now: Instant) -> bool {
        if self.suppressed && self.penalty(now) < REUSE {
            self.suppressed = false;
        }
        self.suppressed
    }

    /// Whether it was suppressed when last checked (no update).
    pub fn is_suppressed(&self) -> bool {
        self.suppressed
    }

    /// When a suppressed session is released (`None` when it is not).
    pub fn release_at(&self) -> Option<Instant> {
        if !self.suppressed {
            return None;
        }
        let at = self.at?;
        let halvings = (self.penalty / REUSE).log2().max(0.0);
        // A millisecond past the exact point, so the check then sees the
        // penalty below REUSE despite rounding.
        Some(at + HALF_LIFE.mul_f64(halvings) + Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_or_two_failures_never_suppress() {
        let t = Instant::now();
        let mut d = Damping::default();
        assert!(!d.failure(t));
        assert!(!d.failure(t + Duration::from_millis(100)));
        assert!(!d.suppressed(t + Duration::from_secs(1)));
        assert_eq!(d.release_at(), None);
    }

    #[test]
    fn a_third_quick_failure_suppresses_until_the_penalty_decays() {
        let t = Instant::now();
        let mut d = Damping::default();
        d.failure(t);
        d.failure(t + Duration::from_secs(1));
        assert!(d.failure(t + Duration::from_secs(2)));
        let release = d.release_at().expect("suppressed");
        // About 3000 decaying to 1000: log2(3) half-lives, ~24 s.
        let hold = release - (t + Duration::from_secs(2));
        assert!(
            hold > Duration::from_secs(20) && hold < Duration::from_secs(26),
            "{hold:?}"
        );
        assert!(d.suppressed(release - Duration::from_millis(50)));
        assert!(!d.suppressed(release));
        assert_eq!(d.release_at(), None);
    }

    #[test]
    fn failures_spread_out_decay_away() {
        let t = Instant::now();
        let mut d = Damping::default();
        for i in 0..10 {
            assert!(
                !d.failure(t + HALF_LIFE * 2 * i),
                "failure {i} two half-lives apart"
            );
        }
    }

    #[test]
    fn a_storm_is_held_no_longer_than_max_suppress_after_its_last_failure() {
        let t = Instant::now();
        let mut d = Damping::default();
        for i in 0..1000 {
            d.failure(t + Duration::from_millis(i));
        }
        let last = t + Duration::from_millis(999);
        let release = d.release_at().expect("suppressed");
        assert!(release - last <= MAX_SUPPRESS + Duration::from_millis(2));
        assert!(release - last >= MAX_SUPPRESS - Duration::from_secs(1));
    }
}
