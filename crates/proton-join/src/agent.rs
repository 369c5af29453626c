//! `proton agent`: the worker's userspace tunnel from [`AGENT_CONF`], re-resolving the
//! gateway's name while it runs (wg-quick resolves it once; a gateway whose name moves
//! to a new address is followed here).
//!
//! `agent.conf` is wg-quick text with one line of Proton's above `[Interface]`,
//! `# Proton-Interface = wg1`: the interface `proton join --interface` was given. A
//! comment, so the file stays what wg-quick and `wg-quick strip` read; a file written
//! before the line existed means [`DEFAULT_INTERFACE`].

use crate::{AGENT_CONF, DEFAULT_INTERFACE, ResolveError, resolve};
use proton_core::host::{HostError, Root};
use proton_core::spec::Endpoint;
use proton_core::wgconf::{
    INTERFACE_KEY, PeerSection, WgConfError, WgQuickConfig, recorded_interface,
};
use proton_wg::{Device, InterfaceConfig, PeerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// `agent.conf`: the tunnel and the interface it runs on.
#[derive(Debug, Clone)]
pub struct AgentConf {
    pub interface: String,
    pub config: WgQuickConfig,
}

impl AgentConf {
    pub fn render(&self) -> Zeroizing<String> {
        let body = self.config.render();
        let mut text = Zeroizing::new(String::with_capacity(body.len() + 40));
        text.push_str(&format!("# {INTERFACE_KEY} = {}\n", self.interface));
        text.push_str(&body);
        text
    }

    pub fn parse(text: &str) -> Result<AgentConf, AgentError> {
        let config = WgQuickConfig::parse(text).map_err(|source| AgentError::Parse {
            path: AGENT_CONF.into(),
            source,
        })?;
        let interface = recorded_interface(text)
            .map_err(|e| AgentError::BadInterface(e.0))?
            .unwrap_or(DEFAULT_INTERFACE)
            .to_string();
        Ok(AgentConf { interface, config })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{} is missing", .0.display())]
    Missing(PathBuf),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("reading {path}")]
    Parse {
        path: String,
        #[source]
        source: WgConfError,
    },
    #[error("agent.conf's {INTERFACE_KEY} `{0}` is not an interface name")]
    BadInterface(String),
    #[error("agent.conf has no PrivateKey")]
    NoPrivateKey,
    #[error("agent.conf has no IPv4 Address")]
    NoAddress,
    #[error("agent.conf has no [Peer]")]
    NoPeer,
    #[error("agent.conf's peer has no Endpoint")]
    NoEndpoint,
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Device(#[from] proton_wg::WgError),
}

impl AgentError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            AgentError::Missing(_) => Some("run `proton join` first"),
            AgentError::Resolve(e) => e.hint(),
            _ => None,
        }
    }
}

/// What `proton agent` may change from the defaults.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Directory for the WireGuard UAPI socket (default: where `wg` looks).
    pub uapi_dir: Option<PathBuf>,
}

/// The running tunnel.
pub struct Agent {
    device: Device,
    gateway: PeerSection,
    endpoint: Endpoint,
    current: SocketAddr,
    interface: String,
}

impl Agent {
    /// Reads [`AGENT_CONF`] and brings its tunnel up.
    pub async fn start(root: &Root, opts: &AgentOptions) -> Result<Agent, AgentError> {
        let text = root
            .read_optional(AGENT_CONF)?
            .ok_or_else(|| AgentError::Missing(root.path(AGENT_CONF)))?;
        let AgentConf { interface, config } = AgentConf::parse(&text)?;
        let key = config
            .interface
            .private_key
            .clone()
            .ok_or(AgentError::NoPrivateKey)?;
        let address = match config.interface.addresses.first() {
            Some(ipnet::IpNet::V4(a)) => *a,
            _ => return Err(AgentError::NoAddress),
        };
        let gateway = config.peers.first().ok_or(AgentError::NoPeer)?.clone();
        let endpoint = gateway.endpoint.clone().ok_or(AgentError::NoEndpoint)?;
        let mut cfg = InterfaceConfig::new(&interface, key, address);
        cfg.mtu = config.interface.mtu.unwrap_or(1420);
        if let Some(dir) = &opts.uapi_dir {
            cfg.uapi_dir = dir.clone();
        }
        let current = resolve(&endpoint)?;
        cfg.peers = vec![peer_for(&gateway, current)];
        let device = Device::up(cfg).await?;
        Ok(Agent {
            device,
            gateway,
            endpoint,
            current,
            interface,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The address the endpoint resolved to.
    pub fn resolved(&self) -> SocketAddr {
        self.current
    }

    /// Keeps the tunnel up until `shutdown` resolves, re-resolving the endpoint every
    /// 30 s; then takes the device down.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let mut every = tokio::time::interval(Duration::from_secs(30));
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                _ = every.tick() => {
                    let ep = self.endpoint.clone();
                    if let Ok(Ok(addr)) = tokio::task::spawn_blocking(move || resolve(&ep)).await
                        && addr != self.current
                    {
                        tracing::info!(endpoint = %self.endpoint, from = %self.current, to = %addr, "gateway endpoint moved");
                        if let Err(e) = self.device.reconcile(&[peer_for(&self.gateway, addr)]).await {
                            break Err(e.into());
                        }
                        self.current = addr;
                    }
                }
            }
        };
        self.device.down().await;
        result
    }
}

fn peer_for(gw: &PeerSection, addr: SocketAddr) -> PeerConfig {
    PeerConfig {
        endpoint: Some(addr),
        keepalive: gw.persistent_keepalive,
        ..PeerConfig::new(gw.public_key, gw.allowed_ips.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_core::keys::PrivateKey;

    fn conf(interface: &str) -> AgentConf {
        let mut config = WgQuickConfig::default();
        config.interface.private_key = Some(PrivateKey::generate());
        config.interface.addresses = vec!["10.7.7.5/24".parse().unwrap()];
        let mut gw = PeerSection::new(PrivateKey::generate().public_key());
        gw.name = Some("gateway".into());
        gw.endpoint = Some("vpn.example.org:51820".parse().unwrap());
        config.peers.push(gw);
        AgentConf {
            interface: interface.into(),
            config,
        }
    }

    #[test]
    fn the_interface_name_round_trips_and_stays_a_wg_quick_file() {
        let written = conf("wg7");
        let text = written.render();
        assert!(
            text.starts_with("# Proton-Interface = wg7\n[Interface]\n"),
            "{}",
            *text
        );
        let read = AgentConf::parse(&text).unwrap();
        assert_eq!(read.interface, "wg7");
        assert_eq!(read.config, written.config);
        // What wg-quick and every other reader of the format sees: the same tunnel.
        assert_eq!(WgQuickConfig::parse(&text).unwrap(), written.config);
    }

    #[test]
    fn a_file_from_before_the_line_means_wg0_and_a_bad_name_is_refused() {
        let old = conf("ignored").config.render();
        assert_eq!(AgentConf::parse(&old).unwrap().interface, "wg0");
        let bad = format!("# Proton-Interface = a/b\n{}", *old);
        let e = AgentConf::parse(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "agent.conf's Proton-Interface `a/b` is not an interface name"
        );
        // A peer's own comment is not the interface line.
        let later = old.replace("# gateway", "# Proton-Interface = wg9");
        assert_eq!(AgentConf::parse(&later).unwrap().interface, "wg0");
    }
}
