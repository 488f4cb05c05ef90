//! What a lab test needs before it starts, checked up front so a missing
//! package fails with one line that says what to install.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Root: namespaces, veths, raw kernel routes.
    Root,
    /// BIRD 2 (`bird`, `birdc`, Debian `bird2`).
    Bird2,
    /// BIRD 1.6 unpacked beside BIRD 2 by `scripts/install-deps.sh`.
    Bird1,
    /// `gobgpd` and `gobgp` (Debian `gobgpd`).
    GoBgp,
    /// FRR's `bgpd` and `vtysh` (Debian `frr`).
    Frr,
    /// ExaBGP (Debian `exabgp`).
    ExaBgp,
    /// `etcd` and `etcdctl` (Debian `etcd-server`, `etcd-client`).
    Etcd,
    /// `tcpdump` for captures.
    Tcpdump,
    /// pmacct's BMP station `pmbmpd` (Debian `pmacct`).
    Pmbmpd,
    /// `kube-apiserver`, `kubectl` and the `etcd` it stores in, built by
    /// `scripts/lab-k8s.sh` into `target/lab/k8s/bin`; `etcdctl` and
    /// `openssl` (the lab's certificates).
    KubeApiServer,
}

/// Root of the workspace (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// The GoBGP 4 CLI that `scripts/lab-gobgp.sh` builds (v4 gRPC API); an
/// error saying to run that script when it is missing.
pub fn gobgp4_cli() -> Result<PathBuf, String> {
    let p = workspace_root().join("target/lab/gobgp4/bin/gobgp");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "GoBGP 4 CLI missing at {}: run `bash scripts/lab-gobgp.sh`",
            p.display()
        ))
    }
}

/// Where BIRD 1.6 is unpacked: `$TABBY_BIRD1_DIR` or `<workspace>/target/lab/bird1`.
pub fn bird1_dir() -> PathBuf {
    std::env::var_os("TABBY_BIRD1_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/lab/bird1"))
}

/// BIRD 1.6's IPv4 daemon (1.6 ships `bird` for IPv4 and `bird6` for IPv6).
pub fn bird1_bin(v6: bool) -> PathBuf {
    bird1_dir().join(if v6 {
        "usr/sbin/bird6"
    } else {
        "usr/sbin/bird"
    })
}

/// BIRD 1.6's client (`birdc` / `birdc6`).
pub fn bird1_birdc(v6: bool) -> PathBuf {
    bird1_dir().join(if v6 {
        "usr/sbin/birdc6"
    } else {
        "usr/sbin/birdc"
    })
}

/// Where `scripts/lab-k8s.sh` puts `kube-apiserver`, `kubectl` and `etcd`:
/// `$TABBY_K8S_BIN_DIR` or `<workspace>/target/lab/k8s/bin`.
pub fn kube_bin_dir() -> PathBuf {
    std::env::var_os("TABBY_K8S_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/lab/k8s/bin"))
}

fn on_path(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

fn bird_is_2() -> bool {
    crate::cmd::run("bird", &["--version"], crate::cmd::CMD_TIMEOUT)
        .map(|o| format!("{}{}", o.stdout, o.stderr).contains("version 2."))
        .unwrap_or(false)
}

/// Returns the packages missing for `need`, as `what (how)` strings.
fn missing(need: Need) -> Vec<String> {
    let pkg = |bins: &[&str], what: &str| -> Vec<String> {
        if bins.iter().all(|b| on_path(b)) {
            vec![]
        } else {
            vec![what.to_string()]
        }
    };
    match need {
        Need::Root => {
            if crate::procfs::euid() == Some(0) {
                vec![]
            } else {
                vec!["root".into()]
            }
        }
        Need::Bird2 => {
            if on_path("bird") && on_path("birdc") && bird_is_2() {
                vec![]
            } else {
                vec!["BIRD 2 (apt-get install bird2)".into()]
            }
        }
        Need::Bird1 => {
            if bird1_bin(false).is_file() && bird1_birdc(false).is_file() {
                vec![]
            } else {
                vec![format!(
                    "BIRD 1.6 at {} (unpacked beside BIRD 2)",
                    bird1_bin(false).display()
                )]
            }
        }
        Need::GoBgp => pkg(&["gobgpd", "gobgp"], "GoBGP (apt-get install gobgpd)"),
        Need::Frr => pkg(&["/usr/lib/frr/bgpd", "vtysh"], "FRR (apt-get install frr)"),
        Need::ExaBgp => pkg(&["exabgp"], "ExaBGP (apt-get install exabgp)"),
        Need::Tcpdump => pkg(&["tcpdump"], "tcpdump (apt-get install tcpdump)"),
        Need::Pmbmpd => pkg(&["pmbmpd"], "pmacct's pmbmpd (apt-get install pmacct)"),
        Need::Etcd => pkg(
            &["etcd", "etcdctl"],
            "etcd (apt-get install etcd-server etcd-client)",
        ),
        Need::KubeApiServer => {
            let dir = kube_bin_dir();
            let mut m = vec![];
            if ["kube-apiserver", "kubectl", "etcd"]
                .iter()
                .any(|b| !dir.join(b).is_file())
            {
                m.push(format!(
                    "kube-apiserver, kubectl and etcd in {} (run scripts/lab-k8s.sh)",
                    dir.display()
                ));
            }
            // The health probe of its etcd.
            m.extend(pkg(&["etcdctl"], "etcdctl (apt-get install etcd-client)"));
            m.extend(pkg(&["openssl"], "openssl (apt-get install openssl)"));
            m
        }
    }
}

/// Checks root, `ip` and every listed need; the error is one line naming all
/// that is missing and the command that installs it.
pub fn preflight(needs: &[Need]) -> Result<()> {
    let mut miss: Vec<String> = Vec::new();
    if !on_path("ip") {
        miss.push("iproute2 (apt-get install iproute2)".into());
    }
    for &n in needs {
        for m in missing(n) {
            if !miss.contains(&m) {
                miss.push(m);
            }
        }
    }
    let mut problems = Vec::new();
    if !missing(Need::Root).is_empty() {
        problems.push("it needs root (it creates network namespaces)".to_string());
    }
    if !miss.is_empty() {
        problems.push(format!(
            "missing {} (as root, `bash scripts/install-deps.sh` installs everything)",
            miss.join(", ")
        ));
    }
    if !problems.is_empty() {
        bail!("lab test cannot run: {}", problems.join("; "));
    }
    Ok(())
}
