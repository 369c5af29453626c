//! Which WireGuard implementation runs an interface: the spec's `network.backend`,
//! `proton gateway run --backend`, `proton join --backend` and the data plane
//! `proton_wg` brings up all use this one type.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The data plane asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Kernel when the WireGuard module is available, else userspace.
    #[default]
    Auto,
    /// Kernel WireGuard over netlink.
    Kernel,
    /// gotatun on a TUN device, with a UAPI socket.
    Userspace,
}

impl Backend {
    /// Every backend, in the order error messages name them.
    pub const ALL: [Backend; 3] = [Backend::Auto, Backend::Kernel, Backend::Userspace];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Kernel => "kernel",
            Backend::Userspace => "userspace",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backend name that is none of `auto`, `kernel`, `userspace` (the name as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WireGuard backend `{0}`: use auto, kernel or userspace")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_serde_and_display_agree() {
        for b in Backend::ALL {
            assert_eq!(b.to_string().parse::<Backend>().unwrap(), b);
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
        }
        assert_eq!(
            "Kernel".parse::<Backend>().unwrap_err().to_string(),
            "WireGuard backend `Kernel`: use auto, kernel or userspace"
        );
    }
}
