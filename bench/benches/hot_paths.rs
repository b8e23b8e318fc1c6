//! Micro-benchmarks of halite-common's hot paths: frame codec, session and handshake crypto,
//! reactor tag matching and SLS rendering.
//!
//! Run with `cargo bench -p halite-bench --bench hot_paths`. Every benchmark uses only the
//! public API of `halite-common`, fixed inputs, and a `max_time` cap per group so the whole run
//! stays well under a minute on a small machine.

use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};

/// Counts each benchmark's allocations too (the static binaries' allocator, musl's, is slow
/// enough that an allocation per step shows in events/s).
#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    halite_common::crypto::init();
    divan::main();
}

/// `len` deterministic, printable bytes (what a JSON payload looks like to the codec).
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// Frame codec (`wire`): length-prefix encoding, and decoding whole frames out of a stream.
#[divan::bench_group(sample_count = 500, max_time = 2)]
mod wire {
    use super::*;
    use halite_common::wire::{encode_frame, Decoder, DEFAULT_MAX_FRAME_BYTES};

    const SMALL_FRAMES: usize = 1000;
    const SMALL_FRAME_BYTES: usize = 200;
    const BIG_FRAME_BYTES: usize = 64 * 1024;
    const PIECE_BYTES: usize = 4 * 1024;

    /// One 1 KiB payload appended to a reused outbound buffer (as `Conn::send` does).
    #[divan::bench]
    fn encode_frame_1k(bencher: Bencher) {
        let payload = payload(1024);
        let mut out = Vec::with_capacity(2 * 1024);
        bencher.counter(BytesCount::new(payload.len())).bench_local(|| {
            out.clear();
            encode_frame(black_box(&payload), &mut out);
            black_box(out.len())
        });
    }

    /// One push of 1000 back-to-back 200 B frames, then `next_frame` until it is drained.
    #[divan::bench]
    fn decode_1000_small_frames(bencher: Bencher) {
        let one = payload(SMALL_FRAME_BYTES);
        let mut stream = Vec::new();
        for _ in 0..SMALL_FRAMES {
            encode_frame(&one, &mut stream);
        }
        let mut decoder = Decoder::new(DEFAULT_MAX_FRAME_BYTES);
        bencher.counter(ItemsCount::new(SMALL_FRAMES)).bench_local(|| {
            decoder.push(black_box(&stream));
            let mut frames = 0;
            while let Some(frame) = decoder.next_frame().expect("valid stream") {
                black_box(&frame);
                frames += 1;
            }
            assert_eq!(frames, SMALL_FRAMES);
        });
    }

    /// One 64 KiB frame arriving in 4 KiB reads, with a `next_frame` after each read.
    #[divan::bench]
    fn decode_64k_frame_in_4k_pieces(bencher: Bencher) {
        let mut stream = Vec::new();
        encode_frame(&payload(BIG_FRAME_BYTES), &mut stream);
        let mut decoder = Decoder::new(DEFAULT_MAX_FRAME_BYTES);
        bencher.counter(BytesCount::new(stream.len())).bench_local(|| {
            let mut got = None;
            for piece in stream.chunks(PIECE_BYTES) {
                decoder.push(black_box(piece));
                if let Some(frame) = decoder.next_frame().expect("valid stream") {
                    got = Some(frame);
                }
            }
            assert_eq!(got.map(|f| f.len()), Some(BIG_FRAME_BYTES));
        });
    }
}

/// Session crypto: JSON + secretbox of live-session messages, and raw `SessionKey` boxes.
///
/// The session pair comes from one real in-memory handshake. Sealing advances the sender's
/// counter; for `open`, divan generates the frames (untimed) in order from the peer's end, so
/// each timed `open` gets exactly the frame its counter expects.
#[divan::bench_group(sample_count = 500, max_time = 2)]
mod session {
    use super::*;
    use halite_common::crypto::{KeyPair, SessionKey};
    use halite_common::handshake::{
        open_hello, seal_reply, KeyCache, MinionHandshake, Session, Verdict,
    };
    use halite_common::proto::{AuthStatus, JobReturn, Publish, ToMaster, ToMinion};
    use serde_json::{json, Value};

    /// (master end, minion end) of a freshly accepted session.
    pub(crate) fn pair() -> (Session, Session) {
        let master = KeyPair::generate();
        let minion = KeyPair::generate();
        let mut cache = KeyCache::default();
        let (hs, hello) =
            MinionHandshake::start("minion1", &minion, &master.public).expect("hello");
        let hello_in = open_hello(&master, &mut cache, &hello).expect("hello opens");
        let (reply, master_session) = seal_reply(&mut cache, &hello_in, AuthStatus::Accepted);
        match hs.on_reply(&reply).expect("reply opens") {
            Verdict::Accepted(minion_session) => {
                (master_session.expect("accepted"), minion_session)
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    /// `salt '*' test.ping` as the master publishes it.
    fn publish() -> ToMinion {
        ToMinion::Publish(Publish {
            jid: "20240101120000123456".into(),
            fun: "test.ping".into(),
            arg: Vec::new(),
            tgt: json!("*"),
            tgt_type: "glob".into(),
            user: "root".into(),
        })
    }

    /// A `cmd.run` return whose output is ~1 KiB of `ls -l`-like lines.
    fn job_return() -> ToMaster {
        let line = "-rw-r--r-- 1 root root  4096 Jan  1 00:00 file-000.txt\n";
        let output: String = (0..1024 / line.len() + 1)
            .map(|i| line.replace("000", &format!("{i:03}")))
            .collect::<String>()
            .chars()
            .take(1024)
            .collect();
        ToMaster::Return(JobReturn {
            jid: "20240101120000123456".into(),
            fun: "cmd.run".into(),
            fun_args: vec![Value::from("ls -l /srv")],
            ret: Value::from(output),
            retcode: 0,
            success: true,
            out: None,
            user: "root".into(),
        })
    }

    /// Bytes of a message's JSON (the plaintext a session box carries).
    macro_rules! json_len {
        ($msg:expr) => {
            serde_json::to_vec($msg).expect("serialises").len()
        };
    }

    /// Master seals a `test.ping` publish for one minion.
    #[divan::bench]
    fn seal_publish(bencher: Bencher) {
        let (mut master, _minion) = pair();
        let msg = publish();
        bencher
            .counter(BytesCount::new(json_len!(&msg)))
            .bench_local(|| master.seal(black_box(&msg)).expect("seals"));
    }

    /// Minion opens and parses a `test.ping` publish.
    #[divan::bench]
    fn open_publish(bencher: Bencher) {
        let (mut master, mut minion) = pair();
        let msg = publish();
        bencher
            .counter(BytesCount::new(json_len!(&msg)))
            .with_inputs(|| master.seal(&msg).expect("seals"))
            .bench_local_refs(|frame| minion.open::<ToMinion>(frame).expect("opens"));
    }

    /// A minion's event on the master, up to its event-log line: the session frame opened
    /// and parsed, the tag checked, the data wrapped as Salt's `_minion_event` and stamped,
    /// the line serialised (the bench's `events` run, per event).
    #[divan::bench]
    fn event_in(bencher: Bencher) {
        use halite_common::event::{minion_tag_refusal, wrap_minion_event, Event};
        let (mut master, mut minion) = pair();
        let msg = ToMaster::Event {
            tag: "bench/event/12345".into(),
            data: json!({"n": 12345}),
            ts: 1_767_225_600,
            ack: false,
            jid: None,
        };
        bencher
            .counter(BytesCount::new(json_len!(&msg)))
            .with_inputs(|| minion.seal(&msg).expect("seals"))
            .bench_local_refs(|frame| {
                let Ok(ToMaster::Event { tag, data, ts, .. }) = master.open::<ToMaster>(frame)
                else {
                    panic!("an event")
                };
                assert!(minion_tag_refusal(&tag, "minion1").is_none());
                let data = wrap_minion_event("minion1", &tag, data, ts);
                Event::new(tag, data).to_json_line()
            });
    }

    /// Minion seals a job return carrying ~1 KiB of output.
    #[divan::bench]
    fn seal_return_1k(bencher: Bencher) {
        let (_master, mut minion) = pair();
        let msg = job_return();
        bencher
            .counter(BytesCount::new(json_len!(&msg)))
            .bench_local(|| minion.seal(black_box(&msg)).expect("seals"));
    }

    /// Master opens and parses a job return carrying ~1 KiB of output.
    #[divan::bench]
    fn open_return_1k(bencher: Bencher) {
        let (mut master, mut minion) = pair();
        let msg = job_return();
        bencher
            .counter(BytesCount::new(json_len!(&msg)))
            .with_inputs(|| minion.seal(&msg).expect("seals"))
            .bench_local_refs(|frame| master.open::<ToMaster>(frame).expect("opens"));
    }

    /// Raw secretbox of 1 KiB under a session key (no JSON).
    #[divan::bench]
    fn session_key_seal_1k(bencher: Bencher) {
        let key = SessionKey::generate();
        let message = payload(1024);
        bencher
            .counter(BytesCount::new(message.len()))
            .bench_local(|| key.seal(black_box(&message), 0, black_box(7)));
    }

    /// Raw secretbox open of 1 KiB under a session key (no JSON).
    #[divan::bench]
    fn session_key_open_1k(bencher: Bencher) {
        let key = SessionKey::generate();
        let message = payload(1024);
        let sealed = key.seal(&message, 0, 7);
        bencher
            .counter(BytesCount::new(message.len()))
            .bench_local(|| key.open(black_box(&sealed), 0, black_box(7)).expect("opens"));
    }
}

/// Handshake: an X25519 shared key per minion, boxes and JSON; bounds how fast the master
/// admits connections.
#[divan::bench_group(sample_count = 500, max_time = 2)]
mod handshake {
    use super::*;
    use halite_common::crypto::KeyPair;
    use halite_common::handshake::{
        greeting, open_hello, seal_reply, KeyCache, MinionHandshake, Verdict,
    };
    use halite_common::proto::AuthStatus;

    /// Both ends, accepted key, first contact (the master's cache is empty): the minion
    /// computes the shared key and boxes the hello, the master computes it too, opens the
    /// hello and boxes the reply with a fresh session key, the minion opens the reply and
    /// checks the challenge.
    #[divan::bench]
    fn full_accepted(bencher: Bencher) {
        let master = KeyPair::generate();
        let minion = KeyPair::generate();
        bencher.bench_local(|| {
            let mut cache = KeyCache::default();
            let (hs, hello) =
                MinionHandshake::start("minion1", &minion, &master.public).expect("hello");
            let hello_in = open_hello(&master, &mut cache, &hello).expect("hello opens");
            let (reply, master_session) = seal_reply(&mut cache, &hello_in, AuthStatus::Accepted);
            let verdict = hs.on_reply(&reply).expect("reply opens");
            assert!(matches!(verdict, Verdict::Accepted(_)));
            (master_session, verdict)
        });
    }

    /// The master's share only (greeting, open hello, box accepted reply) for a minion it has
    /// not seen since it started (one scalar multiplication): its single loop does this per
    /// connection, so this is the ceiling on its handshake rate. Hellos are made untimed.
    #[divan::bench]
    fn master_side_accepted(bencher: Bencher) {
        master_side(bencher, false);
    }

    /// The same for a minion whose shared key the master kept (a reconnection): no scalar
    /// multiplication at all.
    #[divan::bench]
    fn master_side_known_minion(bencher: Bencher) {
        master_side(bencher, true);
    }

    fn master_side(bencher: Bencher, known: bool) {
        let master = KeyPair::generate();
        let minion = KeyPair::generate();
        let mut cache = KeyCache::default();
        bencher
            .with_inputs(|| {
                MinionHandshake::start("minion1", &minion, &master.public).expect("hello").1
            })
            .bench_local_refs(|hello| {
                if !known {
                    cache = KeyCache::default();
                }
                let greet = greeting(&master.public);
                let hello_in = open_hello(&master, &mut cache, hello).expect("hello opens");
                (greet, seal_reply(&mut cache, &hello_in, AuthStatus::Accepted))
            });
    }
}

/// Reactor tag matching: one event tag against 100 configured patterns (96 globs
/// `salt/custom/N/*`, 3 regexes, and `salt/auth` last), compiled once as the master does.
#[divan::bench_group(sample_count = 500, max_time = 2)]
mod reactor_match {
    use super::*;
    use halite_common::reactor::{tag_matches, Reactor, Rule};

    /// The 100 rules; `salt/auth` (last, so matching it scans every pattern) runs `auth_sls`.
    pub(crate) fn rules(auth_sls: &str) -> Vec<Rule> {
        let rule = |pattern: String, sls: String| Rule { pattern, sls: vec![sls] };
        let mut rules: Vec<Rule> = (0..96)
            .map(|n| rule(format!("salt/custom/{n}/*"), format!("/srv/reactor/custom{n}.sls")))
            .collect();
        for (n, regex) in [
            r"salt/job/\d+/ret/web\d+",
            r"salt/minion/(web|db)\d+/start",
            r"salt/beacon/[^/]+/inotify/.*",
        ]
        .into_iter()
        .enumerate()
        {
            rules.push(rule(regex.into(), format!("/srv/reactor/regex{n}.sls")));
        }
        rules.push(rule("salt/auth".into(), auth_sls.into()));
        assert_eq!(rules.len(), 100);
        rules
    }

    /// Tags: the last rule, an early glob, a regex, and no rule at all (the common case).
    const TAGS: &[&str] = &[
        "salt/auth",
        "salt/custom/3/deploy",
        "salt/minion/web12/start",
        "salt/job/20240101120000123456/ret/minion1",
    ];

    /// `Reactor::wants`: the per-event filter (stops at the first match).
    #[divan::bench(args = TAGS)]
    fn wants(bencher: Bencher, tag: &str) {
        let reactor = Reactor::new(rules("/srv/reactor/Minion.sls"));
        let expected = tag != TAGS[3];
        assert_eq!(reactor.wants(tag), expected);
        bencher.bench_local(|| reactor.wants(black_box(tag)));
    }

    /// `Reactor::matching_rules`: every pattern tested, matches collected.
    #[divan::bench(args = TAGS)]
    fn matching_rules(bencher: Bencher, tag: &str) {
        let reactor = Reactor::new(rules("/srv/reactor/Minion.sls"));
        bencher.bench_local(|| reactor.matching_rules(black_box(tag)).len());
    }

    /// `Reactor::new` of the 100 rules: each pattern compiled as glob and regex (config
    /// load and reload, not per event).
    #[divan::bench(sample_count = 50)]
    fn compile_100_rules(bencher: Bencher) {
        let rules = rules("/srv/reactor/Minion.sls");
        bencher.with_inputs(|| rules.clone()).bench_local_values(Reactor::new);
    }

    /// The free function `tag_matches`, which compiles its pattern on every call: what one
    /// check costs without a compiled `Reactor`.
    #[divan::bench]
    fn tag_matches_uncompiled(bencher: Bencher) {
        bencher.bench_local(|| {
            tag_matches(black_box("salt/custom/*/deploy"), black_box("salt/custom/3/deploy"))
        });
    }
}

/// Reactor rendering: `Reactor::react` on the seed scenario's `salt/auth` event with the
/// Jinja+YAML reaction file. The public API only renders from files, so every iteration also
/// resolves and reads the SLS file from disk (page cache), as the master does per event.
#[divan::bench_group(sample_count = 500, max_time = 2)]
mod reactor_render {
    use super::*;
    use halite_common::reactor::{Reactor, Rule};
    use serde_json::{json, Map, Value};
    use std::path::PathBuf;

    const SEED_SLS: &str = "{% if data['act'] == 'pend' and data['id'].startswith('Minion') %}
minion_add:
  wheel.key.accept:
    - args:
      - match: {{ data['id'] }}
{% endif %}
";

    const MINION_PUB: &str = "-----BEGIN PUBLIC KEY-----\n\
                              MCowBQYDK2VuAyEAm6dn4Dq2LaNMCtbHFwZzPiR3E9yAAmPBaWWnGkzwhAk=\n\
                              -----END PUBLIC KEY-----\n";

    /// The seed SLS written to a private temp dir, removed on drop.
    struct SeedFile(PathBuf);

    impl SeedFile {
        fn new() -> SeedFile {
            let dir = std::env::temp_dir().join(format!("halite-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("Minion.sls");
            std::fs::write(&path, SEED_SLS).expect("write SLS");
            SeedFile(path)
        }

        fn path(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }

    impl Drop for SeedFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }

    /// A `salt/auth` event's data.
    fn auth(act: &str, id: &str) -> Map<String, Value> {
        match json!({"act": act, "id": id, "pub": MINION_PUB, "result": true}) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn bench_react(bencher: Bencher, reactor: &Reactor, data: &Map<String, Value>, want: usize) {
        let out = reactor.react("salt/auth", data);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.reactions.len(), want);
        bencher.bench_local(|| reactor.react(black_box("salt/auth"), black_box(data)));
    }

    /// A pending `Minion2`: renders to one `wheel.key.accept` reaction.
    #[divan::bench]
    fn react_seed_accept(bencher: Bencher) {
        let seed = SeedFile::new();
        let reactor =
            Reactor::new(vec![Rule { pattern: "salt/auth".into(), sls: vec![seed.path()] }]);
        bench_react(bencher, &reactor, &auth("pend", "Minion2"), 1);
    }

    /// A pending `other1`: the `if` is false, the file renders to nothing.
    #[divan::bench]
    fn react_seed_no_reaction(bencher: Bencher) {
        let seed = SeedFile::new();
        let reactor =
            Reactor::new(vec![Rule { pattern: "salt/auth".into(), sls: vec![seed.path()] }]);
        bench_react(bencher, &reactor, &auth("pend", "other1"), 0);
    }

    /// Baseline, not halite code: the `stat` + open + read of the SLS file that every
    /// `react` above includes, to tell file I/O from rendering.
    #[divan::bench]
    fn baseline_stat_and_read_sls(bencher: Bencher) {
        let seed = SeedFile::new();
        let path = seed.0.clone();
        bencher.bench_local(|| {
            let path = black_box(&path);
            assert!(path.is_file());
            std::fs::read_to_string(path).expect("readable")
        });
    }

    /// The master's whole per-event path with the 100-rule config: `wants`, then `react`
    /// (which matches again, then renders, parses and compiles the seed file).
    #[divan::bench]
    fn wants_and_react_100_rules(bencher: Bencher) {
        let seed = SeedFile::new();
        let reactor = Reactor::new(super::reactor_match::rules(&seed.path()));
        let data = auth("pend", "Minion2");
        assert_eq!(reactor.react("salt/auth", &data).reactions.len(), 1);
        bencher.bench_local(|| {
            let tag = black_box("salt/auth");
            reactor.wants(tag).then(|| reactor.react(tag, black_box(&data)))
        });
    }
}
