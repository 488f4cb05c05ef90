//! Messages built from `tabby-bgp` values: the embedded OPEN, UPDATE and
//! NOTIFICATION PDUs are encoded by `tabby-bgp`'s own encoder.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use tabby_bgp::codec::{CodecCtx, EncodeError, encode_message, encode_update};
use tabby_bgp::message::{MAX_EXTENDED_MESSAGE_LEN, Open, Update};
use tabby_bgp::{Message as BgpMessage, Notification};

use crate::message::{
    InfoTlv, Message, PeerDown, PeerDownReason, PeerHeader, PeerUp, RouteMonitoring, Timestamp,
    address_field, info, termination,
};

/// The codec context of the UPDATEs a station receives for one peer: the
/// session's AS number width (the peer header's A flag says which) and the
/// ADD-PATH families the station reads from the OPENs. BMP messages are not
/// limited to 4096 octets, so neither are the embedded UPDATEs.
pub fn update_ctx(
    four_octet_as: bool,
    add_path: &std::collections::BTreeSet<tabby_bgp::Family>,
) -> CodecCtx {
    CodecCtx {
        four_octet_as,
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
        add_path_rx: add_path.clone(),
        add_path_tx: add_path.clone(),
        extended_next_hop: true,
        ebgp: false,
    }
}

fn pdu(msg: &BgpMessage, ctx: &CodecCtx) -> Result<Bytes, EncodeError> {
    let mut b = BytesMut::new();
    encode_message(msg, ctx, &mut b)?;
    Ok(b.freeze())
}

/// Initiation (RFC 7854 §4.3) with sysName and sysDescr, both of which a
/// router must send.
pub fn initiation(sys_name: &str, sys_descr: &str) -> Message {
    Message::Initiation(vec![
        InfoTlv::text(info::SYS_DESCR, sys_descr),
        InfoTlv::text(info::SYS_NAME, sys_name),
    ])
}

/// Termination (RFC 7854 §4.5) with a reason code.
pub fn termination(reason: u16) -> Message {
    Message::Termination(vec![InfoTlv::termination_reason(reason)])
}

/// A clean shutdown's Termination: administratively closed.
pub fn termination_admin() -> Message {
    termination(termination::ADMINISTRATIVELY_CLOSED)
}

/// Peer Up (RFC 7854 §4.10) with both OPENs.
pub fn peer_up(
    peer: PeerHeader,
    local: SocketAddr,
    remote_port: u16,
    sent: &Open,
    received: &Open,
) -> Result<Message, EncodeError> {
    let ctx = CodecCtx::default();
    Ok(Message::PeerUp(PeerUp {
        peer,
        local_address: address_field(local.ip()),
        local_port: local.port(),
        remote_port,
        sent_open: pdu(&BgpMessage::Open(sent.clone()), &ctx)?,
        received_open: pdu(&BgpMessage::Open(received.clone()), &ctx)?,
        information: Vec::new(),
    }))
}

/// The Loc-RIB instance's Peer Up (RFC 9069 §5.1): no addresses or ports,
/// our OPEN as both sent and received, and the VRF/Table Name TLV it
/// requires.
pub fn loc_rib_peer_up(
    asn: u32,
    bgp_id: Ipv4Addr,
    timestamp: Timestamp,
    open: &Open,
    table_name: &str,
) -> Result<Message, EncodeError> {
    let open = pdu(&BgpMessage::Open(open.clone()), &CodecCtx::default())?;
    Ok(Message::PeerUp(PeerUp {
        peer: PeerHeader::loc_rib(asn, bgp_id, timestamp, false),
        local_address: [0; 16],
        local_port: 0,
        remote_port: 0,
        sent_open: open.clone(),
        received_open: open,
        information: vec![InfoTlv::text(info::VRF_TABLE_NAME, table_name)],
    }))
}

/// Route Monitoring (RFC 7854 §4.6) of one UPDATE.
pub fn route_monitoring(
    peer: PeerHeader,
    update: &Update,
    ctx: &CodecCtx,
) -> Result<Message, EncodeError> {
    // The header by hand around `tabby-bgp`'s body encoder: no copy of the
    // UPDATE value is made to wrap it in a `tabby_bgp::Message`.
    let mut b = BytesMut::with_capacity(64);
    b.put_slice(&[0xff; 16]);
    b.put_u16(0);
    b.put_u8(tabby_bgp::message::kind::UPDATE);
    encode_update(update, ctx, &mut b)?;
    let len = b.len();
    if len > ctx.max_message_len {
        return Err(EncodeError::TooLong {
            len,
            max: ctx.max_message_len,
        });
    }
    b[16..18].copy_from_slice(&(len as u16).to_be_bytes());
    Ok(Message::RouteMonitoring(RouteMonitoring {
        peer,
        update: b.freeze(),
    }))
}

/// The NOTIFICATION PDU of a Peer Down with reason 1 or 3.
pub fn notification_pdu(n: &Notification) -> Bytes {
    // A NOTIFICATION always fits: its data is bounded by the decoder that
    // produced it or by our own senders.
    pdu(
        &BgpMessage::Notification(n.clone()),
        &update_ctx(true, &Default::default()),
    )
    .unwrap_or_default()
}

/// Peer Down (RFC 7854 §4.9).
pub fn peer_down(peer: PeerHeader, reason: PeerDownReason) -> Message {
    Message::PeerDown(PeerDown { peer, reason })
}
