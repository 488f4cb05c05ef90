//! The API façade: what `core_api.rs` calls, and the conversions between
//! the daemon's state and the API's model.

use super::*;

pub(super) fn api_family(f: Family) -> Option<am::Family> {
    match f {
        Family::IPV4_UNICAST => Some(am::Family::Ipv4),
        Family::IPV6_UNICAST => Some(am::Family::Ipv6),
        _ => None,
    }
}

pub(super) fn api_state(s: State) -> am::SessionState {
    match s {
        State::Idle => am::SessionState::Idle,
        State::Connect => am::SessionState::Connect,
        State::Active => am::SessionState::Active,
        State::OpenSent => am::SessionState::OpenSent,
        State::OpenConfirm => am::SessionState::OpenConfirm,
        State::Established => am::SessionState::Established,
    }
}

pub(super) fn local_kind(k: am::RouteKind) -> LocalKind {
    match k {
        am::RouteKind::PodBlock => LocalKind::PodBlock,
        // A route announced without a kind (e.g. `gobgp global rib add`) is
        // advertised only; the kernel gets no blackhole for it.
        am::RouteKind::Unspecified => LocalKind::Static,
        am::RouteKind::Host => LocalKind::HostRoute,
        am::RouteKind::ServiceIp => LocalKind::Service,
    }
}

pub(super) fn api_kind(k: LocalKind) -> am::RouteKind {
    match k {
        LocalKind::PodBlock => am::RouteKind::PodBlock,
        LocalKind::HostRoute => am::RouteKind::Host,
        LocalKind::Service => am::RouteKind::ServiceIp,
        LocalKind::Static => am::RouteKind::Unspecified,
    }
}

pub(super) fn rib_local_route(r: &am::LocalRoute) -> LocalRoute {
    LocalRoute {
        kind: local_kind(r.kind),
        communities: r
            .communities
            .iter()
            .map(|c| tabby_bgp::attr::Community(*c))
            .collect(),
        large_communities: r
            .large_communities
            .iter()
            .map(|l| tabby_bgp::attr::LargeCommunity {
                global_admin: l.global_admin,
                local_data_1: l.local_data1,
                local_data_2: l.local_data2,
            })
            .collect(),
        next_hop: r.next_hop,
        // An explicit LOCAL_PREF (GoBGP's `global rib add ... local-pref`),
        // else Calico's priority, which travels as LOCAL_PREF; `None`: the
        // normal priority.
        local_pref: r
            .local_pref
            .map(tabby_bgp::attr::LocalPref::new)
            .or(r.priority.map(tabby_rib::policy::priority_to_local_pref)),
        med: r.med.map(tabby_bgp::attr::Med::new),
    }
}

/// The API's view of one candidate path of an explanation.
pub(super) fn candidate_path(c: &tabby_rib::CandidateExplain) -> am::Path {
    let b = BestRoute {
        next_hops: Vec::new(),
        local: matches!(c.source, RouteSource::Local { .. }),
        source: c.source.clone(),
        attributes: c.attributes.clone(),
        stale: c.stale,
    };
    api_path(&b, c.best)
}

/// A best-route change as the API reports it.
pub(super) fn route_update(prefix: IpNet, best: Option<&BestRoute>) -> am::RouteUpdate {
    match best {
        Some(b) => am::RouteUpdate::BestChanged {
            prefix,
            best: api_path(b, true),
        },
        None => am::RouteUpdate::Withdrawn { prefix },
    }
}

/// The API's view of one path.
pub(super) fn api_path(best: &BestRoute, is_best: bool) -> am::Path {
    let a = &best.attributes.attrs;
    let next_hop = best
        .next_hops
        .first()
        .map(|h| h.addr)
        .unwrap_or(best.attributes.next_hop.addr);
    let (source, kind) = match &best.source {
        // Owners in the RIB are TOPOLOGY_OWNER or names the API validated;
        // any other is still a local route's, shown under a mended name.
        RouteSource::Local { owner, kind } => (
            am::PathSource::Local(am::Owner::lossy(owner)),
            api_kind(*kind),
        ),
        RouteSource::Peer { address, .. } => {
            (am::PathSource::Peer(*address), am::RouteKind::Unspecified)
        }
    };
    am::Path {
        next_hop,
        as_path: a.as_path.iter().map(|x| x.0).collect(),
        origin: match a.origin {
            Some(tabby_bgp::attr::Origin::Egp) => am::Origin::Egp,
            Some(tabby_bgp::attr::Origin::Incomplete) => am::Origin::Incomplete,
            _ => am::Origin::Igp,
        },
        local_pref: a.local_pref.map_or(100, |lp| lp.get()),
        med: a.med.map(|m| m.get()),
        communities: a.communities.iter().map(|c| c.0).collect(),
        large_communities: a
            .large_communities
            .iter()
            .map(|l| am::LargeCommunity {
                global_admin: l.global_admin,
                local_data1: l.local_data_1,
                local_data2: l.local_data_2,
            })
            .collect(),
        source,
        best: is_best,
        age_seconds: 0,
        kind,
        stale: best.stale,
    }
}

impl Daemon {
    /// The API's view of a peer: its settings as the API names them, every
    /// session setting in force, and its session as tracked.
    pub(super) fn status_of(&self, slot: &PeerSlot, now: Instant) -> am::PeerStatus {
        let mut s = self.brief_status_of(slot, now);
        s.settings = self.settings_of(slot);
        s
    }

    /// The same without `settings`, which builds the peer's policies: for
    /// the status summaries written periodically (CalicoNodeStatus).
    pub(super) fn brief_status_of(&self, slot: &PeerSlot, now: Instant) -> am::PeerStatus {
        let t = &slot.track;
        let mut s = am::PeerStatus::idle(self.config_of(slot));
        s.state = api_state(t.state);
        s.enabled = t.enabled;
        s.state_since_unix_seconds = self.clock.unix(t.since);
        if let Some(at) = slot.established_at {
            s.uptime_seconds = now.saturating_duration_since(at).as_secs();
        }
        s.remote_router_id = t.remote_router_id;
        s.negotiated_hold_time = t.hold_time.map_or(0, |h| h.as_secs() as u16);
        s.negotiated_families = slot
            .families
            .iter()
            .filter_map(|f| api_family(*f))
            .collect();
        s.counters.updates_sent = t.updates_sent;
        s.counters.updates_received = t.updates_received;
        s.counters.prefixes_received = t.prefixes_received;
        s.counters.notifications_sent = t.notifications_sent;
        s.counters.notifications_received = t.notifications_received;
        s.counters.flaps = t.flaps;
        s.last_error = t.last_error.as_ref().map(|(n, sent, at)| am::PeerError {
            code: n.code,
            subcode: n.subcode,
            text: n.to_string(),
            sent_by_local: *sent,
            at_unix_seconds: self.clock.unix(*at),
        });
        s.info = t.info.clone();
        if let Some(rib) = self.rib.as_ref() {
            let accepted: usize = slot
                .families
                .iter()
                .map(|f| rib.prefix_count(slot.id, *f))
                .sum();
            s.counters.prefixes_accepted = accepted as u64;
            let advertised: usize = slot
                .families
                .iter()
                .map(|f| rib.advertised_count(slot.id, *f))
                .sum();
            s.counters.prefixes_advertised = advertised as u64;
        }
        s.bfd = slot.bfd.as_ref().map(|b| self.bfd_status(b, now));
        s.graceful_restart_pending = t.state != State::Established
            && t.flaps > 0
            && self.rib.as_ref().is_some_and(|r| {
                slot.families
                    .iter()
                    .any(|f| r.prefix_count(slot.id, *f) > 0)
            });
        s
    }

    /// What the core knows of a peer's BFD session; the driver's snapshot
    /// (negotiated timers, discriminators, counters) is added by
    /// [`merge_bfd_info`].
    fn bfd_status(&self, b: &bfd::BfdTrack, now: Instant) -> am::BfdStatus {
        let us = micros;
        am::BfdStatus {
            phase: match b.phase {
                bfd::BfdPhase::Starting => am::BfdPhase::Starting,
                bfd::BfdPhase::Up => am::BfdPhase::Up,
                bfd::BfdPhase::Down => am::BfdPhase::Down,
                bfd::BfdPhase::PeerAdminDown => am::BfdPhase::AdminDown,
                bfd::BfdPhase::Unavailable(_) => am::BfdPhase::Unavailable,
            },
            detail: match &b.phase {
                bfd::BfdPhase::Unavailable(why) => why.clone(),
                _ => b.hold_reason().unwrap_or_default(),
            },
            since_unix_seconds: self.clock.unix(b.since),
            multihop: b.settings.multihop,
            desired_min_tx_us: us(b.settings.min_tx),
            required_min_rx_us: us(b.settings.min_rx),
            multiplier: b.settings.multiplier.into(),
            last_diagnostic: b.last_diag.map(|d| d.to_string()).unwrap_or_default(),
            uptime_seconds: if b.phase == bfd::BfdPhase::Up {
                now.saturating_duration_since(b.since).as_secs()
            } else {
                0
            },
            flaps: b.failures,
            damped: b.damping.is_suppressed(),
            bgp_held: b.held,
            wait_for_up: b.settings.wait_for_up,
            graceful: b.settings.graceful,
            ..am::BfdStatus::default()
        }
    }

    /// A peer's settings as the API names them.
    fn config_of(&self, slot: &PeerSlot) -> am::PeerConfig {
        let p = match &slot.origin {
            PeerOrigin::Api(cfg) => return cfg.as_ref().clone(),
            PeerOrigin::Topology(p) => p,
        };
        let mut cfg = am::PeerConfig::new(p.key.address, p.peer_as);
        cfg.local_as = p.local_as_override;
        cfg.passive = p.passive;
        cfg.route_reflector_client = p.rr_client;
        cfg.peer_type = match p.kind {
            topo::PeerKind::Mesh => am::PeerType::NodeMesh,
            topo::PeerKind::Global => am::PeerType::Global,
            topo::PeerKind::Node => am::PeerType::NodeSpecific,
            topo::PeerKind::Workload => am::PeerType::Workload,
        };
        cfg.description = p.calico_node.clone().unwrap_or_else(|| p.origin.clone());
        if let Some(state) = self.state.as_ref() {
            let spec = Self::session_spec(state, p);
            cfg.families = Self::topology_families(state, p)
                .into_iter()
                .filter_map(api_family)
                .collect();
            cfg.keepalive = spec.config.keepalive;
            cfg.hold_time = Some(spec.config.hold_time);
        }
        cfg
    }

    /// Every setting that decides a peer's session, as the API names them:
    /// the peer's entry in `tabbyctl config`, from the same derivation
    /// ([`effective_config::origin_entry`]). `None` without a configuration.
    fn settings_of(&self, slot: &PeerSlot) -> Option<am::PeerSettings> {
        let state = self.state.as_ref()?;
        let cluster_id = Self::rib_config(state).effective_cluster_id();
        let e = effective_config::origin_entry(state, &slot.origin, cluster_id, None);
        Some(am::PeerSettings {
            origin: e.origin,
            calico_node: e.calico_node,
            port: e.port,
            local_as: e.local_as,
            internal: e.internal,
            passive: e.passive,
            route_reflector_client: e.route_reflector_client,
            cluster_id: e.cluster_id,
            ttl_security_hops: e.ttl_security_hops,
            password_set: e.password_set,
            next_hop: match e.next_hop {
                tabby_rib::NextHopMode::Auto => am::NextHopMode::Auto,
                tabby_rib::NextHopMode::SelfAddress => am::NextHopMode::SelfAddress,
                tabby_rib::NextHopMode::Keep => am::NextHopMode::Keep,
            },
            source_address: e.source_address,
            families: e.families.iter().filter_map(|f| api_family(*f)).collect(),
            extended_next_hop: e.extended_next_hop,
            hold_time_seconds: e.hold_time_seconds,
            keepalive_seconds: e.keepalive_seconds,
            graceful_restart: e.graceful_restart.map(|g| am::GracefulRestartSettings {
                restart_time_seconds: g.restart_time_seconds,
                notification: g.notification,
                forwarding_preserved: g.forwarding_preserved,
            }),
            long_lived_stale_time_seconds: e.long_lived_stale_time_seconds,
            allowed_local_as: e.allowed_local_as,
            reachable_by: e.reachable_by,
            filters: e.filters,
            import_policy: e.import_policy,
            export_policy: e.export_policy,
        })
    }

    pub(super) fn rib(&self) -> Result<&Rib, CoreError> {
        self.rib.as_ref().ok_or_else(|| {
            CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            )
        })
    }

    pub(super) fn rib_mut(&mut self) -> Result<&mut Rib, CoreError> {
        self.rib.as_mut().ok_or_else(|| {
            CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            )
        })
    }

    pub(super) fn check_owner(owner: &am::Owner) -> Result<(), CoreError> {
        if owner.as_str() == TOPOLOGY_OWNER {
            return Err(CoreError::InvalidArgument(format!(
                "owner {TOPOLOGY_OWNER:?} is reserved for routes from the cluster's resources; choose another owner name"
            )));
        }
        Ok(())
    }

    pub fn announce(
        &mut self,
        owner: &am::Owner,
        routes: Vec<am::LocalRoute>,
        now: Instant,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        let rib = self.rib_mut()?;
        for r in &routes {
            match rib.originate(r.prefix, owner.as_str(), rib_local_route(r)) {
                tabby_rib::LocalChange::Added => change.added += 1,
                tabby_rib::LocalChange::Unchanged => change.unchanged += 1,
                tabby_rib::LocalChange::Updated => change.updated += 1,
            }
        }
        self.pump(now);
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    pub fn withdraw(
        &mut self,
        owner: &am::Owner,
        prefixes: Vec<IpNet>,
        now: Instant,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        let rib = self.rib_mut()?;
        for p in &prefixes {
            if rib.withdraw_local(*p, owner.as_str()) {
                change.removed += 1;
            } else {
                change.unchanged += 1;
            }
        }
        self.pump(now);
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    pub fn replace(
        &mut self,
        owner: &am::Owner,
        routes: Vec<am::LocalRoute>,
        now: Instant,
    ) -> Result<am::RouteChange, CoreError> {
        Self::check_owner(owner)?;
        let mut change = am::RouteChange::default();
        // One entry per prefix, the last one given winning.
        let new: BTreeMap<IpNet, LocalRoute> = routes
            .iter()
            .map(|r| (r.prefix.trunc(), rib_local_route(r)))
            .collect();
        let counts = self
            .rib_mut()?
            .replace_local(owner.as_str(), new.into_iter().collect());
        change.added = counts.added;
        change.updated = counts.updated;
        change.unchanged = counts.unchanged;
        change.removed = counts.removed;
        self.pump(now);
        change.sequence = self.journal.sequence();
        Ok(change)
    }

    /// Makes the RIB keep its prefixes in order from now on, so that each
    /// page of [`Daemon::list_routes`] costs its own routes; without it a
    /// listing sorts the table. The API's listings ask for it.
    pub fn keep_route_order(&mut self) {
        if let Some(rib) = self.rib.as_mut() {
            rib.keep_prefix_order();
        }
    }

    pub fn list_routes(&self, q: &am::RouteQuery) -> Result<am::RoutePage, CoreError> {
        let rib = self.rib()?;
        let mut routes = Vec::new();
        let mut more = false;
        // In prefix order from where the query can first match to where it
        // can match no more: a page costs its own routes.
        for (prefix, best) in rib.best_routes_from(route_listing::start(q)) {
            if route_listing::past_end(q, &prefix) {
                break;
            }
            if let Some(f) = q.family
                && am::Family::of_prefix(&prefix) != f
            {
                continue;
            }
            if let Some((p, m)) = &q.prefix {
                let ok = match m {
                    am::PrefixMatch::Exact => prefix == *p,
                    am::PrefixMatch::Longer => p.contains(&prefix),
                };
                if !ok {
                    continue;
                }
            }
            if let Some(after) = &q.after
                && prefix <= *after
            {
                continue;
            }
            if routes.len() >= q.limit {
                more = true;
                break;
            }
            let paths = if q.best_only {
                vec![api_path(&best, true)]
            } else {
                self.candidate_paths(rib, &prefix)
            };
            routes.push(am::Route { prefix, paths });
        }
        Ok(am::RoutePage { routes, more })
    }

    pub(super) fn candidate_paths(&self, rib: &Rib, prefix: &IpNet) -> Vec<am::Path> {
        rib.explain(prefix)
            .candidates
            .iter()
            .map(candidate_path)
            .collect()
    }

    pub fn watch_routes(&self, resume: Option<u64>) -> Result<am::RouteWatch, CoreError> {
        let rib = self.rib()?;
        Ok(self.journal.watch(
            resume,
            || {
                rib.best_routes()
                    .into_iter()
                    .map(|(p, b)| (p, api_path(&b, true)))
                    .collect()
            },
            |p| route_update(p, rib.best(&p).as_ref()),
        ))
    }

    pub fn explain(&self, prefix: IpNet) -> Result<am::RouteExplanation, CoreError> {
        let rib = self.rib()?;
        let e = rib.explain(&prefix);
        let departed = self.departures.of(&prefix).cloned();
        if e.candidates.is_empty() && departed.is_none() {
            return Err(CoreError::NotFound(format!(
                "no path for {prefix} in the Loc-RIB; `tabbyctl routes` lists what is known"
            )));
        }
        Ok(am::RouteExplanation {
            prefix,
            departed,
            candidates: e
                .candidates
                .iter()
                .map(|c| {
                    let reason = if c.best {
                        "best path".to_owned()
                    } else if let Some(why) = c.ineligible {
                        format!("not eligible: {why}")
                    } else if let Some(step) = c.lost_at {
                        format!("lost to the best path at: {step:?}")
                    } else if c.multipath {
                        "equal-cost multipath member".to_owned()
                    } else {
                        "not best".to_owned()
                    };
                    am::CandidatePath {
                        path: candidate_path(c),
                        reason,
                    }
                })
                .collect(),
            exports: e
                .exports
                .iter()
                .map(|x| am::PeerExport {
                    peer: x.address,
                    exported: x.exported,
                    reason: x.reason.clone(),
                })
                .collect(),
        })
    }

    pub fn adj_rib(
        &self,
        peer: impl Into<am::PeerRef>,
        which: am::AdjRib,
        family: am::Family,
    ) -> Result<Vec<am::Route>, CoreError> {
        let rib = self.rib()?;
        let slot = self.peer_slot(peer)?;
        let mut out = Vec::new();
        for (prefix, _) in rib.best_routes() {
            if am::Family::of_prefix(&prefix) != family {
                continue;
            }
            let e = rib.explain(&prefix);
            match which {
                am::AdjRib::In => {
                    let paths: Vec<am::Path> = e
                        .candidates
                        .iter()
                        .filter(|c| matches!(&c.source, RouteSource::Peer { peer: p, .. } if *p == slot.id))
                        .map(candidate_path)
                        .collect();
                    if !paths.is_empty() {
                        out.push(am::Route { prefix, paths });
                    }
                }
                am::AdjRib::Out => {
                    if e.exports.iter().any(|x| x.peer == slot.id && x.exported)
                        && let Some(best) = rib.best(&prefix)
                    {
                        out.push(am::Route {
                            prefix,
                            paths: vec![api_path(&best, true)],
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    pub(super) fn peer_slot(&self, peer: impl Into<am::PeerRef>) -> Result<&PeerSlot, CoreError> {
        let peer = peer.into();
        let key = self.peer_key(peer)?;
        self.peers
            .get(&key)
            .map(|s| &**s)
            .ok_or_else(|| no_peer(peer))
    }

    /// The session `peer` names: by address and port, or the one session
    /// to an address. A peer with speakers on several ports has one session
    /// per port; named by address alone, the API refuses to guess.
    pub(super) fn peer_key(&self, peer: am::PeerRef) -> Result<topo::PeerKey, CoreError> {
        let address = peer.address;
        if let Some(port) = peer.port {
            let key = topo::PeerKey { address, port };
            return if self.peers.contains_key(&key) {
                Ok(key)
            } else {
                Err(no_peer(peer))
            };
        }
        let mut keys = self.peers.keys().filter(|k| k.address == address);
        let Some(first) = keys.next() else {
            return Err(no_peer(peer));
        };
        let rest: Vec<String> = keys.map(|k| k.port.to_string()).collect();
        if rest.is_empty() {
            return Ok(*first);
        }
        Err(CoreError::FailedPrecondition(format!(
            "{address} has a session on each of the ports {}, {}: name one as ADDRESS:PORT \
             (e.g. {}), or [ADDRESS]:PORT for IPv6",
            first.port,
            rest.join(", "),
            topo::PeerKey {
                address,
                port: first.port
            }
        )))
    }

    pub fn list_peers(&self, now: Instant) -> Vec<am::PeerStatus> {
        self.peers
            .values()
            .map(|s| self.status_of(s, now))
            .collect()
    }

    /// [`Daemon::list_peers`] without each peer's `settings`.
    pub fn list_peers_brief(&self, now: Instant) -> Vec<am::PeerStatus> {
        self.peers
            .values()
            .map(|s| self.brief_status_of(s, now))
            .collect()
    }

    pub fn get_peer(
        &self,
        peer: impl Into<am::PeerRef>,
        now: Instant,
    ) -> Result<am::PeerStatus, CoreError> {
        Ok(self.status_of(self.peer_slot(peer)?, now))
    }

    pub fn add_api_peer(
        &mut self,
        cfg: am::PeerConfig,
        now: Instant,
    ) -> Result<am::PeerStatus, CoreError> {
        if self.peers.keys().any(|k| k.address == cfg.address) {
            return Err(CoreError::AlreadyExists(format!(
                "peer {} exists already; delete it first to change its AS or session settings",
                cfg.address
            )));
        }
        let Some(state) = self.state.as_ref() else {
            return Err(CoreError::Unavailable(
                "the daemon has no configuration yet; check the datastore".into(),
            ));
        };
        // One builder for both paths: an API peer is a global peering with the
        // topology's defaults (graceful restart, port, policies), then what the
        // request sets.
        let p = api_peer(state, &cfg);
        let spec = effective_config::api_session_spec(state, &cfg);
        let rib_cfg = convert::peer_config(state, &p);
        let address = cfg.address;
        self.install_peer(PeerOrigin::Api(Box::new(cfg)), spec, rib_cfg, p.key, now);
        self.pump(now);
        self.get_peer(address, now)
    }

    pub fn delete_peer(
        &mut self,
        peer: impl Into<am::PeerRef>,
        now: Instant,
    ) -> Result<(), CoreError> {
        let key = self.peer_key(peer.into())?;
        self.remove_peer_slot(key, now);
        Ok(())
    }

    pub fn enable_peer(
        &mut self,
        peer: impl Into<am::PeerRef>,
        enable: bool,
        reason: Option<String>,
        now: Instant,
    ) -> Result<am::PeerStatus, CoreError> {
        let peer = peer.into();
        let key = self.peer_key(peer)?;
        let slot = self.peers.get_mut(&key).ok_or_else(|| no_peer(peer))?;
        slot.track.enabled = enable;
        // A session BFD holds down starts when BFD lets it go.
        let held = slot.bfd.as_ref().is_some_and(|b| b.held);
        if !enable {
            slot.session.command(PeerCommand::Stop(reason));
        } else if !held {
            slot.session.command(PeerCommand::Start);
        }
        self.get_peer(key_ref(key), now)
    }

    pub fn reset_peer(
        &mut self,
        peer: impl Into<am::PeerRef>,
        kind: am::ResetKind,
        now: Instant,
    ) -> Result<am::PeerStatus, CoreError> {
        let key = self.peer_key(peer.into())?;
        let slot = self.peer_slot(key_ref(key))?;
        let id = slot.id;
        let families: Vec<Family> = slot.families.iter().copied().collect();
        match kind {
            am::ResetKind::Hard => slot.session.command(PeerCommand::Reset { hard: true }),
            am::ResetKind::SoftIn => {
                for f in &families {
                    slot.session.command(PeerCommand::RouteRefresh(*f));
                }
            }
            am::ResetKind::SoftOut | am::ResetKind::SoftBoth => {
                if kind == am::ResetKind::SoftBoth {
                    for f in &families {
                        slot.session.command(PeerCommand::RouteRefresh(*f));
                    }
                }
                let rib = self.rib_mut()?;
                for f in families {
                    rib.route_refresh(id, f)
                        .map_err(|e| CoreError::FailedPrecondition(e.to_string()))?;
                }
                self.pump(now);
            }
        }
        self.get_peer(key_ref(key), now)
    }

    pub fn watch_peers(&self, now: Instant) -> am::PeerWatch {
        am::PeerWatch {
            sequence: self.peer_seq,
            peers: self.list_peers(now),
            updates: self.peer_events.subscribe(),
        }
    }

    pub fn status(&self, now: Instant) -> am::DaemonStatus {
        let state = self.state.as_ref();
        let established = self
            .peers
            .values()
            .filter(|s| s.track.state == State::Established)
            .count() as u32;
        am::DaemonStatus {
            router_id: state
                .map(|s| s.router_id)
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            local_as: state.map(|s| s.local_as).unwrap_or(0),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: now.saturating_duration_since(self.clock.started).as_secs(),
            datastore: match self.datastore {
                DatastoreState::Syncing => am::DatastoreSync::Syncing,
                DatastoreState::InSync => am::DatastoreSync::InSync,
                DatastoreState::Disconnected => am::DatastoreSync::Disconnected,
            },
            datastore_detail: self.datastore_detail.clone(),
            fib: match (self.kernel.active(), self.kernel.converged()) {
                (false, _) => am::FibSync::Disabled,
                (true, false) => am::FibSync::Syncing,
                (true, true) => am::FibSync::InSync,
            },
            fib_detail: format!("{} routes programmed", self.kernel.programmed()),
            graceful_restart: if self.kernel.active() && !self.kernel.converged() {
                am::GracefulRestart::Restarting
            } else {
                am::GracefulRestart::Idle
            },
            graceful_restart_detail: String::new(),
            peers_configured: self.peers.len() as u32,
            peers_established: established,
            routes: self
                .rib
                .as_ref()
                .map(|r| r.stats().prefixes as u64)
                .unwrap_or(0),
            bgp_listen_port: state.map(|s| s.listen_port).unwrap_or(179),
            bgp_listen_addresses: state
                .map(|s| s.listen_addresses.clone())
                .unwrap_or_default(),
            log_level: self.opts.log_level.clone(),
        }
    }

    pub fn set_log_level(&mut self, filter: String) -> Result<String, CoreError> {
        let Some(log) = self.log.as_ref() else {
            return Err(CoreError::FailedPrecondition(
                "logging is not reloadable in this process".into(),
            ));
        };
        log.set(&filter).map_err(CoreError::InvalidArgument)?;
        let old = std::mem::replace(&mut self.opts.log_level, filter);
        Ok(old)
    }

    /// The configuration in force as JSON (schema
    /// `tabby.effective-config/v1`, see docs/effective-config.md).
    pub fn effective_config(&self) -> String {
        effective_config::EffectiveConfig::of(self).to_json()
    }

    /// When the datastore last changed this node's configuration.
    pub fn last_reconfigured(&self) -> Option<std::time::SystemTime> {
        self.last_reconfigured
    }

    pub fn health(&self) -> am::Health {
        let mut reasons = Vec::new();
        if self.state.is_none() {
            reasons.push(format!(
                "no configuration loaded from the datastore ({})",
                self.datastore_detail
            ));
        }
        for p in &self.datastore_problems {
            reasons.push(format!("datastore: {p}"));
        }
        for w in &self.config_warnings {
            reasons.push(format!("configuration: {w}"));
        }
        if let Some(p) = &self.listen_problem {
            reasons.push(format!("BGP listener: {p}"));
        }
        for (k, s) in &self.peers {
            if s.track.enabled && s.track.state != State::Established {
                let a = peer_label(*k);
                reasons.push(format!("peer {a} is {}", api_state(s.track.state).name()));
            }
        }
        if self.kernel.active() && !self.kernel.converged() {
            reasons.push("waiting for End-of-RIB before removing stale kernel routes".to_owned());
        }
        am::Health {
            live: true,
            ready: reasons.is_empty(),
            reasons,
        }
    }
}

/// The API's name of exactly this session.
fn key_ref(key: topo::PeerKey) -> am::PeerRef {
    am::PeerRef {
        address: key.address,
        port: Some(key.port),
    }
}

fn no_peer(peer: am::PeerRef) -> CoreError {
    CoreError::NotFound(format!(
        "no peer {peer}; `tabbyctl peers` lists the configured peers"
    ))
}

/// Adds the driver's snapshot of a session to the core's view of it.
pub fn merge_bfd_info(s: &mut am::BfdStatus, info: &tabby_bfd_driver::SessionInfo) {
    s.negotiated_tx_us = micros(info.tx_interval);
    s.negotiated_rx_us = info.rx_interval.map_or(0, micros);
    s.remote_multiplier = info.remote_detect_mult.map_or(0, u32::from);
    s.detection_time_us = info.detection_time.map_or(0, micros);
    s.local_discriminator = info.local_discriminator;
    s.remote_discriminator = info.remote_discriminator;
    s.packets_in = info.counters.packets_in;
    s.packets_out = info.counters.packets_out;
}

/// A duration in the API's microseconds (saturating).
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
