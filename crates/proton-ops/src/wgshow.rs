//! Live state of a WireGuard interface through `wg show` (wireguard-tools), which reads
//! the kernel device and userspace UAPI sockets alike. Only the per-field subcommands
//! are used, never `dump`: that one prints the private key.

use crate::OpsError;
use crate::probe::run;

/// One peer of an interface as `wg show` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgPeer {
    pub public_key: String,
    pub endpoint: Option<String>,
    /// Unix time of the latest handshake; `None`: never.
    pub latest_handshake: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `wg show IFACE latest-handshakes|endpoints|transfer` text into peers.
pub fn parse(handshakes: &str, endpoints: &str, transfer: &str) -> Vec<WgPeer> {
    let mut peers: Vec<WgPeer> = Vec::new();
    let mut entry = |key: &str| -> usize {
        match peers.iter().position(|p| p.public_key == key) {
            Some(i) => i,
            None => {
                peers.push(WgPeer {
                    public_key: key.to_string(),
                    ..Default::default()
                });
                peers.len() - 1
            }
        }
    };
    let mut rows = Vec::new();
    for l in handshakes.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [k, t] = f[..] {
            rows.push((entry(k), 0, t.to_string(), String::new()));
        }
    }
    for l in endpoints.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [k, e] = f[..] {
            rows.push((entry(k), 1, e.to_string(), String::new()));
        }
    }
    for l in transfer.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [k, rx, tx] = f[..] {
            rows.push((entry(k), 2, rx.to_string(), tx.to_string()));
        }
    }
    for (i, kind, a, b) in rows {
        let p = &mut peers[i];
        match kind {
            0 => p.latest_handshake = a.parse().ok().filter(|t| *t != 0),
            1 => p.endpoint = Some(a).filter(|e| e != "(none)"),
            _ => {
                p.rx_bytes = a.parse().unwrap_or(0);
                p.tx_bytes = b.parse().unwrap_or(0);
            }
        }
    }
    peers
}

/// Reads an interface's peers with `wg show`.
pub fn peers(iface: &str) -> Result<Vec<WgPeer>, OpsError> {
    let hs = run(&["wg", "show", iface, "latest-handshakes"])?;
    let ep = run(&["wg", "show", iface, "endpoints"])?;
    let tr = run(&["wg", "show", iface, "transfer"])?;
    Ok(parse(&hs, &ep, &tr))
}

/// The interface's fwmark as `wg show IFACE fwmark` prints it (`off` or `0x4000`).
pub fn fwmark(iface: &str) -> Result<Option<u32>, OpsError> {
    let text = run(&["wg", "show", iface, "fwmark"])?;
    let t = text.trim();
    if t == "off" || t.is_empty() {
        return Ok(None);
    }
    proton_core::spec::parse_fwmark(t)
        .map(Some)
        .map_err(|message| OpsError::Command {
            command: format!("wg show {iface} fwmark"),
            message,
        })
}

/// Points `peer` of `iface` at `endpoint` (`wg set`), as a re-resolved name demands.
pub fn set_endpoint(iface: &str, peer: &str, endpoint: &str) -> Result<(), OpsError> {
    run(&["wg", "set", iface, "peer", peer, "endpoint", endpoint]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wg_show_fields() {
        let k1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
        let k2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
        let peers = parse(
            &format!("{k1}\t1700000000\n{k2}\t0\n"),
            &format!("{k1}\t198.18.3.2:40001\n{k2}\t(none)\n"),
            &format!("{k1}\t1000\t2000\n{k2}\t0\t148\n"),
        );
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].latest_handshake, Some(1_700_000_000));
        assert_eq!(peers[0].endpoint.as_deref(), Some("198.18.3.2:40001"));
        assert_eq!((peers[0].rx_bytes, peers[0].tx_bytes), (1000, 2000));
        assert_eq!(peers[1].latest_handshake, None);
        assert_eq!(peers[1].endpoint, None);
        assert_eq!(peers[1].tx_bytes, 148);
    }
}
