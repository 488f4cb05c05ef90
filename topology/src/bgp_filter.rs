//! `BGPFilter`: its rules, their match fields (`cidr`, `prefixLength`, `source`,
//! `interface`, and from Calico 3.32 `peerType`, `communities`, `asPathPrefix`,
//! `priority`) and their `operations` (`addCommunity`, `prependASPath`, `setPriority`).
//! Validation follows Calico's CRD (`projectcalico.org_bgpfilters.yaml`), so a filter
//! the API server would refuse is skipped here with the field that is wrong.

use ipnet::IpNet;
use serde_yaml_ng::Value;

use crate::error::TopologyError;
use crate::fields::{Fields, describe, parse_as_number};
use crate::model::parse_community;
use crate::types::*;

/// Calico priorities (and so `priority`, `setPriority.value`) run from 1 to 2^31-2:
/// they map onto LOCAL_PREF as 2^31-1 minus the priority.
pub(crate) const PRIORITY_MIN: i64 = 1;
pub(crate) const PRIORITY_MAX: i64 = 2_147_483_646;

/// `operations` and `prependASPath.prefix` hold at most this many entries (CRD `maxItems`).
const MAX_ITEMS: usize = 10;

pub(crate) fn parse(name: &str, spec: Option<&Value>) -> Result<BgpFilter, TopologyError> {
    let mut f = Fields::new(Kind::BgpFilter, name, "spec", spec)?;
    let filter = BgpFilter {
        name: name.to_string(),
        export_v4: parse_rules(&mut f, name, "exportV4", false)?,
        import_v4: parse_rules(&mut f, name, "importV4", false)?,
        export_v6: parse_rules(&mut f, name, "exportV6", true)?,
        import_v6: parse_rules(&mut f, name, "importV6", true)?,
    };
    f.finish();
    Ok(filter)
}

fn parse_rules(
    f: &mut Fields<'_>,
    name: &str,
    key: &'static str,
    v6: bool,
) -> Result<Vec<FilterRule>, TopologyError> {
    let mut out = Vec::new();
    for (i, item) in f.list(key)?.iter().enumerate() {
        let mut r = Fields::new(
            Kind::BgpFilter,
            name,
            f.path_of(&format!("{key}[{i}]")),
            Some(item),
        )?;
        out.push(parse_rule(&mut r, key, v6)?);
        r.finish();
    }
    Ok(out)
}

fn parse_rule(r: &mut Fields<'_>, key: &str, v6: bool) -> Result<FilterRule, TopologyError> {
    let max_len: u8 = if v6 { 128 } else { 32 };
    let action = match r.nonempty("action")?.as_deref() {
        Some("Accept") => FilterAction::Accept,
        Some("Reject") => FilterAction::Reject,
        Some(o) => return Err(r.err("action", format!("'{o}' is not Accept or Reject"))),
        None => return Err(r.err("action", "required (Accept or Reject)")),
    };
    let op = match r.nonempty("matchOperator")?.as_deref() {
        None => None,
        Some("Equal") => Some(MatchOperator::Equal),
        Some("NotEqual") => Some(MatchOperator::NotEqual),
        Some("In") => Some(MatchOperator::In),
        Some("NotIn") => Some(MatchOperator::NotIn),
        Some(o) => {
            return Err(r.err(
                "matchOperator",
                format!("'{o}' is not Equal, NotEqual, In or NotIn"),
            ));
        }
    };
    let cidr = match r.nonempty("cidr")? {
        None => None,
        Some(s) => {
            let n = s
                .trim()
                .parse::<IpNet>()
                .map_err(|_| r.err("cidr", format!("'{s}' is not a CIDR")))?;
            if n.addr().is_ipv6() != v6 {
                let fam = if v6 { "IPv6" } else { "IPv4" };
                return Err(r.err("cidr", format!("'{s}' is not {fam}, as {key} requires")));
            }
            Some(n.trunc())
        }
    };
    let cidr = match (op, cidr) {
        (None, None) => None,
        (Some(op), Some(c)) => Some((op, c)),
        (Some(_), None) => return Err(r.err("cidr", "matchOperator needs a cidr")),
        (None, Some(_)) => return Err(r.err("matchOperator", "cidr needs a matchOperator")),
    };
    let mut pl = r.sub("prefixLength")?;
    let min = pl
        .uint("min", u64::from(max_len))?
        .and_then(|v| u8::try_from(v).ok());
    let max = pl
        .uint("max", u64::from(max_len))?
        .and_then(|v| u8::try_from(v).ok());
    pl.finish();
    let prefix_length = if min.is_none() && max.is_none() {
        None
    } else {
        let Some((_, net)) = cidr else {
            return Err(r.err("prefixLength", "needs a cidr to apply to"));
        };
        let lo = min.unwrap_or(net.prefix_len());
        let hi = max.unwrap_or(max_len);
        if lo > hi || lo < net.prefix_len() {
            return Err(r.err(
                "prefixLength",
                format!(
                    "min {lo} / max {hi} must satisfy /{} <= min <= max",
                    net.prefix_len()
                ),
            ));
        }
        Some((lo, hi))
    };
    let source_remote_peers = match r.nonempty("source")?.as_deref() {
        None => false,
        Some("RemotePeers") => true,
        Some(o) => return Err(r.err("source", format!("'{o}' is not RemotePeers"))),
    };
    let interface = r.nonempty("interface")?;
    let peer_type = match r.nonempty("peerType")?.as_deref() {
        None => None,
        Some("eBGP") => Some(PeerType::Ebgp),
        Some("iBGP") => Some(PeerType::Ibgp),
        Some(o) => return Err(r.err("peerType", format!("'{o}' is not eBGP or iBGP"))),
    };
    let community = community_match(r)?;
    let as_path_prefix = as_numbers(r, "asPathPrefix")?;
    let priority = priority(r, "priority")?;
    let operations = operations(r)?;
    if !operations.is_empty() && action != FilterAction::Accept {
        return Err(r.err(
            "operations",
            "operations may only be used with action Accept",
        ));
    }
    Ok(FilterRule {
        action,
        cidr,
        prefix_length,
        source_remote_peers,
        interface,
        peer_type,
        community,
        as_path_prefix,
        priority,
        operations,
    })
}

/// `communities: {values: ["aa:nn" | "aa:nn:mm"]}`, exactly one value for now (CRD
/// `minItems`/`maxItems` 1).
fn community_match(r: &mut Fields<'_>) -> Result<Option<Community>, TopologyError> {
    if r.raw("communities").is_none() {
        return Ok(None);
    }
    let mut c = r.sub("communities")?;
    let values = c.list("values")?;
    let community = match values {
        [] => return Err(c.err("values", "exactly one community is required")),
        [v] => community_value(&c, "values[0]", v)?,
        _ => {
            return Err(c.err(
                "values",
                format!("exactly one community is allowed, found {}", values.len()),
            ));
        }
    };
    c.finish();
    Ok(Some(community))
}

/// A `BGPCommunityValue`: `aa:nn` with 16-bit parts or `aa:nn:mm` with 32-bit parts, in
/// plain decimal (the CRD's pattern: no sign, no leading zero).
fn community_value(f: &Fields<'_>, key: &str, v: &Value) -> Result<Community, TopologyError> {
    let bad = |what: String| {
        f.err(
            key,
            format!("{what} is not a community: expected aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)"),
        )
    };
    let Value::String(s) = v else {
        return Err(bad(describe(v).to_string()));
    };
    let plain = s.split(':').all(|p| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    });
    match parse_community(s) {
        Some(c) if plain => Ok(c),
        _ => Err(bad(format!("'{s}'"))),
    }
}

/// A list of `numorstring.ASNumber`s (a number, a decimal string or asdot `X.Y`); absent
/// or empty: none. AS 0 is refused: it may not appear in an AS_PATH (RFC 7607).
fn as_numbers(f: &mut Fields<'_>, key: &'static str) -> Result<Vec<u32>, TopologyError> {
    let items = f.list(key)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        let asn = match v {
            Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
            Value::String(s) => parse_as_number(s),
            _ => None,
        };
        match asn {
            Some(0) => {
                return Err(f.err(
                    &format!("{key}[{i}]"),
                    "AS 0 may not appear in an AS path (RFC 7607)",
                ));
            }
            Some(a) => out.push(a),
            None => {
                return Err(f.err(
                    &format!("{key}[{i}]"),
                    "expected an AS number: 1 to 4294967295, or asdot X.Y (RFC 5396)",
                ));
            }
        }
    }
    Ok(out)
}

/// A Calico priority: an integer from 1 to 2147483646.
fn priority(f: &mut Fields<'_>, key: &'static str) -> Result<Option<u32>, TopologyError> {
    let Some(v) = f.raw(key) else {
        return Ok(None);
    };
    match v.as_i64() {
        Some(p) if (PRIORITY_MIN..=PRIORITY_MAX).contains(&p) => Ok(u32::try_from(p).ok()),
        _ => Err(f.err(
            key,
            format!(
                "expected an integer from {PRIORITY_MIN} to {PRIORITY_MAX}, found {}",
                match v {
                    Value::Number(n) => n.to_string(),
                    other => describe(other).to_string(),
                }
            ),
        )),
    }
}

/// `operations`: up to ten entries, each setting exactly one of `addCommunity`,
/// `prependASPath`, `setPriority`.
fn operations(r: &mut Fields<'_>) -> Result<Vec<FilterOperation>, TopologyError> {
    let items = r.list("operations")?;
    if items.len() > MAX_ITEMS {
        return Err(r.err(
            "operations",
            format!("at most {MAX_ITEMS} operations, found {}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut o = Fields::new(
            Kind::BgpFilter,
            r.name(),
            r.path_of(&format!("operations[{i}]")),
            Some(item),
        )?;
        let set: Vec<&str> = ["addCommunity", "prependASPath", "setPriority"]
            .into_iter()
            .filter(|k| o.raw(k).is_some())
            .collect();
        let op = match set.as_slice() {
            ["addCommunity"] => {
                let mut a = o.sub("addCommunity")?;
                let value = a.raw("value").ok_or_else(|| a.err("value", "required"))?;
                let c = community_value(&a, "value", value)?;
                a.finish();
                FilterOperation::AddCommunity(c)
            }
            ["prependASPath"] => {
                let mut p = o.sub("prependASPath")?;
                let asns = as_numbers(&mut p, "prefix")?;
                if asns.is_empty() {
                    return Err(p.err("prefix", "required: one to ten AS numbers"));
                }
                if asns.len() > MAX_ITEMS {
                    return Err(p.err(
                        "prefix",
                        format!("at most {MAX_ITEMS} AS numbers, found {}", asns.len()),
                    ));
                }
                p.finish();
                FilterOperation::PrependAsPath(asns)
            }
            ["setPriority"] => {
                let mut p = o.sub("setPriority")?;
                let v = priority(&mut p, "value")?.ok_or_else(|| p.err("value", "required"))?;
                p.finish();
                FilterOperation::SetPriority(v)
            }
            [] => {
                return Err(r.err(
                    &format!("operations[{i}]"),
                    "sets no operation: expected one of addCommunity, prependASPath, setPriority",
                ));
            }
            several => {
                return Err(r.err(
                    &format!("operations[{i}]"),
                    format!(
                        "sets {}: exactly one operation per entry",
                        several.join(" and ")
                    ),
                ));
            }
        };
        o.finish();
        out.push(op);
    }
    Ok(out)
}
