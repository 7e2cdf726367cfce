//! Sealing secrets that a protocol needs back in clear (a Solo webhook key
//! that encrypts payloads, a Docplanner PUSH API key sent to the client's
//! endpoint). They cannot be hashed like credentials, so they are encrypted at
//! rest with AES-256-GCM under the server's secret key.
//!
//! Sealed form: `v1:` + hex(12-byte random nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use std::fmt;

/// The server's secret key, 32 bytes.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a key or a sealed value could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the secret key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("the sealed value is malformed or was sealed under another key")]
    CannotOpen,
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        SecretKey(rand::random())
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(s.trim()).map_err(|_| SealError::BadKey)?;
        Ok(SecretKey(bytes.try_into().map_err(|_| SealError::BadKey)?))
    }

    /// The key as 64 hex characters (for the key file).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(self.0))
    }

    /// Encrypts `plain` with a fresh random nonce.
    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(&Nonce::from(nonce), plain.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("v1:{}", hex::encode(out))
    }

    /// Encrypts bytes with a fresh random nonce: `1` ‖ nonce ‖ ciphertext ‖
    /// tag (files of the blob store).
    pub fn seal_bytes(&self, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; 12] = rand::random();
        let sealed = self
            .cipher()
            .encrypt(&Nonce::from(nonce), plain)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(1 + 12 + sealed.len());
        out.push(1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts bytes produced by [`SecretKey::seal_bytes`].
    pub fn open_bytes(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some((1, rest)) = sealed.split_first().map(|(v, r)| (*v, r)) else {
            return Err(SealError::CannotOpen);
        };
        if rest.len() < 12 + 16 {
            return Err(SealError::CannotOpen);
        }
        let (nonce, body) = rest.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError::CannotOpen)?;
        self.cipher().decrypt(&Nonce::from(nonce), body).map_err(|_| SealError::CannotOpen)
    }

    /// A 32-byte key for one `purpose`, derived from this one (SHA-256 of
    /// the purpose and the key): for keyed hashes that must not reveal
    /// what they hash.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"polyclinic:");
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.0);
        h.finalize().into()
    }

    /// Decrypts a value produced by [`SecretKey::seal`].
    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let raw = sealed.strip_prefix("v1:").and_then(|h| hex::decode(h).ok()).ok_or(SealError::CannotOpen)?;
        if raw.len() < 12 + 16 {
            return Err(SealError::CannotOpen);
        }
        let (nonce, body) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| SealError::CannotOpen)?;
        let plain = self.cipher().decrypt(&Nonce::from(nonce), body).map_err(|_| SealError::CannotOpen)?;
        String::from_utf8(plain).map_err(|_| SealError::CannotOpen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_key() {
        let key = SecretKey::generate();
        let sealed = key.seal("webhook-secret");
        assert!(sealed.starts_with("v1:") && !sealed.contains("webhook-secret"));
        assert_eq!(key.open(&sealed).unwrap(), "webhook-secret");
        assert_ne!(key.seal("webhook-secret"), sealed, "every seal uses a fresh nonce");
        assert_eq!(SecretKey::generate().open(&sealed), Err(SealError::CannotOpen));
        assert_eq!(key.open("v1:00"), Err(SealError::CannotOpen));
    }

    #[test]
    fn sealed_bytes_open_only_under_their_key() {
        let key = SecretKey::generate();
        let plain = b"%PDF-1.7 patient data".to_vec();
        let sealed = key.seal_bytes(&plain);
        assert!(!sealed.windows(plain.len()).any(|w| w == plain.as_slice()));
        assert_eq!(key.open_bytes(&sealed).unwrap(), plain);
        assert_eq!(SecretKey::generate().open_bytes(&sealed), Err(SealError::CannotOpen));
        assert_eq!(key.open_bytes(&sealed[..20]), Err(SealError::CannotOpen));
        assert_ne!(key.derive("a"), key.derive("b"));
    }

    #[test]
    fn keys_round_trip_as_hex_and_never_print() {
        let key = SecretKey::generate();
        assert_eq!(SecretKey::from_hex(&key.to_hex()).unwrap().0, key.0);
        assert_eq!(SecretKey::from_hex("abc").unwrap_err(), SealError::BadKey);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }
}
