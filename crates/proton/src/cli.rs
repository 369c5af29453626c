//! The command line, declared with clap's derive API. Every command's `--help` says
//! what it does, where it runs, and what to run next.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "proton",
    version,
    about = "Turn one VPS into the WireGuard gateway of a K3s cluster whose workers sit behind NAT",
    long_about = "Proton turns one VPS into the WireGuard VPN server, K3s control plane and \
traffic entry point of a cluster whose other machines sit behind NAT.\n\n\
On the VPS:   proton init --endpoint vps.example.com\n\
Converge:     proton apply   (firewall, K3s, add-ons; --dry-run shows the plan)\n\
The daemon:   systemctl enable --now proton-gateway\n\
Invite:       proton invite home-1   (prints a one-line invitation and a QR code)\n\
On a worker:  proton join   (paste the invitation: stdin keeps it out of ps)\n\
Try it all on one machine first: proton lab up --workers 2",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Treat DIR as the filesystem root for every file Proton reads or writes
    /// (`/etc/proton/proton.toml` becomes `DIR/etc/proton/proton.toml`). For tests,
    /// rendering a host into a directory, and the lab.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "PROTON_ROOT",
        default_value = "/"
    )]
    pub root: PathBuf,
    /// More log output (-v info, -vv debug, -vvv trace). PROTON_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the gateway: the spec, the gateway's key pair and the state database.
    ///
    /// Run once on the VPS. Writes /etc/proton/proton.toml (edit it afterwards),
    /// /etc/proton/gateway.key (0600, made here from the OS RNG, never leaves this
    /// machine) and /var/lib/proton/proton.db. Refuses to replace an existing gateway
    /// unless --force (the old files are kept beside the new ones).
    Init(InitArgs),
    /// Print configuration rendered from the spec and the state database.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The gateway daemon.
    #[command(subcommand)]
    Gateway(GatewayCommand),
    /// Invite a worker or laptop: reserves an address, prints a single-use, expiring
    /// one-line invitation (and a QR code) to paste into `proton join` on that machine.
    Invite(InviteArgs),
    /// On a worker (root): join the gateway with an invitation. Makes this machine's own
    /// key, brings the tunnel up through NAT, redeems the invitation over the tunnel,
    /// switches to its own key, and makes the tunnel permanent (wg-quick@wg0 with the
    /// kernel backend, proton-agent.service with the userspace one). When the gateway
    /// runs K3s, it also writes the agent's /etc/rancher/k3s/config.yaml (server over the
    /// tunnel, a short-lived bootstrap token, node-ip = the tunnel address, flannel over
    /// the WireGuard interface) and installs the gateway's K3s version with the official
    /// script. Safe to re-run after a failure: it finishes the job.
    Join(JoinArgs),
    /// On a worker: run the tunnel (userspace WireGuard) from /etc/proton/agent.conf,
    /// re-resolving the gateway's host name when it moves. What proton-agent.service runs.
    Agent(DaemonArgs),
    /// Inventory and revocation of peers.
    #[command(subcommand)]
    Peer(PeerCommand),
    /// Phones and laptops that use a plain WireGuard app.
    #[command(subcommand)]
    Client(ClientCommand),
    /// The cluster dashboard (Headlamp by default): its admin login token.
    #[command(subcommand)]
    Dashboard(DashboardCommand),
    /// On the gateway: publish a cluster Service at a host name over HTTPS, with a
    /// Let's Encrypt certificate, optionally reachable only from the VPN.
    ///
    /// Writes the Traefik IngressRoute and the cert-manager Certificate (plus the VPN
    /// allow-list reference with --vpn-only) as one file in K3s's auto-deploy directory,
    /// /var/lib/rancher/k3s/server/manifests/proton-expose-NAME.yaml; K3s applies it
    /// within seconds and cert-manager then asks Let's Encrypt (HTTP-01 through Traefik),
    /// so HOST's DNS must already point at the gateway's public address.
    /// Run again with other flags to change it; `--remove` empties the file (K3s then
    /// deletes the route and certificate). Needs ingress and tls enabled in the spec
    /// and `proton apply` done. Check with `kubectl get ingressroute,certificate -A`.
    ///
    /// Example: proton expose blog --host blog.example.org --service web/blog:8080
    Expose(ExposeArgs),
    /// A complete sandbox on this machine (root): a gateway, a NAT router with workers
    /// behind it and clients, each in its own network namespace, running the real
    /// daemon, joins and tunnels. The way to try Proton without machines.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Is the network healthy? On the gateway: the interface, every peer (address,
    /// endpoint, last handshake, last heard, traffic, online/stale/never), and the
    /// cluster's nodes, add-ons and certificates when K3s runs here. On a worker: its
    /// tunnel and the gateway. `--json` for scripts. Next: `proton doctor` for fixes.
    Status(StatusArgs),
    /// Check everything that silently breaks this kind of network and print, for each
    /// failure, the exact command that fixes it: WireGuard support, IPv4 forwarding, the
    /// UDP port (bound, not firewalled), FwMark, MTU along tunnel and flannel, conntrack,
    /// the K3s service, agent/server version skew, the endpoint name, silent peers.
    /// Runs on the gateway or a worker. Exit code: 0 all pass, 1 warnings, 2 failures.
    Doctor(DoctorArgs),
    /// On a wg-quick worker: resolve the gateway's host name again and re-point the
    /// tunnel if it moved (wg-quick resolves only once). proton-reresolve.timer, written
    /// by `proton join --backend kernel`, runs it every 30 s; `proton agent` does it itself.
    Reresolve(ReresolveArgs),
    /// On the gateway (root): make this host match the spec: the nftables firewall, the
    /// K3s server (config.yaml, GOGC, tunnel ordering, sysctl, KUBECONFIG profile, the
    /// pinned version installed by the official script) and the add-on manifests in
    /// K3s's auto-deploy directory. Idempotent: a second run changes nothing. Restarts
    /// K3s only when Proton's own files changed. Try `--dry-run` first; then
    /// `proton invite <name>` to add workers, `proton kubeconfig` for kubectl.
    Apply(ApplyArgs),
    /// On the gateway: print K3s's admin kubeconfig with the server set to the tunnel
    /// address (https://10.7.7.1:6443) and every name set to the gateway's; usable from
    /// any machine on the VPN. `--merge` adds it to an existing kubeconfig instead,
    /// leaving its other contexts alone. It is the cluster-admin credential: keep it 0600.
    Kubeconfig(KubeconfigArgs),
    /// On the gateway (root): write one 0600 archive that is enough to replace this VPS:
    /// the gateway key, the spec, the state DB and K3s's SQLite datastore (both copied
    /// with SQLite's online backup API, consistent while the daemon and K3s run), and
    /// K3s's server token (without it the datastore's secrets cannot be decrypted).
    /// It holds every secret of the network: keep it like the key itself.
    /// Next, on the new machine: `proton restore FILE`.
    Backup(BackupArgs),
    /// On a new gateway machine (root): bring back the gateway from `proton backup`'s
    /// archive: the same key (so every worker and phone reconnects untouched once the
    /// endpoint name points here), spec, peers, and K3s's datastore and token. Checks
    /// the whole archive before writing anything; refuses to replace an existing gateway
    /// unless --force. Next: `proton apply`, `systemctl enable --now proton-gateway`.
    Restore(RestoreArgs),
    /// Remove what Proton wrote on this machine and nothing else: its files under
    /// /etc/proton and /var/lib/proton, its systemd units and drop-ins, its sysctl and
    /// profile.d files, its K3s config and add-on manifests, its nftables table and its
    /// WireGuard interface. K3s itself stays unless --k3s (then K3s's own
    /// k3s-uninstall.sh / k3s-agent-uninstall.sh runs). `--dry-run` lists exactly that.
    Uninstall(UninstallArgs),
    /// Print a shell completion script, e.g. `proton completions bash > /etc/bash_completion.d/proton`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// For packaging: write man pages, shell completions or the systemd units into DIR.
    #[command(hide = true, subcommand)]
    Generate(GenerateCommand),
}

/// What the Debian package ships beside the binary, generated from this binary.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// proton.1 and one page per subcommand (proton-init.1, …), from the `--help` text.
    Man { dir: PathBuf },
    /// bash (`proton`), zsh (`_proton`) and fish (`proton.fish`) completions.
    Completions { dir: PathBuf },
    /// proton-gateway.service, proton-agent.service and proton-firewall.service, the
    /// text `proton init`, `proton join` and `proton apply` write, running /usr/bin/proton.
    Units { dir: PathBuf },
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the archive (a new file; an existing one is never overwritten).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Encrypt the archive with a passphrase (the age format, scrypt), read from
    /// --passphrase-file or the PROTON_BACKUP_PASSPHRASE environment variable, never from
    /// the command line. Decrypt with `proton restore` or `age -d`.
    #[arg(long)]
    pub encrypt: bool,
    /// A file whose first line is the passphrase (implies --encrypt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// An archive written by `proton backup`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// For an encrypted archive: a file whose first line is the passphrase (or set
    /// PROTON_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Replace the gateway already on this machine (its files are renamed with a
    /// `.replaced-<time>` suffix, never deleted).
    #[arg(long)]
    pub force: bool,
    /// This machine's public IPv4 address, written as `gateway.public_ip` in the
    /// restored spec (the old VPS's address would be wrong here).
    #[arg(long, value_name = "IP")]
    pub public_ip: Option<std::net::IpAddr>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// List exactly what would be removed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also uninstall K3s, with K3s's own uninstall script.
    #[arg(long)]
    pub k3s: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Stable JSON for scripts (fields documented in the README).
    #[arg(long)]
    pub json: bool,
    /// A worker's WireGuard interface (the userspace agent always uses wg0).
    #[arg(long, default_value = "wg0")]
    pub interface: String,
    /// Count a peer as stale after SECS of silence, instead of 3x the spec's
    /// persistent_keepalive (a worker: 180 s without a handshake).
    #[arg(long, value_name = "SECS")]
    pub stale_after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The findings as JSON (the exit code is the same).
    #[arg(long)]
    pub json: bool,
    /// A worker's WireGuard interface.
    #[arg(long, default_value = "wg0")]
    pub interface: String,
    /// As for `proton status`.
    #[arg(long, value_name = "SECS")]
    pub stale_after: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ReresolveArgs {
    /// The wg-quick interface whose gateway endpoint to follow.
    #[arg(long, default_value = "wg0")]
    pub interface: String,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The gateway's public address as workers will dial it: a DNS name, an IPv4 address
    /// or [IPv6], with an optional :PORT (default 51820).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub endpoint: String,
    /// The gateway's name (also its Kubernetes node name).
    #[arg(long, default_value = "proton")]
    pub name: String,
    /// The VPN network; the gateway takes its first host address.
    #[arg(long, value_name = "CIDR", default_value = "10.7.7.0/24")]
    pub cidr: String,
    /// Your contact address for Let's Encrypt (tls.acme_email), needed by `proton apply`
    /// while ingress and TLS are on; can also be set in the spec later.
    #[arg(long, value_name = "EMAIL")]
    pub acme_email: Option<String>,
    /// Replace an existing gateway (new key: every peer must rejoin). The old files are
    /// renamed with a `.replaced-<time>` suffix, never deleted.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The gateway's wg-quick(8) configuration (contains the private key: it is for
    /// `wg-quick` on this machine, or to inspect with `wg-quick strip`).
    Wireguard,
}

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway daemon (what proton-gateway.service runs): brings the WireGuard
    /// interface up, reconciles peers from the DB live, serves the join API on the
    /// tunnel address only, and answers CLI commands on /run/proton/admin.sock.
    /// Stops cleanly on SIGTERM/SIGINT.
    Run(DaemonArgs),
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Override network.backend from the spec (auto, kernel, userspace).
    #[arg(long, value_name = "BACKEND")]
    pub backend: Option<String>,
    /// Directory for the WireGuard UAPI socket (default /var/run/wireguard, where `wg` looks).
    #[arg(long, value_name = "DIR")]
    pub uapi_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The new peer's name (a worker's name becomes its Kubernetes node name).
    pub name: String,
    /// worker (a K3s node) or client (a laptop running proton).
    #[arg(long, default_value = "worker")]
    pub role: String,
    /// How long the invitation stays valid: e.g. 30m, 1h, 2d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Do not print the terminal QR code: stdout is then the invitation alone, e.g.
    /// `proton invite w1 --no-qr | ssh root@w1 proton join`.
    #[arg(long)]
    pub no_qr: bool,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The invitation from `proton invite`. Omit it (or give `-`) to read it from
    /// standard input, which keeps it out of the process list and shell history.
    pub invitation: Option<String>,
    /// Name of the WireGuard interface to create.
    #[arg(long, default_value = "wg0")]
    pub interface: String,
    /// Give up on reaching the gateway after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// How the permanent tunnel runs: `kernel` writes /etc/wireguard/<iface>.conf for
    /// wg-quick@<iface>; `userspace` runs `proton agent`; `auto` picks kernel when the
    /// kernel has WireGuard (the module is loaded, `modprobe wireguard` loads it, or a
    /// wireguard link can be made because it is built in).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Where the K3s install script comes from when the gateway runs K3s: a URL, or an
    /// absolute path on this machine (air-gapped hosts).
    #[arg(long, value_name = "URL|PATH", default_value = "https://get.k3s.io")]
    pub k3s_install_script: String,
    /// The k3s binary (and images) are already on this machine: INSTALL_K3S_SKIP_DOWNLOAD.
    #[arg(long)]
    pub k3s_skip_download: bool,
    /// Only make the tunnel, even when the gateway offers K3s join data.
    #[arg(long)]
    pub no_k3s: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Show what would change (files as unified diffs, commands, K3s install, add-on
    /// objects K3s would prune) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// Merge into FILE (default ~/.kube/config) instead of printing: the gateway's
    /// cluster, context and user are added or replaced, everything else is kept.
    #[arg(long, value_name = "FILE")]
    #[allow(clippy::option_option)]
    pub merge: Option<Option<PathBuf>>,
}

#[derive(Debug, Subcommand)]
pub enum PeerCommand {
    /// Every peer: name, role, address, state, public key. Below them, removed workers
    /// whose K8s node is not deleted yet (in `--json`: entries in state `removing`).
    List {
        /// Stable JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a peer: its key leaves the live interface at once (not a single packet more)
    /// and its address is freed. For a worker, when K3s runs here, its K8s Node, its
    /// node-password secret and its bootstrap token are deleted too; if K3s does not
    /// answer, that cleanup is kept as pending (see `peer list`) and retried by the next
    /// `peer remove` (of any peer, or this one again) or `proton apply`.
    Remove {
        /// The peer's name, as `proton peer list` shows it.
        name: String,
    },
    /// Rename a peer in Proton's inventory (audited). Its key and address stay. A worker
    /// that joined K3s cannot be renamed: its Kubernetes node keeps the name it joined with.
    Rename {
        /// The peer's current name.
        old: String,
        /// The new name: 1-63 lowercase letters, digits and `-`.
        new: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// A ready wg-quick config + terminal QR for a phone or laptop that cannot run
    /// Proton. The key pair is made here, shown once, and never stored. Split tunnel
    /// (only the VPN network goes through the gateway) unless --full-tunnel.
    Add {
        /// A name for the device, e.g. `phone`: 1-63 lowercase letters, digits and `-`.
        name: String,
        /// Send all traffic through the gateway (AllowedIPs = 0.0.0.0/0, ::/0): it
        /// masquerades IPv4 to the internet and drops IPv6, which so cannot leak.
        #[arg(long)]
        full_tunnel: bool,
        /// Grant full reach, as a worker has: the kube API (6443), kubelets, every
        /// peer. Without it a client reaches the gateway's DNS, 80/443 and (with
        /// --full-tunnel) the internet, nothing else.
        #[arg(long)]
        admin: bool,
        /// Also let it open connections to one port of one peer, e.g. `w1:8080` (TCP)
        /// or `w1:53/udp`; the gateway by its name or as `gateway`. Repeat for more.
        /// Change later with `proton client allow|deny`.
        #[arg(long, value_name = "PEER:PORT[/udp]")]
        allow: Vec<String>,
        /// Also write the QR code as a PNG file (0600: it holds the private key).
        #[arg(long, value_name = "FILE")]
        qr_png: Option<PathBuf>,
        /// Do not print the terminal QR code (the config text is still printed).
        #[arg(long)]
        no_qr: bool,
        /// Cut the client off after this long, e.g. 12h, 30d (at most 3650d): the gateway
        /// daemon takes its key off the tunnel then; `proton peer list` shows the date.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Take a client off the tunnel without deleting it: its key and address are kept,
    /// so `proton client enable` lets the same config connect again.
    Disable {
        /// The client's name, as `proton peer list` shows it.
        name: String,
    },
    /// Put a disabled client back on the tunnel; its old config works again.
    Enable {
        /// The client's name, as `proton peer list` shows it.
        name: String,
    },
    /// Let a client open connections to one port of one peer each, beyond what a
    /// client reaches (e.g. `proton client allow laptop w1:22 w2:53/udp`). Applied live;
    /// `proton peer list` shows each client's grants in REACH.
    Allow {
        /// The client's name, as `proton peer list` shows it.
        name: String,
        /// PEER:PORT (TCP) or PEER:PORT/udp; the gateway by its name or as `gateway`.
        #[arg(required = true, value_name = "PEER:PORT[/udp]")]
        grants: Vec<String>,
    },
    /// Take named grants away from a client (the same PEER:PORT[/udp] it was given).
    Deny {
        /// The client's name, as `proton peer list` shows it.
        name: String,
        #[arg(required = true, value_name = "PEER:PORT[/udp]")]
        grants: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab: namespaces, NAT, the gateway daemon; each worker joins with only
    /// an invitation string; each client gets a `proton client add` config run by
    /// wireguard-go (a phone stand-in).
    Up {
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Extra worker namespaces behind the NAT that are left un-joined (to try
        /// `proton join` by hand: `proton lab exec w3 -- proton --root … join`).
        #[arg(long, default_value_t = 0)]
        spare_workers: usize,
        /// Lab name (several labs can coexist).
        #[arg(long, default_value = "proton")]
        name: String,
    },
    /// What the lab made, which processes are alive, and `proton status` in the gateway.
    Status {
        #[arg(long, default_value = "proton")]
        name: String,
    },
    /// Run a command inside a lab node (gw, nat, w1, c1, ...), e.g. `proton lab exec w1 -- ping 10.7.7.1`.
    Exec {
        node: String,
        #[arg(long, default_value = "proton")]
        name: String,
        /// Pass this command's standard input to the node's command.
        #[arg(long)]
        stdin: bool,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Remove everything the lab made, and nothing else.
    Down {
        #[arg(long, default_value = "proton")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Print the dashboard's admin login token (to stdout, nothing else there).
    ///
    /// Run on the gateway (or anywhere with a kubeconfig for the cluster). Reads the
    /// long-lived token of Proton's `proton-admin` ServiceAccount (bound to
    /// cluster-admin) from the Kubernetes API, authenticating with the kubeconfig's
    /// client certificate: by default K3s's admin kubeconfig /etc/rancher/k3s/k3s.yaml.
    /// The account exists once `proton apply` has run with the dashboard enabled.
    /// The token is a cluster-admin credential: paste it into the dashboard's login
    /// page, do not store it. How to open the dashboard is printed to stderr.
    ///
    /// Example: proton dashboard token | xclip -selection clipboard
    Token {
        /// Read the API address and credentials from this kubeconfig instead of K3s's
        /// (e.g. the one from `proton kubeconfig`, to run this from a laptop on the VPN).
        #[arg(long, value_name = "FILE", env = "PROTON_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ExposeArgs {
    /// A name for this exposure (lowercase letters, digits and '-'): names the file,
    /// the IngressRoute and the Certificate (its Secret is cert-NAME).
    pub name: String,
    /// The public host name, e.g. blog.example.org (its DNS must point at the gateway).
    #[arg(long, value_name = "HOST", required_unless_present = "remove")]
    pub host: Option<String>,
    /// The Service to send traffic to, as NAMESPACE/SERVICE:PORT, e.g. web/blog:8080.
    /// The route and certificate are created in that namespace.
    #[arg(long, value_name = "NS/SVC:PORT", required_unless_present = "remove")]
    pub service: Option<String>,
    /// Only clients on the VPN may reach it (Traefik's VPN allow-list, derived from
    /// network.cidr); everyone else gets 403.
    #[arg(long)]
    pub vpn_only: bool,
    /// Stop exposing NAME: the file is emptied (not deleted) so K3s removes its objects.
    #[arg(long, conflicts_with_all = ["host", "service", "vpn_only"])]
    pub remove: bool,
    /// Print the file that would be written, and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}
