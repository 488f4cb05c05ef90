//! tabbyd: the Tabby daemon. Wires the BGP sessions, the RIB, the kernel FIB,
//! the gRPC API and the cluster datastore together and owns the runtime.

mod args;
mod logging;
mod metrics;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Args, Datastore};

fn main() -> ExitCode {
    let args = Args::parse();
    let _log = match logging::init(&args.log_level, args.log_format) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tabbyd: {e}");
            return ExitCode::from(2);
        }
    };
    let datastore = match Datastore::parse(&args.datastore) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tabbyd: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(?datastore, "tabbyd starting");
    ExitCode::SUCCESS
}
