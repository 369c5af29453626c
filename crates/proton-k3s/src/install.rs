//! Running the official K3s install script with a pinned version, idempotently.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use proton_core::host::Root;
use zeroize::Zeroizing;

use crate::Error;

/// Where the script is saved before it runs (under the root).
pub const SCRIPT_PATH: &str = "/var/lib/proton/k3s-install.sh";
/// Where the install script puts the binary.
pub const DEFAULT_K3S_BIN: &str = "/usr/local/bin/k3s";
/// How many of the script's last output lines a failure quotes.
pub const TAIL_LINES: usize = 20;

/// Where the install script comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// Downloaded (http or https), e.g. `https://get.k3s.io`.
    Url(String),
    /// A file already on the host (air-gapped hosts). A host path, resolved under the root.
    Path(PathBuf),
}

impl ScriptSource {
    /// The spec's `k3s.install_script`: an absolute path is a file on the host, anything
    /// else a URL.
    pub fn from_spec(text: &str) -> ScriptSource {
        if text.starts_with('/') {
            ScriptSource::Path(text.into())
        } else {
            ScriptSource::Url(text.to_string())
        }
    }
}

/// Server or agent; an agent carries the server URL and its bootstrap token.
#[derive(Clone)]
pub enum Role {
    Server,
    Agent {
        server_url: String,
        token: Zeroizing<String>,
    },
}

impl std::fmt::Debug for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Server => f.write_str("Server"),
            Role::Agent { server_url, .. } => f
                .debug_struct("Agent")
                .field("server_url", server_url)
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// One install run.
#[derive(Debug, Clone)]
pub struct Installer {
    pub root: Root,
    pub source: ScriptSource,
    /// e.g. `v1.33.4+k3s1`; passed as `INSTALL_K3S_VERSION`.
    pub version: String,
    pub role: Role,
    /// `INSTALL_K3S_SKIP_DOWNLOAD=true`: the binary (and images) are already in place.
    pub skip_download: bool,
    /// `INSTALL_K3S_SKIP_START=true`: install the unit but do not start it.
    pub skip_start: bool,
    /// Host path of the k3s binary, for the "already installed" check.
    pub k3s_bin: String,
}

/// What [`Installer::install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// `k3s --version` already reported the pinned version; nothing ran.
    AlreadyInstalled,
    /// The script ran and succeeded.
    Installed,
}

impl Installer {
    pub fn new(root: Root, source: ScriptSource, version: impl Into<String>, role: Role) -> Self {
        Installer {
            root,
            source,
            version: version.into(),
            role,
            skip_download: false,
            skip_start: false,
            k3s_bin: DEFAULT_K3S_BIN.into(),
        }
    }

    /// The version `k3s --version` reports, `None` when the binary is missing or says
    /// nothing we can parse.
    pub fn installed_version(&self) -> Option<String> {
        installed_version(&self.root, &self.k3s_bin)
    }

    /// The environment the script gets (values may be secret: never log them).
    /// Values are zeroized when dropped. The token travels only here: never in argv,
    /// where any local user could read it in `/proc/<pid>/cmdline`.
    pub fn env(&self) -> Vec<(&'static str, Zeroizing<String>)> {
        let z = |s: &str| Zeroizing::new(s.to_string());
        let mut env = vec![
            ("INSTALL_K3S_VERSION", z(&self.version)),
            (
                "INSTALL_K3S_EXEC",
                z(match self.role {
                    Role::Server => "server",
                    Role::Agent { .. } => "agent",
                }),
            ),
        ];
        if self.skip_download {
            env.push(("INSTALL_K3S_SKIP_DOWNLOAD", z("true")));
        }
        if self.skip_start {
            env.push(("INSTALL_K3S_SKIP_START", z("true")));
        }
        if let Role::Agent { server_url, token } = &self.role {
            env.push(("K3S_URL", z(server_url)));
            env.push(("K3S_TOKEN", token.clone()));
        }
        env
    }

    /// Installs unless the pinned version is already there. `progress` gets each line
    /// the script prints.
    pub fn install(&self, progress: &mut dyn FnMut(&str)) -> Result<InstallOutcome, Error> {
        if let Some(found) = self.installed_version()
            && found == self.version
        {
            tracing::info!(version = %found, "k3s already installed, skipping the installer");
            return Ok(InstallOutcome::AlreadyInstalled);
        }
        let script = match &self.source {
            ScriptSource::Path(p) => self.root.path(p),
            ScriptSource::Url(url) => {
                let body = download(url)?;
                self.root.write(SCRIPT_PATH, body.as_bytes(), 0o700)?;
                self.root.path(SCRIPT_PATH)
            }
        };
        if !script.is_file() {
            return Err(Error::ScriptMissing(script));
        }
        self.run_script(&script, progress)?;
        Ok(InstallOutcome::Installed)
    }

    fn run_script(
        &self,
        script: &std::path::Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), Error> {
        let (reader, writer) = std::io::pipe().map_err(Error::Spawn)?;
        let mut cmd = Command::new("sh");
        cmd.arg(script)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(Error::Spawn)?)
            .stderr(writer);
        for (k, v) in self.env() {
            cmd.env(k, v.as_str());
        }
        let mut child = cmd.spawn().map_err(Error::Spawn)?;
        // Drop our copies of the write end (held by `cmd`) so reading ends at exit.
        drop(cmd);
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        for line in BufReader::new(reader).lines() {
            let line = line.map_err(Error::Spawn)?;
            progress(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let status = child.wait().map_err(Error::Spawn)?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::InstallFailed {
                status: status
                    .code()
                    .map_or("killed by a signal".into(), |c| format!("exit {c}")),
                tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
            })
        }
    }
}

/// The version the K3s binary at host path `k3s_bin` (under `root`) reports, `None` when
/// it is missing or says nothing parseable: "is K3s installed here, and which one".
pub fn installed_version(root: &Root, k3s_bin: &str) -> Option<String> {
    let out = Command::new(root.path(k3s_bin))
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// `k3s version v1.33.4+k3s1 (abcdef12)` → `v1.33.4+k3s1`.
pub fn parse_version(output: &str) -> Option<String> {
    let line = output.lines().next()?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "version" {
            return words.next().map(str::to_string);
        }
    }
    None
}

fn download(url: &str) -> Result<String, Error> {
    tracing::info!(%url, "downloading the K3s install script");
    let err = |reason: String| Error::Download {
        url: url.to_string(),
        reason,
    };
    // A stuck mirror must not hang `proton apply` forever; the script is ~40 KB.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| err(e.to_string()))?;
    resp.body_mut()
        .read_to_string()
        .map_err(|e| err(e.to_string()))
}

/// A host tool K3s needs that is missing, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTool {
    pub tool: &'static str,
    pub fix: &'static str,
}

/// Tools K3s (kube-proxy) needs on the host and does not ship. Looked up in the usual
/// `sbin`/`bin` directories under the root.
pub fn missing_host_tools(root: &Root) -> Vec<MissingTool> {
    const NEEDED: &[(&str, &str)] = &[(
        "conntrack",
        "apt-get install -y conntrack (dnf install conntrack-tools on Fedora/RHEL)",
    )];
    const DIRS: &[&str] = &[
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ];
    NEEDED
        .iter()
        .filter(|(tool, _)| !DIRS.iter().any(|d| root.path(d).join(tool).is_file()))
        .map(|&(tool, fix)| MissingTool { tool, fix })
        .collect()
}
