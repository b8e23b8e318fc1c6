//! Sans-IO mutual authentication and the encrypted session that follows it.
//!
//! 1. Master → minion, clear: [`Greeting`] with the protocol version and the master's public
//!    key. The minion checks it against `master_finger` or its cached `minion_master.pub`
//!    ([`check_master_key`]).
//! 2. Minion → master: [`Hello`]: the version and the minion's public key in the clear, and a
//!    [`HelloBody`] (id, random challenge) boxed with the key the two static key pairs share
//!    ([`KeyPair::shared_with`]: X25519 then HSalsa20, crypto_box's precomputation).
//! 3. Master → minion: [`HelloReply`] boxed with the same shared key, echoing the challenge and,
//!    when accepted, carrying a fresh session key.
//! 4. Both sides: every frame is a secretbox under the session key, nonce = direction + counter
//!    ([`Session`]). A replayed, reordered, dropped or forged frame fails to open.
//!
//! What each end can rely on:
//! - A hello that opens was made by the holder of the presented key's secret half (or by the
//!   master): the master knows who speaks before it decides anything.
//! - A reply that opens was made by the master (or by the minion itself), and its echoed
//!   challenge ties it to this hello: an older reply, replayed with its old session key (whose
//!   recorded frames would then open again), is refused.
//! - Only the minion (and the master) can open the reply, so only it learns the session key. A
//!   replayed hello gets a fresh session key its replayer cannot read; nothing it sends opens.
//! - The shared key lives across handshakes, so its boxes take random nonces; their first byte
//!   is the direction, so a hello reflected as a reply (or the reverse) does not open.
//!
//! Version 1 sealed each message to the other end's static key from a fresh ephemeral key:
//! three scalar multiplications per handshake at each end. Version 2 computes the shared key
//! once per pair, one multiplication at each end, and the master keeps the keys of accepted
//! minions in a bounded [`KeyCache`], so a known minion reconnecting costs it none; an unknown
//! or pending key costs one and is not kept. What changed besides: the minion's public key
//! travels in the clear (the id stays boxed; Salt sends both in the clear), and a thief of a
//! minion's secret key can now also pose as the master to that minion, not only as the minion
//! to the master. Neither version has forward secrecy: the master's or the minion's secret key
//! opens recorded replies and so their session keys. A peer of the other version is refused by
//! name ([`HandshakeError::Version`]): the minion on the greeting, the master on the hello.

use crate::crypto::{self, CryptoError, KeyPair, PublicKey, SessionKey, SharedKey};
use crate::encoding::{base64, hex, unbase64, unhex};
use crate::id::{validate_id, IdError};
use crate::proto::{AuthStatus, Greeting, Hello, HelloBody, HelloReply, PROTOCOL_VERSION};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

const CHALLENGE_BYTES: usize = 32;

/// Why a handshake or session frame was refused. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A box did not open: wrong key, forgery, replay or reordering.
    Crypto(CryptoError),
    /// The payload opened (or was clear) but is not the expected message.
    Malformed(String),
    /// The peer speaks another protocol version.
    Version { ours: u32, theirs: u32 },
    /// The minion id is unacceptable; nothing may be done with it.
    BadId(IdError),
    /// The reply did not echo our challenge: not the master we sealed the hello to.
    ChallengeMismatch,
    /// The master's key differs from the pinned or cached one.
    MasterKeyMismatch { expected: String, presented: String },
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Crypto(e) => write!(f, "{e}"),
            HandshakeError::Malformed(why) => write!(f, "malformed message: {why}"),
            HandshakeError::Version { ours, theirs } => {
                write!(f, "peer speaks protocol version {theirs}, this end speaks {ours}")
            }
            HandshakeError::BadId(e) => write!(f, "{e}"),
            HandshakeError::ChallengeMismatch => f.write_str("reply did not echo our challenge"),
            HandshakeError::MasterKeyMismatch { expected, presented } => write!(
                f,
                "master key fingerprint {presented} does not match the expected {expected}; \
                 refusing to talk to this master (remove minion_master.pub if the master was re-keyed)"
            ),
        }
    }
}

impl std::error::Error for HandshakeError {}

impl From<CryptoError> for HandshakeError {
    fn from(e: CryptoError) -> Self {
        HandshakeError::Crypto(e)
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, HandshakeError> {
    serde_json::from_slice(payload).map_err(|e| HandshakeError::Malformed(e.to_string()))
}

/// Parses a plaintext from [`Session::open_plain`] as [`Session::open`] does.
pub fn decode_message<T: DeserializeOwned>(plain: &[u8]) -> Result<T, HandshakeError> {
    decode(plain)
}

/// A session message as [`Session::seal`] serialises it.
pub fn encode_message<T: Serialize>(msg: &T) -> Vec<u8> {
    encode(msg)
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("protocol messages always serialise")
}

fn check_version(theirs: u32) -> Result<(), HandshakeError> {
    match theirs {
        PROTOCOL_VERSION => Ok(()),
        _ => Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs }),
    }
}

/// The direction byte (first of the nonce, see [`SharedKey::seal`]) of a hello's box.
pub const HELLO_BOX: u8 = 0;
/// The direction byte of a reply's box.
pub const REPLY_BOX: u8 = 1;

// ---------------------------------------------------------------------------------------------
// Master side

/// The master's clear greeting payload.
pub fn greeting(master: &PublicKey) -> Vec<u8> {
    encode(&Greeting { version: PROTOCOL_VERSION, master_pub: master.to_pem() })
}

/// A hello the master opened and validated.
#[derive(Debug, Clone)]
pub struct HelloIn {
    pub id: String,
    pub public: PublicKey,
    challenge: Vec<u8>,
    /// The key `public` shares with the master: the reply is boxed with it.
    shared: SharedKey,
}

/// The shared keys of accepted minions, keyed by their exact public key bytes, so that a
/// known minion's hello costs the master no scalar multiplication. Bounded: two generations
/// of at most `generation` keys each; when the young one is full it becomes the old one and
/// the old one is dropped, and a key found in the old one moves back to the young one. So it
/// holds at most twice `generation` keys, and the ones in use survive a flood of others.
/// Only [`seal_reply`] with `Accepted` adds a key: an unknown or pending key is computed for
/// its hello and forgotten.
#[derive(Debug)]
pub struct KeyCache {
    generation: usize,
    young: HashMap<[u8; 32], SharedKey>,
    old: HashMap<[u8; 32], SharedKey>,
}

impl KeyCache {
    /// A cache of at most `2 * generation` keys (`generation` at least 1).
    pub fn new(generation: usize) -> KeyCache {
        KeyCache { generation: generation.max(1), young: HashMap::new(), old: HashMap::new() }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `public`'s shared key is kept.
    pub fn contains(&self, public: &PublicKey) -> bool {
        self.young.contains_key(public.as_bytes()) || self.old.contains_key(public.as_bytes())
    }

    fn get(&mut self, public: &PublicKey) -> Option<SharedKey> {
        if let Some(key) = self.young.get(public.as_bytes()) {
            return Some(key.clone());
        }
        let key = self.old.remove(public.as_bytes())?;
        self.insert(public, key.clone());
        Some(key)
    }

    /// Keeps `key` for `public` if there is room without evicting anything (the keys of the
    /// accepted minions, computed off the loop at start: a master restarted under 10,000
    /// reconnecting minions then does no scalar multiplication for them).
    pub fn warm(&mut self, public: &PublicKey, key: SharedKey) {
        if self.young.len() < self.generation && !self.contains(public) {
            self.young.insert(*public.as_bytes(), key);
        }
    }

    /// How many keys [`KeyCache::warm`] can still take.
    pub fn room(&self) -> usize {
        self.generation - self.young.len()
    }

    fn insert(&mut self, public: &PublicKey, key: SharedKey) {
        if self.young.len() >= self.generation && !self.young.contains_key(public.as_bytes()) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(*public.as_bytes(), key);
    }
}

impl Default for KeyCache {
    /// At most 65,536 keys (a few MiB at worst); past that, a reconnecting minion costs one
    /// multiplication again.
    fn default() -> KeyCache {
        KeyCache::new(32_768)
    }
}

/// Opens and validates a minion's hello; the id is checked before the caller can touch a file.
/// The shared key comes from `cache` or costs one scalar multiplication.
pub fn open_hello(
    master: &KeyPair,
    cache: &mut KeyCache,
    payload: &[u8],
) -> Result<HelloIn, HandshakeError> {
    let (public, boxed) = match parse_hello(payload) {
        Ok(parsed) => parsed,
        Err(e) => return Err(older_hello(master, payload).unwrap_or(e)),
    };
    let shared = match cache.get(&public) {
        Some(shared) => shared,
        None => master.shared_with(&public)?,
    };
    let (id, challenge) = parse_hello_body(&shared.open(&boxed, HELLO_BOX)?)?;
    Ok(HelloIn { id, public, challenge, shared })
}

/// A version 1 hello is a sealed box, not JSON: opened (one scalar multiplication, what any
/// unknown key costs) only to name its version in the refusal. JSON that is no hello is not
/// tried.
fn older_hello(master: &KeyPair, payload: &[u8]) -> Option<HandshakeError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok() {
        return None;
    }
    let plain = master.open_sealed(payload).ok()?;
    let theirs = serde_json::from_slice::<Versioned>(&plain).ok()?.version;
    check_version(theirs).err()
}

/// Reads a hello's clear part: version, public key and the box. All of it is the peer's;
/// split from [`open_hello`] so the fuzzer reaches it directly.
pub fn parse_hello(payload: &[u8]) -> Result<(PublicKey, Vec<u8>), HandshakeError> {
    let hello: Hello = decode(payload)?;
    check_version(hello.version)?;
    let public = PublicKey::from_pem(&hello.public)?;
    let boxed = unbase64(&hello.boxed)
        .ok_or_else(|| HandshakeError::Malformed("hello box is not base64".into()))?;
    Ok((public, boxed))
}

/// Validates an opened hello body: the id (checked before anything can use it) and the
/// challenge. Anyone can box any bytes with a key pair of their own, so this text is entirely
/// the peer's; split from [`open_hello`] for the fuzzer.
pub fn parse_hello_body(plaintext: &[u8]) -> Result<(String, Vec<u8>), HandshakeError> {
    let body: HelloBody = decode(plaintext)?;
    validate_id(&body.id).map_err(HandshakeError::BadId)?;
    let challenge = unhex(&body.challenge)
        .filter(|c| c.len() == CHALLENGE_BYTES)
        .ok_or_else(|| HandshakeError::Malformed("challenge is not 32 hex bytes".into()))?;
    Ok((body.id, challenge))
}

/// Boxes the master's verdict to the minion; with `Accepted`, also returns the master's end of
/// the new session and keeps the minion's shared key in `cache` for its next hello.
pub fn seal_reply(
    cache: &mut KeyCache,
    hello: &HelloIn,
    status: AuthStatus,
) -> (Vec<u8>, Option<Session>) {
    let key = (status == AuthStatus::Accepted).then(SessionKey::generate);
    let reply = HelloReply {
        status,
        challenge: hex(&hello.challenge),
        session_key: key.as_ref().map(|k| hex(k.as_bytes())),
    };
    if key.is_some() {
        cache.insert(&hello.public, hello.shared.clone());
    }
    let sealed = hello.shared.seal(&encode(&reply), REPLY_BOX);
    (sealed, key.map(|k| Session::new(k, Role::Master)))
}

// ---------------------------------------------------------------------------------------------
// Minion side

/// Reads the master's greeting and returns the key it presents (not yet trusted).
pub fn parse_greeting(payload: &[u8]) -> Result<PublicKey, HandshakeError> {
    let greeting: Greeting = decode(payload)?;
    check_version(greeting.version)?;
    Ok(PublicKey::from_pem(&greeting.master_pub)?)
}

/// How the minion came to trust the master's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterTrust {
    /// It matches `master_finger` or the cached key.
    Known,
    /// Nothing was pinned or cached: trust on first use; the caller caches it.
    FirstUse,
}

/// Decides whether `presented` is the master we expect: the pinned fingerprint wins, then the
/// cached key; with neither, trust on first use (as Salt caches `minion_master.pub`).
pub fn check_master_key(
    presented: &PublicKey,
    cached: Option<&PublicKey>,
    finger: Option<&str>,
) -> Result<MasterTrust, HandshakeError> {
    let mismatch = |expected: String| HandshakeError::MasterKeyMismatch {
        expected,
        presented: presented.fingerprint(),
    };
    if let Some(finger) = finger {
        return match presented.fingerprint().eq_ignore_ascii_case(finger.trim()) {
            true => Ok(MasterTrust::Known),
            false => Err(mismatch(finger.trim().to_string())),
        };
    }
    match cached {
        Some(cached) if cached == presented => Ok(MasterTrust::Known),
        Some(cached) => Err(mismatch(cached.fingerprint())),
        None => Ok(MasterTrust::FirstUse),
    }
}

/// A minion's hello in flight: what it needs to check the reply.
#[derive(Debug)]
pub struct MinionHandshake {
    challenge: Vec<u8>,
    shared: SharedKey,
}

/// What the master said about this minion's key.
#[derive(Debug)]
pub enum Verdict {
    Accepted(Session),
    Pending,
    Rejected,
    Denied,
    Full,
}

impl MinionHandshake {
    /// Builds a hello for `id` to the (already trusted) master key. Refused only for a master
    /// key of small order, which no real master has.
    pub fn start(
        id: &str,
        keys: &KeyPair,
        master: &PublicKey,
    ) -> Result<(MinionHandshake, Vec<u8>), HandshakeError> {
        Ok(MinionHandshake::start_shared(id, &keys.public, keys.shared_with(master)?))
    }

    /// [`MinionHandshake::start`] with the key this minion (`public`) shares with the master
    /// already computed (it depends on nothing but the two key pairs).
    pub fn start_shared(
        id: &str,
        public: &PublicKey,
        shared: SharedKey,
    ) -> (MinionHandshake, Vec<u8>) {
        let challenge = crypto::random_bytes(CHALLENGE_BYTES);
        let body = HelloBody { id: id.to_string(), challenge: hex(&challenge) };
        let hello = Hello {
            version: PROTOCOL_VERSION,
            public: public.to_pem(),
            boxed: base64(&shared.seal(&encode(&body), HELLO_BOX)),
        };
        (MinionHandshake { challenge, shared }, encode(&hello))
    }

    /// Opens a boxed reply and checks it echoes our challenge.
    pub fn on_reply(&self, payload: &[u8]) -> Result<Verdict, HandshakeError> {
        self.parse_reply(&self.shared.open(payload, REPLY_BOX)?)
    }

    /// Checks an opened reply. Anyone holding the minion's key could box one, so this text is
    /// the peer's up to the challenge; split from [`Self::on_reply`] for the fuzzer.
    pub fn parse_reply(&self, plaintext: &[u8]) -> Result<Verdict, HandshakeError> {
        let reply: HelloReply = decode(plaintext)?;
        if unhex(&reply.challenge).as_deref() != Some(&self.challenge[..]) {
            return Err(HandshakeError::ChallengeMismatch);
        }
        Ok(match reply.status {
            AuthStatus::Accepted => {
                let key = reply
                    .session_key
                    .as_deref()
                    .and_then(unhex)
                    .and_then(|bytes| SessionKey::from_bytes(&bytes))
                    .ok_or_else(|| {
                        HandshakeError::Malformed("missing or bad session key".into())
                    })?;
                Verdict::Accepted(Session::new(key, Role::Minion))
            }
            AuthStatus::Pending => Verdict::Pending,
            AuthStatus::Rejected => Verdict::Rejected,
            AuthStatus::Denied => Verdict::Denied,
            AuthStatus::Full => Verdict::Full,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// Which end of a session this is; each direction has its own nonce space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Minion,
}

const TO_MASTER: u8 = 0;
const TO_MINION: u8 = 1;

/// One end of an encrypted session: a key and two strictly increasing counters.
#[derive(Debug)]
pub struct Session {
    key: SessionKey,
    role: Role,
    sent: u64,
    received: u64,
}

impl Session {
    fn new(key: SessionKey, role: Role) -> Session {
        Session { key, role, sent: 0, received: 0 }
    }

    fn directions(&self) -> (u8, u8) {
        match self.role {
            Role::Master => (TO_MINION, TO_MASTER),
            Role::Minion => (TO_MASTER, TO_MINION),
        }
    }

    /// Serialises and encrypts the next outgoing message.
    pub fn seal<T: Serialize>(&mut self, msg: &T) -> Result<Vec<u8>, HandshakeError> {
        self.seal_encoded(&encode(msg))
    }

    /// Encrypts a message already serialised with [`encode_message`] (one job's publish,
    /// serialised once for every minion it goes to).
    pub fn seal_encoded(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let counter = self.sent;
        self.sent = counter.checked_add(1).ok_or(CryptoError::NonceExhausted)?;
        Ok(self.key.seal(plaintext, self.directions().0, counter))
    }

    /// Decrypts the next incoming frame and parses it. Any failure ends the session.
    pub fn open<T: DeserializeOwned>(&mut self, payload: &[u8]) -> Result<T, HandshakeError> {
        decode(&self.open_plain(payload)?)
    }

    /// Decrypts the next incoming frame, for a caller that reads the plaintext itself
    /// (borrowing from it), with [`decode_message`] for what it does not read.
    pub fn open_plain(&mut self, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let counter = self.received;
        self.received = counter.checked_add(1).ok_or(CryptoError::NonceExhausted)?;
        Ok(self.key.open(payload, self.directions().1, counter)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ToMaster, ToMinion};

    struct Pair {
        master: KeyPair,
        minion: KeyPair,
    }

    fn pair() -> Pair {
        crypto::init();
        Pair { master: KeyPair::generate(), minion: KeyPair::generate() }
    }

    fn start(id: &str, keys: &KeyPair, master: &PublicKey) -> (MinionHandshake, Vec<u8>) {
        MinionHandshake::start(id, keys, master).unwrap()
    }

    /// Runs the whole handshake in memory and returns (master, minion) sessions.
    fn handshake(p: &Pair) -> (Session, Session) {
        let presented = parse_greeting(&greeting(&p.master.public)).unwrap();
        assert_eq!(check_master_key(&presented, None, None), Ok(MasterTrust::FirstUse));
        let (hs, hello) = start("minion1", &p.minion, &presented);
        let hello_in = open_hello(&p.master, &mut KeyCache::new(8), &hello).unwrap();
        assert_eq!(hello_in.id, "minion1");
        assert_eq!(hello_in.public, p.minion.public);
        let (reply, master_session) =
            seal_reply(&mut KeyCache::new(8), &hello_in, AuthStatus::Accepted);
        match hs.on_reply(&reply).unwrap() {
            Verdict::Accepted(minion_session) => (master_session.unwrap(), minion_session),
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn handshake_then_session_both_ways() {
        let p = pair();
        let (mut master, mut minion) = handshake(&p);
        for seq in 0..3 {
            let frame = minion.seal(&ToMaster::Ping { seq }).unwrap();
            assert_eq!(master.open::<ToMaster>(&frame).unwrap(), ToMaster::Ping { seq });
            let frame = master.seal(&ToMinion::Pong { seq }).unwrap();
            assert_eq!(minion.open::<ToMinion>(&frame).unwrap(), ToMinion::Pong { seq });
        }
    }

    #[test]
    fn replayed_reordered_flipped_and_reflected_frames_fail() {
        let p = pair();
        // Replayed: the same frame twice.
        let (mut master, mut minion) = handshake(&p);
        let first = minion.seal(&ToMaster::Ping { seq: 1 }).unwrap();
        master.open::<ToMaster>(&first).unwrap();
        assert!(master.open::<ToMaster>(&first).is_err());
        // Reordered: the second frame where the first is expected.
        let (mut master, mut minion) = handshake(&p);
        let _first = minion.seal(&ToMaster::Ping { seq: 1 }).unwrap();
        let second = minion.seal(&ToMaster::Ping { seq: 2 }).unwrap();
        assert!(master.open::<ToMaster>(&second).is_err());
        // Bit-flipped.
        let (mut master, mut minion) = handshake(&p);
        let mut flipped = minion.seal(&ToMaster::Ping { seq: 1 }).unwrap();
        flipped[0] ^= 0x80;
        assert!(matches!(master.open::<ToMaster>(&flipped), Err(HandshakeError::Crypto(_))));
        // Reflected: the master's own frame sent back to it.
        let (mut master, _) = handshake(&p);
        let own = master.seal(&ToMinion::Ping { seq: 0 }).unwrap();
        assert!(master.open::<ToMaster>(&own).is_err());
    }

    #[test]
    fn a_frame_from_another_session_fails() {
        let p = pair();
        let (mut master, _) = handshake(&p);
        let (_, mut other) = handshake(&p);
        let frame = other.seal(&ToMaster::Ping { seq: 1 }).unwrap();
        assert!(master.open::<ToMaster>(&frame).is_err());
    }

    /// A hello as a hostile client makes it: any version, id and challenge, boxed with the
    /// key `from` shares with the master.
    fn boxed_hello(p: &Pair, from: &KeyPair, version: u32, id: &str, challenge: &str) -> Vec<u8> {
        let body = HelloBody { id: id.into(), challenge: challenge.into() };
        let shared = from.shared_with(&p.master.public).unwrap();
        let hello = Hello {
            version,
            public: from.public.to_pem(),
            boxed: base64(&shared.seal(&encode(&body), HELLO_BOX)),
        };
        encode(&hello)
    }

    fn open(p: &Pair, hello: &[u8]) -> Result<HelloIn, HandshakeError> {
        open_hello(&p.master, &mut KeyCache::new(8), hello)
    }

    #[test]
    fn hello_boxed_for_another_master_or_garbage_is_refused() {
        let p = pair();
        let impostor = KeyPair::generate();
        let (_, hello) = start("minion1", &p.minion, &impostor.public);
        assert_eq!(open(&p, &hello).unwrap_err(), HandshakeError::Crypto(CryptoError::Open));
        assert!(open(&p, b"").is_err());
        assert!(open(&p, &[0u8; 200]).is_err());
        let junk = encode(&serde_json::json!({"not": "a hello"}));
        assert!(matches!(open(&p, &junk), Err(HandshakeError::Malformed(_))));
        let not_base64 = encode(&Hello {
            version: PROTOCOL_VERSION,
            public: p.minion.public.to_pem(),
            boxed: "!!".into(),
        });
        assert!(matches!(open(&p, &not_base64), Err(HandshakeError::Malformed(_))));
    }

    #[test]
    fn a_hello_cannot_claim_a_key_its_sender_does_not_hold() {
        // The attacker boxes with its own key but presents the victim's: the master computes
        // the victim's shared key, and the box does not open.
        let p = pair();
        let attacker = KeyPair::generate();
        let mut hello: Hello = serde_json::from_slice(&boxed_hello(
            &p,
            &attacker,
            PROTOCOL_VERSION,
            "victim",
            &hex(&[1; 32]),
        ))
        .unwrap();
        hello.public = p.minion.public.to_pem();
        let err = open(&p, &encode(&hello)).unwrap_err();
        assert_eq!(err, HandshakeError::Crypto(CryptoError::Open));
        // A key of small order shares a key everyone knows: refused before any box is tried.
        let low = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END PUBLIC KEY-----\n";
        hello.public = low.into();
        let err = open(&p, &encode(&hello)).unwrap_err();
        assert_eq!(err, HandshakeError::Crypto(CryptoError::WeakKey));
    }

    #[test]
    fn hostile_ids_versions_and_challenges_are_refused() {
        let p = pair();
        let good = hex(&[1u8; 32]);
        for id in ["../../etc/passwd", "a/b", "a\\b", "nul\0id", "..", ".", "", "line\nbreak"] {
            let err = open(&p, &boxed_hello(&p, &p.minion, PROTOCOL_VERSION, id, &good));
            assert!(matches!(err, Err(HandshakeError::BadId(_))), "{id:?}: {err:?}");
        }
        let err = open(&p, &boxed_hello(&p, &p.minion, 99, "m", &good));
        assert_eq!(
            err.unwrap_err(),
            HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: 99 }
        );
        for challenge in ["", "abcd", "zz"] {
            let err = open(&p, &boxed_hello(&p, &p.minion, PROTOCOL_VERSION, "m", challenge));
            assert!(matches!(err, Err(HandshakeError::Malformed(_))), "{challenge}");
        }
    }

    /// Version 1's hello, as a version 1 minion sealed it: JSON with the version inside a box
    /// sealed to the master's key from an ephemeral one.
    fn v1_hello(p: &Pair) -> Vec<u8> {
        let hello = serde_json::json!({
            "version": 1,
            "id": "old-minion",
            "public": p.minion.public.to_pem(),
            "challenge": hex(&[1u8; 32]),
        });
        crypto::seal(&encode(&hello), &p.master.public)
    }

    #[test]
    fn a_version_1_minion_is_refused_by_name_at_both_steps() {
        let p = pair();
        // Version 1 read the greeting's `version` and refused any but its own: ours says 2.
        #[derive(Deserialize)]
        struct V1Greeting {
            version: u32,
            master_pub: String,
        }
        let seen: V1Greeting = serde_json::from_slice(&greeting(&p.master.public)).unwrap();
        assert_eq!((seen.version, seen.master_pub), (2, p.master.public.to_pem()));
        // A version 1 hello sent anyway (it ignored the greeting) is refused by its version.
        let err = open(&p, &v1_hello(&p)).unwrap_err();
        assert_eq!(err, HandshakeError::Version { ours: 2, theirs: 1 });
        assert_eq!(err.to_string(), "peer speaks protocol version 1, this end speaks 2");
    }

    #[test]
    fn a_version_1_master_is_refused_by_name_on_its_greeting() {
        let p = pair();
        let v1 = serde_json::json!({"version": 1, "master_pub": p.master.public.to_pem()});
        let err = parse_greeting(&encode(&v1)).unwrap_err();
        assert_eq!(err, HandshakeError::Version { ours: 2, theirs: 1 });
    }

    #[test]
    fn minion_refuses_replies_that_do_not_echo_its_challenge() {
        let p = pair();
        let mut cache = KeyCache::new(8);
        let (hs, hello) = start("minion1", &p.minion, &p.master.public);
        let hello_in = open(&p, &hello).unwrap();
        // A reply to an older hello (e.g. replayed by an attacker) carries another challenge.
        let (_, old_hello) = start("minion1", &p.minion, &p.master.public);
        let old_in = open(&p, &old_hello).unwrap();
        let (stale, _) = seal_reply(&mut cache, &old_in, AuthStatus::Accepted);
        assert_eq!(hs.on_reply(&stale).unwrap_err(), HandshakeError::ChallengeMismatch);
        // Someone else can box to the minion only with their own key: it does not open.
        let forger = KeyPair::generate();
        let forged = HelloReply {
            status: AuthStatus::Accepted,
            challenge: hex(&hello_in.challenge),
            session_key: Some(hex(&[0u8; 32])),
        };
        let forged =
            forger.shared_with(&p.minion.public).unwrap().seal(&encode(&forged), REPLY_BOX);
        assert_eq!(hs.on_reply(&forged).unwrap_err(), HandshakeError::Crypto(CryptoError::Open));
        // The minion's own hello box reflected as a reply: the direction byte differs.
        let sent: Hello = serde_json::from_slice(&hello).unwrap();
        let reflected = unbase64(&sent.boxed).unwrap();
        assert_eq!(hs.on_reply(&reflected).unwrap_err(), HandshakeError::Crypto(CryptoError::Open));
        // Another minion's reply does not open for this one.
        let other = KeyPair::generate();
        let (other_hs, _) = start("minion2", &other, &p.master.public);
        let (genuine, _) = seal_reply(&mut cache, &hello_in, AuthStatus::Accepted);
        assert!(other_hs.on_reply(&genuine).is_err());
        // The genuine reply in each status.
        for (status, want) in [
            (AuthStatus::Pending, "Pending"),
            (AuthStatus::Rejected, "Rejected"),
            (AuthStatus::Denied, "Denied"),
            (AuthStatus::Full, "Full"),
        ] {
            let (reply, session) = seal_reply(&mut cache, &hello_in, status);
            assert!(session.is_none());
            let verdict = hs.on_reply(&reply).unwrap();
            assert_eq!(format!("{verdict:?}"), want);
        }
    }

    #[test]
    fn a_replayed_hello_gets_a_fresh_session_key_only_the_minion_can_read() {
        let p = pair();
        let mut cache = KeyCache::new(8);
        let (hs, hello) = start("minion1", &p.minion, &p.master.public);
        let first = open_hello(&p.master, &mut cache, &hello).unwrap();
        let (_, mut session) = seal_reply(&mut cache, &first, AuthStatus::Accepted);
        // The replayer sends the same bytes again: the master answers with a new session key.
        let again = open_hello(&p.master, &mut cache, &hello).unwrap();
        let (reply, replayed) = seal_reply(&mut cache, &again, AuthStatus::Accepted);
        let frame = replayed.unwrap().seal(&ToMinion::Ping { seq: 0 }).unwrap();
        assert!(session.as_mut().unwrap().open::<ToMinion>(&frame).is_err(), "same session key");
        // Without the minion's (or master's) secret key the reply does not open: a stranger's
        // shared key with the master is another key.
        let stranger = KeyPair::generate();
        let theirs = stranger.shared_with(&p.master.public).unwrap();
        assert_eq!(theirs.open(&reply, REPLY_BOX), Err(CryptoError::Open));
        assert!(matches!(hs.on_reply(&reply), Ok(Verdict::Accepted(_))));
    }

    #[test]
    fn the_cache_keeps_accepted_keys_only_and_stays_bounded() {
        let p = pair();
        let mut cache = KeyCache::new(2);
        let hello_of = |keys: &KeyPair| start("m", keys, &p.master.public).1;
        // Pending: the key was computed for the hello and is not kept.
        let pending = open_hello(&p.master, &mut cache, &hello_of(&p.minion)).unwrap();
        seal_reply(&mut cache, &pending, AuthStatus::Pending);
        assert!(cache.is_empty());
        // Accepted: kept under the exact key bytes, and used for the next hello.
        let accepted = open_hello(&p.master, &mut cache, &hello_of(&p.minion)).unwrap();
        seal_reply(&mut cache, &accepted, AuthStatus::Accepted);
        assert!(cache.contains(&p.minion.public));
        let wrong = KeyPair::generate().shared_with(&p.master.public).unwrap();
        cache.insert(&p.minion.public, wrong);
        let err = open_hello(&p.master, &mut cache, &hello_of(&p.minion)).unwrap_err();
        assert_eq!(err, HandshakeError::Crypto(CryptoError::Open), "the cache was not used");
        // A flood of accepted keys: never more than two generations; a key in use between the
        // newcomers stays.
        let mut cache = KeyCache::new(2);
        let keep = open_hello(&p.master, &mut cache, &hello_of(&p.minion)).unwrap();
        seal_reply(&mut cache, &keep, AuthStatus::Accepted);
        for _ in 0..10 {
            let newcomer = open_hello(&p.master, &mut cache, &hello_of(&KeyPair::generate()));
            seal_reply(&mut cache, &newcomer.unwrap(), AuthStatus::Accepted);
            assert!(cache.len() <= 4, "{} keys", cache.len());
            open_hello(&p.master, &mut cache, &hello_of(&p.minion)).unwrap();
            assert!(cache.contains(&p.minion.public));
        }
    }

    #[test]
    fn warming_fills_the_room_left_and_never_evicts() {
        let p = pair();
        let mut cache = KeyCache::new(2);
        let keys: Vec<KeyPair> = (0..3).map(|_| KeyPair::generate()).collect();
        for k in &keys {
            cache.warm(&k.public, p.master.shared_with(&k.public).unwrap());
        }
        assert_eq!((cache.len(), cache.room()), (2, 0));
        assert!(cache.contains(&keys[0].public) && !cache.contains(&keys[2].public));
        // A warmed key opens its minion's hello.
        let hello = start("m", &keys[0], &p.master.public).1;
        open_hello(&p.master, &mut cache, &hello).unwrap();
    }

    #[test]
    fn master_key_pinning_and_caching() {
        let p = pair();
        let other = KeyPair::generate();
        let finger = p.master.public.fingerprint();
        let key = &p.master.public;
        assert_eq!(check_master_key(key, None, Some(&finger)), Ok(MasterTrust::Known));
        assert_eq!(
            check_master_key(key, None, Some(&finger.to_uppercase())),
            Ok(MasterTrust::Known)
        );
        assert_eq!(check_master_key(key, Some(key), None), Ok(MasterTrust::Known));
        assert!(matches!(
            check_master_key(key, Some(&other.public), None),
            Err(HandshakeError::MasterKeyMismatch { .. })
        ));
        // A pin wins over a cache that agrees with the impostor.
        assert!(check_master_key(&other.public, Some(&other.public), Some(&finger)).is_err());
        assert!(parse_greeting(b"{}").is_err());
        assert!(parse_greeting(b"\x00\x01").is_err());
    }
}
