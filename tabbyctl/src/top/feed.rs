//! The connections `tabbyctl top` keeps to tabbyd: the WatchPeers and
//! WatchRoutes streams, each reconnecting with back-off when it ends, and a
//! poll of Status and ListPeers every interval for what the watches do not
//! carry (counters that change without a state change, the daemon's status).
//! Everything arrives at the event loop as a [`Msg`].

use std::future::Future;
use std::time::Duration;

use tabby_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::model::{Feed, Msg};
use crate::client::{ApiTarget, TlsFiles, connect, node_name};

/// The first retry after a stream ends; doubled on each failure up to
/// [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon is.
#[derive(Debug, Clone)]
pub struct Api {
    pub target: ApiTarget,
    pub tls: TlsFiles,
}

/// Starts the feeds; they stop when the receiver is dropped or the set is.
pub fn spawn(api: Api, interval: Duration, tx: mpsc::Sender<Msg>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    set.spawn(follow(
        Feed::Peers,
        api.clone(),
        tx.clone(),
        |ch| async move {
            pb::peers_client::PeersClient::new(ch)
                .watch_peers(pb::WatchPeersRequest {})
                .await
        },
        |ev| Msg::Peer(Box::new(ev)),
    ));
    set.spawn(follow(
        Feed::Routes,
        api.clone(),
        tx.clone(),
        |ch| async move {
            // Always from a snapshot: after a daemon restart its sequence
            // numbers start again, so resuming could skip changes.
            pb::routes_client::RoutesClient::new(ch)
                .max_decoding_message_size(256 << 20)
                .watch_routes(pb::WatchRoutesRequest::default())
                .await
        },
        Msg::Route,
    ));
    set.spawn(poll(api, interval, tx));
    set
}

/// Follows one server stream until the receiver goes: opens it, forwards
/// every message, and when it ends says why and retries with back-off.
async fn follow<T, F, Fut>(feed: Feed, api: Api, tx: mpsc::Sender<Msg>, open: F, wrap: fn(T) -> Msg)
where
    F: Fn(Channel) -> Fut,
    Fut: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
{
    let mut delay = MIN_BACKOFF;
    loop {
        let why = match connect(&api.target, &api.tls).await {
            Err(e) => format!("{e:#}"),
            Ok(ch) => match open(ch).await {
                Err(s) => s.message().to_string(),
                Ok(stream) => {
                    if tx.send(Msg::Connected(feed)).await.is_err() {
                        return;
                    }
                    delay = MIN_BACKOFF;
                    let mut stream = stream.into_inner();
                    loop {
                        match stream.message().await {
                            Ok(Some(m)) => {
                                if tx.send(wrap(m)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break "tabbyd ended the stream".to_string(),
                            Err(s) => break s.message().to_string(),
                        }
                    }
                }
            },
        };
        if tx.send(Msg::Down(feed, why)).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// Status, ListPeers and (once per connection) the node's name, every
/// interval.
async fn poll(api: Api, interval: Duration, tx: mpsc::Sender<Msg>) {
    let mut conn: Option<(Channel, Option<String>)> = None;
    loop {
        let msg = match tokio::time::timeout(POLL_TIMEOUT, poll_once(&api, &mut conn)).await {
            Ok(Ok(m)) => m,
            Ok(Err(why)) => {
                conn = None;
                Msg::Down(Feed::Poll, why)
            }
            Err(_) => {
                conn = None;
                Msg::Down(
                    Feed::Poll,
                    format!("no answer within {}s", POLL_TIMEOUT.as_secs()),
                )
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

async fn poll_once(api: &Api, conn: &mut Option<(Channel, Option<String>)>) -> Result<Msg, String> {
    if conn.is_none() {
        let ch = connect(&api.target, &api.tls)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let node = node_name(ch.clone()).await;
        *conn = Some((ch, node));
    }
    let Some((ch, node)) = conn.as_ref() else {
        return Err("not connected".into());
    };
    let status = pb::daemon_client::DaemonClient::new(ch.clone())
        .status(pb::StatusRequest {})
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let peers = pb::peers_client::PeersClient::new(ch.clone())
        .list_peers(pb::ListPeersRequest {})
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner()
        .peers;
    Ok(Msg::Polled {
        status,
        peers,
        node: node.clone(),
    })
}
