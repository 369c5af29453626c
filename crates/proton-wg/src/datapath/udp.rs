//! The UDP side: a `UdpTransportFactory` whose socket sends runs of datagrams with GSO
//! and receives GRO-coalesced datagrams without copying them apart, via `quinn-udp`.

use super::{Counters, add};
use gotatun::packet::{Packet, PacketBufPool};
use gotatun::udp::{UdpRecv, UdpSend, UdpTransportFactory, UdpTransportFactoryParams};
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::Interest;

/// Socket buffers: wireguard-go's `socketBufferSize` (conn/controlfns_linux.go), set with
/// SO_*BUFFORCE as root so `net.core.[rw]mem_max` does not cap them.
pub(crate) const SOCKET_BUFFER: usize = 7 << 20;
/// Datagrams gotatun may hand to one `send_many_to`.
const MAX_SEND_BATCH: usize = 128;
/// The largest UDP payload of one GSO send.
const MAX_GSO_BYTES: usize = 65_000;
/// Messages per `recvmmsg`, each up to a 64 KiB GRO datagram.
const RECV_BATCH: usize = 32;
const RECV_SLOT: usize = 65_536;
/// Receive slots a receive task keeps for reuse: the RECV_BATCH it reads into and as many
/// again whose segments are still on their way through gotatun.
const SLOT_POOL: usize = 2 * RECV_BATCH;

/// Binds gotatun's socket; keeps it across re-binds with the same address, port, fwmark.
pub(crate) struct Factory {
    plain: bool,
    counters: Arc<Counters>,
    bound: Option<(Option<IpAddr>, Option<u32>, Udp)>,
}

impl Factory {
    pub(crate) fn new(plain: bool, counters: Arc<Counters>) -> Factory {
        Factory {
            plain,
            counters,
            bound: None,
        }
    }
}

impl UdpTransportFactory for Factory {
    type Send = Udp;
    type Recv = Udp;

    async fn bind(&mut self, params: &UdpTransportFactoryParams) -> io::Result<(Udp, Udp)> {
        if let Some((addr, mark, udp)) = &self.bound
            && *addr == params.addr
            && *mark == params.fwmark
            && (params.port == 0 || Some(params.port) == udp.port())
        {
            tracing::debug!(port = params.port, "UDP socket kept across re-bind");
            return Ok((udp.clone(), udp.clone()));
        }
        // Let go of the old socket first: the new one may want its port.
        self.bound = None;
        let udp = Udp::bind(params, self.plain, self.counters.clone())?;
        self.bound = Some((params.addr, params.fwmark, udp.clone()));
        Ok((udp.clone(), udp))
    }
}

struct Inner {
    sock: tokio::net::UdpSocket,
    state: UdpSocketState,
    /// An IPv6 socket that also carries IPv4 (v4-mapped addresses).
    dual_stack: bool,
    plain: bool,
    counters: Arc<Counters>,
}

/// One bound UDP socket (cheap to clone).
#[derive(Clone)]
pub(crate) struct Udp(Arc<Inner>);

fn socket(
    addr: SocketAddr,
    only_v6: Option<bool>,
    mark: Option<u32>,
) -> io::Result<socket2::Socket> {
    let domain = match addr {
        SocketAddr::V4(_) => socket2::Domain::IPV4,
        SocketAddr::V6(_) => socket2::Domain::IPV6,
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    s.set_nonblocking(true)?;
    if let Some(v6) = only_v6 {
        s.set_only_v6(v6)?;
    }
    if let Some(m) = mark {
        s.set_mark(m)?;
    }
    for (force, plain) in [
        (
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::SndBufForce,
                &SOCKET_BUFFER,
            ),
            s.set_send_buffer_size(SOCKET_BUFFER),
        ),
        (
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::RcvBufForce,
                &SOCKET_BUFFER,
            ),
            s.set_recv_buffer_size(SOCKET_BUFFER),
        ),
    ] {
        if force.is_err()
            && let Err(e) = plain
        {
            tracing::debug!("UDP socket buffer size: {e}");
        }
    }
    s.bind(&addr.into())?;
    Ok(s)
}

impl Udp {
    fn bind(
        params: &UdpTransportFactoryParams,
        plain: bool,
        counters: Arc<Counters>,
    ) -> io::Result<Udp> {
        let (s, dual_stack) = match params.addr {
            Some(ip @ IpAddr::V4(_)) => (
                socket((ip, params.port).into(), None, params.fwmark)?,
                false,
            ),
            Some(ip @ IpAddr::V6(_)) => (
                socket((ip, params.port).into(), Some(true), params.fwmark)?,
                false,
            ),
            None => match socket(
                (Ipv6Addr::UNSPECIFIED, params.port).into(),
                Some(false),
                params.fwmark,
            ) {
                Ok(s) => (s, true),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                    ) =>
                {
                    tracing::warn!("IPv6 UDP sockets are unavailable; continuing with IPv4-only");
                    (
                        socket(
                            (Ipv4Addr::UNSPECIFIED, params.port).into(),
                            None,
                            params.fwmark,
                        )?,
                        false,
                    )
                }
                Err(e) => return Err(e),
            },
        };
        let state = UdpSocketState::new(UdpSockRef::from(&s))?;
        if plain {
            // quinn-udp turns UDP_GRO on; the plain data plane reads one datagram each.
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::UdpGroSegment, &false)
                .map_err(io::Error::from)?;
        }
        let sock = tokio::net::UdpSocket::from_std(s.into())?;
        let udp = Udp(Arc::new(Inner {
            sock,
            state,
            dual_stack,
            plain,
            counters,
        }));
        let c = &udp.0.counters;
        c.udp_gso.store(udp.gso_segments() > 1, Ordering::Relaxed);
        c.udp_gro
            .store(!plain && udp.0.state.gro_segments() > 1, Ordering::Relaxed);
        tracing::debug!(
            port = udp.port(),
            gso = udp.gso_segments(),
            gro = !plain && udp.0.state.gro_segments() > 1,
            "UDP socket bound"
        );
        Ok(udp)
    }

    fn port(&self) -> Option<u16> {
        self.0.sock.local_addr().ok().map(|a| a.port())
    }

    /// Datagrams per GSO send; 1 without GSO (refused, forced plain, or switched off
    /// by quinn-udp after the kernel failed a GSO send with EIO/EINVAL).
    fn gso_segments(&self) -> usize {
        if self.0.plain {
            1
        } else {
            self.0.state.max_gso_segments()
        }
    }

    fn dst(&self, mut d: SocketAddr) -> SocketAddr {
        if self.0.dual_stack
            && let IpAddr::V4(v4) = d.ip()
        {
            d.set_ip(IpAddr::V6(v4.to_ipv6_mapped()));
        }
        d
    }

    fn src(&self, mut s: SocketAddr) -> SocketAddr {
        if let IpAddr::V6(v6) = s.ip()
            && let Some(v4) = v6.to_ipv4_mapped()
        {
            s.set_ip(IpAddr::V4(v4));
        }
        s
    }

    async fn transmit(
        &self,
        contents: &[u8],
        dst: SocketAddr,
        segment: Option<usize>,
        count: usize,
    ) -> io::Result<()> {
        let t = Transmit {
            destination: self.dst(dst),
            ecn: None,
            contents,
            segment_size: segment,
            src_ip: None,
        };
        let inner = &self.0;
        inner
            .sock
            .async_io(Interest::WRITABLE, || {
                inner.state.try_send(UdpSockRef::from(&inner.sock), &t)
            })
            .await?;
        add(&inner.counters.udp_sends, 1);
        add(&inner.counters.udp_send_datagrams, count as u64);
        Ok(())
    }
}

impl UdpSend for Udp {
    /// The contiguous buffer one GSO run is copied into.
    type SendManyBuf = Vec<u8>;

    async fn send_to(&self, packet: Packet, destination: SocketAddr) -> io::Result<()> {
        self.transmit(&packet, destination, None, 1).await
    }

    fn max_number_of_packets_to_send(&self) -> usize {
        MAX_SEND_BATCH
    }

    /// Sends runs of datagrams to the same peer with one `sendmsg` each: all of a run's
    /// datagrams have the first one's size except the last, which may be shorter
    /// (what `UDP_SEGMENT` requires), at most the kernel's segment count and 65,000 bytes.
    async fn send_many_to(
        &self,
        buf: &mut Vec<u8>,
        packets: &mut Vec<(Packet, SocketAddr)>,
    ) -> io::Result<()> {
        let max_segs = self.gso_segments();
        let mut result = Ok(());
        let mut i = 0;
        while i < packets.len() {
            let (first, dst) = (&packets[i].0, packets[i].1);
            let size = first.len();
            let mut j = i + 1;
            let mut total = size;
            while max_segs > 1 && j < packets.len() && j - i < max_segs {
                let (p, d) = (&packets[j].0, packets[j].1);
                if d != dst || p.len() > size || p.is_empty() || total + p.len() > MAX_GSO_BYTES {
                    break;
                }
                total += p.len();
                j += 1;
                if p.len() < size {
                    break;
                }
            }
            let sent = if j - i == 1 {
                self.transmit(&packets[i].0, dst, None, 1).await
            } else {
                buf.clear();
                for (p, _) in &packets[i..j] {
                    buf.extend_from_slice(p);
                }
                self.transmit(buf, dst, Some(size), j - i).await
            };
            if let Err(e) = sent {
                // Like gotatun's sendmmsg path: the datagrams are lost, the rest still go.
                tracing::trace!("UDP send: {e}");
                result = Err(e);
            }
            i = j;
        }
        packets.clear();
        result
    }

    fn local_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.0.sock.local_addr().map(Some)
    }

    fn set_fwmark(&self, mark: u32) -> io::Result<()> {
        socket2::SockRef::from(&self.0.sock).set_mark(mark)
    }
}

/// The receive buffers of one gotatun receive task: RECV_BATCH 64 KiB slots, taken from
/// a pool of their own. A GRO datagram's segments are handed to gotatun as views into its
/// slot, the last segment keeping the slot's pool handle, so the slot returns to the pool
/// once all of them are dropped and is read into again without being zeroed or
/// reallocated (gotatun's `PacketBufPool::get` reclaims a buffer only when no view of it
/// is left, and allocates a new one otherwise).
pub(crate) struct RecvBufs {
    slots: Vec<Packet>,
    metas: Vec<RecvMeta>,
    pool: PacketBufPool<RECV_SLOT>,
}

impl Default for RecvBufs {
    fn default() -> Self {
        let pool = PacketBufPool::<RECV_SLOT>::new(SLOT_POOL);
        RecvBufs {
            slots: (0..RECV_BATCH).map(|_| pool.get()).collect(),
            metas: vec![RecvMeta::default(); RECV_BATCH],
            pool,
        }
    }
}

impl UdpRecv for Udp {
    type RecvManyBuf = RecvBufs;

    async fn recv_from(&mut self, pool: &mut PacketBufPool) -> io::Result<(Packet, SocketAddr)> {
        let mut buf = pool.get();
        let (n, src) = self.0.sock.recv_from(&mut buf).await?;
        buf.truncate(n);
        add(&self.0.counters.udp_recvs, 1);
        add(&self.0.counters.udp_recv_datagrams, 1);
        Ok((buf, self.src(src)))
    }

    /// One `recvmmsg`; a GRO datagram of N segments becomes N packets that share its
    /// buffer (no copy); a single datagram is copied into a pool buffer so its 64 KiB
    /// slot can be reused.
    async fn recv_many_from(
        &mut self,
        bufs: &mut RecvBufs,
        pool: &mut PacketBufPool,
        packets: &mut Vec<(Packet, SocketAddr)>,
    ) -> io::Result<()> {
        let inner = &self.0;
        let n = inner
            .sock
            .async_io(Interest::READABLE, || {
                let mut iovs: Vec<IoSliceMut<'_>> = bufs
                    .slots
                    .iter_mut()
                    .map(|s| IoSliceMut::new(&mut s[..]))
                    .collect();
                inner
                    .state
                    .recv(UdpSockRef::from(&inner.sock), &mut iovs, &mut bufs.metas)
            })
            .await?;
        let mut segments = 0u64;
        for i in 0..n {
            let meta = bufs.metas[i];
            let src = self.src(meta.addr);
            let len = meta.len.min(RECV_SLOT);
            if len == 0 {
                continue;
            }
            let stride = if meta.stride == 0 { len } else { meta.stride };
            if stride >= len {
                let mut p = pool.get();
                p.buf_mut().clear();
                p.buf_mut().extend_from_slice(&bufs.slots[i][..len]);
                packets.push((p, src));
                segments += 1;
                continue;
            }
            let fresh = bufs.pool.get();
            let slot = std::mem::replace(&mut bufs.slots[i], fresh);
            segments += split_gro(slot, len, stride, src, packets);
        }
        inner
            .counters
            .rx_inflight
            .fetch_add(segments as i64, Ordering::Relaxed);
        add(&inner.counters.udp_recvs, n as u64);
        add(&inner.counters.udp_recv_datagrams, segments);
        Ok(())
    }
}

/// Cuts the first `len` bytes of a receive slot into `stride`-sized segments (the last may
/// be shorter) without copying; the last segment keeps the slot's pool handle. Returns how
/// many segments it pushed.
fn split_gro(
    mut slot: Packet,
    len: usize,
    stride: usize,
    src: SocketAddr,
    packets: &mut Vec<(Packet, SocketAddr)>,
) -> u64 {
    slot.truncate(len);
    let mut n = 1;
    while slot.len() > stride {
        let seg = slot.buf_mut().split_to(stride);
        packets.push((Packet::from_bytes(seg), src));
        n += 1;
    }
    // The last segment carries the slot's way back to the pool.
    packets.push((slot, src));
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 51820);

    fn slot(pool: &PacketBufPool<RECV_SLOT>, fill: impl Fn(usize) -> u8) -> Packet {
        let mut p = pool.get();
        for (i, b) in p.iter_mut().enumerate() {
            *b = fill(i);
        }
        p
    }

    #[test]
    fn a_gro_datagram_becomes_its_segments_in_order() {
        let pool = PacketBufPool::<RECV_SLOT>::new(1);
        let fill = |i: usize| (i % 251) as u8;
        let mut out = Vec::new();
        // 3 whole segments of 1452 bytes and a short fourth one.
        let len = 3 * 1452 + 100;
        assert_eq!(split_gro(slot(&pool, fill), len, 1452, SRC, &mut out), 4);
        let lens: Vec<usize> = out.iter().map(|(p, _)| p.len()).collect();
        assert_eq!(lens, [1452, 1452, 1452, 100]);
        let joined: Vec<u8> = out.iter().flat_map(|(p, _)| p.iter().copied()).collect();
        assert_eq!(joined, (0..len).map(fill).collect::<Vec<_>>());
        assert!(out.iter().all(|(_, s)| *s == SRC));
    }

    #[test]
    fn a_slot_is_reused_once_all_its_segments_are_dropped_and_not_before() {
        let pool = PacketBufPool::<RECV_SLOT>::new(2);
        let mut out = Vec::new();
        let first = slot(&pool, |_| 7);
        let addr = first.as_ptr();
        split_gro(first, 4 * 1000, 1000, SRC, &mut out);
        // The last segment (the slot's handle) is gone but three views still hold it:
        // the pool must not hand out memory gotatun is still reading.
        drop(out.pop());
        let other = pool.get();
        assert_ne!(other.as_ptr(), addr);
        drop(other);
        // Once every segment is dropped, the same 64 KiB is handed out again, whole.
        out.clear();
        let again = slot(&pool, |_| 0);
        split_gro(again, 2 * 1000, 1000, SRC, &mut out);
        out.clear();
        let reused = (0..4).map(|_| pool.get()).find(|p| p.as_ptr() == addr);
        let reused = reused.expect("the slot came back to the pool");
        assert_eq!(reused.len(), RECV_SLOT);
    }
}
