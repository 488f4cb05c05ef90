//! The `tabby-routing.io/bfd` annotation: BFD settings (RFC 5880) for the sessions a
//! `BGPPeer` derives, or for the node-to-node mesh when it sits on a `BGPConfiguration`.
//! Calico's CRD schemas prune spec fields they do not know, so the setting travels as an
//! annotation, which every datastore keeps.
//!
//! Forms (surrounding whitespace ignored):
//! - `"true"` or `"enabled"`: BFD with [`BfdSettings::DEFAULT`] (300 ms × 3, single-hop);
//!   `"false"` or `"disabled"`: off (on a `node.<name>` BGPConfiguration, turns the mesh
//!   default off for that node).
//! - a JSON object, every key optional, keys case-sensitive:
//!   `{"interval":"300ms","minTx":"300ms","minRx":"300ms","multiplier":3,"multihop":false,"minTTL":254,"passive":false,"waitForUp":false,"graceful":false,"enabled":true}`.
//!   `interval` sets both `minTx` and `minRx`; `minTx`/`minRx` override it. Durations are
//!   Go-style strings (`"300ms"`, `"1s"`, `"1.5s"`) or a bare integer of milliseconds,
//!   from 10 ms to 60 s, kept to the microsecond (BFD's unit). `multiplier` is 1 to 255;
//!   `minTTL` is 1 to 255 and needs `"multihop":true`. A JSON `null` counts as absent.
//! - an empty value counts as no annotation.
//!
//! Anything else is [`BfdAnnotation::Invalid`], with a message naming the bad key and value
//! and what to write instead. It never rejects the resource: derivation runs its sessions
//! without BFD and warns (see [`warning`]).

use std::time::Duration;

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value;

use crate::state::BfdSettings;
use crate::types::Kind;

/// The annotation's key, on a `BGPPeer` or a `BGPConfiguration`.
pub const BFD_ANNOTATION: &str = "tabby-routing.io/bfd";
/// The shortest interval accepted for `interval`, `minTx` and `minRx`.
pub const BFD_MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest interval accepted for `interval`, `minTx` and `minRx`.
pub const BFD_MAX_INTERVAL: Duration = Duration::from_secs(60);

/// The keys of the JSON form, in the order they are documented.
const KEYS: [&str; 10] = [
    "interval",
    "minTx",
    "minRx",
    "multiplier",
    "multihop",
    "minTTL",
    "passive",
    "waitForUp",
    "graceful",
    "enabled",
];
const EXAMPLE: &str = r#"{"interval":"300ms","multiplier":3}"#;
/// Values echoed in messages are cut to this many characters.
const SHOWN_MAX: usize = 60;

/// What one `tabby-routing.io/bfd` annotation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdAnnotation {
    /// `"false"`, `"disabled"` or `{"enabled":false}`: no BFD, even where a
    /// less specific resource turns it on.
    Off,
    /// BFD with these settings.
    On(BfdSettings),
    /// Not understood; the message names the bad key and value and what to write instead.
    /// BFD is off for the sessions it applies to, and derivation warns.
    Invalid(String),
}

impl BfdAnnotation {
    /// Reads an annotation's value. `None`: empty, as if the annotation were absent.
    pub fn parse(value: &str) -> Option<BfdAnnotation> {
        let v = value.trim();
        if v.is_empty() {
            return None;
        }
        Some(match v {
            "true" | "enabled" => BfdAnnotation::On(BfdSettings::DEFAULT),
            "false" | "disabled" => BfdAnnotation::Off,
            _ if v.starts_with('{') => match parse_json(v) {
                Ok(a) => a,
                Err(problem) => BfdAnnotation::Invalid(problem),
            },
            _ => BfdAnnotation::Invalid(keyword_problem(v)),
        })
    }

    /// Reads the annotation as it sits in a YAML/JSON `metadata.annotations` mapping. An
    /// unquoted boolean or number reads as its text, as calicoctl reads annotations (so
    /// `true`, `yes` and `on` all mean "true"); a list or mapping is invalid, not a reason
    /// to reject the resource. `None`: absent (null) or empty.
    pub(crate) fn from_yaml(value: &Value) -> Option<BfdAnnotation> {
        let found = match value {
            Value::Null => return None,
            Value::String(_) | Value::Bool(_) | Value::Number(_) => {
                return BfdAnnotation::parse(&crate::yaml11::go_string(value)?);
            }
            Value::Sequence(_) => "a list".to_string(),
            Value::Mapping(_) => "a mapping".to_string(),
            Value::Tagged(_) => "a tagged value".to_string(),
        };
        Some(BfdAnnotation::Invalid(format!(
            "found {found}, but annotation values are strings: quote it, as in \"true\" or '{EXAMPLE}'"
        )))
    }

    /// The settings to run with: `Some` only for [`BfdAnnotation::On`].
    pub fn settings(&self) -> Option<BfdSettings> {
        match self {
            BfdAnnotation::On(s) => Some(*s),
            BfdAnnotation::Off | BfdAnnotation::Invalid(_) => None,
        }
    }

    /// The problem, for [`BfdAnnotation::Invalid`].
    pub fn problem(&self) -> Option<&str> {
        match self {
            BfdAnnotation::Invalid(p) => Some(p),
            BfdAnnotation::Off | BfdAnnotation::On(_) => None,
        }
    }
}

/// The derivation warning for a resource whose annotation is invalid, e.g.
/// `BGPPeer 'tor-a': annotation tabby-routing.io/bfd: "interval" '5ms' is below 10ms; BFD is off for its sessions until fixed`.
pub(crate) fn warning(kind: Kind, name: &str, problem: &str) -> String {
    let sessions = match kind {
        Kind::BgpConfiguration => "the node-to-node mesh sessions",
        _ => "its sessions",
    };
    format!(
        "{kind} '{name}': annotation {BFD_ANNOTATION}: {problem}; BFD is off for {sessions} until fixed"
    )
}

fn clip(s: &str) -> String {
    if s.chars().count() <= SHOWN_MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(SHOWN_MAX).collect();
        format!("{head}…")
    }
}

fn keyword_problem(v: &str) -> String {
    let lower = v.to_ascii_lowercase();
    let hint = if ["true", "enabled", "false", "disabled"].contains(&lower.as_str()) {
        format!(" (write it in lower case: '{lower}')")
    } else {
        String::new()
    };
    format!(
        "'{}' is not true, false, enabled, disabled or a JSON object such as {EXAMPLE}{hint}",
        clip(v)
    )
}

/// A JSON value as a message shows it: what it is, and the value.
fn found(v: &Json) -> String {
    match v {
        Json::String(s) => format!("the string '{}'", clip(s)),
        Json::Number(n) => format!("the number {n}"),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Null => "null".to_string(),
        Json::Array(_) => "a list".to_string(),
        Json::Object(_) => "an object".to_string(),
    }
}

fn parse_json(text: &str) -> Result<BfdAnnotation, String> {
    let map = match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(m)) => m,
        Ok(other) => {
            return Err(format!(
                "found {}, not a JSON object such as {EXAMPLE}",
                found(&other)
            ));
        }
        Err(e) => {
            return Err(format!(
                "'{}' is not valid JSON ({e}); write an object such as {EXAMPLE}",
                clip(text)
            ));
        }
    };
    let mut problems = Vec::new();
    let mut unknown: Vec<&String> = map.keys().filter(|k| !KEYS.contains(&k.as_str())).collect();
    if !unknown.is_empty() {
        unknown.sort();
        let named: Vec<String> = unknown
            .iter()
            .map(|k| {
                let hint = KEYS
                    .iter()
                    .find(|known| known.eq_ignore_ascii_case(k))
                    .map(|known| format!(" (did you mean \"{known}\"? keys are case-sensitive)"))
                    .unwrap_or_default();
                format!("\"{}\"{hint}", clip(k))
            })
            .collect();
        problems.push(format!(
            "unknown key{} {} (known keys: {})",
            if unknown.len() > 1 { "s" } else { "" },
            named.join(", "),
            KEYS.join(", ")
        ));
    }

    let mut r = Reader {
        map: &map,
        problems: &mut problems,
    };
    let mut s = BfdSettings::DEFAULT;
    if let Some(i) = r.interval("interval") {
        s.min_tx = i;
        s.min_rx = i;
    }
    if let Some(d) = r.interval("minTx") {
        s.min_tx = d;
    }
    if let Some(d) = r.interval("minRx") {
        s.min_rx = d;
    }
    if let Some(m) = r.byte("multiplier") {
        s.multiplier = m;
    }
    if let Some(b) = r.boolean("multihop") {
        s.multihop = b;
    }
    let min_ttl = r.byte("minTTL");
    if let Some(b) = r.boolean("passive") {
        s.passive = b;
    }
    if let Some(b) = r.boolean("waitForUp") {
        s.wait_for_up = b;
    }
    if let Some(b) = r.boolean("graceful") {
        s.graceful = b;
    }
    let enabled = r.boolean("enabled");
    let min_ttl_set = r.get("minTTL").is_some();
    if min_ttl_set && !s.multihop {
        problems.push(
            "\"minTTL\" applies to multihop sessions only (single-hop BFD requires TTL 255, RFC 5881 §5): add \"multihop\":true or remove \"minTTL\"".to_string(),
        );
    } else if let Some(t) = min_ttl {
        s.min_ttl = t;
    }

    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(if enabled == Some(false) {
        BfdAnnotation::Off
    } else {
        BfdAnnotation::On(s)
    })
}

/// Reads typed keys of the JSON object, collecting one problem per bad key.
struct Reader<'a> {
    map: &'a Map<String, Json>,
    problems: &'a mut Vec<String>,
}

impl Reader<'_> {
    /// A key's value; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&Json> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Json::Bool(b) => Some(*b),
            other => {
                let msg = format!(
                    "\"{key}\" must be true or false (unquoted), found {}",
                    found(other)
                );
                self.problems.push(msg);
                None
            }
        }
    }

    /// An integer from 1 to 255.
    fn byte(&mut self, key: &str) -> Option<u8> {
        let v = self.get(key)?;
        let msg = match v {
            Json::Number(n) => match n.as_u64().and_then(|n| u8::try_from(n).ok()) {
                Some(b) if b > 0 => return Some(b),
                _ => format!("\"{key}\" '{n}' is not a whole number from 1 to 255"),
            },
            other => format!(
                "\"{key}\" must be a whole number from 1 to 255, found {}",
                found(other)
            ),
        };
        self.problems.push(msg);
        None
    }

    /// A Go-style duration string or a whole number of milliseconds, in the allowed range,
    /// rounded to the microsecond.
    fn interval(&mut self, key: &str) -> Option<Duration> {
        let v = self.get(key)?;
        let (shown, parsed) = match v {
            Json::String(s) => {
                let t = s.trim();
                let parsed = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                    t.parse::<u64>().ok().map(Duration::from_millis)
                } else {
                    crate::fields::parse_go_duration(t)
                };
                (clip(s), parsed)
            }
            Json::Number(n) => (n.to_string(), n.as_u64().map(Duration::from_millis)),
            other => {
                let msg = format!(
                    "\"{key}\" must be a duration such as \"300ms\" or \"1.5s\", or a whole number of milliseconds, found {}",
                    found(other)
                );
                self.problems.push(msg);
                return None;
            }
        };
        let msg = match parsed.map(to_micros) {
            None => format!(
                "\"{key}\" '{shown}' is not a duration such as \"300ms\" or \"1.5s\", or a whole number of milliseconds"
            ),
            Some(d) if d < BFD_MIN_INTERVAL => format!("\"{key}\" '{shown}' is below 10ms"),
            Some(d) if d > BFD_MAX_INTERVAL => format!("\"{key}\" '{shown}' is above 60s"),
            Some(d) => return Some(d),
        };
        self.problems.push(msg);
        None
    }
}

/// Rounds to the nearest microsecond: BFD's intervals are microseconds on the wire, and a
/// decimal like `0.3s` is not exact in binary.
fn to_micros(d: Duration) -> Duration {
    let us = d.as_nanos().saturating_add(500) / 1000;
    Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(v: &str) -> BfdSettings {
        match BfdAnnotation::parse(v) {
            Some(BfdAnnotation::On(s)) => s,
            other => panic!("{v:?}: expected On, got {other:?}"),
        }
    }

    fn problem(v: &str) -> String {
        match BfdAnnotation::parse(v) {
            Some(BfdAnnotation::Invalid(p)) => p,
            other => panic!("{v:?}: expected Invalid, got {other:?}"),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn keywords() {
        assert_eq!(on("true"), BfdSettings::DEFAULT);
        assert_eq!(on("enabled"), BfdSettings::DEFAULT);
        assert_eq!(on("  true\n"), BfdSettings::DEFAULT);
        assert_eq!(BfdAnnotation::parse("false"), Some(BfdAnnotation::Off));
        assert_eq!(BfdAnnotation::parse(" disabled "), Some(BfdAnnotation::Off));
        assert_eq!(BfdAnnotation::parse(""), None);
        assert_eq!(BfdAnnotation::parse("  \t"), None);
    }

    #[test]
    fn defaults_are_300ms_times_3_single_hop() {
        let d = BfdSettings::default();
        assert_eq!(d, BfdSettings::DEFAULT);
        assert_eq!((d.min_tx, d.min_rx, d.multiplier), (ms(300), ms(300), 3));
        assert!(!d.multihop && !d.passive && !d.wait_for_up && !d.graceful);
        assert_eq!(d.min_ttl, 254);
        // Every key is optional: an empty object is the defaults.
        assert_eq!(on("{}"), BfdSettings::DEFAULT);
        assert_eq!(on(r#"{"enabled":true}"#), BfdSettings::DEFAULT);
        assert_eq!(on(r#" { "enabled" : true } "#), BfdSettings::DEFAULT);
    }

    #[test]
    fn every_key() {
        let s = on(
            r#"{"interval":"50ms","multiplier":5,"multihop":true,"minTTL":250,"passive":true,"waitForUp":true,"graceful":true,"enabled":true}"#,
        );
        assert_eq!(
            s,
            BfdSettings {
                min_tx: ms(50),
                min_rx: ms(50),
                multiplier: 5,
                multihop: true,
                min_ttl: 250,
                passive: true,
                wait_for_up: true,
                graceful: true,
            }
        );
        // Multihop without minTTL keeps the default minimum TTL.
        assert_eq!(on(r#"{"multihop":true}"#).min_ttl, 254);
        // null is absent.
        assert_eq!(
            on(r#"{"interval":null,"multiplier":null}"#),
            BfdSettings::DEFAULT
        );
    }

    #[test]
    fn enabled_false_is_off() {
        assert_eq!(
            BfdAnnotation::parse(r#"{"enabled":false}"#),
            Some(BfdAnnotation::Off)
        );
        assert_eq!(
            BfdAnnotation::parse(r#"{"enabled":false,"interval":"1s"}"#),
            Some(BfdAnnotation::Off)
        );
        // Off is still checked: a bad value is reported even when disabled.
        assert!(problem(r#"{"enabled":false,"interval":"1ms"}"#).contains("below 10ms"));
    }

    #[test]
    fn interval_then_min_tx_and_min_rx_override_it() {
        let s = on(r#"{"interval":"1s"}"#);
        assert_eq!((s.min_tx, s.min_rx), (ms(1000), ms(1000)));
        let s = on(r#"{"interval":"1s","minTx":"100ms"}"#);
        assert_eq!((s.min_tx, s.min_rx), (ms(100), ms(1000)));
        let s = on(r#"{"minRx":"200ms","interval":"1s"}"#);
        assert_eq!((s.min_tx, s.min_rx), (ms(1000), ms(200)));
        let s = on(r#"{"minTx":"100ms","minRx":"200ms"}"#);
        assert_eq!((s.min_tx, s.min_rx), (ms(100), ms(200)));
    }

    #[test]
    fn duration_forms() {
        assert_eq!(on(r#"{"interval":"300ms"}"#).min_tx, ms(300));
        assert_eq!(on(r#"{"interval":"1s"}"#).min_tx, ms(1000));
        assert_eq!(on(r#"{"interval":"1.5s"}"#).min_tx, ms(1500));
        assert_eq!(on(r#"{"interval":"50ms"}"#).min_tx, ms(50));
        assert_eq!(on(r#"{"interval":"0.3s"}"#).min_tx, ms(300));
        assert_eq!(on(r#"{"interval":"1m"}"#).min_tx, ms(60_000));
        assert_eq!(
            on(r#"{"interval":"12500us"}"#).min_tx,
            Duration::from_micros(12_500)
        );
        // A bare integer is milliseconds, as a JSON number or a string of digits.
        assert_eq!(on(r#"{"interval":250}"#).min_tx, ms(250));
        assert_eq!(on(r#"{"interval":"250"}"#).min_tx, ms(250));
        assert_eq!(on(r#"{"interval":" 300ms "}"#).min_tx, ms(300));
        // Kept to the microsecond.
        assert_eq!(
            on(r#"{"interval":"10.0004ms"}"#).min_tx,
            Duration::from_micros(10_000)
        );
    }

    #[test]
    fn interval_range() {
        assert_eq!(on(r#"{"interval":"10ms"}"#).min_tx, ms(10));
        assert_eq!(on(r#"{"interval":10}"#).min_tx, ms(10));
        assert_eq!(on(r#"{"interval":"60s"}"#).min_tx, ms(60_000));
        assert_eq!(
            problem(r#"{"interval":"5ms"}"#),
            r#""interval" '5ms' is below 10ms"#
        );
        assert_eq!(
            problem(r#"{"interval":"9.999ms"}"#),
            r#""interval" '9.999ms' is below 10ms"#
        );
        assert_eq!(problem(r#"{"minTx":9}"#), r#""minTx" '9' is below 10ms"#);
        assert_eq!(problem(r#"{"minRx":"0"}"#), r#""minRx" '0' is below 10ms"#);
        assert_eq!(
            problem(r#"{"minRx":"61s"}"#),
            r#""minRx" '61s' is above 60s"#
        );
        assert_eq!(
            problem(r#"{"interval":60001}"#),
            r#""interval" '60001' is above 60s"#
        );
    }

    #[test]
    fn bad_durations() {
        let not = |key: &str, v: &str| {
            format!(
                "\"{key}\" '{v}' is not a duration such as \"300ms\" or \"1.5s\", or a whole number of milliseconds"
            )
        };
        assert_eq!(problem(r#"{"interval":"fast"}"#), not("interval", "fast"));
        assert_eq!(problem(r#"{"interval":"-5ms"}"#), not("interval", "-5ms"));
        assert_eq!(problem(r#"{"minTx":"300 ms"}"#), not("minTx", "300 ms"));
        assert_eq!(problem(r#"{"minRx":1.5}"#), not("minRx", "1.5"));
        assert_eq!(problem(r#"{"minRx":-20}"#), not("minRx", "-20"));
        assert_eq!(
            problem(r#"{"interval":true}"#),
            "\"interval\" must be a duration such as \"300ms\" or \"1.5s\", or a whole number of milliseconds, found the boolean true"
        );
    }

    #[test]
    fn multiplier_range() {
        assert_eq!(on(r#"{"multiplier":1}"#).multiplier, 1);
        assert_eq!(on(r#"{"multiplier":255}"#).multiplier, 255);
        assert_eq!(
            problem(r#"{"multiplier":0}"#),
            r#""multiplier" '0' is not a whole number from 1 to 255"#
        );
        assert_eq!(
            problem(r#"{"multiplier":256}"#),
            r#""multiplier" '256' is not a whole number from 1 to 255"#
        );
        assert_eq!(
            problem(r#"{"multiplier":2.5}"#),
            r#""multiplier" '2.5' is not a whole number from 1 to 255"#
        );
        assert_eq!(
            problem(r#"{"multiplier":"3"}"#),
            r#""multiplier" must be a whole number from 1 to 255, found the string '3'"#
        );
    }

    #[test]
    fn min_ttl_needs_multihop_and_a_range() {
        assert_eq!(on(r#"{"multihop":true,"minTTL":1}"#).min_ttl, 1);
        assert_eq!(on(r#"{"multihop":true,"minTTL":255}"#).min_ttl, 255);
        let needs = "\"minTTL\" applies to multihop sessions only (single-hop BFD requires TTL 255, RFC 5881 §5): add \"multihop\":true or remove \"minTTL\"";
        assert_eq!(problem(r#"{"minTTL":250}"#), needs);
        assert_eq!(problem(r#"{"multihop":false,"minTTL":250}"#), needs);
        assert_eq!(
            problem(r#"{"multihop":true,"minTTL":0}"#),
            r#""minTTL" '0' is not a whole number from 1 to 255"#
        );
        assert_eq!(
            problem(r#"{"multihop":true,"minTTL":300}"#),
            r#""minTTL" '300' is not a whole number from 1 to 255"#
        );
    }

    #[test]
    fn booleans_must_be_json_booleans() {
        for key in ["multihop", "passive", "waitForUp", "graceful", "enabled"] {
            assert_eq!(
                problem(&format!(r#"{{"{key}":"true"}}"#)),
                format!("\"{key}\" must be true or false (unquoted), found the string 'true'")
            );
        }
        assert_eq!(
            problem(r#"{"passive":1}"#),
            r#""passive" must be true or false (unquoted), found the number 1"#
        );
        let s = on(r#"{"passive":true,"waitForUp":true,"graceful":true}"#);
        assert!(s.passive && s.wait_for_up && s.graceful && !s.multihop);
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let known = "(known keys: interval, minTx, minRx, multiplier, multihop, minTTL, passive, waitForUp, graceful, enabled)";
        assert_eq!(
            problem(r#"{"intervall":"300ms"}"#),
            format!("unknown key \"intervall\" {known}")
        );
        // Keys are case-sensitive, with a hint.
        assert_eq!(
            problem(r#"{"mintx":"300ms"}"#),
            format!(
                "unknown key \"mintx\" (did you mean \"minTx\"? keys are case-sensitive) {known}"
            )
        );
        // Several: one problem naming them all, sorted.
        assert_eq!(
            problem(r#"{"zeta":1,"MinTTL":5,"multihop":true}"#),
            format!(
                "unknown keys \"MinTTL\" (did you mean \"minTTL\"? keys are case-sensitive), \"zeta\" {known}"
            )
        );
    }

    #[test]
    fn several_problems_are_reported_together() {
        let p = problem(r#"{"zeta":1,"interval":"1ms","multiplier":0,"passive":"no"}"#);
        let parts: Vec<&str> = p.split("; ").collect();
        assert_eq!(parts.len(), 4, "{p}");
        assert!(parts[0].starts_with("unknown key \"zeta\""), "{p}");
        assert_eq!(parts[1], r#""interval" '1ms' is below 10ms"#);
        assert!(parts[2].starts_with(r#""multiplier" '0' is not"#), "{p}");
        assert!(
            parts[3].starts_with(r#""passive" must be true or false"#),
            "{p}"
        );
    }

    #[test]
    fn other_text_is_invalid() {
        assert_eq!(
            problem("yes"),
            r#"'yes' is not true, false, enabled, disabled or a JSON object such as {"interval":"300ms","multiplier":3}"#
        );
        assert_eq!(
            problem("True"),
            r#"'True' is not true, false, enabled, disabled or a JSON object such as {"interval":"300ms","multiplier":3} (write it in lower case: 'true')"#
        );
        assert!(problem("300ms").starts_with("'300ms' is not true, false"));
        let p = problem(r#"{"interval":"300ms""#);
        assert!(
            p.starts_with(r#"'{"interval":"300ms"' is not valid JSON (EOF while parsing"#),
            "{p}"
        );
        assert!(p.ends_with(r#"; write an object such as {"interval":"300ms","multiplier":3}"#));
        assert!(problem("{'interval':'300ms'}").contains("is not valid JSON"));
        // Long values are cut in messages.
        let long = format!("x{}", "y".repeat(200));
        assert!(problem(&long).starts_with(&format!("'x{}…' is not", "y".repeat(59))));
    }

    #[test]
    fn yaml_scalars_read_as_text_structures_are_invalid_not_fatal() {
        assert_eq!(
            BfdAnnotation::from_yaml(&Value::String("true".into())),
            Some(BfdAnnotation::On(BfdSettings::DEFAULT))
        );
        assert_eq!(BfdAnnotation::from_yaml(&Value::Null), None);
        // calicoctl reads an unquoted boolean into the annotation as its text.
        assert_eq!(
            BfdAnnotation::from_yaml(&Value::Bool(true)),
            Some(BfdAnnotation::On(BfdSettings::DEFAULT))
        );
        assert_eq!(
            BfdAnnotation::from_yaml(&Value::Bool(false)),
            Some(BfdAnnotation::Off)
        );
        assert!(
            BfdAnnotation::from_yaml(&Value::Number(5.into()))
                .unwrap()
                .problem()
                .unwrap()
                .starts_with("'5' is not")
        );
        let m: Value = serde_yaml_ng::from_str("{interval: 300ms}").unwrap();
        assert!(
            BfdAnnotation::from_yaml(&m)
                .unwrap()
                .problem()
                .unwrap()
                .starts_with("found a mapping, but annotation values are strings")
        );
    }

    #[test]
    fn settings_and_warning_text() {
        assert_eq!(
            BfdAnnotation::On(BfdSettings::DEFAULT).settings(),
            Some(BfdSettings::DEFAULT)
        );
        assert_eq!(BfdAnnotation::Off.settings(), None);
        assert_eq!(BfdAnnotation::Invalid("x".into()).settings(), None);
        assert_eq!(BfdAnnotation::Off.problem(), None);
        assert_eq!(
            warning(Kind::BgpPeer, "tor-a", r#""interval" '5ms' is below 10ms"#),
            r#"BGPPeer 'tor-a': annotation tabby-routing.io/bfd: "interval" '5ms' is below 10ms; BFD is off for its sessions until fixed"#
        );
        assert_eq!(
            warning(Kind::BgpConfiguration, "default", "'yes' is not true"),
            "BGPConfiguration 'default': annotation tabby-routing.io/bfd: 'yes' is not true; BFD is off for the node-to-node mesh sessions until fixed"
        );
    }
}
