//! Tabby's view of a Calico cluster.
//!
//! Owns: reading Calico's `projectcalico.org/v3` resources (Node, BGPConfiguration, BGPPeer,
//! IPPool, BGPFilter, BlockAffinity, and v1 Secrets for passwords) from a YAML file, etcd
//! or the Kubernetes API (Calico's KDD: CRDs and annotated Nodes); Calico's selector
//! language; deriving one node's desired BGP state (peers, originated routes, pools,
//! export/import policy) exactly as Calico's BIRD templates would; diffing two states so
//! the daemon changes only what changed; and writing the node's `CalicoNodeStatus` from a
//! plain report the daemon gives.
//!
//! Does not own: BGP sessions, the RIB, or the kernel FIB. Its outputs are plain types
//! (`std::net`, `ipnet`, `u32` AS numbers) that `tabbyd` maps onto `tabby-bgp`,
//! `tabby-rib` and `tabby-fib-sync`; this crate depends on none of them.
//!
//! Flow: a [`Source`] ([`FileSource`], [`EtcdSource`] or [`KubeSource`], chosen by
//! [`DatastoreSpec`]) yields [`Resources`] snapshots; [`derive_with()`] turns one into this
//! node's [`NodeState`], given the daemon's [`DeriveOptions`] (`CALICO_ROUTER_ID`;
//! [`derive()`] is the same without any); one invalid resource never fails it, only a
//! node that cannot run at all does (its warnings say what was skipped); [`diff`]
//! between the running and the new state lists [`Change`]s, each saying whether it needs a
//! session reset ([`Change::needs_reset`]) or only a re-export / route refresh.
//!
//! BFD is not a Calico field: the `tabby-routing.io/bfd` annotation ([`BFD_ANNOTATION`],
//! forms in [`BfdAnnotation`]) on a `BGPPeer`, or on `BGPConfiguration` `default` /
//! `node.<name>` for the mesh, sets [`Peer::bfd`]. A bad value never rejects the resource:
//! its sessions run without BFD and [`NodeState::warnings`] says why.
//!
//! Datastores: the file is multi-document Kubernetes-style YAML (`kind: List` accepted),
//! read as calicoctl reads it (YAML 1.1: an unquoted `yes` label is "true"); a bad
//! document is skipped and reported in [`Resources::problems`], the rest applies (its last
//! good version stays, as with the other sources). etcd uses Calico's etcdv3 keys
//! `/calico/resources/v3/projectcalico.org/<plural>/<name>`; Secrets, which Calico keeps in
//! Kubernetes, are read from `…/secrets/<namespace>/<name>`. A `secretKeyRef` names no
//! namespace: the Secret in `calico-system` wins, else any namespace holding that name.
//! The Kubernetes source is described in [`source::kube`].
//!
//! Workload peerings (`BGPPeer` `localWorkloadSelector`) come from Felix's endpoint status
//! files on this node, not from the datastore: [`EndpointStatusWatcher`] polls the
//! directory ([`endpoint_status`]) and the caller puts its [`LocalEndpoints`] into
//! [`Resources::local_endpoints`] before deriving.
//!
//! ```
//! let yaml = include_str!("../examples/cluster.yaml");
//! let res = tabby_topology::Resources::from_yaml_str(yaml, "cluster.yaml").unwrap();
//! let state = tabby_topology::derive(&res, "node-a").unwrap();
//! assert_eq!(state.local_as, 64512);
//! ```

mod bfd;
mod bgp_filter;
mod bmp;
mod derive;
mod diff;
pub mod endpoint_status;
mod error;
mod fields;
mod model;
mod resources;
mod router_id;
pub mod selector;
pub(crate) mod services;
pub mod source;
mod state;
mod types;
mod yaml11;

pub use bfd::{BFD_ANNOTATION, BFD_MAX_INTERVAL, BFD_MIN_INTERVAL, BfdAnnotation};
pub use bmp::{BMP_STATIONS_ANNOTATION, parse_stations};
pub use derive::{derive, derive_with, filter_rule};
pub use diff::{Change, GlobalField, PeerField, diff};
pub use endpoint_status::{
    DEFAULT_ENDPOINT_STATUS_PREFIX, ENDPOINT_STATUS_PREFIX_ENV, LocalEndpoints,
    WorkloadEndpointStatus, endpoint_status_dir,
};
pub use error::TopologyError;
pub use model::{DEFAULT_SECRET_NAMESPACE, parse_object};
pub use resources::Resources;
pub use router_id::{DeriveOptions, ROUTER_ID_ENV, RouterIdSpec, hash_router_id};
pub use selector::{Selector, SelectorError};
pub use source::{
    DatastoreSpec, EndpointStatusWatcher, EtcdSource, FileSource, KubeSource, KubeTarget, Source,
};
pub use state::*;
pub use types::*;
