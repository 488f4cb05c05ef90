//! A clear UNIMPLEMENTED for the GoBGP methods tabbyd does not serve. The
//! generated server answers them with a bare status; this wrapper adds a
//! message naming the method, so `gobgp vrf` says why it failed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::server::NamedService;

/// Wraps a generated GoBGP server `S`.
#[derive(Debug, Clone)]
pub struct ExplainUnimplemented<S> {
    inner: S,
}

impl<S> ExplainUnimplemented<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        ExplainUnimplemented { inner }
    }
}

impl<S: NamedService> NamedService for ExplainUnimplemented<S> {
    const NAME: &'static str = S::NAME;
}

/// True for a response carrying UNIMPLEMENTED without a message.
fn bare_unimplemented(r: &http::Response<Body>) -> bool {
    let code = tonic::Code::Unimplemented as i32;
    r.headers()
        .get(tonic::Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == code.to_string().as_bytes())
        && !r.headers().contains_key("grpc-message")
}

impl<S, B> Service<http::Request<B>> for ExplainUnimplemented<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + NamedService,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            if !bare_unimplemented(&resp) {
                return Ok(resp);
            }
            Ok(tonic::Status::unimplemented(format!(
                "tabbyd does not serve {}/{method}: its GoBGP API covers global, neighbor, global rib and monitor only (see the README)",
                S::NAME
            ))
            .into_http())
        })
    }
}
