//! The UAPI socket (`<dir>/<iface>.sock`), speaking WireGuard's cross-platform
//! configuration protocol so `wg show` and `wg set` work against the embedded device.
//! Created `0600` in a directory created `0700`: only root may configure the device.

use crate::WgError;
use gotatun::device::uapi::UapiClient;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) struct UapiSocket {
    pub path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl UapiSocket {
    pub fn bind(dir: &Path, name: &str, client: UapiClient) -> Result<UapiSocket, WgError> {
        let path = dir.join(format!("{name}.sock"));
        let err = |source| WgError::Uapi {
            path: path.clone(),
            source,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = tokio::net::UnixListener::bind(&path).map_err(err)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                // The protocol runs on a thread of its own over a blocking stream.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                if stream.set_nonblocking(false).is_ok() {
                    client.clone().wrap_read_write(stream);
                }
            }
        });
        Ok(UapiSocket { path, task })
    }
}

impl Drop for UapiSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}
