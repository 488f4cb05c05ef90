//! Sequence numbers, a bounded history and a live feed of best-route
//! changes: the bookkeeping behind [`crate::Core::watch_routes`], for the
//! daemon to own next to its Loc-RIB.

use std::collections::VecDeque;

use ipnet::IpNet;
use tokio::sync::broadcast;

use crate::model::{Path, RouteEvent, RouteUpdate, RouteWatch, RouteWatchStart};

/// Numbers Loc-RIB changes, keeps the last `history` of them for resuming
/// watchers, and broadcasts each to live watchers through a channel of
/// `live_buffer` slots (a watcher more than that far behind is told to
/// resync). Memory is bounded by `history + live_buffer` events.
#[derive(Debug)]
pub struct RouteJournal {
    sequence: u64,
    history: VecDeque<RouteEvent>,
    history_cap: usize,
    live: broadcast::Sender<RouteEvent>,
}

impl RouteJournal {
    /// A journal at sequence 0. `history` and `live_buffer` are clamped to at
    /// least 1.
    pub fn new(history: usize, live_buffer: usize) -> RouteJournal {
        let (live, _) = broadcast::channel(live_buffer.max(1));
        RouteJournal {
            sequence: 0,
            // Grown on demand: most daemons never fill it.
            history: VecDeque::new(),
            history_cap: history.max(1),
            live,
        }
    }

    /// The sequence of the last published change (0 before any).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Records a change and sends it to live watchers; returns its sequence.
    pub fn publish(&mut self, update: RouteUpdate) -> u64 {
        self.sequence += 1;
        let ev = RouteEvent {
            sequence: self.sequence,
            update,
        };
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(ev.clone());
        // No receivers is fine: nobody watches.
        let _ = self.live.send(ev);
        self.sequence
    }

    /// Starts a watch. Call it where the Loc-RIB cannot change in between
    /// (inside the daemon's event loop): `snapshot` must return every best
    /// route as of [`RouteJournal::sequence`]. With `resume_from = Some(s)`
    /// and every event after `s` still in the history, no snapshot is taken.
    pub fn watch<F>(&self, resume_from: Option<u64>, snapshot: F) -> RouteWatch
    where
        F: FnOnce() -> Vec<(IpNet, Path)>,
    {
        let updates = self.live.subscribe();
        if let Some(from) = resume_from {
            if from == self.sequence {
                return RouteWatch {
                    start: RouteWatchStart::Replay(Vec::new()),
                    updates,
                };
            }
            let oldest = self.history.front().map(|e| e.sequence);
            // Resumable when the first missing event (from + 1) is still held.
            if from < self.sequence && oldest.is_some_and(|o| o <= from + 1) {
                let replay = self
                    .history
                    .iter()
                    .filter(|e| e.sequence > from)
                    .cloned()
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

    fn publish(j: &mut RouteJournal, n: u8) {
        for i in 0..n {
            let prefix: IpNet = format!("100.64.{i}.0/24")
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
            j.publish(RouteUpdate::BestChanged {
                prefix,
                best: path(),
            });
        }
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
            replayed(&j.watch(Some(6), Vec::new)),
            Some(vec![7, 8, 9, 10])
        );
        assert_eq!(replayed(&j.watch(Some(9), Vec::new)), Some(vec![10]));
        assert_eq!(replayed(&j.watch(Some(10), Vec::new)), Some(vec![]));
    }

    #[test]
    fn too_old_or_future_sequence_takes_a_snapshot() {
        let mut j = RouteJournal::new(4, 8);
        publish(&mut j, 10);
        // 5 would need event 6, which is gone.
        assert_eq!(replayed(&j.watch(Some(5), Vec::new)), None);
        // A sequence from before a daemon restart (ahead of ours).
        assert_eq!(replayed(&j.watch(Some(99), Vec::new)), None);
        let w = j.watch(None, || {
            vec![(
                "100.64.0.0/24".parse().unwrap_or_else(|e| panic!("{e}")),
                path(),
            )]
        });
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
        let mut w = j.watch(None, Vec::new);
        publish(&mut j, 10);
        match w.updates.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 6),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(w.updates.try_recv().map(|e| e.sequence).ok(), Some(7));
    }
}
