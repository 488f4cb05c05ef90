//! Generates Rust code for the tabby.v1 and apipb (GoBGP subset) packages and
//! writes their file descriptor sets for gRPC server reflection.

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
    Ok(())
}
