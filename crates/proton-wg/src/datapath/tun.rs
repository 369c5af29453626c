//! The TUN side: `IpRecv` (one read, TSO split) and `IpSend` (GRO coalesce, one write
//! per flow run) over a `tun-rs` device.

use super::{Counters, add};
use bytes::BytesMut;
use gotatun::packet::{Ip, Packet, PacketBufPool};
use gotatun::tun::{IpRecv, IpSend, MtuWatcher};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tun_rs::{AsyncDevice, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN, VirtioNetHdr};

/// The TUN's TX queue (packets the kernel holds for us to read). The TUN driver's default
/// is 500, which drops bursts (Firezone PR #10231); 1000 is Ethernet's default.
pub(crate) const TX_QUEUE_LEN: u32 = 1000;
/// One TUN read: a virtio-net header and up to a 64 KiB super-packet.
const READ_BUF: usize = VIRTIO_NET_HDR_LEN + 65535;
/// A TUN writer buffer: room for a coalesced 64 KiB packet behind its header.
const WRITE_BUF: usize = 2 * VIRTIO_NET_HDR_LEN + 65535;
/// Packets queued for the TUN writer (its batch is whatever is queued, up to 128).
const WRITE_QUEUE: usize = 1024;
/// The longest the TUN writer waits for the rest of a receive batch.
const GATHER: Duration = Duration::from_micros(50);

/// Creates the TUN `name` with `mtu`; with `offload`, asks for IFF_VNET_HDR with
/// TSO (required) and USO (optional), and falls back to a plain TUN if the kernel
/// refuses. Returns the writer and reader halves for gotatun.
pub(crate) fn create(
    name: &str,
    mtu: u16,
    offload: bool,
    counters: &Arc<Counters>,
) -> io::Result<(TunTx, TunRx)> {
    let build = |off: bool| {
        tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .offload(off)
            .enable(false)
            .build_async()
    };
    let dev = match offload {
        true => match build(true) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(iface = name, "TUN offloads refused ({e}); plain TUN");
                build(false)?
            }
        },
        false => build(false)?,
    };
    if let Err(e) = dev.set_tx_queue_len(TX_QUEUE_LEN) {
        tracing::warn!(iface = name, "TUN txqueuelen {TX_QUEUE_LEN}: {e}");
    }
    let vnet = dev.tcp_gso();
    let uso = dev.udp_gso();
    counters.tun_tso.store(vnet, Ordering::Relaxed);
    counters.tun_uso.store(uso, Ordering::Relaxed);
    tracing::debug!(iface = name, tso = vnet, uso, "TUN created");
    let dev = Arc::new(dev);
    let mtu = MtuWatcher::from(mtu_watch(&dev, mtu));

    let writer = if vnet {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(gro_writer(dev.clone(), rx, counters.clone()));
        Writer::Coalescing(tx)
    } else {
        Writer::Plain(dev.clone())
    };
    let tx = TunTx {
        writer,
        counters: counters.clone(),
    };
    let batch = if vnet { IDEAL_BATCH_SIZE } else { 1 };
    let rx = TunRx {
        dev,
        read_buf: if vnet { vec![0; READ_BUF] } else { Vec::new() },
        bufs: Vec::with_capacity(batch),
        sizes: vec![0; batch],
        batch,
        out: Vec::with_capacity(batch),
        mtu,
        counters: counters.clone(),
    };
    Ok((tx, rx))
}

/// Follows the TUN's MTU (gotatun's TunDevice polls every 3 s too); ends with the device.
fn mtu_watch(dev: &Arc<AsyncDevice>, mtu: u16) -> watch::Receiver<u16> {
    let (tx, rx) = watch::channel(mtu);
    let weak: Weak<AsyncDevice> = Arc::downgrade(dev);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let Some(dev) = weak.upgrade() else { return };
            if let Ok(m) = dev.mtu() {
                tx.send_if_modified(|cur| std::mem::replace(cur, m) != m);
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    rx
}

/// A pool packet as a `[u8]` buffer for `tun-rs` to split into.
struct Seg(Packet<[u8]>);

impl AsRef<[u8]> for Seg {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for Seg {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// The reading half: gotatun's "buffered IP recv" task calls `recv` in a loop.
pub(crate) struct TunRx {
    dev: Arc<AsyncDevice>,
    read_buf: Vec<u8>,
    bufs: Vec<Seg>,
    sizes: Vec<usize>,
    batch: usize,
    out: Vec<Packet<Ip>>,
    mtu: MtuWatcher,
    counters: Arc<Counters>,
}

impl IpRecv for TunRx {
    async fn recv<'a>(
        &'a mut self,
        pool: &mut PacketBufPool,
    ) -> io::Result<impl Iterator<Item = Packet<Ip>> + Send + 'a> {
        self.out.clear();
        while self.bufs.len() < self.batch {
            self.bufs.push(Seg(pool.get()));
        }
        let n = loop {
            match self
                .dev
                .recv_multiple(&mut self.read_buf, &mut self.bufs, &mut self.sizes, 0)
                .await
            {
                Ok(n) => break n,
                // A frame the splitter cannot handle (malformed GSO metadata): drop it,
                // as the kernel would; only errors of the device itself end the reader.
                Err(e) if e.raw_os_error().is_none() => {
                    tracing::debug!("TUN frame dropped: {e}");
                }
                Err(e) => return Err(e),
            }
        };
        add(&self.counters.tun_reads, 1);
        add(&self.counters.tun_read_packets, n as u64);
        for i in 0..n {
            let mut p = std::mem::replace(&mut self.bufs[i].0, pool.get());
            p.truncate(self.sizes[i]);
            if let Ok(ip) = p.try_into_ip() {
                self.out.push(ip);
            }
        }
        Ok(self.out.drain(..))
    }

    fn mtu(&self) -> MtuWatcher {
        self.mtu.clone()
    }
}

enum Writer {
    /// One write per packet, straight from gotatun's buffer.
    Plain(Arc<AsyncDevice>),
    /// Queue for [`gro_writer`].
    Coalescing(mpsc::Sender<Packet<Ip>>),
}

/// The writing half: gotatun's "buffered IP send" task calls `send` per packet.
pub(crate) struct TunTx {
    writer: Writer,
    counters: Arc<Counters>,
}

impl IpSend for TunTx {
    async fn send(&mut self, packet: Packet<Ip>) -> io::Result<()> {
        match &self.writer {
            Writer::Plain(dev) => {
                dev.send(&packet.into_bytes()).await?;
                add(&self.counters.tun_writes, 1);
                add(&self.counters.tun_write_packets, 1);
                Ok(())
            }
            Writer::Coalescing(tx) => tx
                .send(packet)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "TUN writer stopped")),
        }
    }
}

/// Takes the decrypted packets that are queued, and while packets of the same UDP receive
/// batch are still on their way through gotatun's decryption (see
/// `Counters::rx_inflight`) waits for them too, at most [`GATHER`]; coalesces each TCP/UDP flow's consecutive segments into one super-packet with
/// a virtio-net header, and writes one frame per coalesced packet.
async fn gro_writer(
    dev: Arc<AsyncDevice>,
    mut rx: mpsc::Receiver<Packet<Ip>>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(IDEAL_BATCH_SIZE);
    let mut bufs: Vec<BytesMut> = Vec::with_capacity(IDEAL_BATCH_SIZE);
    let mut gro = GROTable::new();
    let inflight = &counters.rx_inflight;
    while rx.recv_many(&mut batch, IDEAL_BATCH_SIZE).await > 0 {
        let mut seen = batch.len();
        let left = inflight.fetch_sub(seen as i64, Ordering::Relaxed) - seen as i64;
        if left > 0 {
            let start = std::time::Instant::now();
            while batch.len() < IDEAL_BATCH_SIZE && inflight.load(Ordering::Relaxed) > 0 {
                if start.elapsed() > GATHER {
                    // The rest were not data (handshakes, keepalives) or were dropped.
                    inflight.store(0, Ordering::Relaxed);
                    break;
                }
                tokio::task::yield_now().await;
                while batch.len() < IDEAL_BATCH_SIZE {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                inflight.fetch_sub((batch.len() - seen) as i64, Ordering::Relaxed);
                seen = batch.len();
            }
        }
        let n = batch.len();
        for (i, p) in batch.drain(..).enumerate() {
            if bufs.len() <= i {
                // tun-rs coalesces into the first packet's buffer only if it can
                // hold a whole super-packet (it never reallocates).
                bufs.push(BytesMut::with_capacity(WRITE_BUF));
            }
            let b = &mut bufs[i];
            b.clear();
            b.resize(VIRTIO_NET_HDR_LEN, 0);
            b.extend_from_slice(&p.into_bytes());
        }
        let frames = &mut bufs[..n];
        match dev
            .send_multiple(&mut gro, frames, VIRTIO_NET_HDR_LEN)
            .await
        {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADFD | libc::EBADF | libc::ENODEV)
                ) =>
            {
                tracing::debug!("TUN writer: device gone ({e})");
                return;
            }
            Err(e) => tracing::debug!("TUN write: {e}"),
        }
        add(&counters.tun_write_packets, n as u64);
        add(&counters.tun_writes, frames_written(frames));
    }
}

/// How many frames `send_multiple` wrote for these buffers: every packet is one frame,
/// except that a coalesced head (GSO type set in its virtio-net header) carries
/// ceil(payload / gso_size) segments, all but one of which were merged from others.
fn frames_written(bufs: &[BytesMut]) -> u64 {
    let mut frames = bufs.len() as u64;
    for b in bufs {
        let Ok(h) = VirtioNetHdr::decode(b) else {
            continue;
        };
        if h.gso_type != 0 && h.gso_size > 0 {
            let payload = b
                .len()
                .saturating_sub(VIRTIO_NET_HDR_LEN + h.hdr_len as usize);
            let segs = payload.div_ceil(h.gso_size as usize) as u64;
            frames = frames.saturating_sub(segs.saturating_sub(1));
        }
    }
    frames
}
