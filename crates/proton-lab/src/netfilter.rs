//! The router's masquerade and the faults tests inject (cut links, blocked ports).

use crate::error::LabError;
use crate::lab::{Lab, run};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

fn nft(netns: &str, script: &str) -> Result<(), LabError> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            cmd: "nft".into(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(LabError::io("/usr/sbin/nft"))?;
    if !out.status.success() {
        return Err(LabError::Command {
            cmd: format!("nft -f - (in {netns})"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// A real netfilter NAT on the router: masquerade out of `wan`, forward LAN → WAN, and
/// WAN → LAN only for flows the LAN started (a true NAT: the internet can answer mapped
/// flows and nothing else). nftables first; iptables if nft is missing or refuses.
pub(crate) fn masquerade(netns: &str, wan: &str, lan: &str) -> Result<(), LabError> {
    let rules = format!(
        "table ip proton_lab_nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{wan}\" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname \"{lan}\" oifname \"{wan}\" accept
    iifname \"{wan}\" oifname \"{lan}\" ct state established,related accept
  }}
}}
"
    );
    let nft_error = match nft(netns, &rules) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let ipt = |args: &[&str]| {
        let mut argv = vec!["ip", "netns", "exec", netns, "iptables"];
        argv.extend_from_slice(args);
        run(&argv)
    };
    let fallback = (|| {
        ipt(&[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            wan,
            "-j",
            "MASQUERADE",
        ])?;
        ipt(&["-P", "FORWARD", "DROP"])?;
        ipt(&["-A", "FORWARD", "-i", lan, "-o", wan, "-j", "ACCEPT"])?;
        ipt(&[
            "-A",
            "FORWARD",
            "-i",
            wan,
            "-o",
            lan,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ])?;
        Ok::<(), LabError>(())
    })();
    fallback.map_err(|e| LabError::Command {
        cmd: "masquerade on the NAT router (nftables, then iptables)".into(),
        stderr: format!("{nft_error}; {e}"),
    })
}

impl Lab {
    /// The gateway's public address (what `proton init --endpoint` gets).
    pub fn gateway_public_ip(&self) -> Ipv4Addr {
        self.address_of("gw")
    }

    /// The NAT router's public address: the source the gateway sees for every worker.
    pub fn nat_public_ip(&self) -> Ipv4Addr {
        self.address_of("nat")
    }

    /// A node's address on its network (public, or private for workers): tunnel-independent.
    /// Panics on a node without one (`inet`) or unknown; use [`Lab::node`] to probe.
    pub fn address_of(&self, node: &str) -> Ipv4Addr {
        self.node(node)
            .ok()
            .and_then(|n| n.address)
            .unwrap_or_else(|| panic!("lab {}: node {node} has no address", self.name))
    }

    /// The "internet" network (gateway, NAT outside, clients).
    pub fn public_net(&self) -> ipnet::Ipv4Net {
        self.public_net
    }

    /// The home LAN behind the NAT router.
    pub fn lan_net(&self) -> ipnet::Ipv4Net {
        self.lan_net
    }

    /// Sets the bridge port that attaches `node` to its network down (`up = false`:
    /// the cable is cut, the node's own interface stays up) or up again. For a worker
    /// that port is on the NAT router's LAN bridge.
    pub fn set_link(&self, node: &str, up: bool) -> Result<(), LabError> {
        let n = self.node(node)?;
        let uplink = n.uplink.as_ref().ok_or_else(|| LabError::Command {
            cmd: format!("set_link {node}"),
            stderr: "this node has no uplink (it is the internet itself)".into(),
        })?;
        let state = if up { "up" } else { "down" };
        run(&[
            "ip",
            "-n",
            &uplink.netns,
            "link",
            "set",
            &uplink.port,
            state,
        ])?;
        Ok(())
    }

    /// Drops incoming UDP to `port` in `node` (nftables table `proton_lab_block` in
    /// that namespace), e.g. `block_udp("gw", 51820)` to test `proton doctor`.
    pub fn block_udp(&self, node: &str, port: u16) -> Result<(), LabError> {
        let netns = self.node(node)?.netns.clone();
        nft(
            &netns,
            &format!(
                "table inet proton_lab_block {{
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    udp dport {port} drop comment \"proton-lab-block-{port}\"
  }}
}}
"
            ),
        )
    }

    /// Removes every block [`Lab::block_udp`] put in `node`.
    pub fn unblock_udp(&self, node: &str) -> Result<(), LabError> {
        let netns = self.node(node)?.netns.clone();
        // Declaring then deleting makes this succeed whether or not the table exists.
        nft(
            &netns,
            "table inet proton_lab_block {}\ndelete table inet proton_lab_block\n",
        )
    }
}
