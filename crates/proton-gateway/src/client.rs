//! The join API client used by `proton join`. Plain HTTP: it only ever travels inside
//! the WireGuard tunnel, which already encrypts and authenticates both ends.

use crate::api::{ApiError, RedeemRequest, RedeemResponse, WhoAmI};
use std::net::SocketAddrV4;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway could not be reached (no handshake yet, tunnel down, timeout).
    #[error("could not reach the join API at {addr}: {reason}")]
    Unreachable { addr: SocketAddrV4, reason: String },
    /// The gateway answered with a refusal; `status` is the HTTP status.
    #[error("{message}")]
    Refused { status: u16, message: String },
    #[error("the join API answered something unreadable: {0}")]
    Protocol(String),
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

fn finish<T: serde::de::DeserializeOwned>(
    addr: SocketAddrV4,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, ClientError> {
    let mut response = result.map_err(|e| ClientError::Unreachable {
        addr,
        reason: e.to_string(),
    })?;
    let status = response.status().as_u16();
    if status >= 400 {
        let message = response
            .body_mut()
            .read_json::<ApiError>()
            .map(|e| e.error)
            .unwrap_or_else(|_| format!("the join API refused with HTTP {status}"));
        return Err(ClientError::Refused { status, message });
    }
    response
        .body_mut()
        .read_json::<T>()
        .map_err(|e| ClientError::Protocol(e.to_string()))
}

/// Redeems an invitation: sends our own public key, gets our place in the network.
pub fn redeem(
    api: SocketAddrV4,
    req: &RedeemRequest,
    timeout: Duration,
) -> Result<RedeemResponse, ClientError> {
    let url = format!("http://{api}/v1/redeem");
    finish(api, agent(timeout).post(&url).send_json(req))
}

/// Asks the gateway who we are, by the tunnel address our packets come from.
pub fn whoami(api: SocketAddrV4, timeout: Duration) -> Result<WhoAmI, ClientError> {
    let url = format!("http://{api}/v1/whoami");
    finish(api, agent(timeout).get(&url).call())
}
