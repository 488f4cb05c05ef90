//! Scenario 7 (issue 7): malformed input from a raw BGP peer, rows of
//! `CONFORMANCE.md` ("Wire input"). For each row a fresh session reaches
//! Established, announces a canary prefix, then sends the crafted message.
//! Rows the RFCs answer with a NOTIFICATION must get exactly that code and
//! subcode; rows RFC 7606 answers with treat-as-withdraw or attribute
//! discard must leave the session up and the routes as the RFC says. tabbyd
//! must never die.

mod fixtures;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fixtures::*;
use interop_tests::raw::{self, NOTIFICATION, OPEN, OPTIONAL, TRANSITIVE, UPDATE};
use interop_tests::*;
use ipnet::Ipv4Net;

const RAW_AS: u32 = 65099;

fn v4net(s: &str) -> Ipv4Net {
    s.parse().expect("test prefix")
}

/// What the RFC says must happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// NOTIFICATION code/subcode, then the session closes.
    Notify(u8, u8),
    /// Session stays up; the row's prefix ends up absent (treat-as-withdraw,
    /// or a route never used).
    UpWithout,
    /// Session stays up; the row's prefix is present (attribute discarded).
    UpWith,
}

struct Row {
    no: &'static str,
    what: &'static str,
    /// Whole message bytes to send (already framed).
    bytes: Vec<u8>,
    expect: Expect,
}

fn upd(attrs: &[u8], nlri: &[Ipv4Net]) -> Vec<u8> {
    raw::frame(UPDATE, &raw::update_body(&[], attrs, nlri))
}

/// ORIGIN, AS_PATH [RAW_AS], NEXT_HOP `nh`, with one attribute replaced or added.
fn attrs_with(nh: Ipv4Addr, replace: Option<u8>, extra: &[u8]) -> Vec<u8> {
    let mut path = vec![2, 1];
    path.extend_from_slice(&RAW_AS.to_be_bytes());
    let mut v = Vec::new();
    if replace != Some(1) {
        v.extend(raw::attr(TRANSITIVE, 1, &[0]));
    }
    if replace != Some(2) {
        v.extend(raw::attr(TRANSITIVE, 2, &path));
    }
    if replace != Some(3) {
        v.extend(raw::attr(TRANSITIVE, 3, &nh.octets()));
    }
    v.extend_from_slice(extra);
    v
}

fn rows(nh: Ipv4Addr, p: Ipv4Net) -> Vec<Row> {
    let good = raw::basic_attrs(&[RAW_AS], nh);
    let mut marker = raw::frame(raw::KEEPALIVE, &[]);
    marker[3] = 0;
    let mut short = raw::frame(raw::KEEPALIVE, &[]);
    short[16..18].copy_from_slice(&18u16.to_be_bytes());
    let mut wd_overrun = raw::update_body(&[], &good, &[p]);
    wd_overrun[0..2].copy_from_slice(&500u16.to_be_bytes());
    let mut bad_len = raw::update_body(&[], &good, &[]);
    bad_len.extend_from_slice(&[33, 198, 19, 7, 0, 0]);
    let mut path_other = vec![2, 1];
    path_other.extend_from_slice(&65123u32.to_be_bytes());
    vec![
        Row {
            no: "1",
            what: "header marker not all ones",
            bytes: marker,
            expect: Expect::Notify(1, 1),
        },
        Row {
            no: "2",
            what: "message length 18",
            bytes: short,
            expect: Expect::Notify(1, 2),
        },
        Row {
            no: "3",
            what: "unknown message type 9",
            bytes: raw::frame(9, &[]),
            expect: Expect::Notify(1, 3),
        },
        Row {
            no: "4",
            what: "KEEPALIVE of 20 octets",
            bytes: raw::frame(raw::KEEPALIVE, &[0]),
            expect: Expect::Notify(1, 2),
        },
        Row {
            no: "10",
            what: "withdrawn length beyond the message",
            bytes: raw::frame(UPDATE, &wd_overrun),
            expect: Expect::Notify(3, 1),
        },
        Row {
            no: "12",
            what: "IPv4 prefix length 33",
            bytes: raw::frame(UPDATE, &bad_len),
            expect: Expect::Notify(3, 10),
        },
        Row {
            no: "13",
            what: "ORIGIN value 3",
            bytes: upd(
                &attrs_with(nh, Some(1), &raw::attr(TRANSITIVE, 1, &[3])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "13b",
            what: "ORIGIN length 2",
            bytes: upd(
                &attrs_with(nh, Some(1), &raw::attr(TRANSITIVE, 1, &[0, 0])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "14",
            what: "eBGP AS_PATH not starting with the peer AS",
            bytes: upd(
                &attrs_with(nh, Some(2), &raw::attr(TRANSITIVE, 2, &path_other)),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "14b",
            what: "AS_PATH segment overrun",
            bytes: upd(
                &attrs_with(
                    nh,
                    Some(2),
                    &raw::attr(TRANSITIVE, 2, &[2, 5, 0, 0, 0xfe, 0x4b]),
                ),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "16",
            what: "NEXT_HOP of 5 octets",
            bytes: upd(
                &attrs_with(nh, Some(3), &raw::attr(TRANSITIVE, 3, &[198, 18, 1, 2, 0])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "17",
            what: "NEXT_HOP 0.0.0.0",
            bytes: upd(
                &attrs_with(nh, Some(3), &raw::attr(TRANSITIVE, 3, &[0, 0, 0, 0])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "18",
            what: "MED of 3 octets",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(OPTIONAL, 4, &[0, 0, 1])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "18b",
            what: "LOCAL_PREF from an eBGP peer",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(TRANSITIVE, 5, &[0, 0, 0, 200])),
                &[p],
            ),
            expect: Expect::UpWith,
        },
        Row {
            no: "19",
            what: "ATOMIC_AGGREGATE of 1 octet",
            bytes: upd(&attrs_with(nh, None, &raw::attr(TRANSITIVE, 6, &[1])), &[p]),
            expect: Expect::UpWith,
        },
        Row {
            no: "20",
            what: "COMMUNITIES of 3 octets",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(OPTIONAL | TRANSITIVE, 8, &[0, 1, 2])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "21",
            what: "ORIGINATOR_ID from an eBGP peer",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(OPTIONAL, 9, &[198, 18, 1, 9])),
                &[p],
            ),
            expect: Expect::UpWith,
        },
        Row {
            no: "22",
            what: "ORIGIN flagged optional",
            bytes: upd(
                &attrs_with(nh, Some(1), &raw::attr(OPTIONAL | TRANSITIVE, 1, &[0])),
                &[p],
            ),
            expect: Expect::UpWithout,
        },
        Row {
            no: "24",
            what: "unknown optional transitive attribute",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(OPTIONAL | TRANSITIVE, 199, &[1, 2, 3])),
                &[p],
            ),
            expect: Expect::UpWith,
        },
        Row {
            no: "25",
            what: "unknown well-known attribute",
            bytes: upd(
                &attrs_with(nh, None, &raw::attr(TRANSITIVE, 99, &[1])),
                &[p],
            ),
            expect: Expect::Notify(3, 2),
        },
        Row {
            no: "26",
            what: "NLRI with no attributes",
            bytes: upd(&[], &[p]),
            expect: Expect::UpWithout,
        },
        Row {
            no: "30",
            what: "OPEN in Established",
            bytes: raw::frame(
                OPEN,
                &raw::open_body(
                    RAW_AS,
                    90,
                    Ipv4Addr::new(198, 18, 1, 2),
                    &[raw::cap_as4(RAW_AS)],
                ),
            ),
            expect: Expect::Notify(5, 3),
        },
    ]
}

/// Connects and reaches Established, retrying while tabbyd is in its
/// idle-hold time after the previous row's reset.
fn session(lab: &Lab, ns: &Ns, local: Ipv4Addr, tabby: Ipv4Addr) -> Result<RawBgp> {
    lab.wait_for("a raw session Established with tabbyd", T, || {
        let mut r = RawBgp::connect(
            lab,
            ns,
            Some(IpAddr::V4(local)),
            SocketAddr::new(IpAddr::V4(tabby), 179),
            Duration::from_secs(2),
        )?;
        r.establish(RAW_AS, local, 90)?;
        Ok(r)
    })
}

/// True when tabbyd's Loc-RIB holds `p` from peer `from`.
fn has_route(t: &Tabbyd, p: Ipv4Net, from: Ipv4Addr) -> Result<bool> {
    let from = from.to_string();
    Ok(rib_paths(t, p.into())?
        .iter()
        .any(|x| x["source"].as_str() == Some(from.as_str())))
}

fn wait_route(lab: &Lab, t: &Tabbyd, p: Ipv4Net, from: Ipv4Addr, present: bool) -> Result<()> {
    lab.wait_for(&format!("{p} present = {present} at tabbyd"), T, || {
        ensure!(has_route(t, p, from)? == present, "{p} not yet {present}");
        Ok(())
    })
}

#[test]
fn malformed_rows_against_tabbyd() -> Result<()> {
    need(&[]);
    let started = Instant::now();
    let mut lab = Lab::new("scen7")?;
    let tn = lab.ns("tabby")?;
    let rn = lab.ns("raw")?;
    let seg = lab.link(&tn, &rn)?;
    let (ta, ra) = (seg.v4(&tn)?, seg.v4(&rn)?);
    // One peer address per row: a reset peer is held off by tabbyd's
    // exponential idle-hold time (RFC 4271 §8.1.1 DampPeerOscillations), so a
    // fresh peer per row keeps the test short.
    let n_rows = rows(ra, v4net("198.19.0.0/24")).len();
    let ifname = seg.ifname(&rn)?.to_string();
    let row_addr = |i: usize| Ipv4Addr::new(198, 18, 1, 10 + i as u8);
    let mut c = Cluster::new().node(NodeSpec::v4("node-1", ta));
    for i in 0..n_rows {
        lab.add_addr(&rn, &ifname, &format!("{}/24", row_addr(i)))?;
        c = c.peer(&format!("raw-{i}"), IpAddr::V4(row_addr(i)), RAW_AS, None);
    }
    let file = lab.write_file("cluster.yaml", &c.render())?;
    let mut o = TabbydOpts::new("node-1", Datastore::File(file));
    o.deferral_time = Some(5);
    let t = lab.start_tabbyd(&tn, "tabby", &o)?;

    let mut failures = vec![];
    for i in 0..n_rows {
        let me = row_addr(i);
        let canary = v4net(&format!("198.19.{}.0/24", 100 + i));
        let probe = v4net(&format!("198.19.{}.0/24", 10 + i));
        let row = rows(me, probe).swap_remove(i);
        let mut s = session(&lab, &rn, me, ta)?;
        // The canary and the row's prefix, both valid first.
        s.send(&upd(&raw::basic_attrs(&[RAW_AS], me), &[canary, probe]))?;
        wait_route(&lab, &t, canary, me, true)?;
        wait_route(&lab, &t, probe, me, true)?;
        s.send(&row.bytes)?;
        let outcome: Result<()> = (|| match row.expect {
            Expect::Notify(code, sub) => {
                let (c, sc, _) = s.expect_notification(Duration::from_secs(10))?;
                ensure!((c, sc) == (code, sub), "got NOTIFICATION {c}/{sc}");
                Ok(())
            }
            Expect::UpWithout | Expect::UpWith => {
                let want = row.expect == Expect::UpWith;
                wait_route(&lab, &t, probe, me, want)?;
                // Still up: a KEEPALIVE crosses and nothing comes back but KEEPALIVEs.
                s.keepalive()?;
                let until = Instant::now() + Duration::from_secs(1);
                while Instant::now() < until {
                    if let Some(m) = s.recv(Duration::from_millis(200))?
                        && m.kind == NOTIFICATION
                    {
                        bail!("session reset: NOTIFICATION {:?}", m.notification());
                    }
                }
                ensure!(has_route(&t, canary, me)?, "canary lost");
                established(&t, &[IpAddr::V4(me)])?;
                Ok(())
            }
        })();
        if let Err(e) = outcome {
            failures.push(format!(
                "row {} ({}): want {:?}: {e:#}",
                row.no, row.what, row.expect
            ));
        }
        lab.check_alive("tabby")
            .with_context(|| format!("tabbyd died on row {} ({})", row.no, row.what))?;
        drop(s);
    }
    eprintln!("scenario 7: {:?}", started.elapsed());
    if !failures.is_empty() {
        return Err(anyhow!(
            "{} rows failed:\n{}",
            failures.len(),
            failures.join("\n")
        ));
    }
    Ok(())
}
