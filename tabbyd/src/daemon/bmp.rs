//! The core's BMP side: which stations are configured, the events each
//! session and RIB change becomes, and the snapshot a station starts from.
//! Every hook returns at once when no station is taking events.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use ipnet::IpNet;
use tabby_bgp::Family;
use tabby_bgp::fsm::DownReason;
use tabby_bgp::message::Update;
use tabby_bgp::negotiated::Negotiated;
use tabby_bgp_driver::PeerCommand;
use tabby_bmp::message::{StatValue, stat};
use tabby_bmp::{PeerDownReason, Stat, Timestamp, build};
use tabby_rib::{ApplyOutcome, BestChange, PeerId, RejectReason};
use tracing::debug;

use super::Daemon;
use crate::bmp::{
    BmpEvent, LocalInfo, PeerInfo, PeerSnapshot, RouteChange, Snapshot, StationRunner,
};
use tabby_topology as topo;

/// Per-session counts of what the RIB refused (BMP statistics, RFC 7854
/// §4.8), from the session's Peer Up on.
#[derive(Debug, Clone, Default)]
pub(super) struct SessionCounts {
    rejected_by_policy: u32,
    cluster_list_loop: u32,
    as_path_loop: u32,
    originator_id_loop: u32,
    updates_treated_as_withdraw: u32,
    prefixes_treated_as_withdraw: u32,
}

impl SessionCounts {
    pub(super) fn count(&mut self, out: &ApplyOutcome, treat_as_withdraw: bool) {
        let add = |c: &mut u32, n: usize| *c = c.saturating_add(n.try_into().unwrap_or(u32::MAX));
        if treat_as_withdraw {
            add(&mut self.updates_treated_as_withdraw, 1);
        }
        for (reason, n) in &out.rejected {
            let c = match reason {
                RejectReason::ImportPolicy => &mut self.rejected_by_policy,
                RejectReason::ClusterLoop => &mut self.cluster_list_loop,
                RejectReason::AsLoop => &mut self.as_path_loop,
                RejectReason::OriginatorLoop => &mut self.originator_id_loop,
                RejectReason::TreatAsWithdraw => &mut self.prefixes_treated_as_withdraw,
                _ => continue,
            };
            add(c, *n);
        }
    }
}

/// RFC 4271 §8.1.2 Event 2, ManualStop: why we close a session ourselves
/// without a NOTIFICATION (BMP Peer Down reason 2 carries it).
const FSM_MANUAL_STOP: u16 = 2;

impl Daemon {
    /// Station tasks are started by `runner` (the daemon's tokio tasks).
    pub fn set_bmp_runner(&mut self, runner: StationRunner) {
        self.bmp.set_runner(runner);
    }

    /// The stations given by flag (`--bmp-station`).
    pub fn set_bmp_flag_stations(&mut self, stations: BTreeSet<SocketAddr>) {
        self.bmp_flag_stations = stations;
        self.apply_bmp_stations();
    }

    /// The stations from the datastore.
    pub(super) fn set_bmp_datastore_stations(&mut self, stations: BTreeSet<SocketAddr>) {
        if stations != self.bmp_datastore_stations {
            self.bmp_datastore_stations = stations;
            self.apply_bmp_stations();
        }
    }

    fn apply_bmp_stations(&mut self) {
        let all: BTreeSet<SocketAddr> = self
            .bmp_flag_stations
            .union(&self.bmp_datastore_stations)
            .copied()
            .collect();
        self.bmp.set_stations(&all);
        self.keep_pre_policy(self.bmp.configured());
        if self.bmp_stats_due.is_none()
            && self.bmp.configured()
            && !self.bmp_stats_interval.is_zero()
        {
            self.bmp_stats_due = Some(self.clock.started);
        }
    }

    /// While a station is configured every peer's pre-policy Adj-RIB-In is
    /// kept (a station that connects later gets it in its snapshot); a
    /// session already up is asked to send its routes again.
    fn keep_pre_policy(&mut self, keep: bool) {
        let Some(rib) = self.rib.as_mut() else {
            return;
        };
        for slot in self.peers.values() {
            match rib.set_keep_pre_policy(slot.id, keep) {
                Ok(true) => {
                    for f in &slot.families {
                        slot.session.command(PeerCommand::RouteRefresh(*f));
                    }
                }
                Ok(false) => {}
                Err(e) => debug!(peer = %slot.id, error = %e, "pre-policy table"),
            }
        }
    }

    /// How often Statistics Reports go out (zero: never).
    pub fn set_bmp_stats_interval(&mut self, every: Duration) {
        self.bmp_stats_interval = every;
    }

    /// Statistics Reports of every established session, when due.
    pub(super) fn bmp_timer(&mut self, now: Instant) {
        if self.bmp_stats_interval.is_zero() || !self.bmp.configured() {
            self.bmp_stats_due = None;
            return;
        }
        match self.bmp_stats_due {
            Some(due) if due > now => return,
            Some(_) => self.bmp_stats(now),
            None => {}
        }
        self.bmp_stats_due = Some(now + self.bmp_stats_interval);
    }

    fn bmp_stats(&self, now: Instant) {
        let (Some(rib), true) = (self.rib.as_ref(), self.bmp.any_live()) else {
            return;
        };
        let at = self.bmp_time(now);
        for slot in self.peers.values() {
            let Some(peer) = slot.bmp_peer.clone() else {
                continue;
            };
            let c = &slot.bmp_counts;
            let mut stats = vec![
                Stat {
                    kind: stat::REJECTED_BY_POLICY,
                    value: StatValue::Counter(c.rejected_by_policy),
                },
                Stat {
                    kind: stat::CLUSTER_LIST_LOOP,
                    value: StatValue::Counter(c.cluster_list_loop),
                },
                Stat {
                    kind: stat::AS_PATH_LOOP,
                    value: StatValue::Counter(c.as_path_loop),
                },
                Stat {
                    kind: stat::ORIGINATOR_ID_LOOP,
                    value: StatValue::Counter(c.originator_id_loop),
                },
                Stat {
                    kind: stat::UPDATES_TREATED_AS_WITHDRAW,
                    value: StatValue::Counter(c.updates_treated_as_withdraw),
                },
                Stat {
                    kind: stat::PREFIXES_TREATED_AS_WITHDRAW,
                    value: StatValue::Counter(c.prefixes_treated_as_withdraw),
                },
            ];
            let mut total = 0u64;
            for f in &slot.families {
                let n = rib.prefix_count(slot.id, *f) as u64;
                total += n;
                stats.push(Stat {
                    kind: stat::ADJ_RIB_IN_ROUTES_PER_FAMILY,
                    value: StatValue::FamilyGauge(*f, n),
                });
            }
            stats.push(Stat {
                kind: stat::ADJ_RIB_IN_ROUTES,
                value: StatValue::Gauge(total),
            });
            self.bmp.emit(|| BmpEvent::Stats { peer, stats, at });
        }
    }

    /// Stops every station: each sends Termination (clean shutdown).
    pub fn stop_bmp(&mut self) {
        self.bmp.stop_all();
    }

    fn bmp_time(&self, now: Instant) -> Timestamp {
        Timestamp::from_unix(
            self.clock
                .at(now)
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    fn bmp_local(&self) -> Option<Arc<LocalInfo>> {
        let s = self.state.as_ref()?;
        Some(Arc::new(LocalInfo {
            asn: s.local_as,
            router_id: s.router_id,
            ipv6: s.ipv6.map(|n| n.addr()),
        }))
    }

    /// Station `id` connected: from now on it gets events, starting from
    /// this snapshot (taken under the same lock, so nothing falls between).
    pub fn bmp_snapshot(&mut self, id: u64, now: Instant) -> Option<Snapshot> {
        self.bmp.start_live(id)?;
        let at = self.bmp_time(now);
        let rib = self.rib.as_ref();
        let peers = self
            .peers
            .values()
            .filter_map(|slot| {
                let info = slot.bmp_peer.clone()?;
                Some(PeerSnapshot {
                    info,
                    pre: rib.and_then(|r| r.adj_rib_in_pre(slot.id)),
                    post: rib.map(|r| r.adj_rib_in(slot.id)).unwrap_or_default(),
                    families: slot.families.iter().copied().collect(),
                })
            })
            .collect();
        let loc_rib = rib
            .map(|r| {
                r.best_routes()
                    .into_iter()
                    .map(|(p, b)| (p, b.attributes))
                    .collect()
            })
            .unwrap_or_default();
        Some(Snapshot {
            local: self.bmp_local(),
            peers,
            loc_rib,
            at,
        })
    }

    pub(super) fn bmp_session_up(&mut self, key: topo::PeerKey, neg: &Negotiated, now: Instant) {
        let up_at = self.bmp_time(now);
        let local = neg.local_addr.unwrap_or_else(|| {
            SocketAddr::new(
                match key.address {
                    IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                },
                0,
            )
        });
        // An IPv4-mapped local address (a dual-stack socket) as IPv4, the
        // family of the peer's address.
        let local = match (local.ip(), key.address) {
            (IpAddr::V6(v6), IpAddr::V4(_)) => SocketAddr::new(
                v6.to_ipv4_mapped().map_or(local.ip(), IpAddr::V4),
                local.port(),
            ),
            _ => local,
        };
        let info = Arc::new(PeerInfo {
            address: key.address,
            asn: neg.peer_asn.0,
            bgp_id: neg.peer_id,
            four_octet_as: neg.four_octet_as,
            add_path: neg.add_path_rx.clone(),
            local,
            remote_port: neg.remote_addr.map_or(key.port, |a| a.port()),
            sent_open: neg.local_open.clone(),
            received_open: neg.peer_open.clone(),
            up_at,
        });
        if let Some(slot) = self.peers.get_mut(&key) {
            slot.bmp_peer = Some(info.clone());
            slot.bmp_counts = SessionCounts::default();
        }
        self.bmp.emit(|| BmpEvent::PeerUp(info));
    }

    /// After the RIB applied `update`: the UPDATE as received, and what the
    /// peer's post-policy routes became.
    pub(super) fn bmp_received(
        &mut self,
        key: topo::PeerKey,
        id: PeerId,
        update: Box<Update>,
        now: Instant,
    ) {
        if !self.bmp.wants_event() {
            return;
        }
        let Some(peer) = self.peers.get(&key).and_then(|s| s.bmp_peer.clone()) else {
            return;
        };
        let at = self.bmp_time(now);
        let rib = self.rib.as_ref();
        let routes: Vec<RouteChange> = update
            .withdrawn
            .iter()
            .chain(&update.nlri)
            .chain(update.mp_reach.iter().flat_map(|m| &m.nlri))
            .chain(update.mp_unreach.iter().flat_map(|m| &m.withdrawn))
            .map(|n| {
                let path_id = n.path_id.unwrap_or(0);
                RouteChange {
                    prefix: n.prefix.trunc(),
                    path_id,
                    attrs: rib.and_then(|r| r.adj_rib_in_route(id, &n.prefix, path_id)),
                }
            })
            .collect();
        let update: Arc<Update> = Arc::from(update);
        let p = peer.clone();
        self.bmp.emit(|| BmpEvent::Received {
            peer: p,
            update,
            at,
        });
        if !routes.is_empty() {
            self.bmp.emit(|| BmpEvent::PostPolicy { peer, routes, at });
        }
    }

    pub(super) fn bmp_end_of_rib(&mut self, key: topo::PeerKey, family: Family, now: Instant) {
        if !self.bmp.wants_event() {
            return;
        }
        let Some(peer) = self.peers.get(&key).and_then(|s| s.bmp_peer.clone()) else {
            return;
        };
        let at = self.bmp_time(now);
        self.bmp.emit(|| BmpEvent::EndOfRib { peer, family, at });
    }

    pub(super) fn bmp_session_down(
        &mut self,
        key: topo::PeerKey,
        reason: &DownReason,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&key).and_then(|s| s.bmp_peer.take()) else {
            return;
        };
        let reason = match reason {
            DownReason::NotificationSent(n) => {
                PeerDownReason::LocalNotification(build::notification_pdu(n))
            }
            DownReason::NotificationReceived(n) => {
                PeerDownReason::RemoteNotification(build::notification_pdu(n))
            }
            DownReason::ConnectionLost => PeerDownReason::RemoteNoData,
            DownReason::AdminStop(_) | DownReason::AdminReset { .. } | DownReason::Detached => {
                PeerDownReason::LocalNoNotification(FSM_MANUAL_STOP)
            }
            DownReason::PeerReconnected => PeerDownReason::LocalNoNotification(0),
        };
        self.bmp_peer_down(peer, reason, now);
    }

    /// A peer removed from the configuration while its session was up.
    pub(super) fn bmp_deconfigured(&mut self, peer: Option<Arc<PeerInfo>>, now: Instant) {
        if let Some(peer) = peer {
            self.bmp_peer_down(peer, PeerDownReason::Deconfigured, now);
        }
    }

    fn bmp_peer_down(&mut self, peer: Arc<PeerInfo>, reason: PeerDownReason, now: Instant) {
        let at = self.bmp_time(now);
        self.bmp.emit(|| BmpEvent::PeerDown { peer, reason, at });
    }

    /// Best routes changed: the Loc-RIB's Route Monitoring.
    pub(super) fn bmp_loc_rib(&self, changes: &[BestChange], changed: &[IpNet], now: Instant) {
        if (changes.is_empty() && changed.is_empty()) || !self.bmp.wants_event() {
            return;
        }
        let Some(local) = self.bmp_local() else {
            return;
        };
        let rib = self.rib.as_ref();
        let routes: Vec<RouteChange> = changes
            .iter()
            .map(|c| RouteChange {
                prefix: c.prefix,
                path_id: 0,
                attrs: c.best.as_ref().map(|b| b.attributes.clone()),
            })
            .chain(changed.iter().map(|p| RouteChange {
                prefix: *p,
                path_id: 0,
                attrs: rib.and_then(|r| r.best(p)).map(|b| b.attributes),
            }))
            .collect();
        let at = self.bmp_time(now);
        self.bmp.emit(|| BmpEvent::LocRib { local, routes, at });
    }
}
