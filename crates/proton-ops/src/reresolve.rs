//! Following a gateway whose host name moves to a new address. wg-quick resolves the
//! `Endpoint` once, at `up`; when the VPS gets a new IP (or a dynamic-DNS name moves)
//! the tunnel keeps sending to the old one forever. `proton reresolve` (run every 30 s
//! by `proton-reresolve.timer`, which `proton join --backend kernel` installs; its units
//! are in `proton_join::units`) resolves the name again and re-points the live peer with
//! `wg set` — the job of wireguard-tools' `reresolve-dns.sh`, without the shell. The
//! userspace `proton agent` does the same in-process.

use crate::OpsError;
use crate::probe;
use crate::wgshow;
use crate::worker::WorkerTunnel;
use std::net::SocketAddr;

/// What a re-resolution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint is an address: nothing to follow.
    NotAName,
    Unchanged(SocketAddr),
    Moved {
        from: Option<String>,
        to: SocketAddr,
    },
}

impl Outcome {
    /// What `proton reresolve` says about tunnel `t`, one line.
    pub fn line(&self, t: &WorkerTunnel) -> String {
        let (iface, endpoint) = (&t.interface, &t.endpoint);
        match self {
            Outcome::NotAName => format!("{iface}: {endpoint} is an address; nothing to follow"),
            Outcome::Unchanged(a) => format!("{iface}: {endpoint} still resolves to {a}"),
            Outcome::Moved { from, to } => format!(
                "{iface}: {endpoint} moved from {} to {to}; the tunnel now sends there",
                from.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// The address to use for `host:port`: the first IPv4 one (the tunnel runs over IPv4
/// NAT), else the first of any family.
pub fn pick(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// Resolves the tunnel's endpoint name again and re-points the live gateway peer when
/// it moved.
pub fn reresolve(t: &WorkerTunnel) -> Result<Outcome, OpsError> {
    if t.endpoint.ip().is_some() {
        return Ok(Outcome::NotAName);
    }
    let name = t.endpoint.to_string();
    let addrs = probe::resolve(&name).map_err(|e| OpsError::Command {
        command: format!("resolving {name}"),
        message: e.to_string(),
    })?;
    let to = pick(&addrs).ok_or_else(|| OpsError::Command {
        command: format!("resolving {name}"),
        message: "no address".into(),
    })?;
    let live = crate::worker::gateway_link(t)?
        .ok_or_else(|| OpsError::Command {
            command: format!("wg show {}", t.interface),
            message: "the tunnel is down (no gateway peer)".into(),
        })?
        .endpoint;
    if live.as_deref() == Some(to.to_string().as_str()) {
        return Ok(Outcome::Unchanged(to));
    }
    wgshow::set_endpoint(&t.interface, &t.gateway_key.to_base64(), &to.to_string())?;
    tracing::info!(endpoint = %t.endpoint, to = %to, "gateway endpoint moved");
    Ok(Outcome::Moved { from: live, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_ipv4() {
        let v6: SocketAddr = "[2001:db8::1]:51820".parse().unwrap();
        let v4: SocketAddr = "198.51.100.7:51820".parse().unwrap();
        assert_eq!(pick(&[v6, v4]), Some(v4));
        assert_eq!(pick(&[v6]), Some(v6));
        assert_eq!(pick(&[]), None);
    }
}
