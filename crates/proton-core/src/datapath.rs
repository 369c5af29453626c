//! The userspace data plane's counters: written by `proton-wg`, carried by the status
//! reply (`proton-proto`), printed by `proton status --json` and the metrics. One type
//! for all of them, so a counter added to the data plane reaches every reader.

use serde::{Deserialize, Serialize};

/// Which offloads are in use on a running userspace interface, and how many packets each
/// syscall moved since it came up. Averages (e.g. `tun_read_packets / tun_reads`) above 1
/// prove an offload works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPathStats {
    /// TUN has IFF_VNET_HDR with TCP segmentation offload (TSO read, GRO write).
    pub tun_tso: bool,
    /// TUN also takes UDP segmentation offload (Linux >= 6.2).
    pub tun_uso: bool,
    /// The UDP socket sends with `UDP_SEGMENT` (GSO).
    pub udp_gso: bool,
    /// The UDP socket receives with `UDP_GRO`.
    pub udp_gro: bool,
    /// TUN reads, and the IP packets they yielded (segments after the TSO split).
    pub tun_reads: u64,
    pub tun_read_packets: u64,
    /// TUN writes, and the IP packets they carried (before GRO coalescing).
    pub tun_writes: u64,
    pub tun_write_packets: u64,
    /// `sendmsg` calls on the UDP socket, and the WireGuard datagrams they sent.
    pub udp_sends: u64,
    pub udp_send_datagrams: u64,
    /// Datagrams the kernel handed over (GRO-coalesced ones count once), and the
    /// WireGuard datagrams in them.
    pub udp_recvs: u64,
    pub udp_recv_datagrams: u64,
}
