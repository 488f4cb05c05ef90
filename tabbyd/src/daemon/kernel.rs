//! The kernel view: best routes turned into kernel routes (Calico's rules:
//! own blocks blackholed, tunnelled next hops onlink through the tunnel
//! device) and the restart rule's convergence, sent to fib-sync as one
//! ordered op stream. It owns no routing state: the RIB decides, the node
//! state says how each prefix is reached, and this part only maps and sends.

use super::*;

/// What the daemon asked of the kernel, and when stale routes may go.
#[derive(Debug)]
pub(super) struct KernelView {
    /// fib-sync's op stream; `None` on a reflector without a FIB.
    fib: Option<mpsc::UnboundedSender<FibOp>>,
    tunnel_device: String,
    /// Prefixes whose route was sent and not yet removed: a withdrawal is
    /// sent only for them, and the status and CalicoNodeStatus report them.
    programmed: BTreeSet<IpNet>,
    /// `Converged` was sent: routes of a previous run are gone.
    converged: bool,
    /// Past this, stale routes go even if some End-of-RIB never came.
    deferral_deadline: Instant,
    /// The route priorities (IPv4, IPv6) last sent; `None` before the first
    /// node state.
    priority: Option<(u32, u32)>,
}

impl KernelView {
    pub(super) fn new(
        fib: Option<mpsc::UnboundedSender<FibOp>>,
        tunnel_device: String,
        deferral_deadline: Instant,
    ) -> Self {
        KernelView {
            fib,
            tunnel_device,
            programmed: BTreeSet::new(),
            converged: false,
            deferral_deadline,
            priority: None,
        }
    }

    /// False on a reflector without a FIB.
    pub(super) fn active(&self) -> bool {
        self.fib.is_some()
    }

    /// True once stale routes of a previous run were released.
    pub(super) fn converged(&self) -> bool {
        self.converged
    }

    /// The deferral deadline while it still matters.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        (!self.converged && self.active()).then_some(self.deferral_deadline)
    }

    pub(super) fn holds(&self, prefix: &IpNet) -> bool {
        self.programmed.contains(prefix)
    }

    pub(super) fn programmed(&self) -> usize {
        self.programmed.len()
    }

    /// The metric of every kernel route: Calico's normal route priority
    /// (`ipv4NormalRoutePriority` / `ipv6NormalRoutePriority`, 1024 unless
    /// set), sent ahead of the routes it applies to. fib-sync moves routes
    /// already in the kernel to it. True when it changed: learned routes
    /// whose metric comes from their LOCAL_PREF must then be sent again
    /// (see `metric_for`).
    pub(super) fn set_priority(&mut self, state: &NodeState, metrics: &Metrics) -> bool {
        let want = (
            state.normal_route_priority_v4,
            state.normal_route_priority_v6,
        );
        if self.priority == Some(want) {
            return false;
        }
        let Some(fib) = self.fib.as_ref() else {
            return false;
        };
        if self.priority.is_some() {
            info!(
                v4 = want.0,
                v6 = want.1,
                "route priority changed: kernel routes move, sessions stay"
            );
        }
        self.priority = Some(want);
        metrics
            .fib_operations
            .get_or_create(&KindLabel {
                kind: "priority".into(),
            })
            .inc();
        let _ = fib.send(FibOp::Priority {
            v4: want.0,
            v6: want.1,
        });
        true
    }

    /// One best-route change.
    pub(super) fn best_changed(
        &mut self,
        state: Option<&NodeState>,
        prefix: IpNet,
        best: Option<&BestRoute>,
        metrics: &Metrics,
    ) {
        if self.active() {
            let route = self.route_for(state, &prefix, best);
            self.program(prefix, route, metrics);
        }
    }

    /// Every best route again (the node state changed how prefixes are
    /// reached).
    pub(super) fn reprogram_all(
        &mut self,
        state: Option<&NodeState>,
        rib: &Rib,
        metrics: &Metrics,
    ) {
        if !self.active() {
            return;
        }
        for (prefix, best) in rib.best_routes() {
            let r = self.route_for(state, &prefix, Some(&best));
            self.program(prefix, r, metrics);
        }
    }

    fn program(&mut self, prefix: IpNet, route: Option<FibRoute>, metrics: &Metrics) {
        let Some(fib) = self.fib.as_ref() else {
            return;
        };
        let op = match route {
            Some(r) => {
                self.programmed.insert(prefix);
                FibOp::Set(r)
            }
            None => {
                if !self.programmed.remove(&prefix) {
                    return;
                }
                FibOp::Remove(prefix)
            }
        };
        let kind = match op {
            FibOp::Set(_) => "set",
            FibOp::Remove(_) => "remove",
            FibOp::Converged => "converged",
            FibOp::Priority { .. } => "priority",
        };
        metrics
            .fib_operations
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        let _ = fib.send(op);
    }

    /// The kernel route for a best path (Calico semantics), if any.
    pub(super) fn route_for(
        &self,
        state: Option<&NodeState>,
        prefix: &IpNet,
        best: Option<&BestRoute>,
    ) -> Option<FibRoute> {
        let best = best?;
        if best.local {
            // Own pod blocks are blackholed: more specific per-pod routes win.
            let blackhole = match &best.source {
                RouteSource::Local { owner, .. } if owner == TOPOLOGY_OWNER => state
                    .and_then(|s| s.originated.get(prefix))
                    .is_some_and(|r| r.blackhole),
                RouteSource::Local { kind, .. } => *kind == LocalKind::PodBlock,
                RouteSource::Peer { .. } => false,
            };
            return blackhole.then(|| FibRoute::blackhole(*prefix));
        }
        let gateways: Vec<IpAddr> = best
            .next_hops
            .iter()
            .map(|h| h.addr)
            .filter(|a| !a.is_unspecified())
            .collect();
        if gateways.is_empty() {
            return None;
        }
        let mode = state
            .map(|s| s.kernel_route_for(prefix))
            .unwrap_or(KernelRoute::Direct);
        let tunnel = |gw: IpAddr| NextHopSpec::onlink(gw, self.tunnel_device.clone());
        let hop = |gw: IpAddr| -> Option<NextHopSpec> {
            match mode {
                KernelRoute::Skip => None,
                KernelRoute::Direct => Some(NextHopSpec::gateway(gw)),
                KernelRoute::Tunnel => Some(tunnel(gw)),
                KernelRoute::TunnelUnlessNextHopIn(net) => match gw {
                    IpAddr::V4(v4) if net.contains(&v4) => Some(NextHopSpec::gateway(gw)),
                    _ => Some(tunnel(gw)),
                },
            }
        };
        let hops: Vec<NextHopSpec> = gateways.into_iter().filter_map(hop).collect();
        if hops.is_empty() {
            return None;
        }
        Some(FibRoute {
            prefix: *prefix,
            kind: tabby_fib_sync::RouteKind::Unicast(hops),
            pref_src: None,
            metric: self.metric_for(prefix, best),
        })
    }

    /// A learned route's kernel metric, as Calico 3.32 programs it
    /// (`calico_kernel_programming`): 2147483647 − LOCAL_PREF when the route
    /// carries one (a Calico node sends 2147483647 − its priority, so the
    /// metric is the originating node's priority, or the one an import
    /// filter's `priority` gave), else the family's normal priority. `None`
    /// when that is the family's normal priority: such routes follow a
    /// priority change without being sent again.
    fn metric_for(&self, prefix: &IpNet, best: &BestRoute) -> Option<u32> {
        let local_pref = best.attributes.attrs.local_pref?;
        let metric = tabby_rib::policy::local_pref_to_priority(local_pref);
        let normal = self.priority.map(|(v4, v6)| match prefix {
            IpNet::V4(_) => v4,
            IpNet::V6(_) => v6,
        });
        (normal != Some(metric)).then_some(metric)
    }

    /// The restart rule (RFC 4724 §4.1 for the kernel): once every peer
    /// sent End-of-RIB (`all_in`), when there is no peer at all, or at the
    /// deferral deadline, fib-sync may remove routes of a previous run.
    pub(super) fn check_converged(&mut self, now: Instant, all_in: bool, no_peers: bool) {
        if self.converged || !self.active() {
            return;
        }
        if all_in || no_peers || now >= self.deferral_deadline {
            info!(
                by_timer = !(all_in || no_peers),
                "routing converged: removing stale kernel routes of a previous run"
            );
            self.converged = true;
            if let Some(fib) = self.fib.as_ref() {
                let _ = fib.send(FibOp::Converged);
            }
        }
    }
}

impl Daemon {
    /// Where convergence stands for the kernel view: every peer up with
    /// End-of-RIB for each family, or no peers at all.
    pub(super) fn check_converged(&mut self, now: Instant) {
        if self.rib.is_none() {
            return;
        }
        let all_in = !self.peers.is_empty()
            && self.peers.values().all(|s| {
                s.track.state == State::Established
                    && !s.families.is_empty()
                    && s.families.is_subset(&s.eor)
            });
        let no_peers = self.peers.is_empty() && self.state.is_some();
        self.kernel.check_converged(now, all_in, no_peers);
    }

    pub fn in_fib(&self, prefix: &IpNet) -> bool {
        self.kernel.holds(prefix)
    }
}
