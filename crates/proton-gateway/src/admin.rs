//! The daemon's side of the local admin socket, `/run/proton/admin.sock`: how CLI
//! commands on the gateway tell the daemon that the DB changed, and ask it for live
//! device state. The requests, replies and the client are in [`proton_proto::admin`].
//!
//! One JSON request per line, one JSON response per line. The socket is created `0600`
//! in a `0700` directory, so only root can talk to the daemon; nothing on it is
//! reachable from the network.

use proton_core::host::Root;
use proton_proto::admin::{ADMIN_SOCKET, AdminRequest, AdminResponse};
#[cfg(test)]
use proton_proto::admin::{AdminError, request};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Binds the admin socket (replacing a stale one), `0600` in a `0700` directory.
pub fn bind(root: &Root) -> std::io::Result<tokio::net::UnixListener> {
    let path = root.path(ADMIN_SOCKET);
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(dir)
        .and_then(|_| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))?;
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves requests until the listener fails; `handle` answers each request.
pub async fn serve<F, Fut>(listener: tokio::net::UnixListener, handle: F)
where
    F: Fn(AdminRequest) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = AdminResponse> + Send,
{
    // Out of descriptors (`EMFILE`), accept fails at once and keeps failing: pause with
    // a growing back-off and log rate-limited, instead of spinning and flooding the log.
    let mut log = crate::throttle::Throttle::new(Duration::from_secs(10));
    let mut errors_in_row = 0u32;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => {
                errors_in_row = 0;
                s
            }
            Err(e) => {
                if let Some(suppressed) = log.hit() {
                    tracing::warn!(suppressed, "admin socket accept failed: {e}");
                }
                tokio::time::sleep(crate::bounded::accept_backoff(errors_in_row)).await;
                errors_in_row = errors_in_row.saturating_add(1);
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match serde_json::from_str::<AdminRequest>(&line) {
                    Ok(req) => handle(req).await,
                    Err(e) => AdminResponse::Error {
                        error: format!("unknown request: {e}"),
                    },
                };
                let mut out = serde_json::to_string(&answer).expect("responses serialize");
                out.push('\n');
                if write.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_and_answer_over_a_0600_socket() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(matches!(
            request(&root, &AdminRequest::Reconcile),
            Err(AdminError::NotRunning(_))
        ));
        let listener = bind(&root).unwrap();
        let mode = std::fs::metadata(root.path(ADMIN_SOCKET))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        tokio::spawn(serve(listener, |req| async move {
            match req {
                AdminRequest::Reconcile => AdminResponse::Reconciled {
                    added: 1,
                    updated: 0,
                    removed: 2,
                },
                AdminRequest::Status => {
                    AdminResponse::Status(proton_proto::admin::GatewayStatus::sample())
                }
                AdminRequest::Reload => AdminResponse::Reloaded(Default::default()),
            }
        }));
        let r = root.clone();
        let answer = tokio::task::spawn_blocking(move || request(&r, &AdminRequest::Reconcile))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            answer,
            AdminResponse::Reconciled {
                added: 1,
                updated: 0,
                removed: 2
            }
        );
    }
}
