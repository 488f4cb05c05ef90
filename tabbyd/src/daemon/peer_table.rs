//! The peer table: this node's derived state turned into peers (the
//! topology diff), each peer's lifecycle (RIB peer, session, listener), and
//! what the sessions report back.

use super::*;

impl Daemon {
    /// A datastore read failed: keep running on the last good state.
    pub fn datastore_error(&mut self, err: &str) {
        warn!(error = %err, "datastore update rejected; the last good configuration keeps running");
        self.metrics
            .datastore_events
            .get_or_create(&KindLabel {
                kind: "error".into(),
            })
            .inc();
        self.datastore = if self.state.is_some() {
            DatastoreState::InSync
        } else {
            DatastoreState::Disconnected
        };
        self.datastore_detail = err.to_owned();
    }

    /// New resources arrived: derive this node's state and apply the delta.
    pub fn apply_resources(&mut self, res: &topo::Resources, now: Instant) {
        let new = match topo::derive_with(res, &self.opts.node_name, &self.derive) {
            Ok(s) => s,
            Err(e) => {
                self.datastore_error(&format!("cannot derive node {}: {e}", self.opts.node_name));
                return;
            }
        };
        // Each warning is said once, when it appears, and stays a readiness reason
        // while it holds.
        for w in new
            .warnings
            .iter()
            .filter(|w| !self.config_warnings.contains(w))
        {
            warn!(warning = %w, "configuration");
        }
        self.config_warnings = new.warnings.clone();
        self.set_bmp_datastore_stations(new.bmp_stations.iter().copied().collect());
        self.metrics
            .datastore_events
            .get_or_create(&KindLabel {
                kind: "applied".into(),
            })
            .inc();
        self.datastore = DatastoreState::InSync;
        self.datastore_problems = res.problems.clone();
        let mut problems = res.problems.clone();
        problems.extend(new.warnings.iter().cloned());
        self.datastore_detail = match problems.as_slice() {
            [] => format!("{} resources", res.len()),
            [one] => format!("{} resources; 1 problem: {one}", res.len()),
            [first, rest @ ..] => format!(
                "{} resources; {} problems: {first} (and {} more, see /readyz)",
                res.len(),
                problems.len(),
                rest.len()
            ),
        };
        // Before any route of this state reaches the kernel.
        let moved = self.kernel.set_priority(&new, &self.metrics);
        match self.state.take() {
            None => self.first_state(new, now),
            Some(old) => self.apply_diff(old, new, now),
        }
        if let (Some(rib), Some(s)) = (self.rib.as_mut(), self.state.as_ref()) {
            // Our routes carry the normal priority to the other nodes.
            rib.set_normal_priority(s.normal_route_priority_v4, s.normal_route_priority_v6);
        }
        if moved && let Some(rib) = self.rib.as_ref() {
            // A route whose metric came from its LOCAL_PREF stays there; one
            // at the normal priority moved with it.
            self.kernel
                .reprogram_all(self.state.as_ref(), rib, &self.metrics);
        }
        self.pump(now);
    }

    pub(super) fn rib_config(state: &NodeState) -> RibConfig {
        let mut cfg = RibConfig::new(state.router_id, Asn(state.local_as));
        cfg.cluster_id = state.rr_cluster_id;
        cfg.normal_priority_v4 = state.normal_route_priority_v4;
        cfg.normal_priority_v6 = state.normal_route_priority_v6;
        cfg.max_paths = 8;
        cfg.local_addresses = state
            .ipv4
            .map(|n| IpAddr::V4(n.addr()))
            .into_iter()
            .chain(state.ipv6.map(|n| IpAddr::V6(n.addr())))
            .collect();
        cfg
    }

    pub(super) fn first_state(&mut self, state: NodeState, now: Instant) {
        self.last_reconfigured = Some(self.clock.at(now));
        info!(
            node = %state.node_name,
            router_id = %state.router_id,
            asn = state.local_as,
            peers = state.peers.len(),
            originated = state.originated.len(),
            "configuration loaded"
        );
        // Stations connected to the previous configuration start again.
        self.bmp.resync_all();
        let mut rib = Rib::new(Self::rib_config(&state));
        // A reflector without a FIB needs no route per change; the journal
        // asks for the current one when somebody watches live.
        rib.set_change_detail(self.kernel.active());
        self.rib = Some(rib);
        self.listen(&state);
        self.state = Some(state);
        self.originate_all();
        let peers: Vec<topo::Peer> = self
            .state
            .as_ref()
            .map(|s| s.peers.values().cloned().collect())
            .unwrap_or_default();
        for p in peers {
            self.add_topology_peer(p, now);
        }
    }

    /// Puts the BGP listener on the node's listen addresses and port. A
    /// failed bind leaves the listener as it was (the error says where it
    /// listens); it stays a readiness reason until a listen succeeds.
    pub(super) fn listen(&mut self, state: &NodeState) {
        let listen: Vec<SocketAddr> = if state.listen_addresses.is_empty() {
            vec![SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                state.listen_port,
            )]
        } else {
            state
                .listen_addresses
                .iter()
                .map(|a| SocketAddr::new(*a, state.listen_port))
                .collect()
        };
        match self.sessions.listen(listen) {
            Ok(()) => self.listen_problem = None,
            Err(e) => {
                error!(error = %e, "BGP listener not changed");
                self.listen_problem = Some(e);
            }
        }
    }

    pub(super) fn originate_all(&mut self) {
        let (Some(state), Some(rib)) = (self.state.as_ref(), self.rib.as_mut()) else {
            return;
        };
        let routes = state
            .originated
            .values()
            .map(|r| (r.prefix, convert::local_route(r)))
            .collect();
        rib.replace_local(TOPOLOGY_OWNER, routes);
    }

    pub(super) fn apply_diff(&mut self, old: NodeState, new: NodeState, now: Instant) {
        let changes = topo::diff(&old, &new);
        if changes.is_empty() {
            debug!("datastore update changes nothing for this node");
            self.state = Some(new);
            return;
        }
        info!(changes = changes.len(), "applying configuration changes");
        self.last_reconfigured = Some(self.clock.at(now));
        let restart_needed = changes
            .iter()
            .any(|c| matches!(c, Change::GlobalChanged(f) if f.iter().any(|f| f.needs_restart())));
        if restart_needed {
            // Router id, AS, cluster id or listen address changed: every
            // session and the RIB depend on them. Rebuild from scratch.
            warn!("router id, AS number or cluster id changed: re-establishing every session");
            // What API clients gave stays: their peers and their routes
            // (the IPAM does not announce again for a change it did not make).
            let api_peers: Vec<am::PeerConfig> = self
                .peers
                .values()
                .filter_map(|s| match &s.origin {
                    PeerOrigin::Api(cfg) => Some(cfg.as_ref().clone()),
                    PeerOrigin::Topology(_) => None,
                })
                .collect();
            let mut api_routes = self.rib.as_ref().map(Rib::local_routes).unwrap_or_default();
            api_routes.remove(TOPOLOGY_OWNER);
            let keys: Vec<topo::PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                self.remove_peer_slot(k, now);
            }
            self.rib = None;
            self.first_state(new, now);
            if let Some(rib) = self.rib.as_mut() {
                for (owner, routes) in api_routes {
                    rib.replace_local(&owner, routes);
                }
            }
            for cfg in api_peers {
                let address = cfg.address;
                if let Err(e) = self.add_api_peer(cfg, now) {
                    warn!(peer = %address, error = %e, "API peer not restored after the restart");
                }
            }
            return;
        }
        self.state = Some(new);
        let mut policy_all = false;
        let mut originated = false;
        for c in changes {
            match c {
                Change::PeerAdded(key) => {
                    if let Some(p) = self.state.as_ref().and_then(|s| s.peers.get(&key)).cloned() {
                        info!(peer = %key, "peer added");
                        self.add_topology_peer(p, now);
                    }
                }
                Change::PeerRemoved(key) => {
                    info!(peer = %key, "peer removed");
                    self.remove_peer_slot(key, now);
                }
                Change::PeerChanged { key, fields } => {
                    let Some(p) = self.state.as_ref().and_then(|s| s.peers.get(&key)).cloned()
                    else {
                        continue;
                    };
                    if fields.iter().any(|f| f.needs_reset()) {
                        info!(peer = %key, ?fields, "session settings changed: re-establishing this session only");
                        self.remove_peer_slot(key, now);
                        self.add_topology_peer(p, now);
                    } else {
                        if let Some(slot) = self.peers.get_mut(&key) {
                            slot.origin = PeerOrigin::Topology(Box::new(p));
                        }
                        if fields.iter().any(|f| f.is_policy()) {
                            info!(peer = %key, ?fields, "policy changed: soft reconfiguration");
                            self.refresh_policy(key);
                        }
                        if fields.contains(&topo::PeerField::Bfd) {
                            self.bfd_changed(key, now);
                        }
                    }
                }
                Change::OriginatedAdded(_)
                | Change::OriginatedRemoved(_)
                | Change::OriginatedChanged(_) => {
                    originated = true;
                }
                Change::ExportBaseChanged { .. } => policy_all = true,
                Change::PoolsChanged => {
                    policy_all = true;
                    if let Some(rib) = self.rib.as_ref() {
                        self.kernel
                            .reprogram_all(self.state.as_ref(), rib, &self.metrics);
                    }
                }
                Change::GlobalChanged(fields) => {
                    if fields.iter().any(|f| {
                        matches!(
                            f,
                            topo::GlobalField::ListenPort | topo::GlobalField::ListenAddresses
                        )
                    }) && let Some(state) = self.state.take()
                    {
                        info!(
                            ?fields,
                            "listen settings changed: swapping the listener, sessions stay"
                        );
                        self.listen(&state);
                        self.state = Some(state);
                    } else {
                        info!(?fields, "global settings changed (no session affected)");
                    }
                }
                Change::StaticRoutesChanged => {
                    debug!("static routes changed");
                }
            }
        }
        self.recheck_ipv4_over_ipv6(now);
        if originated {
            self.originate_all();
        }
        if policy_all {
            let keys: Vec<topo::PeerKey> = self.peers.keys().copied().collect();
            for k in keys {
                self.refresh_policy(k);
            }
        }
    }

    /// Re-applies a topology peer's policies, next-hop mode and allowed
    /// local-AS count without a reset.
    pub(super) fn refresh_policy(&mut self, key: topo::PeerKey) {
        let (Some(state), Some(rib)) = (self.state.as_ref(), self.rib.as_mut()) else {
            return;
        };
        let Some(slot) = self.peers.get(&key) else {
            return;
        };
        let PeerOrigin::Topology(p) = &slot.origin else {
            return;
        };
        let cfg = convert::peer_config(state, p);
        // Post-policy routes may change without a session event.
        self.bmp.resync_all();
        match rib.update_settings(slot.id, cfg.settings()) {
            Ok(outcome) => {
                for f in outcome.route_refresh {
                    slot.session.command(PeerCommand::RouteRefresh(f));
                }
            }
            Err(e) => warn!(peer = %key, error = %e, "policy update failed"),
        }
    }

    /// The families offered to a topology peer: its address's, plus IPv4
    /// with RFC 8950 extended next hop on an IPv6-only peering.
    pub(super) fn topology_families(state: &NodeState, p: &topo::Peer) -> Vec<Family> {
        let mut f = vec![family_of_addr(&p.key.address)];
        if convert::ipv4_over_ipv6(state, p) {
            f.push(Family::IPV4_UNICAST);
        }
        f
    }

    /// The session and RIB settings of every peer, from the cluster or the API, come from
    /// one [`topo::Peer`].
    pub(super) fn session_spec(state: &NodeState, p: &topo::Peer) -> SessionSpec {
        let local_as = Asn(p.local_as_override.unwrap_or(state.local_as));
        let mut cfg = SessionConfig::new(local_as, PeerAs::Exact(Asn(p.peer_as)), state.router_id);
        cfg.passive = p.passive;
        // IPv4 rides an IPv6 session only toward a peer this node reaches
        // over IPv6 alone (see `convert::ipv4_over_ipv6`).
        cfg.extended_next_hop = convert::ipv4_over_ipv6(state, p);
        cfg.families = Self::topology_families(state, p);
        if let Some(k) = p.keepalive_time {
            let k = k.as_secs().clamp(1, 21_845) as u16;
            cfg.keepalive = Some(k);
            cfg.hold_time = k.saturating_mul(3);
        }
        cfg.graceful_restart = Some(GrConfig {
            restart_time: p
                .graceful_restart_time
                .map(|d| d.as_secs().min(4095) as u16)
                .unwrap_or(120),
            ..GrConfig::default()
        });
        SessionSpec {
            config: cfg,
            remote: SocketAddr::new(p.key.address, p.key.port),
            local_address: p.source_address.or(match p.key.address {
                IpAddr::V4(_) => state.ipv4.map(|n| IpAddr::V4(n.addr())),
                IpAddr::V6(_) => state.ipv6.map(|n| IpAddr::V6(n.addr())),
            }),
            md5_password: p.password.clone(),
            ttl_security: p.ttl_security,
            ttl: None,
        }
    }

    /// An IPv4 session to a peer appeared or went away: its IPv6 session
    /// must start or stop carrying IPv4, which only a new OPEN can say.
    pub(super) fn recheck_ipv4_over_ipv6(&mut self, now: Instant) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        let flipped: Vec<topo::Peer> = self
            .peers
            .values()
            .filter_map(|slot| {
                let PeerOrigin::Topology(p) = &slot.origin else {
                    return None;
                };
                let p = state.peers.get(&p.key)?;
                (convert::ipv4_over_ipv6(state, p) != slot.ipv4_over_ipv6).then(|| p.clone())
            })
            .collect();
        for p in flipped {
            info!(peer = %p.key, "IPv4 over this IPv6 session changes: re-establishing it");
            self.remove_peer_slot(p.key, now);
            self.add_topology_peer(p, now);
        }
    }

    pub(super) fn alloc_id(&mut self) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        id
    }

    pub(super) fn add_topology_peer(&mut self, p: topo::Peer, now: Instant) {
        let Some(state) = self.state.as_ref() else {
            return;
        };
        if self.peers.contains_key(&p.key) {
            // Only an API peer can hold a topology peer's address and port.
            warn!(peer = %p.key, "two peerings with the same address and port; keeping the first");
            return;
        }
        let spec = Self::session_spec(state, &p);
        let rib_cfg = convert::peer_config(state, &p);
        let key = p.key;
        self.install_peer(PeerOrigin::Topology(Box::new(p)), spec, rib_cfg, key, now);
    }

    pub(super) fn install_peer(
        &mut self,
        origin: PeerOrigin,
        spec: SessionSpec,
        rib_cfg: tabby_rib::PeerConfig,
        key: topo::PeerKey,
        now: Instant,
    ) {
        let id = self.alloc_id();
        let ipv4_over_ipv6 = spec.config.extended_next_hop;
        // BMP stations get every peer's routes as received.
        let mut rib_cfg = rib_cfg;
        rib_cfg.soft_reconfig_inbound |= self.bmp.configured();
        if let Some(rib) = self.rib.as_mut()
            && let Err(e) = rib.add_peer(id, rib_cfg)
        {
            warn!(peer = %key, error = %e, "RIB refused the peer");
            return;
        }
        let session = match self.sessions.spawn(id, spec) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %key, error = %e, "cannot start the session");
                if let Some(rib) = self.rib.as_mut() {
                    let _ = rib.remove_peer(id);
                }
                return;
            }
        };
        self.by_id.insert(id, key);
        self.peers.insert(
            key,
            Box::new(PeerSlot {
                id,
                origin,
                session,
                track: SessionTrack::new(now),
                families: BTreeSet::new(),
                eor: BTreeSet::new(),
                ipv4_over_ipv6,
                established_at: None,
                updates_out: self
                    .metrics
                    .updates_out
                    .get_or_create(&PeerLabel {
                        peer: peer_label(key),
                    })
                    .clone(),
                gr_notification: false,
                bfd: None,
                bfd_teardown: None,
                bmp_peer: None,
                bmp_counts: Default::default(),
            }),
        );
        // With BFD asked to be Up first, the session starts when it is.
        if !self.start_bfd(key, now)
            && let Some(slot) = self.peers.get(&key)
        {
            slot.session.command(PeerCommand::Start);
        }
        self.metrics
            .sessions
            .get_or_create(&StateLabel {
                state: "Idle".into(),
            })
            .inc();
        self.publish_peer(key, am::PeerChange::Added, now);
    }

    pub(super) fn remove_peer_slot(&mut self, key: topo::PeerKey, now: Instant) {
        let Some(slot) = self.peers.remove(&key) else {
            return;
        };
        slot.session
            .command(PeerCommand::Stop(Some("peer de-configured".into())));
        self.stop_bfd(key, slot.bfd.is_some());
        self.bmp_deconfigured(slot.bmp_peer.clone(), now);
        self.by_id.remove(&slot.id);
        if let Some(rib) = self.rib.as_mut() {
            let _ = rib.peer_down(slot.id, DownKind::Flush, now);
            if let Err(e) = rib.remove_peer(slot.id) {
                debug!(peer = %key, error = %e, "RIB peer removal");
            }
        }
        self.metrics
            .sessions
            .get_or_create(&StateLabel {
                state: slot.track.state.to_string(),
            })
            .dec();
        self.peer_seq += 1;
        let sequence = self.peer_seq;
        self.peer_events.send_with(|| am::PeerEvent {
            sequence,
            change: am::PeerChange::Removed,
            peer: self.status_of(&slot, now),
        });
        self.pump(now);
    }

    pub(super) fn publish_peer(
        &mut self,
        key: topo::PeerKey,
        change: am::PeerChange,
        now: Instant,
    ) {
        let Some(slot) = self.peers.get(&key) else {
            return;
        };
        self.peer_seq += 1;
        let sequence = self.peer_seq;
        self.peer_events.send_with(|| am::PeerEvent {
            sequence,
            change,
            peer: self.status_of(slot, now),
        });
    }

    /// Sets the per-peer, per-family prefix gauges from the RIB; called
    /// before each `/metrics` scrape so the gauges cost nothing otherwise.
    pub fn refresh_prefix_gauges(&self) {
        let Some(rib) = self.rib.as_ref() else {
            return;
        };
        self.metrics.prefixes_received.clear();
        self.metrics.prefixes_advertised.clear();
        self.metrics.bfd_sessions.clear();
        for t in self.peers.values().filter_map(|s| s.bfd.as_ref()) {
            self.metrics
                .bfd_sessions
                .get_or_create(&StateLabel {
                    state: t.phase.name().into(),
                })
                .inc();
        }
        for (key, slot) in &self.peers {
            for f in &slot.families {
                let label = PeerFamilyLabel {
                    peer: peer_label(*key),
                    family: f.to_string(),
                };
                let set = |g: &MetricFamily<PeerFamilyLabel, Gauge>, n: usize| {
                    g.get_or_create(&label)
                        .set(i64::try_from(n).unwrap_or(i64::MAX));
                };
                set(
                    &self.metrics.prefixes_received,
                    rib.prefix_count(slot.id, *f),
                );
                set(
                    &self.metrics.prefixes_advertised,
                    rib.advertised_count(slot.id, *f),
                );
            }
        }
    }

    /// One session event, then the RIB's outputs pumped.
    #[cfg(test)]
    pub fn session_event(&mut self, id: PeerId, ev: PeerEvent, now: Instant) {
        self.absorb_session_event(id, ev, now);
        self.pump(now);
    }

    /// One session event into the RIB without pumping: the event loop
    /// absorbs every queued event first and pumps once, so UPDATEs that
    /// arrived together leave in shared batches.
    pub fn absorb_session_event(&mut self, id: PeerId, ev: PeerEvent, now: Instant) {
        let Some(&key) = self.by_id.get(&id) else {
            return; // a late event from a removed peer
        };
        match ev {
            PeerEvent::StateChanged { from, to } => {
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.track.state = to;
                    slot.track.since = now;
                    if to == State::Established {
                        slot.established_at = Some(now);
                    } else if from == State::Established {
                        slot.established_at = None;
                        slot.track.flaps += 1;
                    }
                }
                let transition = match (from, to) {
                    (_, State::Established) => Some("established"),
                    (State::Established, _) => Some("down"),
                    _ => None,
                };
                if let Some(to) = transition {
                    self.metrics
                        .session_transitions
                        .get_or_create(&SessionTransitionLabel {
                            peer: peer_label(key),
                            to: to.into(),
                        })
                        .inc();
                }
                self.metrics
                    .sessions
                    .get_or_create(&StateLabel {
                        state: from.to_string(),
                    })
                    .dec();
                self.metrics
                    .sessions
                    .get_or_create(&StateLabel {
                        state: to.to_string(),
                    })
                    .inc();
                info!(peer = %key, %from, %to, "session state");
                self.publish_peer(
                    key,
                    am::PeerChange::StateChanged {
                        previous: api_state(from),
                    },
                    now,
                );
            }
            PeerEvent::Established(neg) => {
                let session = PeerSession::from(neg.as_ref());
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.families = neg.families.clone();
                    slot.eor.clear();
                    slot.track.remote_router_id = Some(neg.peer_id);
                    slot.gr_notification = neg.gr_notification;
                    slot.track.hold_time = Some(neg.hold_time);
                    slot.track.info = "Established".into();
                }
                if let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.peer_up(id, session, now)
                {
                    warn!(peer = %key, error = %e, "RIB refused the session");
                }
                self.bmp_session_up(key, &neg, now);
            }
            PeerEvent::Update(u) => {
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.track.updates_received += 1;
                    slot.track.prefixes_received +=
                        (u.nlri.len() + u.mp_reach.as_ref().map_or(0, |m| m.nlri.len())) as u64;
                }
                self.metrics
                    .updates_in
                    .get_or_create(&PeerLabel {
                        peer: peer_label(key),
                    })
                    .inc();
                if let Some(rib) = self.rib.as_mut() {
                    match rib.apply_update(id, &u) {
                        Ok(out) => {
                            let taw = u.treat_as_withdraw();
                            if let Some(slot) = self.peers.get_mut(&key) {
                                slot.bmp_counts.count(&out, taw);
                            }
                            for (reason, n) in out.rejected {
                                debug!(peer = %key, ?reason, n, "routes rejected");
                            }
                        }
                        Err(e) => warn!(peer = %key, error = %e, "UPDATE not applied"),
                    }
                }
                self.bmp_received(key, id, u, now);
                self.check_max_prefixes(key, id);
            }
            PeerEvent::EndOfRib(f) => {
                debug!(peer = %key, family = %f, "End-of-RIB received");
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.eor.insert(f);
                }
                if let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.apply_update(id, &Update::end_of_rib(f))
                {
                    warn!(peer = %key, error = %e, "End-of-RIB not applied");
                }
                self.bmp_end_of_rib(key, f, now);
            }
            PeerEvent::RouteRefresh(rr) => {
                if rr.subtype == RefreshSubtype::Request
                    && let Some(rib) = self.rib.as_mut()
                    && let Err(e) = rib.route_refresh(id, rr.family)
                {
                    warn!(peer = %key, error = %e, "route refresh not served");
                }
            }
            PeerEvent::Down(d) => {
                let kind = DownKind::from(&d);
                info!(peer = %key, reason = %d.reason, graceful = d.stale.is_some(), "session down");
                if let Some(slot) = self.peers.get_mut(&key) {
                    slot.track.info = d.reason.to_string();
                    match &d.reason {
                        DownReason::NotificationSent(n) => {
                            slot.track.notifications_sent += 1;
                            slot.track.last_error = Some((n.clone(), true, now));
                        }
                        DownReason::NotificationReceived(n) => {
                            slot.track.notifications_received += 1;
                            slot.track.last_error = Some((n.clone(), false, now));
                        }
                        _ => {}
                    }
                }
                if d.was_established {
                    self.bmp_session_down(key, &d.reason, now);
                }
                let by_bfd = self.peers.get_mut(&key).and_then(|s| s.bfd_teardown.take());
                match by_bfd {
                    _ if !d.was_established => {}
                    Some(bfd) => self.bfd_teardown_done(key, id, kind, bfd, now),
                    None => {
                        if let Some(rib) = self.rib.as_mut()
                            && let Err(e) = rib.peer_down(id, kind, now)
                        {
                            debug!(peer = %key, error = %e, "RIB peer down");
                        }
                    }
                }
            }
            PeerEvent::CommandFailed(why) => {
                debug!(peer = %key, %why, "session command not carried out");
            }
        }
    }

    /// RFC 4486 §4: past the limit, Cease / Maximum Number of Prefixes
    /// Reached with AFI, SAFI and the limit as data.
    pub(super) fn check_max_prefixes(&mut self, key: topo::PeerKey, id: PeerId) {
        let limit = self.opts.max_prefixes;
        let (Some(rib), Some(slot)) = (self.rib.as_ref(), self.peers.get(&key)) else {
            return;
        };
        if limit == 0 {
            return;
        }
        for f in &slot.families {
            let n = rib.prefix_count(id, *f);
            if n > limit as usize {
                warn!(peer = %key, family = %f, prefixes = n, limit, "maximum number of prefixes exceeded: closing the session");
                let cease = tabby_bgp::notification::Cease::MaxPrefixesReached(Some(
                    tabby_bgp::notification::PrefixLimit { family: *f, limit },
                ));
                slot.session.command(PeerCommand::Cease(cease.into()));
                return;
            }
        }
    }

    /// A planned stop: every session closes without a NOTIFICATION so peers
    /// keep our routes for the restart time; kernel routes stay.
    pub fn detach_all(&mut self) {
        for slot in self.peers.values() {
            slot.session.command(PeerCommand::Detach);
        }
        // BFD says AdminDown, which is not a failure: peers keep the BGP
        // sessions' graceful restart.
        self.bfd.shutdown();
    }
}

/// A peer's label in the per-peer metrics: its address, with the port
/// when it is not BGP's own (a peer may run speakers on several ports).
pub(super) fn peer_label(key: topo::PeerKey) -> String {
    if key.port == tabby_bgp_driver::BGP_PORT {
        key.address.to_string()
    } else {
        key.to_string()
    }
}

/// A peer added through the API as the topology would describe a global peering to it.
pub(super) fn api_peer(state: &NodeState, cfg: &am::PeerConfig) -> topo::Peer {
    let local_as = cfg.local_as.unwrap_or(state.local_as);
    topo::Peer {
        key: topo::PeerKey {
            address: cfg.address,
            port: 179,
        },
        kind: topo::PeerKind::Global,
        origin: "API".into(),
        calico_node: None,
        peer_as: cfg.remote_as,
        local_as,
        local_as_override: cfg.local_as,
        passive: cfg.passive,
        rr_client: cfg.route_reflector_client,
        password: None,
        ttl_security: None,
        source_address: None,
        next_hop: topo::NextHop::Auto,
        num_allowed_local_as: None,
        graceful_restart_time: None,
        keepalive_time: cfg.keepalive.map(|k| Duration::from_secs(k.into())),
        reachable_by: None,
        internal: cfg.remote_as == local_as,
        filters: Vec::new(),
        import_rules: Vec::new(),
        export_rules: Vec::new(),
        bfd: None,
    }
}
