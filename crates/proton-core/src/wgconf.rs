//! The wg-quick(8) configuration format: render and parse, with every key wg-quick
//! knows. Keys are case-insensitive, `#` starts a comment, list keys may repeat and hold
//! comma-separated values. A peer may carry a `# name` comment, which Proton writes so a
//! person reading the file knows which peer is which.

use crate::clip;
use crate::keys::{KeyError, PresharedKey, PrivateKey, PublicKey};
use crate::spec::{Endpoint, parse_fwmark};
use ipnet::IpNet;
use std::fmt::Write;
use zeroize::Zeroizing;

/// Why a wg-quick text was refused; `line` is 1-based.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {message}")]
pub struct WgConfError {
    pub line: usize,
    pub message: String,
}

/// The key of the comment line Proton writes above `[Interface]` in
/// [`crate::paths::AGENT_CONF`]: `# Proton-Interface = wg1`, the interface
/// `proton join --interface` was given. A comment, so the file stays what wg-quick and
/// `wg-quick strip` read.
pub const INTERFACE_KEY: &str = "Proton-Interface";
/// The interface a tunnel gets when nothing else is said (`proton join --interface`'s
/// default, and the one an `agent.conf` without an [`INTERFACE_KEY`] line means).
pub const DEFAULT_INTERFACE: &str = "wg0";

/// An [`INTERFACE_KEY`] value that is not a Linux interface name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("agent.conf's {INTERFACE_KEY} `{0}` is not an interface name")]
pub struct BadInterface(pub String);

/// The `# Proton-Interface = NAME` line before the first section, if there is one.
pub fn recorded_interface(text: &str) -> Result<Option<&str>, BadInterface> {
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            break;
        }
        let Some(comment) = line.strip_prefix('#') else {
            continue;
        };
        let Some((key, value)) = comment.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case(INTERFACE_KEY) {
            continue;
        }
        let name = value.trim();
        // Linux interface names: 1 to 15 bytes, no `/`, `:` or white space.
        let valid = !name.is_empty()
            && name.len() <= 15
            && !name.contains(['/', ':'])
            && !name.chars().any(char::is_whitespace);
        if !valid {
            return Err(BadInterface(name.to_string()));
        }
        return Ok(Some(name));
    }
    Ok(None)
}

/// `[Interface]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InterfaceSection {
    pub private_key: Option<PrivateKey>,
    pub addresses: Vec<IpNet>,
    pub listen_port: Option<u16>,
    /// `None`: not set; `Some(0)`: `off`.
    pub fwmark: Option<u32>,
    pub mtu: Option<u16>,
    /// DNS servers and search domains, in order, as written.
    pub dns: Vec<String>,
    pub table: Option<String>,
    /// Hook commands, in order. wg-quick cuts lines at `#`, so a command must not
    /// contain one (use `$'\x23'` in bash if you need the character).
    pub pre_up: Vec<String>,
    pub post_up: Vec<String>,
    pub pre_down: Vec<String>,
    pub post_down: Vec<String>,
    pub save_config: Option<bool>,
}

/// `[Peer]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSection {
    /// A `# name` comment directly inside the section (Proton's own annotation).
    pub name: Option<String>,
    pub public_key: PublicKey,
    pub preshared_key: Option<PresharedKey>,
    pub allowed_ips: Vec<IpNet>,
    pub endpoint: Option<Endpoint>,
    /// `None`: not set; `Some(0)`: `off`.
    pub persistent_keepalive: Option<u16>,
}

impl PeerSection {
    pub fn new(public_key: PublicKey) -> Self {
        PeerSection {
            name: None,
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

/// A whole wg-quick file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WgQuickConfig {
    pub interface: InterfaceSection,
    pub peers: Vec<PeerSection>,
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl WgQuickConfig {
    /// The full wg-quick text. Holds the private key, hence `Zeroizing`.
    pub fn render(&self) -> Zeroizing<String> {
        self.render_inner(true)
    }

    /// What `wg setconf` accepts (as `wg-quick strip` prints): no Address, DNS, MTU,
    /// Table, hooks or SaveConfig.
    pub fn render_wg_setconf(&self) -> Zeroizing<String> {
        self.render_inner(false)
    }

    fn render_inner(&self, quick: bool) -> Zeroizing<String> {
        let i = &self.interface;
        // Reserve enough up front that the buffer holding the private key is not
        // reallocated (a reallocation would leave an unzeroized copy behind).
        let hooks: usize = [&i.pre_up, &i.post_up, &i.pre_down, &i.post_down]
            .iter()
            .flat_map(|v| v.iter())
            .map(|c| c.len() + 16)
            .sum();
        let dns: usize = i.dns.iter().map(|d| d.len() + 2).sum();
        let peers: usize = self
            .peers
            .iter()
            .map(|p| 512 + p.name.as_ref().map_or(0, String::len) + 48 * p.allowed_ips.len())
            .sum();
        let capacity = 512 + 48 * i.addresses.len() + dns + hooks + peers;
        let mut o = Zeroizing::new(String::with_capacity(capacity));
        o.push_str("[Interface]\n");
        if let Some(k) = &i.private_key {
            let _ = writeln!(o, "PrivateKey = {}", k.expose_base64().as_str());
        }
        if quick && !i.addresses.is_empty() {
            let _ = writeln!(o, "Address = {}", join(&i.addresses));
        }
        if let Some(p) = i.listen_port {
            let _ = writeln!(o, "ListenPort = {p}");
        }
        match i.fwmark {
            Some(0) => o.push_str("FwMark = off\n"),
            Some(m) => {
                let _ = writeln!(o, "FwMark = {m:#x}");
            }
            None => {}
        }
        if quick {
            if let Some(m) = i.mtu {
                let _ = writeln!(o, "MTU = {m}");
            }
            if !i.dns.is_empty() {
                let _ = writeln!(o, "DNS = {}", i.dns.join(", "));
            }
            if let Some(t) = &i.table {
                let _ = writeln!(o, "Table = {t}");
            }
            for (key, cmds) in [
                ("PreUp", &i.pre_up),
                ("PostUp", &i.post_up),
                ("PreDown", &i.pre_down),
                ("PostDown", &i.post_down),
            ] {
                for c in cmds {
                    let _ = writeln!(o, "{key} = {c}");
                }
            }
            if let Some(s) = i.save_config {
                let _ = writeln!(o, "SaveConfig = {s}");
            }
        }
        for p in &self.peers {
            o.push_str("\n[Peer]\n");
            if let Some(n) = &p.name {
                let _ = writeln!(o, "# {n}");
            }
            let _ = writeln!(o, "PublicKey = {}", p.public_key);
            if let Some(k) = &p.preshared_key {
                let _ = writeln!(o, "PresharedKey = {}", k.expose_base64().as_str());
            }
            if !p.allowed_ips.is_empty() {
                let _ = writeln!(o, "AllowedIPs = {}", join(&p.allowed_ips));
            }
            if let Some(e) = &p.endpoint {
                let _ = writeln!(o, "Endpoint = {e}");
            }
            match p.persistent_keepalive {
                Some(0) => o.push_str("PersistentKeepalive = off\n"),
                Some(k) => {
                    let _ = writeln!(o, "PersistentKeepalive = {k}");
                }
                None => {}
            }
        }
        o
    }

    /// Parses a wg-quick (or `wg setconf`) text.
    pub fn parse(text: &str) -> Result<WgQuickConfig, WgConfError> {
        enum Section {
            None,
            Interface,
            Peer(PendingPeer),
        }
        #[derive(Default)]
        struct PendingPeer {
            line: usize,
            name: Option<String>,
            public_key: Option<PublicKey>,
            preshared_key: Option<PresharedKey>,
            allowed_ips: Vec<IpNet>,
            endpoint: Option<Endpoint>,
            keepalive: Option<u16>,
            seen_key: bool,
        }
        fn finish(p: PendingPeer, peers: &mut Vec<PeerSection>) -> Result<(), WgConfError> {
            let public_key = p.public_key.ok_or(WgConfError {
                line: p.line,
                message: "[Peer] has no PublicKey".into(),
            })?;
            peers.push(PeerSection {
                name: p.name,
                public_key,
                preshared_key: p.preshared_key,
                allowed_ips: p.allowed_ips,
                endpoint: p.endpoint,
                persistent_keepalive: p.keepalive,
            });
            Ok(())
        }

        let mut cfg = WgQuickConfig::default();
        let mut seen_interface = false;
        let mut section = Section::None;
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let err = |message: String| WgConfError { line, message };
            let trimmed = raw.trim();
            if let Some(comment) = trimmed.strip_prefix('#') {
                if let Section::Peer(p) = &mut section
                    && !p.seen_key
                    && p.name.is_none()
                {
                    let c = comment.trim();
                    if !c.is_empty() {
                        p.name = Some(c.to_string());
                    }
                }
                continue;
            }
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            if content.starts_with('[') {
                let prev = std::mem::replace(&mut section, Section::None);
                if let Section::Peer(p) = prev {
                    finish(p, &mut cfg.peers)?;
                }
                section = match content.to_ascii_lowercase().as_str() {
                    "[interface]" => {
                        if seen_interface {
                            return Err(err("a second [Interface] section".into()));
                        }
                        seen_interface = true;
                        Section::Interface
                    }
                    "[peer]" => Section::Peer(PendingPeer {
                        line,
                        ..PendingPeer::default()
                    }),
                    other => return Err(err(format!("unknown section {}", clip(other)))),
                };
                continue;
            }
            let (key, value) = content
                .split_once('=')
                .ok_or_else(|| err(format!("`{}` is not `Key = Value`", clip(content))))?;
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            // wg-quick cuts every line at the first `#` before reading it, hooks included
            // (`${line%%\#*}`), so a hook never contains `#`; reading it the same way keeps
            // what we parse equal to what wg-quick would run. Values keep any later `=`.
            let hook_value = value;
            let list = || value.split(',').map(str::trim).filter(|s| !s.is_empty());
            let key_err = |e: KeyError| err(format!("{}: {e}", clip(&key)));
            match &mut section {
                Section::None => {
                    return Err(err(format!("`{}` outside of a section", clip(&key))));
                }
                Section::Interface => {
                    let i = &mut cfg.interface;
                    match key.as_str() {
                        "privatekey" => {
                            i.private_key = Some(PrivateKey::from_base64(value).map_err(key_err)?)
                        }
                        "address" => {
                            for a in list() {
                                i.addresses.push(parse_net(a).map_err(err)?);
                            }
                        }
                        "listenport" => {
                            i.listen_port = Some(value.parse().map_err(|_| {
                                err(format!("ListenPort `{}` is not a port", clip(value)))
                            })?)
                        }
                        "fwmark" => i.fwmark = Some(parse_fwmark(value).map_err(err)?),
                        "mtu" => {
                            i.mtu = Some(value.parse().map_err(|_| {
                                err(format!("MTU `{}` is not a number", clip(value)))
                            })?)
                        }
                        "dns" => i.dns.extend(list().map(String::from)),
                        "table" => i.table = Some(value.to_string()),
                        "preup" => i.pre_up.push(hook_value.to_string()),
                        "postup" => i.post_up.push(hook_value.to_string()),
                        "predown" => i.pre_down.push(hook_value.to_string()),
                        "postdown" => i.post_down.push(hook_value.to_string()),
                        "saveconfig" => {
                            i.save_config = Some(match value.to_ascii_lowercase().as_str() {
                                "true" => true,
                                "false" => false,
                                _ => {
                                    return Err(err(format!(
                                        "SaveConfig `{}` is not true or false",
                                        clip(value)
                                    )));
                                }
                            })
                        }
                        _ => {
                            return Err(err(format!(
                                "unknown key `{}` in [Interface]",
                                clip(&key)
                            )));
                        }
                    }
                }
                Section::Peer(p) => {
                    p.seen_key = true;
                    match key.as_str() {
                        "publickey" => {
                            p.public_key = Some(PublicKey::from_base64(value).map_err(key_err)?)
                        }
                        "presharedkey" => {
                            p.preshared_key =
                                Some(PresharedKey::from_base64(value).map_err(key_err)?)
                        }
                        "allowedips" => {
                            for a in list() {
                                p.allowed_ips.push(parse_net(a).map_err(err)?);
                            }
                        }
                        "endpoint" => {
                            let e = Endpoint::parse_with_default(value, 0)
                                .map_err(|m| err(format!("Endpoint {m}")))?;
                            if e.port == 0 {
                                return Err(err(format!(
                                    "Endpoint `{}` needs a :PORT",
                                    clip(value)
                                )));
                            }
                            p.endpoint = Some(e);
                        }
                        "persistentkeepalive" => {
                            p.keepalive = Some(if value.eq_ignore_ascii_case("off") {
                                0
                            } else {
                                value.parse().map_err(|_| {
                                    err(format!(
                                        "PersistentKeepalive `{}` is not a number or off",
                                        clip(value)
                                    ))
                                })?
                            })
                        }
                        _ => {
                            return Err(err(format!("unknown key `{}` in [Peer]", clip(&key))));
                        }
                    }
                }
            }
        }
        if let Section::Peer(p) = section {
            finish(p, &mut cfg.peers)?;
        }
        Ok(cfg)
    }
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(n) = text.parse::<IpNet>() {
        return Ok(n);
    }
    // A bare address means a single host, as wg-quick reads it.
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{}` is not an address or network", clip(text)))
}

#[cfg(test)]
mod tests;
