//! Byte vectors of BMP messages, laid out by hand from RFC 7854 §4 and
//! RFC 9069 §4 (spaces separate the fields), shared by the vector tests and
//! the fuzz-oracle replay.

#![allow(dead_code)]

/// The common header's version, length and type, then the per-peer header:
/// type, flags, distinguisher, address, AS, BGP ID, timestamp.
pub const INITIATION: &str = "03 00000015 04  0001 0005 7461626279  0002 0002 6e31";
pub const TERMINATION: &str = "03 0000000c 05  0001 0002 0000";

/// OPEN from AS 65000 (0xfde8), hold 90, id 198.18.0.1, no parameters.
pub const OPEN_SENT: &str = "ffffffffffffffffffffffffffffffff 001d 01 04 fde8 005a c6120001 00";
/// OPEN from AS 65001, hold 90, id 198.18.0.2.
pub const OPEN_RECEIVED: &str = "ffffffffffffffffffffffffffffffff 001d 01 04 fde9 005a c6120002 00";

/// Peer 198.18.0.2 AS 65001, global instance, pre-policy, at 100.5 s.
pub const PEER_V4_PRE: &str = "00 00 0000000000000000 00000000000000000000000000000000 \
     0000fde9 c6120002 00000064 00000005";

pub fn peer_up() -> String {
    // local 198.18.0.1:179, remote port 40000 (0x9c40)
    format!(
        "03 0000007e 03 {PEER_V4_PRE_ADDR} 000000000000000000000000c6120001 00b3 9c40 {OPEN_SENT} {OPEN_RECEIVED}"
    )
}

/// The per-peer header above with the peer address filled in.
pub const PEER_V4_PRE_ADDR: &str = "00 00 0000000000000000 000000000000000000000000c6120002 \
     0000fde9 c6120002 00000064 00000005";
/// The same peer, post-policy (L).
pub const PEER_V4_POST_ADDR: &str = "00 40 0000000000000000 000000000000000000000000c6120002 \
     0000fde9 c6120002 00000064 00000005";
/// Peer 2001:db8::2 (V), AS 65001, post-policy (L).
pub const PEER_V6_POST: &str = "00 c0 0000000000000000 20010db8000000000000000000000002 \
     0000fde9 c6120002 00000064 00000005";
/// The Loc-RIB instance (peer type 3): our AS 65000 and id 198.18.0.1.
pub const PEER_LOC_RIB: &str = "03 00 0000000000000000 00000000000000000000000000000000 \
     0000fde8 c6120001 00000064 00000005";

/// UPDATE: ORIGIN IGP, AS_PATH SEQUENCE [65001] (4-octet), NEXT_HOP
/// 198.18.0.2, NLRI 100.64.0.0/24.
pub const UPDATE_V4: &str = "ffffffffffffffffffffffffffffffff 002f 02 0000 0014 \
     400101 00  400206 0201 0000fde9  400304 c6120002  18 644000";

pub fn route_monitoring_post() -> String {
    format!("03 0000005f 00 {PEER_V4_POST_ADDR} {UPDATE_V4}")
}

/// Cease / Administrative Shutdown (6/2), no data.
pub const NOTIFICATION_CEASE: &str = "ffffffffffffffffffffffffffffffff 0015 03 06 02";

pub fn peer_down_remote_notification() -> String {
    format!("03 00000046 02 {PEER_V4_PRE_ADDR} 03 {NOTIFICATION_CEASE}")
}

pub fn peer_down_local_fsm() -> String {
    format!("03 00000033 02 {PEER_V4_PRE_ADDR} 02 0000")
}

pub fn peer_down_remote_no_data() -> String {
    format!("03 00000031 02 {PEER_V4_PRE_ADDR} 04")
}

/// Stats: 5 rejected by policy (type 0), 2 routes in the Adj-RIB-In (type 7),
/// 1 in the IPv6 unicast Adj-RIB-In (type 9).
pub fn stats_report() -> String {
    format!(
        "03 00000057 01 {PEER_V4_PRE_ADDR} 00000003 0000 0004 00000005 \
         0007 0008 0000000000000002  0009 000b 0002 01 0000000000000001"
    )
}

/// RFC 9069: the Loc-RIB's Peer Up with our OPEN twice and the table name.
pub fn loc_rib_peer_up() -> String {
    format!(
        "03 00000088 03 {PEER_LOC_RIB} 00000000000000000000000000000000 0000 0000 \
         {OPEN_SENT} {OPEN_SENT} 0003 0006 676c6f62616c"
    )
}

pub fn all() -> Vec<String> {
    vec![
        INITIATION.to_string(),
        TERMINATION.to_string(),
        peer_up(),
        route_monitoring_post(),
        peer_down_remote_notification(),
        peer_down_local_fsm(),
        peer_down_remote_no_data(),
        stats_report(),
        loc_rib_peer_up(),
    ]
}

pub fn hex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("test vector is hex")
}
