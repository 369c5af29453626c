//! The invitation: one line a person pastes (or scans) on a new machine.
//!
//! Text form: `proton1-` then base64url (no padding) of a compact binary payload followed
//! by the first 4 bytes of its SHA-256. Any changed, missing or extra character is caught
//! by the checksum (a CRC would do for typos; SHA-256 is already a dependency for the
//! secret's hash, and 4 bytes miss a random change once in 4 billion).
//!
//! Payload (version 1): version u8, expiry u64 BE (unix seconds), secret [16], throw-away
//! private key [32], gateway public key [32], invitee address [4], network address [4],
//! prefix u8, port u16 BE, then the endpoint host as UTF-8 (the rest).

use crate::keys::{PrivateKey, PublicKey};
use crate::net::Cidr;
use crate::spec::Endpoint;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::Ipv4Addr;
use zeroize::Zeroizing;

const PREFIX: &str = "proton1-";
const VERSION: u8 = 1;
const FIXED: usize = 1 + 8 + 16 + 32 + 32 + 4 + 4 + 1 + 2;
const CHECK: usize = 4;

/// Why an invitation text was refused. Each is one line a person can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("this is not a Proton invitation (it should start with `{PREFIX}`)")]
    NotAnInvitation,
    #[error("this invitation is damaged or mistyped (checksum mismatch): copy it again")]
    Checksum,
    #[error("this invitation is truncated: copy the whole line")]
    Truncated,
    #[error("this invitation was made by a newer Proton (format {0}): upgrade proton")]
    Version(u8),
    #[error("this invitation is malformed: {0}")]
    Malformed(String),
}

/// A decoded invitation. Holds secrets: zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    pub expires_at: u64,
    secret: Zeroizing<[u8; 16]>,
    pub throwaway: PrivateKey,
    pub gateway_key: PublicKey,
    pub address: Ipv4Addr,
    pub network: Cidr,
    pub endpoint: Endpoint,
}

impl fmt::Debug for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invitation")
            .field("expires_at", &self.expires_at)
            .field("gateway_key", &self.gateway_key)
            .field("address", &self.address)
            .field("network", &self.network)
            .field("endpoint", &self.endpoint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Invitation {
    /// A new invitation with a fresh random secret and throw-away key.
    pub fn new(
        endpoint: Endpoint,
        gateway_key: PublicKey,
        network: Cidr,
        address: Ipv4Addr,
        expires_at: u64,
    ) -> Invitation {
        let mut secret = Zeroizing::new([0u8; 16]);
        getrandom::fill(secret.as_mut()).expect("the operating system's RNG failed");
        Invitation {
            expires_at,
            secret,
            throwaway: PrivateKey::generate(),
            gateway_key,
            address,
            network,
            endpoint,
        }
    }

    /// Where the reserved peer will be (used by the gateway before it knows the address).
    pub fn with_address(mut self, address: Ipv4Addr) -> Invitation {
        self.address = address;
        self
    }

    /// The secret in the form sent to the join API.
    pub fn secret_text(&self) -> Zeroizing<String> {
        Zeroizing::new(URL_SAFE_NO_PAD.encode(self.secret.as_ref()))
    }

    /// What the gateway stores: the SHA-256 of the secret, hex.
    pub fn secret_hash(&self) -> String {
        hash_secret_text(&self.secret_text())
    }

    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    pub fn encode(&self) -> Zeroizing<String> {
        let host = self.endpoint.host_string();
        let mut p = Zeroizing::new(Vec::with_capacity(FIXED + host.len() + CHECK));
        p.push(VERSION);
        p.extend_from_slice(&self.expires_at.to_be_bytes());
        p.extend_from_slice(self.secret.as_ref());
        p.extend_from_slice(self.throwaway.expose_bytes());
        p.extend_from_slice(self.gateway_key.as_bytes());
        p.extend_from_slice(&self.address.octets());
        p.extend_from_slice(&self.network.network().octets());
        p.push(self.network.prefix_len());
        p.extend_from_slice(&self.endpoint.port.to_be_bytes());
        p.extend_from_slice(host.as_bytes());
        let sum = Sha256::digest(&p[..]);
        p.extend_from_slice(&sum[..CHECK]);
        Zeroizing::new(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&p[..])))
    }

    pub fn decode(text: &str) -> Result<Invitation, InviteError> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(InviteError::NotAnInvitation)?;
        let raw = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| InviteError::Checksum)?,
        );
        if raw.len() < FIXED + 1 + CHECK {
            return Err(InviteError::Truncated);
        }
        let (payload, sum) = raw.split_at(raw.len() - CHECK);
        if Sha256::digest(payload)[..CHECK] != *sum {
            return Err(InviteError::Checksum);
        }
        if payload[0] != VERSION {
            return Err(InviteError::Version(payload[0]));
        }
        let take = |at: usize, n: usize| &payload[at..at + n];
        let mut secret = Zeroizing::new([0u8; 16]);
        secret.copy_from_slice(take(9, 16));
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(take(25, 32));
        let mut gw = [0u8; 32];
        gw.copy_from_slice(take(57, 32));
        let ip = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
        let network = ipnet::Ipv4Net::new(ip(take(93, 4)), payload[97])
            .map_err(|e| InviteError::Malformed(e.to_string()))
            .and_then(|n| Cidr::new(n).map_err(|e| InviteError::Malformed(e.to_string())))?;
        let port = u16::from_be_bytes([payload[98], payload[99]]);
        let host = std::str::from_utf8(&payload[FIXED..])
            .map_err(|_| InviteError::Malformed("endpoint is not text".into()))?;
        let endpoint = Endpoint::parse_with_default(&format!("{}:{port}", bracket(host)), port)
            .map_err(|e| InviteError::Malformed(format!("endpoint {e}")))?;
        let address = ip(take(89, 4));
        if !network.is_assignable(address) {
            return Err(InviteError::Malformed(format!(
                "{address} is not a peer address in {network}"
            )));
        }
        Ok(Invitation {
            expires_at: u64::from_be_bytes(take(1, 8).try_into().expect("8 bytes")),
            secret,
            throwaway: PrivateKey::from_bytes(*key),
            gateway_key: PublicKey::from_bytes(gw),
            address,
            network,
            endpoint,
        })
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// The hash the gateway stores for a secret sent to the join API.
pub fn hash_secret_text(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Invitation {
        Invitation::new(
            "vps.example.com:51820".parse().unwrap(),
            PrivateKey::generate().public_key(),
            "10.7.7.0/24".parse().unwrap(),
            Ipv4Addr::new(10, 7, 7, 9),
            1_900_000_000,
        )
    }

    #[test]
    fn round_trips_including_ipv6_endpoints() {
        let inv = sample();
        assert_eq!(Invitation::decode(&inv.encode()).unwrap(), inv);
        let mut v6 = sample();
        v6.endpoint = "[2001:db8::1]:4000".parse().unwrap();
        assert_eq!(Invitation::decode(&v6.encode()).unwrap(), v6);
        assert!(inv.encode().len() < 200, "one pasteable line");
        assert_eq!(inv.secret_hash(), hash_secret_text(&inv.secret_text()));
    }

    #[test]
    fn every_single_character_change_and_truncation_is_caught() {
        let text = sample().encode();
        let chars: Vec<char> = text.chars().collect();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..chars.len() {
            for c in alphabet.chars().filter(|c| *c != chars[i]) {
                let mut t = chars.clone();
                t[i] = c;
                let t: String = t.into_iter().collect();
                assert!(
                    Invitation::decode(&t).is_err(),
                    "change at {i} to {c} accepted"
                );
            }
        }
        for i in 0..chars.len() {
            let mut t = chars.clone();
            t.remove(i);
            let t: String = t.into_iter().collect();
            assert!(Invitation::decode(&t).is_err(), "deletion at {i} accepted");
        }
        for n in 0..text.len() {
            assert!(
                Invitation::decode(&text[..n]).is_err(),
                "truncated to {n} accepted"
            );
        }
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(
            Invitation::decode("hello"),
            Err(InviteError::NotAnInvitation)
        );
        assert_eq!(
            Invitation::decode("proton1-AAAA"),
            Err(InviteError::Truncated)
        );
        // A valid checksum over a payload of a future version.
        let mut p = vec![9u8; FIXED + 3];
        let sum = Sha256::digest(&p);
        p.extend_from_slice(&sum[..CHECK]);
        let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&p));
        assert_eq!(Invitation::decode(&text), Err(InviteError::Version(9)));
    }

    #[test]
    fn debug_hides_the_secrets() {
        let inv = sample();
        let shown = format!("{inv:?}");
        assert!(!shown.contains(inv.throwaway.expose_base64().as_str()));
        assert!(!shown.contains(inv.secret_text().as_str()));
    }
}
