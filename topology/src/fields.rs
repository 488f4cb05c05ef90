//! Reading a YAML/JSON mapping field by field, so that every error names the exact
//! field (`spec.peerIP`, `spec.exportV4[1].cidr`) and unknown fields are noticed.

use std::net::IpAddr;
use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use crate::error::TopologyError;
use crate::types::Kind;
use crate::yaml11::{go_key, go_string};

/// One mapping being read; keys read are remembered so the rest can be reported.
pub(crate) struct Fields<'a> {
    kind: Kind,
    name: &'a str,
    path: String,
    map: Option<&'a Mapping>,
    used: Vec<&'a str>,
}

impl<'a> Fields<'a> {
    /// `value` may be absent or null (an empty mapping) but nothing else than a mapping.
    pub(crate) fn new(
        kind: Kind,
        name: &'a str,
        path: impl Into<String>,
        value: Option<&'a Value>,
    ) -> Result<Self, TopologyError> {
        let path = path.into();
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                return Err(TopologyError::invalid(
                    kind.as_str(),
                    name,
                    path,
                    format!("expected a mapping, found {}", describe(other)),
                ));
            }
        };
        Ok(Fields {
            kind,
            name,
            path,
            map,
            used: Vec::new(),
        })
    }

    /// The resource's name.
    pub(crate) fn name(&self) -> &'a str {
        self.name
    }

    pub(crate) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(crate) fn err(&self, key: &str, reason: impl Into<String>) -> TopologyError {
        TopologyError::invalid(self.kind.as_str(), self.name, self.path_of(key), reason)
    }

    /// The raw value of `key`; null counts as absent.
    pub(crate) fn raw(&mut self, key: &'a str) -> Option<&'a Value> {
        self.used.push(key);
        match self.map?.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// A string field. A boolean or number there reads as its text, as calicoctl reads it
    /// into a Go string (`node: 1234` is the node "1234"; see [`crate::yaml11`]).
    pub(crate) fn string(&mut self, key: &'a str) -> Result<Option<String>, TopologyError> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => match go_string(v) {
                Some(s) => Ok(Some(s)),
                None => Err(self.err(key, format!("expected a string, found {}", describe(v)))),
            },
        }
    }

    /// A string that, when present, must not be empty; empty counts as absent like Go's `omitempty`.
    pub(crate) fn nonempty(&mut self, key: &'a str) -> Result<Option<String>, TopologyError> {
        Ok(self.string(key)?.filter(|s| !s.trim().is_empty()))
    }

    pub(crate) fn bool(&mut self, key: &'a str) -> Result<Option<bool>, TopologyError> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            // Some Calico fields (BlockAffinity.deleted) are strings holding a boolean.
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(Some(false)),
            Some(other) => Err(self.err(
                key,
                format!("expected true or false, found {}", describe(other)),
            )),
        }
    }

    pub(crate) fn uint(&mut self, key: &'a str, max: u64) -> Result<Option<u64>, TopologyError> {
        let v = match self.raw(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match v {
            Some(v) if v <= max => Ok(Some(v)),
            Some(v) => Err(self.err(key, format!("{v} is larger than the maximum {max}"))),
            None => Err(self.err(key, format!("expected an integer from 0 to {max}"))),
        }
    }

    /// Calico's `numorstring.ASNumber`: an integer, a decimal string or asdot `X.Y` (RFC 5396).
    pub(crate) fn as_number(&mut self, key: &'a str) -> Result<Option<u32>, TopologyError> {
        let parsed = match self.raw(key) {
            None => return Ok(None),
            Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
            Some(Value::String(s)) => parse_as_number(s),
            Some(_) => None,
        };
        match parsed {
            // AS 0 is reserved (RFC 7607); Calico treats 0 as "not set".
            Some(0) => Ok(None),
            Some(v) => Ok(Some(v)),
            None => Err(self.err(
                key,
                "expected an AS number: 1 to 4294967295, or asdot X.Y (RFC 5396)",
            )),
        }
    }

    /// A Kubernetes `metav1.Duration` string such as `120s`, `1m30s`, `1.5h`.
    pub(crate) fn duration(&mut self, key: &'a str) -> Result<Option<Duration>, TopologyError> {
        let text = match self.raw(key) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(self.err(
                    key,
                    format!(
                        "expected a duration string like 120s or 1m30s, found {}",
                        describe(other)
                    ),
                ));
            }
        };
        parse_go_duration(&text).map(Some).ok_or_else(|| {
            self.err(
                key,
                format!("'{text}' is not a duration like 120s or 1m30s"),
            )
        })
    }

    pub(crate) fn ip(&mut self, key: &'a str) -> Result<Option<IpAddr>, TopologyError> {
        match self.nonempty(key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<IpAddr>()
                .map(Some)
                .map_err(|_| self.err(key, format!("'{s}' is not an IP address"))),
        }
    }

    pub(crate) fn list(&mut self, key: &'a str) -> Result<&'a [Value], TopologyError> {
        match self.raw(key) {
            None => Ok(&[]),
            Some(Value::Sequence(s)) => Ok(s.as_slice()),
            Some(other) => {
                Err(self.err(key, format!("expected a list, found {}", describe(other))))
            }
        }
    }

    pub(crate) fn string_list(&mut self, key: &'a str) -> Result<Vec<String>, TopologyError> {
        let items = self.list(key)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                go_string(v).ok_or_else(|| {
                    self.err(
                        &format!("{key}[{i}]"),
                        format!("expected a string, found {}", describe(v)),
                    )
                })
            })
            .collect()
    }

    pub(crate) fn string_map(
        &mut self,
        key: &'a str,
    ) -> Result<std::collections::BTreeMap<String, String>, TopologyError> {
        self.string_map_except(key, &[])
    }

    /// [`Fields::string_map`] without the entries under `except`, whatever their values:
    /// the caller reads those itself (so a non-string there is its problem, not an error).
    /// Keys and values that are booleans or numbers read as their text, and a null value
    /// as "", as calicoctl decodes labels and annotations into a Go `map[string]string`.
    pub(crate) fn string_map_except(
        &mut self,
        key: &'a str,
        except: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>, TopologyError> {
        let mut out = std::collections::BTreeMap::new();
        match self.raw(key) {
            None => {}
            Some(Value::Mapping(m)) => {
                for (k, v) in m {
                    let k = go_key(k);
                    if k.as_deref().is_some_and(|k| except.contains(&k)) {
                        continue;
                    }
                    let text = match v {
                        Value::Null => Some(String::new()),
                        v => go_string(v),
                    };
                    let (Some(k), Some(v)) = (k, text) else {
                        return Err(self.err(key, "expected a mapping of strings to strings"));
                    };
                    out.insert(k, v);
                }
            }
            Some(other) => {
                return Err(self.err(
                    key,
                    format!("expected a mapping, found {}", describe(other)),
                ));
            }
        }
        Ok(out)
    }

    /// A nested mapping.
    pub(crate) fn sub(&mut self, key: &'a str) -> Result<Fields<'a>, TopologyError> {
        let path = self.path_of(key);
        let v = self.raw(key);
        Fields::new(self.kind, self.name, path, v)
    }

    /// Logs, once, the keys nobody read.
    pub(crate) fn finish(self) {
        let Some(map) = self.map else { return };
        let unknown: Vec<&str> = map
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !self.used.contains(k))
            .collect();
        if !unknown.is_empty() {
            tracing::debug!(
                kind = self.kind.as_str(),
                name = self.name,
                path = %self.path,
                fields = ?unknown,
                "ignoring fields Tabby does not use"
            );
        }
    }
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Decimal (`65000`) or asdot (`1.10` = 1×65536+10, RFC 5396).
pub(crate) fn parse_as_number(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some((hi, lo)) = s.split_once('.') {
        let hi: u16 = hi.parse().ok()?;
        let lo: u16 = lo.parse().ok()?;
        Some((u32::from(hi) << 16) | u32::from(lo))
    } else {
        s.parse().ok()
    }
}

/// Go's `time.ParseDuration` format, which Kubernetes durations use.
pub(crate) fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > 1e12 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("120s"), Some(Duration::from_secs(120)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("120"), None);
        assert_eq!(parse_go_duration("-5s"), None);
        assert_eq!(parse_go_duration("5 s"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn as_numbers() {
        assert_eq!(parse_as_number("64512"), Some(64512));
        assert_eq!(parse_as_number("1.10"), Some(65546));
        assert_eq!(parse_as_number("4294967295"), Some(u32::MAX));
        assert_eq!(parse_as_number("4294967296"), None);
        assert_eq!(parse_as_number("65536.1"), None);
        assert_eq!(parse_as_number("x"), None);
    }
}
