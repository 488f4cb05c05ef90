//! Selector properties: printing then parsing gives the same selector; no input panics the
//! parser; evaluation follows boolean algebra.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tabby_topology::Selector;

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "rack",
        "zone",
        "projectcalico.org/rr",
        "kubernetes.io/hostname",
        "a-b_c.d",
    ])
    .prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    "[a-z0-9 ._-]{0,6}"
}

fn selector() -> impl Strategy<Value = Selector> {
    let leaf = prop_oneof![
        Just(Selector::All),
        key().prop_map(Selector::Has),
        (key(), value()).prop_map(|(k, v)| Selector::Equal(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::NotEqual(k, v)),
        (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, v)| Selector::In(k, v)),
        (key(), prop::collection::vec(value(), 0..3)).prop_map(|(k, v)| Selector::NotIn(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::Contains(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::StartsWith(k, v)),
        (key(), value()).prop_map(|(k, v)| Selector::EndsWith(k, v)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Selector::Not(Box::new(e))),
            (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Selector::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Selector::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..4)
}

proptest! {
    #[test]
    fn display_parses_back(s in selector()) {
        let text = s.to_string();
        let back = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, s);
    }

    #[test]
    fn parser_never_panics(text in ".{0,40}") {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_selector_like_text(text in "[a-z!&|(){}=,' \"]{0,30}") {
        let _ = Selector::parse(&text);
    }

    #[test]
    fn precedence_and_de_morgan(a in selector(), b in selector(), c in selector(), l in labels()) {
        let p = |t: String| Selector::parse(&t).unwrap();
        // De Morgan through the parser: !(a && b) == !a || !b.
        prop_assert_eq!(
            p(format!("!({a} && {b})")).matches(&l),
            p(format!("!{a} || !{b}")).matches(&l)
        );
        // && binds tighter than ||, without parentheses.
        prop_assert_eq!(
            p(format!("{a} || {b} && {c}")).matches(&l),
            a.matches(&l) || (b.matches(&l) && c.matches(&l))
        );
        // ! binds tighter than &&.
        prop_assert_eq!(
            p(format!("!{a} && {b}")).matches(&l),
            !a.matches(&l) && b.matches(&l)
        );
    }
}
