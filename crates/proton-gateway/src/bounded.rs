//! Serving HTTP to peers without letting one peer exhaust the daemon.
//!
//! The join API and the metrics endpoint are reachable by every peer. A peer that opens
//! connections and sends nothing must not use up the daemon's file descriptors (which
//! the DB, the device and the admin socket need too), so every connection is bounded:
//!
//! - at most `per_source` connections at once from one source address, and `total`
//!   overall; a connection over either bound is closed at once;
//! - the request head must arrive within `header_read` (hyper's header read timeout,
//!   which also runs while a kept-alive connection waits for its next request);
//! - a connection lives at most `lifetime` (a slow body cannot hold it open);
//! - an accept error (`EMFILE`: out of descriptors) pauses the accept loop with a
//!   growing back-off instead of retrying at once, and is logged rate-limited.

use crate::throttle::Throttle;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// How much one listener may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_source: usize,
    pub header_read: Duration,
    pub lifetime: Duration,
}

impl Limits {
    /// The join API: a handful of calls per joining node.
    pub const JOIN_API: Limits = Limits {
        total: 256,
        per_source: 8,
        header_read: Duration::from_secs(10),
        lifetime: Duration::from_secs(60),
    };
    /// The metrics endpoint: a scraper or two.
    pub const METRICS: Limits = Limits {
        total: 32,
        per_source: 4,
        header_read: Duration::from_secs(10),
        lifetime: Duration::from_secs(60),
    };
}

/// Counts the open connections of each source address.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerSource`], given back on drop.
struct SourceSlot {
    table: Arc<PerSource>,
    ip: IpAddr,
}

impl PerSource {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<SourceSlot> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The pause after the `n`th accept error in a row: 50 ms doubling up to 2 s.
pub fn accept_backoff(n: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << n.min(6))).min(Duration::from_secs(2))
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; the
/// router's handlers see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    what: &'static str,
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let total = Arc::new(Semaphore::new(limits.total));
    let sources = Arc::new(PerSource::default());
    let mut refused_log = Throttle::new(Duration::from_secs(10));
    let mut accept_log = Throttle::new(Duration::from_secs(10));
    let mut errors_in_row = 0u32;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, addr) = match accepted {
            Ok(a) => {
                errors_in_row = 0;
                a
            }
            Err(e) => {
                if let Some(suppressed) = accept_log.hit() {
                    tracing::warn!(suppressed, "{what}: accepting a connection failed: {e}");
                }
                let pause = accept_backoff(errors_in_row);
                errors_in_row = errors_in_row.saturating_add(1);
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(pause) => continue,
                }
            }
        };
        let Some(slot) = sources.take(addr.ip(), limits.per_source) else {
            if let Some(suppressed) = refused_log.hit() {
                tracing::warn!(
                    suppressed,
                    peer = %addr.ip(),
                    "{what}: too many connections from one address; closing new ones"
                );
            }
            continue;
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            if let Some(suppressed) = refused_log.hit() {
                tracing::warn!(
                    suppressed,
                    "{what}: connection limit reached; closing new ones"
                );
            }
            continue;
        };
        let router = router.clone();
        tokio::spawn(async move {
            let _held = (slot, permit);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                let mut router = router.clone();
                async move { tower_service::Service::call(&mut router, req).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), service);
            // Over its lifetime the connection is dropped, which closes it.
            let _ = tokio::time::timeout(limits.lifetime, conn).await;
        });
    }
    // Let answers in flight finish (a redeem's key swap waits on its answer), briefly.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        total.acquire_many(limits.total as u32),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_slots_back_when_connections_close() {
        let table = Arc::new(PerSource::default());
        let ip: IpAddr = "10.7.7.9".parse().unwrap();
        let other: IpAddr = "10.7.7.10".parse().unwrap();
        let a = table.take(ip, 2).unwrap();
        let _b = table.take(ip, 2).unwrap();
        assert!(table.take(ip, 2).is_none(), "a third from one address");
        assert!(
            table.take(other, 2).is_some(),
            "another address is unaffected"
        );
        drop(a);
        assert!(
            table.take(ip, 2).is_some(),
            "a closed connection frees its slot"
        );
    }

    #[test]
    fn accept_backoff_grows_and_is_capped() {
        assert_eq!(accept_backoff(0), Duration::from_millis(50));
        assert!(accept_backoff(3) > accept_backoff(2));
        assert_eq!(accept_backoff(40), Duration::from_secs(2));
    }
}
