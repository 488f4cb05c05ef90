//! Import and export policy: an ordered list of rules, first verdict wins.
//!
//! A rule matches when all its [`Match`]es hold; it then applies its
//! [`Action`]s and, if it has a verdict, stops evaluation. Rules without a
//! verdict only modify (like BIRD's filters falling through). When no rule
//! decides, the policy's default applies.

use std::net::IpAddr;

use ipnet::IpNet;
use tabby_bgp::attr::{Community, LargeCommunity, LocalPref, Med};
use tabby_bgp::{Asn, Family, PathAttributes};

use crate::types::{LocalKind, PeerKind};

/// Calico BGPFilter CIDR operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CidrOp {
    /// The prefix is exactly the CIDR.
    Equal,
    NotEqual,
    /// The prefix lies within the CIDR (equal included).
    In,
    NotIn,
}

/// Where the route being evaluated came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceMatch {
    /// Any locally originated route.
    Local,
    /// A locally originated route of this kind.
    LocalKind(LocalKind),
    /// Any route learned from a peer.
    Remote,
    /// Learned from a peer of this kind.
    RemoteKind(PeerKind),
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    Cidr {
        op: CidrOp,
        cidr: IpNet,
    },
    /// Within `cidr` with a length between `ge` and `le` (inclusive).
    PrefixRange {
        cidr: IpNet,
        ge: Option<u8>,
        le: Option<u8>,
    },
    PrefixLen {
        min: u8,
        max: u8,
    },
    Family(Family),
    /// The route carries this community.
    Community(Community),
    LargeCommunity(LargeCommunity),
    AsPathContains(Asn),
    /// The AS_PATH begins with these ASNs (BIRD's `bgp_path ~ [= a b * =]`,
    /// see [`crate::as_path_prefix`]).
    AsPathPrefix(Vec<Asn>),
    AsPathLen {
        min: u32,
        max: u32,
    },
    Source(SourceMatch),
    /// The kind of the peer this policy is attached to.
    PeerKind(PeerKind),
    /// The route's Calico priority is `priority`: its LOCAL_PREF is
    /// [`priority_to_local_pref`]`(priority)` (Calico renders
    /// `bgp_local_pref = 2147483647 - priority`). A route without LOCAL_PREF
    /// counts as [`RouteCtx::default_local_pref`] when learned from a peer
    /// (BIRD attaches its default on receipt) and as priority `local` when
    /// originated here (Calico's normal route priority for a kernel route
    /// without a metric).
    Priority {
        priority: u32,
        local: u32,
    },
    /// The route's Calico priority (as for [`Match::Priority`]) is below
    /// `priority`: preferred over it (Calico's `krt_metric < normal` in
    /// `calico_aggr`).
    PriorityBelow {
        priority: u32,
        local: u32,
    },
    /// The next hop lies within `cidr`.
    NextHopIn(IpNet),
    /// Negation of another match.
    Not(Box<Match>),
}

/// A modification a rule applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    AddCommunity(Community),
    RemoveCommunity(Community),
    AddLargeCommunity(LargeCommunity),
    RemoveLargeCommunity(LargeCommunity),
    /// Prepend `asn` (`None`: our own) `times` times.
    Prepend {
        asn: Option<Asn>,
        times: u8,
    },
    SetLocalPref(LocalPref),
    SetMed(Med),
    /// Calico route priority (lower is preferred), mapped to LOCAL_PREF by
    /// [`priority_to_local_pref`].
    SetPriority(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub name: String,
    pub matches: Vec<Match>,
    pub actions: Vec<Action>,
    /// `None`: apply the actions and continue with the next rule.
    pub verdict: Option<Verdict>,
}

impl Rule {
    pub fn new(name: impl Into<String>, verdict: Option<Verdict>) -> Self {
        Rule {
            name: name.into(),
            matches: Vec::new(),
            actions: Vec::new(),
            verdict,
        }
    }
    pub fn matching(mut self, m: Match) -> Self {
        self.matches.push(m);
        self
    }
    pub fn action(mut self, a: Action) -> Self {
        self.actions.push(a);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<Rule>,
    pub default: Verdict,
}

/// Largest LOCAL_PREF a priority maps to (priority 0).
pub const PRIORITY_BASE: u32 = 2_147_483_647;

/// Calico route priority (lower wins) to LOCAL_PREF (higher wins), so that
/// the decision process prefers lower priorities: `PRIORITY_BASE - priority`.
pub fn priority_to_local_pref(priority: u32) -> LocalPref {
    LocalPref::new(PRIORITY_BASE.saturating_sub(priority))
}

/// The inverse of [`priority_to_local_pref`] (for display and for routes
/// handed to fib-sync, which sets the kernel metric from it).
pub fn local_pref_to_priority(local_pref: LocalPref) -> u32 {
    PRIORITY_BASE.saturating_sub(local_pref.get().min(PRIORITY_BASE))
}

/// What a route looks like to policy.
#[derive(Debug, Clone, Copy)]
pub struct RouteCtx<'a> {
    pub prefix: &'a IpNet,
    pub next_hop: IpAddr,
    pub source: SourceMatchInput,
    /// The kind of the peer the policy is attached to.
    pub peer_kind: PeerKind,
    pub local_asn: Asn,
    /// LOCAL_PREF of a learned route that carries none (RFC 4271 §5.1.5).
    pub default_local_pref: LocalPref,
    pub attrs: &'a PathAttributes,
}

impl RouteCtx<'_> {
    /// The LOCAL_PREF a Calico priority match compares: the route's, or for
    /// one without, priority `local` when originated here and the default
    /// when learned.
    fn local_pref_as_priority(&self, local: u32) -> LocalPref {
        match (self.attrs.local_pref, self.source) {
            (Some(lp), _) => lp,
            (None, SourceMatchInput::Local(_)) => priority_to_local_pref(local),
            (None, SourceMatchInput::Remote(_)) => self.default_local_pref,
        }
    }
}

/// The route's origin as seen by [`SourceMatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceMatchInput {
    Local(LocalKind),
    Remote(PeerKind),
}

/// Which rule decided, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    Rule {
        policy: String,
        rule: String,
        index: usize,
    },
    PolicyDefault {
        policy: String,
    },
    /// No policy attached: accept.
    NoPolicy,
    /// RFC 8212: eBGP without a policy.
    Rfc8212,
}

impl std::fmt::Display for Decider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decider::Rule {
                policy,
                rule,
                index,
            } => write!(f, "{policy} rule #{index} '{rule}'"),
            Decider::PolicyDefault { policy } => write!(f, "{policy} default"),
            Decider::NoPolicy => f.write_str("no policy"),
            Decider::Rfc8212 => f.write_str("RFC 8212 (eBGP without policy)"),
        }
    }
}

/// The result of running a policy over one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult {
    pub verdict: Verdict,
    pub decider: Decider,
    /// The modified attributes, when an action changed something.
    pub modified: Option<PathAttributes>,
}

impl Match {
    /// Whether the outcome depends on the route's prefix.
    pub fn reads_prefix(&self) -> bool {
        match self {
            Match::Cidr { .. } | Match::PrefixRange { .. } | Match::PrefixLen { .. } => true,
            Match::Not(m) => m.reads_prefix(),
            _ => false,
        }
    }

    fn holds(&self, r: &RouteCtx<'_>) -> bool {
        match self {
            Match::Cidr { op, cidr } => {
                let eq = r.prefix == cidr;
                let within = contains(cidr, r.prefix);
                match op {
                    CidrOp::Equal => eq,
                    CidrOp::NotEqual => !eq,
                    CidrOp::In => within,
                    CidrOp::NotIn => !within,
                }
            }
            Match::PrefixRange { cidr, ge, le } => {
                let len = r.prefix.prefix_len();
                contains(cidr, r.prefix)
                    && ge.is_none_or(|g| len >= g)
                    && le.is_none_or(|l| len <= l)
            }
            Match::PrefixLen { min, max } => {
                let len = r.prefix.prefix_len();
                len >= *min && len <= *max
            }
            Match::Family(f) => Family::of(r.prefix) == *f,
            Match::Community(c) => r.attrs.communities.contains(c),
            Match::LargeCommunity(c) => r.attrs.large_communities.contains(c),
            Match::AsPathContains(a) => r.attrs.as_path.iter().any(|x| x == *a),
            Match::AsPathPrefix(p) => crate::as_path_prefix::starts_with(&r.attrs.as_path, p),
            Match::AsPathLen { min, max } => {
                let l = r.attrs.as_path.path_len() as u32;
                l >= *min && l <= *max
            }
            Match::Source(s) => match (s, r.source) {
                (SourceMatch::Local, SourceMatchInput::Local(_)) => true,
                (SourceMatch::LocalKind(k), SourceMatchInput::Local(x)) => *k == x,
                (SourceMatch::Remote, SourceMatchInput::Remote(_)) => true,
                (SourceMatch::RemoteKind(k), SourceMatchInput::Remote(x)) => *k == x,
                _ => false,
            },
            Match::PeerKind(k) => *k == r.peer_kind,
            Match::Priority { priority, local } => {
                r.local_pref_as_priority(*local) == priority_to_local_pref(*priority)
            }
            Match::PriorityBelow { priority, local } => {
                r.local_pref_as_priority(*local).get() > priority_to_local_pref(*priority).get()
            }
            Match::NextHopIn(cidr) => cidr.contains(&r.next_hop),
            Match::Not(m) => !m.holds(r),
        }
    }
}

/// True when `inner` lies within `outer` (same family, equal included).
fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    match (outer, inner) {
        (IpNet::V4(o), IpNet::V4(i)) => o.contains(i),
        (IpNet::V6(o), IpNet::V6(i)) => o.contains(i),
        _ => false,
    }
}

impl Action {
    fn apply(&self, a: &mut PathAttributes, local_asn: Asn) {
        match self {
            Action::AddCommunity(c) => {
                if !a.communities.contains(c) {
                    a.communities.push(*c)
                }
            }
            Action::RemoveCommunity(c) => a.communities.retain(|x| x != c),
            Action::AddLargeCommunity(c) => {
                if !a.large_communities.contains(c) {
                    a.large_communities.push(*c)
                }
            }
            Action::RemoveLargeCommunity(c) => a.large_communities.retain(|x| x != c),
            Action::Prepend { asn, times } => {
                a.as_path.prepend(asn.unwrap_or(local_asn), *times as usize)
            }
            Action::SetLocalPref(v) => a.local_pref = Some(*v),
            Action::SetMed(v) => a.med = Some(*v),
            Action::SetPriority(p) => a.local_pref = Some(priority_to_local_pref(*p)),
        }
    }
}

impl Policy {
    /// Whether any rule looks at the prefix: if none does, routes with the
    /// same attributes and source get the same outcome.
    pub fn reads_prefix(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.matches.iter().any(Match::reads_prefix))
    }

    pub fn new(name: impl Into<String>, default: Verdict) -> Self {
        Policy {
            name: name.into(),
            rules: Vec::new(),
            default,
        }
    }

    pub fn rule(mut self, r: Rule) -> Self {
        self.rules.push(r);
        self
    }

    /// Runs the policy over one route.
    pub fn evaluate(&self, r: &RouteCtx<'_>) -> PolicyResult {
        let (verdict, rule, modified) = self.run(r);
        PolicyResult {
            verdict,
            decider: self.decider(rule),
            modified,
        }
    }

    /// [`Policy::evaluate`] without naming the decider (which copies the
    /// policy's and rule's names): the verdict, the index of the deciding
    /// rule (`None`: the default) and the modified attributes. The hot
    /// paths run this once per prefix.
    pub(crate) fn run(&self, r: &RouteCtx<'_>) -> (Verdict, Option<usize>, Option<PathAttributes>) {
        let mut modified: Option<PathAttributes> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            let view = RouteCtx {
                attrs: modified.as_ref().unwrap_or(r.attrs),
                ..*r
            };
            if !rule.matches.iter().all(|m| m.holds(&view)) {
                continue;
            }
            if rule.verdict != Some(Verdict::Reject) && !rule.actions.is_empty() {
                let attrs = modified.get_or_insert_with(|| r.attrs.clone());
                for a in &rule.actions {
                    a.apply(attrs, r.local_asn);
                }
            }
            if let Some(verdict) = rule.verdict {
                let modified = if verdict == Verdict::Accept {
                    modified
                } else {
                    None
                };
                return (verdict, Some(index), modified);
            }
        }
        let modified = if self.default == Verdict::Accept {
            modified
        } else {
            None
        };
        (self.default, None, modified)
    }

    /// The verdict and whether the accepted route would be modified,
    /// without building the modified attributes: the export pass asks this
    /// per prefix. Falls back to [`Policy::run`] once a rule with actions
    /// matches (later rules see the modified route).
    pub(crate) fn peek(&self, r: &RouteCtx<'_>) -> (Verdict, bool) {
        for rule in &self.rules {
            if !rule.matches.iter().all(|m| m.holds(r)) {
                continue;
            }
            if rule.verdict != Some(Verdict::Reject) && !rule.actions.is_empty() {
                let (verdict, _, modified) = self.run(r);
                return (verdict, modified.is_some());
            }
            if let Some(verdict) = rule.verdict {
                return (verdict, false);
            }
        }
        (self.default, false)
    }

    /// Names what decided: rule `index`, or the default (`None`).
    pub fn decider(&self, index: Option<usize>) -> Decider {
        match index.and_then(|i| self.rules.get(i).map(|r| (i, r))) {
            Some((index, rule)) => Decider::Rule {
                policy: self.name.clone(),
                rule: rule.name.clone(),
                index,
            },
            None => Decider::PolicyDefault {
                policy: self.name.clone(),
            },
        }
    }

    /// Calico's default export policy for a node: export its own blocks and
    /// routes within enabled pools, never pools with `disableBGPExport`, and
    /// no more-specific inside one of our own blocks unless it is one of ours
    /// with a lower priority (a higher Calico priority number).
    pub fn calico_default_export(
        own_blocks: &[IpNet],
        enabled_pools: &[IpNet],
        no_export_pools: &[IpNet],
    ) -> Policy {
        let mut p = Policy::new("calico-default-export", Verdict::Reject);
        for pool in no_export_pools {
            p = p.rule(
                Rule::new(
                    format!("pool {pool} disableBGPExport"),
                    Some(Verdict::Reject),
                )
                .matching(Match::Cidr {
                    op: CidrOp::In,
                    cidr: *pool,
                }),
            );
        }
        for block in own_blocks {
            p = p.rule(
                Rule::new(format!("own block {block}"), Some(Verdict::Accept)).matching(
                    Match::Cidr {
                        op: CidrOp::Equal,
                        cidr: *block,
                    },
                ),
            );
            // Borrowed host routes from this node's own pool stay exported
            // only when they are ours and less preferred than the block.
            p = p.rule(
                Rule::new(
                    format!("own lower-priority host routes in {block}"),
                    Some(Verdict::Accept),
                )
                .matching(Match::Cidr {
                    op: CidrOp::In,
                    cidr: *block,
                })
                .matching(Match::Source(SourceMatch::LocalKind(LocalKind::HostRoute))),
            );
            p = p.rule(
                Rule::new(
                    format!("more-specifics in own block {block}"),
                    Some(Verdict::Reject),
                )
                .matching(Match::Cidr {
                    op: CidrOp::In,
                    cidr: *block,
                }),
            );
        }
        for pool in enabled_pools {
            p = p.rule(
                Rule::new(format!("enabled pool {pool}"), Some(Verdict::Accept)).matching(
                    Match::Cidr {
                        op: CidrOp::In,
                        cidr: *pool,
                    },
                ),
            );
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_bgp::attr::AsPath;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ctx<'a>(prefix: &'a IpNet, attrs: &'a PathAttributes) -> RouteCtx<'a> {
        RouteCtx {
            prefix,
            next_hop: "198.18.0.2".parse().unwrap(),
            source: SourceMatchInput::Remote(PeerKind::Ibgp),
            peer_kind: PeerKind::Ebgp,
            local_asn: Asn(64512),
            default_local_pref: LocalPref::new(100),
            attrs,
        }
    }

    fn holds(m: Match, prefix: &str, attrs: &PathAttributes) -> bool {
        let p = net(prefix);
        m.holds(&ctx(&p, attrs))
    }

    #[test]
    fn cidr_operators() {
        let a = PathAttributes::default();
        let c = net("100.64.0.0/16");
        assert!(holds(
            Match::Cidr {
                op: CidrOp::Equal,
                cidr: c
            },
            "100.64.0.0/16",
            &a
        ));
        assert!(!holds(
            Match::Cidr {
                op: CidrOp::Equal,
                cidr: c
            },
            "100.64.1.0/24",
            &a
        ));
        assert!(holds(
            Match::Cidr {
                op: CidrOp::NotEqual,
                cidr: c
            },
            "100.64.1.0/24",
            &a
        ));
        assert!(holds(
            Match::Cidr {
                op: CidrOp::In,
                cidr: c
            },
            "100.64.1.0/24",
            &a
        ));
        assert!(holds(
            Match::Cidr {
                op: CidrOp::In,
                cidr: c
            },
            "100.64.0.0/16",
            &a
        ));
        assert!(!holds(
            Match::Cidr {
                op: CidrOp::In,
                cidr: c
            },
            "100.65.0.0/24",
            &a
        ));
        assert!(holds(
            Match::Cidr {
                op: CidrOp::NotIn,
                cidr: c
            },
            "100.65.0.0/24",
            &a
        ));
        assert!(!holds(
            Match::Cidr {
                op: CidrOp::In,
                cidr: c
            },
            "2001:db8:1000::/48",
            &a
        ));
    }

    #[test]
    fn prefix_range_and_length() {
        let a = PathAttributes::default();
        let m = Match::PrefixRange {
            cidr: net("100.64.0.0/10"),
            ge: Some(24),
            le: Some(26),
        };
        assert!(holds(m.clone(), "100.64.1.0/26", &a));
        assert!(!holds(m.clone(), "100.64.1.0/27", &a));
        assert!(!holds(m, "100.64.0.0/16", &a));
        assert!(holds(
            Match::PrefixLen { min: 32, max: 32 },
            "100.64.0.1/32",
            &a
        ));
        assert!(!holds(
            Match::PrefixLen { min: 32, max: 32 },
            "100.64.0.0/31",
            &a
        ));
        assert!(holds(
            Match::Family(Family::IPV6_UNICAST),
            "2001:db8:1000::/64",
            &a
        ));
    }

    #[test]
    fn attribute_matches() {
        let a = PathAttributes {
            communities: vec![Community::new(64512, 100)],
            large_communities: vec![LargeCommunity {
                global_admin: 64512,
                local_data_1: 1,
                local_data_2: 2,
            }],
            as_path: AsPath::from_sequence([Asn(65001), Asn(65002)]),
            ..Default::default()
        };
        assert!(holds(
            Match::Community(Community::new(64512, 100)),
            "100.64.0.0/24",
            &a
        ));
        assert!(!holds(
            Match::Community(Community::new(64512, 101)),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::LargeCommunity(a.large_communities[0]),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::AsPathContains(Asn(65002)),
            "100.64.0.0/24",
            &a
        ));
        assert!(!holds(
            Match::AsPathContains(Asn(65003)),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::AsPathLen { min: 2, max: 2 },
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::Source(SourceMatch::Remote),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::Source(SourceMatch::RemoteKind(PeerKind::Ibgp)),
            "100.64.0.0/24",
            &a
        ));
        assert!(!holds(
            Match::Source(SourceMatch::Local),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(Match::PeerKind(PeerKind::Ebgp), "100.64.0.0/24", &a));
        assert!(holds(
            Match::NextHopIn(net("198.18.0.0/24")),
            "100.64.0.0/24",
            &a
        ));
        assert!(holds(
            Match::Not(Box::new(Match::NextHopIn(net("198.18.1.0/24")))),
            "100.64.0.0/24",
            &a
        ));
    }

    #[test]
    fn first_verdict_wins_and_actions_accumulate() {
        let p = Policy::new("imp", Verdict::Reject)
            .rule(Rule::new("tag", None).action(Action::AddCommunity(Community::new(1, 1))))
            .rule(
                Rule::new("drop-27", Some(Verdict::Reject))
                    .matching(Match::PrefixLen { min: 27, max: 32 }),
            )
            .rule(
                Rule::new("pool", Some(Verdict::Accept))
                    .matching(Match::Cidr {
                        op: CidrOp::In,
                        cidr: net("100.64.0.0/10"),
                    })
                    .action(Action::SetLocalPref(LocalPref::new(300)))
                    .action(Action::SetMed(Med::new(7)))
                    .action(Action::Prepend {
                        asn: None,
                        times: 2,
                    }),
            );
        let a = PathAttributes::default();
        let p24 = net("100.64.1.0/24");
        let r = p.evaluate(&ctx(&p24, &a));
        assert_eq!(r.verdict, Verdict::Accept);
        assert_eq!(
            r.decider,
            Decider::Rule {
                policy: "imp".into(),
                rule: "pool".into(),
                index: 2
            }
        );
        let m = r.modified.unwrap();
        assert_eq!(m.local_pref, Some(LocalPref::new(300)));
        assert_eq!(m.med, Some(Med::new(7)));
        assert_eq!(m.communities, vec![Community::new(1, 1)]);
        assert_eq!(m.as_path, AsPath::from_sequence([Asn(64512), Asn(64512)]));

        let p27 = net("100.64.1.0/27");
        let r = p.evaluate(&ctx(&p27, &a));
        assert_eq!(r.verdict, Verdict::Reject);
        assert_eq!(r.modified, None);

        let other = net("198.19.0.0/24");
        let r = p.evaluate(&ctx(&other, &a));
        assert_eq!(r.verdict, Verdict::Reject);
        assert_eq!(
            r.decider,
            Decider::PolicyDefault {
                policy: "imp".into()
            }
        );
    }

    /// `peek` agrees with `run` on verdict and on whether the route is
    /// modified, whatever rule decides.
    #[test]
    fn peek_agrees_with_run() {
        let tagging = Policy::new("imp", Verdict::Reject)
            .rule(
                Rule::new("tag-26", None)
                    .matching(Match::PrefixLen { min: 26, max: 26 })
                    .action(Action::AddCommunity(Community::new(1, 1))),
            )
            .rule(
                Rule::new("drop-27", Some(Verdict::Reject))
                    .matching(Match::PrefixLen { min: 27, max: 32 }),
            )
            .rule(
                Rule::new("pool", Some(Verdict::Accept)).matching(Match::Cidr {
                    op: CidrOp::In,
                    cidr: net("100.64.0.0/10"),
                }),
            );
        let calico = Policy::calico_default_export(
            &[net("100.64.3.0/26")],
            &[net("100.64.0.0/16")],
            &[net("100.65.0.0/16")],
        );
        let a = PathAttributes::default();
        for p in [&tagging, &calico] {
            for prefix in [
                "100.64.1.0/26",
                "100.64.1.0/24",
                "100.64.1.0/28",
                "100.64.3.5/32",
                "100.65.0.0/26",
                "198.19.0.0/24",
            ] {
                let pf = net(prefix);
                for source in [
                    SourceMatchInput::Remote(PeerKind::Ibgp),
                    SourceMatchInput::Local(LocalKind::PodBlock),
                ] {
                    let mut c = ctx(&pf, &a);
                    c.source = source;
                    let (verdict, _, modified) = p.run(&c);
                    assert_eq!(
                        p.peek(&c),
                        (verdict, modified.is_some()),
                        "{} {prefix}",
                        p.name
                    );
                }
            }
        }
    }

    #[test]
    fn remove_community_and_priority() {
        let p = Policy::new("x", Verdict::Accept).rule(
            Rule::new("r", None)
                .action(Action::RemoveCommunity(Community::NO_EXPORT))
                .action(Action::RemoveLargeCommunity(LargeCommunity {
                    global_admin: 1,
                    local_data_1: 2,
                    local_data_2: 3,
                }))
                .action(Action::AddLargeCommunity(LargeCommunity {
                    global_admin: 4,
                    local_data_1: 5,
                    local_data_2: 6,
                }))
                .action(Action::SetPriority(512)),
        );
        let a = PathAttributes {
            communities: vec![Community::NO_EXPORT],
            large_communities: vec![LargeCommunity {
                global_admin: 1,
                local_data_1: 2,
                local_data_2: 3,
            }],
            ..Default::default()
        };
        let pfx = net("100.64.0.0/24");
        let m = p.evaluate(&ctx(&pfx, &a)).modified.unwrap();
        assert!(m.communities.is_empty());
        assert_eq!(
            m.large_communities,
            vec![LargeCommunity {
                global_admin: 4,
                local_data_1: 5,
                local_data_2: 6
            }]
        );
        assert_eq!(m.local_pref, Some(priority_to_local_pref(512)));
        assert_eq!(local_pref_to_priority(m.local_pref.unwrap()), 512);
        assert!(priority_to_local_pref(10).prefers(priority_to_local_pref(20)));
    }

    #[test]
    fn calico_default_export_semantics() {
        let block = net("100.64.3.0/26");
        let p = Policy::calico_default_export(
            &[block],
            &[net("100.64.0.0/16")],
            &[net("100.65.0.0/16")],
        );
        let a = PathAttributes::default();
        let run = |prefix: &str, source: SourceMatchInput| {
            let pf = net(prefix);
            let mut c = ctx(&pf, &a);
            c.source = source;
            p.evaluate(&c).verdict
        };
        let local = SourceMatchInput::Local(LocalKind::PodBlock);
        assert_eq!(run("100.64.3.0/26", local), Verdict::Accept);
        assert_eq!(
            run("100.64.3.5/32", SourceMatchInput::Remote(PeerKind::Ibgp)),
            Verdict::Reject
        );
        assert_eq!(
            run(
                "100.64.3.5/32",
                SourceMatchInput::Local(LocalKind::HostRoute)
            ),
            Verdict::Accept
        );
        assert_eq!(
            run("100.64.9.0/26", SourceMatchInput::Remote(PeerKind::Ibgp)),
            Verdict::Accept
        );
        assert_eq!(run("100.65.1.0/26", local), Verdict::Reject);
        assert_eq!(run("198.19.0.0/24", local), Verdict::Reject);
    }
}
