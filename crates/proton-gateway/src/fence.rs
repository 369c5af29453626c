//! The invitee fence: a peer that still holds an invitation's throw-away key may reach
//! the join API and nothing else — not the gateway's other ports, not other peers.
//!
//! One nftables table owned by the daemon, `inet proton_join`, with a set of invitee
//! addresses; it is replaced atomically at start and the set is rewritten (in one `nft`
//! transaction) after every reconcile.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

const TABLE: &str = "proton_join";

fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running nft: {e} (install nftables)"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The table's rules for interface `iface` and the join API on `port`.
pub fn ruleset(iface: &str, port: u16) -> String {
    format!(
        "add table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
  set invitees {{ type ipv4_addr; }}
  chain input {{
    type filter hook input priority -10; policy accept;
    iifname \"{iface}\" ip saddr @invitees tcp dport {port} accept
    iifname \"{iface}\" ip saddr @invitees drop
  }}
  chain forward {{
    type filter hook forward priority -10; policy accept;
    iifname \"{iface}\" ip saddr @invitees drop
    oifname \"{iface}\" ip daddr @invitees drop
  }}
  chain output {{
    type filter hook output priority -10; policy accept;
    oifname \"{iface}\" ip daddr @invitees tcp sport {port} accept
    oifname \"{iface}\" ip daddr @invitees drop
  }}
}}
"
    )
}

/// Installs the table (replacing an old one).
pub fn install(iface: &str, port: u16) -> Result<(), String> {
    nft(&ruleset(iface, port))
}

/// Makes the set hold exactly `invitees`.
pub fn set_invitees(invitees: &[Ipv4Addr]) -> Result<(), String> {
    let mut script = format!("flush set inet {TABLE} invitees\n");
    if !invitees.is_empty() {
        let list: Vec<String> = invitees.iter().map(|a| a.to_string()).collect();
        script.push_str(&format!(
            "add element inet {TABLE} invitees {{ {} }}\n",
            list.join(", ")
        ));
    }
    nft(&script)
}

/// Removes the table (daemon shutdown).
pub fn remove() {
    let _ = nft(&format!("delete table inet {TABLE}\n"));
}
