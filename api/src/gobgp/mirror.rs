//! Code that reads the same for both versions' generated types.
//!
//! v3 and v4 name their messages, fields and (prost having stripped v4's
//! `TYPE_`-style prefixes) enum variants alike; they differ in enum numbers,
//! which the generated types hide, and in how NLRI, attributes and
//! capabilities are packed. So the conversions from the neutral forms of
//! [`super::paths`] and [`super::peers`] are written once, here, and
//! expanded over each version's module by [`mirrored!`]. The invoking module
//! supplies its packing: `pack_nlri(g::IpAddressPrefix)`,
//! `pack_attr(PathAttr)` and `pack_cap(Capability)`.

/// Expands the shared conversions and call bodies over generated module
/// `$pb` (`tabby_proto::gobgp` or `tabby_proto::gobgp4`).
macro_rules! mirrored {
    ($pb:path) => {
        use $pb as pb;

        fn path_pb(f: PathFacts) -> pb::Path {
            pb::Path {
                nlri: Some(pack_nlri(f.nlri)),
                pattrs: f.attrs.into_iter().map(pack_attr).collect(),
                age: Some(f.age),
                best: f.best,
                is_withdraw: f.withdrawal,
                family: Some(f.family),
                source_asn: f.source_asn,
                neighbor_ip: f.neighbor_ip,
                stale: f.stale,
                is_from_external: f.from_external,
                ..Default::default()
            }
        }

        fn session_state(s: SessionState) -> pb::peer_state::SessionState {
            use pb::peer_state::SessionState as S;
            match s {
                SessionState::Idle => S::Idle,
                SessionState::Connect => S::Connect,
                SessionState::Active => S::Active,
                SessionState::OpenSent => S::Opensent,
                SessionState::OpenConfirm => S::Openconfirm,
                SessionState::Established => S::Established,
            }
        }

        /// A model peer → this version's Peer.
        fn peer_pb(p: &PeerStatus, local_as: u32) -> pb::Peer {
            use pb::peer_state::AdminState;
            let parts = peer_parts(p, local_as);
            let c = &p.config;
            let ptype = if parts.internal {
                pb::PeerType::Internal
            } else {
                pb::PeerType::External
            } as i32;
            pb::Peer {
                conf: Some(pb::PeerConf {
                    description: c.description.clone(),
                    local_asn: parts.local_as,
                    neighbor_address: c.address.to_string(),
                    peer_asn: c.remote_as,
                    r#type: ptype,
                    admin_down: !p.enabled,
                    ..Default::default()
                }),
                ebgp_multihop: Some(parts.ebgp_multihop),
                route_reflector: Some(parts.route_reflector),
                state: Some(pb::PeerState {
                    description: c.description.clone(),
                    local_asn: parts.local_as,
                    messages: Some(parts.messages),
                    neighbor_address: c.address.to_string(),
                    peer_asn: c.remote_as,
                    r#type: ptype,
                    queues: Some(tabby_proto::gobgp::Queues::default()),
                    session_state: session_state(p.state) as i32,
                    admin_state: if p.enabled {
                        AdminState::Up
                    } else {
                        AdminState::Down
                    } as i32,
                    flops: parts.flops,
                    local_cap: parts.local_cap.into_iter().map(pack_cap).collect(),
                    remote_cap: parts.remote_cap.into_iter().map(pack_cap).collect(),
                    router_id: parts.router_id,
                    ..Default::default()
                }),
                timers: Some(parts.timers),
                transport: Some(parts.transport),
                route_server: Some(tabby_proto::gobgp::RouteServer::default()),
                afi_safis: parts.afi_safis,
            }
        }

        fn table(t: i32) -> Table {
            match pb::TableType::try_from(t) {
                Ok(pb::TableType::Global) => Table::Global,
                Ok(pb::TableType::AdjIn) => Table::AdjIn,
                Ok(pb::TableType::AdjOut) => Table::AdjOut,
                _ => Table::Other,
            }
        }

        /// An unset or unknown lookup type is exact, as in GoBGP.
        fn lookup(l: &pb::TableLookupPrefix) -> (&str, Lookup) {
            use pb::table_lookup_prefix::Type;
            let how = match Type::try_from(l.r#type) {
                Ok(Type::Longer) => Lookup::Match(PrefixMatch::Longer),
                Ok(Type::Shorter) => Lookup::Shorter,
                _ => Lookup::Match(PrefixMatch::Exact),
            };
            (l.prefix.as_str(), how)
        }

        /// `gobgp global`.
        async fn get_bgp(b: &Backend) -> Result<Response<pb::GetBgpResponse>, Status> {
            Ok(Response::new(pb::GetBgpResponse {
                global: Some(b.global().await?),
            }))
        }

        /// `gobgp monitor global rib|neighbor`: best paths (with the current
        /// table first or not) and peer states; other tables are refused.
        async fn watch_event(
            b: &Backend,
            req: pb::WatchEventRequest,
            batch: usize,
        ) -> Result<Response<ItemStream<pb::WatchEventResponse>>, Status> {
            use pb::watch_event_request::table::filter::Type;
            let mut best = None;
            if let Some(table) = &req.table {
                let mut init = false;
                for f in &table.filters {
                    match Type::try_from(f.r#type) {
                        Ok(Type::Best) => init |= f.init,
                        _ => {
                            return Err(Status::unimplemented(
                                "tabbyd watches best paths only (gobgp monitor global rib)",
                            ));
                        }
                    }
                }
                best = Some(init);
            }
            b.watch::<Events>(WatchRequest {
                best,
                peers: req.peer.is_some(),
                batch,
            })
            .await
        }

        /// This version's packing of watch events.
        struct Events;

        impl Dialect for Events {
            type Path = pb::Path;
            type Event = pb::WatchEventResponse;

            fn path(prefix: &IpNet, path: &Path, local_as: u32) -> pb::Path {
                path_pb(path_facts(prefix, path, local_as))
            }

            fn withdrawal(prefix: &IpNet) -> pb::Path {
                path_pb(withdrawal_facts(prefix))
            }

            fn table_event(paths: Vec<pb::Path>) -> pb::WatchEventResponse {
                pb::WatchEventResponse {
                    event: Some(pb::watch_event_response::Event::Table(
                        pb::watch_event_response::TableEvent { paths },
                    )),
                }
            }

            fn peer_state_event(peer: &PeerStatus, local_as: u32) -> pb::WatchEventResponse {
                pb::WatchEventResponse {
                    event: Some(pb::watch_event_response::Event::Peer(
                        pb::watch_event_response::PeerEvent {
                            r#type: pb::watch_event_response::peer_event::Type::State as i32,
                            peer: Some(peer_pb(peer, local_as)),
                        },
                    )),
                }
            }
        }

        /// `gobgp neighbor [ADDR]`.
        async fn list_peer(
            b: &Backend,
            req: pb::ListPeerRequest,
        ) -> Result<Response<ItemStream<pb::ListPeerResponse>>, Status> {
            let local_as = b.local_as().await;
            let peers = b.peers(&req.address).await?;
            Ok(streamed(peers.iter().map(|p| pb::ListPeerResponse {
                peer: Some(peer_pb(p, local_as)),
            })))
        }

        /// `gobgp global rib`, `gobgp neighbor ADDR adj-in|adj-out`.
        async fn list_path(
            b: &Backend,
            req: pb::ListPathRequest,
        ) -> Result<Response<ItemStream<pb::ListPathResponse>>, Status> {
            let family = family_from_pb(req.family.as_ref())?;
            let lookups: Vec<_> = req.prefixes.iter().map(lookup).collect();
            let filter = lookup_filter(&lookups)?;
            let local_as = b.local_as().await;
            let routes = b
                .table_routes(table(req.table_type), &req.name, family, filter)
                .await?;
            Ok(streamed(routes.iter().map(|r| {
                pb::ListPathResponse {
                    destination: Some(pb::Destination {
                        prefix: r.prefix.to_string(),
                        paths: r
                            .paths
                            .iter()
                            .map(|p| Events::path(&r.prefix, p, local_as))
                            .collect(),
                    }),
                }
            })))
        }

        /// `gobgp global rib summary`.
        async fn get_table(
            b: &Backend,
            req: pb::GetTableRequest,
        ) -> Result<pb::GetTableResponse, Status> {
            let family = family_from_pb(req.family.as_ref())?;
            let (destinations, paths) = b
                .table_counts(table(req.table_type), &req.name, family)
                .await?;
            Ok(pb::GetTableResponse {
                num_destination: destinations,
                num_path: paths,
                num_accepted: paths,
            })
        }
    };
}

pub(super) use mirrored;
