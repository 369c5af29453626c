//! The join API server (axum). It trusts nothing but the tunnel source address of each
//! connection: forwarded headers are ignored, and the listener is bound to the tunnel
//! interface (see [`crate::listen`]).

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use proton_proto::join::{ApiError, RedeemRequest, RedeemResponse, WhoAmI};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Why a join API call was refused; each maps to an HTTP status and a one-line reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinRefusal {
    #[error("{0} is not a pending invitation's address")]
    UnknownCaller(Ipv4Addr),
    #[error("this invitation does not belong to the address it was used from")]
    WrongSecret,
    #[error("this invitation has already been used")]
    AlreadyUsed,
    #[error("this invitation has expired")]
    Expired,
    /// The key is another peer's. Which peer is not said: an invitee must not learn the
    /// names behind keys it tries.
    #[error("this public key is already in use on this network: make a new key pair and retry")]
    KeyInUse,
    #[error("{0}")]
    BadRequest(String),
    #[error("the gateway failed: {0}")]
    Internal(String),
}

impl JoinRefusal {
    pub fn status(&self) -> StatusCode {
        match self {
            JoinRefusal::UnknownCaller(_) | JoinRefusal::WrongSecret => StatusCode::FORBIDDEN,
            JoinRefusal::AlreadyUsed | JoinRefusal::Expired => StatusCode::GONE,
            JoinRefusal::KeyInUse => StatusCode::CONFLICT,
            JoinRefusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            JoinRefusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for JoinRefusal {
    fn into_response(self) -> Response {
        let body = axum::Json(ApiError {
            error: self.to_string(),
        });
        (self.status(), body).into_response()
    }
}

/// A redeem that succeeded: the answer. The key swap that follows is the daemon's
/// (state in the DB, applied by its reconcile), not the server's.
pub struct Redeemed {
    pub response: RedeemResponse,
    /// The answer repeated to the invitee that already redeemed (its first answer was
    /// lost): not a new join.
    pub repeat: bool,
}

/// What the daemon provides to the API: the state and the device behind it.
pub trait JoinService: Send + Sync + 'static {
    fn whoami(&self, caller: Ipv4Addr) -> Result<WhoAmI, JoinRefusal>;
    fn redeem(&self, caller: Ipv4Addr, req: RedeemRequest) -> Result<Redeemed, JoinRefusal>;
}

pub fn router(service: Arc<dyn JoinService>) -> Router {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/redeem", post(redeem))
        .with_state(service)
}

fn caller_v4(addr: SocketAddr) -> Result<Ipv4Addr, JoinRefusal> {
    match addr.ip() {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .ok_or_else(|| JoinRefusal::BadRequest("IPv6 callers are not supported".into())),
    }
}

async fn whoami(
    State(service): State<Arc<dyn JoinService>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
) -> Result<axum::Json<WhoAmI>, JoinRefusal> {
    let caller = caller_v4(addr)?;
    tokio::task::spawn_blocking(move || service.whoami(caller))
        .await
        .map_err(|e| JoinRefusal::Internal(e.to_string()))?
        .map(axum::Json)
}

async fn redeem(
    State(service): State<Arc<dyn JoinService>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    body: axum::body::Bytes,
) -> Result<Response, JoinRefusal> {
    let caller = caller_v4(addr)?;
    let req = RedeemRequest::from_body(&body).map_err(JoinRefusal::BadRequest)?;
    let redeemed = tokio::task::spawn_blocking(move || service.redeem(caller, req))
        .await
        .map_err(|e| JoinRefusal::Internal(e.to_string()))??;
    tracing::info!(peer = %redeemed.response.name, %caller, "invitation redeemed");
    Ok(axum::Json(redeemed.response).into_response())
}

/// Serves the API on `listener` until `shutdown` resolves, within
/// [`crate::bounded::Limits::JOIN_API`] (connections per address and in total, timeouts).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<dyn JoinService>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::bounded::serve(
        "join API",
        listener,
        router(service),
        crate::bounded::Limits::JOIN_API,
        shutdown,
    )
    .await
}
