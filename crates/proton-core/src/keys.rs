//! WireGuard keys: x25519 key pairs in the base64 text form that `wg` uses.
//!
//! A [`PrivateKey`] is made from the operating system's RNG on the machine that uses
//! it, is zeroized when dropped, and its `Debug` never shows the key material. Its
//! text form is only available through [`PrivateKey::expose_base64`], whose name
//! makes every place that writes a secret easy to find.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::str::FromStr;
use zeroize::Zeroizing;

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// Why a key's text form was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not valid base64 (a WireGuard key is 44 characters of base64, as `wg genkey` prints)")]
    Base64,
    #[error("decodes to {0} bytes, a WireGuard key is 32")]
    Length(usize),
}

fn decode(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let text = text.trim();
    let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN + 2));
    STANDARD
        .decode_vec(text, &mut buf)
        .map_err(|_| KeyError::Base64)?;
    if buf.len() != KEY_LEN {
        return Err(KeyError::Length(buf.len()));
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&buf);
    Ok(out)
}

/// A WireGuard private key (also used for pre-shared keys' shape).
///
/// Zeroized on drop; `Debug` prints `PrivateKey(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Zeroizing<[u8; KEY_LEN]>);

impl PrivateKey {
    /// Makes a new key from the operating system's RNG, clamped as Curve25519 requires
    /// (the same bytes `wg genkey` would produce).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).expect("the operating system's RNG failed");
        clamp(&mut bytes);
        PrivateKey(bytes)
    }

    /// Parses the base64 text form (`wg genkey` output).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(PrivateKey)
    }

    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        // Kept exactly as given: x25519 clamps internally, as `wg pubkey` does.
        PrivateKey(Zeroizing::new(bytes))
    }

    /// The secret in the text form `wg` reads. The returned string is zeroized on drop.
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// The raw secret bytes.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key (what `wg pubkey` prints).
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }
}

fn clamp(bytes: &mut [u8; KEY_LEN]) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A pre-shared key (`wg genpsk`): 32 random bytes, secret like a private key.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey(Zeroizing<[u8; KEY_LEN]>);

impl PresharedKey {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut()).expect("the operating system's RNG failed");
        PresharedKey(bytes)
    }
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(PresharedKey)
    }
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PresharedKey(Zeroizing::new(bytes))
    }
    pub fn expose_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

/// A WireGuard public key. Not secret: `Display` prints the base64 form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode(text).map(|b| PublicKey(*b))
    }
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PublicKey::from_base64(s)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a private key file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    #[error("reading {}", path.display())]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: KeyError,
    },
}

/// Reads a base64 private key file (`None`: there is none), warning when it is
/// readable by others. The one reader of [`crate::paths::GATEWAY_KEY`] and
/// [`crate::paths::NODE_KEY`].
pub fn read_private_key(
    root: &crate::host::Root,
    path: &str,
) -> Result<Option<PrivateKey>, KeyFileError> {
    let full = root.path(path);
    let Some(text) = root.read_optional(path)? else {
        return Ok(None);
    };
    if let Ok(mode) = crate::host::mode_of(&full)
        && mode & 0o077 != 0
    {
        tracing::warn!(
            "{} is readable by others (mode {mode:o}): chmod 600 it",
            full.display()
        );
    }
    PrivateKey::from_base64(text.trim())
        .map(Some)
        .map_err(|source| KeyFileError::Parse { path: full, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = PrivateKey::generate();
        let b = PrivateKey::generate();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert_eq!(a.expose_bytes()[0] & 7, 0);
        assert_eq!(a.expose_bytes()[31] & 0xc0, 0x40);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = PrivateKey::generate();
        let shown = format!("{k:?}");
        assert!(!shown.contains(k.expose_base64().as_str()));
        assert!(shown.contains("redacted"));
        let p = PresharedKey::generate();
        assert!(!format!("{p:?}").contains(p.expose_base64().as_str()));
    }

    #[test]
    fn known_vector_matches_wg_pubkey() {
        // RFC 7748 section 6.1 (Alice).
        let hex = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        let k = PrivateKey::from_bytes(bytes);
        let want = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
        let got: String = k
            .public_key()
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let k = PrivateKey::generate();
        let back = PrivateKey::from_base64(&k.expose_base64()).unwrap();
        assert_eq!(back, k);
        let p = k.public_key();
        assert_eq!(PublicKey::from_base64(&p.to_base64()).unwrap(), p);
        assert_eq!(PublicKey::from_base64("not base64!"), Err(KeyError::Base64));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyError::Length(3)));
    }
}
