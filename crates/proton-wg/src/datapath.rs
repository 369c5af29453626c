//! Proton's own TUN and UDP sides of the userspace data plane, plugged into gotatun
//! through its public traits (`IpSend`/`IpRecv` for the TUN, `UdpTransportFactory` with
//! `UdpSend`/`UdpRecv` for the socket), so gotatun itself (handshakes, crypto, peers,
//! UAPI) is used unchanged.
//!
//! What they add over gotatun's own transports, each probed at run time with a plain
//! fallback when the kernel refuses it (and all of it off with [`Offloads::Plain`]):
//! - TUN with `IFF_VNET_HDR` + `TUNSETOFFLOAD` (CSUM, TSO4/6, USO4/6): one read brings a
//!   64 KiB TCP/UDP super-packet that is split into MTU packets in userspace; written
//!   packets of one flow are coalesced back into one super-packet per write (the port of
//!   wireguard-go's `tun/offload_linux.go` in the `tun-rs` crate). A longer TX queue.
//! - UDP GSO send (one `sendmsg` with `UDP_SEGMENT` for a run of equal-sized datagrams to
//!   one peer) and UDP GRO receive (one datagram per run, split without copying), via
//!   `quinn-udp`; 7 MiB socket buffers (wireguard-go's `socketBufferSize`).
//! - The UDP socket survives gotatun's re-binds (key change, first peer) when address,
//!   port and fwmark are unchanged.
//!
//! [`DataPathStats`] counts syscalls against packets so the offloads can be seen working.

pub(crate) mod tun;
pub(crate) mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Whether the userspace data plane may use kernel offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offloads {
    /// Use every offload the kernel accepts (the default).
    #[default]
    Auto,
    /// One packet per TUN read/write and per UDP datagram: what runs when the kernel
    /// refuses the offloads, forced (environment `PROTON_WG_OFFLOADS=off`).
    Plain,
}

impl Offloads {
    /// The environment variable that forces [`Offloads::Plain`] (`off`, `0`, `plain`).
    pub const ENV: &'static str = "PROTON_WG_OFFLOADS";

    /// `Plain` if `PROTON_WG_OFFLOADS` says `off`/`0`/`plain`/`no`, else `Auto`.
    pub fn from_env() -> Offloads {
        match std::env::var(Self::ENV) {
            Ok(v) if matches!(v.trim(), "off" | "0" | "plain" | "no" | "false") => Offloads::Plain,
            _ => Offloads::Auto,
        }
    }
}

pub use proton_core::datapath::DataPathStats;

/// The live counters, shared by the TUN and UDP sides of one interface.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub tun_tso: AtomicBool,
    pub tun_uso: AtomicBool,
    pub udp_gso: AtomicBool,
    pub udp_gro: AtomicBool,
    pub tun_reads: AtomicU64,
    pub tun_read_packets: AtomicU64,
    pub tun_writes: AtomicU64,
    pub tun_write_packets: AtomicU64,
    pub udp_sends: AtomicU64,
    pub udp_send_datagrams: AtomicU64,
    pub udp_recvs: AtomicU64,
    pub udp_recv_datagrams: AtomicU64,
    /// Datagrams received from the socket that the TUN writer has not seen yet: the
    /// receive batch is the TUN writer's coalescing window (it waits, briefly, for the
    /// rest of a batch that is still being decrypted). Handshakes and keepalives never
    /// reach the TUN; the writer's time limit resets the count.
    pub rx_inflight: AtomicI64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn new() -> Arc<Counters> {
        Arc::new(Counters::default())
    }

    pub(crate) fn snapshot(&self) -> DataPathStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let b = |c: &AtomicBool| c.load(Ordering::Relaxed);
        DataPathStats {
            tun_tso: b(&self.tun_tso),
            tun_uso: b(&self.tun_uso),
            udp_gso: b(&self.udp_gso),
            udp_gro: b(&self.udp_gro),
            tun_reads: g(&self.tun_reads),
            tun_read_packets: g(&self.tun_read_packets),
            tun_writes: g(&self.tun_writes),
            tun_write_packets: g(&self.tun_write_packets),
            udp_sends: g(&self.udp_sends),
            udp_send_datagrams: g(&self.udp_send_datagrams),
            udp_recvs: g(&self.udp_recvs),
            udp_recv_datagrams: g(&self.udp_recv_datagrams),
        }
    }
}
