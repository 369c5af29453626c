//! The gateway's firewall: one nftables table owned by Proton, `inet proton`, made by
//! one generator for both `proton apply` (the file loaded at boot) and the gateway
//! daemon (which keeps the table's sets and restores the table when it disappears).
//! Every rule Proton needs lives here, so they cannot contradict each other:
//!
//! - **Public surface.** The input chain's policy stays **accept**; only the ports Proton
//!   opens for the cluster (kube API 6443, kubelet 10250, the join API, metrics) are
//!   dropped unless the packet arrived on the WireGuard interface or loopback. A
//!   default-drop chain would also close whatever else the admin runs (SSH on a custom
//!   port, monitoring agents) and lock them out of their own VPS; Proton owns only what
//!   it opened. WireGuard's UDP port and 80/443 are accepted explicitly, so the ruleset
//!   reads as the whole public surface Proton intends.
//! - **Flannel VXLAN (8472/udp)** is accepted only on the tunnel interface from a
//!   worker's tunnel address (set `workers`, kept by the daemon) or from the gateway
//!   itself (loopback); from anywhere else it is dropped. That matters twice: K3s says
//!   the port must not be exposed, and whatever arrives on `flannel.1` was decapsulated
//!   from such a datagram, so only workers can put packets there. Pod addresses are then
//!   trusted on `cni0`/`flannel.1` only where their subnet is routed (a reverse-path
//!   check), so a worker's VXLAN cannot claim the gateway's own pods either.
//! - **NodePorts (30000–32767)** are DNATed by kube-proxy in `prerouting`, before any
//!   input hook sees them: Proton drops new connections to them in its own prerouting
//!   chain (priority mangle, before DNAT) unless they come from the tunnel, loopback or a
//!   pod. Publish a service with `proton expose` (Traefik on 80/443), not a NodePort.
//! - **Reach per role** (chain `from_tunnel`, in prerouting so it sees the address a
//!   packet was sent to before any DNAT): workers and `--admin` clients reach
//!   everything; clients reach the gateway's DNS (53 udp/tcp), 80/443 and ping, and the
//!   internet (full tunnel), not other peers, pods or Services; any other tunnel
//!   address — an invitee's throw-away key — reaches only the join API. A client's
//!   named grants (`client add --allow w1:8080`) are elements of the set `grants`
//!   (client address . peer address . protocol . port), judged after the fence, so a
//!   disabled or unredeemed client's grants open nothing. The sets list
//!   who is *admitted*, so an empty or freshly loaded table fails closed: the invitee
//!   fence is simply the absence from every set.
//! - **Full tunnel.** Source NAT (masquerade) for `network.cidr` leaving the host
//!   towards anything outside the VPN and the cluster's ranges; IPv6 from the tunnel is
//!   dropped (clients route `::/0` into the tunnel so it cannot leak around it).
//!
//! Other tables (Docker's, K3s's, the admin's own) are never touched: the script only
//! adds and deletes `inet proton`.

use crate::Error;
use proton_core::host::Runner;
use proton_core::net::Cidr;
use proton_core::peer::Flow;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub const TABLE: &str = "inet proton";
/// K3s's default pod network (`cluster-cidr`).
pub const K3S_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// K3s's default Service network (`service-cidr`).
pub const K3S_SERVICE_CIDR: &str = "10.43.0.0/16";
/// Where pod traffic enters the node: flannel's CNI bridge and its VXLAN device.
pub const POD_INTERFACES: &str = "{ \"cni0\", \"flannel.1\" }";
/// Flannel's VXLAN port (the Linux kernel's IANA default is 4789; flannel uses 8472).
pub const VXLAN_PORT: u16 = 8472;
/// kube-apiserver's default `--service-node-port-range`.
pub const NODE_PORTS: &str = "30000-32767";
/// The sets the daemon keeps: who is admitted from the tunnel, by role.
pub const SETS: [&str; 3] = ["workers", "clients", "admins"];
/// The set of named grants: `from . to . protocol . port`.
pub const GRANTS: &str = "grants";

/// Who is admitted from the tunnel: the active peers' addresses by role. An address in
/// none of them (an invitee) reaches only the join API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    pub workers: BTreeSet<Ipv4Addr>,
    /// Every active client (admins included).
    pub clients: BTreeSet<Ipv4Addr>,
    /// Clients granted full reach (`client add --admin`).
    pub admins: BTreeSet<Ipv4Addr>,
    /// Clients' named grants (`client add --allow`), for clients in `clients` only.
    pub grants: BTreeSet<Flow>,
}

impl Members {
    fn get(&self, set: &str) -> &BTreeSet<Ipv4Addr> {
        match set {
            "workers" => &self.workers,
            "clients" => &self.clients,
            _ => &self.admins,
        }
    }
}

/// What the firewall protects and allows.
#[derive(Debug, Clone)]
pub struct FirewallParams {
    /// The WireGuard interface (`wg0`).
    pub interface: String,
    /// The VPN network (`network.cidr`): the interface is trusted only for these source
    /// addresses. WireGuard's own AllowedIPs already bind each peer to its address; this
    /// keeps the cluster ports closed to anything else that might arrive on the
    /// interface (a misconfigured peer with a wide AllowedIPs, or a routed network).
    pub tunnel_cidr: Cidr,
    /// The pod network (K3s's `cluster-cidr`): pods reach the kube API and kubelets
    /// through the ClusterIP (DNAT to the node's 6443/10250), arriving on the CNI bridge
    /// (pods on this node) or flannel's VXLAN device (pods on workers, carried inside the
    /// tunnel) with a pod address. `None` on a host without K3s.
    pub pod_cidr: Option<Cidr>,
    /// WireGuard's UDP listen port, open to the world.
    pub listen_port: u16,
    /// TCP ports answering only on the tunnel and loopback.
    pub tunnel_only_tcp: Vec<u16>,
    /// TCP ports open to the world (ingress).
    pub public_tcp: Vec<u16>,
    /// The join API: the one port an invitee (a tunnel address in no set) may reach.
    pub join_port: Option<u16>,
    /// What a plain client may reach on the gateway: TCP and UDP ports (DNS, ingress).
    pub client_tcp: Vec<u16>,
    pub client_udp: Vec<u16>,
}

impl FirewallParams {
    /// The gateway defaults: 6443, 10250, `join_port` and `metrics_port` tunnel-only;
    /// 80 and 443 public; clients reach DNS and 80/443 on the gateway.
    pub fn gateway(
        interface: &str,
        tunnel_cidr: Cidr,
        listen_port: u16,
        join_port: u16,
        metrics_port: u16,
    ) -> Self {
        FirewallParams {
            interface: interface.into(),
            tunnel_cidr,
            pod_cidr: Some(
                K3S_CLUSTER_CIDR
                    .parse()
                    .expect("K3s's default cluster-cidr"),
            ),
            listen_port,
            tunnel_only_tcp: vec![6443, 10250, join_port, metrics_port],
            public_tcp: vec![80, 443],
            join_port: Some(join_port),
            client_tcp: vec![53, 80, 443],
            client_udp: vec![53],
        }
    }
}

fn set(ports: &[u16]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

fn elements(addrs: &BTreeSet<Ipv4Addr>) -> String {
    let list: Vec<String> = addrs.iter().map(Ipv4Addr::to_string).collect();
    list.join(", ")
}

fn flows(flows: &BTreeSet<Flow>) -> String {
    let list: Vec<String> = flows
        .iter()
        .map(|f| format!("{} . {} . {} . {}", f.from, f.to, f.proto.as_str(), f.port))
        .collect();
    list.join(", ")
}

/// The `set grants` declaration (`elements` empty: none).
fn grants_set(elements: &str) -> String {
    let ty = "type ipv4_addr . ipv4_addr . inet_proto . inet_service;";
    if elements.is_empty() {
        format!("set {GRANTS} {{ {ty} }}")
    } else {
        format!("set {GRANTS} {{ {ty} elements = {{ {elements} }}; }}")
    }
}

/// The `nft -f` script with empty sets (what `proton apply` writes and the boot unit
/// loads; the daemon fills the sets). The first line makes sure the table exists so
/// that `delete` cannot fail on a fresh host; `nft -f` applies the whole file as one
/// transaction, so there is no instant without the table's rules.
pub fn ruleset(p: &FirewallParams) -> Result<String, Error> {
    ruleset_with(p, &Members::default())
}

/// The whole table with its sets filled (the daemon's start and restore).
pub fn ruleset_with(p: &FirewallParams, m: &Members) -> Result<String, Error> {
    let iface_ok = !p.interface.is_empty()
        && p.interface.len() < 16
        && p.interface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !iface_ok {
        return Err(Error::InvalidName {
            field: "interface",
            value: p.interface.clone(),
        });
    }
    if p.tunnel_only_tcp.is_empty() {
        return Err(Error::Firewall("no tunnel-only ports given".into()));
    }
    let wg = &p.interface;
    let vpn = p.tunnel_cidr.net();
    let mut private = vec![vpn.to_string()];
    if let Some(pods) = p.pod_cidr {
        private.push(pods.to_string());
        private.push(K3S_SERVICE_CIDR.to_string());
    }
    let private = format!("{{ {} }}", private.join(", "));
    let mut s = String::new();
    let mut line = |indent: usize, text: &str| {
        s.push_str(&"\t".repeat(indent));
        s.push_str(text);
        s.push('\n');
    };
    line(0, "#!/usr/sbin/nft -f");
    line(
        0,
        "# Written by Proton: owns only this table. The gateway daemon fills the sets.",
    );
    line(0, &format!("table {TABLE}\ndelete table {TABLE}"));
    line(0, &format!("table {TABLE} {{"));
    for name in SETS {
        let members = m.get(name);
        if members.is_empty() {
            line(1, &format!("set {name} {{ type ipv4_addr; }}"));
        } else {
            line(
                1,
                &format!(
                    "set {name} {{ type ipv4_addr; elements = {{ {} }}; }}",
                    elements(members)
                ),
            );
        }
    }
    line(1, &grants_set(&flows(&m.grants)));

    line(1, "chain prerouting {");
    line(
        2,
        "type filter hook prerouting priority mangle; policy accept;",
    );
    line(
        2,
        &format!(
            "iifname \"{wg}\" meta nfproto ipv6 counter drop comment \"IPv6 is not carried: clients route ::/0 here so it cannot leak\""
        ),
    );
    line(
        2,
        &format!("iifname \"{wg}\" ip saddr {vpn} jump from_tunnel"),
    );
    line(
        2,
        &format!(
            "iifname != {{ \"lo\", \"{wg}\", \"cni0\", \"flannel.1\" }} meta l4proto {{ tcp, udp }} th dport {NODE_PORTS} fib daddr type local ct state new counter drop comment \"NodePorts: tunnel, loopback and pods only (DNATed before input)\""
        ),
    );
    line(1, "}");

    line(1, "chain from_tunnel {");
    line(2, "ct state established,related accept");
    line(
        2,
        "ip saddr @workers accept comment \"workers: the gateway, each other, the cluster\"",
    );
    line(
        2,
        "ip saddr @admins accept comment \"clients granted --admin\"",
    );
    if let Some(join) = p.join_port {
        line(
            2,
            &format!(
                "fib daddr type local tcp dport {join} accept comment \"the join API (invitees redeem here)\""
            ),
        );
    }
    line(
        2,
        "ip saddr != @clients counter drop comment \"the invitee fence: not an active peer\"",
    );
    line(
        2,
        &format!(
            "ip saddr . ip daddr . meta l4proto . th dport @{GRANTS} accept comment \"clients' named grants (client add --allow)\""
        ),
    );
    line(2, "fib daddr type local jump client_to_gateway");
    line(
        2,
        &format!(
            "ip daddr {private} counter drop comment \"clients do not reach peers, pods or Services\""
        ),
    );
    line(1, "}");

    line(1, "chain client_to_gateway {");
    if !p.client_udp.is_empty() {
        line(2, &format!("udp dport {} accept", set(&p.client_udp)));
    }
    if !p.client_tcp.is_empty() {
        line(2, &format!("tcp dport {} accept", set(&p.client_tcp)));
    }
    line(2, "icmp type echo-request accept");
    line(
        2,
        "counter drop comment \"clients: DNS, 80/443 and ping on the gateway, nothing else\"",
    );
    line(1, "}");

    line(1, "chain input {");
    line(2, "type filter hook input priority filter; policy accept;");
    line(2, "iif \"lo\" accept");
    line(
        2,
        &format!(
            "iifname \"{wg}\" ip saddr @workers udp dport {VXLAN_PORT} accept comment \"flannel VXLAN from workers\""
        ),
    );
    line(
        2,
        &format!(
            "udp dport {VXLAN_PORT} counter drop comment \"flannel VXLAN: workers over the tunnel only\""
        ),
    );
    if let Some(pods) = p.pod_cidr {
        line(
            2,
            &format!(
                "iifname {POD_INTERFACES} ip saddr {pods} fib saddr . iif oif missing counter drop comment \"a pod address only where its subnet is routed\""
            ),
        );
    }
    line(
        2,
        &format!("iifname \"{wg}\" ip saddr {vpn} accept comment \"the VPN (network.cidr)\""),
    );
    if let Some(pods) = p.pod_cidr {
        line(
            2,
            &format!(
                "iifname {POD_INTERFACES} ip saddr {pods} accept comment \"pods (K3s cluster-cidr)\""
            ),
        );
    }
    line(2, "ct state established,related accept");
    line(2, &format!("udp dport {} accept", p.listen_port));
    if !p.public_tcp.is_empty() {
        line(2, &format!("tcp dport {} accept", set(&p.public_tcp)));
    }
    line(
        2,
        &format!(
            "tcp dport {} counter drop comment \"tunnel and loopback only\"",
            set(&p.tunnel_only_tcp)
        ),
    );
    line(1, "}");

    line(1, "chain forward {");
    line(
        2,
        "type filter hook forward priority filter; policy accept;",
    );
    line(
        2,
        &format!(
            "oifname \"{wg}\" ip daddr {vpn} ip daddr != @workers ip daddr != @clients counter drop comment \"the invitee fence: nothing reaches an invitee\""
        ),
    );
    line(
        2,
        &format!("oifname \"{wg}\" meta nfproto ipv6 counter drop"),
    );
    line(1, "}");

    line(1, "chain output {");
    line(2, "type filter hook output priority filter; policy accept;");
    if let Some(join) = p.join_port {
        line(
            2,
            &format!(
                "oifname \"{wg}\" ip daddr {vpn} ip daddr != @workers ip daddr != @clients tcp sport {join} accept comment \"the join API answers invitees\""
            ),
        );
    }
    line(
        2,
        &format!(
            "oifname \"{wg}\" ip daddr {vpn} ip daddr != @workers ip daddr != @clients counter drop comment \"the invitee fence: the gateway sends an invitee nothing else\""
        ),
    );
    line(1, "}");

    line(1, "chain postrouting {");
    line(
        2,
        "type nat hook postrouting priority srcnat; policy accept;",
    );
    line(
        2,
        &format!(
            "ip saddr {vpn} ip daddr != {private} oifname != \"{wg}\" masquerade comment \"full-tunnel clients reach the internet\""
        ),
    );
    line(1, "}");
    line(0, "}");
    Ok(s)
}

/// The one transaction that turns the sets' contents from `old` into `new` (empty when
/// nothing changed). Fails, as a whole, when the table is missing.
pub fn members_update(old: &Members, new: &Members) -> String {
    let mut s = String::new();
    for name in SETS {
        let (o, n) = (old.get(name), new.get(name));
        let gone: BTreeSet<Ipv4Addr> = o.difference(n).copied().collect();
        let added: BTreeSet<Ipv4Addr> = n.difference(o).copied().collect();
        if !gone.is_empty() {
            s.push_str(&format!(
                "delete element {TABLE} {name} {{ {} }}\n",
                elements(&gone)
            ));
        }
        if !added.is_empty() {
            s.push_str(&format!(
                "add element {TABLE} {name} {{ {} }}\n",
                elements(&added)
            ));
        }
    }
    let gone: BTreeSet<Flow> = old.grants.difference(&new.grants).copied().collect();
    let added: BTreeSet<Flow> = new.grants.difference(&old.grants).copied().collect();
    if !gone.is_empty() {
        s.push_str(&format!(
            "delete element {TABLE} {GRANTS} {{ {} }}\n",
            flows(&gone)
        ));
    }
    if !added.is_empty() {
        s.push_str(&format!(
            "add element {TABLE} {GRANTS} {{ {} }}\n",
            flows(&added)
        ));
    }
    s
}

/// The one transaction that makes the sets of a loaded table hold exactly `m` (after the
/// table was loaded again from the boot file, whose sets are empty).
pub fn members_fill(m: &Members) -> String {
    let mut s = String::new();
    for name in SETS {
        s.push_str(&format!("flush set {TABLE} {name}\n"));
        let set = m.get(name);
        if !set.is_empty() {
            s.push_str(&format!(
                "add element {TABLE} {name} {{ {} }}\n",
                elements(set)
            ));
        }
    }
    s.push_str(&format!("flush set {TABLE} {GRANTS}\n"));
    if !m.grants.is_empty() {
        s.push_str(&format!(
            "add element {TABLE} {GRANTS} {{ {} }}\n",
            flows(&m.grants)
        ));
    }
    s
}

/// What a peer may reach through the gateway, as `peer list` and `status` say it.
/// `role`: gateway, worker or client; `invited`: still holding an invitation's key;
/// `allows`: its named grants (`w1:8080/tcp`), said after the role's default.
pub fn reach(role: &str, invited: bool, admin: bool, allows: &[String]) -> String {
    let base = match (role, invited, admin) {
        ("gateway", _, _) => "-",
        (_, true, _) => "join API only (invitee)",
        ("worker", _, _) => "gateway, workers, cluster",
        (_, _, true) => "everything (--admin)",
        _ => "gateway DNS, 80/443, internet",
    };
    if allows.is_empty() || role != "client" || admin || invited {
        base.to_string()
    } else {
        format!("{base} + {}", allows.join(", "))
    }
}

/// The script that removes Proton's table (tolerating its absence).
pub fn removal() -> String {
    format!("table {TABLE}\ndelete table {TABLE}\n")
}

fn nft(
    runner: &dyn Runner,
    netns: Option<&str>,
    flags: &[&str],
    script: &str,
) -> Result<(), Error> {
    let mut args: Vec<&str> = Vec::new();
    let program = match netns {
        Some(ns) => {
            args.extend(["netns", "exec", ns, "nft"]);
            "ip"
        }
        None => "nft",
    };
    args.extend(flags);
    args.extend(["-f", "-"]);
    let out = runner.run(program, &args, &[], Some(script)).map_err(|e| {
        Error::Firewall(format!(
            "could not run nft: {e} (install the nftables package)"
        ))
    })?;
    if out.success() {
        Ok(())
    } else {
        // nft repeats its error for every object of the script: the first line says it.
        let first = out.stderr.trim().lines().next().unwrap_or("").trim();
        Err(Error::Firewall(format!(
            "nft rejected the ruleset: {first}"
        )))
    }
}

/// Applies the ruleset (`netns`: run it inside that network namespace, for the lab).
pub fn apply(runner: &dyn Runner, netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(runner, netns, &[], script)
}

/// Checks the ruleset without applying it (`nft -c`).
pub fn check(runner: &dyn Runner, netns: Option<&str>, script: &str) -> Result<(), Error> {
    nft(runner, netns, &["-c"], script)
}

/// The loaded table's handle (`nft -a -t list table`: sets' contents left out): `None`
/// when the table is missing or lost its fence (`nft flush ruleset`, a hand edit). The
/// handle changes whenever the table is deleted and loaded again (a reload of the boot
/// file empties the sets), so the daemon compares it to the one it filled.
pub fn table_handle(runner: &dyn Runner, netns: Option<&str>) -> Option<u64> {
    let mut args: Vec<&str> = Vec::new();
    let program = match netns {
        Some(ns) => {
            args.extend(["netns", "exec", ns, "nft"]);
            "ip"
        }
        None => "nft",
    };
    args.extend(["-a", "-t", "list", "table", "inet", "proton"]);
    let out = runner.run(program, &args, &[], None).ok()?;
    if !out.success() || !out.stdout.contains("the invitee fence: not an active peer") {
        return None;
    }
    parse_table_handle(&out.stdout)
}

fn parse_table_handle(listing: &str) -> Option<u64> {
    let line = listing
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("table {TABLE} ")))?;
    line.split("# handle ").nth(1)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_handle_is_read_from_a_listing() {
        let listing = "table inet proton { # handle 7\n\tchain from_tunnel { # handle 3\n\t}\n}\n";
        assert_eq!(parse_table_handle(listing), Some(7));
        assert_eq!(parse_table_handle("table inet other { # handle 7\n"), None);
    }

    #[test]
    fn members_update_sends_only_the_difference() {
        let a: Ipv4Addr = "10.7.7.2".parse().unwrap();
        let b: Ipv4Addr = "10.7.7.3".parse().unwrap();
        let old = Members {
            workers: [a].into(),
            ..Members::default()
        };
        let new = Members {
            workers: [b].into(),
            clients: [a].into(),
            ..Members::default()
        };
        assert_eq!(
            members_update(&old, &new),
            "delete element inet proton workers { 10.7.7.2 }\n\
             add element inet proton workers { 10.7.7.3 }\n\
             add element inet proton clients { 10.7.7.2 }\n"
        );
        assert_eq!(members_update(&new, &new), "");
    }

    #[test]
    fn named_grants_are_one_set_judged_after_the_fence_and_updated_by_difference() {
        let c: Ipv4Addr = "10.7.7.5".parse().unwrap();
        let w: Ipv4Addr = "10.7.7.2".parse().unwrap();
        let web = Flow {
            from: c,
            to: w,
            proto: proton_core::peer::L4::Tcp,
            port: 8080,
        };
        let dns = Flow {
            to: "10.7.7.1".parse().unwrap(),
            proto: proton_core::peer::L4::Udp,
            port: 53,
            ..web
        };
        let old = Members {
            clients: [c].into(),
            grants: [web].into(),
            ..Members::default()
        };
        let new = Members {
            grants: [dns].into(),
            ..old.clone()
        };
        assert_eq!(
            members_update(&old, &new),
            "delete element inet proton grants { 10.7.7.5 . 10.7.7.2 . tcp . 8080 }\n\
             add element inet proton grants { 10.7.7.5 . 10.7.7.1 . udp . 53 }\n"
        );
        assert!(members_fill(&new).ends_with(
            "flush set inet proton grants\nadd element inet proton grants { 10.7.7.5 . 10.7.7.1 . udp . 53 }\n"
        ));
        let p = FirewallParams::gateway("wg0", "10.7.7.0/24".parse().unwrap(), 51820, 8443, 9586);
        let rules = ruleset_with(&p, &old).unwrap();
        assert!(
            rules.contains("elements = { 10.7.7.5 . 10.7.7.2 . tcp . 8080 }"),
            "{rules}"
        );
        let fence = rules.find("the invitee fence: not an active peer").unwrap();
        let grant = rules.find("@grants accept").unwrap();
        let gateway = rules.find("jump client_to_gateway").unwrap();
        assert!(fence < grant && grant < gateway, "{rules}");
        assert_eq!(
            reach("client", false, false, &["w1:8080/tcp".into()]),
            "gateway DNS, 80/443, internet + w1:8080/tcp"
        );
        assert_eq!(
            reach("client", true, false, &["w1:8080/tcp".into()]),
            "join API only (invitee)"
        );
    }
}
