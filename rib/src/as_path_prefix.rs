//! Whether an AS_PATH begins with a given run of ASNs: BIRD's path mask
//! `bgp_path ~ [= a b * =]`, which Calico renders for a `BGPFilter` rule's
//! `asPathPrefix`.
//!
//! As in BIRD's mask matching, each ASN of an AS_SEQUENCE is one position of
//! the path and a whole AS_SET is one position, matched by any of its
//! members; confederation segments count like their plain kinds.

use tabby_bgp::Asn;
use tabby_bgp::attr::{AsPath, SegmentType};

/// True when `path` starts with `prefix` (always, for an empty prefix).
pub fn starts_with(path: &AsPath, prefix: &[Asn]) -> bool {
    let mut want = prefix.iter();
    for seg in &path.segments {
        match seg.kind {
            SegmentType::Sequence | SegmentType::ConfedSequence => {
                for asn in &seg.asns {
                    match want.next() {
                        None => return true,
                        Some(w) if w == asn => {}
                        Some(_) => return false,
                    }
                }
            }
            SegmentType::Set | SegmentType::ConfedSet => match want.next() {
                None => return true,
                Some(w) if seg.asns.contains(w) => {}
                Some(_) => return false,
            },
        }
    }
    want.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tabby_bgp::attr::Segment;

    fn asns(v: &[u32]) -> Vec<Asn> {
        v.iter().copied().map(Asn).collect()
    }

    fn seq(v: &[u32]) -> AsPath {
        AsPath::from_sequence(asns(v))
    }

    #[test]
    fn leading_asns_of_a_sequence() {
        let p = seq(&[64512, 64513, 64514]);
        assert!(starts_with(&p, &asns(&[64512])));
        assert!(starts_with(&p, &asns(&[64512, 64513])));
        assert!(starts_with(&p, &asns(&[64512, 64513, 64514])));
        assert!(starts_with(&p, &[]));
        // Not anywhere else in the path, and not longer than the path.
        assert!(!starts_with(&p, &asns(&[64513])));
        assert!(!starts_with(&p, &asns(&[64512, 64514])));
        assert!(!starts_with(&p, &asns(&[64512, 64513, 64514, 64515])));
        assert!(!starts_with(&AsPath::default(), &asns(&[64512])));
        assert!(starts_with(&AsPath::default(), &[]));
    }

    #[test]
    fn prefix_spans_segments_and_a_set_is_one_position() {
        let p = AsPath {
            segments: vec![
                Segment {
                    kind: SegmentType::Sequence,
                    asns: asns(&[64512]),
                },
                Segment {
                    kind: SegmentType::Set,
                    asns: asns(&[64600, 64601]),
                },
                Segment {
                    kind: SegmentType::Sequence,
                    asns: asns(&[64700]),
                },
            ],
        };
        assert!(starts_with(&p, &asns(&[64512, 64601])));
        assert!(starts_with(&p, &asns(&[64512, 64600, 64700])));
        // Both set members would be two positions: the set is only one.
        assert!(!starts_with(&p, &asns(&[64512, 64600, 64601])));
        assert!(!starts_with(&p, &asns(&[64512, 64602])));
    }
}
