//! The gateway's firewall: one nftables table owned by Proton, replaced atomically.
//!
//! The choice: the input chain's policy stays **accept**, and only the ports Proton
//! opens for the cluster (kube API 6443, kubelet 10250, the join API, metrics) are
//! dropped unless the packet arrived on the WireGuard interface or loopback. A
//! default-drop chain would also close whatever else the admin runs (SSH on a custom
//! port, monitoring agents) and lock them out of their own VPS; Proton owns only what
//! it opened. WireGuard's UDP port and 80/443 are accepted explicitly, so the
//! ruleset reads as the whole public surface Proton intends. Other tables (Docker's,
//! the admin's own) are never touched: the script only adds and deletes `inet proton`.

use crate::Error;
use crate::runner::Runner;
use proton_core::net::Cidr;

pub const TABLE: &str = "inet proton";
/// K3s's default pod network (`cluster-cidr`).
pub const K3S_CLUSTER_CIDR: &str = "10.42.0.0/16";
/// Where pod traffic enters the node: flannel's CNI bridge and its VXLAN device.
pub const POD_INTERFACES: &str = "{ \"cni0\", \"flannel.1\" }";

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
}

impl FirewallParams {
    /// The gateway defaults: 6443, 10250, `join_port` and `metrics_port` tunnel-only;
    /// 80 and 443 public.
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

/// The `nft -f` script. The first line makes sure the table exists so that `delete`
/// cannot fail on a fresh host; `nft -f` applies the whole file as one transaction, so
/// there is no instant without the table's rules.
pub fn ruleset(p: &FirewallParams) -> Result<String, Error> {
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
    let mut s = String::new();
    s.push_str("#!/usr/sbin/nft -f\n# Written by Proton: owns only this table.\n");
    s.push_str(&format!("table {TABLE}\ndelete table {TABLE}\n"));
    s.push_str(&format!("table {TABLE} {{\n"));
    s.push_str("\tchain input {\n");
    s.push_str("\t\ttype filter hook input priority filter; policy accept;\n");
    s.push_str("\t\tiif \"lo\" accept\n");
    s.push_str(&format!(
        "\t\tiifname \"{}\" ip saddr {} accept comment \"the VPN (network.cidr)\"\n",
        p.interface, p.tunnel_cidr
    ));
    if let Some(pods) = p.pod_cidr {
        s.push_str(&format!(
            "\t\tiifname {POD_INTERFACES} ip saddr {pods} accept comment \"pods (K3s cluster-cidr)\"\n"
        ));
    }
    s.push_str("\t\tct state established,related accept\n");
    s.push_str(&format!("\t\tudp dport {} accept\n", p.listen_port));
    if !p.public_tcp.is_empty() {
        s.push_str(&format!("\t\ttcp dport {} accept\n", set(&p.public_tcp)));
    }
    s.push_str(&format!(
        "\t\ttcp dport {} counter drop comment \"tunnel and loopback only\"\n",
        set(&p.tunnel_only_tcp)
    ));
    s.push_str("\t}\n}\n");
    Ok(s)
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
        Err(Error::Firewall(format!(
            "nft rejected the ruleset: {}",
            out.stderr.trim()
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
