//! Calico's label-selector language, as used by `BGPPeer.nodeSelector` / `peerSelector`.
//!
//! Grammar (lowest precedence first):
//! ```text
//! expr    := and ( "||" and )*
//! and     := unary ( "&&" unary )*
//! unary   := "!" unary | primary
//! primary := "(" expr ")" | "all()" | "global()" | "has(" key ")"
//!          | key ( "==" | "!=" ) string
//!          | key ( "in" | "not in" ) "{" [ string ( "," string )* ] "}"
//!          | key ( "contains" | "starts with" | "ends with" ) string
//! ```
//! Strings are single- or double-quoted. As in Calico, `k != v` and `k not in {…}` also
//! match a node without label `k`, and an empty selector matches everything.

use std::collections::BTreeMap;
use std::fmt;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    All,
    Has(String),
    Equal(String, String),
    NotEqual(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Contains(String, String),
    StartsWith(String, String),
    EndsWith(String, String),
    Not(Box<Selector>),
    And(Box<Selector>, Box<Selector>),
    Or(Box<Selector>, Box<Selector>),
}

/// Why a selector did not parse, with the byte offset where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector error at position {pos}: {reason}")]
pub struct SelectorError {
    pub pos: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-')
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok)>, SelectorError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(pos, c)) = chars.peek() {
        let err = |reason: &str| SelectorError {
            pos,
            reason: reason.to_string(),
        };
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' | '!' | '&' | '|' => {
                chars.next();
                let next = chars.peek().map(|&(_, n)| n);
                let tok = match (c, next) {
                    ('=', Some('=')) => Tok::EqEq,
                    ('!', Some('=')) => Tok::NotEq,
                    ('&', Some('&')) => Tok::AndAnd,
                    ('|', Some('|')) => Tok::OrOr,
                    ('!', _) => {
                        out.push((pos, Tok::Bang));
                        continue;
                    }
                    _ => return Err(err("expected ==, !=, && or ||")),
                };
                chars.next();
                out.push((pos, tok));
            }
            '(' | ')' | '{' | '}' | ',' => {
                chars.next();
                out.push((
                    pos,
                    match c {
                        '(' => Tok::LParen,
                        ')' => Tok::RParen,
                        '{' => Tok::LBrace,
                        '}' => Tok::RBrace,
                        _ => Tok::Comma,
                    },
                ));
            }
            '"' | '\'' => {
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                for (_, ch) in chars.by_ref() {
                    if ch == c {
                        closed = true;
                        break;
                    }
                    value.push(ch);
                }
                if !closed {
                    return Err(err("unterminated string"));
                }
                out.push((pos, Tok::Str(value)));
            }
            c if is_ident_char(c) => {
                let mut ident = String::new();
                while let Some(&(_, ch)) = chars.peek() {
                    if !is_ident_char(ch) {
                        break;
                    }
                    ident.push(ch);
                    chars.next();
                }
                out.push((pos, Tok::Ident(ident)));
            }
            _ => return Err(err(&format!("unexpected character '{c}'"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(_, t)| t)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map(|(p, _)| *p).unwrap_or(self.end)
    }
    fn err(&self, reason: impl Into<String>) -> SelectorError {
        SelectorError {
            pos: self.pos(),
            reason: reason.into(),
        }
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.i).map(|(_, t)| t.clone());
        self.i += 1;
        t
    }
    fn expect(&mut self, want: Tok, what: &str) -> Result<(), SelectorError> {
        if self.peek() == Some(&want) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }
    fn peek_ident(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(w)) if w == word)
    }

    fn expr(&mut self) -> Result<Selector, SelectorError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::OrOr) {
            self.i += 1;
            let right = self.and()?;
            left = Selector::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::AndAnd) {
            self.i += 1;
            let right = self.unary()?;
            left = Selector::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Selector, SelectorError> {
        if self.peek() == Some(&Tok::Bang) {
            self.i += 1;
            return Ok(Selector::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => {
                self.i -= 1;
                Err(self.err("expected a quoted string"))
            }
        }
    }

    fn string_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.expect(Tok::LBrace, "'{'")?;
        let mut values = Vec::new();
        if self.peek() == Some(&Tok::RBrace) {
            self.i += 1;
            return Ok(values);
        }
        loop {
            values.push(self.string()?);
            match self.next() {
                Some(Tok::Comma) => continue,
                Some(Tok::RBrace) => return Ok(values),
                _ => {
                    self.i -= 1;
                    return Err(self.err("expected ',' or '}'"));
                }
            }
        }
    }

    fn primary(&mut self) -> Result<Selector, SelectorError> {
        match self.next() {
            Some(Tok::LParen) => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "')'")?;
                Ok(e)
            }
            Some(Tok::Ident(word)) => {
                if (word == "all" || word == "global") && self.peek() == Some(&Tok::LParen) {
                    self.i += 1;
                    self.expect(Tok::RParen, "')'")?;
                    // global() selects non-namespaced resources; every Node is one.
                    return Ok(Selector::All);
                }
                if word == "has" && self.peek() == Some(&Tok::LParen) {
                    self.i += 1;
                    let key = match self.next() {
                        Some(Tok::Ident(k)) => k,
                        _ => {
                            self.i -= 1;
                            return Err(self.err("expected a label key"));
                        }
                    };
                    self.expect(Tok::RParen, "')'")?;
                    return Ok(Selector::Has(key));
                }
                let key = word;
                match self.next() {
                    Some(Tok::EqEq) => Ok(Selector::Equal(key, self.string()?)),
                    Some(Tok::NotEq) => Ok(Selector::NotEqual(key, self.string()?)),
                    Some(Tok::Ident(op)) if op == "in" => Ok(Selector::In(key, self.string_set()?)),
                    Some(Tok::Ident(op)) if op == "not" && self.peek_ident("in") => {
                        self.i += 1;
                        Ok(Selector::NotIn(key, self.string_set()?))
                    }
                    Some(Tok::Ident(op)) if op == "contains" => {
                        Ok(Selector::Contains(key, self.string()?))
                    }
                    Some(Tok::Ident(op)) if op == "starts" && self.peek_ident("with") => {
                        self.i += 1;
                        Ok(Selector::StartsWith(key, self.string()?))
                    }
                    Some(Tok::Ident(op)) if op == "ends" && self.peek_ident("with") => {
                        self.i += 1;
                        Ok(Selector::EndsWith(key, self.string()?))
                    }
                    _ => {
                        self.i -= 1;
                        Err(self.err(format!(
                            "expected ==, !=, in, not in, contains, starts with or ends with after '{key}'"
                        )))
                    }
                }
            }
            _ => {
                self.i = self.i.saturating_sub(1);
                Err(self.err("expected a label expression, has(), all(), '!' or '('"))
            }
        }
    }
}

impl Selector {
    /// Parses Calico selector text. An empty or blank string is `all()`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let toks = tokenize(s)?;
        if toks.is_empty() {
            return Ok(Selector::All);
        }
        let mut p = Parser {
            toks,
            i: 0,
            end: s.len(),
        };
        let e = p.expr()?;
        if p.i < p.toks.len() {
            return Err(p.err("unexpected text after the end of the expression"));
        }
        Ok(e)
    }

    /// Does a resource with these labels match?
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Selector::All => true,
            Selector::Has(k) => labels.contains_key(k),
            Selector::Equal(k, v) => labels.get(k) == Some(v),
            Selector::NotEqual(k, v) => labels.get(k) != Some(v),
            Selector::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Selector::NotIn(k, vs) => !labels.get(k).is_some_and(|l| vs.contains(l)),
            Selector::Contains(k, v) => labels.get(k).is_some_and(|l| l.contains(v.as_str())),
            Selector::StartsWith(k, v) => labels.get(k).is_some_and(|l| l.starts_with(v.as_str())),
            Selector::EndsWith(k, v) => labels.get(k).is_some_and(|l| l.ends_with(v.as_str())),
            Selector::Not(e) => !e.matches(labels),
            Selector::And(a, b) => a.matches(labels) && b.matches(labels),
            Selector::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

fn quote(f: &mut fmt::Formatter<'_>, v: &str) -> fmt::Result {
    if v.contains('"') {
        write!(f, "'{v}'")
    } else {
        write!(f, "\"{v}\"")
    }
}

fn set(f: &mut fmt::Formatter<'_>, vs: &[String]) -> fmt::Result {
    f.write_str("{")?;
    for (i, v) in vs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        quote(f, v)?;
    }
    f.write_str("}")
}

impl fmt::Display for Selector {
    /// Canonical text, fully parenthesised; parses back to the same selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("all()"),
            Selector::Has(k) => write!(f, "has({k})"),
            Selector::Equal(k, v) => {
                write!(f, "{k} == ")?;
                quote(f, v)
            }
            Selector::NotEqual(k, v) => {
                write!(f, "{k} != ")?;
                quote(f, v)
            }
            Selector::In(k, vs) => {
                write!(f, "{k} in ")?;
                set(f, vs)
            }
            Selector::NotIn(k, vs) => {
                write!(f, "{k} not in ")?;
                set(f, vs)
            }
            Selector::Contains(k, v) => {
                write!(f, "{k} contains ")?;
                quote(f, v)
            }
            Selector::StartsWith(k, v) => {
                write!(f, "{k} starts with ")?;
                quote(f, v)
            }
            Selector::EndsWith(k, v) => {
                write!(f, "{k} ends with ")?;
                quote(f, v)
            }
            Selector::Not(e) => write!(f, "!({e})"),
            Selector::And(a, b) => write!(f, "({a} && {b})"),
            Selector::Or(a, b) => write!(f, "({a} || {b})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn m(sel: &str, l: &[(&str, &str)]) -> bool {
        Selector::parse(sel)
            .unwrap_or_else(|e| panic!("{sel}: {e}"))
            .matches(&labels(l))
    }

    #[test]
    fn equality_and_absence() {
        assert!(m("rack == 'r1'", &[("rack", "r1")]));
        assert!(!m("rack == 'r1'", &[("rack", "r2")]));
        assert!(!m("rack == 'r1'", &[]));
        // Calico: != matches when the label is missing.
        assert!(m("rack != 'r1'", &[]));
        assert!(m("rack != \"r1\"", &[("rack", "r2")]));
        assert!(!m("rack != 'r1'", &[("rack", "r1")]));
    }

    #[test]
    fn sets() {
        assert!(m("zone in {'a', 'b'}", &[("zone", "b")]));
        assert!(!m("zone in {'a','b'}", &[("zone", "c")]));
        assert!(!m("zone in {'a'}", &[]));
        assert!(!m("zone in {}", &[("zone", "a")]));
        assert!(m("zone not in {'a'}", &[]));
        assert!(m("zone not in {'a'}", &[("zone", "b")]));
        assert!(!m("zone not in {'a', \"b\"}", &[("zone", "b")]));
    }

    #[test]
    fn has_not_all_and_or_parens() {
        assert!(m("all()", &[]));
        assert!(m("", &[]));
        assert!(m("   ", &[]));
        assert!(m("has(route-reflector)", &[("route-reflector", "")]));
        assert!(!m("!has(route-reflector)", &[("route-reflector", "true")]));
        assert!(m("!has(route-reflector)", &[]));
        assert!(m("has(a) && has(b)", &[("a", "1"), ("b", "2")]));
        assert!(!m("has(a) && has(b)", &[("a", "1")]));
        assert!(m("has(a) || has(b)", &[("b", "1")]));
        // && binds tighter than ||.
        assert!(m("has(a) || has(b) && has(c)", &[("a", "1")]));
        assert!(!m("(has(a) || has(b)) && has(c)", &[("a", "1")]));
        assert!(m("!(has(a) && has(b))", &[("a", "1")]));
        assert!(m("!!has(a)", &[("a", "1")]));
        assert!(m(
            "kubernetes.io/hostname == 'node-a' && projectcalico.org/rr in {'yes'}",
            &[
                ("kubernetes.io/hostname", "node-a"),
                ("projectcalico.org/rr", "yes")
            ]
        ));
    }

    #[test]
    fn string_operators() {
        assert!(m("name contains 'rack'", &[("name", "east-rack-1")]));
        assert!(m("name starts with 'east'", &[("name", "east-rack-1")]));
        assert!(m("name ends with '-1'", &[("name", "east-rack-1")]));
        assert!(!m("name ends with '-2'", &[("name", "east-rack-1")]));
        assert!(!m("name contains 'x'", &[]));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Selector::parse("rack == ").unwrap_err();
        assert_eq!(e.pos, 8);
        assert!(Selector::parse("rack = 'a'").is_err());
        assert!(Selector::parse("rack == 'a").is_err());
        assert!(Selector::parse("(has(a)").is_err());
        assert!(Selector::parse("has(a))").is_err());
        assert!(Selector::parse("has(a) &&").is_err());
        assert!(Selector::parse("a in {'x' 'y'}").is_err());
        assert!(Selector::parse("a not {'x'}").is_err());
        assert!(Selector::parse("a == 'x' b == 'y'").is_err());
        assert!(Selector::parse("rack == 'a' # comment").is_err());
        assert!(Selector::parse("has()").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "all()",
            "has(a) && !has(b)",
            "a == 'x' || b != \"y\" && c in {'1', '2'}",
            "z not in {} && q starts with 'p' || r ends with 's' && t contains 'u'",
        ] {
            let p = Selector::parse(s).unwrap();
            let again = Selector::parse(&p.to_string()).unwrap();
            assert_eq!(p, again, "{s} -> {p}");
        }
    }
}
