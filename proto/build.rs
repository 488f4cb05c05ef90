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
    // v4 names the messages it kept unchanged from v3 as `apipb.X`: they
    // are the v3 Rust types, so tabby-api converts to them once for both.
    // Its own directory: protoc hands it the imported apipb files too, and
    // what it writes for them (the v3 service alone) must not replace the
    // v3 code above.
    let v4_out = out.join("gobgp4");
    std::fs::create_dir_all(&v4_out)?;
    tonic_prost_build::configure()
        .out_dir(&v4_out)
        .file_descriptor_set_path(out.join("gobgp4_descriptor.bin"))
        .extern_path(".apipb", "crate::gobgp")
        .compile_protos(
            &[
                "proto/gobgp4/gobgp.proto",
                "proto/gobgp4/attribute.proto",
                "proto/gobgp4/capability.proto",
            ],
            &["proto"],
        )?;
    Ok(())
}
