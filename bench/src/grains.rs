//! The grains a swarm member sends in `Ready`: the real minion's core grains (collected once
//! from this machine by `halite_minion::grains`, so the set follows what a real minion sends),
//! with the per-machine ones varied per member, so the master holds as many distinct values
//! as it would for a real fleet.

use serde_json::{json, Map, Value};

/// The core grains of this machine, as a real `halite-minion` would send them.
pub fn base() -> Map<String, Value> {
    halite_minion::grains::collect("swarm", &Map::new())
}

/// `base` made into member `index`'s own: names, addresses, machine id and size differ per
/// member; the OS, kernel and CPU model are the machine's.
pub fn member(base: &Map<String, Value>, id: &str, index: usize) -> Map<String, Value> {
    let mut g = base.clone();
    let n = index as u64;
    let domain = "swarm.example";
    let fqdn = format!("{}.{domain}", id.to_lowercase());
    let host = id.to_lowercase();
    let cpus = [1, 2, 4, 8][index % 4];
    let varied = [
        ("id", json!(id)),
        ("host", json!(host)),
        ("nodename", json!(host)),
        ("localhost", json!(host)),
        ("hostname", json!(host)),
        ("domain", json!(domain)),
        ("fqdn", json!(fqdn)),
        ("num_cpus", json!(cpus)),
        ("mem_total", json!(cpus * 1986 + (index % 7) as u64)),
        ("swap_total", json!([0, 975, 2047][index % 3])),
        ("ipv4", json!(["10.".to_string() + &octets(n), "127.0.0.1".to_string()])),
        ("ipv6", json!(["::1".to_string(), format!("fe80::{:x}:{:x}", mix(n) >> 48, n & 0xffff)])),
        ("machine_id", json!(format!("{:016x}{:016x}", mix(n), mix(n ^ 0x5eed)))),
    ];
    for (key, value) in varied {
        g.insert(key.to_string(), value);
    }
    g
}

/// The low 24 bits of `n` as three dotted octets.
fn octets(n: u64) -> String {
    format!("{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

/// SplitMix64's finaliser: distinct, random-looking 64-bit values from an index.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member sends the real minion's grain names (at least the ~25 core ones), and the
    /// per-machine values differ between members.
    #[test]
    fn members_send_the_real_grain_set_with_their_own_values() {
        let base = base();
        let a = member(&base, "Minion00001", 1);
        let b = member(&base, "Minion00002", 2);
        assert!(a.len() >= 25, "only {} grains: {:?}", a.len(), a.keys().collect::<Vec<_>>());
        for key in base.keys() {
            assert!(a.contains_key(key), "real grain {key} missing");
        }
        for key in ["os", "os_family", "kernel", "kernelrelease", "cpuarch", "osrelease"] {
            assert!(a.contains_key(key), "{key} missing");
        }
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for key in ["id", "host", "fqdn", "ipv4", "ipv6", "machine_id"] {
            assert_ne!(a[key], b[key], "{key} is the same for two members");
        }
        assert_eq!(a["id"], "Minion00001");
        assert_eq!(a["fqdn"], "minion00001.swarm.example");
        assert_eq!(a["machine_id"].as_str().map(str::len), Some(32));
    }
}
