//! tabbyctl: the operator's command line for tabbyd's gRPC API.
//!
//! Owns argument parsing, connecting (unix socket by default) and rendering
//! (table, JSON, YAML). Talks only tabby.v1 and grpc.health.v1.

mod client;
#[cfg(test)]
mod fixtures;
mod graph;
mod render;
mod top;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use tabby_proto::v1 as pb;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::client::{ApiTarget, TlsFiles, connect, node_name, status_error};
use crate::render::{Output, Rendered};

/// Operate tabbyd: sessions, routes, health.
#[derive(Debug, Parser)]
#[command(name = "tabbyctl", version, about)]
struct Cli {
    /// Where tabbyd's API is: unix:PATH, http://HOST:PORT or https://HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "TABBY_API",
        default_value = "unix:/run/tabby/tabbyd.sock"
    )]
    api: String,
    /// Output format: table (the default), json or yaml; `graph` draws dot
    /// (its default) or svg.
    #[arg(short = 'o', long, global = true, value_enum)]
    output: Option<Output>,
    /// CA certificate (PEM) to verify an https:// server.
    #[arg(long, global = true)]
    ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for servers that verify clients.
    #[arg(long, global = true)]
    cert: Option<std::path::PathBuf>,
    /// Client private key (PEM), with --cert.
    #[arg(long, global = true)]
    key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Daemon status, BFD sessions by state, and a table of BGP sessions
    /// (like birdc show protocols).
    Status,
    /// BFD sessions (RFC 5880) of the peers that have BFD: state, negotiated
    /// timers, last diagnostic, flaps.
    Bfd,
    /// List, show, add, delete, enable, disable or reset peers.
    Peers {
        #[command(subcommand)]
        action: Option<PeersAction>,
    },
    /// List Loc-RIB routes, optionally for one prefix.
    Routes {
        /// Only this prefix (and, with --longer, the prefixes inside it).
        prefix: Option<String>,
        /// Show only the best path of each prefix.
        #[arg(long)]
        best: bool,
        /// Include more specific prefixes inside PREFIX.
        #[arg(long)]
        longer: bool,
        /// Address family.
        #[arg(short = 'a', long, value_enum)]
        family: Option<Fam>,
    },
    /// Explain a route decision.
    Route {
        #[command(subcommand)]
        action: RouteAction,
    },
    /// Announce locally originated prefixes.
    Announce(AnnounceArgs),
    /// Make PREFIX... the complete set of routes OWNER originates, atomically:
    /// routes of OWNER not listed are withdrawn (what an IPAM does on restart).
    Replace(ReplaceArgs),
    /// Withdraw locally originated prefixes.
    Withdraw {
        /// Prefixes in CIDR notation.
        #[arg(required = true)]
        prefixes: Vec<String>,
        /// The owner the routes were announced under.
        #[arg(long, default_value = "tabbyctl")]
        owner: String,
    },
    /// Follow route or peer changes until interrupted.
    Watch {
        #[command(subcommand)]
        what: WatchWhat,
    },
    /// Liveness and readiness; exits 0 when ready, 1 when not.
    Health,
    /// Change the daemon's log filter (e.g. debug, or info,tabby_bgp=debug).
    LogLevel {
        /// The new filter.
        level: String,
    },
    /// Show the configuration the daemon runs (node, every session's
    /// settings, originated routes, pools, policies; no secrets): YAML by
    /// default, `-o json` for JSON. Schema: docs/effective-config.md.
    Config,
    /// Draw BGP sessions with Graphviz: this node's sessions from the daemon
    /// (state, prefixes in and out), or with --datastore the whole cluster as
    /// its resources intend it (nodes, route reflectors, external peers, the
    /// peerings each node derives). `-o dot` (the default) prints DOT,
    /// `-o svg` has Graphviz's `dot` draw it.
    Graph(GraphArgs),
    /// A live view on the terminal: the daemon's status, every session
    /// (state, uptime, prefixes, UPDATEs per second, BFD) and the routes
    /// (best routes per family, changes per second, the last changes), fed
    /// by the WatchPeers and WatchRoutes streams. q, Esc or Ctrl-C quits.
    Top {
        /// Seconds between polls of Status and ListPeers (the counters the
        /// update rates come from), 0.1 to 3600.
        #[arg(long, default_value = "2", value_parser = top::parse_interval)]
        interval: Duration,
    },
}

#[derive(Debug, clap::Args)]
struct GraphArgs {
    /// Draw the cluster from this datastore instead of asking the daemon:
    /// file:PATH, etcd:URL[,URL...], kubernetes or kubernetes:KUBECONFIG
    /// (tabbyd's --datastore).
    #[arg(long)]
    datastore: Option<String>,
    /// How long to wait for the datastore's first complete read.
    #[arg(long, default_value_t = 30)]
    timeout_seconds: u64,
}

#[derive(Debug, Subcommand)]
enum PeersAction {
    /// List every peer (the default).
    List,
    /// Show one peer in detail.
    Show {
        /// The peer's address; ADDRESS:PORT ([ADDRESS]:PORT for IPv6) picks one of
        /// a peer's sessions when it has one per port.
        address: String,
    },
    /// Add a peer at run time (not persisted).
    Add {
        /// The peer's address.
        address: String,
        /// The peer's AS number.
        #[arg(long = "as")]
        remote_as: u32,
        /// The local AS toward this peer (default: the daemon's).
        #[arg(long)]
        local_as: Option<u32>,
        /// Hold time in seconds (0 or 3..65535).
        #[arg(long)]
        hold_time: Option<u32>,
        /// Keepalive interval in seconds.
        #[arg(long)]
        keepalive: Option<u32>,
        /// Only accept connections.
        #[arg(long)]
        passive: bool,
        /// eBGP multihop TTL (1..255).
        #[arg(long)]
        multihop: Option<u32>,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a peer.
    Del {
        /// The peer's address; ADDRESS:PORT ([ADDRESS]:PORT for IPv6) picks one of
        /// a peer's sessions when it has one per port.
        address: String,
    },
    /// Enable a disabled peer.
    Enable {
        /// The peer's address; ADDRESS:PORT ([ADDRESS]:PORT for IPv6) picks one of
        /// a peer's sessions when it has one per port.
        address: String,
    },
    /// Disable a peer (Cease / Administrative Shutdown).
    Disable {
        /// The peer's address; ADDRESS:PORT ([ADDRESS]:PORT for IPv6) picks one of
        /// a peer's sessions when it has one per port.
        address: String,
        /// Shutdown communication (RFC 8203), at most 255 bytes.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Reset a session: hard by default, or --soft in|out|both.
    Reset {
        /// The peer's address; ADDRESS:PORT ([ADDRESS]:PORT for IPv6) picks one of
        /// a peer's sessions when it has one per port.
        address: String,
        /// Soft reset direction instead of a hard reset.
        #[arg(long, value_enum)]
        soft: Option<SoftDir>,
        /// Shutdown communication for a hard reset.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum RouteAction {
    /// Every candidate path, why the best won, and per-peer export.
    Explain {
        /// The exact prefix.
        prefix: String,
    },
}

#[derive(Debug, Subcommand)]
enum WatchWhat {
    /// Best-route changes (current routes first).
    Routes {
        /// Address family.
        #[arg(short = 'a', long, value_enum)]
        family: Option<Fam>,
        /// Resume after this sequence number instead of starting with a snapshot.
        #[arg(long)]
        resume: Option<u64>,
        /// Stop after this many events (for scripts).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Peer state changes (current peers first).
    Peers {
        /// Stop after this many events (for scripts).
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct AnnounceArgs {
    /// Prefixes in CIDR notation.
    #[arg(required = true)]
    prefixes: Vec<String>,
    /// Who originates them; routes of other owners are untouched.
    #[arg(long, default_value = "tabbyctl")]
    owner: String,
    #[command(flatten)]
    attrs: RouteAttrs,
}

#[derive(Debug, Clone, clap::Args)]
struct ReplaceArgs {
    /// The owner's complete new set, in CIDR notation.
    prefixes: Vec<String>,
    /// Whose set is replaced (no default: replacing the wrong owner's set
    /// withdraws its routes).
    #[arg(long)]
    owner: String,
    /// Replace the set with nothing: withdraw every route of OWNER.
    #[arg(long, conflicts_with = "prefixes")]
    none: bool,
    #[command(flatten)]
    attrs: RouteAttrs,
}

/// Attributes given to every route of one announce or replace.
#[derive(Debug, Clone, clap::Args)]
struct RouteAttrs {
    /// What the routes stand for.
    #[arg(long, value_enum, default_value_t = Kind::Unspecified)]
    kind: Kind,
    /// Community ASN:VALUE (repeatable).
    #[arg(long = "community")]
    communities: Vec<String>,
    /// Large community GLOBAL:LOCAL1:LOCAL2 (repeatable).
    #[arg(long = "large-community")]
    large_communities: Vec<String>,
    /// Next hop (default: this node's session address).
    #[arg(long)]
    next_hop: Option<String>,
    /// Calico route priority, lower preferred (default: the normal
    /// priority, 1024 unless the BGPConfiguration sets another); e.g. 512
    /// for a live-migrated workload's address.
    #[arg(long)]
    priority: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Fam {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SoftDir {
    In,
    Out,
    Both,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Unspecified,
    PodBlock,
    Host,
    ServiceIp,
}

fn fam(f: Option<Fam>) -> i32 {
    match f {
        None => pb::AddressFamily::Unspecified as i32,
        Some(Fam::Ipv4) => pb::AddressFamily::Ipv4 as i32,
        Some(Fam::Ipv6) => pb::AddressFamily::Ipv6 as i32,
    }
}

impl RouteAttrs {
    /// One route per prefix with these attributes.
    fn routes(&self, prefixes: &[String]) -> Result<Vec<pb::LocalRoute>> {
        let communities = self
            .communities
            .iter()
            .map(|c| parse_community(c))
            .collect::<Result<Vec<_>>>()?;
        let large = self
            .large_communities
            .iter()
            .map(|c| parse_large_community(c))
            .collect::<Result<Vec<_>>>()?;
        let kind = match self.kind {
            Kind::Unspecified => pb::RouteKind::Unspecified,
            Kind::PodBlock => pb::RouteKind::PodBlock,
            Kind::Host => pb::RouteKind::Host,
            Kind::ServiceIp => pb::RouteKind::ServiceIp,
        } as i32;
        Ok(prefixes
            .iter()
            .map(|p| pb::LocalRoute {
                prefix: p.clone(),
                kind,
                communities: communities.clone(),
                large_communities: large.clone(),
                next_hop: self.next_hop.clone().unwrap_or_default(),
                priority: self.priority,
            })
            .collect())
    }
}

fn parse_community(s: &str) -> Result<u32> {
    let (a, v) = s
        .split_once(':')
        .with_context(|| format!("community {s:?} must be ASN:VALUE, e.g. 65000:100"))?;
    let a: u16 = a
        .parse()
        .with_context(|| format!("community {s:?}: ASN part must be 0..65535"))?;
    let v: u16 = v
        .parse()
        .with_context(|| format!("community {s:?}: value part must be 0..65535"))?;
    Ok((u32::from(a) << 16) | u32::from(v))
}

fn parse_large_community(s: &str) -> Result<pb::LargeCommunity> {
    let parts: Vec<&str> = s.split(':').collect();
    let [g, l1, l2] = parts.as_slice() else {
        bail!("large community {s:?} must be GLOBAL:LOCAL1:LOCAL2, e.g. 65000:1:2");
    };
    let n = |x: &str| -> Result<u32> {
        x.parse()
            .with_context(|| format!("large community {s:?}: each part must be 0..4294967295"))
    };
    Ok(pb::LargeCommunity {
        global_admin: n(g)?,
        local_data1: n(l1)?,
        local_data2: n(l2)?,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tabbyctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let target = ApiTarget::parse(&cli.api)?;
    let tls = TlsFiles {
        ca: cli.ca.clone(),
        cert: cli.cert.clone(),
        key: cli.key.clone(),
    };
    if let Command::Graph(g) = &cli.command {
        graph_cmd(&target, &tls, cli.output, g).await?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Top { interval } = &cli.command {
        if cli.output.is_some() {
            bail!("tabbyctl top draws on the terminal and takes no -o");
        }
        top::run(&target, &tls, *interval).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let ch = connect(&target, &tls).await?;
    let out = cli.output.unwrap_or(Output::Table);
    match cli.command {
        Command::Status => {
            let mut daemon = pb::daemon_client::DaemonClient::new(ch.clone());
            let mut peers = pb::peers_client::PeersClient::new(ch);
            let st = daemon
                .status(pb::StatusRequest {})
                .await
                .map_err(|s| status_error("status", s))?
                .into_inner();
            let list = peers
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(|s| status_error("listing peers", s))?
                .into_inner();
            print(out, render::status(&st, &list.peers))?;
        }
        Command::Bfd => {
            let mut peers = pb::peers_client::PeersClient::new(ch);
            let list = peers
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(|s| status_error("listing peers", s))?
                .into_inner();
            print(out, render::bfd(&list.peers))?;
        }
        Command::Peers { action } => {
            peers_cmd(ch, out, action.unwrap_or(PeersAction::List)).await?
        }
        Command::Routes {
            prefix,
            best,
            longer,
            family,
        } => {
            let mut c =
                pb::routes_client::RoutesClient::new(ch).max_decoding_message_size(256 << 20);
            let mut all = Vec::new();
            let mut token = String::new();
            loop {
                let page = c
                    .list_routes(pb::ListRoutesRequest {
                        family: fam(family),
                        prefix: prefix.clone().unwrap_or_default(),
                        r#match: if longer {
                            pb::PrefixMatch::Longer
                        } else {
                            pb::PrefixMatch::Exact
                        } as i32,
                        best_only: best,
                        page_size: 0,
                        page_token: token,
                    })
                    .await
                    .map_err(|s| status_error("listing routes", s))?
                    .into_inner();
                all.extend(page.routes);
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            if all.is_empty() && out == Output::Table {
                match &prefix {
                    Some(p) => println!("no route for {p}"),
                    None => println!("no routes"),
                }
            } else {
                print(out, render::routes(&all))?;
            }
        }
        Command::Route {
            action: RouteAction::Explain { prefix },
        } => {
            let mut c = pb::routes_client::RoutesClient::new(ch);
            let e = c
                .explain_route(pb::ExplainRouteRequest { prefix })
                .await
                .map_err(|s| status_error("explain", s))?
                .into_inner();
            print(out, render::explanation(&e))?;
        }
        Command::Announce(a) => {
            let routes = a.attrs.routes(&a.prefixes)?;
            let mut c = pb::routes_client::RoutesClient::new(ch);
            let r = c
                .announce_routes(pb::AnnounceRoutesRequest {
                    owner: a.owner,
                    routes,
                })
                .await
                .map_err(|s| status_error("announce", s))?
                .into_inner();
            print(out, render::change(&r))?;
        }
        Command::Replace(a) => {
            if a.prefixes.is_empty() && !a.none {
                bail!(
                    "give the complete set of prefixes for owner {:?}, or --none to withdraw every route it originates",
                    a.owner
                );
            }
            let routes = a.attrs.routes(&a.prefixes)?;
            let mut c = pb::routes_client::RoutesClient::new(ch);
            let r = c
                .replace_routes(pb::ReplaceRoutesRequest {
                    owner: a.owner,
                    routes,
                })
                .await
                .map_err(|s| status_error("replace", s))?
                .into_inner();
            print(out, render::change(&r))?;
        }
        Command::Withdraw { prefixes, owner } => {
            let mut c = pb::routes_client::RoutesClient::new(ch);
            let r = c
                .withdraw_routes(pb::WithdrawRoutesRequest { owner, prefixes })
                .await
                .map_err(|s| status_error("withdraw", s))?
                .into_inner();
            print(out, render::change(&r))?;
        }
        Command::Watch { what } => watch_cmd(ch, out, what).await?,
        Command::Health => return health_cmd(ch, out).await,
        Command::LogLevel { level } => {
            let mut c = pb::daemon_client::DaemonClient::new(ch);
            let r = c
                .set_log_level(pb::SetLogLevelRequest {
                    level: level.clone(),
                })
                .await
                .map_err(|s| status_error("set log level", s))?
                .into_inner();
            print(
                out,
                Rendered::message(
                    serde_json::json!({"previous": r.previous, "current": level}),
                    format!("log level set to {level} (was {})", r.previous),
                ),
            )?;
        }
        Command::Config => {
            let mut c = pb::daemon_client::DaemonClient::new(ch);
            let r = c
                .get_config(pb::GetConfigRequest {})
                .await
                .map_err(|s| status_error("get config", s))?
                .into_inner();
            print(out, render::config(&r.config_json))?;
        }
        Command::Graph(_) => unreachable!("drawn before connecting"),
        Command::Top { .. } => unreachable!("run before connecting"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `tabbyctl graph`: the daemon's sessions, or the cluster from a datastore
/// (no daemon needed), as DOT or SVG.
async fn graph_cmd(
    target: &ApiTarget,
    tls: &TlsFiles,
    out: Option<Output>,
    args: &GraphArgs,
) -> Result<()> {
    let svg = match out {
        None | Some(Output::Dot) => false,
        Some(Output::Svg) => true,
        Some(_) => bail!("tabbyctl graph draws -o dot (the default) or -o svg"),
    };
    let picture = match &args.datastore {
        Some(spec) => {
            let res = read_datastore(spec, Duration::from_secs(args.timeout_seconds)).await?;
            graph::cluster(&res, spec)
        }
        None => {
            let ch = connect(target, tls).await?;
            let mut daemon = pb::daemon_client::DaemonClient::new(ch.clone());
            let st = daemon
                .status(pb::StatusRequest {})
                .await
                .map_err(|s| status_error("status", s))?
                .into_inner();
            // A daemon that names no node is drawn as "this node".
            let name = node_name(ch.clone()).await;
            let list = pb::peers_client::PeersClient::new(ch)
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(|s| status_error("listing peers", s))?
                .into_inner();
            let local = graph::Local {
                name,
                router_id: st.router_id,
                local_as: st.local_as,
            };
            graph::sessions(&local, &list.peers)
        }
    };
    let dot = picture.to_dot();
    if svg {
        print!("{}", graph::svg(&dot)?);
    } else {
        print!("{dot}");
    }
    Ok(())
}

/// One complete read of a datastore, as `tabbyd plan` reads it.
async fn read_datastore(spec: &str, timeout: Duration) -> Result<tabby_topology::Resources> {
    let parsed: tabby_topology::DatastoreSpec = spec
        .parse()
        .map_err(|e| anyhow::anyhow!("--datastore {spec}: {e}"))?;
    let mut source = tabby_topology::Source::open(&parsed, None);
    let res = tokio::time::timeout(timeout, source.next())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no complete read of {spec} within {timeout:?}; is the datastore reachable? \
                 (--timeout-seconds waits longer)"
            )
        })?
        .map_err(|e| anyhow::anyhow!("cannot read {spec}: {e}"))?;
    Ok((*res).clone())
}

fn print(out: Output, r: Rendered) -> Result<()> {
    let s = r.format(out)?;
    print!("{s}");
    if !s.ends_with('\n') {
        println!();
    }
    Ok(())
}

async fn peers_cmd(ch: Channel, out: Output, action: PeersAction) -> Result<()> {
    let mut c = pb::peers_client::PeersClient::new(ch);
    match action {
        PeersAction::List => {
            let l = c
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(|s| status_error("listing peers", s))?
                .into_inner();
            print(out, render::peers(&l.peers))
        }
        PeersAction::Show { address } => {
            let p = c
                .get_peer(pb::GetPeerRequest { address })
                .await
                .map_err(|s| status_error("show peer", s))?
                .into_inner();
            print(out, render::peer_detail(&p))
        }
        PeersAction::Add {
            address,
            remote_as,
            local_as,
            hold_time,
            keepalive,
            passive,
            multihop,
            description,
        } => {
            let p = c
                .add_peer(pb::AddPeerRequest {
                    config: Some(pb::PeerConfig {
                        address,
                        remote_as,
                        local_as: local_as.unwrap_or(0),
                        hold_time_seconds: hold_time.unwrap_or(0),
                        keepalive_seconds: keepalive.unwrap_or(0),
                        description,
                        passive,
                        ebgp_multihop_ttl: multihop.unwrap_or(0),
                        route_reflector_client: false,
                        families: Vec::new(),
                        r#type: pb::PeerType::Api as i32,
                    }),
                })
                .await
                .map_err(|s| status_error("add peer", s))?
                .into_inner();
            print(out, render::peer_detail(&p))
        }
        PeersAction::Del { address } => {
            c.delete_peer(pb::DeletePeerRequest {
                address: address.clone(),
            })
            .await
            .map_err(|s| status_error("delete peer", s))?;
            print(
                out,
                Rendered::message(
                    serde_json::json!({"deleted": address}),
                    format!("peer {address} deleted"),
                ),
            )
        }
        PeersAction::Enable { address } => {
            let p = c
                .enable_peer(pb::EnablePeerRequest { address })
                .await
                .map_err(|s| status_error("enable peer", s))?
                .into_inner();
            print(out, render::peer_detail(&p))
        }
        PeersAction::Disable { address, reason } => {
            let p = c
                .disable_peer(pb::DisablePeerRequest { address, reason })
                .await
                .map_err(|s| status_error("disable peer", s))?
                .into_inner();
            print(out, render::peer_detail(&p))
        }
        PeersAction::Reset {
            address,
            soft,
            reason,
        } => {
            let kind = match soft {
                None => pb::ResetKind::Hard,
                Some(SoftDir::In) => pb::ResetKind::SoftIn,
                Some(SoftDir::Out) => pb::ResetKind::SoftOut,
                Some(SoftDir::Both) => pb::ResetKind::SoftBoth,
            };
            c.reset_peer(pb::ResetPeerRequest {
                address: address.clone(),
                kind: kind as i32,
                reason,
            })
            .await
            .map_err(|s| status_error("reset peer", s))?;
            let what = if soft.is_some() {
                "soft reset"
            } else {
                "reset"
            };
            print(
                out,
                Rendered::message(
                    serde_json::json!({"reset": address, "kind": kind.as_str_name()}),
                    format!("peer {address}: {what} requested"),
                ),
            )
        }
    }
}

async fn watch_cmd(ch: Channel, out: Output, what: WatchWhat) -> Result<()> {
    match what {
        WatchWhat::Routes {
            family,
            resume,
            count,
        } => {
            let mut c = pb::routes_client::RoutesClient::new(ch);
            let mut s = c
                .watch_routes(pb::WatchRoutesRequest {
                    family: fam(family),
                    resume_from_sequence: resume.unwrap_or(0),
                })
                .await
                .map_err(|s| status_error("watch routes", s))?
                .into_inner();
            let mut n = 0u64;
            while let Some(ev) = s.next().await {
                let ev = ev.map_err(|s| status_error("watch routes", s))?;
                println!("{}", render::route_event(out, &ev)?);
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
        }
        WatchWhat::Peers { count } => {
            let mut c = pb::peers_client::PeersClient::new(ch);
            let mut s = c
                .watch_peers(pb::WatchPeersRequest {})
                .await
                .map_err(|s| status_error("watch peers", s))?
                .into_inner();
            let mut n = 0u64;
            while let Some(ev) = s.next().await {
                let ev = ev.map_err(|s| status_error("watch peers", s))?;
                println!("{}", render::peer_event(out, &ev)?);
                n += 1;
                if count.is_some_and(|c| n >= c) {
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn health_cmd(ch: Channel, out: Output) -> Result<ExitCode> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let mut c = HealthClient::new(ch);
    let mut check = async |svc: &str| -> Result<bool> {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            c.check(HealthCheckRequest {
                service: svc.into(),
            }),
        )
        .await
        .context("health check timed out after 5s: tabbyd is not answering")?
        .map_err(|s| status_error("health check", s))?;
        Ok(r.into_inner().status == ServingStatus::Serving as i32)
    };
    let live = check("liveness").await?;
    let ready = check("readiness").await?;
    let word = |b: bool| if b { "yes" } else { "no" };
    print(
        out,
        Rendered::message(
            serde_json::json!({"live": live, "ready": ready}),
            format!("live: {}\nready: {}", word(live), word(ready)),
        ),
    )?;
    Ok(if live && ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
