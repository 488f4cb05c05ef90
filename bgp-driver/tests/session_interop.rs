//! This crate's driver against real BGP speakers in network namespaces:
//! BIRD 2, GoBGP and FRR exchange IPv4 and IPv6 routes with us both ways,
//! BIRD 1.6 (Calico's line) IPv4; TCP-MD5 and GTSM against BIRD come up
//! only when both sides agree.
//!
//! Needs root and the Debian packages bird2, gobgpd and frr, and BIRD 1.6
//! unpacked by scripts/install-deps.sh. Each test builds two
//! namespaces joined by a veth (tabby 198.18.0.1 / 2001:db8::1, peer
//! 198.18.0.2 / 2001:db8::2) and removes them, and the daemons it started,
//! on every exit path.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tabby_bgp::attr::{AsPath, NextHop, Origin, PathAttributes};
use tabby_bgp::fsm::{PeerAs, SessionConfig, State};
use tabby_bgp::message::{MpReach, Update};
use tabby_bgp::types::{Asn, Family, Nlri};
use tabby_bgp_driver::{ListenConfig, PeerCommand, PeerConfig, PeerEvent, Speaker};

const TABBY_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const TABBY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// What we announce.
const OUR_V4: [&str; 3] = ["100.64.1.0/24", "100.64.2.0/24", "100.64.3.0/24"];
const OUR_V6: [&str; 2] = ["2001:db8:1001::/48", "2001:db8:1002::/48"];
/// What the peer announces (its static routes).
const PEER_V4_ROUTES: [&str; 2] = ["198.19.7.0/24", "198.19.8.0/24"];
const PEER_V6_ROUTES: [&str; 1] = ["2001:db8:1700::/48"];

// ----- the lab -----

static SEQ: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) -> String {
    run(cmd, args).unwrap_or_else(|e| panic!("lab setup failed: {e}"))
}

fn preflight(binaries: &[&str]) {
    let uid = run("id", &["-u"]).unwrap_or_default();
    assert_eq!(
        uid.trim(),
        "0",
        "session_interop needs root (network namespaces, TCP-MD5)"
    );
    for b in binaries {
        assert!(
            run("sh", &["-c", &format!("command -v {b}")]).is_ok(),
            "session_interop needs `{b}`: run scripts/install-deps.sh (bird2, gobgpd, frr, BIRD 1.6 unpacked)"
        );
    }
}

/// Two namespaces, a veth between them, a temporary directory, and the
/// daemons started in them; all removed on drop.
struct Lab {
    tabby_ns: String,
    peer_ns: String,
    dir: PathBuf,
    children: Vec<Child>,
    /// More lines for BIRD's `protocol bgp`.
    bird_extra: String,
}

impl Lab {
    fn new() -> Lab {
        let tag = format!(
            "{}{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let lab = Lab {
            tabby_ns: format!("tbgp{tag}t"),
            peer_ns: format!("tbgp{tag}p"),
            dir: std::env::temp_dir().join(format!("tabby-interop-{tag}")),
            children: Vec::new(),
            bird_extra: String::new(),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).expect("temp dir");
        let (vt, vp) = (format!("vt{tag}"), format!("vp{tag}"));
        must("ip", &["netns", "add", &lab.tabby_ns]);
        must("ip", &["netns", "add", &lab.peer_ns]);
        must(
            "ip",
            &[
                "link",
                "add",
                "name",
                &vt,
                "netns",
                &lab.tabby_ns,
                "type",
                "veth",
                "peer",
                "name",
                &vp,
                "netns",
                &lab.peer_ns,
            ],
        );
        for (ns, dev, v4, v6) in [
            (&lab.tabby_ns, &vt, TABBY_V4, TABBY_V6),
            (&lab.peer_ns, &vp, PEER_V4, PEER_V6),
        ] {
            must("ip", &["-n", ns, "link", "set", "lo", "up"]);
            must(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev],
            );
            must(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    dev,
                    "nodad",
                ],
            );
            must("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write lab file");
        p
    }

    /// Starts `cmd` inside the peer namespace (`ip netns exec` execs it, so
    /// the child's pid is the daemon's).
    fn spawn_in_peer(&mut self, cmd: &str, args: &[&str], log: &str) {
        let log = File::create(self.dir.join(log)).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.peer_ns, cmd])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd}: {e}"));
        self.children.push(child);
    }

    fn start_bird(&mut self, password: Option<&str>, ttl_security: bool) -> PathBuf {
        self.start_bird_over(password, ttl_security, false)
    }

    /// BIRD 2 in the peer namespace; `v6` runs the session over IPv6.
    fn start_bird_over(&mut self, password: Option<&str>, ttl_security: bool, v6: bool) -> PathBuf {
        let (local, neighbor): (IpAddr, IpAddr) = if v6 {
            (PEER_V6.into(), TABBY_V6.into())
        } else {
            (PEER_V4.into(), TABBY_V4.into())
        };
        let mut pw = password.map_or(String::new(), |p| format!("  password \"{p}\";\n"));
        if ttl_security {
            pw.push_str("  ttl security on;\n");
        }
        pw.push_str(&self.bird_extra);
        let conf = format!(
            r#"router id {PEER_V4};
protocol device {{ }}
protocol static s4 {{ ipv4; {v4} }}
protocol static s6 {{ ipv6; {v6} }}
protocol bgp tabby {{
  local {local} as 65002;
  neighbor {neighbor} as 65001;
  hold time 9;
  connect retry time 1;
  error wait time 1, 2;
{pw}  ipv4 {{ import all; export all; next hop address {PEER_V4}; }};
  ipv6 {{ import all; export all; next hop address {PEER_V6}; }};
}}
"#,
            v4 = bird_statics(&PEER_V4_ROUTES),
            v6 = bird_statics(&PEER_V6_ROUTES),
        );
        self.spawn_bird("bird", "bird", &conf)
    }

    /// Runs BIRD (`bird`, 2 or 1.6) in the peer namespace with `conf`; its
    /// files and log are named after `name`. Returns the control socket.
    fn spawn_bird(&mut self, bird: &str, name: &str, conf: &str) -> PathBuf {
        let conf = self.file(&format!("{name}.conf"), conf);
        let sock = self.dir.join(format!("{name}.ctl"));
        let pid = self.dir.join(format!("{name}.pid"));
        let args = [
            "-f".to_string(),
            "-c".into(),
            conf.display().to_string(),
            "-s".into(),
            sock.display().to_string(),
            "-P".into(),
            pid.display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.spawn_in_peer(bird, &args, &format!("{name}.log"));
        sock
    }

    fn birdc(&self, sock: &Path, args: &[&str]) -> String {
        birdc_at("birdc", sock, args)
    }

    fn start_gobgp(&mut self) {
        let conf = format!(
            r#"[global.config]
  as = 65002
  router-id = "{PEER_V4}"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{TABBY_V4}"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.transport.config]
    local-address = "{PEER_V4}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#
        );
        let conf = self.file("gobgpd.toml", &conf);
        self.spawn_in_peer(
            "gobgpd",
            &[
                "-f",
                &conf.display().to_string(),
                "-t",
                "toml",
                "--api-hosts",
                "127.0.0.1:50051",
                "--pprof-disable",
                "--log-plain",
            ],
            "gobgpd.log",
        );
        wait_until("gobgpd API", Duration::from_secs(15), || {
            self.gobgp(&["global"]).is_ok()
        });
        for r in PEER_V4_ROUTES {
            self.gobgp(&[
                "global",
                "rib",
                "add",
                r,
                "nexthop",
                &PEER_V4.to_string(),
                "-a",
                "ipv4",
            ])
            .expect("gobgp add");
        }
        for r in PEER_V6_ROUTES {
            self.gobgp(&[
                "global",
                "rib",
                "add",
                r,
                "nexthop",
                &PEER_V6.to_string(),
                "-a",
                "ipv6",
            ])
            .expect("gobgp add");
        }
    }

    /// FRR's bgpd alone (no zebra), originating the peer routes with
    /// `network`; returns the vty socket directory for vtysh.
    fn start_frr(&mut self) -> PathBuf {
        let nets = |v6: bool| {
            PEER_V4_ROUTES
                .iter()
                .chain(PEER_V6_ROUTES.iter())
                .filter(|r| r.contains(':') == v6)
                .map(|r| format!("  network {r}\n"))
                .collect::<String>()
        };
        let conf = format!(
            "frr defaults traditional\nhostname peer\nlog stdout informational\n!\n\
router bgp 65002\n bgp router-id {PEER_V4}\n no bgp ebgp-requires-policy\n\
 no bgp network import-check\n no bgp default ipv4-unicast\n\
 neighbor {TABBY_V4} remote-as 65001\n neighbor {TABBY_V4} timers connect 1\n\
 neighbor {TABBY_V4} timers 3 9\n !\n address-family ipv4 unicast\n{}\
  neighbor {TABBY_V4} activate\n exit-address-family\n !\n address-family ipv6 unicast\n{}\
  neighbor {TABBY_V4} activate\n exit-address-family\n!\n",
            nets(false),
            nets(true)
        );
        let conf = self.file("frr.conf", &conf);
        let vty = self.dir.join("vty");
        std::fs::create_dir_all(&vty).expect("vty dir");
        let pid = self.dir.join("frr.pid");
        self.spawn_in_peer(
            "/usr/lib/frr/bgpd",
            &[
                "-Z",
                "-n",
                "-S",
                "-P",
                "0",
                "-f",
                &conf.display().to_string(),
                "-i",
                &pid.display().to_string(),
                "--vty_socket",
                &vty.display().to_string(),
            ],
            "frr.log",
        );
        vty
    }

    /// BIRD 1.6 (IPv4 daemon), unpacked beside bird2 by install-deps.
    fn start_bird1(&mut self) -> PathBuf {
        let conf = format!(
            r#"router id {PEER_V4};
protocol device {{ }}
protocol static {{ {v4} }}
protocol bgp tabby {{
  local {PEER_V4} as 65002;
  neighbor {TABBY_V4} as 65001;
  hold time 9;
  connect retry time 1;
  error wait time 1, 2;
  import all;
  export all;
}}
"#,
            v4 = bird_statics(&PEER_V4_ROUTES),
        );
        self.spawn_bird(
            &bird1_dir().join("bird").display().to_string(),
            "bird1",
            &conf,
        )
    }

    fn gobgp(&self, args: &[&str]) -> Result<String, String> {
        gobgp_in(&self.peer_ns, args)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = run("ip", &["netns", "del", &self.tabby_ns]);
        let _ = run("ip", &["netns", "del", &self.peer_ns]);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("lab files kept in {}", self.dir.display());
        }
    }
}

/// `birdc` (BIRD 2's, or BIRD 1.6's at its path) on control socket `sock`;
/// empty when BIRD does not answer.
fn birdc_at(birdc: &str, sock: &Path, args: &[&str]) -> String {
    let s = sock.display().to_string();
    let mut full = vec!["-s", &s];
    full.extend_from_slice(args);
    run(birdc, &full).unwrap_or_default()
}

/// The `gobgp` CLI against the gobgpd in namespace `peer_ns`.
fn gobgp_in(peer_ns: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec![
        "netns",
        "exec",
        peer_ns,
        "gobgp",
        "-u",
        "127.0.0.1",
        "-p",
        "50051",
    ];
    full.extend_from_slice(args);
    run("ip", &full)
}

/// BIRD `static` protocol lines for the peer's routes.
fn bird_statics(routes: &[&str]) -> String {
    routes
        .iter()
        .map(|r| format!("route {r} blackhole;"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn bird1_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/lab/bird1/usr/sbin")
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

// ----- our side -----

/// What our side saw.
#[derive(Debug, Default)]
struct Outcome {
    established: bool,
    received: Vec<IpNet>,
    states: Vec<State>,
}

fn our_updates() -> Vec<Update> {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: AsPath::from_sequence([Asn(65001)]),
        ..PathAttributes::default()
    };
    let v4 = Update {
        attributes: PathAttributes {
            next_hop: Some(TABBY_V4),
            ..attrs.clone()
        },
        nlri: OUR_V4
            .iter()
            .map(|p| Nlri::new(p.parse().expect("prefix")))
            .collect(),
        ..Update::default()
    };
    let v6 = Update {
        attributes: attrs,
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: NextHop::new(IpAddr::V6(TABBY_V6)),
            nlri: OUR_V6
                .iter()
                .map(|p| Nlri::new(p.parse().expect("prefix")))
                .collect(),
        }),
        ..Update::default()
    };
    vec![
        v4,
        v6,
        Update::end_of_rib(Family::IPV4_UNICAST),
        Update::end_of_rib(Family::IPV6_UNICAST),
    ]
}

/// Runs our speaker inside `ns` on its own thread (setns affects only the
/// calling thread) until `done` says so or `limit` passes.
/// How our side of the session is set up.
#[derive(Debug, Clone, Default)]
struct Ours {
    password: Option<String>,
    /// Run the session over IPv6 transport.
    v6: bool,
    /// End with an administrative stop instead of a bare TCP close.
    stop_at_end: bool,
    passive: bool,
    gtsm: bool,
}

fn run_tabby(ns: &str, ours: Ours, limit: Duration, done: fn(&Outcome) -> bool) -> Outcome {
    let ns_path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = File::open(&ns_path).expect("namespace file");
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let speaker = Speaker::bind(&ListenConfig::any(179)).expect("listen");
            let mut session = SessionConfig::new(Asn(65001), PeerAs::Exact(Asn(65002)), TABBY_V4);
            session.hold_time = 9;
            session.connect_retry = Duration::from_secs(1);
            session.passive = ours.passive;
            let (remote, local): (IpAddr, IpAddr) = if ours.v6 {
                (PEER_V6.into(), TABBY_V6.into())
            } else {
                (PEER_V4.into(), TABBY_V4.into())
            };
            let mut peer = PeerConfig::new(remote, session);
            peer.local_addr = Some(local);
            peer.md5_password = ours.password;
            peer.gtsm_hops = ours.gtsm.then_some(1);
            peer.connect_timeout = Duration::from_secs(2);
            let mut h = speaker.add_peer(peer).expect("peer");
            h.commands.send(PeerCommand::Start).await.expect("start");
            let mut out = Outcome::default();
            let deadline = tokio::time::Instant::now() + limit;
            while !done(&out) {
                let ev = match tokio::time::timeout_at(deadline, h.events.recv()).await {
                    Ok(Some(ev)) => ev,
                    _ => break,
                };
                match ev {
                    PeerEvent::Established(neg) => {
                        out.established = true;
                        // Only the families the peer agreed to (BIRD 1.6
                        // speaks IPv4 only).
                        let updates: Vec<Update> = our_updates()
                            .into_iter()
                            .filter(|u| {
                                let f = u
                                    .mp_reach
                                    .as_ref()
                                    .map(|m| m.family)
                                    .or_else(|| u.as_end_of_rib())
                                    .unwrap_or(Family::IPV4_UNICAST);
                                neg.families.contains(&f)
                            })
                            .collect();
                        h.commands
                            .send(PeerCommand::SendUpdates(updates.into()))
                            .await
                            .expect("send");
                    }
                    PeerEvent::Update(u) => {
                        out.received.extend(u.nlri.iter().map(|n| n.prefix));
                        if let Some(m) = &u.mp_reach {
                            out.received.extend(m.nlri.iter().map(|n| n.prefix));
                        }
                    }
                    PeerEvent::StateChanged { to, .. } => out.states.push(to),
                    _ => {}
                }
            }
            // Keep the session up a moment so the peer can be queried.
            if out.established {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            if ours.stop_at_end {
                let _ = h.commands.send(PeerCommand::Stop(Some("bye".into()))).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // Leaving drops the runtime: the socket closes without a
            // NOTIFICATION, as when the process dies.
            out
        })
    })
    .join()
    .expect("tabby thread")
}

fn has_all_peer_routes(o: &Outcome) -> bool {
    PEER_V4_ROUTES
        .iter()
        .chain(PEER_V6_ROUTES.iter())
        .all(|r| o.received.contains(&r.parse().expect("prefix")))
}

fn never(_: &Outcome) -> bool {
    false
}

/// Polls `view` (the peer's table of routes learned from us) on a helper
/// thread while our side runs: `Ok(view)` once every prefix of `want` is
/// in it, else `Err(last view)` after 40 s.
fn watch_peer(
    want: &'static [&'static str],
    view: impl Fn() -> String + Send + 'static,
) -> std::thread::JoinHandle<Result<String, String>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(40) {
            last = view();
            if want.iter().all(|p| last.contains(p)) {
                return Ok(last);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        Err(last)
    })
}

/// The route exchange every peer kind is held to: our side runs until
/// `received_all`, and the peer's `view` must show every prefix of `want`
/// while the session is up. `diagnose` adds the peer's own account when it
/// did not learn them.
fn assert_exchange(
    lab: &Lab,
    peer: &str,
    log: &str,
    want: &'static [&'static str],
    received_all: fn(&Outcome) -> bool,
    view: impl Fn() -> String + Send + 'static,
    diagnose: impl FnOnce() -> String,
) {
    let checker = watch_peer(want, view);
    let out = run_tabby(
        &lab.tabby_ns,
        Ours::default(),
        Duration::from_secs(40),
        received_all,
    );
    let peer_view = checker.join().expect("checker");
    assert!(
        out.established,
        "no session with {peer}: states {:?}\n{}",
        out.states,
        lab.log(log)
    );
    assert!(
        received_all(&out),
        "{peer}'s routes not received: {:?}",
        out.received
    );
    let shown = peer_view
        .unwrap_or_else(|last| panic!("{peer} did not learn our routes:\n{last}\n{}", diagnose()));
    for p in want {
        assert!(shown.contains(p), "{p} missing in {peer}:\n{shown}");
    }
}

const OUR_ALL: [&str; 5] = [OUR_V4[0], OUR_V4[1], OUR_V4[2], OUR_V6[0], OUR_V6[1]];

// ----- tests -----

#[test]
fn bird2_exchanges_ipv4_and_ipv6_routes() {
    preflight(&["bird", "birdc", "ip"]);
    let mut lab = Lab::new();
    let sock = lab.start_bird(None, false);
    let view = {
        let sock = sock.clone();
        move || birdc_at("birdc", &sock, &["show", "route", "protocol", "tabby"])
    };
    assert_exchange(
        &lab,
        "BIRD",
        "bird.log",
        &OUR_ALL,
        has_all_peer_routes,
        view,
        || lab.birdc(&sock, &["show", "protocols", "all", "tabby"]),
    );
}

#[test]
fn gobgp_exchanges_ipv4_and_ipv6_routes() {
    preflight(&["gobgpd", "gobgp", "ip"]);
    let mut lab = Lab::new();
    lab.start_gobgp();
    let peer_ns = lab.peer_ns.clone();
    let view = move || {
        let q = |fam| gobgp_in(&peer_ns, &["global", "rib", "-a", fam]).unwrap_or_default();
        q("ipv4") + &q("ipv6")
    };
    assert_exchange(
        &lab,
        "GoBGP",
        "gobgpd.log",
        &OUR_ALL,
        has_all_peer_routes,
        view,
        || lab.gobgp(&["neighbor"]).unwrap_or_default(),
    );
}

fn md5(key: &str, passive: bool) -> Ours {
    Ours {
        password: Some(key.into()),
        passive,
        ..Ours::default()
    }
}

/// One session attempt against BIRD 2: the lab, BIRD's control socket and
/// what our side saw.
struct BirdRun {
    lab: Lab,
    sock: PathBuf,
    out: Outcome,
}

impl BirdRun {
    /// BIRD 2 in `lab` with `password` and `ttl security` (over IPv6 when
    /// `ours.v6`), then our side until `done` or `limit`.
    fn start(
        mut lab: Lab,
        password: Option<&str>,
        ttl_security: bool,
        ours: Ours,
        limit: Duration,
        done: fn(&Outcome) -> bool,
    ) -> BirdRun {
        let sock = lab.start_bird_over(password, ttl_security, ours.v6);
        let out = run_tabby(&lab.tabby_ns, ours, limit, done);
        BirdRun { lab, sock, out }
    }

    /// Fails with our states and BIRD's log unless the session came up.
    fn assert_established(&self, what: &str) {
        assert!(
            self.out.established,
            "{what}: states {:?}\n{}",
            self.out.states,
            self.lab.log("bird.log")
        );
    }

    fn birdc(&self, args: &[&str]) -> String {
        self.lab.birdc(&self.sock, args)
    }
}

/// Our side with `ours` must reach Established with BIRD set up so.
fn assert_bird_session_up(password: Option<&str>, ttl_security: bool, ours: Ours, what: &str) {
    let limit = Duration::from_secs(30);
    BirdRun::start(Lab::new(), password, ttl_security, ours, limit, |o| {
        o.established
    })
    .assert_established(what);
}

/// Our side with `ours` tries for 8 s against BIRD set up so (for the
/// cases that must not come up).
fn try_bird_session(password: Option<&str>, ttl_security: bool, ours: Ours) -> BirdRun {
    let limit = Duration::from_secs(8);
    BirdRun::start(Lab::new(), password, ttl_security, ours, limit, never)
}

/// Both sides connect: the collision is resolved either way.
#[test]
fn tcp_md5_with_bird_right_password_only() {
    preflight(&["bird", "birdc", "ip"]);
    let key = Some("tabby-md5-key");
    let right = md5("tabby-md5-key", false);
    assert_bird_session_up(key, false, right, "same TCP-MD5 password must come up");

    let wrong = md5("a-wrong-key", false);
    let run = try_bird_session(key, false, wrong);
    assert!(!run.out.established, "a wrong TCP-MD5 password came up");
    assert!(
        !run.out.states.contains(&State::OpenSent),
        "no TCP connection may form with a wrong key: {:?}",
        run.out.states
    );
    let proto = run.birdc(&["show", "protocols", "tabby"]);
    assert!(!proto.contains("Established"), "BIRD says:\n{proto}");
}

/// We only listen: the key must sit on the shared dual-stack listener for
/// the peer's (v4-mapped) address.
#[test]
fn tcp_md5_on_the_listener() {
    preflight(&["bird", "birdc", "ip"]);
    let key = Some("listener-key");
    let right = md5("listener-key", true);
    assert_bird_session_up(key, false, right, "passive side with the right key");

    let wrong = md5("not-the-key", true);
    let run = try_bird_session(key, false, wrong);
    assert!(
        !run.out.states.contains(&State::OpenSent),
        "accepted with a wrong key: {:?}",
        run.out.states
    );
}

/// RFC 5082: with GTSM on both sides the session comes up; against a peer
/// that sends with TTL 1 (BIRD's default for direct eBGP) it cannot.
#[test]
fn gtsm_with_bird() {
    preflight(&["bird", "birdc", "ip"]);
    let gtsm = Ours {
        gtsm: true,
        ..Ours::default()
    };
    let both = gtsm.clone();
    assert_bird_session_up(None, true, both, "GTSM on both sides");

    let run = try_bird_session(None, false, gtsm);
    assert!(
        !run.out.established,
        "TTL-1 packets passed our GTSM check: {:?}",
        run.out.states
    );
}

/// The session over IPv6 transport (native IPv6 on the dual-stack listener,
/// TCP-MD5 keyed by an IPv6 address), still carrying both families.
#[test]
fn bird2_over_ipv6_transport_with_md5() {
    preflight(&["bird", "birdc", "ip"]);
    let ours = Ours {
        password: Some("v6-key".into()),
        v6: true,
        ..Ours::default()
    };
    let limit = Duration::from_secs(40);
    let run = BirdRun::start(
        Lab::new(),
        Some("v6-key"),
        false,
        ours,
        limit,
        has_all_peer_routes,
    );
    run.assert_established("no IPv6 session with BIRD");
    assert!(
        has_all_peer_routes(&run.out),
        "BIRD's routes not received over IPv6: {:?}\n{}",
        run.out.received,
        run.birdc(&["show", "protocols", "all", "tabby"])
    );
}

/// FRR sends capabilities we do not know (FQDN, software version, ...):
/// they are kept and the session still comes up.
#[test]
fn frr_exchanges_ipv4_and_ipv6_routes() {
    preflight(&["/usr/lib/frr/bgpd", "vtysh", "ip"]);
    let mut lab = Lab::new();
    let vty = lab.start_frr().display().to_string();
    let view = move || {
        let q = |fam: &str| {
            let show = format!("show bgp {fam} unicast");
            run("vtysh", &["--vty_socket", &vty, "-d", "bgpd", "-c", &show]).unwrap_or_default()
        };
        q("ipv4") + &q("ipv6")
    };
    assert_exchange(
        &lab,
        "FRR",
        "frr.log",
        &OUR_ALL,
        has_all_peer_routes,
        view,
        String::new,
    );
}

fn has_peer_v4_routes(o: &Outcome) -> bool {
    PEER_V4_ROUTES
        .iter()
        .all(|r| o.received.contains(&r.parse().expect("prefix")))
}

#[test]
fn bird1_exchanges_ipv4_routes() {
    let bird1 = bird1_dir();
    preflight(&["ip", &bird1.join("bird").display().to_string()]);
    let birdc = bird1.join("birdc").display().to_string();
    let mut lab = Lab::new();
    let sock = lab.start_bird1();
    let view = move || birdc_at(&birdc, &sock, &["show", "route", "protocol", "tabby"]);
    assert_exchange(
        &lab,
        "BIRD 1.6",
        "bird1.log",
        &OUR_V4,
        has_peer_v4_routes,
        view,
        String::new,
    );
}

fn bird_has(run: &BirdRun, prefixes: &[&str]) -> bool {
    let shown = run.birdc(&["show", "route", "protocol", "tabby"]);
    prefixes.iter().all(|p| shown.contains(p))
}

/// RFC 4724 against BIRD as helper: when we vanish without a NOTIFICATION
/// BIRD keeps our routes as stale; an administrative stop (Hard Reset)
/// withdraws them.
#[test]
fn bird2_keeps_our_routes_across_a_graceful_restart() {
    preflight(&["bird", "birdc", "ip"]);
    for stop in [false, true] {
        let mut lab = Lab::new();
        lab.bird_extra = "  graceful restart on;\n  graceful restart time 120;\n".into();
        let ours = Ours {
            stop_at_end: stop,
            ..Ours::default()
        };
        let limit = Duration::from_secs(40);
        let run = BirdRun::start(lab, None, false, ours, limit, has_all_peer_routes);
        run.assert_established("no session with BIRD");
        // Our side is gone now. Give BIRD time to notice.
        std::thread::sleep(Duration::from_secs(2));
        let proto = run.birdc(&["show", "protocols", "all", "tabby"]);
        if stop {
            wait_until(
                "BIRD to withdraw our routes after a stop",
                Duration::from_secs(10),
                || !bird_has(&run, &["100.64.1.0/24"]),
            );
        } else {
            assert!(
                bird_has(&run, &OUR_V4) && bird_has(&run, &OUR_V6),
                "BIRD dropped our routes on a bare TCP close:\n{}\n{proto}",
                run.birdc(&["show", "route", "protocol", "tabby"])
            );
        }
    }
}
