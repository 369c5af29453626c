//! The one layer through which Proton writes to the host's filesystem.
//!
//! A [`Root`] is a prefix (`/` in production, a temp dir in tests) under which every
//! absolute path Proton knows (`/etc/proton/proton.toml`, `/etc/rancher/k3s/config.yaml`…)
//! is resolved. Writes are atomic: the bytes go to a temp file in the same directory,
//! created with its final mode from the first byte, flushed, then renamed over the
//! target, so a reader sees the old file or the new one, never half of either, and a
//! secret is never world-readable, not even for an instant.
//!
//! Commands go through a [`Runner`] beside it. A [`Host`] pairs the two and decides once,
//! from the root, whether the *host-wide* commands (systemctl, `sysctl --system`, the K3s
//! installer, the host's own nftables table) run or are printed: they run only when the
//! root is `/`. *Namespace-local* actions (`nft` inside the caller's network namespace,
//! `/proc/sys` writes there) always run: the lab's daemons live under a temporary root
//! inside their own namespaces and must still set up their own firewall and forwarding.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod command;

pub use command::{Bounded, Invocation, NotRun, Output, RecordingRunner, Runner, SystemRunner};

/// Mode for files holding secrets.
pub const SECRET_MODE: u32 = 0o600;
/// Mode for ordinary configuration files.
pub const PUBLIC_MODE: u32 = 0o644;

/// An I/O failure, with the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct HostError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> HostError + '_ {
    move |source| HostError {
        path: path.to_path_buf(),
        source,
    }
}

/// A root prefix for host paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    prefix: PathBuf,
}

impl Default for Root {
    fn default() -> Self {
        Root::new("/")
    }
}

impl Root {
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        Root {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Whether this root is the real filesystem root.
    pub fn is_system(&self) -> bool {
        self.prefix == Path::new("/")
    }

    /// Resolves an absolute host path (`/etc/proton/proton.toml`) under the prefix.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let p = host_path.as_ref();
        let rel = p.strip_prefix("/").unwrap_or(p);
        self.prefix.join(rel)
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }

    pub fn read_to_string(&self, host_path: impl AsRef<Path>) -> Result<String, HostError> {
        let p = self.path(host_path);
        fs::read_to_string(&p).map_err(at(&p))
    }

    /// Reads a file, `None` when it does not exist.
    pub fn read_optional(&self, host_path: impl AsRef<Path>) -> Result<Option<String>, HostError> {
        let p = self.path(host_path);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&p)(e)),
        }
    }

    /// Creates a directory and its parents; new directories get `mode`.
    pub fn create_dir_all(&self, host_path: impl AsRef<Path>, mode: u32) -> Result<(), HostError> {
        let p = self.path(host_path);
        create_dir_all_mode(&p, mode)
    }

    /// Writes `bytes` atomically with `mode`, creating parent directories (`0755`).
    pub fn write(
        &self,
        host_path: impl AsRef<Path>,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), HostError> {
        write_atomic(&self.path(host_path), bytes, mode)
    }

    /// Writes a secret: `0600`, in a directory that is created `0700` if missing.
    pub fn write_secret(&self, host_path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), HostError> {
        let p = self.path(host_path);
        if let Some(dir) = p.parent() {
            create_dir_all_mode(dir, 0o700)?;
        }
        write_atomic(&p, bytes, SECRET_MODE)
    }

    /// Removes a file; a file that is already gone is not an error.
    pub fn remove(&self, host_path: impl AsRef<Path>) -> Result<(), HostError> {
        let p = self.path(host_path);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(at(&p)(e)),
        }
    }
}

/// The host a process works on: its files (under [`Root`]) and its commands.
pub struct Host {
    root: Root,
    host_wide: Box<dyn Runner + Send + Sync>,
    runs_host_wide: bool,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("root", &self.root)
            .field("runs_host_wide", &self.runs_host_wide)
            .finish()
    }
}

impl Host {
    /// Host-wide commands run when `root` is `/`, and are printed ([`NotRun`]) otherwise.
    pub fn new(root: Root) -> Host {
        if root.is_system() {
            Host::with_runner(root, SystemRunner, true)
        } else {
            Host::with_runner(root, NotRun, false)
        }
    }

    /// A host whose host-wide commands go to `runner` (tests: a [`RecordingRunner`]);
    /// `runs` says whether they take effect on this machine.
    pub fn with_runner(
        root: Root,
        runner: impl Runner + Send + Sync + 'static,
        runs: bool,
    ) -> Host {
        Host {
            root,
            host_wide: Box::new(runner),
            runs_host_wide: runs,
        }
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The runner for commands that act on the whole machine (systemctl, `sysctl
    /// --system`, the installer, the host's nftables table): printed, not run, under a
    /// root other than `/`.
    pub fn host_wide(&self) -> &dyn Runner {
        &*self.host_wide
    }

    /// Whether [`Host::host_wide`] commands take effect (the root is `/`). For what to
    /// report after them, and for checks of live host state that only mean something then.
    pub fn runs_host_wide(&self) -> bool {
        self.runs_host_wide
    }

    /// The runner for commands local to this process's network namespace (`nft` on its
    /// own table, `/proc/sys` there): they run under any root.
    pub fn local(&self) -> &dyn Runner {
        &SystemRunner
    }
}

/// Whether this process runs in a named network namespace (`ip netns add`, which
/// bind-mounts it under `/run/netns`): a lab node, entered with `ip netns exec`. A
/// machine's own namespace is not one. Commands local to the namespace (its nftables
/// tables, its interfaces) can then act for a root other than `/` without touching the
/// machine's own. (Comparing with PID 1's namespace would be simpler, but
/// `/proc/1/ns/net` cannot be read in every container.)
pub fn in_named_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(mine) = fs::metadata("/proc/self/ns/net") else {
        return false;
    };
    let Ok(named) = fs::read_dir("/run/netns") else {
        return false;
    };
    named.flatten().any(|e| {
        fs::metadata(e.path()).is_ok_and(|m| m.dev() == mine.dev() && m.ino() == mine.ino())
    })
}

fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<(), HostError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), mode);
    builder.create(dir).map_err(at(dir))
}

/// Writes `bytes` to `path` atomically (temp file + rename) with `mode` from the start.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HostError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir_all_mode(dir, 0o755)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (tmp, mut file) = loop {
        let mut nonce = [0u8; 6];
        getrandom::fill(&mut nonce).map_err(|e| at(dir)(io::Error::other(e.to_string())))?;
        let suffix: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(at(&tmp)(e)),
        }
    };
    let result = (|| -> io::Result<()> {
        // The umask may have narrowed the mode; set it exactly (it can only widen to `mode`).
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(at(path)(e));
    }
    Ok(())
}

/// The permission bits of a file (for checks and warnings).
pub fn mode_of(path: &Path) -> Result<u32, HostError> {
    fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        root.write_secret("/etc/proton/gateway.key", b"one")
            .unwrap();
        let p = root.path("/etc/proton/gateway.key");
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        assert_eq!(mode_of(p.parent().unwrap()).unwrap(), 0o700);
        root.write_secret("/etc/proton/gateway.key", b"two")
            .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn host_wide_commands_run_only_under_the_system_root() {
        assert!(Host::new(Root::default()).runs_host_wide());
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Root::new(dir.path()));
        assert!(!host.runs_host_wide());
        // Printed, not run: a program that does not exist still "succeeds".
        let out = host
            .host_wide()
            .run("proton-no-such-program", &["x"], &[], None)
            .unwrap();
        assert!(out.success());
        // Namespace-local commands run whatever the root.
        assert!(
            host.local()
                .run("proton-no-such-program", &[], &[], None)
                .is_err()
        );
    }

    #[test]
    fn paths_resolve_under_the_prefix() {
        let root = Root::new("/tmp/x");
        assert_eq!(root.path("/etc/a"), PathBuf::from("/tmp/x/etc/a"));
        assert_eq!(Root::default().path("/etc/a"), PathBuf::from("/etc/a"));
    }

    #[test]
    fn public_files_keep_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        root.write("/etc/sysctl.d/90-proton.conf", b"x\n", PUBLIC_MODE)
            .unwrap();
        assert_eq!(
            mode_of(&root.path("/etc/sysctl.d/90-proton.conf")).unwrap(),
            0o644
        );
    }
}
