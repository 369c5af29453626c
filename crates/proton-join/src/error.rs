//! Every way a join fails (innernet's `RedeemInviteError`): `Display` is one line,
//! [`JoinError::hint`] the fix, [`JoinError::is_bad_input`] whether the input was at fault.

use crate::ResolveError;
use crate::keys::KeyFileError;
use proton_core::host::HostError;
use proton_core::spec::Endpoint;
use proton_proto::join::ClientError;
use std::borrow::Cow;

const RERUN: &str = "re-run `proton join` with the same invitation to finish";

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("this invitation has expired")]
    Expired,
    /// An existing link is refused, not taken over: it could be a running tunnel.
    #[error("network interface `{0}` already exists")]
    InterfaceExists(String),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Key(#[from] KeyFileError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Device(#[from] proton_wg::WgError),
    /// The runtime for the tunnel, or a command that could not be started.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not one handshake: a wrong gateway, a used invitation, a blocked port.
    #[error("no WireGuard handshake with the gateway at {endpoint} within {secs} s")]
    NoHandshake { endpoint: Endpoint, secs: u64 },
    /// The gateway refused the redeem; its one-line reason.
    #[error("{0}")]
    Refused(String),
    /// Handshakes came, but the join API's answer did not.
    #[error(transparent)]
    Unanswered(ClientError),
    #[error("the gateway stopped answering")]
    StoppedAnswering,
    #[error("the gateway does not know our key")]
    OwnKeyUnknown,
    #[error("redeemed, but the tunnel with our own key does not answer")]
    OwnKeyUnconfirmed(#[source] Option<ClientError>),
    #[error("gateway's {field} answer")]
    BadAnswer {
        field: &'static str,
        #[source]
        source: ipnet::AddrParseError,
    },
    /// The K3s agent's files could not be made.
    #[error(transparent)]
    K3sFiles(proton_k3s::Error),
    #[error("systemctl enable --now {unit} failed")]
    Enable { unit: String },
    #[error("the tunnel is up, but installing the K3s agent failed")]
    K3sInstall {
        version: String,
        #[source]
        source: proton_k3s::Error,
    },
    #[error("could not run `{command}`")]
    CommandNotRun {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {why}")]
    CommandFailed { command: String, why: String },
}

impl JoinError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<Cow<'static, str>> {
        use JoinError as E;
        match self {
            E::Expired => {
                Some("ask the gateway's admin for a new one: proton invite <name>".into())
            }
            E::InterfaceExists(name) => Some(
                format!(
                    "if it is this machine's tunnel from an earlier join, stop it first \
                     (`wg-quick down {name}` or `ip link del {name}`), or pass --interface"
                )
                .into(),
            ),
            E::Resolve(e) => e.hint().map(Cow::Borrowed),
            E::NoHandshake { .. } => Some(
                "check that the gateway runs and its UDP port is reachable; an invitation that \
                 was already used, or that another gateway made, never gets an answer: ask for \
                 a new one"
                    .into(),
            ),
            E::Unanswered(_) | E::StoppedAnswering | E::OwnKeyUnknown | E::OwnKeyUnconfirmed(_) => {
                Some(RERUN.into())
            }
            E::Enable { unit } => Some(format!("see `journalctl -u {unit}`").into()),
            E::K3sInstall { version, .. } => Some(
                format!(
                    "fix the cause and re-run the script with INSTALL_K3S_VERSION={version} \
                     INSTALL_K3S_EXEC=agent (server and token are in {}; the token expires 30 \
                     minutes after the join)",
                    proton_k3s::config::CONFIG_PATH
                )
                .into(),
            ),
            E::Key(_)
            | E::Host(_)
            | E::Device(_)
            | E::Io(_)
            | E::Refused(_)
            | E::BadAnswer { .. }
            | E::K3sFiles(_)
            | E::CommandNotRun { .. }
            | E::CommandFailed { .. } => None,
        }
    }

    /// The invitation or the arguments were at fault (the CLI's exit code 2), not the
    /// machine or the network.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            JoinError::Expired | JoinError::InterfaceExists(_) | JoinError::Refused(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_and_the_fix_is_the_hint() {
        let cases = [
            (JoinError::Expired, "this invitation has expired", true),
            (
                JoinError::InterfaceExists("wg7".into()),
                "network interface `wg7` already exists",
                true,
            ),
            (
                JoinError::NoHandshake {
                    endpoint: "vpn.example.org:51820".parse().unwrap(),
                    secs: 4,
                },
                "no WireGuard handshake with the gateway at vpn.example.org:51820 within 4 s",
                false,
            ),
            (
                JoinError::Refused("this invitation has already been used".into()),
                "this invitation has already been used",
                true,
            ),
            (
                JoinError::OwnKeyUnconfirmed(None),
                "redeemed, but the tunnel with our own key does not answer",
                false,
            ),
        ];
        for (e, display, bad_input) in cases {
            assert_eq!(e.to_string(), display);
            assert!(!e.to_string().contains('\n'));
            assert_eq!(e.is_bad_input(), bad_input, "{e}");
        }
        let hint = JoinError::InterfaceExists("wg7".into()).hint().unwrap();
        assert!(
            hint.contains("`wg-quick down wg7` or `ip link del wg7`"),
            "{hint}"
        );
        let hint = JoinError::NoHandshake {
            endpoint: "vpn.example.org:51820".parse().unwrap(),
            secs: 4,
        }
        .hint()
        .unwrap();
        assert!(hint.contains("another gateway"), "{hint}");
        assert_eq!(
            JoinError::OwnKeyUnknown.hint().as_deref(),
            Some("re-run `proton join` with the same invitation to finish")
        );
        assert_eq!(
            JoinError::Enable {
                unit: "proton-agent.service".into()
            }
            .hint()
            .as_deref(),
            Some("see `journalctl -u proton-agent.service`")
        );
        assert!(JoinError::Refused("no".into()).hint().is_none());
        let no_address = JoinError::from(ResolveError::NoAddress {
            endpoint: "vpn.example.org:51820".into(),
        });
        assert_eq!(
            no_address.hint().as_deref(),
            Some("check the gateway's DNS name")
        );
    }
}
