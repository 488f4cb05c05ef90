//! Matching kernel notifications to changes: a change is done when every
//! node expected to see it has reported the route added (or deleted) in its
//! kernel. A prefix has at most one change in flight (the load never picks a
//! busy prefix), so a notification maps to at most one change.
//!
//! A change counts once it holds for good: a notification at a node that
//! undoes a finished change there (a removed route coming back because the
//! second reflector's copy arrived late, a route lost in a fault) reopens
//! the change for that node, and its time is the node's last report.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::load::{Change, Load};
use crate::bench::monitor::RouteSeen;

/// One change on its way.
#[derive(Debug, Clone)]
pub struct Record {
    pub node: usize,
    pub prefix: IpNet,
    pub add: bool,
    /// When the driver's schedule said to make it.
    pub scheduled: Instant,
    /// When the node's worker began the call (or configuration reload).
    pub started: Option<Instant>,
    /// When the call returned.
    pub returned: Option<Instant>,
    /// The call failed (the change may never happen).
    pub failed: bool,
    /// Nodes still to report it.
    pending: Vec<usize>,
    /// The latest report among the nodes that did.
    pub last_seen: Option<Instant>,
}

impl Record {
    /// Every expected node reported it.
    pub fn done(&self) -> bool {
        self.pending.is_empty()
    }

    /// From the call returning to the route in (or gone from) every other
    /// node's kernel; zero when a kernel was faster than the call's answer.
    pub fn latency(&self) -> Option<Duration> {
        if !self.done() {
            return None;
        }
        let back = self.returned?;
        Some(match self.last_seen {
            Some(seen) => seen.saturating_duration_since(back),
            None => Duration::ZERO,
        })
    }

    /// From the call starting to every other node's kernel: what the
    /// operator waits for in all (the call's own time included).
    pub fn from_start(&self) -> Option<Duration> {
        if !self.done() {
            return None;
        }
        let start = self.started?;
        Some(match self.last_seen {
            Some(seen) => seen.saturating_duration_since(start),
            None => Duration::ZERO,
        })
    }

    /// From the scheduled time to the call starting: how far the driver (or
    /// a node's queue) lagged behind the schedule.
    pub fn lag(&self) -> Option<Duration> {
        Some(self.started?.saturating_duration_since(self.scheduled))
    }
}

/// Counts of notifications no change explains, per node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strays {
    /// A route deleted that the node should hold.
    pub deleted: u64,
    /// A route added that the node should not hold.
    pub added: u64,
    /// A notification against the direction of the prefix's change in
    /// flight: a route rewritten (RTM_NEWROUTE) on its way out, or removed
    /// on its way in.
    pub interim: u64,
    /// Strays that reopened a finished change at this node.
    pub reopened: u64,
}

/// Every change of a run and the state of its reports.
#[derive(Debug, Default)]
pub struct Tracker {
    pub records: Vec<Record>,
    in_flight: HashMap<IpNet, usize>,
    /// Changes whose call has not started, by id: their scheduled time.
    unstarted: BTreeMap<usize, Instant>,
    /// Calls not returned yet.
    outstanding: usize,
    /// Per node: notifications no change explains.
    pub strays: Vec<Strays>,
    /// Per node: every deletion notification.
    pub deletions: Vec<u64>,
    /// The latest change of each prefix.
    last: HashMap<IpNet, usize>,
    /// The first stray notifications (node, prefix, added), for logs.
    pub stray_examples: Vec<(usize, IpNet, bool)>,
}

/// How many stray notifications [`Tracker::stray_examples`] keeps.
const STRAY_EXAMPLES: usize = 20;

impl Tracker {
    pub fn new(nodes: usize) -> Tracker {
        Tracker {
            strays: vec![Strays::default(); nodes],
            deletions: vec![0; nodes],
            ..Tracker::default()
        }
    }

    /// Whether `prefix` has a change in flight.
    pub fn busy(&self, prefix: &IpNet) -> bool {
        self.in_flight.contains_key(prefix)
    }

    /// Changes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Registers `c` (already applied to the load) before it is sent; the
    /// nodes in `expect` must report it. Returns its id.
    pub fn begin(&mut self, c: &Change, scheduled: Instant, expect: Vec<usize>) -> usize {
        let id = self.records.len();
        let prefix = IpNet::V4(c.prefix);
        let expect: Vec<usize> = expect.into_iter().filter(|&j| j != c.node).collect();
        if !expect.is_empty() {
            self.in_flight.insert(prefix, id);
        }
        self.last.insert(prefix, id);
        self.records.push(Record {
            node: c.node,
            prefix,
            add: c.add,
            scheduled,
            started: None,
            returned: None,
            failed: false,
            pending: expect,
            last_seen: None,
        });
        self.unstarted.insert(id, scheduled);
        self.outstanding += 1;
        id
    }

    pub fn started(&mut self, id: usize, at: Instant) {
        if let Some(r) = self.records.get_mut(id) {
            r.started = Some(at);
        }
        self.unstarted.remove(&id);
    }

    /// The call for change `id` returned (`ok` false: it failed).
    pub fn returned(&mut self, id: usize, at: Instant, ok: bool) {
        if let Some(r) = self.records.get_mut(id)
            && r.returned.is_none()
        {
            r.returned = Some(at);
            r.failed = !ok;
            self.outstanding -= 1;
        }
    }

    /// When the oldest change whose call has not started was scheduled.
    pub fn oldest_unstarted(&self) -> Option<Instant> {
        self.unstarted.first_key_value().map(|(_, &t)| t)
    }

    /// Calls not returned yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// A notification from node `j`'s kernel; `load` says what `j` should
    /// hold now.
    pub fn seen(&mut self, j: usize, ev: &RouteSeen, load: &Load) {
        if !ev.added
            && let Some(d) = self.deletions.get_mut(j)
        {
            *d += 1;
        }
        if let Some(&id) = self.in_flight.get(&ev.prefix)
            && let Some(r) = self.records.get_mut(id)
            && let Some(pos) = r.pending.iter().position(|&n| n == j)
        {
            if r.add != ev.added {
                if let Some(s) = self.strays.get_mut(j) {
                    s.interim += 1;
                }
                return;
            }
            r.pending.swap_remove(pos);
            r.last_seen = Some(r.last_seen.map_or(ev.at, |t| t.max(ev.at)));
            if r.pending.is_empty() {
                self.in_flight.remove(&ev.prefix);
            }
            return;
        }
        // The origin's own kernel, a replaced route, a re-sync: fine as long
        // as it agrees with what the node should hold.
        if ev.added != load.wanted(j, &ev.prefix)
            && let Some(s) = self.strays.get_mut(j)
        {
            if ev.added {
                s.added += 1;
            } else {
                s.deleted += 1;
            }
            if self.stray_examples.len() < STRAY_EXAMPLES {
                self.stray_examples.push((j, ev.prefix, ev.added));
            }
            self.reopen(j, ev.prefix, ev.added);
        }
    }

    /// Node `j` reported `prefix` added (or deleted) against its latest
    /// change: that change is not done at `j` until `j` reports it again.
    fn reopen(&mut self, j: usize, prefix: IpNet, added: bool) {
        let Some(&id) = self.last.get(&prefix) else {
            return;
        };
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        if r.add == added || r.node == j || r.pending.contains(&j) {
            return;
        }
        r.pending.push(j);
        self.in_flight.insert(prefix, id);
        if let Some(s) = self.strays.get_mut(j) {
            s.reopened += 1;
        }
    }

    /// Stops expecting node `j` in every change in flight (it is down; its
    /// kernel is checked against the desired state at the end instead).
    pub fn excuse(&mut self, j: usize) {
        let mut finished = vec![];
        for (p, &id) in &self.in_flight {
            if let Some(r) = self.records.get_mut(id) {
                r.pending.retain(|&n| n != j);
                if r.pending.is_empty() {
                    finished.push(*p);
                }
            }
        }
        for p in finished {
            self.in_flight.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(p: &str, added: bool, at: Instant) -> RouteSeen {
        RouteSeen {
            prefix: p.parse().unwrap(),
            added,
            at,
        }
    }

    #[test]
    fn a_change_is_done_when_every_other_node_saw_it() {
        let mut load = Load::new(3, 1).unwrap();
        let c = load.next(|n| n == 0, |_| false).unwrap();
        let mut t = Tracker::new(3);
        let t0 = Instant::now();
        let id = t.begin(&c, t0, vec![0, 1, 2]);
        assert!(t.busy(&IpNet::V4(c.prefix)));
        t.started(id, t0);
        t.returned(id, t0 + Duration::from_millis(2), true);
        let p = c.prefix.to_string();
        t.seen(1, &ev(&p, c.add, t0 + Duration::from_millis(5)), &load);
        assert!(!t.records[id].done());
        assert_eq!(t.records[id].latency(), None);
        // The wrong direction does not count; it is noted as interim.
        t.seen(2, &ev(&p, !c.add, t0 + Duration::from_millis(6)), &load);
        assert!(!t.records[id].done());
        assert_eq!(t.strays[2].interim, 1);
        t.seen(2, &ev(&p, c.add, t0 + Duration::from_millis(9)), &load);
        assert!(t.records[id].done());
        assert_eq!(t.records[id].latency(), Some(Duration::from_millis(7)));
        assert_eq!(t.records[id].from_start(), Some(Duration::from_millis(9)));
        assert!(!t.busy(&IpNet::V4(c.prefix)));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn notifications_against_the_desired_state_are_strays() {
        let load = Load::new(2, 1).unwrap();
        let mut t = Tracker::new(2);
        let now = Instant::now();
        // Node 1 losing node 0's permanent block is a stray deletion.
        t.seen(1, &ev("100.64.0.0/26", false, now), &load);
        // Node 0 re-adding its own block's blackhole agrees with the state.
        t.seen(0, &ev("100.64.0.0/26", true, now), &load);
        // A route nobody holds appearing is a stray addition.
        t.seen(0, &ev("100.65.0.1/32", true, now), &load);
        assert_eq!(
            t.strays[1],
            Strays {
                deleted: 1,
                added: 0,
                interim: 0,
                reopened: 0
            }
        );
        assert_eq!(
            t.strays[0],
            Strays {
                deleted: 0,
                added: 1,
                interim: 0,
                reopened: 0
            }
        );
        assert_eq!(t.deletions, vec![0, 1]);
    }

    #[test]
    fn a_removed_route_coming_back_reopens_its_change() {
        let mut load = Load::new(2, 5).unwrap();
        let mut t = Tracker::new(2);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // An addition at node 0, seen by node 1; then its removal.
        let add = load.next(|n| n == 0, |_| false).unwrap();
        let a = t.begin(&add, t0, vec![0, 1]);
        t.returned(a, t0, true);
        let p = add.prefix.to_string();
        t.seen(1, &ev(&p, true, ms(1)), &load);
        let mut del = load.next(|n| n == 0, |_| false).unwrap();
        while del.add || del.prefix != add.prefix {
            // Drain other moves until the load removes our prefix.
            t.begin(&del, t0, vec![]);
            del = load.next(|n| n == 0, |_| false).unwrap();
        }
        let d = t.begin(&del, ms(2), vec![0, 1]);
        t.returned(d, ms(2), true);
        t.seen(1, &ev(&p, false, ms(3)), &load);
        assert_eq!(t.records[d].latency(), Some(Duration::from_millis(1)));
        // The other reflector's late copy brings it back: not done.
        t.seen(1, &ev(&p, true, ms(5)), &load);
        assert!(!t.records[d].done());
        assert!(t.busy(&add.prefix.into()));
        assert_eq!(t.strays[1].reopened, 1);
        t.seen(1, &ev(&p, false, ms(9)), &load);
        assert_eq!(t.records[d].latency(), Some(Duration::from_millis(7)));
        assert!(!t.busy(&add.prefix.into()));
    }

    #[test]
    fn an_excused_node_no_longer_holds_changes_back() {
        let mut load = Load::new(3, 2).unwrap();
        let c = load.next(|n| n == 0, |_| false).unwrap();
        let mut t = Tracker::new(3);
        let now = Instant::now();
        let id = t.begin(&c, now, vec![0, 1, 2]);
        t.seen(1, &ev(&c.prefix.to_string(), c.add, now), &load);
        t.excuse(2);
        assert!(t.records[id].done());
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn lag_and_unstarted_calls() {
        let mut load = Load::new(2, 2).unwrap();
        let mut t = Tracker::new(2);
        let t0 = Instant::now();
        let a = t.begin(&load.next(|_| true, |_| false).unwrap(), t0, vec![0, 1]);
        let later = t0 + Duration::from_millis(3);
        let b = t.begin(&load.next(|_| true, |_| false).unwrap(), later, vec![0, 1]);
        assert_eq!(t.oldest_unstarted(), Some(t0));
        t.started(a, t0 + Duration::from_millis(10));
        assert_eq!(t.records[a].lag(), Some(Duration::from_millis(10)));
        assert_eq!(t.oldest_unstarted(), Some(later));
        assert_eq!(t.outstanding(), 2);
        t.returned(a, later, true);
        t.returned(b, later, false);
        t.returned(b, later, false);
        assert_eq!(t.outstanding(), 0);
        assert!(t.records[b].failed);
    }
}
