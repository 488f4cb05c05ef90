//! Rendering API answers as aligned tables, JSON or YAML.

use anyhow::Result;
use clap::ValueEnum;
use serde_json::{Value, json};
use tabby_proto::v1 as pb;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable table.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
    /// Graphviz DOT (`tabbyctl graph`, its default).
    Dot,
    /// SVG drawn by Graphviz's `dot` (`tabbyctl graph`).
    Svg,
}

impl Output {
    /// The error for a picture format asked of a command that prints text.
    pub fn not_a_picture(self) -> anyhow::Error {
        anyhow::anyhow!(
            "-o {} draws a picture: it is for `tabbyctl graph`; use -o table, json or yaml here",
            self.to_possible_value()
                .map_or_else(String::new, |v| v.get_name().to_owned())
        )
    }
}

/// An answer ready to print in any format.
#[derive(Debug)]
pub enum Rendered {
    /// A value built here, with its human-readable text.
    Message { value: Value, table: String },
    /// A document from the daemon, printed with its fields in the daemon's
    /// order (a `serde_json::Value` would sort them); YAML stands for the
    /// table.
    Document(serde_yaml_ng::Value),
}

impl Rendered {
    /// A structured value with its human-readable text.
    pub fn message(value: Value, table: String) -> Rendered {
        Rendered::Message { value, table }
    }

    /// Formats for printing.
    pub fn format(&self, out: Output) -> Result<String> {
        Ok(match (self, out) {
            (Rendered::Message { table, .. }, Output::Table) => table.clone(),
            (Rendered::Message { value, .. }, Output::Json) => serde_json::to_string_pretty(value)?,
            (Rendered::Message { value, .. }, Output::Yaml) => serde_yaml_ng::to_string(value)?,
            (Rendered::Document(d), Output::Json) => serde_json::to_string_pretty(d)?,
            (Rendered::Document(d), Output::Table | Output::Yaml) => serde_yaml_ng::to_string(d)?,
            (_, Output::Dot | Output::Svg) => return Err(out.not_a_picture()),
        })
    }
}

/// `tabbyctl config`: the daemon's effective configuration (JSON, schema
/// `tabby.effective-config/v1`), as YAML by default or with `-o yaml`, as
/// JSON with `-o json`. A daemon that answers something other than JSON (an
/// older one sent a debug dump) gets its text shown as it came.
pub fn config(json: &str) -> Rendered {
    match serde_json::from_str::<serde_yaml_ng::Value>(json) {
        Ok(doc) => Rendered::Document(doc),
        Err(_) => Rendered::message(Value::String(json.to_owned()), json.to_owned()),
    }
}

/// Aligns rows under a header, two spaces between columns.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// "3d4h", "2h5m", "4m10s", "9s".
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 UTC from Unix seconds: "2026-12-07T15:40:01Z".
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01: (year, month, day).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01 so that the leap day ends each 400-year era's
    // years; 719_468 days separate it from the Unix epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of the era, 0..=146_096
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = era * 400 + yoe + u64::from(m <= 2);
    (y, m, d)
}

/// An interval in microseconds as milliseconds with at most one decimal:
/// "300ms", "1.5ms"; "-" for 0 (not known yet).
pub fn ms(us: u32) -> String {
    if us == 0 {
        return "-".into();
    }
    let tenths = (u64::from(us) + 50) / 100;
    if tenths % 10 == 0 {
        format!("{}ms", tenths / 10)
    } else {
        format!("{}.{}ms", tenths / 10, tenths % 10)
    }
}

pub(crate) fn state_name(v: i32) -> &'static str {
    match pb::SessionState::try_from(v) {
        Ok(pb::SessionState::Idle) => "Idle",
        Ok(pb::SessionState::Connect) => "Connect",
        Ok(pb::SessionState::Active) => "Active",
        Ok(pb::SessionState::OpenSent) => "OpenSent",
        Ok(pb::SessionState::OpenConfirm) => "OpenConfirm",
        Ok(pb::SessionState::Established) => "Established",
        _ => "Unknown",
    }
}

pub(crate) fn peer_type_name(v: i32) -> &'static str {
    match pb::PeerType::try_from(v) {
        Ok(pb::PeerType::NodeMesh) => "node-mesh",
        Ok(pb::PeerType::Global) => "global",
        Ok(pb::PeerType::NodeSpecific) => "node-specific",
        Ok(pb::PeerType::Api) => "api",
        Ok(pb::PeerType::Workload) => "workload",
        _ => "-",
    }
}

fn family_name(v: i32) -> &'static str {
    match pb::AddressFamily::try_from(v) {
        Ok(pb::AddressFamily::Ipv4) => "ipv4",
        Ok(pb::AddressFamily::Ipv6) => "ipv6",
        _ => "unspecified",
    }
}

/// "65000:100".
pub fn community(c: u32) -> String {
    format!("{}:{}", c >> 16, c & 0xffff)
}

fn large(c: &pb::LargeCommunity) -> String {
    format!("{}:{}:{}", c.global_admin, c.local_data1, c.local_data2)
}

fn peer_since(p: &pb::Peer) -> String {
    if p.state_since_unix_seconds == 0 {
        "-".into()
    } else {
        duration(now_unix().saturating_sub(p.state_since_unix_seconds))
    }
}

fn peer_info(p: &pb::Peer) -> String {
    if !p.enabled {
        return "disabled".into();
    }
    if !p.info.is_empty() {
        return p.info.clone();
    }
    match &p.last_error {
        Some(e) if e.code != 0 => format!("last error {}/{}: {}", e.code, e.subcode, e.text),
        Some(e) => e.text.clone(),
        None => String::new(),
    }
}

fn peer_json(p: &pb::Peer) -> Value {
    let c = p.config.clone().unwrap_or_default();
    let n = p.counters.unwrap_or_default();
    json!({
        "address": c.address,
        "remote_as": c.remote_as,
        "local_as": c.local_as,
        "type": peer_type_name(c.r#type),
        "description": c.description,
        "state": state_name(p.state),
        "enabled": p.enabled,
        "state_since_unix_seconds": p.state_since_unix_seconds,
        "uptime_seconds": p.uptime_seconds,
        "remote_router_id": p.remote_router_id,
        "local_address": p.local_address,
        "hold_time_seconds": c.hold_time_seconds,
        "keepalive_seconds": c.keepalive_seconds,
        "negotiated_hold_time_seconds": p.negotiated_hold_time_seconds,
        "negotiated_families": p.negotiated_families.iter().map(|f| family_name(*f)).collect::<Vec<_>>(),
        "graceful_restart_pending": p.graceful_restart_pending,
        "info": p.info,
        "counters": {
            "prefixes_received": n.prefixes_received,
            "prefixes_accepted": n.prefixes_accepted,
            "prefixes_advertised": n.prefixes_advertised,
            "updates_received": n.updates_received,
            "updates_sent": n.updates_sent,
            "messages_received": n.messages_received,
            "messages_sent": n.messages_sent,
            "notifications_received": n.notifications_received,
            "notifications_sent": n.notifications_sent,
            "keepalives_received": n.keepalives_received,
            "keepalives_sent": n.keepalives_sent,
            "flaps": n.flaps,
        },
        "last_error": p.last_error.as_ref().map(|e| json!({
            "code": e.code, "subcode": e.subcode, "text": e.text,
            "sent_by_local": e.sent_by_local, "at_unix_seconds": e.at_unix_seconds,
        })),
        "bfd": p.bfd.as_ref().map(bfd_json),
        "settings": p.settings.as_ref().map(settings_json),
    })
}

/// "auto", "self" or "keep" (the words of `tabbyctl config`).
fn next_hop_name(v: i32) -> &'static str {
    match pb::NextHopMode::try_from(v) {
        Ok(pb::NextHopMode::Auto) => "auto",
        Ok(pb::NextHopMode::Self_) => "self",
        Ok(pb::NextHopMode::Keep) => "keep",
        _ => "unspecified",
    }
}

/// An empty text as `null`.
fn text_or_null(s: &str) -> Value {
    if s.is_empty() {
        Value::Null
    } else {
        Value::from(s)
    }
}

/// The `settings` of a peer in `peers -o json|yaml`: the keys and words of
/// its entry in `tabbyctl config` (families as in `negotiated_families`);
/// what is not set is `null`.
fn settings_json(s: &pb::PeerSettings) -> Value {
    json!({
        "origin": s.origin,
        "calico_node": text_or_null(&s.calico_node),
        "port": s.port,
        "local_as": s.local_as,
        "internal": s.internal,
        "passive": s.passive,
        "route_reflector_client": s.route_reflector_client,
        "cluster_id": text_or_null(&s.cluster_id),
        "ttl_security_hops": Some(s.ttl_security_hops).filter(|h| *h != 0),
        "password_set": s.password_set,
        "next_hop": next_hop_name(s.next_hop),
        "source_address": text_or_null(&s.source_address),
        "families": s.families.iter().map(|f| family_name(*f)).collect::<Vec<_>>(),
        "extended_next_hop": s.extended_next_hop,
        "hold_time_seconds": s.hold_time_seconds,
        "keepalive_seconds": s.keepalive_seconds,
        "graceful_restart": s.graceful_restart.map(|g| json!({
            "restart_time_seconds": g.restart_time_seconds,
            "notification": g.notification,
            "forwarding_preserved": g.forwarding_preserved,
        })),
        "long_lived_stale_time_seconds": s.long_lived_stale_time_seconds,
        "allowed_local_as": s.allowed_local_as,
        "reachable_by": text_or_null(&s.reachable_by),
        "filters": s.filters,
        "import_policy": text_or_null(&s.import_policy),
        "export_policy": text_or_null(&s.export_policy),
    })
}

/// The session-settings lines of `tabbyctl peers show`.
fn settings_detail(s: &pb::PeerSettings) -> String {
    let mut t = format!("  origin: {}", s.origin);
    if !s.calico_node.is_empty() {
        t.push_str(&format!(" (Calico node {})", s.calico_node));
    }
    t.push_str(&format!(
        "\n  session: port {}, local AS {} ({}), {}",
        s.port,
        s.local_as,
        if s.internal { "iBGP" } else { "eBGP" },
        if s.passive {
            "passive (waits for the peer)"
        } else {
            "active"
        },
    ));
    if !s.source_address.is_empty() {
        t.push_str(&format!(", source address {}", s.source_address));
    }
    let families: Vec<&str> = s.families.iter().map(|f| family_name(*f)).collect();
    t.push_str(&format!("\n  families offered: {}", families.join(", ")));
    if s.extended_next_hop {
        t.push_str(" (IPv4 with IPv6 next hops, RFC 8950)");
    }
    t.push_str(&format!(
        "\n  timers proposed: hold {}s, keepalive {}\n",
        s.hold_time_seconds,
        s.keepalive_seconds
            .map_or("a third of the hold time".to_string(), |k| format!("{k}s")),
    ));
    match &s.graceful_restart {
        Some(g) => t.push_str(&format!(
            "  graceful restart: {}s{}{}",
            g.restart_time_seconds,
            if g.notification {
                ", after NOTIFICATION too (N bit)"
            } else {
                ""
            },
            if g.forwarding_preserved {
                ", forwarding preserved"
            } else {
                ""
            },
        )),
        None => t.push_str("  graceful restart: off"),
    }
    match s.long_lived_stale_time_seconds {
        Some(l) => t.push_str(&format!("; long-lived stale time {l}s\n")),
        None => t.push_str("; long-lived: off\n"),
    }
    t.push_str(&format!(
        "  security: {}, {}\n",
        if s.password_set {
            "TCP-MD5 password set"
        } else {
            "no password"
        },
        match s.ttl_security_hops {
            0 => "no TTL security (multihop allowed)".to_string(),
            1 => "TTL security: 1 hop (directly connected)".to_string(),
            h => format!("TTL security: at most {h} hops"),
        },
    ));
    t.push_str(&format!("  next hop: {}", next_hop_name(s.next_hop)));
    if s.route_reflector_client {
        t.push_str(&format!(
            "; route-reflector client, cluster id {}",
            if s.cluster_id.is_empty() {
                "-"
            } else {
                &s.cluster_id
            }
        ));
    }
    if s.allowed_local_as != 0 {
        t.push_str(&format!(
            "; local AS allowed {} time(s) in AS_PATH",
            s.allowed_local_as
        ));
    }
    t.push('\n');
    if !s.reachable_by.is_empty() {
        t.push_str(&format!("  reachable by: {}\n", s.reachable_by));
    }
    if !s.filters.is_empty() {
        t.push_str(&format!("  filters: {}\n", s.filters.join(", ")));
    }
    let or_none = |p: &str| {
        if p.is_empty() {
            "-".to_string()
        } else {
            format!("{p:?}")
        }
    };
    t.push_str(&format!(
        "  policies: import {}, export {}\n",
        or_none(&s.import_policy),
        or_none(&s.export_policy)
    ));
    t
}

/// "Up", "Down", ... (the model's phase names).
pub(crate) fn bfd_phase_name(v: i32) -> &'static str {
    match pb::BfdPhase::try_from(v) {
        Ok(pb::BfdPhase::Starting) => "Starting",
        Ok(pb::BfdPhase::Up) => "Up",
        Ok(pb::BfdPhase::Down) => "Down",
        Ok(pb::BfdPhase::AdminDown) => "AdminDown",
        Ok(pb::BfdPhase::Unavailable) => "Unavailable",
        _ => "Unknown",
    }
}

/// Every field of a BFD session; the phase as `state`.
fn bfd_json(b: &pb::BfdStatus) -> Value {
    json!({
        "state": bfd_phase_name(b.phase),
        "detail": b.detail,
        "since_unix_seconds": b.since_unix_seconds,
        "multihop": b.multihop,
        "desired_min_tx_us": b.desired_min_tx_us,
        "required_min_rx_us": b.required_min_rx_us,
        "multiplier": b.multiplier,
        "negotiated_tx_us": b.negotiated_tx_us,
        "negotiated_rx_us": b.negotiated_rx_us,
        "remote_multiplier": b.remote_multiplier,
        "detection_time_us": b.detection_time_us,
        "local_discriminator": b.local_discriminator,
        "remote_discriminator": b.remote_discriminator,
        "last_diagnostic": b.last_diagnostic,
        "uptime_seconds": b.uptime_seconds,
        "flaps": b.flaps,
        "damped": b.damped,
        "bgp_held": b.bgp_held,
        "wait_for_up": b.wait_for_up,
        "graceful": b.graceful,
        "packets_in": b.packets_in,
        "packets_out": b.packets_out,
    })
}

/// What the INFO column of `tabbyctl bfd` says: why BFD cannot run, or why
/// the BGP session is held down.
fn bfd_note(b: &pb::BfdStatus) -> String {
    if !b.detail.is_empty() {
        b.detail.clone()
    } else if b.damped {
        "damped: BFD is flapping, BGP held down".into()
    } else if b.bgp_held {
        "BGP held down until BFD is Up".into()
    } else {
        String::new()
    }
}

/// Detect Mult, ours/the peer's: "3/3", "3/-" before the peer is heard.
fn bfd_mult(b: &pb::BfdStatus) -> String {
    match b.remote_multiplier {
        0 => format!("{}/-", b.multiplier),
        m => format!("{}/{m}", b.multiplier),
    }
}

fn address(p: &pb::Peer) -> String {
    p.config
        .as_ref()
        .map(|c| c.address.clone())
        .unwrap_or_default()
}

const BFD_HEADER: [&str; 10] = [
    "PEER", "STATE", "TX", "RX", "MULT", "DETECT", "DIAG", "UPTIME", "FLAPS", "INFO",
];

/// `tabbyctl bfd`: the BFD sessions of the peers that have one.
pub fn bfd(peers: &[pb::Peer]) -> Rendered {
    let with: Vec<(String, &pb::BfdStatus)> = peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (address(p), b)))
        .collect();
    let value = Value::Array(
        with.iter()
            .map(|(a, b)| {
                let mut v = bfd_json(b);
                if let Value::Object(m) = &mut v {
                    m.insert("peer".into(), Value::String(a.clone()));
                }
                v
            })
            .collect(),
    );
    if with.is_empty() {
        return Rendered::message(
            value,
            "no peer has BFD; see the README's BFD section\n".into(),
        );
    }
    let rows: Vec<Vec<String>> = with
        .iter()
        .map(|(a, b)| {
            vec![
                a.clone(),
                bfd_phase_name(b.phase).to_string(),
                ms(b.negotiated_tx_us),
                ms(b.negotiated_rx_us),
                bfd_mult(b),
                ms(b.detection_time_us),
                if b.last_diagnostic.is_empty() {
                    "-".into()
                } else {
                    b.last_diagnostic.clone()
                },
                if b.phase == pb::BfdPhase::Up as i32 {
                    duration(b.uptime_seconds)
                } else {
                    "-".into()
                },
                b.flaps.to_string(),
                bfd_note(b),
            ]
        })
        .collect();
    Rendered::message(value, table(&BFD_HEADER, &rows))
}

/// The phases `tabbyctl status` counts, in the order it prints them.
const BFD_PHASES: [(pb::BfdPhase, &str, &str); 5] = [
    (pb::BfdPhase::Up, "up", "up"),
    (pb::BfdPhase::Starting, "starting", "starting"),
    (pb::BfdPhase::Down, "down", "down"),
    (pb::BfdPhase::AdminDown, "admin down", "admin_down"),
    (pb::BfdPhase::Unavailable, "unavailable", "unavailable"),
];

/// BFD sessions by phase: the status line ("3 up, 1 down") and its JSON;
/// `None` when no peer has BFD.
fn bfd_summary(peers: &[pb::Peer]) -> Option<(String, Value)> {
    let phases: Vec<i32> = peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| b.phase))
        .collect();
    if phases.is_empty() {
        return None;
    }
    let mut words = Vec::new();
    let mut counts = serde_json::Map::new();
    for (phase, word, key) in BFD_PHASES {
        let n = phases.iter().filter(|v| **v == phase as i32).count();
        if n > 0 {
            words.push(format!("{n} {word}"));
        }
        counts.insert(key.into(), n.into());
    }
    let unknown = phases
        .iter()
        .filter(|v| !BFD_PHASES.iter().any(|(p, _, _)| *p as i32 == **v))
        .count();
    if unknown > 0 {
        words.push(format!("{unknown} unknown"));
        counts.insert("unknown".into(), unknown.into());
    }
    Some((words.join(", "), Value::Object(counts)))
}

/// The peers table; with a BFD column (after STATE) only when some peer has
/// BFD, so that tables without BFD read as they always did.
/// A peer as the operator names it: its address, with the port when it is
/// not BGP's (a peer may have a session on each of several ports).
pub(crate) fn peer_name(p: &pb::Peer) -> String {
    let address = p.config.as_ref().map_or("", |c| c.address.as_str());
    match p.settings.as_ref().map_or(0, |s| s.port) {
        0 | 179 => address.to_string(),
        port if address.contains(':') => format!("[{address}]:{port}"),
        port => format!("{address}:{port}"),
    }
}

fn peer_table(peers: &[pb::Peer]) -> String {
    let with_bfd = peers.iter().any(|p| p.bfd.is_some());
    let mut header = PEER_HEADER.to_vec();
    if with_bfd {
        header.insert(PEER_BFD_COLUMN, "BFD");
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            let c = p.config.clone().unwrap_or_default();
            let n = p.counters.unwrap_or_default();
            let mut row = vec![
                peer_name(p),
                peer_type_name(c.r#type).to_string(),
                c.remote_as.to_string(),
                state_name(p.state).to_string(),
                peer_since(p),
                n.prefixes_received.to_string(),
                n.prefixes_advertised.to_string(),
                peer_info(p),
            ];
            if with_bfd {
                let b = p.bfd.as_ref().map_or("-", |b| bfd_phase_name(b.phase));
                row.insert(PEER_BFD_COLUMN, b.to_string());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

const PEER_HEADER: [&str; 8] = ["PEER", "TYPE", "AS", "STATE", "SINCE", "IN", "OUT", "INFO"];
/// Where the BFD column goes: right after STATE.
const PEER_BFD_COLUMN: usize = 4;

/// `tabbyctl peers`.
pub fn peers(peers: &[pb::Peer]) -> Rendered {
    let text = if peers.is_empty() {
        "no peers configured\n".to_string()
    } else {
        peer_table(peers)
    };
    Rendered::message(Value::Array(peers.iter().map(peer_json).collect()), text)
}

pub(crate) fn datastore_name(v: i32) -> &'static str {
    match pb::DatastoreSyncState::try_from(v) {
        Ok(pb::DatastoreSyncState::Disabled) => "disabled",
        Ok(pb::DatastoreSyncState::Syncing) => "syncing",
        Ok(pb::DatastoreSyncState::InSync) => "in sync",
        Ok(pb::DatastoreSyncState::Disconnected) => "disconnected",
        _ => "unknown",
    }
}

pub(crate) fn fib_name(v: i32) -> &'static str {
    match pb::FibSyncState::try_from(v) {
        Ok(pb::FibSyncState::Disabled) => "disabled",
        Ok(pb::FibSyncState::Syncing) => "syncing",
        Ok(pb::FibSyncState::InSync) => "in sync",
        Ok(pb::FibSyncState::Error) => "error",
        _ => "unknown",
    }
}

pub(crate) fn gr_name(v: i32) -> &'static str {
    match pb::GracefulRestartState::try_from(v) {
        Ok(pb::GracefulRestartState::Disabled) => "disabled",
        Ok(pb::GracefulRestartState::Idle) => "idle",
        Ok(pb::GracefulRestartState::Restarting) => "restarting",
        Ok(pb::GracefulRestartState::Helping) => "helping a restarting peer",
        _ => "unknown",
    }
}

fn with_detail(s: &str, d: &str) -> String {
    if d.is_empty() {
        s.to_string()
    } else {
        format!("{s} ({d})")
    }
}

/// `tabbyctl status`.
pub fn status(st: &pb::StatusResponse, peers: &[pb::Peer]) -> Rendered {
    let mut text = format!(
        "tabbyd {} is running, up {}\nrouter id {}, AS {}, {} routes\n\
         datastore: {}\nfib: {}\ngraceful restart: {}\n\npeers: {} configured, {} established\n",
        st.version,
        duration(st.uptime_seconds),
        st.router_id,
        st.local_as,
        st.routes,
        with_detail(datastore_name(st.datastore_sync), &st.datastore_detail),
        with_detail(fib_name(st.fib_sync), &st.fib_detail),
        with_detail(gr_name(st.graceful_restart), &st.graceful_restart_detail),
        st.peers_configured,
        st.peers_established,
    );
    let bfd = bfd_summary(peers);
    if let Some((line, _)) = &bfd {
        text.push_str(&format!("BFD: {line}\n"));
    }
    if !peers.is_empty() {
        text.push_str(&peer_table(peers));
    }
    let mut value = json!({
        "router_id": st.router_id,
        "local_as": st.local_as,
        "version": st.version,
        "uptime_seconds": st.uptime_seconds,
        "routes": st.routes,
        "datastore": {"state": datastore_name(st.datastore_sync), "detail": st.datastore_detail},
        "fib": {"state": fib_name(st.fib_sync), "detail": st.fib_detail},
        "graceful_restart": {"state": gr_name(st.graceful_restart), "detail": st.graceful_restart_detail},
        "peers_configured": st.peers_configured,
        "peers_established": st.peers_established,
        "log_level": st.log_level,
        "bgp_listen_port": st.bgp_listen_port,
        "bgp_listen_addresses": st.bgp_listen_addresses,
        "peers": peers.iter().map(peer_json).collect::<Vec<_>>(),
    });
    if let (Some((_, counts)), Value::Object(m)) = (bfd, &mut value) {
        m.insert("bfd".into(), counts);
    }
    Rendered::message(value, text)
}

/// `tabbyctl peers show ADDR`.
pub fn peer_detail(p: &pb::Peer) -> Rendered {
    let c = p.config.clone().unwrap_or_default();
    let n = p.counters.unwrap_or_default();
    let mut t = format!(
        "peer {} AS {} ({})\n  state: {} for {}{}\n",
        peer_name(p),
        c.remote_as,
        peer_type_name(c.r#type),
        state_name(p.state),
        peer_since(p),
        if p.enabled {
            ""
        } else {
            ", administratively disabled"
        }
    );
    if !c.description.is_empty() {
        t.push_str(&format!("  description: {}\n", c.description));
    }
    if let Some(s) = &p.settings {
        t.push_str(&settings_detail(s));
    }
    if !p.remote_router_id.is_empty() {
        t.push_str(&format!("  remote router id: {}\n", p.remote_router_id));
    }
    if !p.local_address.is_empty() {
        t.push_str(&format!("  local address: {}\n", p.local_address));
    }
    t.push_str(&format!(
        "  hold time: {} negotiated, {} configured\n",
        p.negotiated_hold_time_seconds, c.hold_time_seconds
    ));
    t.push_str(&format!(
        "  prefixes: {} received, {} accepted, {} advertised\n  updates: {} in, {} out; messages: {} in, {} out; flaps: {}\n",
        n.prefixes_received,
        n.prefixes_accepted,
        n.prefixes_advertised,
        n.updates_received,
        n.updates_sent,
        n.messages_received,
        n.messages_sent,
        n.flaps
    ));
    if let Some(e) = &p.last_error {
        t.push_str(&format!(
            "  last error: {} NOTIFICATION {}/{}: {}\n",
            if e.sent_by_local { "sent" } else { "received" },
            e.code,
            e.subcode,
            e.text
        ));
    }
    if !p.info.is_empty() {
        t.push_str(&format!("  info: {}\n", p.info));
    }
    if let Some(b) = &p.bfd {
        t.push_str(&bfd_detail(b));
    }
    Rendered::message(peer_json(p), t)
}

/// The BFD lines of `tabbyctl peers show`.
fn bfd_detail(b: &pb::BfdStatus) -> String {
    let up = b.phase == pb::BfdPhase::Up as i32;
    let in_phase_for = if up {
        format!(" for {}", duration(b.uptime_seconds))
    } else if b.since_unix_seconds != 0 {
        format!(
            " for {}",
            duration(now_unix().saturating_sub(b.since_unix_seconds))
        )
    } else {
        String::new()
    };
    let mut t = format!(
        "  bfd: {}{in_phase_for}, {}; tx {}, rx {}, multiplier {}, detection {}; flaps {}\n",
        bfd_phase_name(b.phase),
        if b.multihop { "multihop" } else { "single-hop" },
        ms(b.negotiated_tx_us),
        ms(b.negotiated_rx_us),
        bfd_mult(b),
        ms(b.detection_time_us),
        b.flaps,
    );
    t.push_str(&format!(
        "  bfd configured: min tx {}, min rx {}, multiplier {}{}{}\n",
        ms(b.desired_min_tx_us),
        ms(b.required_min_rx_us),
        b.multiplier,
        if b.wait_for_up { ", wait for up" } else { "" },
        if b.graceful { ", graceful" } else { "" },
    ));
    if !b.last_diagnostic.is_empty() {
        t.push_str(&format!("  bfd last diagnostic: {}\n", b.last_diagnostic));
    }
    let note = bfd_note(b);
    if !note.is_empty() {
        t.push_str(&format!("  bfd note: {note}\n"));
    }
    t
}

pub(crate) fn source(p: &pb::Path) -> String {
    match p.source.as_ref().and_then(|s| s.source.as_ref()) {
        Some(pb::path_source::Source::LocalOwner(o)) => format!("local:{o}"),
        Some(pb::path_source::Source::PeerAddress(a)) => a.clone(),
        None => "-".into(),
    }
}

fn path_json(p: &pb::Path) -> Value {
    json!({
        "next_hop": p.next_hop,
        "as_path": p.as_path,
        "origin": match pb::Origin::try_from(p.origin) { Ok(pb::Origin::Egp) => "egp", Ok(pb::Origin::Incomplete) => "incomplete", _ => "igp" },
        "local_pref": p.local_pref,
        "med": p.med,
        "communities": p.communities.iter().map(|c| community(*c)).collect::<Vec<_>>(),
        "large_communities": p.large_communities.iter().map(large).collect::<Vec<_>>(),
        "source": source(p),
        "best": p.best,
        "age_seconds": p.age_seconds,
        "stale": p.stale,
    })
}

fn attrs(p: &pb::Path) -> String {
    let mut v: Vec<String> = p.communities.iter().map(|c| community(*c)).collect();
    v.extend(p.large_communities.iter().map(large));
    v.join(" ")
}

/// `tabbyctl routes`.
pub fn routes(routes: &[pb::Route]) -> Rendered {
    let mut rows = Vec::new();
    for r in routes {
        for p in &r.paths {
            rows.push(vec![
                if p.best {
                    "*".to_string()
                } else {
                    String::new()
                },
                r.prefix.clone(),
                p.next_hop.clone(),
                if p.as_path.is_empty() {
                    "-".into()
                } else {
                    p.as_path
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                },
                source(p),
                duration(p.age_seconds),
                attrs(p),
            ]);
        }
    }
    let value = Value::Array(
        routes
            .iter()
            .map(|r| json!({"prefix": r.prefix, "family": family_name(r.family), "paths": r.paths.iter().map(path_json).collect::<Vec<_>>()}))
            .collect(),
    );
    Rendered::message(
        value,
        table(
            &[
                "",
                "PREFIX",
                "NEXT HOP",
                "AS PATH",
                "FROM",
                "AGE",
                "COMMUNITIES",
            ],
            &rows,
        ),
    )
}

/// `tabbyctl route explain`.
pub fn explanation(e: &pb::ExplainRouteResponse) -> Rendered {
    let mut t = format!("{}: {} candidate path(s)\n", e.prefix, e.candidates.len());
    for c in &e.candidates {
        let p = c.path.clone().unwrap_or_default();
        t.push_str(&format!(
            "  {} via {} from {}: {}\n",
            if p.best { "best" } else { "    " },
            p.next_hop,
            source(&p),
            c.reason
        ));
    }
    if let Some(d) = &e.departed {
        t.push_str(&format!(
            "paths from {} {} at {}: {}\n",
            d.peer_address,
            if d.withdrawn {
                "withdrawn"
            } else {
                "kept as stale"
            },
            rfc3339(d.at_unix_seconds),
            d.reason
        ));
    }
    if !e.exports.is_empty() {
        t.push_str("exported to:\n");
        for x in &e.exports {
            t.push_str(&format!(
                "  {} {}: {}\n",
                x.peer_address,
                if x.exported { "yes" } else { "no" },
                x.reason
            ));
        }
    }
    let value = json!({
        "prefix": e.prefix,
        "candidates": e.candidates.iter().map(|c| json!({"path": c.path.as_ref().map(path_json), "reason": c.reason})).collect::<Vec<_>>(),
        "exports": e.exports.iter().map(|x| json!({"peer": x.peer_address, "exported": x.exported, "reason": x.reason})).collect::<Vec<_>>(),
        "departed": e.departed.as_ref().map(|d| json!({
            "peer": d.peer_address,
            "at_unix_seconds": d.at_unix_seconds,
            "at": rfc3339(d.at_unix_seconds),
            "reason": d.reason,
            "withdrawn": d.withdrawn,
        })),
    });
    Rendered::message(value, t)
}

/// The answer of announce / withdraw.
pub fn change(r: &pb::RouteChangeResponse) -> Rendered {
    Rendered::message(
        json!({"added": r.added, "updated": r.updated, "removed": r.removed, "unchanged": r.unchanged, "sequence": r.sequence}),
        format!(
            "added {}, updated {}, removed {}, unchanged {} (sequence {})",
            r.added, r.updated, r.removed, r.unchanged, r.sequence
        ),
    )
}

fn route_event_kind(v: i32) -> &'static str {
    match pb::RouteEventKind::try_from(v) {
        Ok(pb::RouteEventKind::Snapshot) => "snapshot",
        Ok(pb::RouteEventKind::EndOfSnapshot) => "end-of-snapshot",
        Ok(pb::RouteEventKind::BestChanged) => "best",
        Ok(pb::RouteEventKind::Withdrawn) => "withdrawn",
        Ok(pb::RouteEventKind::Resync) => "resync",
        _ => "unknown",
    }
}

/// One line (or document) per route event.
pub fn route_event(out: Output, ev: &pb::RouteEvent) -> Result<String> {
    let kind = route_event_kind(ev.kind);
    let value = json!({
        "sequence": ev.sequence,
        "kind": kind,
        "prefix": ev.prefix,
        "best": ev.best.as_ref().map(path_json),
    });
    Ok(match out {
        Output::Table => {
            let mut s = format!("{:>8} {:<16} {}", ev.sequence, kind, ev.prefix);
            if let Some(p) = &ev.best {
                s.push_str(&format!(" via {} from {}", p.next_hop, source(p)));
                let a = attrs(p);
                if !a.is_empty() {
                    s.push_str(&format!(" [{a}]"));
                }
            }
            s.trim_end().to_string()
        }
        Output::Json => serde_json::to_string(&value)?,
        Output::Yaml => format!("---\n{}", serde_yaml_ng::to_string(&value)?.trim_end()),
        Output::Dot | Output::Svg => return Err(out.not_a_picture()),
    })
}

fn peer_event_kind(v: i32) -> &'static str {
    match pb::PeerEventKind::try_from(v) {
        Ok(pb::PeerEventKind::Snapshot) => "snapshot",
        Ok(pb::PeerEventKind::EndOfSnapshot) => "end-of-snapshot",
        Ok(pb::PeerEventKind::Added) => "added",
        Ok(pb::PeerEventKind::StateChanged) => "state",
        Ok(pb::PeerEventKind::Removed) => "removed",
        Ok(pb::PeerEventKind::Resync) => "resync",
        _ => "unknown",
    }
}

/// One line (or document) per peer event.
pub fn peer_event(out: Output, ev: &pb::PeerEvent) -> Result<String> {
    let kind = peer_event_kind(ev.kind);
    let value = json!({
        "sequence": ev.sequence,
        "kind": kind,
        "previous_state": state_name(ev.previous_state),
        "peer": ev.peer.as_ref().map(peer_json),
    });
    Ok(match out {
        Output::Table => {
            let mut s = format!("{:>8} {:<16}", ev.sequence, kind);
            if let Some(p) = &ev.peer {
                let addr = p
                    .config
                    .as_ref()
                    .map(|c| c.address.clone())
                    .unwrap_or_default();
                s.push_str(&format!(" {addr} {}", state_name(p.state)));
                if ev.kind == pb::PeerEventKind::StateChanged as i32 {
                    s.push_str(&format!(" (was {})", state_name(ev.previous_state)));
                }
            }
            s.trim_end().to_string()
        }
        Output::Json => serde_json::to_string(&value)?,
        Output::Yaml => format!("---\n{}", serde_yaml_ng::to_string(&value)?.trim_end()),
        Output::Dot | Output::Svg => return Err(out.not_a_picture()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of an effective-config document as tabbyd sends it.
    const DOC: &str = r#"{
  "schema": "tabby.effective-config/v1",
  "node_name": "node-a",
  "node": {"as_number": 64512, "router_id": "198.18.0.11"},
  "peers": [{"address": "198.18.0.1", "port": 179, "password_set": true, "keepalive_seconds": null}],
  "big": 4294967295
}"#;

    #[test]
    fn config_is_yaml_by_default_and_json_on_request_in_the_daemons_order() {
        let r = config(DOC);
        let yaml = r.format(Output::Table).unwrap();
        assert_eq!(yaml, r.format(Output::Yaml).unwrap());
        assert!(
            yaml.starts_with("schema: tabby.effective-config/v1\nnode_name: node-a\nnode:\n"),
            "{yaml}"
        );
        assert!(yaml.contains("  as_number: 64512\n"), "{yaml}");
        assert!(yaml.contains("- address: 198.18.0.1\n"), "{yaml}");
        assert!(yaml.contains("  keepalive_seconds: null\n"), "{yaml}");
        // YAML reads back to the same document.
        let back: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        let want: serde_json::Value = serde_json::from_str(DOC).unwrap();
        assert_eq!(back, want);

        let json = r.format(Output::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v, want);
        // Pretty, fields in the daemon's order (not sorted).
        assert!(
            json.starts_with("{\n  \"schema\": \"tabby.effective-config/v1\",\n  \"node_name\""),
            "{json}"
        );
    }

    fn peer(addr: &str, state: pb::SessionState, bfd: Option<pb::BfdStatus>) -> pb::Peer {
        pb::Peer {
            settings: None,
            bfd,
            ..crate::fixtures::peer(addr, 0, state)
        }
    }

    fn bfd_up() -> pb::BfdStatus {
        pb::BfdStatus {
            phase: pb::BfdPhase::Up as i32,
            since_unix_seconds: 1_796_658_001,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            multiplier: 3,
            negotiated_tx_us: 300_000,
            negotiated_rx_us: 350_000,
            remote_multiplier: 5,
            detection_time_us: 1_750_000,
            local_discriminator: 17,
            remote_discriminator: 4_000_000_001,
            last_diagnostic: "control detection time expired".into(),
            uptime_seconds: 3_725,
            flaps: 2,
            graceful: true,
            packets_in: 1_001,
            packets_out: 1_002,
            ..Default::default()
        }
    }

    fn bfd_damped() -> pb::BfdStatus {
        pb::BfdStatus {
            phase: pb::BfdPhase::Down as i32,
            detail: "held down: BFD is flapping (damped)".into(),
            multiplier: 3,
            negotiated_tx_us: 1_000_000,
            detection_time_us: 1_500,
            last_diagnostic: "neighbor signaled session down".into(),
            flaps: 9,
            damped: true,
            bgp_held: true,
            wait_for_up: true,
            ..Default::default()
        }
    }

    fn bfd_unavailable() -> pb::BfdStatus {
        pb::BfdStatus {
            phase: pb::BfdPhase::Unavailable as i32,
            detail: "multihop BFD needs a local address".into(),
            multihop: true,
            multiplier: 3,
            ..Default::default()
        }
    }

    /// Three BFD peers (Up, Down and damped, Unavailable) and one without.
    fn bfd_peers() -> Vec<pb::Peer> {
        vec![
            peer("198.18.0.2", pb::SessionState::Established, Some(bfd_up())),
            peer("198.18.0.3", pb::SessionState::Idle, Some(bfd_damped())),
            peer("198.18.0.4", pb::SessionState::Active, None),
            peer(
                "2001:db8::5",
                pb::SessionState::Established,
                Some(bfd_unavailable()),
            ),
        ]
    }

    fn cells(line: &str) -> Vec<&str> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn milliseconds_have_at_most_one_decimal() {
        assert_eq!(ms(0), "-");
        assert_eq!(ms(300_000), "300ms");
        assert_eq!(ms(1_500), "1.5ms");
        assert_eq!(ms(1_549), "1.5ms");
        assert_eq!(ms(1_550), "1.6ms");
        assert_eq!(ms(999_960), "1000ms");
        assert_eq!(ms(50), "0.1ms");
        assert_eq!(ms(u32::MAX), "4294967.3ms");
    }

    #[test]
    fn rfc3339_is_utc_and_knows_the_leap_years() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_658_001), "2026-12-07T15:40:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(946_684_799), "1999-12-31T23:59:59Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        // Day by day against a calendar walked one day at a time.
        let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
        for days in 0..150_000u64 {
            assert_eq!(civil_date(days), (y, m, d), "day {days}");
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn bfd_table_shows_the_peers_with_bfd() {
        let t = bfd(&bfd_peers()).format(Output::Table).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "header and three BFD peers: {t}");
        assert_eq!(
            cells(lines[0]),
            [
                "PEER", "STATE", "TX", "RX", "MULT", "DETECT", "DIAG", "UPTIME", "FLAPS", "INFO"
            ],
            "{t}"
        );
        assert_eq!(
            cells(lines[1]),
            [
                "198.18.0.2",
                "Up",
                "300ms",
                "350ms",
                "3/5",
                "1750ms",
                "control detection time expired",
                "1h2m",
                "2"
            ],
            "{t}"
        );
        assert_eq!(
            cells(lines[2]),
            [
                "198.18.0.3",
                "Down",
                "1000ms",
                "-",
                "3/-",
                "1.5ms",
                "neighbor signaled session down",
                "-",
                "9",
                "held down: BFD is flapping (damped)"
            ],
            "{t}"
        );
        assert_eq!(
            cells(lines[3]),
            [
                "2001:db8::5",
                "Unavailable",
                "-",
                "-",
                "3/-",
                "-",
                "-",
                "-",
                "0",
                "multihop BFD needs a local address"
            ],
            "{t}"
        );
        // Columns line up under the header.
        let col = lines[0].find("DETECT").unwrap();
        assert_eq!(&lines[1][col..col + 6], "1750ms", "{t}");
        assert!(!t.contains("198.18.0.4"), "no BFD, no row: {t}");
    }

    #[test]
    fn bfd_note_explains_holds_without_a_detail() {
        let held = pb::BfdStatus {
            bgp_held: true,
            ..Default::default()
        };
        assert_eq!(bfd_note(&held), "BGP held down until BFD is Up");
        let damped = pb::BfdStatus {
            damped: true,
            bgp_held: true,
            ..Default::default()
        };
        assert!(bfd_note(&damped).starts_with("damped"));
        assert_eq!(bfd_note(&bfd_up()), "");
    }

    const BFD_KEYS: [&str; 22] = [
        "state",
        "detail",
        "since_unix_seconds",
        "multihop",
        "desired_min_tx_us",
        "required_min_rx_us",
        "multiplier",
        "negotiated_tx_us",
        "negotiated_rx_us",
        "remote_multiplier",
        "detection_time_us",
        "local_discriminator",
        "remote_discriminator",
        "last_diagnostic",
        "uptime_seconds",
        "flaps",
        "damped",
        "bgp_held",
        "wait_for_up",
        "graceful",
        "packets_in",
        "packets_out",
    ];

    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    }

    fn sorted(k: &[&str]) -> Vec<String> {
        let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    }

    #[test]
    fn bfd_json_has_every_field() {
        let j: Value =
            serde_json::from_str(&bfd(&bfd_peers()).format(Output::Json).unwrap()).unwrap();
        let list = j.as_array().expect("a list");
        assert_eq!(list.len(), 3);
        let mut want: Vec<&str> = BFD_KEYS.to_vec();
        want.push("peer");
        for o in list {
            assert_eq!(keys(o), sorted(&want), "{o}");
        }
        let up = &list[0];
        assert_eq!(up["peer"], "198.18.0.2");
        assert_eq!(up["state"], "Up");
        assert_eq!(up["since_unix_seconds"], 1_796_658_001u64);
        assert_eq!(up["desired_min_tx_us"], 300_000);
        assert_eq!(up["required_min_rx_us"], 300_000);
        assert_eq!(up["multiplier"], 3);
        assert_eq!(up["negotiated_tx_us"], 300_000);
        assert_eq!(up["negotiated_rx_us"], 350_000);
        assert_eq!(up["remote_multiplier"], 5);
        assert_eq!(up["detection_time_us"], 1_750_000);
        assert_eq!(up["local_discriminator"], 17);
        assert_eq!(up["remote_discriminator"], 4_000_000_001u32);
        assert_eq!(up["last_diagnostic"], "control detection time expired");
        assert_eq!(up["uptime_seconds"], 3_725);
        assert_eq!(up["flaps"], 2);
        assert_eq!(up["graceful"], true);
        assert_eq!(up["multihop"], false);
        assert_eq!(up["packets_in"], 1_001);
        assert_eq!(up["packets_out"], 1_002);
        let down = &list[1];
        assert_eq!(down["state"], "Down");
        assert_eq!(
            (&down["damped"], &down["bgp_held"], &down["wait_for_up"]),
            (&Value::Bool(true), &Value::Bool(true), &Value::Bool(true))
        );
        assert_eq!(down["detail"], "held down: BFD is flapping (damped)");
        assert_eq!(list[2]["peer"], "2001:db8::5");
        assert_eq!(list[2]["state"], "Unavailable");
        // YAML carries the same.
        let y: Value =
            serde_yaml_ng::from_str(&bfd(&bfd_peers()).format(Output::Yaml).unwrap()).unwrap();
        assert_eq!(y, j);
    }

    #[test]
    fn bfd_without_bfd_peers_says_so() {
        let none = [peer("198.18.0.4", pb::SessionState::Established, None)];
        for peers in [&none[..], &[]] {
            let r = bfd(peers);
            assert_eq!(
                r.format(Output::Table).unwrap(),
                "no peer has BFD; see the README's BFD section\n"
            );
            assert_eq!(r.format(Output::Json).unwrap(), "[]");
        }
    }

    #[test]
    fn a_peer_on_another_port_is_named_with_it() {
        let on = |addr: &str, port: u32| pb::Peer {
            settings: Some(pb::PeerSettings {
                port,
                ..Default::default()
            }),
            ..peer(addr, pb::SessionState::Established, None)
        };
        let peers = vec![
            on("198.51.100.1", 179),
            on("198.51.100.1", 150),
            on("2001:db8::5", 166),
            peer("198.18.0.2", pb::SessionState::Established, None),
        ];
        let t = self::peers(&peers).format(Output::Table).unwrap();
        let names: Vec<&str> = t.lines().skip(1).map(|l| cells(l)[0]).collect();
        assert_eq!(
            names,
            [
                "198.51.100.1",
                "198.51.100.1:150",
                "[2001:db8::5]:166",
                "198.18.0.2"
            ]
        );
        let d = peer_detail(&peers[1]).format(Output::Table).unwrap();
        assert!(d.starts_with("peer 198.51.100.1:150 AS 64513"), "{d}");
    }

    #[test]
    fn peers_json_has_bfd_or_null_and_the_table_a_bfd_column_when_any() {
        let peers = bfd_peers();
        let j: Value =
            serde_json::from_str(&super::peers(&peers).format(Output::Json).unwrap()).unwrap();
        assert_eq!(keys(&j[0]["bfd"]), sorted(&BFD_KEYS));
        assert_eq!(j[0]["bfd"]["state"], "Up");
        assert_eq!(j[0]["bfd"]["detection_time_us"], 1_750_000);
        assert_eq!(j[1]["bfd"]["state"], "Down");
        assert_eq!(j[2]["bfd"], Value::Null);
        assert!(j[2].as_object().unwrap().contains_key("bfd"));

        let t = super::peers(&peers).format(Output::Table).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            cells(lines[0]),
            [
                "PEER", "TYPE", "AS", "STATE", "BFD", "SINCE", "IN", "OUT", "INFO"
            ],
            "{t}"
        );
        assert_eq!(
            cells(lines[1])[..5],
            ["198.18.0.2", "node-mesh", "64513", "Established", "Up"],
            "{t}"
        );
        assert_eq!(cells(lines[2])[4], "Down", "{t}");
        assert_eq!(cells(lines[3])[4], "-", "{t}");
        assert_eq!(cells(lines[4])[4], "Unavailable", "{t}");

        // Without BFD the table is as it always was.
        let plain = [peer("198.18.0.4", pb::SessionState::Active, None)];
        let t = super::peers(&plain).format(Output::Table).unwrap();
        assert_eq!(
            cells(t.lines().next().unwrap()),
            ["PEER", "TYPE", "AS", "STATE", "SINCE", "IN", "OUT", "INFO"]
        );
    }

    #[test]
    fn peer_detail_shows_the_bfd_session() {
        let t = peer_detail(&bfd_peers()[0]).format(Output::Table).unwrap();
        assert!(
            t.contains(
                "  bfd: Up for 1h2m, single-hop; tx 300ms, rx 350ms, multiplier 3/5, detection 1750ms; flaps 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("  bfd configured: min tx 300ms, min rx 300ms, multiplier 3, graceful\n"),
            "{t}"
        );
        assert!(
            t.contains("  bfd last diagnostic: control detection time expired\n"),
            "{t}"
        );
        let t = peer_detail(&bfd_peers()[2]).format(Output::Table).unwrap();
        assert!(!t.contains("bfd"), "{t}");
    }

    /// The settings a daemon reports for a BGPPeer that sets every knob.
    fn tor_settings() -> pb::PeerSettings {
        pb::PeerSettings {
            origin: "BGPPeer tor".into(),
            calico_node: String::new(),
            port: 1179,
            local_as: 64999,
            internal: false,
            passive: false,
            route_reflector_client: true,
            cluster_id: "198.18.0.100".into(),
            ttl_security_hops: 1,
            password_set: true,
            next_hop: pb::NextHopMode::Keep as i32,
            source_address: "198.18.0.11".into(),
            families: vec![pb::AddressFamily::Ipv4 as i32],
            extended_next_hop: false,
            hold_time_seconds: 60,
            keepalive_seconds: Some(20),
            graceful_restart: Some(pb::GracefulRestartSettings {
                restart_time_seconds: 90,
                notification: true,
                forwarding_preserved: true,
            }),
            long_lived_stale_time_seconds: None,
            allowed_local_as: 2,
            reachable_by: "198.18.0.254".into(),
            filters: vec!["edge".into()],
            import_policy: "import 198.18.0.1".into(),
            export_policy: "export 198.18.0.1".into(),
        }
    }

    const SETTINGS_KEYS: [&str; 23] = [
        "origin",
        "calico_node",
        "port",
        "local_as",
        "internal",
        "passive",
        "route_reflector_client",
        "cluster_id",
        "ttl_security_hops",
        "password_set",
        "next_hop",
        "source_address",
        "families",
        "extended_next_hop",
        "hold_time_seconds",
        "keepalive_seconds",
        "graceful_restart",
        "long_lived_stale_time_seconds",
        "allowed_local_as",
        "reachable_by",
        "filters",
        "import_policy",
        "export_policy",
    ];

    #[test]
    fn peers_json_has_every_session_setting() {
        let mut tor = peer("198.18.0.1", pb::SessionState::Established, None);
        tor.settings = Some(tor_settings());
        let mut mesh = peer("198.18.0.12", pb::SessionState::Active, None);
        mesh.settings = Some(pb::PeerSettings {
            origin: "node-to-node mesh".into(),
            calico_node: "node-b".into(),
            port: 179,
            local_as: 64512,
            internal: true,
            next_hop: pb::NextHopMode::Auto as i32,
            families: vec![pb::AddressFamily::Ipv4 as i32],
            hold_time_seconds: 90,
            ..Default::default()
        });
        // A daemon that predates the settings sends none.
        let old = peer("198.18.0.13", pb::SessionState::Active, None);
        let peers = [tor, mesh, old];
        let j: Value =
            serde_json::from_str(&super::peers(&peers).format(Output::Json).unwrap()).unwrap();
        assert_eq!(keys(&j[0]["settings"]), sorted(&SETTINGS_KEYS));
        assert_eq!(
            j[0]["settings"],
            json!({
                "origin": "BGPPeer tor",
                "calico_node": null,
                "port": 1179,
                "local_as": 64999,
                "internal": false,
                "passive": false,
                "route_reflector_client": true,
                "cluster_id": "198.18.0.100",
                "ttl_security_hops": 1,
                "password_set": true,
                "next_hop": "keep",
                "source_address": "198.18.0.11",
                "families": ["ipv4"],
                "extended_next_hop": false,
                "hold_time_seconds": 60,
                "keepalive_seconds": 20,
                "graceful_restart": {
                    "restart_time_seconds": 90,
                    "notification": true,
                    "forwarding_preserved": true,
                },
                "long_lived_stale_time_seconds": null,
                "allowed_local_as": 2,
                "reachable_by": "198.18.0.254",
                "filters": ["edge"],
                "import_policy": "import 198.18.0.1",
                "export_policy": "export 198.18.0.1",
            })
        );
        let m = &j[1]["settings"];
        assert_eq!(keys(m), sorted(&SETTINGS_KEYS));
        assert_eq!(m["calico_node"], "node-b");
        assert_eq!(m["next_hop"], "auto");
        assert_eq!(m["internal"], true);
        for absent in [
            "cluster_id",
            "ttl_security_hops",
            "source_address",
            "keepalive_seconds",
            "graceful_restart",
            "reachable_by",
            "import_policy",
        ] {
            assert_eq!(m[absent], Value::Null, "{absent}: {m}");
        }
        assert_eq!(j[2]["settings"], Value::Null);
        assert!(j[2].as_object().unwrap().contains_key("settings"));
        // The password itself is never a key.
        assert!(!j.to_string().contains("\"password\""));
        // YAML carries the same.
        let y: Value =
            serde_yaml_ng::from_str(&super::peers(&peers).format(Output::Yaml).unwrap()).unwrap();
        assert_eq!(y, j);
        // The table stays as it was.
        let t = super::peers(&peers).format(Output::Table).unwrap();
        assert_eq!(cells(t.lines().next().unwrap()), PEER_HEADER);
    }

    #[test]
    fn peer_detail_lists_the_session_settings() {
        let mut p = peer("198.18.0.1", pb::SessionState::Established, None);
        p.settings = Some(tor_settings());
        let t = peer_detail(&p).format(Output::Table).unwrap();
        for line in [
            "  origin: BGPPeer tor\n",
            "  session: port 1179, local AS 64999 (eBGP), active, source address 198.18.0.11\n",
            "  families offered: ipv4\n",
            "  timers proposed: hold 60s, keepalive 20s\n",
            "  graceful restart: 90s, after NOTIFICATION too (N bit), forwarding preserved; long-lived: off\n",
            "  security: TCP-MD5 password set, TTL security: 1 hop (directly connected)\n",
            "  next hop: keep; route-reflector client, cluster id 198.18.0.100; local AS allowed 2 time(s) in AS_PATH\n",
            "  reachable by: 198.18.0.254\n",
            "  filters: edge\n",
            "  policies: import \"import 198.18.0.1\", export \"export 198.18.0.1\"\n",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }
        let j: Value =
            serde_json::from_str(&peer_detail(&p).format(Output::Json).unwrap()).unwrap();
        assert_eq!(j["settings"]["next_hop"], "keep");

        p.settings = Some(pb::PeerSettings {
            origin: "node-to-node mesh".into(),
            calico_node: "node-b".into(),
            internal: true,
            passive: true,
            next_hop: pb::NextHopMode::Auto as i32,
            hold_time_seconds: 90,
            long_lived_stale_time_seconds: Some(3600),
            ..Default::default()
        });
        let t = peer_detail(&p).format(Output::Table).unwrap();
        for line in [
            "  origin: node-to-node mesh (Calico node node-b)\n",
            "(iBGP), passive (waits for the peer)\n",
            "  timers proposed: hold 90s, keepalive a third of the hold time\n",
            "  graceful restart: off; long-lived stale time 3600s\n",
            "  security: no password, no TTL security (multihop allowed)\n",
            "  next hop: auto\n",
            "  policies: import -, export -\n",
        ] {
            assert!(t.contains(line), "{line:?} not in\n{t}");
        }
        assert!(
            !t.contains("filters:") && !t.contains("reachable by"),
            "{t}"
        );
        // Without settings (an older daemon), none of these lines.
        p.settings = None;
        let t = peer_detail(&p).format(Output::Table).unwrap();
        assert!(!t.contains("origin:") && !t.contains("security:"), "{t}");
    }

    fn daemon_status() -> pb::StatusResponse {
        pb::StatusResponse {
            router_id: "198.18.0.1".into(),
            local_as: 64512,
            version: "0.1.0".into(),
            peers_configured: 4,
            peers_established: 2,
            ..Default::default()
        }
    }

    #[test]
    fn status_counts_bfd_sessions_by_phase() {
        let mut peers = bfd_peers();
        peers.push(peer(
            "198.18.0.6",
            pb::SessionState::Established,
            Some(bfd_up()),
        ));
        let r = status(&daemon_status(), &peers);
        let t = r.format(Output::Table).unwrap();
        assert!(t.contains("\nBFD: 2 up, 1 down, 1 unavailable\n"), "{t}");
        let j: Value = serde_json::from_str(&r.format(Output::Json).unwrap()).unwrap();
        assert_eq!(
            j["bfd"],
            json!({"up": 2, "starting": 0, "down": 1, "admin_down": 0, "unavailable": 1})
        );
        assert_eq!(j["peers"][0]["bfd"]["state"], "Up");

        // No BFD peer: no BFD line, no bfd key.
        let plain = [peer("198.18.0.4", pb::SessionState::Active, None)];
        let r = status(&daemon_status(), &plain);
        let t = r.format(Output::Table).unwrap();
        assert!(!t.contains("BFD"), "{t}");
        let j: Value = serde_json::from_str(&r.format(Output::Json).unwrap()).unwrap();
        assert!(j.get("bfd").is_none(), "{j}");
    }

    fn departure(withdrawn: bool) -> pb::RouteDeparture {
        pb::RouteDeparture {
            peer_address: "198.18.0.1".into(),
            at_unix_seconds: 1_796_658_001,
            reason: "BFD went down (control detection time expired); paths withdrawn".into(),
            withdrawn,
        }
    }

    #[test]
    fn explanation_with_only_a_departure_prints_it() {
        let e = pb::ExplainRouteResponse {
            prefix: "198.19.7.0/24".into(),
            candidates: vec![],
            exports: vec![],
            departed: Some(departure(true)),
        };
        let r = explanation(&e);
        let t = r.format(Output::Table).unwrap();
        assert_eq!(
            t,
            "198.19.7.0/24: 0 candidate path(s)\n\
             paths from 198.18.0.1 withdrawn at 2026-12-07T15:40:01Z: \
             BFD went down (control detection time expired); paths withdrawn\n"
        );
        let j: Value = serde_json::from_str(&r.format(Output::Json).unwrap()).unwrap();
        assert_eq!(
            j["departed"],
            json!({
                "peer": "198.18.0.1",
                "at_unix_seconds": 1_796_658_001u64,
                "at": "2026-12-07T15:40:01Z",
                "reason": "BFD went down (control detection time expired); paths withdrawn",
                "withdrawn": true,
            })
        );
        assert_eq!(j["candidates"], json!([]));
    }

    #[test]
    fn explanation_departure_follows_the_candidates() {
        let e = pb::ExplainRouteResponse {
            prefix: "198.19.7.0/24".into(),
            candidates: vec![pb::CandidatePath {
                path: Some(pb::Path {
                    next_hop: "198.18.0.3".into(),
                    best: true,
                    source: Some(pb::PathSource {
                        source: Some(pb::path_source::Source::PeerAddress("198.18.0.3".into())),
                    }),
                    ..Default::default()
                }),
                reason: "best path".into(),
            }],
            exports: vec![],
            departed: Some(departure(false)),
        };
        let t = explanation(&e).format(Output::Table).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "  best via 198.18.0.3 from 198.18.0.3: best path");
        assert!(
            lines[2].starts_with("paths from 198.18.0.1 kept as stale at 2026-12-07T15:40:01Z: "),
            "{t}"
        );
        let none = pb::ExplainRouteResponse {
            departed: None,
            ..e
        };
        let r = explanation(&none);
        assert!(!r.format(Output::Table).unwrap().contains("paths from"));
        let j: Value = serde_json::from_str(&r.format(Output::Json).unwrap()).unwrap();
        assert_eq!(j["departed"], Value::Null);
    }

    #[test]
    fn config_that_is_not_json_is_shown_as_it_came() {
        let text = "NodeState { node_name: \"node-a\" }";
        let r = config(text);
        assert_eq!(r.format(Output::Table).unwrap(), text);
        assert_eq!(
            r.format(Output::Json).unwrap(),
            serde_json::to_string_pretty(text).unwrap()
        );
    }
}
