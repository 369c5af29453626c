//! The join API: what a worker and the gateway exchange over the tunnel, and the
//! worker's blocking client for it.
//!
//! The API listens on the gateway's tunnel address only. A caller is identified by the
//! tunnel address its packets come from: WireGuard only accepts a packet from a peer if
//! its source address is in that peer's AllowedIPs, so the address names the key.
//!
//! The client speaks plain HTTP: it only ever travels inside the WireGuard tunnel, which
//! already encrypts and authenticates both ends.

use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;
use std::time::Duration;

/// TCP port of the join API on the gateway's tunnel address.
pub const JOIN_API_PORT: u16 = 51821;

/// `POST /v1/redeem`: the invitee's real public key, sent through the tunnel made with
/// the invitation's throw-away key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RedeemRequest {
    /// The secret from the invitation (the gateway compares its hash).
    pub secret: String,
    /// The invitee's own public key, made on the invitee's machine.
    pub public_key: String,
}

impl RedeemRequest {
    /// Parses a `POST /v1/redeem` body; the error is one line that quotes none of it
    /// (serde_json's messages can quote a whole value).
    pub fn from_body(body: &[u8]) -> Result<RedeemRequest, String> {
        serde_json::from_slice(body).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Io | serde_json::error::Category::Eof => {
                    "it ends early"
                }
                serde_json::error::Category::Syntax => "it is not JSON",
                serde_json::error::Category::Data => {
                    "it needs the string fields secret and public_key"
                }
            };
            format!(
                "malformed redeem request: {what} (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }
}

/// What the gateway answers to a successful redeem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RedeemResponse {
    pub name: String,
    pub role: String,
    /// The invitee's tunnel address with the network's prefix, e.g. `10.7.7.5/24`.
    pub address: String,
    pub network: String,
    pub gateway_public_key: String,
    pub persistent_keepalive: u16,
    pub mtu: u16,
    /// K3s join data, when the gateway runs K3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3s: Option<K3sJoin>,
}

/// K3s agent join data. The token is a per-node bootstrap token with a short TTL,
/// never the server's own token.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct K3sJoin {
    pub server_url: String,
    pub version: String,
    /// The bootstrap token: wiped from memory when the answer is dropped.
    pub token: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for K3sJoin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sJoin")
            .field("server_url", &self.server_url)
            .field("version", &self.version)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `GET /v1/whoami`: who the gateway thinks the caller is (by tunnel address).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WhoAmI {
    pub name: String,
    pub role: String,
    pub address: String,
    pub public_key: String,
}

/// An error answer: a one-line reason the CLI prints as it is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    pub error: String,
}

// ---- the client (`proton join`) ----

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

/// A blocking HTTP client for one call: refusals come back as answers, not errors.
fn http_client(timeout: Duration) -> ureq::Agent {
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
    finish(api, http_client(timeout).post(&url).send_json(req))
}

/// Asks the gateway who we are, by the tunnel address our packets come from.
pub fn whoami(api: SocketAddrV4, timeout: Duration) -> Result<WhoAmI, ClientError> {
    let url = format!("http://{api}/v1/whoami");
    finish(api, http_client(timeout).get(&url).call())
}
