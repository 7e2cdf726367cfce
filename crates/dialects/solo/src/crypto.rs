//! Solo's one encryption recipe, shared by webhook payloads and
//! context-aware links (the document's "Encryption" and webhook sections).
//!
//! ```text
//! payload = base64(salt) ‖ base64(iv) ‖ base64(AES-256-CBC(key, iv, PKCS#7(plaintext)))
//!           12 characters   24 characters   the rest
//! key     = SHA-256(secret ‖ salt)     salt: 8 random bytes, iv: 16 random bytes
//! ```
//!
//! `secret` is the string as the client holds it (a webhook's
//! `encryptionKey` exactly as the API handed it out, or the tenant's linking
//! secret), taken as its UTF-8 bytes; the salt is the raw 8 bytes. This is
//! the document's PHP recipe (`hash('SHA256', $decryptionKey . $salt, true)`,
//! `openssl_decrypt(..., 'AES-256-CBC', $secret, OPENSSL_RAW_DATA, $iv)`),
//! and, for a one-block digest, also what `openssl enc -aes-256-cbc -k secret
//! -md sha256` derives as its key (the document's example key is reproduced
//! in the tests below). Base64 is the standard alphabet with padding.
//!
//! Every encryption draws a fresh salt and IV. The cipher comes from the
//! RustCrypto crates (`aes`, `cbc`, `sha2`); nothing here is hand-written
//! cryptography. CBC without a MAC is what the protocol prescribes: a
//! tampered payload is refused only when its padding or its content (JSON)
//! does not hold, which the callers check.

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use sha2::{Digest, Sha256};
use std::fmt;

/// Bytes of salt.
pub const SALT_LEN: usize = 8;
/// Bytes of initialization vector (one AES block).
pub const IV_LEN: usize = 16;
/// Characters of the base64 salt (8 bytes, padded).
pub const SALT_CHARS: usize = 12;
/// Characters of the base64 IV (16 bytes, padded).
pub const IV_CHARS: usize = 24;

type Encryptor = cbc::Encryptor<Aes256>;
type Decryptor = cbc::Decryptor<Aes256>;

/// Why a payload could not be decrypted. The messages name the part at
/// fault and never echo the payload or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// Shorter than salt + IV + one block of ciphertext.
    TooShort,
    /// A part is not standard, padded base64.
    BadBase64(&'static str),
    /// A part decodes to the wrong number of bytes.
    BadLength(&'static str),
    /// The padding does not hold after decryption: another secret, or an
    /// altered payload.
    Undecryptable,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::TooShort => write!(
                f,
                "it is too short: base64 salt ({SALT_CHARS} characters), base64 IV ({IV_CHARS} characters) and base64 ciphertext are expected"
            ),
            CryptoError::BadBase64(part) => write!(f, "its {part} is not valid base64"),
            CryptoError::BadLength(part) => match *part {
                "salt" => write!(f, "its salt must be {SALT_LEN} bytes"),
                "IV" => write!(f, "its IV must be {IV_LEN} bytes"),
                _ => write!(f, "its ciphertext must be a whole number of 16-byte blocks"),
            },
            CryptoError::Undecryptable => {
                f.write_str("it cannot be decrypted with the secret (a wrong secret, or altered data)")
            }
        }
    }
}

impl std::error::Error for CryptoError {}

/// The AES-256 key of `secret` and `salt`: SHA-256(secret ‖ salt).
pub fn derive_key(secret: &str, salt: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(salt);
    h.finalize().into()
}

/// Encrypts `plaintext` under `secret` with a fresh random salt and IV.
pub fn encrypt(secret: &str, plaintext: &[u8]) -> String {
    encrypt_with(secret, plaintext, rand::random(), rand::random())
}

/// Encrypts `plaintext` under `secret` with the given salt and IV (for
/// tests and test vectors; [`encrypt`] draws them at random).
pub fn encrypt_with(secret: &str, plaintext: &[u8], salt: [u8; SALT_LEN], iv: [u8; IV_LEN]) -> String {
    let key = derive_key(secret, &salt);
    let ciphertext = Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut out = String::with_capacity(SALT_CHARS + IV_CHARS + ciphertext.len().div_ceil(3) * 4);
    STANDARD.encode_string(salt, &mut out);
    STANDARD.encode_string(iv, &mut out);
    STANDARD.encode_string(&ciphertext, &mut out);
    out
}

/// A payload split into its parts, decoded: parsed once, it can be tried
/// against several secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    salt: [u8; SALT_LEN],
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("ciphertext_len", &self.ciphertext.len()).finish_non_exhaustive()
    }
}

fn decode(part: &'static str, text: Option<&str>) -> Result<Vec<u8>, CryptoError> {
    STANDARD.decode(text.ok_or(CryptoError::BadBase64(part))?).map_err(|_| CryptoError::BadBase64(part))
}

impl Sealed {
    /// Splits `payload` (salt, IV, ciphertext) and decodes each part.
    pub fn parse(payload: &str) -> Result<Sealed, CryptoError> {
        let payload = payload.trim();
        // One block of ciphertext (16 bytes) is 24 base64 characters.
        if payload.len() < SALT_CHARS + IV_CHARS + 24 {
            return Err(CryptoError::TooShort);
        }
        // `get` answers None off a character boundary (non-ASCII input).
        let salt = decode("salt", payload.get(..SALT_CHARS))?;
        let iv = decode("IV", payload.get(SALT_CHARS..SALT_CHARS + IV_CHARS))?;
        let ciphertext = decode("ciphertext", payload.get(SALT_CHARS + IV_CHARS..))?;
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| CryptoError::BadLength("salt"))?;
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| CryptoError::BadLength("IV"))?;
        if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
            return Err(CryptoError::BadLength("ciphertext"));
        }
        Ok(Sealed { salt, iv, ciphertext })
    }

    /// Decrypts under `secret`: the plaintext, or [`CryptoError::Undecryptable`]
    /// when the padding does not hold.
    pub fn open(&self, secret: &str) -> Result<Vec<u8>, CryptoError> {
        let key = derive_key(secret, &self.salt);
        Decryptor::new(&key.into(), &self.iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&self.ciphertext)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

/// Decrypts `payload` under `secret`.
pub fn decrypt(secret: &str, payload: &str) -> Result<Vec<u8>, CryptoError> {
    Sealed::parse(payload)?.open(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn the_key_is_sha256_of_secret_and_salt_as_the_document_shows() {
        // `openssl enc -aes-256-cbc -k "some secret" -P -md sha256` in the
        // document: salt=7ADD846A66F25916, key=3D98C7...F6DF.
        let key = derive_key("some secret", &unhex("7ADD846A66F25916"));
        assert_eq!(key.to_vec(), unhex("3D98C78B0F2C8D27A6B0294A7F04B8484C2890D09B1AF98D4E6E7044DA1EF6DF"));
    }

    #[test]
    fn the_documents_example_link_decrypts() {
        let arg = "BizXKL9L4EQ=YuhTK5qXNtOCmbuaHMq5tA==DUPdvDCZPiSUf0Jumt/Mr/wVWv+mr6Vzj5LnKUQtTPc=";
        assert_eq!(decrypt("some secret", arg).unwrap(), br#"{"visit":"12345","user":"1234"}"#);
    }

    #[test]
    fn a_fixed_salt_and_iv_give_what_openssl_gives() {
        // `openssl enc -aes-256-cbc -K <SHA-256("some secret" ‖ salt)> -iv BDE1...602B`
        // of the document's example data, salt and IV.
        let salt: [u8; 8] = unhex("7ADD846A66F25916").try_into().unwrap();
        let iv: [u8; 16] = unhex("BDE13F6361593CC1D7181B40E5E0602B").try_into().unwrap();
        let out = encrypt_with("some secret", br#"{"visit":"12345","user":"1234"}"#, salt, iv);
        assert_eq!(out, "et2EambyWRY=veE/Y2FZPMHXGBtA5eBgKw==yggnLre57S3A8mzc/rzcxnC3HQqUQyMylpL+wu2iNhA=");
    }

    #[test]
    fn round_trips_with_fresh_salt_and_iv() {
        let a = encrypt("39VNjjSpgoUWMbUhVCjAoQ==", b"{\"event\":{}}");
        let b = encrypt("39VNjjSpgoUWMbUhVCjAoQ==", b"{\"event\":{}}");
        assert_ne!(a, b, "a fresh salt and IV every time");
        assert_eq!(&a[..SALT_CHARS][SALT_CHARS - 1..], "=");
        assert_eq!(&a[SALT_CHARS..SALT_CHARS + IV_CHARS][IV_CHARS - 2..], "==");
        assert_eq!(decrypt("39VNjjSpgoUWMbUhVCjAoQ==", &a).unwrap(), b"{\"event\":{}}");
        assert_eq!(decrypt("39VNjjSpgoUWMbUhVCjAoQ==", &b).unwrap(), b"{\"event\":{}}");
        // Empty and block-sized plaintexts get a whole block of padding.
        for len in [0, 15, 16, 17, 1000] {
            let plain = vec![b'x'; len];
            assert_eq!(decrypt("k", &encrypt("k", &plain)).unwrap(), plain);
        }
    }

    #[test]
    fn bad_payloads_are_refused_with_the_part_at_fault() {
        let good = encrypt_with("some secret", b"{}", [1; 8], [2; 16]);
        assert_eq!(decrypt("some secret", ""), Err(CryptoError::TooShort));
        assert_eq!(decrypt("some secret", &good[..40]), Err(CryptoError::TooShort));
        let bad_salt = format!("!!!!!!!!!!!={}", &good[SALT_CHARS..]);
        assert_eq!(decrypt("some secret", &bad_salt), Err(CryptoError::BadBase64("salt")));
        let bad_iv = format!("{}{}{}", &good[..SALT_CHARS], "#".repeat(IV_CHARS), &good[36..]);
        assert_eq!(decrypt("some secret", &bad_iv), Err(CryptoError::BadBase64("IV")));
        let bad_ct = format!("{}%%%%", &good[..60]);
        assert_eq!(decrypt("some secret", &bad_ct), Err(CryptoError::BadBase64("ciphertext")));
        // 12 characters that decode to 9 bytes: no padding where it belongs.
        let long_salt = format!("AAAAAAAAAAAA{}", &good[SALT_CHARS..]);
        assert_eq!(decrypt("some secret", &long_salt), Err(CryptoError::BadLength("salt")));
        let odd = format!("{}AAAAAAAAAAAAAAAAAAAAAAAAAAAA", &good[..36]);
        assert_eq!(decrypt("some secret", &odd), Err(CryptoError::BadLength("ciphertext")));
        let non_ascii = format!("é{}", &good[2..]);
        assert!(matches!(decrypt("some secret", &non_ascii), Err(CryptoError::BadBase64(_))));
    }

    #[test]
    fn another_secret_or_an_altered_ciphertext_does_not_decrypt() {
        let good = encrypt_with("some secret", br#"{"visit":"1"}"#, [7; 8], [9; 16]);
        assert_eq!(decrypt("another secret", &good), Err(CryptoError::Undecryptable));
        // One block (13 bytes and 3 of padding, `03 03 03`): flipping the
        // IV's last bit turns the last padding byte into `02`, which no
        // longer holds.
        let sealed = Sealed::parse(&good).unwrap();
        let mut altered = sealed.clone();
        altered.iv[IV_LEN - 1] ^= 0x01;
        assert_eq!(altered.open("some secret"), Err(CryptoError::Undecryptable));
        assert!(!format!("{sealed:?}").contains("ciphertext:"), "Debug shows no bytes");
    }
}
