//! The CI smoke run: every harness over its checked-in seeds, then over mutants of them. A
//! failure prints the input (and how to replay it) before re-raising the panic.

use halite_fuzz::mutate::{mutate, Rng};
use halite_fuzz::{corpus_dir, Harness, Target};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Mutants per target; `HALITE_FUZZ_ITERS` overrides (the reactor targets run a tenth).
fn iterations(target: Target) -> usize {
    let n = std::env::var("HALITE_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    match target {
        Target::ReactorData | Target::ReactorSls => n / 10,
        _ => n,
    }
}

fn seeds(target: Target) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).expect("seed")).collect()
}

#[track_caller]
fn run_one(harness: &Harness, target: Target, input: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| harness.run(target, input))) {
        eprintln!(
            "target {} failed on input {:?}\nreplay: write it to a file and run \
             `scripts/fuzz --replay {} FILE`",
            target.name(),
            String::from_utf8_lossy(input),
            target.name()
        );
        resume_unwind(panic);
    }
}

fn smoke(target: Target) {
    let harness = Harness::new();
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "no seeds for {}", target.name());
    for seed in &seeds {
        run_one(&harness, target, seed);
    }
    let mut rng = Rng::new(0x5eed ^ target as u64);
    for _ in 0..iterations(target) {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, &seeds, 64 * 1024);
        run_one(&harness, target, &input);
    }
}

#[test]
fn names_round_trip() {
    for target in Target::ALL {
        assert_eq!(Target::from_name(target.name()), Some(target));
    }
    assert_eq!(Target::from_name("nope"), None);
}

#[test]
fn wire() {
    smoke(Target::Wire);
}

#[test]
fn hello() {
    smoke(Target::Hello);
}

#[test]
fn greeting() {
    smoke(Target::Greeting);
}

#[test]
fn reply() {
    smoke(Target::Reply);
}

#[test]
fn session() {
    smoke(Target::Session);
}

#[test]
fn control() {
    smoke(Target::Control);
}

#[test]
fn target() {
    smoke(Target::Targeting);
}

#[test]
fn reactor_data() {
    smoke(Target::ReactorData);
}

#[test]
fn reactor_sls() {
    smoke(Target::ReactorSls);
}

#[test]
fn http() {
    smoke(Target::Http);
}

fn seed(target: Target, name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir(target).join(name)).expect("seed")
}

/// The well-formed seeds are accepted, so the fuzzers start past the parsers' first refusal.
#[test]
fn valid_seeds_are_accepted() {
    use halite_common::{control::Request, handshake, proto};
    halite_common::crypto::init();
    assert!(handshake::parse_hello(&seed(Target::Hello, "valid")[1..]).is_ok());
    assert!(handshake::parse_hello_body(&seed(Target::Hello, "valid_body")[1..]).is_ok());
    assert!(handshake::parse_greeting(&seed(Target::Greeting, "valid")).is_ok());
    for name in ["key_apply", "publish", "runner", "subscribe", "subscribe_regex"] {
        let frame = seed(Target::Control, name);
        assert!(serde_json::from_slice::<Request>(&frame).is_ok(), "{name}");
    }
    for name in ["event", "event_forged", "file_request", "ready", "return"] {
        let frame = seed(Target::Session, name);
        assert!(serde_json::from_slice::<proto::ToMaster>(&frame[1..]).is_ok(), "{name}");
    }
    for name in ["post", "pipelined"] {
        let mut parser = halite_common::http::Parser::new(halite_common::http::Limits::new(1024));
        parser.push(&seed(Target::Http, name)[1..]);
        assert!(matches!(parser.next_request(), Ok(Some(_))), "{name}");
    }
    for name in ["file_reply", "publish"] {
        let frame = seed(Target::Session, name);
        assert!(serde_json::from_slice::<proto::ToMinion>(&frame[1..]).is_ok(), "{name}");
    }
}
