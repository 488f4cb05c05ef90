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
            history: VecDeque::with_capacity(history.clamp(1, 65_536)),
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
