//! The metrics endpoint: `GET /metrics` in the Prometheus text format, on the gateway's
//! tunnel address only (port 9586), bound to the WireGuard interface like the join API
//! — a scraper inside the VPN reads it; the internet (and the NAT side) cannot.

use axum::Router;
use axum::routing::get;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The metrics port on the tunnel address.
pub const METRICS_PORT: u16 = 9586;

/// Produces the current metrics text.
pub type Render = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// Serves `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render().await,
                )
            }
        }),
    );
    crate::bounded::serve(
        "metrics",
        listener,
        app,
        crate::bounded::Limits::METRICS,
        shutdown,
    )
    .await
}
