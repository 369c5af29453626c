//! Per-node bootstrap tokens and node removal, through `k3s` on the server.

use zeroize::Zeroizing;

use crate::Error;
use crate::runner::Runner;

/// A bootstrap token: zeroized on drop, never in `Debug`.
pub struct BootstrapToken(Zeroizing<String>);

impl BootstrapToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The token ID (`<id>.<secret>`), the handle `k3s token delete` takes; not secret.
    pub fn id(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id())
    }
}

fn check(
    program: &str,
    what: String,
    out: std::io::Result<crate::Output>,
) -> Result<crate::Output, Error> {
    let out = out.map_err(|source| Error::Command {
        command: what.clone(),
        reason: format!("could not start {program}: {source}"),
    })?;
    if out.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: what,
            reason: out
                .stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("failed")
                .to_string(),
        })
    }
}

/// `k3s token create --ttl <ttl> --description proton:<node>`: a bootstrap token that
/// joins agents only (K3s ≥ 1.26.2), never the server token. `ttl` is a Go duration
/// such as `15m`.
pub fn create_token(
    runner: &dyn Runner,
    k3s: &str,
    node: &str,
    ttl: &str,
) -> Result<BootstrapToken, Error> {
    let desc = format!("proton:{node}");
    let args = ["token", "create", "--ttl", ttl, "--description", &desc];
    let out = check(
        k3s,
        format!("{k3s} {}", args.join(" ")),
        runner.run(k3s, &args, &[], None),
    )?;
    let token = out.stdout.trim();
    // `<6 chars>.<16 chars>` per the kubeadm bootstrap-token format.
    let valid = token.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
    });
    if !valid {
        return Err(Error::Command {
            command: format!("{k3s} token create"),
            reason: "printed no token of the form <id>.<secret>".into(),
        });
    }
    Ok(BootstrapToken(Zeroizing::new(token.to_string())))
}

/// `k3s token delete <id>`.
pub fn delete_token(runner: &dyn Runner, k3s: &str, token_id: &str) -> Result<(), Error> {
    let args = ["token", "delete", token_id];
    check(
        k3s,
        format!("{k3s} {}", args.join(" ")),
        runner.run(k3s, &args, &[], None),
    )
    .map(|_| ())
}

/// How long one `kubectl` call of the node cleanup may wait for the API server.
const REQUEST_TIMEOUT: &str = "--request-timeout=20s";

/// Deletes a worker's Node and its `kube-system/<name>.node-password.k3s` secret, so a
/// rebuilt machine can rejoin under the same name (k3s#7797). Already-gone objects are
/// fine (`--ignore-not-found`). Each call gives up after 20 s (`--request-timeout`): an API
/// server that hangs must not hold `peer remove` forever (the cleanup is retried later).
pub fn remove_node(runner: &dyn Runner, k3s: &str, node: &str) -> Result<(), Error> {
    let secret = format!("{node}.node-password.k3s");
    let steps: [Vec<&str>; 2] = [
        vec![
            "kubectl",
            "delete",
            "node",
            node,
            "--ignore-not-found",
            REQUEST_TIMEOUT,
        ],
        vec![
            "kubectl",
            "-n",
            "kube-system",
            "delete",
            "secret",
            &secret,
            "--ignore-not-found",
            REQUEST_TIMEOUT,
        ],
    ];
    for args in steps {
        check(
            k3s,
            format!("{k3s} {}", args.join(" ")),
            runner.run(k3s, &args, &[], None),
        )?;
    }
    Ok(())
}

/// `systemctl restart k3s` (or `k3s-agent`).
pub fn restart(runner: &dyn Runner, unit: &str) -> Result<(), Error> {
    let args = ["restart", unit];
    check(
        "systemctl",
        format!("systemctl restart {unit}"),
        runner.run("systemctl", &args, &[], None),
    )
    .map(|_| ())
}

/// Where the gateway remembers which bootstrap token it made for which node (the token
/// *ID* only, the public half, so `peer remove` can delete it; the secret is never kept).
pub const TOKEN_ID_DIR: &str = "/var/lib/proton/k3s-tokens";

fn token_id_path(node: &str) -> String {
    format!("{TOKEN_ID_DIR}/{node}")
}

/// Records the ID of the token made for `node` (mode 0600 all the same).
pub fn record_token_id(
    root: &proton_core::host::Root,
    node: &str,
    token: &BootstrapToken,
) -> Result<(), Error> {
    root.write_secret(token_id_path(node), format!("{}\n", token.id()).as_bytes())?;
    Ok(())
}

/// The token ID recorded for `node`, if any.
pub fn recorded_token_id(
    root: &proton_core::host::Root,
    node: &str,
) -> Result<Option<String>, Error> {
    Ok(root
        .read_optional(token_id_path(node))?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// What [`forget_node`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// The bootstrap token ID deleted (or already gone: it expires on its own).
    pub token_id: Option<String>,
    /// Why deleting the token failed, when it did (an expired token is already gone).
    pub token_warning: Option<String>,
}

/// Everything the server keeps about a worker, so the machine can rejoin under the same
/// name: its Node, its node-password secret ([`remove_node`]) and its bootstrap token.
/// The token's record goes last, only once the cluster side succeeded, so a failed run
/// can be repeated.
pub fn forget_node(
    runner: &dyn Runner,
    root: &proton_core::host::Root,
    k3s: &str,
    node: &str,
) -> Result<Forgotten, Error> {
    remove_node(runner, k3s, node)?;
    let mut done = Forgotten::default();
    if let Some(id) = recorded_token_id(root, node)? {
        if let Err(e) = delete_token(runner, k3s, &id) {
            done.token_warning = Some(e.to_string());
        }
        let path = root.path(token_id_path(node));
        if let Err(source) = std::fs::remove_file(&path)
            && source.kind() != std::io::ErrorKind::NotFound
        {
            return Err(proton_core::host::HostError { path, source }.into());
        }
        done.token_id = Some(id);
    }
    Ok(done)
}
