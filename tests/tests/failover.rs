//! `master_type: failover` on the real binaries: two masters sharing one key pair on
//! loopback, a minion on the first; the first dies and the minion answers from the second
//! (its start events fire there), then comes back to the first with `master_failback`. Both
//! masters forward to one Redis stream, which then holds the whole story.

use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::redis::RedisServer;
use halite_tests::{wait_until, TempDir};

fn starts(master: &Master) -> usize {
    master.events().iter().filter(|(t, _)| t == "salt/minion/minion1/start").count()
}

#[track_caller]
fn pings(master: &Master) {
    let out = master.halite(&["minion1", "test.ping"]);
    assert_eq!(out.stdout, "minion1:\n    True\n", "{out:?}");
}

#[test]
fn a_minion_fails_over_to_the_second_master_and_back() {
    let redis = RedisServer::start(None);
    let config = |id: &str| {
        format!(
            "id: {id}\nauto_accept: true\nevent_return: redis\nredis.host: 127.0.0.1\n\
             redis.port: {}\n",
            redis.port
        )
    };
    let a = Master::start(&config("ma"));
    // The second master has the first one's key pair, as the README tells.
    let b_dir = TempDir::new();
    let pki = b_dir.join("master/etc/halite/pki/master");
    std::fs::create_dir_all(&pki).unwrap();
    for file in ["master.key", "master.pub"] {
        std::fs::copy(a.pki().join(file), pki.join(file)).unwrap();
    }
    let b = Master::start_in(b_dir, 0, &config("mb"));
    let (port_a, port_b) = (a.addr.port(), b.addr.port());
    let minion = Minion::start(
        &a,
        "minion1",
        "m1",
        &format!(
            "master: ['127.0.0.1:{port_a}', '127.0.0.1:{port_b}']\nmaster_type: failover\n\
             master_alive_interval: 1\nmaster_failback: true\n"
        ),
    );
    minion.wait_authenticated();
    a.wait_event("salt/minion/minion1/start", |_| true);
    pings(&a);

    // The first master dies: the minion moves to the second and starts there.
    let a_dir = a.kill();
    minion.daemon.wait_for_line(
        &format!(r"failing over from master 127\.0\.0\.1:{port_a} to 127\.0\.0\.1:{port_b}"),
        WAIT,
    );
    b.wait_event("salt/minion/minion1/start", |_| true);
    pings(&b);

    // It comes back on its port: the minion fails back, and starts there again.
    let a = Master::start_in(a_dir, port_a, &config("ma"));
    minion
        .daemon
        .wait_for_line(&format!(r"master 127\.0\.0\.1:{port_a} answers again: failing back"), WAIT);
    wait_until(WAIT, "the start events on the first master again", || starts(&a) == 2);
    pings(&a);
    b.wait_event("salt/minion/minion1/disconnected", |_| true);
    assert_eq!(starts(&b), 1);

    // One stream, both masters' events.
    let mut client = redis.client();
    wait_until(WAIT, "both masters' start events in the stream", || {
        let entries = client.entries("halite:events");
        let count = |master: &str| {
            entries
                .iter()
                .filter(|e| e["master"] == master && e["tag"] == "salt/minion/minion1/start")
                .count()
        };
        count("ma") == 2 && count("mb") == 1
    });
}

#[test]
fn a_failover_master_with_another_key_gets_nothing() {
    let a = Master::start("auto_accept: true\n");
    // A master of its own key pair on the second address: a rogue one, or a mistake.
    let rogue = Master::start("auto_accept: true\n");
    let (port_a, port_b) = (a.addr.port(), rogue.addr.port());
    let minion = Minion::start(
        &a,
        "minion1",
        "m1",
        &format!(
            "master: ['127.0.0.1:{port_a}', '127.0.0.1:{port_b}']\nmaster_type: failover\n\
             master_alive_interval: 1\n"
        ),
    );
    minion.wait_authenticated();
    // The minion's files live in the first master's tree: kept.
    let _tree = a.kill();
    minion
        .daemon
        .wait_for_line(&format!(r"master 127\.0\.0\.1:{port_b}: master key refused"), WAIT);
    // No hello reached it: it does not even know the minion's id.
    let keys = rogue.key(&["-L"]);
    assert!(!keys.stdout.contains("minion1"), "{keys:?}");
    assert!(!rogue.events().iter().any(|(t, _)| t.contains("minion1")));
}
