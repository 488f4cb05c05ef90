//! The manifests under `deploy/` against a real Kubernetes API server (the
//! lab's, built by `scripts/lab-k8s.sh`):
//!
//! - Tabby's CRDs (`deploy/crds/`) become Established with structural
//!   schemas, take one valid object of each kind (a BlockAffinity's
//!   `deleted` as the string "false", as in `crd.projectcalico.org/v1`) and
//!   refuse ill-typed ones; CalicoNodeStatus has a status subresource.
//! - Every other manifest passes a server-side dry run; the calico-node
//!   patch is no object (a stray `kubectl apply -f deploy/` cannot take it)
//!   and turns BIRD off in a stand-in calico-node DaemonSet, whichever way
//!   that DaemonSet sets the backend.
//! - `tabby-node.yaml` applied for real: its ServiceAccount can do exactly
//!   what tabbyd does (list and watch nodes and Calico's resources in both
//!   API groups, update CalicoNodeStatus and its status, read the one BGP
//!   password Secret by name) and nothing else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use interop_tests::*;
use serde_json::Value;

const NAMESPACE: &str = "tabby-system";
const NODE_SA: &str = "system:serviceaccount:tabby-system:tabby-node";
const RR_SA: &str = "system:serviceaccount:tabby-system:tabby-route-reflector";
/// The file that is a patch, not an object.
const BIRD_OFF: &str = "calico-node-bird-off.yaml";

/// The kinds of `deploy/crds/`, by plural.
const CRDS: [(&str, &str); 7] = [
    ("bgpconfigurations", "BGPConfiguration"),
    ("bgpfilters", "BGPFilter"),
    ("bgppeers", "BGPPeer"),
    ("blockaffinities", "BlockAffinity"),
    ("caliconodestatuses", "CalicoNodeStatus"),
    ("ipamblocks", "IPAMBlock"),
    ("ippools", "IPPool"),
];

/// One valid object of each kind, using most spec fields, with lab
/// addresses (peering 198.18.0.0/16, pods and services 100.64.0.0/10,
/// 198.19.0.0/16, 2001:db8:1000::/36).
const EXAMPLES: &str = r#"
apiVersion: crd.projectcalico.org/v1
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: false
  asNumber: 64512
  listenPort: 179
  bindMode: NodeIP
  serviceClusterIPs:
  - cidr: 198.19.255.0/24
  serviceExternalIPs:
  - cidr: 198.19.254.0/24
  serviceLoadBalancerIPs:
  - cidr: 198.19.253.0/24
  serviceLoadBalancerAggregation: Enabled
  communities:
  - name: lab-pods
    value: "64512:100"
  - name: lab-large
    value: "64512:1:2"
  prefixAdvertisements:
  - cidr: 100.64.0.0/16
    communities: [lab-pods, "64512:200"]
  nodeMeshPassword:
    secretKeyRef:
      name: bgp-passwords
      key: mesh
  nodeMeshMaxRestartTime: 120s
  nodeMeshKeepaliveTime: 20s
  keepaliveTime: 30s
  ignoredInterfaces: [kube-ipvs0, "veth*"]
  localWorkloadPeeringIPV4: 198.18.255.254
  localWorkloadPeeringIPV6: 2001:db8:0:ffff::fe
  programClusterRoutes: Enabled
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata:
  name: tor-a
spec:
  nodeSelector: rack == 'a'
  peerIP: 198.18.0.1
  asNumber: 65001
  localASNumber: 64513
  keepOriginalNextHop: false
  nextHopMode: Self
  password:
    secretKeyRef:
      name: bgp-passwords
      key: tor-a
      optional: false
  sourceAddress: UseNodeIP
  maxRestartTime: 120s
  keepaliveTime: 20s
  numAllowedLocalASNumbers: 1
  ttlSecurity: 1
  reachableBy: 198.18.0.254
  filters: [export-pods-only]
  reversePeering: Auto
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata:
  name: route-reflectors
spec:
  nodeSelector: all()
  peerSelector: has(tabby-routing.io/route-reflector)
---
apiVersion: crd.projectcalico.org/v1
kind: BGPPeer
metadata:
  name: node-a-workloads
spec:
  node: node-a
  localWorkloadSelector: app == 'lb'
  asNumber: 4200000001
---
apiVersion: crd.projectcalico.org/v1
kind: BGPFilter
metadata:
  name: export-pods-only
spec:
  exportV4:
  - action: Accept
    matchOperator: In
    cidr: 100.64.0.0/10
    prefixLength:
      min: 24
      max: 32
  - action: Reject
  importV4:
  - action: Reject
    matchOperator: Equal
    cidr: 198.19.0.0/16
    source: RemotePeers
    interface: "eth*"
  exportV6:
  - action: Accept
    matchOperator: In
    cidr: 2001:db8:1000::/36
    prefixLength:
      min: 48
      max: 128
  importV6:
  - action: Accept
    matchOperator: NotIn
    cidr: 2001:db8:1000::/36
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: pods-v4
spec:
  cidr: 100.64.0.0/16
  blockSize: 26
  vxlanMode: Never
  ipipMode: CrossSubnet
  natOutgoing: true
  disabled: false
  disableBGPExport: false
  nodeSelector: all()
  allowedUses: [Workload, Tunnel]
  assignmentMode: Automatic
---
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: pods-v6
spec:
  cidr: 2001:db8:1000::/48
  blockSize: 122
  vxlanMode: Never
  ipipMode: Never
---
apiVersion: crd.projectcalico.org/v1
kind: BlockAffinity
metadata:
  name: node-a-100-64-1-0-26
spec:
  state: confirmed
  node: node-a
  type: host
  cidr: 100.64.1.0/26
  deleted: "false"
---
apiVersion: crd.projectcalico.org/v1
kind: IPAMBlock
metadata:
  name: 100-64-1-0-26
spec:
  cidr: 100.64.1.0/26
  affinity: host:node-a
  strictAffinity: false
  allocations: [0, null, 1, null]
  unallocated: [1, 3]
  attributes:
  - handle_id: ipip-tunnel-addr-node-a
    secondary:
      node: node-a
      type: ipipTunnelAddress
  - handle_id: k8s-pod-network.0123abcd
    secondary:
      namespace: default
      pod: web-0
  deleted: false
  sequenceNumber: 7
  sequenceNumberForAllocation:
    "0": 5
    "2": 7
---
apiVersion: crd.projectcalico.org/v1
kind: CalicoNodeStatus
metadata:
  name: node-a
spec:
  node: node-a
  classes: [Agent, BGP, Routes]
  updatePeriodSeconds: 10
"#;

/// The status tabbyd would write for node-a (`RV` is replaced by the
/// object's resourceVersion).
const NODE_STATUS: &str = r#"
apiVersion: crd.projectcalico.org/v1
kind: CalicoNodeStatus
metadata:
  name: node-a
  resourceVersion: "RV"
spec:
  node: node-a
  classes: [Agent, BGP, Routes]
  updatePeriodSeconds: 10
status:
  lastUpdated: "2026-01-01T00:00:00Z"
  agent:
    birdV4:
      state: Ready
      version: tabbyd 0.1.0
      routerID: 198.18.0.11
      lastBootTime: "2026-01-01 00:00:00"
      lastReconfigurationTime: "2026-01-01 00:00:00"
    birdV6:
      state: NotReady
  bgp:
    numberEstablishedV4: 1
    numberEstablishedV6: 0
    numberNotEstablishedV4: 1
    numberNotEstablishedV6: 0
    peersV4:
    - peerIP: 198.18.0.1
      type: GlobalPeer
      state: Established
      since: "2026-01-01 00:00:00"
    - peerIP: 198.18.0.12
      type: NodeMesh
      state: Active
      since: "2026-01-01 00:00:00"
  routes:
    routesV4:
    - type: FIB
      destination: 100.64.2.0/26
      gateway: 198.18.0.12
      interface: eth0
      learnedFrom:
        sourceType: NodeMesh
        peerIP: 198.18.0.12
"#;

/// Objects the schemas must refuse, with a piece of the expected error.
const ILL_TYPED: [(&str, &str); 4] = [
    (
        // v1 BlockAffinity.deleted is a string, never a boolean.
        "kind: BlockAffinity\nmetadata:\n  name: bad-deleted\nspec:\n  state: confirmed\n  node: node-a\n  cidr: 100.64.2.0/26\n  deleted: false\n",
        "spec.deleted in body must be of type string",
    ),
    (
        "kind: BGPPeer\nmetadata:\n  name: bad-asn\nspec:\n  peerIP: 198.18.0.1\n  asNumber: \"65001\"\n",
        "spec.asNumber in body must be of type integer",
    ),
    (
        "kind: CalicoNodeStatus\nmetadata:\n  name: bad-class\nspec:\n  node: node-a\n  classes: [Everything]\n",
        "Unsupported value: \"Everything\"",
    ),
    (
        "kind: IPPool\nmetadata:\n  name: bad-pool\nspec:\n  blockSize: 26\n",
        "spec.cidr: Required value",
    ),
];

/// A stand-in for Calico's calico-node DaemonSet (our own minimal one: only
/// the fields the patch touches, and one untouched env var), with the
/// backend set by `backend` (an env entry's value part).
fn calico_node_stand_in(backend: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
spec:
  selector:
    matchLabels:
      k8s-app: calico-node
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels:
        k8s-app: calico-node
    spec:
      hostNetwork: true
      containers:
      - name: calico-node
        image: example.invalid/calico-node:stand-in
        env:
        - name: DATASTORE_TYPE
          value: kubernetes
        - name: CALICO_NETWORKING_BACKEND
{backend}
        readinessProbe:
          exec:
            command: [/bin/calico-node, -felix-ready, -bird-ready]
        livenessProbe:
          exec:
            command: [/bin/calico-node, -felix-live, -bird-live]
"
    )
}

fn deploy_dir() -> PathBuf {
    interop_tests::preflight::workspace_root().join("deploy")
}

/// The `*.yaml` files of `dir`, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    Ok(files)
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("?")
}

/// The YAML documents of a multi-document file.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.retain(|d| d.lines().any(|l| l.starts_with("kind:")));
    docs
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

/// `kubectl auth can-i VERB RESOURCE [ARGS…] --as USER`: yes or no (kubectl
/// exits 1 for no).
fn can_i(api: &KubeApi, user: &str, verb: &str, resource: &str, extra: &[&str]) -> Result<bool> {
    let as_user = format!("--as={user}");
    let mut args = vec!["auth", "can-i", verb, resource, as_user.as_str()];
    args.extend_from_slice(extra);
    let out = api.kubectl_output(&api.admin_kubeconfig, &args, None)?;
    match out.stdout.trim() {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => bail!(
            "kubectl auth can-i {verb} {resource}: {other:?} ({})",
            out.stderr.trim()
        ),
    }
}

/// A SubjectAccessReview for a ServiceAccount: works for API groups that
/// the server does not serve (where `kubectl auth can-i` cannot map the
/// resource), such as `projectcalico.org` here.
fn review(api: &KubeApi, user: &str, attrs: &str) -> Result<bool> {
    let sar = format!(
        "apiVersion: authorization.k8s.io/v1
kind: SubjectAccessReview
spec:
  user: {user}
  groups: [system:serviceaccounts, system:serviceaccounts:{NAMESPACE}, system:authenticated]
  resourceAttributes:
{attrs}"
    );
    let out = api.kubectl_stdin(
        &["create", "-f", "-", "-o", "jsonpath={.status.allowed}"],
        &sar,
    )?;
    Ok(out.trim() == "true")
}

/// The CRDs: established, structural, of the right shape, and each file
/// says whose definition it is.
fn crds_are_established(api: &KubeApi) -> Result<()> {
    let dir = deploy_dir().join("crds");
    let files = yaml_files(&dir)?;
    let names: Vec<&str> = files.iter().map(|p| file_name(p)).collect();
    let want: Vec<String> = CRDS.iter().map(|(p, _)| format!("{p}.yaml")).collect();
    assert_eq!(names, want, "deploy/crds/ holds one file per kind");
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        let header: String = text.lines().take_while(|l| l.starts_with('#')).collect();
        ensure!(
            header.contains("Tabby's own definition") && header.contains("compatible in"),
            "{} lacks the header saying it is Tabby's own definition",
            f.display()
        );
    }
    let d = dir.display().to_string();
    api.kubectl(&["apply", "-f", &d])?;
    api.kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "-f",
        &d,
    ])?;
    for (plural, kind) in CRDS {
        let name = format!("{plural}.crd.projectcalico.org");
        let crd = json(&api.kubectl(&["get", "crd", &name, "-o", "json"])?)?;
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "crd.projectcalico.org", "{name}");
        assert_eq!(spec["scope"], "Cluster", "{name}");
        assert_eq!(spec["names"]["kind"], kind, "{name}");
        let versions = spec["versions"].as_array().context("versions")?;
        assert_eq!(versions.len(), 1, "{name}: one version");
        assert_eq!(versions[0]["name"], "v1", "{name}");
        assert_eq!(versions[0]["served"], true, "{name}");
        assert_eq!(versions[0]["storage"], true, "{name}");
        let has_status = versions[0]["subresources"]["status"].is_object();
        assert_eq!(
            has_status,
            kind == "CalicoNodeStatus",
            "{name}: status subresource"
        );
        let conditions = crd["status"]["conditions"]
            .as_array()
            .context("conditions")?;
        for c in conditions {
            let (t, s) = (c["type"].as_str().unwrap_or(""), &c["status"]);
            match t {
                "Established" | "NamesAccepted" => assert_eq!(s, "True", "{name}: {c}"),
                // A non-structural schema or a rejected field would show here.
                _ => assert_ne!(s, "True", "{name}: {c}"),
            }
        }
    }
    Ok(())
}

/// One valid object of each kind is accepted and kept as written (no field
/// pruned); ill-typed ones are refused.
fn examples_are_accepted(api: &KubeApi) -> Result<()> {
    let out = api.kubectl_stdin(&["apply", "-f", "-"], EXAMPLES)?;
    ensure!(
        out.lines().count() == 10 && out.lines().all(|l| l.ends_with(" created")),
        "kubectl apply of the examples: {out}"
    );
    for (plural, _) in CRDS {
        let listed = api.kubectl(&[
            "get",
            &format!("{plural}.crd.projectcalico.org"),
            "-o",
            "name",
        ])?;
        ensure!(!listed.trim().is_empty(), "no {plural} after apply");
    }
    let get = |what: &str| -> Result<Value> { json(&api.kubectl(&["get", what, "-o", "json"])?) };
    let ba = get("blockaffinity.crd.projectcalico.org/node-a-100-64-1-0-26")?;
    assert_eq!(ba["spec"]["deleted"], Value::String("false".into()));
    assert_eq!(ba["spec"]["state"], "confirmed");
    let peer = get("bgppeer.crd.projectcalico.org/tor-a")?;
    assert_eq!(peer["spec"]["asNumber"], 65001);
    assert_eq!(peer["spec"]["password"]["secretKeyRef"]["key"], "tor-a");
    assert_eq!(
        peer["spec"]["filters"],
        serde_json::json!(["export-pods-only"])
    );
    assert_eq!(peer["spec"]["ttlSecurity"], 1);
    let four_byte = get("bgppeer.crd.projectcalico.org/node-a-workloads")?;
    assert_eq!(four_byte["spec"]["asNumber"], 4_200_000_001u64);
    let conf = get("bgpconfiguration.crd.projectcalico.org/default")?;
    assert_eq!(
        conf["spec"]["serviceClusterIPs"][0]["cidr"],
        "198.19.255.0/24"
    );
    assert_eq!(
        conf["spec"]["prefixAdvertisements"][0]["communities"],
        serde_json::json!(["lab-pods", "64512:200"])
    );
    assert_eq!(conf["spec"]["programClusterRoutes"], "Enabled");
    let filter = get("bgpfilter.crd.projectcalico.org/export-pods-only")?;
    assert_eq!(filter["spec"]["exportV4"][0]["prefixLength"]["min"], 24);
    assert_eq!(filter["spec"]["importV4"][0]["source"], "RemotePeers");
    let block = get("ipamblock.crd.projectcalico.org/100-64-1-0-26")?;
    assert_eq!(
        block["spec"]["allocations"],
        serde_json::json!([0, null, 1, null])
    );
    assert_eq!(block["spec"]["attributes"][1]["secondary"]["pod"], "web-0");
    assert_eq!(block["spec"]["sequenceNumberForAllocation"]["2"], 7);
    let pool = get("ippool.crd.projectcalico.org/pods-v4")?;
    assert_eq!(
        pool["spec"]["allowedUses"],
        serde_json::json!(["Workload", "Tunnel"])
    );

    for (body, why) in ILL_TYPED {
        let yaml = format!("apiVersion: crd.projectcalico.org/v1\n{body}");
        match api.kubectl_stdin(&["apply", "-f", "-"], &yaml) {
            Ok(out) => bail!("the API server took an ill-typed object: {out}\n{yaml}"),
            Err(e) => ensure!(e.to_string().contains(why), "expected {why:?}, got: {e}"),
        }
    }
    Ok(())
}

/// Every manifest but the patch passes a server-side dry run; the patch is
/// refused by `apply` (it has no kind).
fn manifests_pass_a_dry_run(api: &KubeApi) -> Result<()> {
    let files = yaml_files(&deploy_dir())?;
    let names: Vec<&str> = files.iter().map(|p| file_name(p)).collect();
    for want in ["tabby-node.yaml", "tabby-route-reflector.yaml", BIRD_OFF] {
        ensure!(names.contains(&want), "deploy/{want} is missing: {names:?}");
    }
    for f in &files {
        let p = f.display().to_string();
        let args = ["apply", "--dry-run=server", "-f", p.as_str()];
        if file_name(f) == BIRD_OFF {
            let out = api.kubectl_output(&api.admin_kubeconfig, &args, None)?;
            ensure!(
                !out.status.success() && out.stderr.contains("kind not set"),
                "`kubectl apply -f {p}` should refuse the patch: {out:?}"
            );
            continue;
        }
        let out = api.kubectl(&args)?;
        let lines: Vec<&str> = out.lines().collect();
        ensure!(
            !lines.is_empty() && lines.iter().all(|l| l.ends_with("(server dry run)")),
            "dry run of {p}: {out}"
        );
        eprintln!(
            "{}: {} objects pass a server-side dry run",
            file_name(f),
            lines.len()
        );
    }
    Ok(())
}

/// What the server stored for the DaemonSet is what the brief asks of it.
fn daemonset_is_as_specified(api: &KubeApi) -> Result<()> {
    let ds = json(&api.kubectl(&[
        "get",
        "daemonset",
        "tabby-node",
        "-n",
        NAMESPACE,
        "-o",
        "json",
    ])?)?;
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["serviceAccountName"], "tabby-node");
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        pod["securityContext"]["runAsUser"]
            .as_u64()
            .is_some_and(|u| u > 0)
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .context("grace period")?;
    assert!(
        grace < 120,
        "the grace period must leave room in the 120 s restart time"
    );
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"])
    );
    let env = c["env"].as_array().context("env")?;
    let var = |n: &str| {
        env.iter()
            .find(|e| e["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        var("TABBY_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(var("TABBY_DATASTORE")["value"], "kubernetes");
    assert_eq!(
        var("TABBY_SECRET_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let metrics = var("TABBY_METRICS")["value"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let port = metrics
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse::<u64>().ok())
        .context("TABBY_METRICS on loopback")?;
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["host"], "127.0.0.1", "{probe}");
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], port, "{probe} port = the metrics listener's");
    }
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    let vols = pod["volumes"].as_array().context("volumes")?;
    assert!(vols.iter().any(|v| v["hostPath"]["path"] == "/run/tabby"));
    Ok(())
}

/// The ServiceAccounts may do what tabbyd does and nothing more.
fn rbac_is_least_privilege(api: &KubeApi) -> Result<()> {
    let crd = |r: &str| format!("{r}.crd.projectcalico.org");
    // The authorizer sees new bindings through an informer: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !can_i(api, NODE_SA, "list", "nodes", &[])? {
        ensure!(
            Instant::now() < deadline,
            "the tabby-node binding never took effect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut yes: Vec<(String, String, Vec<&str>)> = vec![];
    let mut no: Vec<(String, String, Vec<&str>)> = vec![];
    for verb in ["list", "watch"] {
        yes.push((verb.into(), "nodes".into(), vec![]));
        yes.push((verb.into(), "services".into(), vec![]));
        yes.push((
            verb.into(),
            "endpointslices.discovery.k8s.io".into(),
            vec![],
        ));
        for r in [
            "bgpconfigurations",
            "bgppeers",
            "bgpfilters",
            "ippools",
            "blockaffinities",
            "caliconodestatuses",
        ] {
            yes.push((verb.into(), crd(r), vec![]));
        }
    }
    yes.push(("update".into(), crd("caliconodestatuses"), vec![]));
    yes.push((
        "update".into(),
        crd("caliconodestatuses"),
        vec!["--subresource=status"],
    ));
    let in_ns = vec!["-n", NAMESPACE];
    for verb in ["get", "list", "watch"] {
        yes.push((verb.into(), "secrets/bgp-passwords".into(), in_ns.clone()));
    }

    for verb in ["get", "delete", "update", "patch", "create"] {
        no.push((verb.into(), "nodes".into(), vec![]));
        no.push((verb.into(), "services".into(), vec![]));
    }
    for r in [
        "bgppeers",
        "bgpconfigurations",
        "ippools",
        "blockaffinities",
    ] {
        for verb in ["create", "update", "delete", "get"] {
            no.push((verb.into(), crd(r), vec![]));
        }
    }
    no.push(("patch".into(), crd("caliconodestatuses"), vec![]));
    no.push(("delete".into(), crd("caliconodestatuses"), vec![]));
    no.push(("create".into(), crd("caliconodestatuses"), vec![]));
    no.push(("list".into(), crd("ipamblocks"), vec![]));
    no.push(("list".into(), "secrets".into(), vec!["--all-namespaces"]));
    no.push(("list".into(), "secrets".into(), in_ns.clone()));
    no.push(("get".into(), "secrets/other".into(), in_ns.clone()));
    no.push((
        "update".into(),
        "secrets/bgp-passwords".into(),
        in_ns.clone(),
    ));
    no.push((
        "get".into(),
        "secrets/bgp-passwords".into(),
        vec!["-n", "kube-system"],
    ));
    no.push(("list".into(), "pods".into(), vec!["--all-namespaces"]));
    no.push(("list".into(), "configmaps".into(), in_ns.clone()));

    for sa in [NODE_SA, RR_SA] {
        for (verb, res, extra) in &yes {
            ensure!(
                can_i(api, sa, verb, res, extra)?,
                "{sa} cannot {verb} {res} {extra:?}"
            );
        }
        for (verb, res, extra) in &no {
            ensure!(
                !can_i(api, sa, verb, res, extra)?,
                "{sa} CAN {verb} {res} {extra:?}"
            );
        }
    }
    eprintln!(
        "RBAC: {} allowed and {} refused checks per ServiceAccount hold",
        yes.len(),
        no.len()
    );

    // Calico 3.32+'s group is not served here: ask the authorizer directly.
    let attrs = |verb: &str, res: &str, sub: &str| {
        let mut a = format!(
            "    group: projectcalico.org\n    version: v3\n    resource: {res}\n    verb: {verb}\n"
        );
        if !sub.is_empty() {
            a.push_str(&format!("    subresource: {sub}\n"));
        }
        a
    };
    for res in [
        "bgppeers",
        "bgpconfigurations",
        "bgpfilters",
        "ippools",
        "blockaffinities",
    ] {
        ensure!(
            review(api, NODE_SA, &attrs("watch", res, ""))?,
            "no watch on {res} in v3"
        );
        ensure!(
            !review(api, NODE_SA, &attrs("create", res, ""))?,
            "create on {res} in v3"
        );
    }
    ensure!(review(
        api,
        NODE_SA,
        &attrs("update", "caliconodestatuses", "status")
    )?);
    ensure!(!review(
        api,
        NODE_SA,
        &attrs("delete", "caliconodestatuses", "")
    )?);
    Ok(())
}

/// With a real token: the password Secret by name (as tabbyd watches it),
/// no other Secret, and the CalicoNodeStatus status update tabbyd makes.
fn service_account_token_works(api: &KubeApi) -> Result<()> {
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "bgp-passwords",
        "-n",
        NAMESPACE,
        "--from-literal=tor-a=lab-only-secret",
        "--from-literal=mesh=lab-only-mesh",
    ])?;
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "other",
        "-n",
        NAMESPACE,
        "--from-literal=x=y",
    ])?;
    let token = api.service_account_token(NAMESPACE, "tabby-node")?;
    let sa = api.kubeconfig_for_token("tabby-node", &token)?;
    let by_name = api.kubectl_as(
        &sa,
        &[
            "get",
            "secrets",
            "-n",
            NAMESPACE,
            "--field-selector=metadata.name=bgp-passwords",
            "-o",
            "name",
        ],
    )?;
    assert_eq!(by_name.trim(), "secret/bgp-passwords");
    for args in [
        &["get", "secrets", "-n", NAMESPACE][..],
        &["get", "secret", "other", "-n", NAMESPACE][..],
        &["get", "secrets", "-n", "kube-system"][..],
    ] {
        let e = api
            .kubectl_as(&sa, args)
            .expect_err("the token read other Secrets");
        ensure!(e.to_string().contains("Forbidden"), "{e}");
    }
    // It lists what tabbyd reads.
    let peers = api.kubectl_as(
        &sa,
        &["get", "bgppeers.crd.projectcalico.org", "-o", "name"],
    )?;
    ensure!(
        peers.contains("bgppeer.crd.projectcalico.org/tor-a"),
        "{peers}"
    );
    let nodes = api.kubectl_output(&sa, &["get", "nodes", "-o", "name"], None)?;
    ensure!(nodes.status.success(), "{nodes:?}");

    // Status goes through the subresource only: the admin's status in a
    // normal update is dropped; the ServiceAccount's update of /status lands.
    api.kubectl_stdin(
        &["apply", "-f", "-"],
        &NODE_STATUS.replace("  resourceVersion: \"RV\"\n", ""),
    )?;
    let st = api.kubectl(&[
        "get",
        "caliconodestatus",
        "node-a",
        "-o",
        "jsonpath={.status}",
    ])?;
    ensure!(
        st.trim().is_empty(),
        "status written through the main resource: {st}"
    );
    let rv = api.kubectl(&[
        "get",
        "caliconodestatus",
        "node-a",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])?;
    let path = api.dir.join("node-a-status.yaml");
    std::fs::write(&path, NODE_STATUS.replace("RV", rv.trim()))?;
    let p = path.display().to_string();
    api.kubectl_as(&sa, &["replace", "--subresource=status", "-f", &p])?;
    let got = json(&api.kubectl(&["get", "caliconodestatus", "node-a", "-o", "json"])?)?;
    let status = &got["status"];
    assert_eq!(status["agent"]["birdV4"]["routerID"], "198.18.0.11");
    assert_eq!(status["bgp"]["numberEstablishedV4"], 1);
    assert_eq!(status["bgp"]["peersV4"][1]["state"], "Active");
    assert_eq!(
        status["routes"]["routesV4"][0]["learnedFrom"]["sourceType"],
        "NodeMesh"
    );
    assert_eq!(status["lastUpdated"], "2026-01-01T00:00:00Z");
    // It may not change what the operator asked for.
    let e = api
        .kubectl_as(&sa, &["delete", "caliconodestatus", "node-a"])
        .expect_err("the token deleted a CalicoNodeStatus");
    ensure!(e.to_string().contains("Forbidden"), "{e}");
    Ok(())
}

/// The calico-node patch turns BIRD off whichever way the DaemonSet sets the
/// backend, and the documented `kubectl set env` for tabby-node works.
fn bird_off_patch_applies(api: &KubeApi) -> Result<()> {
    let patch = deploy_dir().join(BIRD_OFF).display().to_string();
    for backend in [
        "          valueFrom:\n            configMapKeyRef:\n              name: calico-config\n              key: calico_backend",
        "          value: bird",
    ] {
        api.kubectl_stdin(&["apply", "-f", "-"], &calico_node_stand_in(backend))?;
        let patched = json(&api.kubectl(&[
            "-n",
            "kube-system",
            "patch",
            "daemonset",
            "calico-node",
            "--type",
            "strategic",
            "--patch-file",
            &patch,
            "--dry-run=server",
            "-o",
            "json",
        ])?)?;
        let spec = &patched["spec"];
        assert_eq!(spec["updateStrategy"]["type"], "OnDelete");
        let c = &spec["template"]["spec"]["containers"][0];
        let env = c["env"].as_array().context("env")?;
        let backend_var = env
            .iter()
            .find(|e| e["name"] == "CALICO_NETWORKING_BACKEND")
            .context("no CALICO_NETWORKING_BACKEND")?;
        assert_eq!(
            backend_var,
            &serde_json::json!({"name": "CALICO_NETWORKING_BACKEND", "value": "none"})
        );
        assert!(
            env.iter()
                .any(|e| e["name"] == "DATASTORE_TYPE" && e["value"] == "kubernetes")
        );
        assert_eq!(
            c["readinessProbe"]["exec"]["command"],
            serde_json::json!(["/bin/calico-node", "-felix-ready"])
        );
        assert_eq!(
            c["livenessProbe"]["exec"]["command"],
            serde_json::json!(["/bin/calico-node", "-felix-live"])
        );
    }
    let env = api.kubectl(&[
        "-n",
        NAMESPACE,
        "set",
        "env",
        "daemonset/tabby-node",
        "TABBY_KERNEL_PROTOCOL=12",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ])?;
    ensure!(
        env.contains(r#"{"name":"TABBY_KERNEL_PROTOCOL","value":"12"}"#),
        "{env}"
    );
    Ok(())
}

#[test]
fn deploy_manifests_on_a_real_api_server() -> Result<()> {
    if let Err(e) = preflight(&[Need::KubeApiServer]) {
        panic!("{e}");
    }
    let started = Instant::now();
    let mut lab = Lab::new("deploy")?;
    let api_ns = lab.ns("kube-api")?;
    let api = lab.start_kube_apiserver(&api_ns, "kube-apiserver", [127, 0, 0, 1].into())?;
    eprintln!("kube-apiserver ready after {:?}", started.elapsed());

    crds_are_established(&api).context("deploy/crds")?;
    examples_are_accepted(&api).context("example objects")?;

    // The namespace first (as tabby-node.yaml defines it), so that the dry
    // runs of the namespaced objects find it.
    let node_yaml = std::fs::read_to_string(deploy_dir().join("tabby-node.yaml"))?;
    let ns_doc = documents(&node_yaml)
        .into_iter()
        .find(|d| d.lines().any(|l| l == "kind: Namespace"))
        .context("tabby-node.yaml defines no Namespace")?;
    api.apply(&ns_doc)?;
    manifests_pass_a_dry_run(&api).context("server-side dry runs")?;

    for f in ["tabby-node.yaml", "tabby-route-reflector.yaml"] {
        let p = deploy_dir().join(f).display().to_string();
        api.kubectl(&["apply", "-f", &p])?;
    }
    daemonset_is_as_specified(&api).context("the tabby-node DaemonSet")?;
    rbac_is_least_privilege(&api).context("RBAC")?;
    service_account_token_works(&api).context("the tabby-node token")?;
    bird_off_patch_applies(&api).context(BIRD_OFF)?;

    eprintln!("deploy_manifests took {:?}", started.elapsed());
    Ok(())
}
