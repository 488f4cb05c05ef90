//! Opt-in link order for release packaging: with `TABBY_HOT_TEXT=<path>` set
//! at build time, passes that linker script to the linker for the tabbyd
//! binary on Linux. `scripts/hot-text.sh` generates one (under `target/`)
//! and prints the build command that uses it; see its header for why.
//!
//! Without the variable (the default build) nothing is passed and nothing
//! is generated. A path that does not exist fails the build: whoever set the
//! variable asked for the layout and should learn that it was not applied.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=TABBY_HOT_TEXT");
    let Some(path) = env::var_os("TABBY_HOT_TEXT").filter(|p| !p.is_empty()) else {
        return;
    };
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        println!("cargo:warning=TABBY_HOT_TEXT is set but only applies to Linux targets; ignored");
        return;
    }
    let script = PathBuf::from(path);
    // A build script runs in the package directory, not where cargo was
    // started, so a relative path would be read from a surprising place.
    if !script.is_absolute() {
        fail(&format!(
            "TABBY_HOT_TEXT={} must be an absolute path",
            script.display()
        ));
    }
    if !script.is_file() {
        fail(&format!(
            "TABBY_HOT_TEXT={}: no such file (scripts/hot-text.sh generates it)",
            script.display()
        ));
    }
    let Some(text) = script.to_str() else {
        fail(&format!(
            "TABBY_HOT_TEXT={}: the path is not UTF-8",
            script.display()
        ));
    };
    // `-Wl,` splits its argument at commas.
    if text.contains(',') {
        fail(&format!(
            "TABBY_HOT_TEXT={text}: the linker flag cannot carry a path with a comma"
        ));
    }
    println!("cargo:rerun-if-changed={text}");
    println!("cargo:rustc-link-arg-bin=tabbyd=-Wl,-T,{text}");
}

/// Stops the build with `msg` (a build script reports errors this way).
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}
