//! Logging of refused requests without flooding the log.

use std::io;

use ipnet::IpNet;
use tracing::warn;

use crate::maps::{HashMap, remove_if_any};

/// Logs a failure once per prefix and errno, and per errno only the first
/// few prefixes and then every 10 000th: a million routes refused for one
/// reason (say EPERM without CAP_NET_ADMIN) is one story, not a million
/// lines. `stats().errors` has the exact counts.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    /// The errno last logged per prefix, so a retry storm logs once.
    last: HashMap<IpNet, i32>,
    /// How many prefixes have logged each errno.
    per_errno: HashMap<i32, u64>,
}

impl FailureLog {
    pub(crate) fn log_once(&mut self, prefix: IpNet, errno: i32, what: &str) {
        if self.last.insert(prefix, errno) == Some(errno) {
            return;
        }
        let n = self.per_errno.entry(errno).or_default();
        *n += 1;
        let err = io::Error::from_raw_os_error(errno);
        if *n <= 5 {
            warn!(%prefix, errno, error = %err, "{what}");
        } else if (*n).is_multiple_of(10_000) {
            warn!(errno, error = %err, prefixes = *n, "{what} (repeated for many prefixes; see stats)");
        }
    }

    pub(crate) fn last(&self, prefix: &IpNet) -> Option<i32> {
        self.last.get(prefix).copied()
    }

    pub(crate) fn forget(&mut self, prefix: &IpNet) {
        remove_if_any(&mut self.last, prefix);
    }
}
