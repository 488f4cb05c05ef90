//! What the planner asks the kernel for: one route request per prefix at a
//! time, as data; `wire.rs` encodes it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::wire::{Body, OpKind, Shape};

/// One request the planner wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub prefix: IpNet,
    pub op: Op,
    /// Undoes someone else's change to our route.
    pub restore: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Install our route at its metric (`NLM_F_CREATE|NLM_F_EXCL`).
    Create(Wanted),
    /// Replace our route at its metric in place (`NLM_F_REPLACE`).
    Replace(Wanted),
    /// Delete our route at `metric` (by protocol).
    Delete { metric: u32 },
}

/// What a create or replace asks the kernel for: devices resolved to
/// indexes, so that in bulk mode the view can record what the kernel
/// acknowledged without looking the route up and resolving it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    pub shape: Shape,
    pub pref_src: Option<IpAddr>,
    /// The metric the route goes in at (part of its key).
    pub metric: u32,
    /// The nexthop object of ours the route names (`RTA_NH_ID`) instead of
    /// spelling out its single next hop; `shape` says what it holds.
    pub nh: Option<u32>,
}

impl Request {
    pub(crate) fn kind(&self) -> OpKind {
        match self.op {
            Op::Create(_) => OpKind::Create,
            Op::Replace(_) => OpKind::Replace,
            Op::Delete { .. } => OpKind::Delete,
        }
    }

    /// What the request carries besides the key, for `wire::push_request`.
    pub(crate) fn body(&self) -> Body<'_> {
        match &self.op {
            Op::Create(w) | Op::Replace(w) => Body::Route(&w.shape, w.pref_src, w.metric, w.nh),
            Op::Delete { metric } => Body::Delete(*metric),
        }
    }
}
