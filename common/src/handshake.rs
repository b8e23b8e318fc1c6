//! Sans-IO mutual authentication and the encrypted session that follows it.
//!
//! 1. Master → minion, clear: [`Greeting`] with the master's public key. The minion checks it
//!    against `master_finger` or its cached `minion_master.pub` ([`check_master_key`]).
//! 2. Minion → master: [`Hello`] (id, public key, random challenge) sealed to the master key.
//! 3. Master → minion: [`HelloReply`] sealed to the presented key (equal to the stored key when
//!    accepted), echoing the challenge and, when accepted, carrying a fresh session key. Only the
//!    real master can echo the challenge; only the real minion can open the reply.
//! 4. Both sides: every frame is a secretbox under the session key, nonce = direction + counter
//!    ([`Session`]). A replayed, reordered, dropped or forged frame fails to open.

use crate::crypto::{self, CryptoError, KeyPair, PublicKey, SessionKey};
use crate::encoding::{hex, unhex};
use crate::id::{validate_id, IdError};
use crate::proto::{AuthStatus, Greeting, Hello, HelloReply, PROTOCOL_VERSION};
use serde::{de::DeserializeOwned, Serialize};
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
                write!(f, "protocol version {theirs} is not ours ({ours})")
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

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).expect("protocol messages always serialise")
}

fn check_version(theirs: u32) -> Result<(), HandshakeError> {
    match theirs {
        PROTOCOL_VERSION => Ok(()),
        _ => Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs }),
    }
}

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
}

/// Opens and validates a minion's hello; the id is checked before the caller can touch a file.
pub fn open_hello(master: &KeyPair, payload: &[u8]) -> Result<HelloIn, HandshakeError> {
    parse_hello(&master.open_sealed(payload)?)
}

/// Validates an opened hello. Anyone can seal any bytes to the master's public key, so this
/// text is entirely the peer's; split from [`open_hello`] so the fuzzer reaches it directly.
pub fn parse_hello(plaintext: &[u8]) -> Result<HelloIn, HandshakeError> {
    let hello: Hello = decode(plaintext)?;
    check_version(hello.version)?;
    validate_id(&hello.id).map_err(HandshakeError::BadId)?;
    let public = PublicKey::from_pem(&hello.public)?;
    let challenge = unhex(&hello.challenge)
        .filter(|c| c.len() == CHALLENGE_BYTES)
        .ok_or_else(|| HandshakeError::Malformed("challenge is not 32 hex bytes".into()))?;
    Ok(HelloIn { id: hello.id, public, challenge })
}

/// Seals the master's verdict to the minion; with `Accepted`, also returns the master's end of
/// the new session.
pub fn seal_reply(hello: &HelloIn, status: AuthStatus) -> (Vec<u8>, Option<Session>) {
    let key = (status == AuthStatus::Accepted).then(SessionKey::generate);
    let reply = HelloReply {
        status,
        challenge: hex(&hello.challenge),
        session_key: key.as_ref().map(|k| hex(k.as_bytes())),
    };
    let sealed = crypto::seal(&encode(&reply), &hello.public);
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
    /// Builds a hello for `id` sealed to the (already trusted) master key.
    pub fn start(id: &str, keys: &KeyPair, master: &PublicKey) -> (MinionHandshake, Vec<u8>) {
        let challenge = crypto::random_bytes(CHALLENGE_BYTES);
        let hello = Hello {
            version: PROTOCOL_VERSION,
            id: id.to_string(),
            public: keys.public.to_pem(),
            challenge: hex(&challenge),
        };
        (MinionHandshake { challenge }, crypto::seal(&encode(&hello), master))
    }

    /// Opens a sealed reply and checks it echoes our challenge.
    pub fn on_reply(&self, keys: &KeyPair, payload: &[u8]) -> Result<Verdict, HandshakeError> {
        self.parse_reply(&keys.open_sealed(payload)?)
    }

    /// Checks an opened reply. Anyone can seal to the minion's public key, so this text is
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
        let counter = self.sent;
        self.sent = counter.checked_add(1).ok_or(CryptoError::NonceExhausted)?;
        Ok(self.key.seal(&encode(msg), self.directions().0, counter))
    }

    /// Decrypts the next incoming frame and parses it. Any failure ends the session.
    pub fn open<T: DeserializeOwned>(&mut self, payload: &[u8]) -> Result<T, HandshakeError> {
        let counter = self.received;
        self.received = counter.checked_add(1).ok_or(CryptoError::NonceExhausted)?;
        decode(&self.key.open(payload, self.directions().1, counter)?)
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

    /// Runs the whole handshake in memory and returns (master, minion) sessions.
    fn handshake(p: &Pair) -> (Session, Session) {
        let presented = parse_greeting(&greeting(&p.master.public)).unwrap();
        assert_eq!(check_master_key(&presented, None, None), Ok(MasterTrust::FirstUse));
        let (hs, hello) = MinionHandshake::start("minion1", &p.minion, &presented);
        let hello_in = open_hello(&p.master, &hello).unwrap();
        assert_eq!(hello_in.id, "minion1");
        assert_eq!(hello_in.public, p.minion.public);
        let (reply, master_session) = seal_reply(&hello_in, AuthStatus::Accepted);
        match hs.on_reply(&p.minion, &reply).unwrap() {
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

    #[test]
    fn hello_sealed_to_the_wrong_key_or_garbage_is_refused() {
        let p = pair();
        let impostor = KeyPair::generate();
        let (_, hello) = MinionHandshake::start("minion1", &p.minion, &impostor.public);
        assert!(matches!(open_hello(&p.master, &hello), Err(HandshakeError::Crypto(_))));
        assert!(open_hello(&p.master, b"").is_err());
        assert!(open_hello(&p.master, &[0u8; 200]).is_err());
        // Sealed correctly but not a hello.
        let junk = crypto::seal(b"{\"not\":\"a hello\"}", &p.master.public);
        assert!(matches!(open_hello(&p.master, &junk), Err(HandshakeError::Malformed(_))));
        let not_json = crypto::seal(b"\xff\xfe", &p.master.public);
        assert!(matches!(open_hello(&p.master, &not_json), Err(HandshakeError::Malformed(_))));
    }

    fn sealed_hello(p: &Pair, id: &str, version: u32, challenge: &str) -> Vec<u8> {
        let hello = Hello {
            version,
            id: id.into(),
            public: p.minion.public.to_pem(),
            challenge: challenge.into(),
        };
        crypto::seal(&encode(&hello), &p.master.public)
    }

    #[test]
    fn hostile_ids_versions_and_challenges_are_refused() {
        let p = pair();
        let good = hex(&[1u8; 32]);
        for id in ["../../etc/passwd", "a/b", "a\\b", "nul\0id", "..", ".", "", "line\nbreak"] {
            let err = open_hello(&p.master, &sealed_hello(&p, id, PROTOCOL_VERSION, &good));
            assert!(matches!(err, Err(HandshakeError::BadId(_))), "{id:?}: {err:?}");
        }
        let err = open_hello(&p.master, &sealed_hello(&p, "m", 99, &good));
        assert_eq!(
            err.unwrap_err(),
            HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: 99 }
        );
        for challenge in ["", "abcd", "zz"] {
            let err = open_hello(&p.master, &sealed_hello(&p, "m", PROTOCOL_VERSION, challenge));
            assert!(matches!(err, Err(HandshakeError::Malformed(_))), "{challenge}");
        }
    }

    #[test]
    fn minion_refuses_replies_that_do_not_echo_its_challenge() {
        let p = pair();
        let (hs, hello) = MinionHandshake::start("minion1", &p.minion, &p.master.public);
        let hello_in = open_hello(&p.master, &hello).unwrap();
        // A reply to an older hello (e.g. replayed by an attacker) carries another challenge.
        let (_, old_hello) = MinionHandshake::start("minion1", &p.minion, &p.master.public);
        let old_in = open_hello(&p.master, &old_hello).unwrap();
        let (stale, _) = seal_reply(&old_in, AuthStatus::Accepted);
        assert!(matches!(hs.on_reply(&p.minion, &stale), Err(HandshakeError::ChallengeMismatch)));
        // A forger can seal to the minion's public key but cannot know the challenge.
        let forged = HelloReply {
            status: AuthStatus::Accepted,
            challenge: hex(&[0u8; 32]),
            session_key: Some(hex(&[0u8; 32])),
        };
        let forged = crypto::seal(&encode(&forged), &p.minion.public);
        assert!(matches!(hs.on_reply(&p.minion, &forged), Err(HandshakeError::ChallengeMismatch)));
        // Sealed to someone else.
        let (other, _) = seal_reply(&hello_in, AuthStatus::Accepted);
        let stranger = KeyPair::generate();
        assert!(hs.on_reply(&stranger, &other).is_err());
        // The genuine reply in each status.
        for (status, want) in [
            (AuthStatus::Pending, "Pending"),
            (AuthStatus::Rejected, "Rejected"),
            (AuthStatus::Denied, "Denied"),
            (AuthStatus::Full, "Full"),
        ] {
            let (reply, session) = seal_reply(&hello_in, status);
            assert!(session.is_none());
            let verdict = hs.on_reply(&p.minion, &reply).unwrap();
            assert_eq!(format!("{verdict:?}"), want);
        }
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
