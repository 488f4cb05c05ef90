//! YAML text read the way `calicoctl` reads it, so a file means to Tabby what it means to
//! `calicoctl apply`.
//!
//! calicoctl decodes with `sigs.k8s.io/yaml`: go-yaml v2 parses the text with YAML 1.1's
//! implicit types, the result becomes JSON, and where the Go field is a string (labels,
//! annotations, names…) a boolean or number is turned into text. Two consequences differ
//! from YAML 1.2, which `serde_yaml_ng` implements:
//!
//! - an unquoted `yes`/`no`/`on`/`off`/`y`/`n` (in the capitalisations go-yaml knows) is
//!   a boolean, and a label written `route-reflector: yes` is the string `"true"`;
//! - numbers follow YAML 1.1 (`007` is octal 7, `1_000` is 1000, `0X1F` is 31) and a
//!   number in a string field is printed as Go prints it: integers in decimal, floats
//!   with `strconv.FormatFloat(f, 'g', -1, 32)` (`1.0` → `"1"`, `1e10` → `"1e+10"`).
//!
//! Quoted scalars, block scalars and explicitly tagged ones stay strings, as in go-yaml.
//! [`documents`] gives the stream's documents as [`Value`]s with plain scalars resolved
//! that way; [`go_string`] and [`go_key`] do the JSON-to-string step where the field is a
//! string. Sources that carry JSON (etcd, Kubernetes) need only the latter: JSON strings
//! are quoted, and calico-node's own decoding fails on anything but strings in a string
//! field, so a JSON boolean there is read leniently as its text.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::{Mapping, Number, Value};

/// One document of a YAML stream.
#[derive(Debug)]
pub(crate) struct Document {
    pub value: Value,
    /// What makes the document unusable although it parses (a mapping key given twice,
    /// which go-yaml's strict mode rejects); empty when fine.
    pub problems: Vec<String>,
}

/// Every document of `text`, plain scalars resolved as YAML 1.1 (go-yaml v2) does. `Err`:
/// the text is not YAML (a syntax error); nothing after it can be read.
pub(crate) fn documents(text: &str) -> Result<Vec<Document>, serde_yaml_ng::Error> {
    let mut out = Vec::new();
    // After a syntax error serde_yaml_ng repeats it for every further "document": stop at
    // the first.
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let problems = RefCell::new(Vec::new());
        let value = Seed {
            text,
            problems: &problems,
        }
        .deserialize(de)?;
        out.push(Document {
            value,
            problems: problems.into_inner(),
        });
    }
    Ok(out)
}

#[derive(Clone, Copy)]
struct Seed<'t, 'p> {
    /// The whole text: a borrowed scalar's position in it tells how it was written.
    text: &'t str,
    problems: &'p RefCell<Vec<String>>,
}

impl<'de, 't, 'p> DeserializeSeed<'de> for Seed<'t, 'p> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed<'_, '_> {
    /// Whether `s`, a slice of the text, was written as a plain (unquoted, untagged)
    /// scalar. serde_yaml_ng lends quoted scalars without their quotes, so a quote right
    /// before the slice means quoted; a `!tag` as the token before it means tagged.
    fn is_plain(&self, s: &str) -> bool {
        let base = self.text.as_ptr() as usize;
        let Some(offset) = (s.as_ptr() as usize)
            .checked_sub(base)
            .filter(|o| *o + s.len() <= self.text.len())
        else {
            return false;
        };
        let Some(before) = self.text.get(..offset) else {
            return false;
        };
        if before.ends_with(['\'', '"']) {
            return false;
        }
        let token = before
            .trim_end()
            .rsplit(|c: char| c.is_whitespace() || matches!(c, '[' | '{' | ','))
            .next()
            .unwrap_or("");
        !token.starts_with('!')
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Number(u.into()))
    }

    // Beyond 64 bits go-yaml falls back to a float.
    fn visit_i128<E>(self, i: i128) -> Result<Value, E> {
        Ok(Value::Number((i as f64).into()))
    }

    fn visit_u128<E>(self, u: u128) -> Result<Value, E> {
        Ok(Value::Number((u as f64).into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Number(f.into()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Value, E> {
        Ok(if self.is_plain(s) {
            resolve_plain(s)
        } else {
            Value::String(s.to_string())
        })
    }

    // Not lent from the text: escapes, a block scalar, or a plain scalar folded over
    // lines (which holds a space, so YAML 1.1 reads it as a string too).
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            let v = map.next_value_seed(self)?;
            if out.contains_key(&k) {
                let shown = go_key(&k).unwrap_or_else(|| format!("{k:?}"));
                self.problems
                    .borrow_mut()
                    .push(format!("mapping key '{shown}' is given twice"));
                continue;
            }
            out.insert(k, v);
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (tag, contents): (String, _) = data.variant()?;
        let value = contents.newtype_variant_seed(self)?;
        if tag.is_empty() {
            return Ok(value);
        }
        Ok(Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn resolve_plain(s: &str) -> Value {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        ".nan" | ".NaN" | ".NAN" => return Value::Number(f64::NAN.into()),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Number(f64::INFINITY.into());
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Number(f64::NEG_INFINITY.into()),
        _ => {}
    }
    let string = || Value::String(s.to_string());
    match s.as_bytes()[0] {
        b'.' => match s.parse::<f64>() {
            Ok(f) if f.is_finite() && is_yaml_float(s) => Value::Number(f.into()),
            _ => string(),
        },
        b'0'..=b'9' | b'+' | b'-' => {
            // Go's ParseInt/ParseUint with base 0, after dropping every '_'.
            let plain: String = s.chars().filter(|c| *c != '_').collect();
            if let Some((negative, magnitude)) = go_base0(&plain) {
                if negative {
                    if magnitude <= 1u128 << 63 {
                        return Value::Number(Number::from(
                            (magnitude as i128).wrapping_neg() as i64
                        ));
                    }
                } else if let Ok(i) = i64::try_from(magnitude) {
                    return Value::Number(i.into());
                } else if let Ok(u) = u64::try_from(magnitude)
                    && !plain.starts_with('+')
                {
                    return Value::Number(u.into());
                }
            }
            if is_yaml_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
                && f.is_finite()
            {
                return Value::Number(f.into());
            }
            string()
        }
        _ => string(),
    }
}

/// Go's base-0 integer syntax: optional sign, then `0x`/`0o`/`0b` (any case), a leading
/// `0` (octal) or decimal digits. Returns the sign and the magnitude if it fits 128 bits.
fn go_base0(s: &str) -> Option<(bool, u128)> {
    let (negative, body) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let bytes = body.as_bytes();
    let (radix, digits) = match bytes {
        [b'0', b'x' | b'X', ..] => (16, &body[2..]),
        [b'0', b'o' | b'O', ..] => (8, &body[2..]),
        [b'0', b'b' | b'B', ..] => (2, &body[2..]),
        [b'0', _, ..] => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u128::from_str_radix(digits, radix)
        .ok()
        .map(|m| (negative, m))
}

/// go-yaml's float pattern: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        None => digits(mantissa),
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A scalar as the text a Go string field receives from sigs.k8s.io/yaml: strings as
/// they are, booleans as `true`/`false`, integers in decimal, floats as
/// `strconv.FormatFloat(f, 'g', -1, 32)`. `None` for null, lists, mappings and tagged
/// values.
pub(crate) fn go_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(if let Some(i) = n.as_i64() {
            i.to_string()
        } else if let Some(u) = n.as_u64() {
            u.to_string()
        } else {
            go_float32_text(n.as_f64().unwrap_or(f64::NAN))
        }),
        _ => None,
    }
}

/// A mapping key as sigs.k8s.io/yaml turns it into a JSON key (floats as go-yaml writes
/// them: `.inf`, `-.inf`, `.nan`).
pub(crate) fn go_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) if n.is_f64() => Some(match go_float32_text(n.as_f64()?).as_str() {
            "+Inf" => ".inf".to_string(),
            "-Inf" => "-.inf".to_string(),
            "NaN" => ".nan".to_string(),
            other => other.to_string(),
        }),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => go_string(v),
        _ => None,
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 32)`: the shortest digits that read back as the same
/// `float32`, in `%e` form when the exponent is below -4 or at least 6.
pub(crate) fn go_float32_text(f: f64) -> String {
    let f = f as f32;
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d.ddde±x`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    // Decimal point after `point` digits.
    let point = exp + 1;
    let n = digits.len() as i32;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else if point >= n {
        format!("{digits}{}", "0".repeat((point - n) as usize))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let mut docs = documents(text).unwrap();
        assert_eq!(docs.len(), 1);
        let d = docs.remove(0);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        d.value
    }

    /// What a Go string field receives for `v: <scalar>`.
    fn as_go(scalar: &str) -> Option<String> {
        let v = one(&format!("v: {scalar}\n"));
        go_string(&v["v"])
    }

    #[test]
    fn yaml_1_1_booleans() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert_eq!(as_go(t).as_deref(), Some("true"), "{t}");
        }
        for f in [
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
        ] {
            assert_eq!(as_go(f).as_deref(), Some("false"), "{f}");
        }
        // Other spellings, quoted forms and explicit string tags stay strings.
        for s in ["yEs", "oN", "'yes'", "\"on\"", "!!str yes", "|\n  yes"] {
            let want = s
                .trim_start_matches("!!str ")
                .trim_start_matches("|\n  ")
                .trim_matches(['\'', '"']);
            let got = as_go(s).unwrap();
            assert_eq!(got.trim_end(), want, "{s}");
        }
    }

    // Expected texts: what sigs.k8s.io/yaml v1.6.0 (go-yaml v2.4) gives a Go string field
    // for each scalar, worked out from its resolver and FormatFloat(…, 'g', -1, 32).
    #[test]
    fn yaml_1_1_numbers_as_go_prints_them() {
        let cases = [
            ("1", "1"),
            ("-1", "-1"),
            ("+1", "1"),
            ("-0", "0"),
            ("007", "7"),
            ("0777", "511"),
            ("08", "8"),
            ("00", "0"),
            ("0x1F", "31"),
            ("0X1F", "31"),
            ("-0x1F", "-31"),
            ("0o17", "15"),
            ("0O17", "15"),
            ("0b101", "5"),
            ("0B101", "5"),
            ("-0b101", "-5"),
            ("1_000", "1000"),
            ("1__0", "10"),
            ("1_", "1"),
            ("0x_1F", "31"),
            ("12345678901234567890", "12345678901234567890"),
            ("99999999999999999999", "1e+20"),
            ("-12345678901234567890", "-1.2345679e+19"),
            ("1.0", "1"),
            ("1.", "1"),
            ("0.", "0"),
            ("1.5", "1.5"),
            ("2.50", "2.5"),
            ("0.1", "0.1"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("+.5", "0.5"),
            ("1_0.5", "10.5"),
            ("3.14159265358979", "3.1415927"),
            ("1.23456789", "1.2345679"),
            ("1e3", "1000"),
            ("1E5", "100000"),
            ("1.e5", "100000"),
            (".5e3", "500"),
            ("1e10", "1e+10"),
            ("1000000.0", "1e+06"),
            ("1234567.0", "1.234567e+06"),
            ("123456.7", "123456.7"),
            ("100000.0", "100000"),
            ("16777217.0", "1.6777216e+07"),
            ("6.8523015e+5", "685230.1"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("1.5e-7", "1.5e-07"),
            ("0.000123456789", "0.00012345679"),
            ("1e38", "1e+38"),
            ("1e39", "+Inf"),
            ("-1e-50", "-0"),
            ("-0.0", "-0"),
            ("0.0", "0"),
            (".inf", "+Inf"),
            ("-.Inf", "-Inf"),
            (".NaN", "NaN"),
        ];
        for (scalar, want) in cases {
            assert_eq!(as_go(scalar).as_deref(), Some(want), "{scalar}");
        }
    }

    #[test]
    fn strings_that_only_look_numeric() {
        for s in [
            "1e400",
            "0x",
            "0o",
            "0b",
            "0x1p3",
            "1:20",
            "190:20:30",
            "2024-01-01",
            "1,000",
            "0.1.2",
            "1e5.5",
            "1e",
            "_1",
            ".",
            "+",
            "nan",
            "inf",
            "-inf",
            "Infinity",
        ] {
            assert_eq!(as_go(s).as_deref(), Some(s), "{s}");
        }
    }

    #[test]
    fn nulls_keys_and_structure() {
        for n in ["~", "null", "Null", "NULL", ""] {
            assert_eq!(one(&format!("v: {n}\n"))["v"], Value::Null, "{n}");
        }
        let v = one("yes: a\n1: b\n1.5: c\nlist: [on, 'off', 0x10]\nnested: {k: N}\n");
        let keys: Vec<String> = v
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| go_key(k).unwrap())
            .collect();
        assert_eq!(keys, ["true", "1", "1.5", "list", "nested"]);
        assert_eq!(
            v["list"],
            Value::Sequence(vec![
                Value::Bool(true),
                Value::String("off".into()),
                Value::Number(16.into())
            ])
        );
        assert_eq!(v["nested"]["k"], Value::Bool(false));
        // Flow context, anchors and aliases, tags.
        let v = one("a: &x on\nb: *x\nc: [!!str on, !custom on]\n");
        assert_eq!(v["a"], Value::Bool(true));
        assert_eq!(v["b"], Value::Bool(true));
        assert_eq!(v["c"][0], Value::String("on".into()));
        assert!(matches!(&v["c"][1], Value::Tagged(t) if t.tag == "custom"));
    }

    #[test]
    fn duplicate_keys_are_a_document_problem() {
        let docs = documents("a: 1\na: 2\n---\nyes: 1\non: 2\n---\nok: 1\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].problems, ["mapping key 'a' is given twice"]);
        assert_eq!(docs[1].problems, ["mapping key 'true' is given twice"]);
        assert!(docs[2].problems.is_empty());
    }

    #[test]
    fn syntax_errors_end_the_stream() {
        assert!(documents("a: 1\n---\nb: [unclosed\n---\nc: 1\n").is_err());
        for empty in ["", "---\n---\n", "# nothing\n"] {
            assert!(
                documents(empty).unwrap().iter().all(|d| d.value.is_null()),
                "{empty:?}"
            );
        }
    }
}
