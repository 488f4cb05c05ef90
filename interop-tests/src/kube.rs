//! A real Kubernetes API server in a lab namespace, for the Kubernetes
//! datastore: its own etcd, a throwaway CA and serving certificate made with
//! the `openssl` CLI, a static admin token and RBAC, so a daemon under test
//! can run as a real ServiceAccount with only the rights a Role gives it.
//!
//! `kube-apiserver` and `kubectl` (from `k8s.io/kubernetes`) and `etcd` (from
//! `go.etcd.io/etcd/server/v3`) are built by `scripts/lab-k8s.sh` into
//! `target/lab/k8s/bin` (see [`crate::Need::KubeApiServer`]).
//!
//! ```no_run
//! use interop_tests::*;
//! # fn main() -> anyhow::Result<()> {
//! preflight(&[Need::KubeApiServer])?;
//! let mut lab = Lab::new("kube")?;
//! let (api_ns, node) = (lab.ns("api")?, lab.ns("node")?);
//! let seg = lab.link(&api_ns, &node)?;
//! let api = lab.start_kube_apiserver(&api_ns, "kube", seg.v4(&api_ns)?.into())?;
//! api.kubectl(&["create", "configmap", "demo", "--from-literal=a=b"])?;
//! let token = api.service_account_token("default", "tabbyd")?;
//! let kubeconfig = api.kubeconfig_for_token("tabbyd", &token)?;
//! api.kubectl_as(&kubeconfig, &["auth", "can-i", "list", "configmaps"]).ok();
//! # Ok(()) }
//! ```

use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{self, CmdOutput};
use crate::daemon::{Control, Daemon, DaemonKind};
use crate::etcd::{Etcd, EtcdOpts};
use crate::lab::{Lab, Ns};
use crate::preflight;

/// The API server's port on its lab address.
pub const KUBE_API_PORT: u16 = 6443;
/// Service IPs come from the lab plan's 198.19.0.0/16 (never 10/8).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "198.19.255.0/24";
/// The ClusterIP of the `kubernetes` Service: the first of the range.
pub const KUBERNETES_SERVICE_IP: &str = "198.19.255.1";
/// The ServiceAccount token issuer (and default audience).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The etcd of an API server listens on loopback only, on ports of its own so
/// that a Calico etcd (2379) can share the namespace.
const ETCD_CLIENT_PORT: u16 = 12379;
const ETCD_PEER_PORT: u16 = 12380;
/// How long a (re)started API server gets to report `/readyz` ok; its first
/// start on two busy cores takes several seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Limit for one `kubectl` call (the API server's own limit is shorter).
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

/// `kube-apiserver` built by `scripts/lab-k8s.sh`.
pub fn kube_apiserver_bin() -> PathBuf {
    preflight::kube_bin_dir().join("kube-apiserver")
}

/// `kubectl` built by `scripts/lab-k8s.sh` (the same release as the server).
pub fn kubectl_bin() -> PathBuf {
    preflight::kube_bin_dir().join("kubectl")
}

/// The etcd built by `scripts/lab-k8s.sh` (the release Kubernetes pairs with:
/// Debian's etcd 3.4 lacks RequestWatchProgress, so the API server would
/// refuse streaming lists and never serve consistent lists from its cache).
pub fn kube_etcd_bin() -> PathBuf {
    preflight::kube_bin_dir().join("etcd")
}

/// A running Kubernetes API server (and its etcd) in a lab namespace.
#[derive(Debug, Clone)]
pub struct KubeApi {
    /// The lab label of the `kube-apiserver` process (for [`Lab::stop`] etc.).
    pub label: String,
    pub ns: Ns,
    /// The lab address it serves on (port [`KUBE_API_PORT`]).
    pub addr: IpAddr,
    /// `https://ADDR:6443`.
    pub server: String,
    /// Its etcd (label `<label>-etcd`, loopback only). Stays up when the API
    /// server is stopped.
    pub etcd: Etcd,
    /// Certificates, keys, token file and kubeconfigs: `<lab>/<label>.kube/`.
    pub dir: PathBuf,
    /// The CA that signed the serving certificate (trust it to reach the server).
    pub ca_cert: PathBuf,
    /// The ServiceAccount token signing key pair.
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
    /// A static token of user `lab-admin` in group `system:masters`.
    pub admin_token: String,
    /// A kubeconfig of `lab-admin` (used by [`KubeApi::kubectl`]).
    pub admin_kubeconfig: PathBuf,
    /// kubectl's discovery and HTTP cache: per server, never `~/.kube/cache`,
    /// where another run at the same address would leave stale discovery.
    cache_dir: PathBuf,
}

fn https_url(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("https://{a}:{port}"),
        IpAddr::V6(a) => format!("https://[{a}]:{port}"),
    }
}

/// A random hex string of `bytes` bytes from the kernel's generator.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A kubeconfig for one identity (a bearer token) at `server`.
pub fn render_kubeconfig(server: &str, ca_cert: &Path, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: lab
  context:
    cluster: lab
    user: {user}
    namespace: default
current-context: lab
",
        ca = ca_cert.display(),
    )
}

/// The subjectAltName of the serving certificate: the lab address, loopback,
/// the `kubernetes` Service IP and its DNS names.
fn serving_sans(addr: IpAddr) -> String {
    let mut sans = vec![format!("IP:{addr}")];
    for ip in ["127.0.0.1", KUBERNETES_SERVICE_IP] {
        if ip != addr.to_string() {
            sans.push(format!("IP:{ip}"));
        }
    }
    for dns in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        sans.push(format!("DNS:{dns}"));
    }
    sans.join(",")
}

fn openssl(args: &[&str]) -> Result<()> {
    cmd::run_ok("openssl", args, cmd::CMD_TIMEOUT)
        .with_context(|| format!("making the lab PKI: openssl {}", args.join(" ")))?;
    Ok(())
}

/// Makes the CA, the serving certificate for `addr` and the ServiceAccount
/// signing key pair in `dir` (P-256 keys: quick to make on a busy machine).
/// The configurations are our own, so the machine's openssl.cnf plays no part.
fn make_pki(dir: &Path, addr: IpAddr) -> Result<()> {
    let p = |f: &str| dir.join(f).display().to_string();
    std::fs::write(
        p("ca.cnf"),
        "[req]
distinguished_name = dn
prompt = no
[dn]
CN = tabby-lab-kubernetes-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
",
    )?;
    std::fs::write(
        p("server.cnf"),
        format!(
            "[req]
distinguished_name = dn
prompt = no
[dn]
CN = kube-apiserver
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {sans}
",
            sans = serving_sans(addr)
        ),
    )?;
    for key in ["ca.key", "server.key", "sa.key"] {
        let out = p(key);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &out,
        ])?;
    }
    let (ca_key, ca_crt, ca_cnf) = (p("ca.key"), p("ca.crt"), p("ca.cnf"));
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        &ca_key,
        "-config",
        &ca_cnf,
        "-extensions",
        "v3_ca",
        "-days",
        "3650",
        "-out",
        &ca_crt,
    ])?;
    let (srv_key, srv_csr, srv_crt, srv_cnf) = (
        p("server.key"),
        p("server.csr"),
        p("server.crt"),
        p("server.cnf"),
    );
    openssl(&[
        "req", "-new", "-key", &srv_key, "-config", &srv_cnf, "-out", &srv_csr,
    ])?;
    let serial = format!("0x{}", random_hex(16)?);
    openssl(&[
        "x509",
        "-req",
        "-in",
        &srv_csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-set_serial",
        &serial,
        "-days",
        "3650",
        "-extfile",
        &srv_cnf,
        "-extensions",
        "v3_server",
        "-out",
        &srv_crt,
    ])?;
    let (sa_key, sa_pub) = (p("sa.key"), p("sa.pub"));
    openssl(&["pkey", "-in", &sa_key, "-pubout", "-out", &sa_pub])?;
    Ok(())
}

/// The `kube-apiserver` command line. Quiet (`-v=0`), RBAC (and the Node
/// authorizer), a static admin token, ServiceAccount tokens signed with our
/// key, Services from [`SERVICE_CLUSTER_IP_RANGE`].
fn apiserver_args(dir: &Path, addr: IpAddr, etcd: &str) -> Vec<String> {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut a = vec![
        format!("--etcd-servers={etcd}"),
        format!("--bind-address={addr}"),
        format!("--secure-port={KUBE_API_PORT}"),
        format!("--tls-cert-file={}", p("server.crt")),
        format!("--tls-private-key-file={}", p("server.key")),
        format!("--client-ca-file={}", p("ca.crt")),
        format!("--cert-dir={}", p("certs")),
        format!("--token-auth-file={}", p("tokens.csv")),
        "--authorization-mode=Node,RBAC".into(),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        format!("--service-account-key-file={}", p("sa.pub")),
        format!("--service-account-signing-key-file={}", p("sa.key")),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--allow-privileged=false".into(),
        "--profiling=false".into(),
        "--logging-format=text".into(),
        "-v=0".into(),
    ];
    // The `kubernetes` Service's endpoints: the lab address. The endpoint
    // reconciler refuses a loopback address, so a loopback server keeps none.
    a.push(format!("--advertise-address={addr}"));
    if addr.is_loopback() {
        a.push("--endpoint-reconciler-type=none".into());
    }
    a
}

impl Lab {
    /// Starts a Kubernetes API server in `ns` on `addr:6443` (a lab address
    /// from 198.18.0.0/16, or loopback), with its own etcd (label
    /// `<label>-etcd`, `127.0.0.1:12379`, the etcd that `scripts/lab-k8s.sh`
    /// builds), and waits until `/readyz` is ok.
    /// Certificates, keys, tokens and kubeconfigs go to `<lab>/<label>.kube/`,
    /// the server's log to `<label>.log`.
    pub fn start_kube_apiserver(&mut self, ns: &Ns, label: &str, addr: IpAddr) -> Result<KubeApi> {
        for bin in [kube_apiserver_bin(), kubectl_bin(), kube_etcd_bin()] {
            if !bin.is_file() {
                bail!(
                    "{} is missing: run scripts/lab-k8s.sh (it builds kube-apiserver, kubectl and etcd)",
                    bin.display()
                );
            }
        }
        let dir = self.path(&format!("{label}.kube"));
        std::fs::create_dir_all(dir.join("certs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        make_pki(&dir, addr).context("making the lab Kubernetes PKI")?;

        let admin_token = random_hex(24)?;
        std::fs::write(
            dir.join("tokens.csv"),
            format!("{admin_token},lab-admin,lab-admin-uid,\"system:masters\"\n"),
        )?;
        let server = https_url(addr, KUBE_API_PORT);
        let ca_cert = dir.join("ca.crt");
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &admin_kubeconfig,
            render_kubeconfig(&server, &ca_cert, "lab-admin", &admin_token),
        )?;
        let cache_dir = dir.join("kubectl-cache");

        let etcd_opts = EtcdOpts {
            program: kube_etcd_bin(),
            client_port: ETCD_CLIENT_PORT,
            peer_port: ETCD_PEER_PORT,
        };
        let loopback = IpAddr::from([127, 0, 0, 1]);
        let etcd = self.start_etcd_with(ns, &format!("{label}-etcd"), loopback, &etcd_opts)?;

        let daemon = Daemon {
            kind: DaemonKind::KubeApiServer,
            program: kube_apiserver_bin(),
            args: apiserver_args(&dir, addr, &etcd.endpoint),
            env: vec![],
            control: Control::Kube {
                kubectl: kubectl_bin(),
                kubeconfig: admin_kubeconfig.clone(),
                cache_dir: cache_dir.clone(),
            },
        };
        self.start(ns, label, daemon)?;
        let api = KubeApi {
            label: label.to_string(),
            ns: ns.clone(),
            addr,
            server,
            etcd,
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
            dir,
            ca_cert,
            admin_token,
            admin_kubeconfig,
            cache_dir,
        };
        api.wait_ready(self, READY_TIMEOUT)?;
        Ok(api)
    }
}

impl KubeApi {
    /// Runs `kubectl --kubeconfig KUBECONFIG args…` inside the server's
    /// namespace and returns what it printed, whatever its exit code.
    pub fn kubectl_output(
        &self,
        kubeconfig: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CmdOutput> {
        let k = kubectl_bin().display().to_string();
        let c = format!("--kubeconfig={}", kubeconfig.display());
        let d = format!("--cache-dir={}", self.cache_dir.display());
        let mut full = vec![
            "netns",
            "exec",
            self.ns.name.as_str(),
            &k,
            &c,
            &d,
            "--request-timeout=20s",
        ];
        full.extend_from_slice(args);
        match stdin {
            Some(input) => cmd::run_input("ip", &full, input, KUBECTL_TIMEOUT),
            None => cmd::run("ip", &full, KUBECTL_TIMEOUT),
        }
    }

    fn checked(out: CmdOutput, args: &[&str]) -> Result<String> {
        if !out.status.success() {
            bail!(
                "`kubectl {}` failed ({}): {}",
                args.join(" "),
                out.status,
                cmd::first_lines(&format!("{}{}", out.stderr, out.stdout), 6)
            );
        }
        Ok(out.stdout)
    }

    /// Runs `kubectl args…` as the admin; a non-zero exit is an error that
    /// quotes kubectl's stderr (e.g. `Error from server (Forbidden): …`).
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_as(&self.admin_kubeconfig, args)
    }

    /// [`KubeApi::kubectl`] with `input` on kubectl's stdin (`apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let out = self.kubectl_output(&self.admin_kubeconfig, args, Some(input))?;
        Self::checked(out, args)
    }

    /// [`KubeApi::kubectl`] as another identity (a kubeconfig from
    /// [`KubeApi::kubeconfig_for_token`]).
    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Result<String> {
        let out = self.kubectl_output(kubeconfig, args, None)?;
        Self::checked(out, args)
    }

    /// `kubectl apply -f -` of `yaml` as the admin.
    pub fn apply(&self, yaml: &str) -> Result<String> {
        self.kubectl_stdin(&["apply", "-f", "-"], yaml)
    }

    /// Creates ServiceAccount `name` in `namespace` (if missing; the
    /// namespace must exist) and returns a fresh token for it (`kubectl
    /// create token`, valid 24 h). It has no rights until a Role grants some.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        self.apply(&format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        ))?;
        let token = self.kubectl(&[
            "create",
            "token",
            name,
            "--namespace",
            namespace,
            "--duration=24h",
        ])?;
        let token = token.trim().to_string();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("kubectl create token {name} printed no token: {token:?}");
        }
        Ok(token)
    }

    /// Writes a kubeconfig that authenticates with `token` as user `user`
    /// (the name only labels it) and returns its path: `<dir>/<user>.kubeconfig`.
    pub fn kubeconfig_for_token(&self, user: &str, token: &str) -> Result<PathBuf> {
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            bail!("kubeconfig user name {user:?}: use letters, digits, '-', '_' or '.'");
        }
        let path = self.dir.join(format!("{user}.kubeconfig"));
        std::fs::write(
            &path,
            render_kubeconfig(&self.server, &self.ca_cert, user, token),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// Waits until every CustomResourceDefinition is Established (served).
    pub fn wait_crds(&self) -> Result<()> {
        self.kubectl(&[
            "wait",
            "--for=condition=established",
            "--timeout=60s",
            "crd",
            "--all",
        ])?;
        Ok(())
    }

    /// Applies `deploy/tabby-node.yaml` (namespace, ServiceAccount, RBAC,
    /// DaemonSet) and returns a kubeconfig of its ServiceAccount
    /// `tabby-system/tabby-node`: a tabbyd run with it has exactly the rights
    /// the deployment gives.
    pub fn install_tabby_node(&self) -> Result<PathBuf> {
        let manifest = preflight::workspace_root().join("deploy/tabby-node.yaml");
        self.kubectl(&["apply", "-f", &manifest.display().to_string()])?;
        let token = self.service_account_token("tabby-system", "tabby-node")?;
        self.kubeconfig_for_token("tabby-node", &token)
    }

    /// Our CRDs (`deploy/crds/`), then [`KubeApi::install_tabby_node`].
    pub fn install_tabby(&self) -> Result<PathBuf> {
        let crds = preflight::workspace_root().join("deploy/crds");
        self.kubectl(&["apply", "-f", &crds.display().to_string()])?;
        self.wait_crds()?;
        self.install_tabby_node()
    }

    pub fn is_ready(&self) -> bool {
        self.kubectl_output(
            &self.admin_kubeconfig,
            &["--request-timeout=2s", "get", "--raw", "/readyz"],
            None,
        )
        .map(|o| o.status.success() && o.stdout.trim() == "ok")
        .unwrap_or(false)
    }

    /// Waits until `/readyz` is ok, failing early (with its log) if the
    /// server exits.
    pub fn wait_ready(&self, lab: &mut Lab, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            lab.check_alive(&self.label)?;
            if self.is_ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = cmd::tail_file(&lab.log_path(&self.label)?, 20);
                bail!(
                    "kube-apiserver {} not ready within {timeout:?}; its log ends:\n{log}",
                    self.label
                );
            }
            // Each probe is a kubectl process: do not crowd a starting server.
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the API server alone (SIGTERM, then SIGKILL); etcd stays up.
    pub fn stop(&self, lab: &mut Lab) -> Result<()> {
        lab.stop(&self.label)
    }

    /// Kills the API server alone with SIGKILL (a crash); etcd stays up.
    pub fn kill9(&self, lab: &mut Lab) -> Result<()> {
        lab.kill9(&self.label)
    }

    /// Starts the API server again with the same flags, certificates and
    /// tokens (stopping it first if it runs) and waits for `/readyz`.
    /// ServiceAccount tokens issued before stay valid. Returns the new pid.
    pub fn restart(&self, lab: &mut Lab) -> Result<u32> {
        let pid = lab.restart(&self.label)?;
        self.wait_ready(lab, READY_TIMEOUT)?;
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_cover_the_lab_address_loopback_and_the_service() {
        let s = serving_sans("198.18.1.1".parse().unwrap());
        assert!(s.starts_with("IP:198.18.1.1,IP:127.0.0.1,IP:198.19.255.1,"));
        assert!(s.contains("DNS:kubernetes.default.svc"));
        let l = serving_sans("127.0.0.1".parse().unwrap());
        assert_eq!(l.matches("IP:127.0.0.1").count(), 1);
        let v6 = serving_sans("2001:db8:0:1::1".parse().unwrap());
        assert!(v6.starts_with("IP:2001:db8:0:1::1,"));
    }

    #[test]
    fn kubeconfig_names_server_ca_and_token() {
        let k = render_kubeconfig(
            "https://198.18.1.1:6443",
            Path::new("/l/ca.crt"),
            "tabbyd",
            "tok",
        );
        assert!(k.contains("server: https://198.18.1.1:6443\n"));
        assert!(k.contains("certificate-authority: /l/ca.crt\n"));
        assert!(k.contains("- name: tabbyd\n  user:\n    token: tok\n"));
        assert_eq!(
            https_url("2001:db8::1".parse().unwrap(), 6443),
            "https://[2001:db8::1]:6443"
        );
    }

    #[test]
    fn service_range_is_in_the_lab_plan() {
        let r: ipnet::Ipv4Net = SERVICE_CLUSTER_IP_RANGE.parse().unwrap();
        let plan: ipnet::Ipv4Net = "198.19.0.0/16".parse().unwrap();
        assert!(plan.contains(&r));
        assert!(r.contains(&KUBERNETES_SERVICE_IP.parse::<std::net::Ipv4Addr>().unwrap()));
        let args = apiserver_args(Path::new("/d"), "198.18.1.1".parse().unwrap(), "http://e");
        assert!(args.contains(&"--service-cluster-ip-range=198.19.255.0/24".to_string()));
        assert!(args.contains(&"--advertise-address=198.18.1.1".to_string()));
        assert!(args.contains(&"--authorization-mode=Node,RBAC".to_string()));
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--endpoint-reconciler-type"))
        );
        let lo = apiserver_args(Path::new("/d"), "127.0.0.1".parse().unwrap(), "http://e");
        assert!(lo.contains(&"--endpoint-reconciler-type=none".to_string()));
    }
}
