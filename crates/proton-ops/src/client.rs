//! `proton client add|disable|enable|allow|deny`: plain WireGuard configs for phones and
//! laptops, switching them off and on without losing their key, and the other peers'
//! ports they may reach.

use crate::gateway::{Gateway, GatewayError};
use crate::qr::QrError;
use proton_core::host::Root;
use proton_core::keys::PrivateKey;
use proton_core::time::{parse_span, utc};
use proton_core::view::Network;
use proton_store::{Allow, Grant, InvalidPeer, NewPeer, Peer, PeerName, Role};
use std::fmt;
use std::io::Write;
use std::path::PathBuf;

/// The longest `--expires`.
pub const MAX_EXPIRY_DAYS: u64 = 3650;

/// Why a `client` command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Gateway(GatewayError),
    /// A bad name or `PEER:PORT[/udp]` argument.
    #[error("{0}")]
    Invalid(InvalidPeer),
    #[error("--expires {0}")]
    Expires(String),
    /// `what`: the subcommands the name was given to.
    #[error("`{name}` is a {role}, not a client")]
    NotAClient {
        name: String,
        role: Role,
        what: &'static str,
    },
    #[error("there is no client `{0}`")]
    NoSuchClient(String),
    #[error("cannot write the QR code to {}: {source}", path.display())]
    QrPng {
        path: PathBuf,
        #[source]
        source: QrError,
    },
    #[error(transparent)]
    Qr(#[from] QrError),
    #[error("could not write the config to standard output: {0}")]
    Output(std::io::Error),
}

crate::gateway::from_gateway_errors!(ClientError);

impl ClientError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::Gateway(e) => e.hint(),
            ClientError::NotAClient { what, .. } => Some(format!(
                "`proton client {what}` is for clients; remove a worker with `proton peer remove`"
            )),
            ClientError::NoSuchClient(_) => Some("see `proton peer list`".into()),
            ClientError::QrPng { .. } => {
                Some("choose a writable --qr-png path; nothing was added".into())
            }
            ClientError::Output(_) => Some("nothing was added; run the command again".into()),
            ClientError::Invalid(_) | ClientError::Expires(_) | ClientError::Qr(_) => None,
        }
    }

    pub fn is_bad_input(&self) -> bool {
        match self {
            ClientError::Gateway(e) => e.is_bad_input(),
            ClientError::Qr(_) => false,
            _ => true,
        }
    }
}

/// `PEER:PORT[/udp]` arguments; the first bad one is the error, before anything changes.
pub fn parse_allows(args: &[String]) -> Result<Vec<Allow>, ClientError> {
    args.iter()
        .map(|a| a.parse().map_err(ClientError::Invalid))
        .collect()
}

/// What `client add` is asked for, as typed.
#[derive(Debug, Default)]
pub struct AddRequest {
    pub name: String,
    pub full_tunnel: bool,
    pub admin: bool,
    pub allow: Vec<String>,
    pub qr_png: Option<PathBuf>,
    pub no_qr: bool,
    pub expires: Option<String>,
}

/// A client added; its [`fmt::Display`] is what the person at the terminal is told
/// (stderr), the config itself having gone to the output.
#[derive(Debug)]
pub struct Added {
    pub peer: Peer,
    pub expires_at: Option<i64>,
    /// Why the terminal QR code may not scan (it does not fit 80×24).
    pub qr_note: Option<String>,
    pub qr_png: Option<PathBuf>,
}

impl fmt::Display for Added {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Client `{}` added at {}. The config above holds its private key: it is shown once and not stored.",
            self.peer.name, self.peer.address
        )?;
        if let Some(at) = self.expires_at {
            writeln!(
                f,
                "It expires at {} (UTC): the gateway then takes it off the tunnel.",
                utc(at)
            )?;
        }
        if let Some(note) = &self.qr_note {
            writeln!(f, "{note}")?;
        }
        if let Some(path) = &self.qr_png {
            writeln!(f, "QR code written to {} (mode 0600)", path.display())?;
        }
        Ok(())
    }
}

/// `client add`: makes the client's key (a phone app cannot run `proton join`), writes
/// its config (and unless `no_qr` its terminal QR code) to `out`, and the PNG when asked.
/// The peer is committed only once its config is out: a command killed or failing before
/// that leaves no client whose private key nobody ever saw; one killed after it leaves a
/// config that works. The key is shown once, never stored.
pub fn add(root: &Root, req: AddRequest, out: &mut dyn Write) -> Result<Added, ClientError> {
    let allow = parse_allows(&req.allow)?;
    let name: PeerName = req.name.parse().map_err(ClientError::Invalid)?;
    let expires_in = req
        .expires
        .as_deref()
        .map(|t| parse_span(t, MAX_EXPIRY_DAYS, "3650d"))
        .transpose()
        .map_err(ClientError::Expires)?;
    // This process holds a fresh private key: no core dump of it.
    proton_gateway::hardening::no_core_dumps();
    let mut gw = Gateway::load(root)?;
    let gateway_key = gw.private_key()?.public_key();
    let key = PrivateKey::generate();
    let public = key.public_key();
    let spec = gw.spec.clone();
    let expires_at = expires_in.map(|s| proton_store::system_now() + s as i64);
    let grants: &[Grant] = if req.admin { &[Grant::Admin] } else { &[] };
    let qr_png = req.qr_png;
    let (peer, qr_note) = gw.store.add_peer_then(
        &name,
        Role::Client,
        public,
        &NewPeer {
            expires_at,
            grants,
            allows: &allow,
        },
        "cli",
        |peer| -> Result<Option<String>, ClientError> {
            let cfg =
                Network::new(&spec).client_config(key, peer.address, gateway_key, req.full_tunnel);
            let text = cfg.render();
            if let Some(path) = &qr_png {
                crate::qr::write_png(&text, path, 8).map_err(|source| ClientError::QrPng {
                    path: path.clone(),
                    source,
                })?;
            }
            let art = if req.no_qr {
                None
            } else {
                Some(crate::qr::terminal(&text)?)
            };
            let note = match &art {
                Some(a) if qr_png.is_none() => crate::qr::too_big_note(a),
                _ => None,
            };
            writeln!(out, "{}", text.as_str())
                .and_then(|_| match &art {
                    Some(a) => writeln!(out, "{a}"),
                    None => Ok(()),
                })
                .and_then(|_| out.flush())
                .map_err(|e| {
                    if let Some(path) = &qr_png {
                        let _ = std::fs::remove_file(path);
                    }
                    ClientError::Output(e)
                })?;
            Ok(note)
        },
    )?;
    Ok(Added {
        peer,
        expires_at,
        qr_note,
        qr_png,
    })
}

/// Refuses a name that is not a live client (`what`: the subcommands).
fn must_be_client(gw: &Gateway, name: &str, what: &'static str) -> Result<(), ClientError> {
    match gw.store.peer_by_name(name)? {
        Some(p) if p.role == Role::Client => Ok(()),
        Some(p) => Err(ClientError::NotAClient {
            name: name.to_string(),
            role: p.role,
            what,
        }),
        None => Err(ClientError::NoSuchClient(name.to_string())),
    }
}

/// What `client allow|deny` did; its [`fmt::Display`] is the line that says so.
#[derive(Debug, PartialEq, Eq)]
pub struct AllowsChanged {
    pub name: String,
    /// All its grants now.
    pub now: Vec<Allow>,
    /// Whether anything changed (the daemon is to be told).
    pub changed: bool,
    /// Whether grants were taken away (`deny`) rather than given.
    pub denying: bool,
}

impl fmt::Display for AllowsChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.now.iter().map(ToString::to_string).collect();
        let list = if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        };
        let name = &self.name;
        if self.changed {
            write!(f, "`{name}` may now also reach: {list}.")
        } else {
            let was = if self.denying {
                "had no such grant"
            } else {
                "already had that"
            };
            write!(f, "`{name}` {was}; it may also reach: {list}.")
        }
    }
}

/// `client allow` (`deny` false) or `client deny` (`deny` true) of `PEER:PORT[/udp]`
/// grants; the daemon applies them live.
pub fn change_allows(
    root: &Root,
    name: &str,
    grants: &[String],
    deny: bool,
) -> Result<AllowsChanged, ClientError> {
    let grants = parse_allows(grants)?;
    let mut gw = Gateway::load(root)?;
    must_be_client(&gw, name, "allow|deny")?;
    let (add, remove): (&[Allow], &[Allow]) = if deny { (&[], &grants) } else { (&grants, &[]) };
    let (now, changed) = gw.store.change_allows(name, add, remove, "cli")?;
    Ok(AllowsChanged {
        name: name.to_string(),
        now,
        changed,
        denying: deny,
    })
}

/// What `client disable|enable` did; its [`fmt::Display`] is the line that says so.
#[derive(Debug)]
pub struct Switched {
    pub peer: Peer,
    pub disabled: bool,
    /// Whether it was the other way before (the daemon is to be told).
    pub changed: bool,
}

impl fmt::Display for Switched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, address) = (&self.peer.name, self.peer.address);
        match (self.changed, self.disabled) {
            (false, true) => write!(f, "Client `{name}` is already disabled."),
            (false, false) => write!(f, "Client `{name}` is already enabled."),
            (true, true) => write!(
                f,
                "Disabled `{name}` ({address}): off the tunnel; its key and address are kept. `proton client enable {name}` lets the same config in again."
            ),
            (true, false) => write!(
                f,
                "Enabled `{name}` ({address}): its config connects again."
            ),
        }
    }
}

/// `client disable` (`disable` true) or `client enable`: off the tunnel and back with
/// the same key and address.
pub fn set_disabled(root: &Root, name: &str, disable: bool) -> Result<Switched, ClientError> {
    let mut gw = Gateway::load(root)?;
    must_be_client(&gw, name, "disable|enable")?;
    let (peer, changed) = gw.store.set_disabled(name, disable, "cli")?;
    Ok(Switched {
        peer,
        disabled: disable,
        changed,
    })
}
