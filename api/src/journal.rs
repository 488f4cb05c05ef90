//! Sequence numbers, a bounded history and a live feed of best-route
//! changes: the bookkeeping behind [`crate::Core::watch_routes`], for the
//! daemon to own next to its Loc-RIB.

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use ipnet::IpNet;
use tokio::sync::broadcast;

use crate::model::{Path, RouteEvent, RouteUpdate, RouteWatch, RouteWatchStart};

/// Numbers Loc-RIB changes, remembers which prefix each of the last
/// `history` changed (for resuming watchers), and broadcasts each change to
/// live watchers through a channel of `live_buffer` slots (a watcher more
/// than that far behind is told to resync).
///
/// The history holds prefixes, not routes: a resume replays, for each
/// prefix changed since, its state now. That is what the watcher would hold
/// after the missed events, at a few octets per change, and a change nobody
/// watches live costs no conversion to the API model. Memory is bounded by
/// `history` prefixes plus `live_buffer` events.
#[derive(Debug)]
pub struct RouteJournal {
    sequence: u64,
    history: VecDeque<(u64, IpNet)>,
    history_cap: usize,
    live: Feed<RouteEvent>,
}

/// A broadcast channel made on first subscription: its slots are allocated
/// up front (a few hundred KiB for thousands of events), which a daemon
/// nobody watches should not pay.
#[derive(Debug)]
pub struct Feed<T> {
    tx: OnceLock<broadcast::Sender<T>>,
    capacity: usize,
}

impl<T: Clone> Feed<T> {
    /// A feed of `capacity` slots (at least 1): a receiver more than that
    /// far behind is told it lagged.
    pub fn new(capacity: usize) -> Self {
        Feed {
            tx: OnceLock::new(),
            capacity: capacity.max(1),
        }
    }

    /// Sends what `event` builds, if anybody listens (it is not built
    /// otherwise).
    pub fn send_with(&self, event: impl FnOnce() -> T) {
        if let Some(tx) = self.tx.get()
            && tx.receiver_count() > 0
        {
            let _ = tx.send(event());
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<T> {
        self.tx
            .get_or_init(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }
}

impl RouteJournal {
    /// A journal at sequence 0. `history` and `live_buffer` are clamped to at
    /// least 1.
    pub fn new(history: usize, live_buffer: usize) -> RouteJournal {
        RouteJournal {
            sequence: 0,
            // Grown on demand: most daemons never fill it.
            history: VecDeque::new(),
            history_cap: history.max(1),
            live: Feed::new(live_buffer),
        }
    }

    /// The sequence of the last published change (0 before any).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Records a change and sends it to live watchers; returns its sequence.
    pub fn publish(&mut self, update: RouteUpdate) -> u64 {
        let prefix = match &update {
            RouteUpdate::BestChanged { prefix, .. } | RouteUpdate::Withdrawn { prefix } => *prefix,
        };
        self.publish_with(prefix, || update)
    }

    /// Records a change of `prefix`; `update` builds the event only when
    /// somebody watches live. Returns its sequence.
    pub fn publish_with(&mut self, prefix: IpNet, update: impl FnOnce() -> RouteUpdate) -> u64 {
        self.sequence += 1;
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back((self.sequence, prefix));
        let sequence = self.sequence;
        self.live.send_with(|| RouteEvent {
            sequence,
            update: update(),
        });
        self.sequence
    }

    /// Starts a watch. Call it where the Loc-RIB cannot change in between
    /// (inside the daemon's event loop): `snapshot` must return every best
    /// route as of [`RouteJournal::sequence`], and `current` one prefix's
    /// state now. With `resume_from = Some(s)` and every change after `s`
    /// still in the history, no snapshot is taken: each prefix changed since
    /// is replayed once, as it is now, in the order of its last change.
    pub fn watch<F, C>(&self, resume_from: Option<u64>, snapshot: F, current: C) -> RouteWatch
    where
        F: FnOnce() -> Vec<(IpNet, Path)>,
        C: Fn(IpNet) -> RouteUpdate,
    {
        let updates = self.live.subscribe();
        if let Some(from) = resume_from {
            if from == self.sequence {
                return RouteWatch {
                    start: RouteWatchStart::Replay(Vec::new()),
                    updates,
                };
            }
            let oldest = self.history.front().map(|e| e.0);
            // Resumable when the first missing change (from + 1) is still held.
            if from < self.sequence && oldest.is_some_and(|o| o <= from + 1) {
                let missed: Vec<(u64, IpNet)> = self
                    .history
                    .iter()
                    .filter(|e| e.0 > from)
                    .copied()
                    .collect();
                let last: HashMap<IpNet, u64> = missed.iter().map(|&(s, p)| (p, s)).collect();
                let replay = missed
                    .into_iter()
                    .filter(|(s, p)| last.get(p) == Some(s))
                    .map(|(sequence, p)| RouteEvent {
                        sequence,
                        update: current(p),
                    })
                    .collect();
                return RouteWatch {
                    start: RouteWatchStart::Replay(replay),
                    updates,
                };
            }
        }
        RouteWatch {
            start: RouteWatchStart::Snapshot {
                sequence: self.sequence,
                routes: snapshot(),
            },
            updates,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::model::{Origin, Owner, PathSource, RouteKind};

    fn path() -> Path {
        Path {
            next_hop: IpAddr::from([198, 18, 0, 1]),
            as_path: vec![],
            origin: Origin::Igp,
            local_pref: 100,
            med: None,
            communities: vec![],
            large_communities: vec![],
            source: PathSource::Local(Owner::new("t").unwrap_or_else(|e| panic!("{e}"))),
            best: true,
            age_seconds: 0,
            kind: RouteKind::Unspecified,
            stale: false,
        }
    }

    fn prefix(i: u8) -> IpNet {
        format!("100.64.{i}.0/24")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn publish(j: &mut RouteJournal, n: u8) {
        for i in 0..n {
            j.publish(RouteUpdate::BestChanged {
                prefix: prefix(i),
                best: path(),
            });
        }
    }

    fn withdrawn(p: IpNet) -> RouteUpdate {
        RouteUpdate::Withdrawn { prefix: p }
    }

    fn replayed(w: &RouteWatch) -> Option<Vec<u64>> {
        match &w.start {
            RouteWatchStart::Replay(evs) => Some(evs.iter().map(|e| e.sequence).collect()),
            RouteWatchStart::Snapshot { .. } => None,
        }
    }

    #[test]
    fn resume_replays_exactly_the_missed_events() {
        let mut j = RouteJournal::new(4, 8);
        publish(&mut j, 10);
        assert_eq!(j.sequence(), 10);
        // History holds 7..=10: resuming after 6 needs 7 onwards — held.
        assert_eq!(
            replayed(&j.watch(Some(6), Vec::new, withdrawn)),
            Some(vec![7, 8, 9, 10])
        );
        assert_eq!(
            replayed(&j.watch(Some(9), Vec::new, withdrawn)),
            Some(vec![10])
        );
        assert_eq!(
            replayed(&j.watch(Some(10), Vec::new, withdrawn)),
            Some(vec![])
        );
    }

    /// A prefix changed several times since the resume point is replayed
    /// once, at its last change, with its state now.
    #[test]
    fn resume_replays_each_prefix_once_as_it_is_now() {
        let mut j = RouteJournal::new(16, 8);
        publish(&mut j, 3); // 1..=3: prefixes 0, 1, 2
        j.publish(withdrawn(prefix(0))); // 4
        publish(&mut j, 2); // 5, 6: prefixes 0, 1
        let w = j.watch(Some(2), Vec::new, |p| {
            if p == prefix(2) {
                withdrawn(p)
            } else {
                RouteUpdate::BestChanged {
                    prefix: p,
                    best: path(),
                }
            }
        });
        let RouteWatchStart::Replay(evs) = w.start else {
            panic!("history covers 3..=6: a replay expected");
        };
        let got: Vec<(u64, IpNet, bool)> = evs
            .iter()
            .map(|e| match &e.update {
                RouteUpdate::BestChanged { prefix, .. } => (e.sequence, *prefix, true),
                RouteUpdate::Withdrawn { prefix } => (e.sequence, *prefix, false),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (3, prefix(2), false),
                (5, prefix(0), true),
                (6, prefix(1), true)
            ]
        );
    }

    /// Without live watchers nothing is built for them.
    #[test]
    fn unwatched_changes_are_not_built() {
        let mut j = RouteJournal::new(4, 4);
        let built = std::cell::Cell::new(0);
        j.publish_with(prefix(1), || {
            built.set(built.get() + 1);
            withdrawn(prefix(1))
        });
        assert_eq!(built.get(), 0);
        let mut w = j.watch(None, Vec::new, withdrawn);
        j.publish_with(prefix(1), || {
            built.set(built.get() + 1);
            withdrawn(prefix(1))
        });
        assert_eq!(built.get(), 1);
        assert_eq!(w.updates.try_recv().map(|e| e.sequence).ok(), Some(2));
    }

    #[test]
    fn too_old_or_future_sequence_takes_a_snapshot() {
        let mut j = RouteJournal::new(4, 8);
        publish(&mut j, 10);
        // 5 would need event 6, which is gone.
        assert_eq!(replayed(&j.watch(Some(5), Vec::new, withdrawn)), None);
        // A sequence from before a daemon restart (ahead of ours).
        assert_eq!(replayed(&j.watch(Some(99), Vec::new, withdrawn)), None);
        let w = j.watch(None, || vec![(prefix(0), path())], withdrawn);
        match w.start {
            RouteWatchStart::Snapshot { sequence, routes } => {
                assert_eq!(sequence, 10);
                assert_eq!(routes.len(), 1);
            }
            RouteWatchStart::Replay(_) => panic!("no resume asked: snapshot expected"),
        }
    }

    #[test]
    fn live_feed_is_bounded_and_reports_lag() {
        let mut j = RouteJournal::new(1, 4);
        let mut w = j.watch(None, Vec::new, withdrawn);
        publish(&mut j, 10);
        match w.updates.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(w.updates.try_recv().map(|e| e.sequence).ok(), Some(7));
    }
}
