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

fn state_name(v: i32) -> &'static str {
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

fn peer_type_name(v: i32) -> &'static str {
    match pb::PeerType::try_from(v) {
        Ok(pb::PeerType::NodeMesh) => "node-mesh",
        Ok(pb::PeerType::Global) => "global",
        Ok(pb::PeerType::NodeSpecific) => "node-specific",
        Ok(pb::PeerType::Api) => "api",
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
    })
}

fn peer_rows(peers: &[pb::Peer]) -> Vec<Vec<String>> {
    peers
        .iter()
        .map(|p| {
            let c = p.config.clone().unwrap_or_default();
            let n = p.counters.unwrap_or_default();
            vec![
                c.address,
                peer_type_name(c.r#type).to_string(),
                c.remote_as.to_string(),
                state_name(p.state).to_string(),
                peer_since(p),
                n.prefixes_received.to_string(),
                n.prefixes_advertised.to_string(),
                peer_info(p),
            ]
        })
        .collect()
}

const PEER_HEADER: [&str; 8] = ["PEER", "TYPE", "AS", "STATE", "SINCE", "IN", "OUT", "INFO"];

/// `tabbyctl peers`.
pub fn peers(peers: &[pb::Peer]) -> Rendered {
    let text = if peers.is_empty() {
        "no peers configured\n".to_string()
    } else {
        table(&PEER_HEADER, &peer_rows(peers))
    };
    Rendered::message(Value::Array(peers.iter().map(peer_json).collect()), text)
}

fn datastore_name(v: i32) -> &'static str {
    match pb::DatastoreSyncState::try_from(v) {
        Ok(pb::DatastoreSyncState::Disabled) => "disabled",
        Ok(pb::DatastoreSyncState::Syncing) => "syncing",
        Ok(pb::DatastoreSyncState::InSync) => "in sync",
        Ok(pb::DatastoreSyncState::Disconnected) => "disconnected",
        _ => "unknown",
    }
}

fn fib_name(v: i32) -> &'static str {
    match pb::FibSyncState::try_from(v) {
        Ok(pb::FibSyncState::Disabled) => "disabled",
        Ok(pb::FibSyncState::Syncing) => "syncing",
        Ok(pb::FibSyncState::InSync) => "in sync",
        Ok(pb::FibSyncState::Error) => "error",
        _ => "unknown",
    }
}

fn gr_name(v: i32) -> &'static str {
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
    if !peers.is_empty() {
        text.push_str(&table(&PEER_HEADER, &peer_rows(peers)));
    }
    let value = json!({
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
    Rendered::message(value, text)
}

/// `tabbyctl peers show ADDR`.
pub fn peer_detail(p: &pb::Peer) -> Rendered {
    let c = p.config.clone().unwrap_or_default();
    let n = p.counters.unwrap_or_default();
    let mut t = format!(
        "peer {} AS {} ({})\n  state: {} for {}{}\n",
        c.address,
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
    Rendered::message(peer_json(p), t)
}

fn source(p: &pb::Path) -> String {
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
