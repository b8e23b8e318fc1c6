//! Peers of another protocol version are refused by name, both ways, on the real binaries:
//! a version 1 hello at the master, a version 1 master's greeting at the minion.

use halite_common::crypto::{self, KeyPair};
use halite_common::wire::encode_frame;
use halite_tests::cluster::{Master, Minion, WAIT};
use halite_tests::raw::{v1_hello_for, RawConn};
use halite_tests::TempDir;
use std::io::Write;
use std::net::TcpListener;

#[test]
fn the_master_refuses_a_version_1_hello_by_name() {
    let master = Master::start("auto_accept: True");
    let (mut conn, master_key) = RawConn::connect(master.addr);
    conn.send_frame(&v1_hello_for("old-minion", &master_key));
    assert!(conn.closed_by_master(), "the master kept a version 1 minion connected");
    master
        .daemon
        .wait_for_line(r"refused hello: peer speaks protocol version 1, this end speaks 2", WAIT);
    // Refused before any key decision: no key file, no auth event.
    let accepted = std::fs::read_dir(master.pki().join("minions")).map_or(0, |d| d.count());
    assert_eq!(accepted, 0, "a key was accepted for a version 1 hello");
    assert!(master.events().iter().all(|(tag, _)| tag != "salt/auth"));
}

#[test]
fn a_minion_refuses_a_version_1_master_by_name() {
    crypto::init();
    let old_master = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = old_master.local_addr().unwrap();
    // What a version 1 master sends first on every connection; it then waits for a hello.
    let greeting = serde_json::json!({
        "version": 1,
        "master_pub": KeyPair::generate().public.to_pem(),
    });
    let mut frame = Vec::new();
    encode_frame(&serde_json::to_vec(&greeting).unwrap(), &mut frame);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in old_master.incoming().flatten() {
            let _ = stream.write_all(&frame);
            held.push(stream);
        }
    });
    let dir = TempDir::new();
    let minion = Minion::start_for(&dir, addr, "minion1", "a", "");
    minion
        .daemon
        .wait_for_line(r"bad greeting: peer speaks protocol version 1, this end speaks 2", WAIT);
    // It sent no hello and trusted nothing: no master key cached.
    assert!(!minion.pki().join("minion_master.pub").exists());
}
