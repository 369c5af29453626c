//! The local admin socket, `/run/proton/admin.sock`: how CLI commands on the gateway
//! tell the daemon that the DB changed, and ask it for live device state.
//!
//! One JSON request per line, one JSON response per line. The socket is created `0600`
//! in a `0700` directory, so only root can talk to the daemon; nothing on it is
//! reachable from the network.

use proton_core::host::Root;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Host path of the admin socket.
pub const ADMIN_SOCKET: &str = "/run/proton/admin.sock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum AdminRequest {
    /// The DB changed: bring the device in line now, answer when done.
    Reconcile,
    /// Live state of the interface and its peers.
    Status,
    /// The spec changed: re-read it and apply what needs no new device.
    Reload,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum AdminResponse {
    Reconciled {
        added: usize,
        updated: usize,
        removed: usize,
    },
    Status(serde_json::Value),
    Reloaded(crate::reload::Reloaded),
    Error {
        error: String,
    },
}

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the gateway daemon is not running (no socket at {0})")]
    NotRunning(PathBuf),
    #[error("talking to the gateway daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Connected, but no answer in time: the daemon is stopped (SIGSTOP), stuck or
    /// overloaded.
    #[error(
        "the gateway daemon did not answer within {1} s (it is running but stuck or overloaded): see `journalctl -u proton-gateway`; `systemctl restart proton-gateway` restarts it"
    )]
    NoAnswer(PathBuf, u64),
    /// The daemon closed the connection before answering: it stopped or crashed.
    #[error(
        "the gateway daemon closed the connection without answering (it stopped or crashed): see `journalctl -u proton-gateway`"
    )]
    Closed(PathBuf),
    #[error("the gateway daemon answered something unreadable: {0}")]
    Protocol(String),
}

/// How long the CLI waits for the daemon's answer. A reconcile of 10,000 peers takes a
/// fraction of a second (a few seconds in a debug build); longer means something is
/// wrong, and the user should hear so.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// A status reads every peer off the device: longer, for very big gateways.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends one request to the daemon under `root` and waits for its answer.
pub fn request(root: &Root, req: &AdminRequest) -> Result<AdminResponse, AdminError> {
    let path = root.path(ADMIN_SOCKET);
    let io = |source| AdminError::Io {
        path: path.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(AdminError::NotRunning(path));
        }
        Err(e) => return Err(io(e)),
    };
    let wait = match req {
        AdminRequest::Status => STATUS_TIMEOUT,
        _ => ANSWER_TIMEOUT,
    };
    stream
        .set_read_timeout(Some(wait))
        .and_then(|_| stream.set_write_timeout(Some(wait)))
        .map_err(io)?;
    let mut line = serde_json::to_string(req).expect("requests serialize");
    line.push('\n');
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let closed = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::UnexpectedEof
        )
    };
    let classify = |e: std::io::Error| {
        if timed_out(&e) {
            AdminError::NoAnswer(path.clone(), wait.as_secs())
        } else if closed(&e) {
            AdminError::Closed(path.clone())
        } else {
            io(e)
        }
    };
    stream.write_all(line.as_bytes()).map_err(classify)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(classify)?;
    if !answer.ends_with('\n') {
        // End of stream before a whole line: the daemon went away mid-answer.
        return Err(AdminError::Closed(path));
    }
    serde_json::from_str(&answer).map_err(|e| AdminError::Protocol(e.to_string()))
}

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
                AdminRequest::Status => AdminResponse::Status(serde_json::json!({"peers": []})),
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
