//! The only module that calls libsodium: X25519 key pairs, sealed boxes, crypto_box with a
//! precomputed shared key, secretbox, SHA-256 and HMAC-SHA256 (webhook signatures).
//!
//! Keys travel and rest as RFC 8410 PEM (`BEGIN PUBLIC KEY` / `BEGIN PRIVATE KEY` around the
//! fixed X25519 DER prefix), so `openssl pkey -in minion.pub -pubin -text` can read them and the
//! `pub` field of `salt/auth` events looks like Salt's.

use crate::encoding::{base64, hex, unbase64};
use sodiumoxide::crypto::{auth::hmacsha256, box_, hash::sha256, sealedbox, secretbox};
use std::fmt;

/// DER prefix of a SubjectPublicKeyInfo holding an X25519 key (OID 1.3.101.110).
const SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00];
/// DER prefix of a PKCS#8 PrivateKeyInfo holding an X25519 key.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
];

/// Errors from decoding keys or opening boxes; none of them says more than needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The text is not a PEM block of the expected kind.
    BadPem(&'static str),
    /// A sealed box or secretbox did not open (wrong key, forged, replayed or reordered).
    Open,
    /// A public key of small order: the key it shares with anyone is known to everyone.
    WeakKey,
    /// The nonce counter would wrap; the session must end.
    NonceExhausted,
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::BadPem(what) => write!(f, "not a valid X25519 {what} key in PEM form"),
            CryptoError::Open => f.write_str("message failed authentication"),
            CryptoError::WeakKey => f.write_str("public key of small order refused"),
            CryptoError::NonceExhausted => f.write_str("session nonce counter exhausted"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// Initialises libsodium; call once before any other function (idempotent).
pub fn init() {
    // sodium_init only fails when the system has no entropy source at all.
    sodiumoxide::init().expect("libsodium failed to initialise (no entropy source?)");
}

/// An X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(box_::PublicKey);

/// An X25519 key pair; the secret half is zeroed on drop by libsodium.
pub struct KeyPair {
    pub public: PublicKey,
    secret: box_::SecretKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({:?}, secret hidden)", self.public)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", base64(der))
}

/// The base64 body of a PEM block with `label`, joined across lines.
fn pem_body(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let text = text.trim();
    let inner = text.strip_prefix(&begin)?.strip_suffix(&end)?;
    Some(inner.split_whitespace().collect())
}

impl PublicKey {
    /// Parses the PEM form written by [`PublicKey::to_pem`].
    pub fn from_pem(text: &str) -> Result<PublicKey, CryptoError> {
        let bad = CryptoError::BadPem("public");
        let der = pem_body(text, "PUBLIC KEY").and_then(|b| unbase64(&b)).ok_or(bad.clone())?;
        let raw = der.strip_prefix(&SPKI_PREFIX[..]).ok_or(bad.clone())?;
        box_::PublicKey::from_slice(raw).map(PublicKey).ok_or(bad)
    }

    /// RFC 8410 PEM, newline-terminated.
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.0.as_ref());
        pem("PUBLIC KEY", &der)
    }

    /// The raw 32 bytes: what a cache of shared keys is keyed by.
    pub fn as_bytes(&self) -> &[u8; box_::PUBLICKEYBYTES] {
        &self.0 .0
    }

    /// Salt's `pem_finger`: SHA-256 of the PEM's base64 body, as colon-separated hex pairs.
    pub fn fingerprint(&self) -> String {
        let body = pem_body(&self.to_pem(), "PUBLIC KEY").unwrap_or_default();
        let digest = hex(sha256::hash(body.as_bytes()).as_ref());
        let pairs: Vec<&str> = (0..digest.len()).step_by(2).map(|i| &digest[i..i + 2]).collect();
        pairs.join(":")
    }
}

impl KeyPair {
    /// A second copy of the pair, for a worker thread (its secret is zeroed on drop too).
    pub fn duplicate(&self) -> KeyPair {
        KeyPair { public: self.public.clone(), secret: self.secret.clone() }
    }

    /// A fresh random key pair.
    pub fn generate() -> KeyPair {
        let (public, secret) = box_::gen_keypair();
        KeyPair { public: PublicKey(public), secret }
    }

    /// Parses the PKCS#8 PEM written by [`KeyPair::secret_pem`] and derives the public half.
    pub fn from_secret_pem(text: &str) -> Result<KeyPair, CryptoError> {
        let bad = CryptoError::BadPem("private");
        let der = pem_body(text, "PRIVATE KEY").and_then(|b| unbase64(&b)).ok_or(bad.clone())?;
        let raw = der.strip_prefix(&PKCS8_PREFIX[..]).ok_or(bad.clone())?;
        let secret = box_::SecretKey::from_slice(raw).ok_or(bad)?;
        Ok(KeyPair { public: PublicKey(secret.public_key()), secret })
    }

    /// PKCS#8 PEM of the secret key. Write it only to 0600 files; never log it.
    pub fn secret_pem(&self) -> String {
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(self.secret.as_ref());
        pem("PRIVATE KEY", &der)
    }

    /// The key this pair shares with `peer` (X25519, then HSalsa20: crypto_box's `beforenm`).
    /// One scalar multiplication; both ends compute the same key. A peer key of small order
    /// would make it a key everyone knows, so it is refused.
    pub fn shared_with(&self, peer: &PublicKey) -> Result<SharedKey, CryptoError> {
        let key = box_::precompute(&peer.0, &self.secret);
        // libsodium leaves the output untouched (zero, as sodiumoxide allocates it) when the
        // X25519 result is all zero; a real HSalsa20 output is never all zero.
        match key.as_ref().iter().all(|&b| b == 0) {
            true => Err(CryptoError::WeakKey),
            false => Ok(SharedKey(key)),
        }
    }

    /// Opens a sealed box addressed to this key pair.
    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        sealedbox::open(sealed, &self.public.0, &self.secret).map_err(|()| CryptoError::Open)
    }
}

/// Seals `message` to `to`: only the holder of the matching secret key can open it, and the
/// sender stays anonymous (authentication comes from the challenge the handshake echoes).
pub fn seal(message: &[u8], to: &PublicKey) -> Vec<u8> {
    sealedbox::seal(message, &to.0)
}

/// The key two X25519 key pairs share ([`KeyPair::shared_with`]): either end boxes to the other
/// with no further scalar multiplication. Zeroed on drop by sodiumoxide.
#[derive(Clone)]
pub struct SharedKey(box_::PrecomputedKey);

impl fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedKey(hidden)")
    }
}

impl SharedKey {
    /// Boxes `message` (XSalsa20-Poly1305) under a fresh nonce whose first byte is `direction`
    /// and the other 23 random: the key is long-lived, so nonces cannot be counters, and each
    /// direction's byte keeps one end's boxes from being reflected back to it. Output: nonce,
    /// then the box.
    pub fn seal(&self, message: &[u8], direction: u8) -> Vec<u8> {
        let mut nonce = box_::gen_nonce();
        nonce.0[0] = direction;
        let mut out = nonce.0.to_vec();
        out.extend_from_slice(&box_::seal_precomputed(message, &nonce, &self.0));
        out
    }

    /// Opens what [`SharedKey::seal`] made for `direction`.
    pub fn open(&self, sealed: &[u8], direction: u8) -> Result<Vec<u8>, CryptoError> {
        let (nonce, boxed) = sealed
            .split_first_chunk::<{ box_::NONCEBYTES }>()
            .filter(|(nonce, _)| nonce[0] == direction)
            .ok_or(CryptoError::Open)?;
        box_::open_precomputed(boxed, &box_::Nonce(*nonce), &self.0).map_err(|()| CryptoError::Open)
    }
}

/// `n` random bytes from libsodium's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    sodiumoxide::randombytes::randombytes(n)
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(sha256::hash(data).as_ref())
}

/// Hex SHA-256 of everything `reader` yields, read in 64 KiB pieces (for large files).
pub fn sha256_reader(mut reader: impl std::io::Read) -> std::io::Result<String> {
    let mut state = sha256::State::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(hex(state.finalize().as_ref())),
            n => state.update(&buf[..n]),
        }
    }
}

/// HMAC-SHA256 of `message` under `key` (any length, as RFC 2104: GitHub's webhook secrets
/// are arbitrary text).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut state = hmacsha256::State::init(key);
    state.update(message);
    let mut out = [0u8; 32];
    out.copy_from_slice(state.finalize().as_ref());
    out
}

/// Whether `a` and `b` are equal, in time that depends on neither's content nor length: both
/// are hashed first, so even a secret's length does not show.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (sha256::hash(a), sha256::hash(b));
    sodiumoxide::utils::memcmp(a.as_ref(), b.as_ref())
}

/// Whether two equally long MACs are equal, in constant time.
pub fn macs_equal(a: &[u8], b: &[u8]) -> bool {
    sodiumoxide::utils::memcmp(a, b)
}

/// A symmetric session key for secretbox (XSalsa20-Poly1305).
#[derive(Clone)]
pub struct SessionKey(secretbox::Key);

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(hidden)")
    }
}

impl SessionKey {
    pub fn generate() -> SessionKey {
        SessionKey(secretbox::gen_key())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SessionKey> {
        secretbox::Key::from_slice(bytes).map(SessionKey)
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// Encrypts `message` under the nonce built from `direction` and `counter`.
    pub fn seal(&self, message: &[u8], direction: u8, counter: u64) -> Vec<u8> {
        secretbox::seal(message, &nonce(direction, counter), &self.0)
    }

    /// Decrypts and authenticates a box made by [`SessionKey::seal`] with the same nonce inputs.
    pub fn open(&self, sealed: &[u8], direction: u8, counter: u64) -> Result<Vec<u8>, CryptoError> {
        secretbox::open(sealed, &nonce(direction, counter), &self.0).map_err(|()| CryptoError::Open)
    }
}

/// Nonce = direction byte, zeros, then the big-endian counter: never reused under one key
/// because each direction has its own byte and its counter only grows.
fn nonce(direction: u8, counter: u64) -> secretbox::Nonce {
    let mut bytes = [0u8; secretbox::NONCEBYTES];
    bytes[0] = direction;
    bytes[secretbox::NONCEBYTES - 8..].copy_from_slice(&counter.to_be_bytes());
    secretbox::Nonce(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_follows_rfc_4231_and_comparisons_ignore_length() {
        init();
        // RFC 4231, test case 2 (a key shorter than the block), and a key longer than it.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let long =
            hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex(&long), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
        assert!(secrets_equal(b"s3cret", b"s3cret"));
        assert!(!secrets_equal(b"s3cret", b"s3cre"));
        assert!(!secrets_equal(b"", b"x"));
        assert!(macs_equal(&mac, &mac));
        assert!(!macs_equal(&mac, &long));
        assert!(!macs_equal(&mac, &mac[..31]));
    }

    #[test]
    fn keys_round_trip_through_pem() {
        init();
        let pair = KeyPair::generate();
        let public = PublicKey::from_pem(&pair.public.to_pem()).unwrap();
        assert_eq!(public, pair.public);
        let again = KeyPair::from_secret_pem(&pair.secret_pem()).unwrap();
        assert_eq!(again.public, pair.public);
        assert!(pair.public.to_pem().starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEA"));
        assert_eq!(pair.public.fingerprint().len(), 32 * 3 - 1);
    }

    #[test]
    fn bad_pem_is_refused() {
        init();
        let pair = KeyPair::generate();
        for bad in [
            String::new(),
            "garbage".to_string(),
            pair.secret_pem(),
            pair.public.to_pem().replace("MCowBQYDK2VuAyEA", "MCowBQYDK2VwAyEA"),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".to_string(),
        ] {
            assert_eq!(PublicKey::from_pem(&bad), Err(CryptoError::BadPem("public")), "{bad}");
        }
        assert!(KeyPair::from_secret_pem(&pair.public.to_pem()).is_err());
    }

    #[test]
    fn sealed_box_opens_only_for_its_recipient() {
        init();
        let alice = KeyPair::generate();
        let mallory = KeyPair::generate();
        let sealed = seal(b"hello", &alice.public);
        assert_eq!(alice.open_sealed(&sealed).unwrap(), b"hello");
        assert_eq!(mallory.open_sealed(&sealed), Err(CryptoError::Open));
        assert_eq!(alice.open_sealed(&sealed[1..]), Err(CryptoError::Open));
    }

    #[test]
    fn a_shared_key_is_the_same_at_both_ends_and_opens_only_its_direction() {
        init();
        let (minion, master, mallory) =
            (KeyPair::generate(), KeyPair::generate(), KeyPair::generate());
        let at_minion = minion.shared_with(&master.public).unwrap();
        let at_master = master.shared_with(&minion.public).unwrap();
        let sealed = at_minion.seal(b"hello", 0);
        assert_eq!(at_master.open(&sealed, 0).unwrap(), b"hello");
        // Reflected: a box made for one direction does not open as the other.
        assert_eq!(at_master.open(&sealed, 1), Err(CryptoError::Open));
        // Another pair's key, a flipped bit, a truncated nonce.
        let other = mallory.shared_with(&master.public).unwrap();
        assert_eq!(other.open(&sealed, 0), Err(CryptoError::Open));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(at_master.open(&flipped, 0), Err(CryptoError::Open));
        assert_eq!(at_master.open(&sealed[..20], 0), Err(CryptoError::Open));
        // Fresh nonces: the same message twice is two different boxes.
        assert_ne!(at_minion.seal(b"hello", 0), sealed);
    }

    #[test]
    fn small_order_public_keys_share_no_key() {
        init();
        let master = KeyPair::generate();
        // The identity and the point of order 2 (u = 0 and u = 1): X25519 with them is zero.
        for low in [[0u8; 32], {
            let mut k = [0u8; 32];
            k[0] = 1;
            k
        }] {
            let public = PublicKey(box_::PublicKey(low));
            assert_eq!(master.shared_with(&public).unwrap_err(), CryptoError::WeakKey);
        }
    }

    #[test]
    fn streamed_and_one_shot_sha256_agree() {
        init();
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(sha256_reader(&data[..]).unwrap(), sha256_hex(&data));
    }

    #[test]
    fn secretbox_needs_the_same_direction_and_counter() {
        init();
        let key = SessionKey::generate();
        let sealed = key.seal(b"frame", 0, 7);
        assert_eq!(key.open(&sealed, 0, 7).unwrap(), b"frame");
        assert!(key.open(&sealed, 1, 7).is_err());
        assert!(key.open(&sealed, 0, 8).is_err());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(key.open(&flipped, 0, 7).is_err());
    }
}
