//! Per-node bootstrap tokens and node removal, through `k3s` on the server.

use zeroize::Zeroizing;

use crate::Error;
use proton_core::host::Runner;

/// A bootstrap token as `k3s token create` prints it: the *secure* form
/// `K10<sha256 of the cluster CA, 64 hex>::<id>.<secret>` (k3s-io/k3s v1.34.2+k3s1
/// `pkg/cli/token/token.go` `create` → `pkg/clientaccess/token.go` `FormatTokenBytes`:
/// `tokenPrefix + digest + "::" + creds`). The agent gets the whole string, so it pins the
/// server's CA by its hash; `k3s token delete` takes the bare ID. Zeroized on drop, never
/// in `Debug`.
pub struct BootstrapToken(Zeroizing<String>);

/// K3s's secure-token prefix (`pkg/clientaccess/token.go` `tokenPrefix`).
const TOKEN_PREFIX: &str = "K10";
/// `caHashLength = sha256.Size * 2` (`pkg/clientaccess/token.go`), hex from `hex.EncodeToString`.
const CA_HASH_LEN: usize = 64;

fn lower_alnum(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Whether `id` is a bootstrap-token ID, `[a-z0-9]{6}` (k8s.io/cluster-bootstrap
/// `token/api` `BootstrapTokenIDPattern`, what `k3s token delete` accepts).
pub fn is_token_id(id: &str) -> bool {
    lower_alnum(id, 6)
}

impl BootstrapToken {
    /// Parses what `k3s token create` printed: exactly `K10<64 hex>::<id>.<secret>` with
    /// `<id>` `[a-z0-9]{6}` and `<secret>` `[a-z0-9]{16}` (`BootstrapTokenPattern`).
    /// Anything else (a bare `<id>.<secret>` that pins no CA, a usage text) is refused.
    pub fn parse(text: &str) -> Option<BootstrapToken> {
        let rest = text.strip_prefix(TOKEN_PREFIX)?;
        let (hash, creds) = rest.split_once("::")?;
        let hash_ok = hash.len() == CA_HASH_LEN
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let (id, secret) = creds.split_once('.')?;
        (hash_ok && is_token_id(id) && lower_alnum(secret, 16))
            .then(|| BootstrapToken(Zeroizing::new(text.to_string())))
    }

    /// The whole secure token, for the agent's `token:`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token ID, the handle `k3s token delete` takes; not secret.
    pub fn id(&self) -> &str {
        let creds = self.0.split_once("::").map_or("", |(_, c)| c);
        creds.split('.').next().unwrap_or_default()
    }
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BootstrapToken(K10<ca hash>::{}.<redacted>)", self.id())
    }
}

fn check(
    program: &str,
    what: String,
    out: std::io::Result<proton_core::host::Output>,
) -> Result<proton_core::host::Output, Error> {
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
    // `fmt.Println(token)` is the only thing `create` writes to stdout (logs go to stderr).
    BootstrapToken::parse(out.stdout.trim()).ok_or_else(|| Error::Command {
        command: format!("{k3s} token create"),
        reason: "printed no token of the form K10<CA hash>::<id>.<secret>".into(),
    })
}

/// `k3s token delete <id>`, `<id>` the bare 6-character token ID (`pkg/cli/token/token.go`
/// `delete` deletes Secret `kube-system/bootstrap-token-<id>`). Anything else is refused
/// before K3s runs: it would not name a token.
pub fn delete_token(runner: &dyn Runner, k3s: &str, token_id: &str) -> Result<(), Error> {
    if !is_token_id(token_id) {
        return Err(Error::Command {
            command: format!("{k3s} token delete"),
            reason: format!("{token_id:?} is not a bootstrap token ID ([a-z0-9]{{6}})"),
        });
    }
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
