//! Proves the lab's Kubernetes API server: a real `kube-apiserver` (built by
//! `scripts/lab-k8s.sh`) on a lab address, with its own etcd, serves a
//! CustomResourceDefinition of ours and an object of it, and enforces RBAC on
//! a ServiceAccount token: a Role that allows only `get` lets the token read
//! one object but not list them. Watches (also streaming lists) work, and
//! the API server alone can be stopped and restarted.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use interop_tests::*;

const CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.lab.tabby.test
spec:
  group: lab.tabby.test
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cidr:
                type: string
              asNumber:
                type: integer
              peers:
                type: array
                items:
                  type: string
";

const WIDGET: &str = "\
apiVersion: lab.tabby.test/v1
kind: Widget
metadata:
  name: w1
  namespace: lab
spec:
  cidr: 198.19.7.0/24
  asNumber: 64512
  peers: [198.18.1.1, 198.18.1.2]
";

/// A Role that allows only `get` on widgets, bound to ServiceAccount `reader`.
const READER_RBAC: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: widget-getter
  namespace: lab
rules:
- apiGroups: [lab.tabby.test]
  resources: [widgets]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader-gets-widgets
  namespace: lab
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: widget-getter
subjects:
- kind: ServiceAccount
  name: reader
  namespace: lab
";

/// The events of a watch that the server ends after its `timeoutSeconds`.
fn watch_events(api: &KubeApi, path: &str) -> Result<Vec<serde_json::Value>> {
    let out = api.kubectl(&["get", "--raw", path])?;
    serde_json::Deserializer::from_str(&out)
        .into_iter::<serde_json::Value>()
        .map(|v| v.with_context(|| format!("watch output {out:?}")))
        .collect()
}

#[test]
fn crd_object_and_service_account_rbac() -> Result<()> {
    if let Err(e) = preflight(&[Need::KubeApiServer]) {
        panic!("{e}");
    }
    let started = Instant::now();
    let mut lab = Lab::new("kubeapi")?;
    let api_ns = lab.ns("kube-api")?;
    let client = lab.ns("client")?;
    let seg = lab.link(&api_ns, &client)?;
    let addr = seg.v4(&api_ns)?;
    let api = lab.start_kube_apiserver(&api_ns, "kube-apiserver", addr.into())?;
    assert_eq!(api.server, format!("https://{addr}:6443"));
    eprintln!("kube-apiserver ready after {:?}", started.elapsed());

    let version = api.kubectl(&["version", "-o", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&version)?;
    let server_version = v["serverVersion"]["gitVersion"].as_str().unwrap_or("?");
    ensure!(
        server_version.starts_with("v1."),
        "unexpected server version {server_version} in {version}"
    );

    // Our own CRD, established, then an object of it.
    api.apply(CRD)?;
    api.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.lab.tabby.test",
        "--timeout=30s",
    ])?;
    api.kubectl(&["create", "namespace", "lab"])?;
    api.apply(WIDGET)?;
    let got: serde_json::Value = serde_json::from_str(&api.kubectl(&[
        "get",
        "widgets.lab.tabby.test",
        "w1",
        "-n",
        "lab",
        "-o",
        "json",
    ])?)?;
    assert_eq!(got["spec"]["cidr"], "198.19.7.0/24");
    assert_eq!(got["spec"]["asNumber"], 64512);
    assert_eq!(
        got["spec"]["peers"],
        serde_json::json!(["198.18.1.1", "198.18.1.2"])
    );
    assert_eq!(got["metadata"]["namespace"], "lab");
    let listed = api.kubectl(&["get", "widgets", "-n", "lab", "-o", "name"])?;
    assert_eq!(listed.trim(), "widget.lab.tabby.test/w1");

    // Watches: from the list's resourceVersion (the watch cache replays the
    // change), and a streaming list (sendInitialEvents), which needs an etcd
    // with RequestWatchProgress (not Debian's 3.4).
    let list: serde_json::Value = serde_json::from_str(&api.kubectl(&[
        "get",
        "--raw",
        "/apis/lab.tabby.test/v1/namespaces/lab/widgets",
    ])?)?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        !rv.trim().is_empty(),
        "the widget list has no resourceVersion"
    );
    api.kubectl(&[
        "patch",
        "widget",
        "w1",
        "-n",
        "lab",
        "--type=merge",
        "-p",
        r#"{"spec":{"asNumber":64513}}"#,
    ])?;
    let base = "/apis/lab.tabby.test/v1/namespaces/lab/widgets?watch=1&timeoutSeconds=1";
    let events = watch_events(&api, &format!("{base}&resourceVersion={}", rv.trim()))?;
    ensure!(
        events.len() == 1
            && events[0]["type"] == "MODIFIED"
            && events[0]["object"]["spec"]["asNumber"] == 64513,
        "watch from {rv}: {events:?}"
    );
    let events = watch_events(
        &api,
        &format!(
            "{base}&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true"
        ),
    )?;
    ensure!(
        events.len() == 2
            && events[0]["type"] == "ADDED"
            && events[0]["object"]["metadata"]["name"] == "w1"
            && events[1]["type"] == "BOOKMARK"
            && events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"]
                == "true",
        "streaming list: {events:?}"
    );

    // A ServiceAccount that may only `get` widgets.
    api.apply(READER_RBAC)?;
    let token = api.service_account_token("lab", "reader")?;
    let reader = api.kubeconfig_for_token("reader", &token)?;
    // RBAC is enforced as soon as the binding is stored, but allow the
    // authorizer's informer a moment to see it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let name = loop {
        match api.kubectl_as(&reader, &["get", "widget", "w1", "-n", "lab", "-o", "name"]) {
            Ok(out) => break out,
            Err(e) if Instant::now() < deadline && e.to_string().contains("Forbidden") => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e).context("the reader's get"),
        }
    };
    assert_eq!(name.trim(), "widget.lab.tabby.test/w1");
    let whoami = api.kubectl_as(
        &reader,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )?;
    assert_eq!(whoami.trim(), "system:serviceaccount:lab:reader");
    // The same token works from another namespace over the lab link (the
    // serving certificate names the lab address).
    let from_client = lab.exec(
        &client,
        &[
            &interop_tests::kube::kubectl_bin().display().to_string(),
            &format!("--kubeconfig={}", reader.display()),
            "--cache-dir",
            &lab.path("client-kube-cache").display().to_string(),
            "get",
            "widget",
            "w1",
            "-n",
            "lab",
            "-o",
            "jsonpath={.spec.asNumber}",
        ],
    )?;
    assert_eq!(from_client.trim(), "64513");
    match api.kubectl_as(&reader, &["get", "widgets", "-n", "lab"]) {
        Ok(out) => bail!("the reader could list widgets: {out}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("Error from server (Forbidden)")
                    && msg.contains("system:serviceaccount:lab:reader")
                    && msg.contains("cannot list resource \"widgets\""),
                "unexpected error: {msg}"
            );
        }
    }
    // Nor may it read what no Role granted.
    let e = api
        .kubectl_as(&reader, &["get", "configmaps", "-n", "lab"])
        .expect_err("the reader listed configmaps");
    assert!(e.to_string().contains("Forbidden"), "{e}");
    // A token the server never issued is refused.
    let bogus = api.kubeconfig_for_token("bogus", "not-a-token")?;
    let e = api
        .kubectl_as(&bogus, &["get", "namespaces"])
        .expect_err("a bogus token was accepted");
    assert!(e.to_string().contains("Unauthorized"), "{e}");

    // The API server alone goes down and comes back; etcd, the objects and
    // the issued token survive.
    api.stop(&mut lab)?;
    ensure!(!api.is_ready(), "the API server still answers after stop");
    api.etcd.ctl(&["endpoint", "health"])?;
    api.restart(&mut lab)?;
    let n = api.kubectl_as(
        &reader,
        &[
            "get",
            "widget",
            "w1",
            "-n",
            "lab",
            "-o",
            "jsonpath={.spec.asNumber}",
        ],
    )?;
    assert_eq!(n.trim(), "64513");

    eprintln!("kube_apiserver_lab took {:?}", started.elapsed());
    Ok(())
}

/// On loopback (no `kubernetes` Service endpoints: the reconciler refuses a
/// loopback address) the server starts and serves as well.
#[test]
fn loopback_server() -> Result<()> {
    if let Err(e) = preflight(&[Need::KubeApiServer]) {
        panic!("{e}");
    }
    let mut lab = Lab::new("kubelo")?;
    let ns = lab.ns("kube-api")?;
    let api = lab.start_kube_apiserver(&ns, "kube-apiserver", "127.0.0.1".parse()?)?;
    assert_eq!(api.server, "https://127.0.0.1:6443");
    api.kubectl(&["create", "configmap", "c1", "--from-literal=k=v"])?;
    let v = api.kubectl(&["get", "configmap", "c1", "-o", "jsonpath={.data.k}"])?;
    assert_eq!(v, "v");
    Ok(())
}
