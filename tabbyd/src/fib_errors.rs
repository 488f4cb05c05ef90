//! fib-sync's failed kernel requests into `/metrics`: its counters are read
//! once a second and `tabby_fib_errors_total{kind}` grows by the difference,
//! `kind` being the errno's name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tabby_fib_sync::FibHandle;

use crate::metrics::{KindLabel, Metrics};

/// Reads the FIB task's counters until it stops.
pub async fn poll(fib: FibHandle, metrics: Arc<Metrics>) {
    let mut last = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Ok(stats) = fib.stats().await else {
            return; // the FIB task is gone
        };
        count(&last, &stats.errors, &metrics);
        last = stats.errors;
    }
}

/// Adds what grew between two readings of the errors by errno.
fn count(before: &BTreeMap<i32, u64>, now: &BTreeMap<i32, u64>, metrics: &Metrics) {
    for (errno, n) in now {
        let grew = n.saturating_sub(before.get(errno).copied().unwrap_or(0));
        if grew > 0 {
            metrics
                .fib_errors
                .get_or_create(&KindLabel {
                    kind: errno_name(*errno),
                })
                .inc_by(grew);
        }
    }
}

/// The errno names a route request meets; others as `errno_N`.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        101 => "ENETUNREACH",
        105 => "ENOBUFS",
        113 => "EHOSTUNREACH",
        _ => return format!("errno_{errno}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_grow_by_the_difference_per_errno() {
        let m = Metrics::default();
        let get = |kind: &str| {
            m.fib_errors
                .get_or_create(&KindLabel { kind: kind.into() })
                .get()
        };
        let first = BTreeMap::from([(101, 2), (17, 1)]);
        count(&BTreeMap::new(), &first, &m);
        assert_eq!((get("ENETUNREACH"), get("EEXIST")), (2, 1));
        let second = BTreeMap::from([(101, 5), (17, 1), (95, 1)]);
        count(&first, &second, &m);
        assert_eq!(
            (get("ENETUNREACH"), get("EEXIST"), get("errno_95")),
            (5, 1, 1)
        );
    }
}
