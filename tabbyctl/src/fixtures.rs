//! Peers as the daemon reports them, for the unit tests.

use tabby_proto::v1 as pb;

/// A node-mesh peer of AS 64513 on `port`, enabled, without counters.
pub(crate) fn peer(address: &str, port: u32, state: pb::SessionState) -> pb::Peer {
    pb::Peer {
        config: Some(pb::PeerConfig {
            address: address.into(),
            remote_as: 64513,
            r#type: pb::PeerType::NodeMesh as i32,
            ..Default::default()
        }),
        state: state as i32,
        enabled: true,
        settings: Some(pb::PeerSettings {
            port,
            ..Default::default()
        }),
        ..Default::default()
    }
}
