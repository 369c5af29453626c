//! `proton gateway run`: the long-running owner of the WireGuard device.
//!
//! Start: spec + key + DB, interface up, IPv4 forwarding on, peers reconciled. Then:
//! the join API on the tunnel address, the admin socket, and a loop that reconciles
//! whenever the DB's change counter moves (or a CLI command asks over the socket), and
//! sweeps expired invitations — removing their throw-away keys from the live device.

use crate::admin;
use crate::firewall::{Ensured, Firewall};
use crate::metrics::METRICS_PORT;
use crate::observe::Observer;
use proton_core::backend::Backend;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::paths::GATEWAY_KEY;
use proton_core::spec::Spec;
use proton_k3s::firewall::Members;
use proton_proto::admin::GatewayStatus;
use proton_proto::admin::{AdminRequest, AdminResponse};
use proton_proto::join::JOIN_API_PORT;
use proton_store::{Grant, PeerState, Role, Store};
use proton_wg::{Device, InterfaceConfig, PeerConfig};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the DB's change counter is polled (the admin socket is the fast path).
const POLL: Duration = Duration::from_secs(1);
/// How often the device is sampled for last-heard times.
const SAMPLE: Duration = Duration::from_secs(2);
/// How often expired invitations are swept.
const SWEEP: Duration = Duration::from_secs(15);
/// How long after a redeem's commit the device keeps the invitee's throw-away key: the
/// answer (and its TCP ACK) travel through the throw-away key's session, which the swap
/// ends. `proton join` waits twice as long after the answer before it handshakes with its
/// own key. An answer the swap overtakes anyway is asked for again through the own key
/// (the repeat in [`Join::redeem_inner`]).
const SWAP_AFTER: Duration = Duration::from_millis(300);

/// Why the gateway daemon (or one of its reconciles) failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Spec(#[source] proton_core::spec::SpecError),
    #[error("{0}")]
    Store(#[source] proton_store::StoreError),
    /// A DB that cannot be read says nothing about which peers should go.
    #[error("{0} (the device keeps its peers as they are until the state database can be read)")]
    Unreadable(#[source] proton_store::StoreError),
    #[error("{0}")]
    Device(#[source] proton_wg::WgError),
    #[error("{} is missing: this machine has no gateway", .0.display())]
    KeyMissing(PathBuf),
    #[error("{0}")]
    KeyRead(#[source] proton_core::host::HostError),
    #[error("{GATEWAY_KEY}: {0}")]
    Key(#[source] proton_core::keys::KeyError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the invitee fence is not in place (nftables table inet proton cannot be loaded: {source}): {held} invitee key(s) kept off the device until it is; the other peers are applied"
    )]
    Unfenced {
        held: usize,
        #[source]
        source: crate::firewall::FenceError,
    },
}

impl GatewayError {
    /// What fixes it, when something does (the store's errors say so in their message).
    pub fn hint(&self) -> Option<&str> {
        match self {
            GatewayError::KeyMissing(_) => Some(
                "run `proton init` to make one, or `proton restore FILE` to bring back a backed-up gateway",
            ),
            GatewayError::Unfenced { source, .. } => source.hint(),
            _ => None,
        }
    }
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> GatewayError {
    move |source| GatewayError::Io { what, source }
}

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: Root,
    /// Overrides `network.backend` from the spec.
    pub backend: Option<Backend>,
    /// Where the UAPI socket goes (default `/var/run/wireguard`).
    pub uapi_dir: Option<PathBuf>,
}

struct Gateway {
    root: Root,
    /// The spec the device was made with (its address, interface, range).
    spec: Spec,
    /// The spec in use now: `spec` plus the edits applied live ([`crate::reload`]).
    live: std::sync::RwLock<Arc<Spec>>,
    device: Device,
    wake: Notify,
    lock: tokio::sync::Mutex<()>,
    observer: Observer,
    firewall: Firewall,
    /// The next peer expiry (unix seconds; 0: none): the loop reconciles once it passes.
    next_expiry: std::sync::atomic::AtomicI64,
    /// The next key swap (unix milliseconds; 0: none): the loop reconciles at that time.
    next_swap: std::sync::atomic::AtomicI64,
}

fn now() -> i64 {
    now_ms() / 1000
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What the DB wants: the peers on the device (invitees marked, their keys are fenced)
/// and who the firewall admits from the tunnel, by role. A redeemed peer whose swap time
/// has not come is still the invitee it was: its throw-away key, fenced.
struct Desired {
    peers: Vec<(PeerConfig, bool)>,
    members: Members,
}

impl Desired {
    /// The device's peers; without the fence in place, no invitee's key (fail closed).
    fn device_peers(&self, fenced: bool) -> Vec<PeerConfig> {
        self.peers
            .iter()
            .filter(|(_, invitee)| fenced || !invitee)
            .map(|(p, _)| p.clone())
            .collect()
    }
}

fn desired(root: &Root, spec: &Spec, now_ms: i64) -> Result<Desired, proton_store::StoreError> {
    let keepalive = Some(spec.network.persistent_keepalive).filter(|k| *k != 0);
    let (mut peers, admins, held, flows) = Store::open_existing(root, &spec.network.cidr)
        .and_then(|s| {
            Ok((
                s.device_peers(now_ms / 1000)?,
                s.granted_addresses(Grant::Admin)?,
                s.held_keys(now_ms)?,
                s.allowed_flows()?,
            ))
        })?;
    let held: std::collections::HashMap<_, _> = held.into_iter().collect();
    for p in &mut peers {
        if let Some(throwaway) = held.get(&p.id) {
            p.public_key = *throwaway;
            p.state = PeerState::Invited;
        }
    }
    let mut members = Members::default();
    for p in &peers {
        match (p.state, p.role) {
            (PeerState::Active, Role::Worker) => {
                members.workers.insert(p.address);
            }
            (PeerState::Active, _) => {
                members.clients.insert(p.address);
                if admins.contains(&p.address) {
                    members.admins.insert(p.address);
                }
            }
            (PeerState::Invited, _) => {}
        }
    }
    // A named grant opens nothing for a client that is not on the device as itself.
    members.grants = flows
        .into_iter()
        .filter(|f| members.clients.contains(&f.from))
        .collect();
    let peers = peers
        .into_iter()
        .map(|p| {
            let invitee = p.state == PeerState::Invited;
            let cfg = PeerConfig {
                keepalive,
                ..PeerConfig::new(p.public_key, vec![ipnet::Ipv4Net::from(p.address).into()])
            };
            (cfg, invitee)
        })
        .collect();
    Ok(Desired { peers, members })
}

impl Gateway {
    fn current(&self) -> Arc<Spec> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the spec and applies what needs no new device; see [`crate::reload`].
    async fn reload(&self) -> Result<proton_proto::admin::Reloaded, GatewayError> {
        let new = Spec::load(&self.root).map_err(GatewayError::Spec)?;
        let running = self.current();
        let outcome = crate::reload::compare(&running, &new);
        *self.live.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(crate::reload::merge(&self.spec, &new));
        self.reconcile().await?;
        tracing::info!(
            applied = ?outcome.applied,
            need_restart = ?outcome.need_restart,
            "spec reloaded"
        );
        Ok(outcome)
    }

    fn store(&self) -> Result<Store, GatewayError> {
        Store::open_existing(&self.root, &self.spec.network.cidr).map_err(GatewayError::Store)
    }

    /// Brings the device in line with the DB; serialized, so concurrent triggers queue.
    async fn reconcile(&self) -> Result<proton_wg::Applied, GatewayError> {
        let _guard = self.lock.lock().await;
        let started = std::time::Instant::now();
        // A DB that cannot be read (deleted, truncated, replaced) says nothing about
        // which peers should go: the device keeps every peer it has until it can be read.
        let at = now_ms();
        let want = desired(&self.root, &self.current(), at).map_err(GatewayError::Unreadable)?;
        let (next, swap) = self
            .store()
            .and_then(|s| {
                let next = || {
                    Ok::<_, proton_store::StoreError>((s.next_expiry(at / 1000)?, s.next_swap(at)?))
                };
                next().map_err(GatewayError::Store)
            })
            .unwrap_or_default();
        self.next_expiry
            .store(next.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        self.next_swap
            .store(swap.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        // The table (and with it the invitee fence) before any invitee's key reaches
        // the device; without it, invitees stay off the device.
        let (fenced, unfenced) = match self.firewall.ensure(&want.members) {
            Ok(Ensured::Kept) => (true, None),
            Ok(Ensured::Refilled) => {
                tracing::info!("Proton's nftables table was loaded again: its sets are refilled");
                (true, None)
            }
            Ok(Ensured::Restored) => {
                tracing::warn!("Proton's nftables table (inet proton) was missing: restored");
                (true, None)
            }
            Err(e) => {
                tracing::error!(
                    "cannot load Proton's nftables table (inet proton): {e}; invitees stay off the device until it loads"
                );
                (false, Some(e))
            }
        };
        let applied = self
            .device
            .reconcile(&want.device_peers(fenced))
            .await
            .map_err(GatewayError::Device)?;
        let held = want.peers.iter().filter(|(_, invitee)| *invitee).count();
        if let Some(e) = unfenced
            && held > 0
        {
            return Err(GatewayError::Unfenced { held, source: e });
        }
        self.observer.reconciled(started.elapsed());
        if applied != Default::default() {
            tracing::info!(
                added = applied.added,
                updated = applied.updated,
                removed = applied.removed,
                took_ms = started.elapsed().as_millis() as u64,
                "reconciled peers"
            );
        }
        Ok(applied)
    }

    /// The live status; see [`crate::observe::gateway_status`].
    async fn status(&self) -> GatewayStatus {
        crate::observe::gateway_status(
            &self.device,
            &self.observer,
            self.store().ok(),
            &self.spec,
            self.current().network.persistent_keepalive,
        )
        .await
    }
}

mod join_service;
use join_service::Join;
#[cfg(test)]
use join_service::redeem_refusal;

fn read_key(root: &Root) -> Result<PrivateKey, GatewayError> {
    let text = root
        .read_optional(GATEWAY_KEY)
        .map_err(GatewayError::KeyRead)?
        .ok_or_else(|| GatewayError::KeyMissing(root.path(GATEWAY_KEY)))?;
    PrivateKey::from_base64(text.trim()).map_err(GatewayError::Key)
}

/// Turns IPv4 forwarding on in this network namespace (the gateway routes between peers).
fn enable_forwarding() {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
        tracing::warn!("could not enable IPv4 forwarding: {e}");
    }
}

/// Runs the gateway until `shutdown` resolves, then takes the interface down.
pub async fn run(
    opts: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), GatewayError> {
    crate::hardening::no_core_dumps();
    let spec = Spec::load(&opts.root).map_err(GatewayError::Spec)?;
    let key = read_key(&opts.root)?;
    let backend = opts.backend.unwrap_or(spec.network.backend);
    let net = proton_core::view::Network::new(&spec);
    let mut cfg = InterfaceConfig::new(&spec.network.interface, key, net.gateway_address());
    cfg.listen_port = Some(net.port());
    cfg.fwmark = net.fwmark();
    cfg.mtu = net.mtu();
    cfg.backend = backend;
    if let Some(dir) = &opts.uapi_dir {
        cfg.uapi_dir = dir.clone();
    }
    // The device starts with the DB's peers. A kernel interface left by a crashed daemon
    // is adopted and reconciled to these: an empty list would remove every peer and
    // reset every session (found by the VM test's SIGKILL-and-restart step).
    let firewall = {
        let (root, started) = (opts.root.clone(), spec.clone());
        Firewall::new(Box::new(move || {
            let spec = Spec::load(&root).unwrap_or_else(|_| started.clone());
            proton_k3s::gateway::firewall_params(&spec, JOIN_API_PORT)
        }))
    };
    // The fence's own table of earlier versions (`inet proton_join`) is gone: its stale
    // invitee set would drop addresses given to new peers since.
    let _ = proton_k3s::firewall::apply(
        &proton_core::host::SystemRunner,
        None,
        "table inet proton_join\ndelete table inet proton_join\n",
    );
    // Read first: a DB that cannot be read stops the start before anything on the host
    // changes.
    let want = desired(&opts.root, &spec, now_ms()).map_err(GatewayError::Store)?;
    // Without the table the gateway still starts (a broken firewall must not take the
    // VPN down), but with no invitee's key; the loop below retries every second.
    let fenced = match firewall.ensure(&want.members) {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(
                "cannot load Proton's nftables table (inet proton): {e}; invitees stay off the device until it loads"
            );
            false
        }
    };
    let mut peers = want.device_peers(fenced);
    crate::endpoints::restore(&opts.root, &spec.network.cidr, &mut peers);
    cfg.peers = peers;
    let device = Device::up(cfg).await.map_err(GatewayError::Device)?;
    enable_forwarding();
    let gw = Arc::new(Gateway {
        root: opts.root.clone(),
        live: std::sync::RwLock::new(Arc::new(spec.clone())),
        spec,
        device,
        wake: Notify::new(),
        lock: tokio::sync::Mutex::new(()),
        observer: Observer::default(),
        firewall,
        next_expiry: Default::default(),
        next_swap: Default::default(),
    });
    gw.reconcile().await?;

    let api_addr = SocketAddrV4::new(gw.spec.gateway_address(), JOIN_API_PORT);
    let listener = crate::listen::bind_tunnel_only(api_addr, &gw.spec.network.interface)
        .map_err(io("binding the join API"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let api = {
        let mut stop = stop_rx.clone();
        tokio::spawn(crate::server::serve(
            listener,
            Arc::new(Join(gw.clone())),
            async move {
                let _ = stop.changed().await;
            },
        ))
    };
    let admin_listener = admin::bind(&opts.root).map_err(io("admin socket"))?;
    let admin_task = spawn_admin(gw.clone(), admin_listener);
    let metrics_addr = SocketAddrV4::new(gw.spec.gateway_address(), METRICS_PORT);
    let metrics = {
        let listener = crate::listen::bind_tunnel_only(metrics_addr, &gw.spec.network.interface)
            .map_err(io("binding the metrics endpoint"))?;
        spawn_metrics(gw.clone(), listener, stop_rx.clone())
    };
    // DNS on the tunnel (udp+tcp 53): peers by name, VPN-only hosts, the rest forwarded.
    let dns = crate::dns::spawn(&opts.root, &gw.spec, stop_rx.clone());
    let sampler = spawn_sampler(gw.clone());
    let hangup = spawn_hangup(gw.clone())?;
    tracing::info!(api = %api_addr, metrics = %metrics_addr, "gateway running");

    let worker = spawn_reconcile_loop(gw.clone());

    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Aborted tasks drop their handle on the gateway only once cancelled: wait for that,
    // so the device below can be taken down (a kernel interface outlives the process).
    worker.abort();
    admin_task.abort();
    sampler.abort();
    hangup.abort();
    let _ = worker.await;
    let _ = admin_task.await;
    let _ = sampler.await;
    let _ = hangup.await;
    let _ = api.await;
    let _ = metrics.await;
    if let Some(dns) = dns {
        let _ = dns.await;
    }
    let _ = std::fs::remove_file(opts.root.path(proton_proto::admin::ADMIN_SOCKET));
    // Proton's table stays: it also holds the public-side rules (6443/10250 closed);
    // the next start checks and refills it.
    // A blocking check still running (the firewall's `nft` listing, which no abort stops)
    // may hold the gateway for a moment longer: give it a few seconds.
    let mut gw = gw;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Arc::try_unwrap(gw) {
            Ok(gw) => {
                gw.device.down().await;
                break;
            }
            Err(still) if std::time::Instant::now() < deadline => {
                gw = still;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(_) => {
                tracing::warn!(
                    "device still referenced at shutdown; the interface goes with the process"
                );
                break;
            }
        }
    }
    Ok(())
}

/// The admin socket: reconcile, reload and status for the CLI (`proton_proto::admin`).
fn spawn_admin(
    gw: Arc<Gateway>,
    admin_listener: tokio::net::UnixListener,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(admin::serve(admin_listener, move |req| {
        let gw = gw.clone();
        async move {
            match req {
                AdminRequest::Reconcile => match gw.reconcile().await {
                    Ok(a) => AdminResponse::Reconciled {
                        added: a.added,
                        updated: a.updated,
                        removed: a.removed,
                    },
                    Err(e) => AdminResponse::Error {
                        error: e.to_string(),
                    },
                },
                AdminRequest::Reload => match gw.reload().await {
                    Ok(r) => AdminResponse::Reloaded(r),
                    Err(e) => AdminResponse::Error {
                        error: e.to_string(),
                    },
                },
                AdminRequest::Status => AdminResponse::Status(gw.status().await),
            }
        }
    }))
}

/// Prometheus text on the tunnel address, rendered from the same status as `proton status`.
fn spawn_metrics(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let render: crate::metrics::Render = Arc::new(move || {
        let gw = gw.clone();
        Box::pin(async move { crate::metrics::render_metrics(&gw.status().await) })
    });
    tokio::spawn(crate::metrics::serve(listener, render, async move {
        let _ = stop.changed().await;
    }))
}

/// Samples the device often enough that "last heard" is accurate to a few seconds, and
/// keeps each peer's last endpoint for a restart.
fn spawn_sampler(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE);
        let mut book = crate::endpoints::Book::default();
        loop {
            every.tick().await;
            let live = gw.device.peers().await;
            gw.observer.sample(&live);
            book.note(&gw.root, &gw.spec.network.cidr, &live);
        }
    })
}

/// SIGHUP: re-read the spec (what `proton apply` asks over the admin socket).
fn spawn_hangup(gw: Arc<Gateway>) -> Result<tokio::task::JoinHandle<()>, GatewayError> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(io("SIGHUP handler"))?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Err(e) = gw.reload().await {
                tracing::warn!("spec reload failed: {e}");
            }
        }
    }))
}

/// The reconcile loop, the only writer to the device: at every DB change (polled each
/// second, or woken by the admin socket), at the next key swap or expiry, when the
/// firewall table went missing, and again after a failed pass until one succeeds.
fn spawn_reconcile_loop(gw: Arc<Gateway>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // One connection for the whole loop: polling is a single-row read each
        // second, not a reopen of the database file.
        let mut watcher = gw.store().ok();
        let generation = |w: &Option<Store>| w.as_ref().and_then(|s| s.generation().ok());
        let mut last = generation(&watcher);
        let mut poll = tokio::time::interval(POLL);
        let mut sweep = tokio::time::interval(SWEEP);
        let mut failing: Option<String> = None;
        // A failed reconcile leaves the device apart from the DB: it is tried again
        // at every poll until it succeeds, not only at the next change.
        let mut retry = false;
        loop {
            // The earliest pending key swap: reconcile then, not at the next poll.
            let swap_at = gw.next_swap.load(std::sync::atomic::Ordering::Relaxed);
            let swap_in = Duration::from_millis(swap_at.saturating_sub(now_ms()).max(0) as u64);
            tokio::select! {
                _ = poll.tick() => {
                    // `nft flush ruleset` or a reload of the boot file: restore the
                    // table (and fill its sets) now, not at the next DB change.
                    let intact = {
                        let gw = gw.clone();
                        tokio::task::spawn_blocking(move || gw.firewall.intact()).await.unwrap_or(false)
                    };
                    if !intact {
                        retry = match gw.reconcile().await {
                            // Said once, not every second while it lasts.
                            Err(e) if failing.as_deref() != Some(e.to_string().as_str()) => {
                                tracing::warn!("reconcile failed: {e}");
                                failing = Some(e.to_string());
                                true
                            }
                            Err(_) => true,
                            Ok(_) => {
                                failing = None;
                                false
                            }
                        };
                        continue;
                    }
                    // A deleted, truncated or replaced file: let go of it (its
                    // cache would go on answering) and reopen, which refuses it.
                    if watcher.as_ref().is_some_and(|w| w.still_on_disk().is_err()) {
                        watcher = None;
                    }
                    if watcher.is_none() {
                        watcher = gw.store().ok();
                    }
                    let now_gen = generation(&watcher);
                    if now_gen.is_none() {
                        watcher = None;
                    }
                    let expiry = gw.next_expiry.load(std::sync::atomic::Ordering::Relaxed);
                    let expired = expiry != 0 && now() >= expiry;
                    if expired {
                        tracing::info!("a peer's expiry passed: taking it off the device");
                    }
                    if now_gen == last && !expired && !retry { continue; }
                    last = now_gen;
                }
                _ = gw.wake.notified() => {}
                _ = tokio::time::sleep(swap_in), if swap_at != 0 => {}
                _ = sweep.tick() => {
                    let swept = match watcher.as_mut() {
                        Some(s) if s.still_on_disk().is_ok() => s.sweep_expired(now(), "daemon").map_err(GatewayError::Store),
                        _ => gw.store().and_then(|mut s| s.sweep_expired(now(), "daemon").map_err(GatewayError::Store)),
                    };
                    match swept {
                        Ok(swept) if !swept.is_empty() => tracing::info!(count = swept.len(), "expired invitations swept"),
                        Ok(_) => continue,
                        Err(e) => { tracing::warn!("sweep failed: {e}"); continue; }
                    }
                }
            }
            retry = match gw.reconcile().await {
                // Said once per distinct failure, not once a second while it lasts.
                Err(e) if failing.as_deref() != Some(e.to_string().as_str()) => {
                    tracing::error!("reconcile failed: {e}");
                    failing = Some(e.to_string());
                    true
                }
                Err(_) => true,
                Ok(_) => {
                    if failing.take().is_some() {
                        tracing::info!("reconcile works again");
                    }
                    false
                }
            };
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proton_store::Role;

    #[test]
    fn a_redeem_with_another_peers_key_is_a_client_error_that_names_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let cidr = "10.7.7.0/24".parse().unwrap();
        let gw = PrivateKey::generate().public_key();
        let (mut store, _) = Store::create(&root, &cidr, "proton", gw).unwrap();
        let alice_key = PrivateKey::generate().public_key();
        store
            .add_peer(
                &"alice-laptop".parse().unwrap(),
                Role::Client,
                alice_key,
                "t",
            )
            .unwrap();
        let throwaway = PrivateKey::generate().public_key();
        let (invitee, _) = store
            .reserve_invitation(
                &"w1".parse().unwrap(),
                Role::Worker,
                throwaway,
                "h",
                i64::MAX,
                "t",
            )
            .unwrap();
        let e = store
            .redeem_invitation("h", Some(invitee.address), alice_key, 1, "join-api")
            .unwrap_err();
        let refusal = redeem_refusal(e);
        assert!(refusal.status().is_client_error(), "{:?}", refusal.status());
        let answer = refusal.to_string();
        assert!(!answer.contains("alice"), "{answer}");
        assert!(answer.contains("already in use"), "{answer}");
        // The invitation is still there for the right key.
        let own = PrivateKey::generate().public_key();
        store
            .redeem_invitation("h", Some(invitee.address), own, 1, "join-api")
            .unwrap();
    }
}
