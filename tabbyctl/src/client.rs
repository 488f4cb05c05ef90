//! Connecting to tabbyd, with errors that say what to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hyper_util::rt::TokioIo;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Where tabbyd's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTarget {
    /// A unix socket path.
    Unix(PathBuf),
    /// An http:// or https:// URL.
    Url(String),
}

impl ApiTarget {
    /// Parses `unix:PATH`, a bare absolute path, or `http(s)://HOST:PORT`.
    pub fn parse(s: &str) -> Result<ApiTarget> {
        if let Some(p) = s
            .strip_prefix("unix://")
            .or_else(|| s.strip_prefix("unix:"))
        {
            if p.is_empty() {
                bail!("--api unix: needs a socket path, e.g. unix:/run/tabby/tabbyd.sock");
            }
            return Ok(ApiTarget::Unix(PathBuf::from(p)));
        }
        if s.starts_with('/') {
            return Ok(ApiTarget::Unix(PathBuf::from(s)));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            s.parse::<Uri>().with_context(|| {
                format!("--api {s:?} is not a valid URL; write e.g. http://127.0.0.1:50061")
            })?;
            return Ok(ApiTarget::Url(s.to_string()));
        }
        bail!(
            "--api {s:?} is not understood: use unix:/path/to/tabbyd.sock, http://HOST:PORT or https://HOST:PORT"
        )
    }
}

impl std::fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            ApiTarget::Url(u) => f.write_str(u),
        }
    }
}

/// TLS material for https:// targets.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA that signed the server certificate.
    pub ca: Option<PathBuf>,
    /// Client certificate (for servers that verify clients).
    pub cert: Option<PathBuf>,
    /// Client key.
    pub key: Option<PathBuf>,
}

fn explain_socket_error(path: &Path, e: &std::io::Error) -> anyhow::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "cannot reach tabbyd: socket {} not found. Is tabbyd running? (systemctl status tabbyd) \
             If it listens elsewhere, pass --api unix:PATH",
            path.display()
        ),
        std::io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied on socket {}: run tabbyctl as root, or join the group that owns the socket \
             (ls -l {})",
            path.display(),
            path.display()
        ),
        std::io::ErrorKind::ConnectionRefused => anyhow!(
            "socket {} exists but nothing listens on it: tabbyd is not running (the socket is stale). \
             Start tabbyd (systemctl start tabbyd)",
            path.display()
        ),
        _ => anyhow!("cannot connect to tabbyd at {}: {e}", path.display()),
    }
}

/// Connects, with a short timeout.
pub async fn connect(target: &ApiTarget, tls: &TlsFiles) -> Result<Channel> {
    match target {
        ApiTarget::Unix(path) => {
            // Connect once up front: its io::Error tells us exactly what is wrong.
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| explain_socket_error(path, &e))?;
            let path = path.clone();
            let ep = Endpoint::from_static("http://tabbyd.invalid")
                .connect_timeout(Duration::from_secs(3));
            let p2 = path.clone();
            ep.connect_with_connector(tower::service_fn(move |_: Uri| {
                let p = p2.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(p).await?))
                }
            }))
            .await
            .map_err(|e| anyhow!("cannot open a gRPC connection over {}: {e}", path.display()))
        }
        ApiTarget::Url(url) => {
            let mut ep = Endpoint::from_shared(url.clone())
                .with_context(|| format!("--api {url:?} is not a valid URL"))?
                .connect_timeout(Duration::from_secs(3));
            if url.starts_with("https://") {
                let mut c = ClientTlsConfig::new();
                if let Some(ca) = &tls.ca {
                    let pem = std::fs::read(ca)
                        .with_context(|| format!("cannot read --ca {}", ca.display()))?;
                    c = c.ca_certificate(Certificate::from_pem(pem));
                }
                match (&tls.cert, &tls.key) {
                    (Some(cert), Some(key)) => {
                        let cert = std::fs::read(cert)
                            .with_context(|| format!("cannot read --cert {}", cert.display()))?;
                        let key = std::fs::read(key)
                            .with_context(|| format!("cannot read --key {}", key.display()))?;
                        c = c.identity(Identity::from_pem(cert, key));
                    }
                    (None, None) => {}
                    _ => bail!("--cert and --key go together: give both or neither"),
                }
                ep = ep.tls_config(c).context("TLS configuration rejected")?;
            }
            ep.connect().await.map_err(|e| {
                anyhow!(
                    "cannot reach tabbyd at {url}: {e}{}. Is tabbyd running with its TCP API enabled on that address?",
                    source_chain(&e)
                )
            })
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Turns a gRPC status into an operator-facing error.
pub fn status_error(what: &str, s: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    let hint = match s.code() {
        Code::InvalidArgument => "",
        Code::NotFound => "",
        Code::Unavailable => " (tabbyd is shutting down or restarting; try again)",
        Code::Unimplemented => " (this tabbyd does not support that yet)",
        Code::DeadlineExceeded => " (tabbyd did not answer in time; check its logs)",
        Code::PermissionDenied | Code::Unauthenticated => " (check the client certificate)",
        _ => "",
    };
    anyhow!("{what} failed: {}{hint}", s.message())
}

/// The node's name from the daemon's effective configuration; `None` when
/// the daemon does not give one.
pub async fn node_name(ch: Channel) -> Option<String> {
    let r = tabby_proto::v1::daemon_client::DaemonClient::new(ch)
        .get_config(tabby_proto::v1::GetConfigRequest {})
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&r.into_inner().config_json).ok()?;
    v["node_name"].as_str().map(str::to_owned)
}
