//! The `tabby-routing.io/bmp-stations` annotation on the `BGPConfiguration` named
//! `default`: the BMP monitoring stations (RFC 7854) every node exports to. Calico's CRD
//! schemas prune spec fields they do not know; an annotation survives every datastore.
//!
//! Its value is a comma-separated list of `ADDRESS:PORT` (`[ADDRESS]:PORT` for IPv6);
//! whitespace around entries is ignored and an empty value means none. An entry that is not
//! an address and port is skipped and reported; the others apply.

use std::net::SocketAddr;

use serde_yaml_ng::Value;

/// The annotation's key, on the `BGPConfiguration` named `default`.
pub const BMP_STATIONS_ANNOTATION: &str = "tabby-routing.io/bmp-stations";

/// The annotation as it sits in `metadata.annotations`: its text, or (`Err`) what it is
/// instead of a string. `None`: absent.
pub(crate) fn from_yaml(value: &Value) -> Option<Result<String, String>> {
    match value {
        Value::Null => None,
        Value::String(_) | Value::Bool(_) | Value::Number(_) => {
            crate::yaml11::go_string(value).map(Ok)
        }
        Value::Sequence(_) => Some(Err("a list".into())),
        Value::Mapping(_) => Some(Err("a mapping".into())),
        Value::Tagged(_) => Some(Err("a tagged value".into())),
    }
}

/// The stations a value names, and a problem for each entry that is not one.
pub fn parse_stations(value: &str) -> (Vec<SocketAddr>, Vec<String>) {
    let mut stations = Vec::new();
    let mut problems = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => {
                if !stations.contains(&a) {
                    stations.push(a);
                }
            }
            _ => problems.push(format!(
                "'{entry}' is not ADDRESS:PORT (e.g. 192.0.2.10:1790 or [2001:db8::10]:1790)"
            )),
        }
    }
    (stations, problems)
}

/// The derivation warning for one bad entry (or a value that is not a string).
pub(crate) fn warning(config: &str, problem: &str) -> String {
    format!(
        "BGPConfiguration '{config}': annotation {BMP_STATIONS_ANNOTATION}: {problem}; \
         that station is not used"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stations_and_problems() {
        let (s, p) = parse_stations(" 192.0.2.10:1790, [2001:db8::10]:11019 ,,192.0.2.10:1790");
        assert_eq!(
            s,
            vec![
                "192.0.2.10:1790".parse::<SocketAddr>().unwrap(),
                "[2001:db8::10]:11019".parse().unwrap()
            ]
        );
        assert!(p.is_empty());
        let (s, p) = parse_stations("192.0.2.10, 192.0.2.11:0, station:1790, 198.51.100.1:1790");
        assert_eq!(s, vec!["198.51.100.1:1790".parse::<SocketAddr>().unwrap()]);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("'192.0.2.10' is not ADDRESS:PORT"));
        assert_eq!(parse_stations(""), (vec![], vec![]));
    }
}
