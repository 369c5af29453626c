//! The join protocol. Order, chosen so that re-running after any failure finishes the job:
//! 1. make (or reuse) this machine's own key, saved before anything is sent;
//! 2. bring the tunnel up with the invitation's throw-away key and wait for a handshake;
//! 3. redeem: send our public key; the gateway swaps keys shortly after answering;
//! 4. switch to our own key and confirm with `whoami` through the tunnel;
//! 5. write the permanent tunnel (`/etc/wireguard/<iface>.conf` for wg-quick, or
//!    [`AGENT_CONF`] for `proton agent`) and enable its unit;
//! 6. when the answer carries K3s data: the agent's files are written as soon as the
//!    answer is in (step 4), and the K3s installer runs once the tunnel is permanent.
//!
//! If redeem is refused as already used, step 4 tells whether it was us (a previous
//! run that stopped half-way) — then the job is finished instead of failing.

use crate::agent::AgentConf;
use crate::units::{
    AGENT_UNIT, RERESOLVE_SERVICE, RERESOLVE_TIMER, agent_unit, packaged_unit,
    reresolve_service_unit, reresolve_timer_unit,
};
use crate::{AGENT_CONF, JoinError, NODE_KEY, keys, resolve};
use ipnet::Ipv4Net;
use proton_core::host::{PUBLIC_MODE, Root};
use proton_core::invite::Invitation;
use proton_core::keys::PrivateKey;
use proton_core::spec::Endpoint;
use proton_core::view::WorkerNetwork;
use proton_k3s::install::ScriptSource;
use proton_proto::join::RedeemResponse;
use proton_proto::join::{self as api, ClientError, JOIN_API_PORT, K3sJoin, RedeemRequest};
use proton_wg::{Backend, Device, InterfaceConfig, PeerConfig};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to join.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The WireGuard interface to create (and record with the tunnel).
    pub interface: String,
    /// Give up on reaching the gateway after this long.
    pub timeout: Duration,
    /// The permanent tunnel's data plane: `Auto` is decided by [`proton_wg::detect`].
    pub backend: Backend,
    pub k3s: K3sOptions,
    /// The binary the written units run (this very executable).
    pub proton_bin: String,
}

/// The K3s agent step, when the gateway offers K3s.
#[derive(Debug, Clone)]
pub struct K3sOptions {
    /// Only make the tunnel (the bootstrap token expires unused).
    pub skip: bool,
    pub install_script: ScriptSource,
    /// The k3s binary (and images) are already here: `INSTALL_K3S_SKIP_DOWNLOAD`.
    pub skip_download: bool,
}

/// The gateway's answer, parsed once.
#[derive(Debug, Clone)]
pub struct Joined {
    pub name: String,
    pub role: String,
    /// Our tunnel address with the network's prefix.
    pub address: Ipv4Net,
    pub mtu: u16,
    /// `None`: the gateway asks for none.
    pub keepalive: Option<u16>,
    pub k3s: Option<K3sJoin>,
    /// How the permanent tunnel runs (filled in by step 5).
    pub tunnel: Option<Tunnel>,
}

impl Joined {
    pub fn from_response(r: RedeemResponse) -> Result<Joined, JoinError> {
        let address = r.address.parse().map_err(|source| JoinError::BadAnswer {
            field: "address",
            source,
        })?;
        Ok(Joined {
            name: r.name,
            role: r.role,
            address,
            mtu: r.mtu,
            keepalive: proton_core::view::keepalive(r.persistent_keepalive),
            k3s: r.k3s,
            tunnel: None,
        })
    }
}

/// The permanent tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub interface: String,
    pub kind: TunnelKind,
    /// Its systemd unit, e.g. `wg-quick@wg0.service`.
    pub unit: String,
    /// Enabled and started with systemd (else it is up to the user to start it).
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelKind {
    /// Kernel WireGuard through wg-quick; `config` is the host path of its file.
    WgQuick { config: String },
    /// Proton's userspace data plane, `proton agent`.
    Agent,
}

/// What a join is doing, for the caller to show.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Before the first handshake.
    Joining {
        endpoint: &'a Endpoint,
        address: Ipv4Addr,
        via: SocketAddr,
    },
    /// A re-run: the gateway already holds this machine's key.
    Resumed,
    /// Redeemed with the throw-away key: now checking the tunnel with our own key.
    OwnKey,
    /// The gateway's answer is in and the tunnel's configuration about to be written.
    Joined(&'a Joined),
    /// The re-resolve timer of a wg-quick tunnel could not be enabled.
    ReresolveTimerNotEnabled,
    /// The permanent tunnel is written (and enabled, if [`Tunnel::enabled`]).
    Tunnel(&'a Tunnel),
    K3s(K3sProgress<'a>),
}

#[derive(Debug)]
pub enum K3sProgress<'a> {
    /// The agent's files are written.
    Written {
        config: PathBuf,
        server_url: &'a str,
        node_ip: Ipv4Addr,
        interface: &'a str,
        mtu: u16,
        pod_mtu: u16,
    },
    /// No K3s data in a re-run's answer: the first run's agent config stays.
    KeptConfig {
        config: PathBuf,
    },
    /// The gateway offers no K3s.
    NotOffered,
    /// [`K3sOptions::skip`].
    Skipped,
    /// A host-wide action not taken under a root other than `/`.
    NotRun(&'a str),
    Installing {
        version: &'a str,
    },
    /// A line of the installer's output.
    InstallerOutput(&'a str),
    Installed {
        version: &'a str,
        server_url: &'a str,
        node: &'a str,
    },
    AlreadyInstalled {
        version: &'a str,
    },
    /// `systemctl restart k3s-agent` ran.
    Restarted,
}

/// How long a re-run tries this machine's key from an earlier run before falling back to
/// the invitation: one handshake attempt and WireGuard's 5 s retry.
const RESUME_PROBE: Duration = Duration::from_secs(6);

/// How long, at least, the gateway gets to swap in our own key after its answer.
const CONFIRM_WINDOW: Duration = Duration::from_secs(10);

/// Joins the gateway `inv` names: steps 1 to 6 of the module doc.
pub fn join(
    root: &Root,
    inv: &Invitation,
    opts: &JoinOptions,
    report: &mut dyn FnMut(Progress<'_>),
) -> Result<Joined, JoinError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if inv.is_expired(now) {
        return Err(JoinError::Expired);
    }
    // An existing link of that name is refused, not taken over: the kernel backend would
    // adopt it (and delete it when the join ends), which could be a running tunnel.
    if interface_exists(&opts.interface) {
        return Err(JoinError::InterfaceExists(opts.interface.clone()));
    }
    let endpoint = resolve(&inv.endpoint)?;
    let rt = tokio::runtime::Runtime::new()?;
    let kernel = rt.block_on(proton_wg::detect(opts.backend)).kind == Backend::Kernel;
    let session = Session {
        root,
        rt,
        inv,
        opts,
        endpoint,
        api: SocketAddrV4::new(inv.network.gateway(), JOIN_API_PORT),
        deadline: Instant::now() + opts.timeout,
        kernel,
    };
    report(Progress::Joining {
        endpoint: &inv.endpoint,
        address: inv.address,
        via: endpoint,
    });
    let (mine, answer) = session.redeem_loop(report)?;
    let mut joined = Joined::from_response(answer)?;
    let k3s_changed = crate::k3s::write_agent(root, opts, &joined, kernel, report)?;
    report(Progress::Joined(&joined));
    let tunnel = session.make_permanent(mine, &joined, report)?;
    report(Progress::Tunnel(&tunnel));
    joined.tunnel = Some(tunnel);
    crate::k3s::install_agent(root, opts, &joined, &k3s_changed, report)?;
    Ok(joined)
}

/// Whether this network namespace has an interface `name`: `/proc/net/dev` is per
/// namespace (it is `/proc/self/net`), unlike a `/sys` mounted by someone else.
fn interface_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .any(|(n, _)| n.trim() == name)
}

/// Retries `f` until it succeeds, is refused, or `deadline` passes.
fn until<T>(
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, ClientError>,
) -> Result<T, ClientError> {
    loop {
        match f() {
            Err(ClientError::Unreachable { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(500))
            }
            other => return other,
        }
    }
}

struct Session<'a> {
    root: &'a Root,
    rt: tokio::runtime::Runtime,
    inv: &'a Invitation,
    opts: &'a JoinOptions,
    endpoint: SocketAddr,
    api: SocketAddrV4,
    deadline: Instant,
    kernel: bool,
}

impl Session<'_> {
    fn config(&self, key: &PrivateKey) -> InterfaceConfig {
        let inv = self.inv;
        let mut cfg = InterfaceConfig::new(
            &self.opts.interface,
            key.clone(),
            inv.network.with_host(inv.address),
        );
        cfg.peers = vec![PeerConfig {
            endpoint: Some(self.endpoint),
            keepalive: Some(25),
            ..PeerConfig::new(inv.gateway_key, vec![inv.network.net().into()])
        }];
        // Join on the data plane the tunnel will keep. gotatun stamps handshakes with
        // TAI64N based at 2^62+37 s, the kernel (and wireguard-go) at 2^62+10 s: after a
        // userspace handshake with our key, the gateway would drop the kernel tunnel's
        // handshakes as replays for ~27 s (found by the VM test). A wg-quick tunnel joins
        // on `Auto`: kernel where the module is, else userspace (`--backend kernel` on a
        // host without the module still writes the wg-quick file).
        cfg.backend = if self.kernel {
            Backend::Auto
        } else {
            Backend::Userspace
        };
        cfg
    }

    /// Brings a device up with `key` and waits until `deadline` for a WireGuard handshake
    /// with the gateway, poking the join API so there is traffic to start one. A handshake
    /// proves the other side holds the gateway key the invitation names and accepts our
    /// key. `None` (device down again): no handshake in time.
    fn tunnel(&self, key: &PrivateKey, deadline: Instant) -> Result<Option<Device>, JoinError> {
        let rt = &self.rt;
        let device = rt.block_on(Device::up(self.config(key)))?;
        let handshaken = |d: &Device| {
            rt.block_on(d.peers())
                .iter()
                .any(|p| p.stats.last_handshake.is_some())
        };
        loop {
            if handshaken(&device) {
                return Ok(Some(device));
            }
            if Instant::now() >= deadline {
                rt.block_on(device.down());
                return Ok(None);
            }
            let asked = Instant::now();
            let _ = api::whoami(self.api, Duration::from_millis(500));
            // A fast failure without a handshake (the network refused at once): pace the
            // retries instead of spinning.
            if let Some(rest) = Duration::from_millis(100).checked_sub(asked.elapsed())
                && !handshaken(&device)
            {
                std::thread::sleep(rest);
            }
        }
    }

    /// Steps 1 to 4: redeems the invitation and returns this machine's key with the
    /// gateway's answer.
    ///
    /// Which key the gateway holds for our address is found by trying: the throw-away key
    /// until the redeem went through, this machine's own key after. A re-run tries its own
    /// key (made by the earlier run) first. A redeem whose answer was lost — the gateway's
    /// key swap overtook it — is asked again through our own key, and the gateway answers
    /// the same. Nothing is written before the gateway has answered a handshake: a wrong
    /// gateway, an invitation already used elsewhere or a blocked port leave this machine
    /// as it was.
    fn redeem_loop(
        &self,
        report: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(PrivateKey, RedeemResponse), JoinError> {
        let (root, inv, deadline) = (self.root, self.inv, self.deadline);
        // 1. this machine's key from an earlier run, if any.
        let mut mine = keys::existing(root)?;
        let mut created = false;
        let mut own = mine.is_some();
        let mut handshakes = 0;
        let mut last_error = None;
        while Instant::now() < deadline {
            let key = match (&mine, own) {
                (Some(k), true) => k.clone(),
                _ => inv.throwaway.clone(),
            };
            // 2. a first run gives the throw-away key all the time there is; otherwise a
            // key gets one handshake attempt and WireGuard's retry before the other is tried.
            let probe = if own || handshakes > 0 {
                deadline.min(Instant::now() + RESUME_PROBE)
            } else {
                deadline
            };
            let Some(device) = self.tunnel(&key, probe)? else {
                own = !own && mine.is_some();
                continue;
            };
            handshakes += 1;
            // 1. our own key, saved before it is sent.
            let key_of_mine = match &mine {
                Some(k) => k.clone(),
                None => {
                    created = true;
                    mine.insert(keys::create(root)?).clone()
                }
            };
            let req = RedeemRequest {
                secret: inv.secret_text().to_string(),
                public_key: key_of_mine.public_key().to_base64(),
            };
            // 3. long enough for a gateway that mints a K3s token before answering.
            let redeemed = api::redeem(self.api, &req, Duration::from_secs(10));
            self.rt.block_on(device.down());
            match redeemed {
                Ok(answer) if own => {
                    report(Progress::Resumed);
                    return Ok((key_of_mine, answer));
                }
                Ok(answer) => {
                    // 4.
                    self.confirm_own_key(&key_of_mine, report)?;
                    return Ok((key_of_mine, answer));
                }
                Err(ClientError::Refused { message, .. }) => {
                    // The gateway refused our key: it is of no use, leave nothing behind.
                    if created {
                        root.remove(NODE_KEY)?;
                    }
                    return Err(JoinError::Refused(message));
                }
                Err(e) => {
                    last_error = Some(e);
                    own = !own;
                }
            }
        }
        Err(match last_error {
            None if handshakes == 0 => JoinError::NoHandshake {
                endpoint: inv.endpoint.clone(),
                secs: self.opts.timeout.as_secs(),
            },
            None => JoinError::StoppedAnswering,
            Some(e) => JoinError::Unanswered(e),
        })
    }

    /// Step 4, after a redeem through the throw-away key: our own key's tunnel answers
    /// `whoami` with our key.
    ///
    /// The gateway swaps our key in a moment after its answer, at a time of its own. A
    /// handshake with our key before that is dropped, and WireGuard would retry it only
    /// after its 5 s rekey timeout; so each try is a fresh device (a fresh handshake at
    /// once: gotatun also rebinds its UDP socket on a key change, which can race with the
    /// old socket, EADDRINUSE) given a growing window for the handshake — 0.5 s, 1 s,
    /// 2 s, then 3 s — until the join's deadline, and at least [`CONFIRM_WINDOW`].
    fn confirm_own_key(
        &self,
        mine: &PrivateKey,
        report: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(), JoinError> {
        report(Progress::OwnKey);
        let deadline = self.deadline.max(Instant::now() + CONFIRM_WINDOW);
        let mut window = Duration::from_millis(500);
        let device = loop {
            if let Some(device) = self.tunnel(mine, deadline.min(Instant::now() + window))? {
                break device;
            }
            if Instant::now() >= deadline {
                return Err(JoinError::OwnKeyUnconfirmed(None));
            }
            window = (window * 2).min(Duration::from_secs(3));
        };
        let me = until(deadline, || api::whoami(self.api, Duration::from_secs(5)));
        self.rt.block_on(device.down());
        match me {
            Ok(me) if me.public_key == mine.public_key().to_base64() => Ok(()),
            Ok(_) => Err(JoinError::OwnKeyUnknown),
            Err(e) => Err(JoinError::OwnKeyUnconfirmed(Some(e))),
        }
    }

    /// Step 5: the permanent tunnel, the kernel's WireGuard through wg-quick where the
    /// module exists, else Proton's userspace data plane as a service.
    fn make_permanent(
        &self,
        mine: PrivateKey,
        joined: &Joined,
        report: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Tunnel, JoinError> {
        let (root, inv, iface) = (self.root, self.inv, &self.opts.interface);
        let conf = WorkerNetwork {
            address: joined.address,
            network: &inv.network,
            mtu: joined.mtu,
            keepalive: joined.keepalive,
            gateway_key: inv.gateway_key,
            endpoint: &inv.endpoint,
        }
        .config(mine);
        let (kind, unit) = if self.kernel {
            let path = format!("/etc/wireguard/{iface}.conf");
            root.write_secret(&path, conf.render().as_bytes())?;
            self.write_reresolve_timer(report)?;
            (
                TunnelKind::WgQuick { config: path },
                format!("wg-quick@{iface}.service"),
            )
        } else {
            let agent = AgentConf {
                interface: iface.clone(),
                config: conf,
            };
            root.write_secret(AGENT_CONF, agent.render().as_bytes())?;
            // The Debian package ships the unit; from a source install, write it here.
            if !packaged_unit(root, "proton-agent.service") {
                let unit = agent_unit(&self.opts.proton_bin);
                root.write(AGENT_UNIT, unit.as_bytes(), PUBLIC_MODE)?;
            }
            (TunnelKind::Agent, "proton-agent.service".to_string())
        };
        let enabled = systemd_here(root);
        if enabled {
            let st = std::process::Command::new("systemctl")
                .args(["enable", "--now", &unit])
                .status()?;
            if !st.success() {
                return Err(JoinError::Enable { unit });
            }
        }
        Ok(Tunnel {
            interface: iface.clone(),
            kind,
            unit,
            enabled,
        })
    }

    /// wg-quick resolves the gateway's name once: a timer re-points the tunnel when the
    /// name moves (`proton reresolve`), as `proton agent` does for the userspace tunnel.
    fn write_reresolve_timer(&self, report: &mut dyn FnMut(Progress<'_>)) -> Result<(), JoinError> {
        let (root, iface) = (self.root, &self.opts.interface);
        root.write(
            RERESOLVE_SERVICE,
            reresolve_service_unit(&self.opts.proton_bin, iface).as_bytes(),
            PUBLIC_MODE,
        )?;
        root.write(
            RERESOLVE_TIMER,
            reresolve_timer_unit(iface).as_bytes(),
            PUBLIC_MODE,
        )?;
        if systemd_here(root) {
            let st = std::process::Command::new("systemctl")
                .args(["enable", "--now", "proton-reresolve.timer"])
                .status()?;
            if !st.success() {
                report(Progress::ReresolveTimerNotEnabled);
            }
        }
        Ok(())
    }
}

/// Units are enabled only on the real root of a machine that runs systemd.
fn systemd_here(root: &Root) -> bool {
    root.is_system() && Path::new("/run/systemd/system").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> RedeemResponse {
        RedeemResponse {
            name: "home-1".into(),
            role: "worker".into(),
            address: "10.7.7.5/24".into(),
            network: "10.7.7.0/24".into(),
            gateway_public_key: PrivateKey::generate().public_key().to_base64(),
            persistent_keepalive: 25,
            mtu: 1420,
            k3s: None,
        }
    }

    #[test]
    fn the_answer_is_parsed_once_into_typed_fields() {
        let j = Joined::from_response(response()).unwrap();
        assert_eq!(j.address, "10.7.7.5/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(j.address.to_string(), "10.7.7.5/24");
        assert_eq!((j.name.as_str(), j.role.as_str()), ("home-1", "worker"));
        assert_eq!((j.mtu, j.keepalive), (1420, Some(25)));
        assert!(j.k3s.is_none() && j.tunnel.is_none());

        let none = Joined::from_response(RedeemResponse {
            persistent_keepalive: 0,
            ..response()
        })
        .unwrap();
        assert_eq!(none.keepalive, None, "0 means no keepalive line");
    }

    #[test]
    fn an_unusable_address_answer_is_an_error_not_a_panic() {
        let e = Joined::from_response(RedeemResponse {
            address: "10.7.7.5".into(),
            ..response()
        })
        .unwrap_err();
        assert!(
            matches!(
                e,
                JoinError::BadAnswer {
                    field: "address",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "gateway's address answer");
        assert!(std::error::Error::source(&e).is_some());
    }
}
