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

/// kube-rs's client logs every failed request at error level, once per retry of every
/// watch while the API server is away; the Kubernetes source reports each failure itself,
/// once, with what to do. Unless the filter names the client, it is kept quiet.
fn with_quiet_kube_client(filter: &str) -> String {
    if filter.contains("kube_client") {
        filter.to_string()
    } else {
        format!("{filter},kube_client::client::builder=off")
    }
}

impl LogControl {
    /// Replaces the filter, e.g. `debug` or `info,tabby_bgp=trace`.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let f = EnvFilter::try_new(with_quiet_kube_client(filter)).map_err(|e| {
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
    let filter = EnvFilter::try_new(with_quiet_kube_client(level)).map_err(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kube_client_is_quiet_unless_named() {
        assert_eq!(
            with_quiet_kube_client("info"),
            "info,kube_client::client::builder=off"
        );
        assert_eq!(
            with_quiet_kube_client("info,kube_client=debug"),
            "info,kube_client=debug"
        );
        assert!(EnvFilter::try_new(with_quiet_kube_client("debug,tabby_bgp=trace")).is_ok());
    }
}
