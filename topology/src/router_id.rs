//! The BGP router id, chosen as calico-node chooses it, and the other per-daemon inputs of
//! derivation ([`DeriveOptions`]).
//!
//! calico-node (confd's `bgp_processor.go`, formerly `bird.cfg.template`) reads the
//! `CALICO_ROUTER_ID` environment variable: `hash` derives the id from the node name
//! (confd's `HashToIPv4`: the first four bytes of the name's SHA-256, the first one lowered
//! by 32 when above 223 so the id never falls in 224.0.0.0/3); any other non-empty value is
//! used as the id; unset or empty, the node's IPv4 address is. A node with only an IPv6
//! address therefore needs `CALICO_ROUTER_ID` (BGP identifiers are 32 bits, RFC 6286 §2.1);
//! without it calico-node writes `router id ;` and BIRD refuses the configuration.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::error::TopologyError;

/// The environment variable calico-node reads, and tabbyd with it.
pub const ROUTER_ID_ENV: &str = "CALICO_ROUTER_ID";

/// A value of `CALICO_ROUTER_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouterIdSpec {
    /// This address, whatever the node's own.
    Address(Ipv4Addr),
    /// Derived from the node name ([`hash_router_id`]).
    Hash,
}

impl RouterIdSpec {
    /// The id for the node named `node_name`.
    pub fn router_id(self, node_name: &str) -> Ipv4Addr {
        match self {
            RouterIdSpec::Address(a) => a,
            RouterIdSpec::Hash => hash_router_id(node_name),
        }
    }
}

impl FromStr for RouterIdSpec {
    type Err = TopologyError;

    /// `hash` or a dotted-quad IPv4 address other than 0.0.0.0 (surrounding whitespace
    /// ignored).
    fn from_str(s: &str) -> Result<Self, TopologyError> {
        let v = s.trim();
        if v == "hash" {
            return Ok(RouterIdSpec::Hash);
        }
        match v.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() => Ok(RouterIdSpec::Address(a)),
            _ => Err(TopologyError::BadRouterId(s.to_string())),
        }
    }
}

impl fmt::Display for RouterIdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterIdSpec::Address(a) => write!(f, "{a}"),
            RouterIdSpec::Hash => f.write_str("hash"),
        }
    }
}

/// What derivation takes besides the resources and the node name: settings that come from
/// the daemon's environment, as calico-node's do. The default is none of them, which is
/// what [`crate::derive()`] uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeriveOptions {
    /// `CALICO_ROUTER_ID`. `None`: the node's IPv4 address.
    pub router_id: Option<RouterIdSpec>,
}

impl DeriveOptions {
    /// Reads `CALICO_ROUTER_ID` from the environment (unset or empty: `None`, as in
    /// calico-node). A value that is neither `hash` nor an IPv4 address is an error.
    pub fn from_env() -> Result<DeriveOptions, TopologyError> {
        DeriveOptions::from_router_id_env(std::env::var(ROUTER_ID_ENV).ok().as_deref())
    }

    /// [`DeriveOptions::from_env`] for a given value of `CALICO_ROUTER_ID`.
    pub fn from_router_id_env(value: Option<&str>) -> Result<DeriveOptions, TopologyError> {
        let router_id = match value.map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(v.parse()?),
        };
        Ok(DeriveOptions { router_id })
    }
}

/// calico-node's `CALICO_ROUTER_ID=hash`: SHA-256 of the node name; its first four bytes
/// are the address, the first lowered by 32 when above 223 (out of 224.0.0.0/3).
pub fn hash_router_id(node_name: &str) -> Ipv4Addr {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(node_name.as_bytes());
    let first = if digest[0] > 223 {
        digest[0] - 32
    } else {
        digest[0]
    };
    Ipv4Addr::new(first, digest[1], digest[2], digest[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_router_ids_match_calico_node() {
        let cases = [
            ("node-a", [102, 87, 15, 240]),
            ("node-b", [147, 239, 55, 198]),
            ("v6-only-1", [48, 173, 136, 91]),
            ("worker-7", [138, 202, 13, 211]),
            ("rr-1", [170, 52, 6, 87]),
            // First byte 244: lowered by 32.
            ("n13", [212, 245, 13, 237]),
            // First byte 227.
            ("n27", [195, 195, 40, 205]),
            // First byte exactly 223: kept.
            ("n29", [223, 197, 144, 131]),
            ("", [195, 176, 196, 66]),
            // 55, 56 and 64 bytes: the padding boundaries.
            (&"x".repeat(55), [213, 226, 133, 104]),
            (&"x".repeat(56), [4, 194, 98, 97]),
            (&"x".repeat(64), [124, 225, 0, 151]),
            (
                "ip-198-18-0-11.eu-west-1.compute.internal.a-rather-long-cluster-domain.example",
                [2, 133, 173, 8],
            ),
            ("nœud-é", [131, 116, 168, 65]),
        ];
        for (name, want) in cases {
            assert_eq!(hash_router_id(name), Ipv4Addr::from(want), "{name:?}");
        }
    }

    #[test]
    fn calico_router_id_values() {
        assert_eq!("hash".parse::<RouterIdSpec>().unwrap(), RouterIdSpec::Hash);
        assert_eq!(
            " 198.18.0.7 ".parse::<RouterIdSpec>().unwrap(),
            RouterIdSpec::Address(Ipv4Addr::new(198, 18, 0, 7))
        );
        for bad in ["HASH", "2001:db8::1", "198.18.0", "0.0.0.0", "x"] {
            let e = bad.parse::<RouterIdSpec>().unwrap_err().to_string();
            assert!(e.contains("CALICO_ROUTER_ID") && e.contains(bad), "{e}");
        }
        assert_eq!(
            DeriveOptions::from_router_id_env(None).unwrap(),
            DeriveOptions::default()
        );
        assert_eq!(
            DeriveOptions::from_router_id_env(Some("")).unwrap(),
            DeriveOptions::default()
        );
        assert_eq!(
            DeriveOptions::from_router_id_env(Some("hash"))
                .unwrap()
                .router_id,
            Some(RouterIdSpec::Hash)
        );
        assert!(DeriveOptions::from_router_id_env(Some("nope")).is_err());
    }
}
