//! Small readers of the running host: commands, `/proc` and `/sys`, name resolution.
//! Kernel state is read at its real path (it belongs to the network namespace the
//! command runs in); configuration files go through `proton_core::host::Root`.

use crate::OpsError;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::process::Command;

/// Runs a command; its stdout when it succeeded.
pub fn run(argv: &[&str]) -> Result<String, OpsError> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| OpsError::Command {
            command: argv.join(" "),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(OpsError::Command {
            command: argv.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `name` is an executable on PATH.
pub fn has_tool(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// A file's trimmed contents, `None` when unreadable.
pub fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// An interface's MTU from sysfs.
pub fn interface_mtu(iface: &str) -> Option<u16> {
    read_trimmed(&format!("/sys/class/net/{iface}/mtu")).and_then(|s| s.parse().ok())
}

/// The interface that carries the IPv4 default route (from `/proc/net/route`).
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 7 && f[1] == "00000000" && f[7] == "00000000").then(|| f[0].to_string())
    })
}

/// Resolves `host:port` (through the system resolver, so `/etc/hosts` counts).
pub fn resolve(host_port: &str) -> Result<Vec<SocketAddr>, std::io::Error> {
    Ok(host_port.to_socket_addrs()?.collect())
}

/// Whether `ip` is an address of this host: binding a socket to it succeeds only then.
pub fn is_local_address(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Whether a UDP socket is bound to `port` (any address), from `/proc/net/udp{,6}` text.
pub fn udp_port_bound(proc_net_udp: &str, port: u16) -> bool {
    let want = format!("{port:04X}");
    proc_net_udp.lines().skip(1).any(|l| {
        l.split_whitespace()
            .nth(1)
            .and_then(|local| local.rsplit(':').next())
            .is_some_and(|p| p.eq_ignore_ascii_case(&want))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_parsers() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  12: 00000000:CA6C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123 2 0 0\n";
        assert!(udp_port_bound(udp, 51820));
        assert!(!udp_port_bound(udp, 51821));
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t0012A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t0112A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route).as_deref(), Some("eth0"));
        assert!(is_local_address("127.0.0.1".parse().unwrap()));
        assert!(!is_local_address("192.0.2.77".parse().unwrap()));
    }
}
