//! Generates Rust code for the tabby.v1, apipb (GoBGP v3 subset) and api
//! (GoBGP v4 subset) packages and writes their file descriptor sets for gRPC
//! server reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("tabby_v1_descriptor.bin"))
        .compile_protos(
            &[
                "proto/tabby/v1/common.proto",
                "proto/tabby/v1/routes.proto",
                "proto/tabby/v1/peers.proto",
                "proto/tabby/v1/daemon.proto",
            ],
            &["proto"],
        )?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("gobgp_descriptor.bin"))
        .compile_protos(
            &[
                "proto/gobgp/gobgp.proto",
                "proto/gobgp/attribute.proto",
                "proto/gobgp/capability.proto",
            ],
            &["proto"],
        )?;
    // v4 kept v3's wire form for these messages: they reuse the v3 Rust
    // types, so tabby-api converts to them once for both versions.
    let mut v4 = tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("gobgp4_descriptor.bin"));
    for (v4_name, v3_type) in SHARED_WITH_V3 {
        v4 = v4.extern_path(format!(".api.{v4_name}"), format!("crate::gobgp::{v3_type}"));
    }
    v4.compile_protos(
        &[
            "proto/gobgp4/gobgp.proto",
            "proto/gobgp4/attribute.proto",
            "proto/gobgp4/capability.proto",
            "proto/gobgp4/common.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}

/// v4 messages (package api) whose fields and numbers equal a v3 message's
/// (package apipb), with the v3 Rust type's name.
const SHARED_WITH_V3: &[(&str, &str)] = &[
    ("Family", "Family"),
    ("Global", "Global"),
    ("Messages", "Messages"),
    ("Message", "Message"),
    ("Queues", "Queues"),
    ("Timers", "Timers"),
    ("TimersConfig", "TimersConfig"),
    ("TimersState", "TimersState"),
    ("Transport", "Transport"),
    ("EbgpMultihop", "EbgpMultihop"),
    ("RouteReflector", "RouteReflector"),
    ("RouteServer", "RouteServer"),
    ("PrefixLimit", "PrefixLimit"),
    ("AfiSafiConfig", "AfiSafiConfig"),
    ("AfiSafiState", "AfiSafiState"),
    ("AfiSafi", "AfiSafi"),
    ("IPAddressPrefix", "IpAddressPrefix"),
    ("OriginAttribute", "OriginAttribute"),
    ("AsSegment", "AsSegment"),
    ("AsPathAttribute", "AsPathAttribute"),
    ("NextHopAttribute", "NextHopAttribute"),
    ("MultiExitDiscAttribute", "MultiExitDiscAttribute"),
    ("LocalPrefAttribute", "LocalPrefAttribute"),
    ("CommunitiesAttribute", "CommunitiesAttribute"),
    ("LargeCommunity", "LargeCommunity"),
    ("LargeCommunitiesAttribute", "LargeCommunitiesAttribute"),
    ("MultiProtocolCapability", "MultiProtocolCapability"),
    ("RouteRefreshCapability", "RouteRefreshCapability"),
    ("FourOctetASNCapability", "FourOctetAsnCapability"),
];
