//! `proton join` (make this machine a peer) and `proton agent` (run its tunnel).
//!
//! Join order, chosen so that re-running after any failure finishes the job:
//! 1. make (or reuse) this machine's own key, saved before anything is sent;
//! 2. bring the tunnel up with the invitation's throw-away key;
//! 3. redeem: send our public key; the gateway swaps keys after answering;
//! 4. switch to our own key and confirm with `whoami` through the tunnel;
//! 5. write `/etc/proton/agent.conf` and enable `proton-agent.service`;
//! 6. when the answer carries K3s data: the agent's files are written as soon as the
//!    answer is in (step 4), and the K3s installer runs once the tunnel is permanent
//!    (`join_k3s`).
//!
//! If redeem is refused as already used, step 4 tells whether it was us (a previous
//! run that stopped half-way) — then the job is finished instead of failing.

use crate::cli::{DaemonArgs, JoinArgs};
use crate::cmd::gateway::shutdown_signal;
use crate::context::read_private_key;
use crate::output::{bad_input, failure};
use anyhow::Context;
use proton_core::host::{PUBLIC_MODE, Root};
use proton_core::invite::Invitation;
use proton_core::keys::PrivateKey;
use proton_core::spec::Endpoint;
use proton_core::wgconf::{PeerSection, WgQuickConfig};
use proton_gateway::api::{JOIN_API_PORT, RedeemRequest, RedeemResponse};
use proton_proto::join::{self as client, ClientError};
use proton_wg::{Device, InterfaceConfig, PeerConfig};
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::{Duration, Instant};

/// This machine's own WireGuard key (`0600`).
pub const NODE_KEY: &str = "/etc/proton/node.key";
/// The worker's tunnel, in wg-quick format (`0600`: it holds the key).
pub const AGENT_CONF: &str = "/etc/proton/agent.conf";
pub const AGENT_UNIT: &str = "/etc/systemd/system/proton-agent.service";

/// The invitation: the argument, else the first non-blank line of standard input. At a
/// terminal it asks for it and reads that one line (paste, Enter), never waiting for an
/// end-of-file nobody knows to type; from a pipe (`proton invite w1 --no-qr | ssh w1
/// proton join`) it reads the same one line.
fn read_invitation(arg: &Option<String>) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if let Some(text) = arg.as_deref().filter(|t| *t != "-") {
        return Ok(text.to_string());
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste the invitation from `proton invite` and press Enter: ");
        let _ = std::io::stderr().flush();
    }
    let mut lines = stdin.lock();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err(bad_input(
                "no invitation on standard input",
                Some(
                    "paste the line `proton invite NAME` printed, or pipe it: \
                     proton invite NAME --no-qr | ssh root@WORKER proton join"
                        .into(),
                ),
            ));
        }
        if !line.trim().is_empty() {
            return Ok(line.trim().to_string());
        }
    }
}

fn resolve(endpoint: &Endpoint) -> anyhow::Result<SocketAddr> {
    let text = endpoint.to_string();
    text.to_socket_addrs()
        .with_context(|| format!("resolving the gateway endpoint {text}"))?
        .find(|a| a.is_ipv4())
        .or_else(|| text.to_socket_addrs().ok()?.next())
        .ok_or_else(|| {
            failure(
                format!("{text} resolves to no address"),
                "check the gateway's DNS name",
            )
        })
}

/// This machine's key from an earlier run of `proton join`, if there was one.
fn existing_key(root: &Root) -> anyhow::Result<Option<PrivateKey>> {
    if root.exists(NODE_KEY) {
        read_private_key(root, NODE_KEY).map(Some)
    } else {
        Ok(None)
    }
}

/// Makes this machine's key and saves it (`0600`) before anything is sent with it.
fn new_key(root: &Root) -> anyhow::Result<PrivateKey> {
    let key = PrivateKey::generate();
    let mut text = key.expose_base64();
    text.push('\n');
    root.write_secret(NODE_KEY, text.as_bytes())?;
    Ok(key)
}

fn gateway_peer(inv: &Invitation, endpoint: SocketAddr, keepalive: u16) -> PeerConfig {
    PeerConfig {
        endpoint: Some(endpoint),
        keepalive: Some(keepalive),
        ..PeerConfig::new(inv.gateway_key, vec![inv.network.net().into()])
    }
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

/// Brings a device up with `cfg` and waits until `deadline` for a WireGuard handshake
/// with the gateway, poking the join API so there is traffic to start one. A handshake
/// proves the other side holds the gateway key the invitation names and accepts our key.
/// `None` (device down again): no handshake in time.
fn tunnel(
    rt: &tokio::runtime::Runtime,
    cfg: InterfaceConfig,
    api: SocketAddrV4,
    deadline: Instant,
) -> anyhow::Result<Option<Device>> {
    let device = rt.block_on(Device::up(cfg))?;
    let handshaken = |d: &Device| {
        rt.block_on(d.peers())
            .iter()
            .any(|p| p.last_handshake.is_some())
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
        let _ = client::whoami(api, Duration::from_millis(500));
        // A fast failure without a handshake (the network refused at once): pace the
        // retries instead of spinning.
        if let Some(rest) = Duration::from_millis(100).checked_sub(asked.elapsed())
            && !handshaken(&device)
        {
            std::thread::sleep(rest);
        }
    }
}

/// How long a re-run tries this machine's key from an earlier run before falling back to
/// the invitation: one handshake attempt and WireGuard's 5 s retry.
const RESUME_PROBE: Duration = Duration::from_secs(6);

/// Redeems the invitation and returns this machine's key with the gateway's answer.
///
/// Which key the gateway holds for our address is found by trying: the throw-away key
/// until the redeem went through, this machine's own key after. A re-run tries its own
/// key (made by the earlier run) first. A redeem whose answer was lost — the gateway's key
/// swap overtook it — is asked again through our own key, and the gateway answers the
/// same. Nothing is written before the gateway has answered a handshake: a wrong gateway,
/// an invitation already used elsewhere or a blocked port leave this machine as it was.
fn redeem_loop(
    root: &Root,
    rt: &tokio::runtime::Runtime,
    inv: &Invitation,
    config: &dyn Fn(&PrivateKey) -> InterfaceConfig,
    api: SocketAddrV4,
    deadline: Instant,
    timeout_secs: u64,
) -> anyhow::Result<(PrivateKey, RedeemResponse)> {
    let mut mine = existing_key(root)?;
    let mut created = false;
    let mut own = mine.is_some();
    let mut handshakes = 0;
    let mut last_error = None;
    while Instant::now() < deadline {
        let key = match (&mine, own) {
            (Some(k), true) => k.clone(),
            _ => inv.throwaway.clone(),
        };
        // A first run gives the throw-away key all the time there is; otherwise a key
        // gets one handshake attempt and WireGuard's retry before the other is tried.
        let probe = if own || handshakes > 0 {
            deadline.min(Instant::now() + RESUME_PROBE)
        } else {
            deadline
        };
        let Some(device) = tunnel(rt, config(&key), api, probe)? else {
            own = !own && mine.is_some();
            continue;
        };
        handshakes += 1;
        let key_of_mine = match &mine {
            Some(k) => k.clone(),
            None => {
                created = true;
                mine.insert(new_key(root)?).clone()
            }
        };
        let req = RedeemRequest {
            secret: inv.secret_text().to_string(),
            public_key: key_of_mine.public_key().to_base64(),
        };
        // Long enough for a gateway that mints a K3s token before answering.
        let redeemed = client::redeem(api, &req, Duration::from_secs(10));
        rt.block_on(device.down());
        match redeemed {
            Ok(answer) if own => {
                eprintln!("(the gateway already holds this machine's key: finishing the job)");
                return Ok((key_of_mine, answer));
            }
            Ok(answer) => {
                confirm_own_key(rt, config, &key_of_mine, api, deadline)?;
                return Ok((key_of_mine, answer));
            }
            Err(ClientError::Refused { message, .. }) => {
                // The gateway refused our key: it is of no use, leave nothing behind.
                if created {
                    root.remove(NODE_KEY)?;
                }
                return Err(bad_input(message, None));
            }
            Err(e) => {
                last_error = Some(e);
                own = !own;
            }
        }
    }
    Err(match last_error {
        None if handshakes == 0 => failure(
            format!(
                "no WireGuard handshake with the gateway at {} within {timeout_secs} s",
                inv.endpoint
            ),
            "check that the gateway runs and its UDP port is reachable; an invitation that was \
             already used, or that another gateway made, never gets an answer: ask for a new one",
        ),
        other => failure(
            other.map_or_else(
                || "the gateway stopped answering".to_string(),
                |e| e.to_string(),
            ),
            "re-run `proton join` with the same invitation to finish",
        ),
    })
}

/// After a redeem through the throw-away key: our own key's tunnel answers `whoami`.
fn confirm_own_key(
    rt: &tokio::runtime::Runtime,
    config: &dyn Fn(&PrivateKey) -> InterfaceConfig,
    mine: &PrivateKey,
    api: SocketAddrV4,
    deadline: Instant,
) -> anyhow::Result<()> {
    // The gateway swaps keys a moment after answering (SWAP_DELAY); a handshake with our
    // key before that is dropped and retried only after WireGuard's 5 s rekey timeout, so
    // wait it out first. A fresh device for our own key: gotatun rebinds its UDP socket on
    // a key change, which can race with the old socket (EADDRINUSE).
    std::thread::sleep(proton_gateway::server::SWAP_DELAY * 2);
    let device = rt.block_on(Device::up(config(mine)))?;
    eprintln!("switched to this machine's own key; checking the tunnel ...");
    let me = until(deadline, || client::whoami(api, Duration::from_secs(5)));
    rt.block_on(device.down());
    match me {
        Ok(me) if me.public_key == mine.public_key().to_base64() => Ok(()),
        Ok(_) => Err(failure(
            "the gateway does not know our key",
            "re-run `proton join` with the same invitation to finish",
        )),
        Err(e) => Err(failure(
            format!("redeemed, but the tunnel with our own key does not answer: {e}"),
            "re-run `proton join` with the same invitation to finish",
        )),
    }
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

pub fn join(root: &Root, args: &JoinArgs) -> anyhow::Result<()> {
    let kernel = match args.backend.as_str() {
        "kernel" => true,
        "userspace" => false,
        "auto" => std::path::Path::new("/sys/module/wireguard").exists(),
        other => {
            return Err(bad_input(
                format!("--backend `{other}`: use auto, kernel or userspace"),
                None,
            ));
        }
    };
    let text = read_invitation(&args.invitation)?;
    let inv = Invitation::decode(&text).map_err(|e| bad_input(e.to_string(), None))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    if inv.is_expired(now) {
        return Err(bad_input(
            "this invitation has expired",
            Some("ask the gateway's admin for a new one: proton invite <name>".into()),
        ));
    }
    // An existing link of that name is refused, not taken over: the kernel backend would
    // adopt it (and delete it when the join ends), which could be a running tunnel.
    if interface_exists(&args.interface) {
        return Err(bad_input(
            format!("network interface `{}` already exists", args.interface),
            Some(format!(
                "if it is this machine's tunnel from an earlier join, stop it first \
                 (`wg-quick down {0}` or `ip link del {0}`), or pass --interface",
                args.interface
            )),
        ));
    }
    let endpoint = resolve(&inv.endpoint)?;
    let api = SocketAddrV4::new(inv.network.gateway(), JOIN_API_PORT);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    eprintln!(
        "joining {} as {} through {endpoint} ...",
        inv.endpoint, inv.address
    );

    let rt = tokio::runtime::Runtime::new()?;
    let config = |key: &PrivateKey| {
        let mut cfg = InterfaceConfig::new(
            &args.interface,
            key.clone(),
            inv.network.with_host(inv.address),
        );
        cfg.peers = vec![gateway_peer(&inv, endpoint, 25)];
        // Join on the data plane the tunnel will keep. gotatun stamps handshakes with
        // TAI64N based at 2^62+37 s, the kernel (and wireguard-go) at 2^62+10 s: after a
        // userspace handshake with our key, the gateway would drop the kernel tunnel's
        // handshakes as replays for ~27 s (found by the VM test). Auto: kernel where the
        // module is, else userspace (wg-quick cannot run there anyway).
        cfg.backend = if kernel {
            proton_wg::BackendKind::Auto
        } else {
            proton_wg::BackendKind::Userspace
        };
        cfg
    };
    let (mine, answer) = redeem_loop(root, &rt, &inv, &config, api, deadline, args.timeout)?;
    let k3s_changed = crate::cmd::join_k3s::write_agent(root, args, &answer, kernel)?;

    let mut conf = WgQuickConfig::default();
    conf.interface.private_key = Some(mine);
    conf.interface.addresses = vec![answer.address.parse().context("gateway's address answer")?];
    conf.interface.mtu = Some(answer.mtu);
    let mut gw = PeerSection::new(inv.gateway_key);
    gw.name = Some("gateway".into());
    gw.endpoint = Some(inv.endpoint.clone());
    gw.allowed_ips = vec![inv.network.net().into()];
    gw.persistent_keepalive = Some(answer.persistent_keepalive).filter(|k| *k != 0);
    conf.peers.push(gw);
    println!(
        "Joined as `{}` ({}) at {}.",
        answer.name, answer.role, answer.address
    );
    // The permanent tunnel: the kernel's WireGuard through wg-quick where the module
    // exists, else Proton's userspace data plane as a service.
    let (unit, how) = if kernel {
        let path = format!("/etc/wireguard/{}.conf", args.interface);
        root.write_secret(&path, conf.render().as_bytes())?;
        write_reresolve_timer(root, &args.interface)?;
        (
            format!("wg-quick@{}.service", args.interface),
            format!("wg-quick@{} ({path})", args.interface),
        )
    } else {
        root.write_secret(AGENT_CONF, conf.render().as_bytes())?;
        // The Debian package ships the unit; from a source install, write it here.
        if !crate::paths::packaged_unit(root, "proton-agent.service") {
            let unit = agent_unit(&crate::paths::proton_bin());
            root.write(AGENT_UNIT, unit.as_bytes(), PUBLIC_MODE)?;
        }
        (
            "proton-agent.service".to_string(),
            "proton-agent.service".to_string(),
        )
    };
    if root.is_system() && std::path::Path::new("/run/systemd/system").exists() {
        let st = std::process::Command::new("systemctl")
            .args(["enable", "--now", &unit])
            .status()?;
        if !st.success() {
            return Err(failure(
                format!("systemctl enable --now {unit} failed"),
                format!("see `journalctl -u {unit}`"),
            ));
        }
        println!("The tunnel runs as {how} and survives reboots.");
    } else if kernel {
        println!("Start the tunnel with: wg-quick up {}", args.interface);
    } else {
        println!("Start the tunnel with: proton agent");
    }
    crate::cmd::join_k3s::install_agent(root, args, &answer, &k3s_changed)
}

/// wg-quick resolves the gateway's name once: a timer re-points the tunnel when the
/// name moves (`proton reresolve`), as `proton agent` does for the userspace tunnel.
fn write_reresolve_timer(root: &Root, iface: &str) -> anyhow::Result<()> {
    use proton_ops::reresolve::{RERESOLVE_SERVICE, RERESOLVE_TIMER, service_unit, timer_unit};
    root.write(
        RERESOLVE_SERVICE,
        service_unit(&crate::paths::proton_bin(), iface).as_bytes(),
        PUBLIC_MODE,
    )?;
    root.write(RERESOLVE_TIMER, timer_unit(iface).as_bytes(), PUBLIC_MODE)?;
    if root.is_system() && std::path::Path::new("/run/systemd/system").exists() {
        let st = std::process::Command::new("systemctl")
            .args(["enable", "--now", "proton-reresolve.timer"])
            .status()?;
        if !st.success() {
            eprintln!(
                "warning: could not enable proton-reresolve.timer; see `systemctl status proton-reresolve.timer`"
            );
        }
    }
    Ok(())
}

/// The worker's tunnel unit, running `proton_bin` (the same text in the Debian package,
/// with /usr/bin/proton).
pub fn agent_unit(proton_bin: &str) -> String {
    format!(
        "# Written by `proton join` (or shipped by the proton package): this worker's
# WireGuard tunnel to the gateway.
[Unit]
Description=Proton agent (WireGuard tunnel to the gateway)
Documentation=man:proton-agent(1)
Wants=network-online.target
After=network-online.target
Before=k3s-agent.service

[Service]
Type=simple
ExecStart={proton_bin} agent
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"
    )
}

/// `proton agent`: the worker's tunnel from agent.conf, until SIGTERM.
pub fn agent(root: &Root, args: &DaemonArgs) -> anyhow::Result<()> {
    let text = root.read_optional(AGENT_CONF)?.ok_or_else(|| {
        failure(
            format!("{} is missing", root.path(AGENT_CONF).display()),
            "run `proton join` first",
        )
    })?;
    let conf = WgQuickConfig::parse(&text).with_context(|| format!("reading {AGENT_CONF}"))?;
    let key = conf
        .interface
        .private_key
        .clone()
        .context("agent.conf has no PrivateKey")?;
    let address = match conf.interface.addresses.first() {
        Some(ipnet::IpNet::V4(a)) => *a,
        _ => anyhow::bail!("agent.conf has no IPv4 Address"),
    };
    let gw = conf
        .peers
        .first()
        .context("agent.conf has no [Peer]")?
        .clone();
    let endpoint = gw
        .endpoint
        .clone()
        .context("agent.conf's peer has no Endpoint")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut cfg = InterfaceConfig::new("wg0", key, address);
        cfg.mtu = conf.interface.mtu.unwrap_or(1420);
        if let Some(dir) = &args.uapi_dir {
            cfg.uapi_dir = dir.clone();
        }
        let peer_for = |addr: SocketAddr| PeerConfig {
            endpoint: Some(addr),
            keepalive: gw.persistent_keepalive,
            ..PeerConfig::new(gw.public_key, gw.allowed_ips.clone())
        };
        let mut current = resolve(&endpoint)?;
        cfg.peers = vec![peer_for(current)];
        let device = Device::up(cfg).await?;
        eprintln!("agent: tunnel up to {endpoint} ({current})");
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut every = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = &mut signal => break,
                _ = every.tick() => {
                    // wg-quick resolves the endpoint once; a gateway whose name moves
                    // to a new address is followed here.
                    let ep = endpoint.clone();
                    if let Ok(Ok(addr)) = tokio::task::spawn_blocking(move || resolve(&ep)).await
                        && addr != current
                    {
                        tracing::info!(%endpoint, from = %current, to = %addr, "gateway endpoint moved");
                        device.reconcile(&[peer_for(addr)]).await?;
                        current = addr;
                    }
                }
            }
        }
        device.down().await;
        Ok::<_, anyhow::Error>(())
    })
}
