//! The TCP listener with TLS and client-certificate verification, used
//! through tabbyctl's https:// target. Certificates come from the openssl
//! CLI into a temp dir.

#[path = "../../api/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestCore, TestServer};
use tabby_api::{TcpListen, TlsConfig};

fn openssl(dir: &Path, args: &[&str]) {
    assert!(
        Path::new("/usr/bin/openssl").exists(),
        "openssl CLI missing: apt-get install openssl"
    );
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl ran");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA, server cert for 127.0.0.1, client cert; all P-256.
fn make_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=tabby-test-ca",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("srv.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    std::fs::write(dir.join("cli.ext"), "extendedKeyUsage=clientAuth\n").expect("ext");
    for (name, ext) in [("srv", "srv.ext"), ("cli", "cli.ext")] {
        openssl(
            dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "1",
                "-extfile",
                ext,
            ],
        );
    }
    (
        dir.join("ca.pem"),
        dir.join("srv.pem"),
        dir.join("srv.key"),
        dir.join("cli.pem"),
        dir.join("cli.key"),
    )
}

async fn tabbyctl(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
        .args(args)
        .env_remove("TABBY_API")
        .kill_on_drop(true)
        .output()
        .await
        .expect("tabbyctl ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates() {
    let pki = tempfile::tempdir().expect("dir");
    let (ca, srv_cert, srv_key, cli_cert, cli_key) = make_pki(pki.path());
    let srv = TestServer::start_with(TestCore::new(), |c| {
        c.tcp = Some(TcpListen {
            addr: "127.0.0.1:0".parse().expect("addr"),
            tls: Some(TlsConfig {
                cert_pem: srv_cert.clone(),
                key_pem: srv_key.clone(),
                client_ca_pem: Some(ca.clone()),
            }),
        });
    })
    .await;
    let url = format!(
        "https://127.0.0.1:{}",
        srv.tcp.expect("tcp listener").port()
    );
    let s = |p: &PathBuf| p.display().to_string();

    let (code, out, err) = tabbyctl(&[
        "--api",
        &url,
        "--ca",
        &s(&ca),
        "--cert",
        &s(&cli_cert),
        "--key",
        &s(&cli_key),
        "status",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("router id 198.18.0.1"), "{out}");

    // No client certificate: refused.
    let (code, out, err) = tabbyctl(&["--api", &url, "--ca", &s(&ca), "status"]).await;
    assert_ne!(
        code, 0,
        "a client without a certificate must be refused: {out}"
    );
    assert!(err.contains("failed") || err.contains("cannot"), "{err}");

    // Plaintext to a TLS port: refused.
    let plain = url.replace("https://", "http://");
    let (code, _, _) = tabbyctl(&["--api", &plain, "status"]).await;
    assert_ne!(code, 0);
    srv.shutdown().await;
}
