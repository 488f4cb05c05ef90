//! tabby-bgp stays sans-IO: its manifest names no async runtime, channel or
//! socket crate. Those belong to tabby-bgp-driver, which depends on this
//! crate, never the other way.

/// Crates that would bring I/O, tasks or sockets into the core.
const FORBIDDEN: [&str; 8] = [
    "tokio",
    "tokio-util",
    "tokio-stream",
    "flume",
    "socket2",
    "libc",
    "nix",
    "mio",
];

/// The crates `manifest` depends on to build and run (`[dependencies]`,
/// also per target), by the name they have on crates.io. Not dev- or
/// build-dependencies: tests and build scripts do not ship in the library.
fn runtime_dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    // The table the current line belongs to, and whether it is a whole
    // table for one crate (`[dependencies.tokio]`).
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(table) = line.strip_prefix('[') {
            let table = table.trim_end_matches(']').trim();
            // `dependencies`, `target.'cfg(unix)'.dependencies`, and the
            // dotted forms of both for one crate.
            let (head, krate) = match table.rsplit_once("dependencies") {
                Some((head, rest)) => (head, rest.strip_prefix('.')),
                None => ("-", None),
            };
            let runtime = (head.is_empty() || (head.starts_with("target.") && head.ends_with('.')))
                && (krate.is_some() || table.ends_with("dependencies"));
            in_deps = runtime && krate.is_none();
            if runtime && let Some(k) = krate {
                deps.push(k.trim_matches('"').to_string());
            }
            continue;
        }
        if in_deps && let Some((key, value)) = line.split_once('=') {
            // A renamed dependency is the crate named by `package`.
            let renamed = value
                .split_once("package")
                .and_then(|(_, rest)| rest.split('"').nth(1));
            // `tokio.workspace = true` names `tokio`.
            let key = key.trim().split('.').next().unwrap_or("");
            deps.push(renamed.unwrap_or(key.trim_matches('"')).to_string());
        }
    }
    deps
}

#[test]
fn the_core_depends_on_no_io_crate() {
    let manifest = include_str!("../Cargo.toml");
    let deps = runtime_dependencies(manifest);
    assert!(
        deps.iter().any(|d| d == "bytes"),
        "the manifest reader found no dependencies: {deps:?}"
    );
    let bad: Vec<&String> = deps
        .iter()
        .filter(|d| FORBIDDEN.contains(&d.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "tabby-bgp is the sans-IO core and must not depend on {bad:?}: \
         move the code that needs them to tabby-bgp-driver"
    );
}

#[test]
fn the_manifest_reader_sees_every_form() {
    let manifest = r#"
[package]
name = "x"
tokio = "not a dependency"

[dependencies]
bytes = { workspace = true }
"tokio-util" = "0.7"  # quoted key
tokio.workspace = true
io = { package = "socket2", version = "0.6" }

[dependencies.flume]
version = "0.11"

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[target.'cfg(unix)'.dependencies.nix]
version = "0.31"

[dev-dependencies]
mio = "1"

[build-dependencies]
tokio-stream = "0.1"
"#;
    assert_eq!(
        runtime_dependencies(manifest),
        [
            "bytes",
            "tokio-util",
            "tokio",
            "socket2",
            "flume",
            "libc",
            "nix"
        ]
    );
}
