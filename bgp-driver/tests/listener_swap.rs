//! Swapping a speaker's listening sockets while peers run (issue 16 point
//! 7), in a network namespace of the test's own (anonymous: it goes away
//! with the test's thread) with 198.18.0.1-3 and 2001:db8::1 on its
//! loopback. Needs root.
//!
//! First what Linux does with overlapping binds, which the driver relies
//! on; then the driver: overlapping and disjoint swaps with a session kept
//! up and re-established (TCP-MD5 signed) through the new socket, failed
//! binds that keep the old socket accepting, connections queued during a
//! swap handed over rather than reset, and closing that frees the address
//! at once; and several sessions to one address on different ports, each
//! taking the connections that arrive on its own port.

use std::future::Future;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tabby_bgp::fsm::{PeerAs, SessionConfig, State};
use tabby_bgp::types::Asn;
use tabby_bgp_driver::{ListenConfig, PeerCommand, PeerConfig, PeerEvent, PeerHandle, Speaker};
use tokio::time::timeout;

const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// On no interface: binding it fails with EADDRNOTAVAIL.
const ABSENT: Ipv4Addr = Ipv4Addr::new(198, 18, 9, 9);
const PORT: u16 = 1790;
const PORT2: u16 = 1791;
/// TCP-MD5 key of the swap test's session.
const KEY: &str = "swap-key";

/// Runs `test` on a thread of its own in a fresh network namespace, on a
/// single-threaded runtime (as tabbyd's).
fn lab<F: Future<Output = ()>>(test: impl FnOnce() -> F + Send + 'static) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let r = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("listener_swap needs root: cannot make a network namespace");
        // Children start in this thread's namespace.
        for args in [
            &["link", "set", "lo", "up"][..],
            &["addr", "add", "198.18.0.1/32", "dev", "lo"],
            &["addr", "add", "198.18.0.2/32", "dev", "lo"],
            &["addr", "add", "198.18.0.3/32", "dev", "lo"],
            &["-6", "addr", "add", "2001:db8::1/128", "dev", "lo"],
        ] {
            let st = Command::new("ip")
                .args(args)
                .status()
                .expect("ip (iproute2)");
            assert!(st.success(), "ip {args:?} failed");
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(test());
    })
    .join();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn wild(port: u16) -> SocketAddr {
    sa(std::net::Ipv6Addr::UNSPECIFIED, port)
}

fn cfg(addrs: &[SocketAddr]) -> ListenConfig {
    ListenConfig {
        addrs: addrs.to_vec(),
    }
}

/// A listening socket made as the driver and std make theirs
/// (`SO_REUSEADDR`), dual-stack on `[::]`.
fn raw_listen(addr: SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(!addr.ip().is_unspecified())?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(16)?;
    Ok(s)
}

fn errno(r: io::Result<Socket>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn session(local: u32, peer: u32, id: Ipv4Addr, passive: bool) -> SessionConfig {
    let mut s = SessionConfig::new(Asn(local), PeerAs::Exact(Asn(peer)), id);
    s.connect_retry = Duration::from_secs(1);
    s.hold_time = 9;
    s.passive = passive;
    s
}

/// On `a`: passive toward `from` (sessions only come through a listener),
/// with a TCP-MD5 key, which every new listening socket must carry.
fn passive_peer(a: &Speaker, from: Ipv4Addr, md5: Option<&str>) -> PeerHandle {
    let mut c = PeerConfig::new(from.into(), session(65001, 65002, A, true));
    c.local_addr = Some(A.into());
    c.md5_password = md5.map(str::to_owned);
    a.add_peer(c).expect("passive peer")
}

/// On `b`: active from B toward A's `port`.
fn active_peer(b: &Speaker, port: u16, md5: Option<&str>) -> PeerHandle {
    let mut c = PeerConfig::new(A.into(), session(65002, 65001, B, false));
    c.remote_port = port;
    c.local_addr = Some(B.into());
    c.connect_timeout = Duration::from_secs(2);
    c.md5_password = md5.map(str::to_owned);
    b.add_peer(c).expect("active peer")
}

async fn wait_for(p: &mut PeerHandle, what: &str, f: impl Fn(&PeerEvent) -> bool) {
    let fut = async {
        loop {
            match p.events.recv().await {
                Some(ev) if f(&ev) => return,
                Some(_) => {}
                None => panic!("peer task ended while waiting for {what}"),
            }
        }
    };
    timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Waits for Established and says the peer's router id.
async fn established_with(p: &mut PeerHandle, what: &str) -> Ipv4Addr {
    let fut = async {
        loop {
            match p.events.recv().await {
                Some(PeerEvent::Established(n)) => return n.peer_id,
                Some(_) => {}
                None => panic!("peer task ended while waiting for {what}"),
            }
        }
    };
    timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn is_established(ev: &PeerEvent) -> bool {
    matches!(ev, PeerEvent::Established(_))
}

fn is_down(ev: &PeerEvent) -> bool {
    matches!(ev, PeerEvent::Down(_))
}

async fn both_established(a: &mut PeerHandle, b: &mut PeerHandle, what: &str) {
    wait_for(a, &format!("{what}: A established"), is_established).await;
    wait_for(b, &format!("{what}: B established"), is_established).await;
}

/// B resets the session; it must come back through A's listener.
async fn reconnect(a: &mut PeerHandle, b: &mut PeerHandle, what: &str) {
    b.commands
        .send(PeerCommand::Reset { hard: false })
        .await
        .expect("reset");
    wait_for(a, &format!("{what}: A down"), is_down).await;
    both_established(a, b, what).await;
}

/// No Down event queued and the state still Established.
fn still_up(p: &mut PeerHandle, what: &str) {
    while let Ok(ev) = p.events.try_recv() {
        assert!(!is_down(&ev), "{what}: the session went down: {ev:?}");
    }
    assert_eq!(p.status.borrow().state, Some(State::Established), "{what}");
}

#[test]
fn linux_rebinds_an_overlapping_address_once_the_listener_is_shut_down() {
    lab(|| async {
        // The wildcard listening blocks an address it covers, and the other
        // way round, even with SO_REUSEADDR on both.
        let old = raw_listen(wild(PORT)).expect("[::]");
        assert_eq!(errno(raw_listen(sa(A, PORT))), Some(libc::EADDRINUSE));
        // shutdown(SHUT_RD) stops it listening at once, although the
        // descriptor stays open: the overlapping bind succeeds.
        old.shutdown(Shutdown::Read).expect("shutdown");
        let new = raw_listen(sa(A, PORT)).expect("bind after shutdown");
        // The stopped socket cannot listen again while the new one does…
        assert_eq!(
            old.listen(16).err().and_then(|e| e.raw_os_error()),
            Some(libc::EADDRINUSE)
        );
        drop(new);
        // … but can once it is gone: the way back after a failed swap.
        old.listen(16).expect("listen again");
        let c = std::net::TcpStream::connect(sa(A, PORT)).expect("connect");
        let (_, from) = old.accept().expect("accept on the listening-again socket");
        assert_eq!(
            from.as_socket().map(|s| s.port()),
            c.local_addr().ok().map(|a| a.port())
        );
        drop(old);
        // The same holds for a specific address and the wildcard after it.
        let old = raw_listen(sa(A, PORT)).expect("A");
        assert_eq!(errno(raw_listen(wild(PORT))), Some(libc::EADDRINUSE));
        old.shutdown(Shutdown::Read).expect("shutdown");
        raw_listen(wild(PORT)).expect("[::] after shutdown");
        // An address on no interface.
        assert_eq!(
            errno(raw_listen(sa(ABSENT, PORT))),
            Some(libc::EADDRNOTAVAIL)
        );
    });
}

#[test]
fn swaps_keep_the_session_and_accept_on_the_new_sockets() {
    lab(|| async {
        let a = Speaker::bind(&cfg(&[wild(PORT)])).expect("A listens");
        let b = Speaker::bind(&cfg(&[])).expect("B");
        let mut pa = passive_peer(&a, B, Some(KEY));
        let mut pb = active_peer(&b, PORT, Some(KEY));
        pa.commands.send(PeerCommand::Start).await.expect("start");
        pb.commands.send(PeerCommand::Start).await.expect("start");
        both_established(&mut pa, &mut pb, "[::]").await;

        // The same addresses: nothing changes.
        a.listen(&cfg(&[wild(PORT)])).expect("same");
        assert_eq!(a.local_addrs(), vec![wild(PORT)]);

        // Wildcard → node address, same port (overlapping).
        a.listen(&cfg(&[sa(A, PORT)])).expect("[::] → A");
        assert_eq!(a.local_addrs(), vec![sa(A, PORT)]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        still_up(&mut pa, "after [::] → A");
        reconnect(&mut pa, &mut pb, "A").await;

        // And back.
        a.listen(&cfg(&[wild(PORT)])).expect("A → [::]");
        assert_eq!(a.local_addrs(), vec![wild(PORT)]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        still_up(&mut pa, "after A → [::]");
        reconnect(&mut pa, &mut pb, "[::] again").await;

        // A new port: bound before the old one closes.
        a.listen(&cfg(&[wild(PORT2)])).expect("new port");
        assert_eq!(a.local_addrs(), vec![wild(PORT2)]);
        assert!(
            std::net::TcpStream::connect(sa(A, PORT)).is_err(),
            "the old port still accepts"
        );
        still_up(&mut pa, "after the port change");
        b.remove_peer(A.into(), PORT);
        drop(pb);
        wait_for(&mut pa, "A down after B left", is_down).await;
        let mut pb = active_peer(&b, PORT2, Some(KEY));
        pb.commands.send(PeerCommand::Start).await.expect("start");
        both_established(&mut pa, &mut pb, "new port").await;
    });
}

#[test]
fn a_failed_bind_keeps_the_old_listener_accepting() {
    lab(|| async {
        let a = Speaker::bind(&cfg(&[wild(PORT)])).expect("A listens");
        let b = Speaker::bind(&cfg(&[])).expect("B");
        let mut pa = passive_peer(&a, B, None);
        pa.commands.send(PeerCommand::Start).await.expect("start");

        // A's address overlaps the wildcard (which stops for it and binds),
        // the absent one fails: the wildcard listens again.
        let e = a
            .listen(&cfg(&[sa(A, PORT), sa(ABSENT, PORT)]))
            .expect_err("an address on no interface");
        let msg = e.to_string();
        assert!(
            msg.contains(&sa(ABSENT, PORT).to_string()) && msg.contains("EADDRNOTAVAIL"),
            "{msg}"
        );
        assert_eq!(a.local_addrs(), vec![wild(PORT)]);
        let mut pb = active_peer(&b, PORT, None);
        pb.commands.send(PeerCommand::Start).await.expect("start");
        both_established(&mut pa, &mut pb, "after EADDRNOTAVAIL").await;

        // Another socket holds the new port: the old socket is untouched.
        let blocker = raw_listen(wild(PORT2)).expect("blocker");
        let e = a
            .listen(&cfg(&[wild(PORT2)]))
            .expect_err("a port somebody holds");
        let msg = e.to_string();
        assert!(
            msg.contains(&wild(PORT2).to_string()) && msg.contains("EADDRINUSE"),
            "{msg}"
        );
        assert_eq!(a.local_addrs(), vec![wild(PORT)]);
        still_up(&mut pa, "after EADDRINUSE");
        reconnect(&mut pa, &mut pb, "after EADDRINUSE").await;
        drop(blocker);
    });
}

#[test]
fn connections_queued_during_a_swap_are_handed_over() {
    lab(|| async {
        let a = Speaker::bind(&cfg(&[wild(PORT)])).expect("A listens");
        let pc = passive_peer(&a, C, None);
        pc.commands.send(PeerCommand::Start).await.expect("start");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Connected (the kernel queued it) while the accept task cannot
        // run: nothing yields between here and the swap.
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        s.bind(&sa(C, 0).into()).expect("bind C");
        s.connect(&sa(A, PORT).into()).expect("connect");
        a.listen(&cfg(&[sa(A, PORT)])).expect("[::] → A");
        // The peer got it and speaks: an OPEN, not a reset.
        let mut c: std::net::TcpStream = s.into();
        let head = tokio::task::spawn_blocking(move || {
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut head = [0u8; 19];
            c.read_exact(&mut head)?;
            Ok::<_, io::Error>(head)
        })
        .await
        .expect("reader")
        .expect("the queued connection was reset");
        assert_eq!(&head[..16], &[0xff; 16], "a BGP marker");
        assert_eq!(head[18], 1, "an OPEN");
        drop(pc);
    });
}

#[test]
fn closing_frees_the_address_at_once() {
    lab(|| async {
        let a = Speaker::bind(&cfg(&[wild(PORT)])).expect("A listens");
        a.close_listeners();
        assert!(a.local_addrs().is_empty());
        // Overlapping binds succeed straight away, before the runtime has
        // run (and dropped) the aborted accept task.
        drop(raw_listen(sa(A, PORT)).expect("A after close"));
        a.listen(&cfg(&[wild(PORT)])).expect("listen again");
        // Dropping the speaker frees it the same way.
        drop(a);
        let again = Speaker::bind(&cfg(&[wild(PORT)])).expect("bind after drop");
        assert_eq!(again.local_addrs(), vec![wild(PORT)]);
    });
}

/// On `a`: passive toward B's speaker on `port` (which connects to A's
/// `port`, as a speaker connects to the port it listens on).
fn passive_peer_on(a: &Speaker, port: u16, peer_as: u32) -> io::Result<PeerHandle> {
    let mut c = PeerConfig::new(B.into(), session(65001, peer_as, A, true));
    c.remote_port = port;
    c.local_addr = Some(A.into());
    a.add_peer(c)
}

/// On one of B's speakers (AS `local_as`, router id `id`): active toward A's `port`.
fn speaker_of_b(port: u16, local_as: u32, id: Ipv4Addr) -> (Speaker, PeerHandle) {
    let b = Speaker::bind(&cfg(&[])).expect("B");
    let mut c = PeerConfig::new(A.into(), session(local_as, 65001, id, false));
    c.remote_port = port;
    c.local_addr = Some(B.into());
    c.connect_timeout = Duration::from_secs(2);
    let p = b.add_peer(c).expect("active peer");
    (b, p)
}

#[test]
fn sessions_to_one_address_on_two_ports_each_take_their_own_connection() {
    // Two Calico BGPPeers for one address on two ports are two sessions;
    // B runs a speaker per port, each with its own AS, so a connection
    // handed to the other session fails its OPEN (bad peer AS) and never
    // establishes.
    lab(|| async {
        let a = Speaker::bind(&cfg(&[wild(PORT), wild(PORT2)])).expect("A listens");
        let mut a1 = passive_peer_on(&a, PORT, 65002).expect("B:PORT");
        let mut a2 = passive_peer_on(&a, PORT2, 65003).expect("B:PORT2");
        let again = passive_peer_on(&a, PORT, 65002).expect_err("B:PORT twice");
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists, "{again}");
        assert!(
            again.to_string().contains(&format!("{B}:{PORT}")),
            "{again}"
        );
        let (_b1, mut p1) = speaker_of_b(PORT, 65002, B);
        let (_b2, mut p2) = speaker_of_b(PORT2, 65003, C);
        for p in [&a1, &a2, &p1, &p2] {
            p.commands.send(PeerCommand::Start).await.expect("start");
        }
        assert_eq!(established_with(&mut a1, "A to B:PORT").await, B);
        assert_eq!(established_with(&mut a2, "A to B:PORT2").await, C);
        wait_for(&mut p1, "B's speaker on PORT", is_established).await;
        wait_for(&mut p2, "B's speaker on PORT2", is_established).await;
        // One session leaves: the other stays up.
        a.remove_peer(B.into(), PORT);
        drop(a1);
        wait_for(&mut p1, "B's PORT speaker down", is_down).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        still_up(&mut a2, "after the PORT session left");
        still_up(&mut p2, "after the PORT session left");
    });
}
