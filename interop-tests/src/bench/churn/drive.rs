//! The open-loop driver: changes issued on a fixed schedule (change `k` at
//! `k / R` seconds), each handed to its node's worker without waiting for
//! anything to propagate. A window ends early only when the workers fall so
//! far behind the schedule that the rate is plainly not sustained.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::mpsc as tmpsc;

use super::cluster::{Job, Shared, lock};

/// A change not started this long after its time stops the window.
pub const BACKLOG_LIMIT: Duration = Duration::from_secs(2);

/// Issues changes to the cluster's workers.
#[derive(Debug, Clone)]
pub struct Driver {
    pub shared: Arc<Mutex<Shared>>,
    pub queues: Vec<tmpsc::UnboundedSender<Job>>,
    /// Nodes that get no changes and are not waited for (down in a fault).
    pub down: Arc<Mutex<BTreeSet<usize>>>,
}

/// What one window issued.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Tracker ids `first..end` belong to this window.
    pub first: usize,
    pub end: usize,
    /// Changes the schedule asked for.
    pub planned: usize,
    /// Set when the workers fell [`BACKLOG_LIMIT`] behind: when, into the
    /// window.
    pub stopped_at: Option<Duration>,
    /// Ticks with no free move (every eligible prefix busy).
    pub skipped: usize,
    pub elapsed: Duration,
}

impl Driver {
    /// Runs `rate` changes per second for `length`.
    pub async fn window(&self, rate: f64, length: Duration) -> Window {
        let planned = (rate * length.as_secs_f64()).round() as usize;
        let n = self.queues.len();
        let first = lock(&self.shared).tracker.records.len();
        let t0 = Instant::now();
        let mut w = Window {
            first,
            end: first,
            planned,
            stopped_at: None,
            skipped: 0,
            elapsed: Duration::ZERO,
        };
        for k in 0..planned {
            let at = t0 + Duration::from_secs_f64(k as f64 / rate.max(1e-9));
            tokio::time::sleep_until(at.into()).await;
            let down = self
                .down
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let job = {
                let mut g = lock(&self.shared);
                if g.tracker
                    .oldest_unstarted()
                    .is_some_and(|o| o.elapsed() > BACKLOG_LIMIT)
                {
                    w.stopped_at = Some(t0.elapsed());
                    break;
                }
                let Shared { load, tracker } = &mut *g;
                let Some(c) = load.next(|i| !down.contains(&i), |p| tracker.busy(&IpNet::V4(*p)))
                else {
                    w.skipped += 1;
                    continue;
                };
                let expect = (0..n).filter(|j| !down.contains(j)).collect();
                let id = tracker.begin(&c, at, expect);
                w.end = id + 1;
                (
                    c.node,
                    Job {
                        id: Some(id),
                        set: c.set,
                    },
                )
            };
            if let Some(q) = self.queues.get(job.0) {
                // A closed queue means the cluster is going away.
                let _ = q.send(job.1);
            }
        }
        w.elapsed = t0.elapsed();
        w
    }

    /// Waits until every call returned and every change was seen (or
    /// `limit` passed); returns how long it took.
    pub async fn settle(&self, limit: Duration) -> Duration {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            {
                let g = lock(&self.shared);
                if g.tracker.outstanding() == 0 && g.tracker.in_flight() == 0 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        t0.elapsed()
    }
}
