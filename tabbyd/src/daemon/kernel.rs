//! The kernel view: best routes turned into kernel routes (Calico's rules:
//! own blocks blackholed, tunnelled next hops onlink through the tunnel
//! device) and the restart rule's convergence, sent to fib-sync as one
//! ordered op stream.

use super::*;

impl Daemon {
    pub(super) fn best_changed(&mut self, c: BestChange) {
        // Built only for live watchers: a reflector's million changes
        // would otherwise each be converted for nobody.
        self.journal
            .publish_with(c.prefix, || route_update(c.prefix, c.best.as_ref()));
        // A reflector without a FIB has no kernel route to work out.
        if self.fib.is_some() {
            let op = self.fib_route(&c.prefix, c.best.as_ref());
            self.program(c.prefix, op);
        }
    }
    pub(super) fn program(&mut self, prefix: IpNet, route: Option<FibRoute>) {
        let Some(fib) = self.fib.as_ref() else {
            return;
        };
        let op = match route {
            Some(r) => {
                self.in_fib.insert(prefix);
                FibOp::Set(r)
            }
            None => {
                if !self.in_fib.remove(&prefix) {
                    return;
                }
                FibOp::Remove(prefix)
            }
        };
        let kind = match op {
            FibOp::Set(_) => "set",
            FibOp::Remove(_) => "remove",
            FibOp::Converged => "converged",
        };
        self.metrics
            .fib_operations
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        let _ = fib.send(op);
    }
    /// The kernel route for a best path (Calico semantics), if any.
    pub(super) fn fib_route(&self, prefix: &IpNet, best: Option<&BestRoute>) -> Option<FibRoute> {
        let best = best?;
        if best.local {
            // Own pod blocks are blackholed: more specific per-pod routes win.
            let blackhole = match &best.source {
                RouteSource::Local { owner, kind } if owner == TOPOLOGY_OWNER => self
                    .state
                    .as_ref()
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
        let mode = self
            .state
            .as_ref()
            .map(|s| s.kernel_route_for(prefix))
            .unwrap_or(KernelRoute::Direct);
        let hop = |gw: IpAddr| -> Option<NextHopSpec> {
            match mode {
                KernelRoute::Skip => None,
                KernelRoute::Direct => Some(NextHopSpec::gateway(gw)),
                KernelRoute::Tunnel => {
                    Some(NextHopSpec::onlink(gw, self.opts.tunnel_device.clone()))
                }
                KernelRoute::TunnelUnlessNextHopIn(net) => match gw {
                    IpAddr::V4(v4) if net.contains(&v4) => Some(NextHopSpec::gateway(gw)),
                    _ => Some(NextHopSpec::onlink(gw, self.opts.tunnel_device.clone())),
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
        })
    }
    pub(super) fn reprogram_all(&mut self) {
        let Some(rib) = self.rib.as_ref() else {
            return;
        };
        let routes = rib.best_routes();
        for (prefix, best) in routes {
            let r = self.fib_route(&prefix, Some(&best));
            self.program(prefix, r);
        }
    }
    pub(super) fn check_converged(&mut self, now: Instant) {
        if self.fib_converged || self.fib.is_none() || self.rib.is_none() {
            return;
        }
        let all_in = !self.peers.is_empty()
            && self.peers.values().all(|s| {
                s.status.state == am::SessionState::Established
                    && !s.families.is_empty()
                    && s.families.is_subset(&s.eor)
            });
        let no_peers = self.peers.is_empty() && self.state.is_some();
        if all_in || no_peers || now >= self.deferral_deadline {
            info!(
                by_timer = !(all_in || no_peers),
                "routing converged: removing stale kernel routes of a previous run"
            );
            self.fib_converged = true;
            if let Some(fib) = self.fib.as_ref() {
                let _ = fib.send(FibOp::Converged);
            }
        }
    }

    /// Whether `prefix` is programmed in the kernel.
    pub fn in_fib(&self, prefix: &IpNet) -> bool {
        self.in_fib.contains(prefix)
    }
}
