//! The per-prefix maps of the planner and the kernel view.
//!
//! They are hit several times per route; SipHash showed up in profiles, and
//! these keys come from the RIB and the kernel, not from an unauthenticated
//! peer that could aim for collisions.

use ipnet::IpNet;

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// `remove` that skips hashing when the map is empty (the usual case for
/// the error and blocked maps, touched once per route on the hot path).
pub(crate) fn remove_if_any<V>(m: &mut HashMap<IpNet, V>, p: &IpNet) {
    if !m.is_empty() {
        m.remove(p);
    }
}

/// `remove_if_any` for a set.
pub(crate) fn remove_if_any_key(m: &mut HashSet<IpNet>, p: &IpNet) {
    if !m.is_empty() {
        m.remove(p);
    }
}
