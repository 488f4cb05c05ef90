//! Structured logging set-up (tracing), with a level that the API can change
//! at run time.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

use crate::args::LogFormat;

/// Changes the log filter of the running daemon.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, tracing_subscriber::Registry>,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl").finish_non_exhaustive()
    }
}

impl LogControl {
    /// Replaces the filter, e.g. `debug` or `info,tabby_bgp=trace`.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let f = EnvFilter::try_new(filter).map_err(|e| {
            format!(
                "log level {filter:?} is not valid ({e}); use error, warn, info, debug or trace"
            )
        })?;
        self.handle
            .reload(f)
            .map_err(|e| format!("could not change the log level: {e}"))
    }
}

/// Installs the global subscriber. Logs go to stderr.
pub fn init(level: &str, format: LogFormat) -> Result<LogControl, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| {
        format!("--log-level {level:?} is not valid ({e}); use error, warn, info, debug or trace")
    })?;
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let res = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    res.map_err(|e| format!("could not install the logger: {e}"))?;
    Ok(LogControl { handle })
}
