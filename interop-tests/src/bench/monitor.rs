//! A kernel route monitor for the benchmark: an rtnetlink socket in a lab
//! namespace subscribed to `RTNLGRP_IPV4_ROUTE` and `RTNLGRP_IPV6_ROUTE`, on
//! its own thread, that counts (and, if asked, time-stamps one by one) the
//! routes of one protocol the kernel adds or deletes. A stamp is taken when
//! `recv` returns, so it includes the kernel's notification delivery but
//! nothing of the process that programmed the route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use ipnet::IpNet;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::lab::{Lab, Ns};

/// `RTNLGRP_IPV4_ROUTE` and `RTNLGRP_IPV6_ROUTE` (linux/rtnetlink.h).
const RTNLGRP_IPV4_ROUTE: u32 = 7;
const RTNLGRP_IPV6_ROUTE: u32 = 11;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `RTA_DST`: the destination prefix attribute.
const RTA_DST: u16 = 1;
/// `struct nlmsghdr` and `struct rtmsg` sizes.
const NLMSG_HDR: usize = 16;
const RTMSG: usize = 12;

/// One route notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSeen {
    pub prefix: IpNet,
    pub added: bool,
    pub at: Instant,
}

/// Where a monitor's thread hands each notification.
type Sink = Box<dyn FnMut(RouteSeen) + Send>;

/// A running monitor; stops (and its thread ends) when dropped.
#[derive(Debug)]
pub struct RouteMonitor {
    /// Every notification, in kernel order ([`RouteMonitor::start`] only;
    /// a [`RouteMonitor::counter`] sends none).
    pub events: mpsc::Receiver<RouteSeen>,
    added: Arc<AtomicU64>,
    deleted: Arc<AtomicU64>,
    /// When the latest datagram with a route of ours arrived.
    last: Arc<Mutex<Option<Instant>>>,
    overrun: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RouteMonitor {
    /// Subscribes in `ns` to route changes of kernel protocol `proto`, each
    /// one sent on [`RouteMonitor::events`]; returns once subscribed.
    pub fn start(lab: &Lab, ns: &Ns, proto: u8) -> Result<RouteMonitor> {
        let (tx, events) = mpsc::channel();
        // The receiver may be gone at the end of a run.
        let sink: Sink = Box::new(move |ev| {
            let _ = tx.send(ev);
        });
        Self::open(lab, ns, proto, events, Some(sink))
    }

    /// Like [`RouteMonitor::start`] but only counting: for hundreds of
    /// thousands of routes nobody reads one by one, the monitor thread then
    /// does as little as it can beside the process under test.
    pub fn counter(lab: &Lab, ns: &Ns, proto: u8) -> Result<RouteMonitor> {
        let (_, events) = mpsc::channel();
        Self::open(lab, ns, proto, events, None)
    }

    /// Like [`RouteMonitor::start`] but every notification goes to `sink`,
    /// called on the monitor's thread, and none to [`RouteMonitor::events`]:
    /// many monitors (one per namespace) feeding one consumer.
    pub fn start_with(
        lab: &Lab,
        ns: &Ns,
        proto: u8,
        sink: impl FnMut(RouteSeen) + Send + 'static,
    ) -> Result<RouteMonitor> {
        let (_, events) = mpsc::channel();
        Self::open(lab, ns, proto, events, Some(Box::new(sink)))
    }

    fn open(
        lab: &Lab,
        ns: &Ns,
        proto: u8,
        events: mpsc::Receiver<RouteSeen>,
        sink: Option<Sink>,
    ) -> Result<RouteMonitor> {
        // The socket is created inside the namespace and keeps belonging to
        // it when read from another thread.
        let sock = lab
            .in_ns(ns, || -> std::io::Result<Socket> {
                let mut s = Socket::new(NETLINK_ROUTE)?;
                s.bind(&SocketAddr::new(0, 0))?;
                // 100k notifications arrive faster than a busy 2-core machine
                // schedules this thread: room for all of them, so none is lost.
                nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::RcvBufForce,
                    &(256 << 20),
                )
                .map_err(std::io::Error::from)?;
                // recv wakes up at least this often to see `stop`.
                nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::ReceiveTimeout,
                    &nix::sys::time::TimeVal::new(0, 100_000),
                )
                .map_err(std::io::Error::from)?;
                s.add_membership(RTNLGRP_IPV4_ROUTE)?;
                s.add_membership(RTNLGRP_IPV6_ROUTE)?;
                Ok(s)
            })?
            .with_context(|| format!("cannot open a route monitor socket in {ns}"))?;
        let mut sink = sink;
        let added = Arc::new(AtomicU64::new(0));
        let deleted = Arc::new(AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let overrun = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, d, l, o, s) = (
            added.clone(),
            deleted.clone(),
            last.clone(),
            overrun.clone(),
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("route-monitor".into())
            .spawn(move || {
                let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
                while !s.load(Ordering::Relaxed) {
                    buf.clear();
                    match sock.recv(&mut buf, 0) {
                        Ok(_) => {
                            let at = Instant::now();
                            let seen = parse(&buf, proto);
                            if seen.is_empty() {
                                continue;
                            }
                            // Stamped before the counts move: whoever sees
                            // the counts (Acquire) sees this stamp too.
                            *l.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
                            let adds = seen.iter().filter(|(_, added)| *added).count() as u64;
                            a.fetch_add(adds, Ordering::Release);
                            d.fetch_add(seen.len() as u64 - adds, Ordering::Release);
                            if let Some(sink) = sink.as_mut() {
                                for (prefix, added) in seen {
                                    sink(RouteSeen { prefix, added, at });
                                }
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                            ) => {}
                        // ENOBUFS: notifications were dropped.
                        Err(_) => o.store(true, Ordering::Relaxed),
                    }
                }
            })
            .context("cannot start the route monitor thread")?;
        Ok(RouteMonitor {
            events,
            added,
            deleted,
            last,
            overrun,
            stop,
            thread: Some(thread),
        })
    }

    /// Routes added so far.
    pub fn added(&self) -> u64 {
        self.added.load(Ordering::Acquire)
    }

    /// Routes deleted so far.
    pub fn deleted(&self) -> u64 {
        self.deleted.load(Ordering::Acquire)
    }

    /// When the latest notification of a route of ours was received.
    pub fn last_seen(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the thread to stop without waiting for it (dropping many
    /// monitors one by one waits up to 100 ms each otherwise).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Fails if the kernel dropped notifications (the counts are then low).
    pub fn check(&self) -> Result<()> {
        if self.overrun.load(Ordering::Relaxed) {
            return Err(anyhow!(
                "the route monitor's socket overran: notifications were lost"
            ));
        }
        Ok(())
    }

    /// Waits until `done(added, deleted)` holds; returns when it first did.
    pub fn wait_counts(&self, limit: Duration, done: impl Fn(u64, u64) -> bool) -> Result<Instant> {
        self.wait_until(limit, |a, d| Ok(done(a, d)))
    }

    /// [`RouteMonitor::wait_counts`] with a check that may give up early
    /// (e.g. when the process programming the routes died).
    pub fn wait_until(
        &self,
        limit: Duration,
        mut done: impl FnMut(u64, u64) -> Result<bool>,
    ) -> Result<Instant> {
        let t0 = Instant::now();
        loop {
            self.check()?;
            if done(self.added(), self.deleted())? {
                return Ok(Instant::now());
            }
            if t0.elapsed() > limit {
                return Err(anyhow!(
                    "after {limit:?} the kernel reported {} routes added and {} deleted",
                    self.added(),
                    self.deleted()
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The routes of protocol `proto` added (`true`) or deleted in one datagram
/// of rtnetlink messages. Malformed input ends the walk.
fn parse(buf: &[u8], proto: u8) -> Vec<(IpNet, bool)> {
    let mut out = Vec::new();
    let mut off = 0;
    while let Some(h) = buf.get(off..off + NLMSG_HDR + RTMSG) {
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len < NLMSG_HDR + RTMSG || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, …
        let (family, dst_len, protocol) = (h[NLMSG_HDR], h[NLMSG_HDR + 1], h[NLMSG_HDR + 5]);
        if (ty == RTM_NEWROUTE || ty == RTM_DELROUTE) && protocol == proto {
            let attrs = buf.get(off + NLMSG_HDR + RTMSG..off + len).unwrap_or(&[]);
            if let Some(p) = rta_dst(attrs, family).and_then(|a| IpNet::new(a, dst_len).ok()) {
                out.push((p, ty == RTM_NEWROUTE));
            }
        }
        off += (len + 3) & !3;
    }
    out
}

/// `RTA_DST` among route attributes of `family`; the unspecified address
/// when there is none (a default route).
fn rta_dst(mut attrs: &[u8], family: u8) -> Option<IpAddr> {
    let unspecified = match family {
        AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    while let Some(h) = attrs.get(..4) {
        let len = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let ty = u16::from_ne_bytes([h[2], h[3]]);
        if len < 4 {
            return None;
        }
        if ty == RTA_DST {
            let v = attrs.get(4..len)?;
            return match family {
                AF_INET => <[u8; 4]>::try_from(v).ok().map(IpAddr::from),
                _ => <[u8; 16]>::try_from(v).ok().map(IpAddr::from),
            };
        }
        attrs = attrs.get((len + 3) & !3..)?;
    }
    Some(unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTM_NEWROUTE for `dst/len` of `proto` with RTA_TABLE before RTA_DST.
    fn msg(ty: u16, family: u8, dst: &[u8], len: u8, proto: u8) -> Vec<u8> {
        let mut attrs = vec![];
        attrs.extend_from_slice(&8u16.to_ne_bytes());
        attrs.extend_from_slice(&15u16.to_ne_bytes()); // RTA_TABLE
        attrs.extend_from_slice(&254u32.to_ne_bytes());
        attrs.extend_from_slice(&(4 + dst.len() as u16).to_ne_bytes());
        attrs.extend_from_slice(&RTA_DST.to_ne_bytes());
        attrs.extend_from_slice(dst);
        let total = (NLMSG_HDR + RTMSG + attrs.len()) as u32;
        let mut m = vec![];
        m.extend_from_slice(&total.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&[0; 10]); // flags, seq, pid
        m.extend_from_slice(&[family, len, 0, 0, 254, proto, 0, 1]);
        m.extend_from_slice(&[0; 4]); // rtm_flags
        m.extend_from_slice(&attrs);
        m
    }

    fn v4(ty: u16, dst: [u8; 4], len: u8, proto: u8) -> Vec<u8> {
        msg(ty, AF_INET, &dst, len, proto)
    }

    #[test]
    fn parses_routes_of_one_protocol() {
        let mut buf = v4(RTM_NEWROUTE, [100, 65, 0, 7], 32, 84);
        buf.extend(v4(RTM_NEWROUTE, [100, 65, 0, 8], 32, 4));
        buf.extend(v4(RTM_DELROUTE, [100, 64, 1, 0], 26, 84));
        let v6: Ipv6Addr = "2001:db8:1000:5::".parse().unwrap();
        buf.extend(msg(RTM_NEWROUTE, AF_INET6, &v6.octets(), 64, 84));
        // A family we do not know is skipped, the walk goes on.
        buf.extend(msg(RTM_NEWROUTE, 7, &[1, 2, 3, 4], 32, 84));
        buf.extend(v4(RTM_DELROUTE, [100, 64, 2, 0], 26, 84));
        let got = parse(&buf, 84);
        assert_eq!(
            got,
            [
                ("100.65.0.7/32".parse().unwrap(), true),
                ("100.64.1.0/26".parse().unwrap(), false),
                ("2001:db8:1000:5::/64".parse().unwrap(), true),
                ("100.64.2.0/26".parse().unwrap(), false),
            ]
        );
    }

    #[test]
    fn a_wrong_length_address_is_skipped() {
        // An IPv6 route whose RTA_DST holds only 4 octets.
        let buf = msg(RTM_NEWROUTE, AF_INET6, &[32, 1, 13, 184], 64, 84);
        assert!(parse(&buf, 84).is_empty());
    }

    #[test]
    fn truncated_input_ends_the_walk() {
        let buf = v4(RTM_NEWROUTE, [100, 65, 0, 7], 32, 84);
        for cut in 0..buf.len() {
            assert!(parse(&buf[..cut], 84).is_empty(), "cut at {cut}");
        }
    }
}
