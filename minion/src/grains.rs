//! Grains: facts about the minion (OS, kernel, names, CPU, memory, addresses), read once at
//! start-up from `/proc`, `/etc/os-release` and friends and named as Salt's core grains are,
//! with the minion config's `grains:` laid over them. The parsers are pure and take the file
//! text; a file that cannot be read leaves its grains out.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

/// Collects the core grains, then overlays `configured` (the minion config's `grains:`).
pub fn collect(id: &str, configured: &Map<String, Value>) -> Map<String, Value> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut grains = core(id, read);
    grains.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    grains.sort_keys();
    grains
}

/// The core grains, reading files through `read` (a path → its text, if readable).
fn core(id: &str, read: impl Fn(&str) -> Option<String>) -> Map<String, Value> {
    let mut g = Map::new();
    g.insert("id".into(), json!(id));
    g.insert("halite_version".into(), json!(env!("CARGO_PKG_VERSION")));
    let first_line =
        |path: &str| read(path).map(|t| t.trim().to_string()).filter(|t| !t.is_empty());

    let kernel =
        first_line("/proc/sys/kernel/ostype").unwrap_or_else(|| capitalise(std::env::consts::OS));
    let os_release = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .map(|text| parse_os_release(&text))
        .unwrap_or_default();
    for (key, value) in os_grains(&os_release, &kernel) {
        g.insert(key.into(), value);
    }
    g.insert("kernel".into(), json!(kernel));
    for (grain, path) in [
        ("kernelrelease", "/proc/sys/kernel/osrelease"),
        ("kernelversion", "/proc/sys/kernel/version"),
    ] {
        if let Some(value) = first_line(path) {
            g.insert(grain.into(), json!(value));
        }
    }

    let hostname = first_line("/proc/sys/kernel/hostname").unwrap_or_else(|| "localhost".into());
    let domainname = first_line("/proc/sys/kernel/domainname");
    let fqdn = fqdn(&hostname, domainname.as_deref());
    let (host, domain) = fqdn.split_once('.').unwrap_or((&fqdn, ""));
    g.insert("host".into(), json!(host));
    g.insert("domain".into(), json!(domain));
    g.insert("fqdn".into(), json!(fqdn));
    for grain in ["nodename", "localhost", "hostname"] {
        g.insert(grain.into(), json!(hostname));
    }

    g.insert("cpuarch".into(), json!(std::env::consts::ARCH));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    g.insert("num_cpus".into(), json!(cpus));
    if let Some(model) = read("/proc/cpuinfo").and_then(|t| cpu_model(&t)) {
        g.insert("cpu_model".into(), json!(model));
    }
    if let Some(meminfo) = read("/proc/meminfo") {
        for (grain, field) in [("mem_total", "MemTotal"), ("swap_total", "SwapTotal")] {
            if let Some(kib) = meminfo_kib(&meminfo, field) {
                g.insert(grain.into(), json!(kib / 1024));
            }
        }
    }
    let ipv4 = read("/proc/net/fib_trie").map(|t| local_ipv4(&t)).unwrap_or_default();
    g.insert("ipv4".into(), json!(ipv4));
    let ipv6 = read("/proc/net/if_inet6").map(|t| local_ipv6(&t)).unwrap_or_default();
    g.insert("ipv6".into(), json!(ipv6));
    let machine_id =
        first_line("/etc/machine-id").or_else(|| first_line("/var/lib/dbus/machine-id"));
    if let Some(machine_id) = machine_id {
        g.insert("machine_id".into(), json!(machine_id));
    }
    g
}

/// `/etc/os-release` as Salt reads it: `KEY=value` lines, quotes and backslash escapes
/// removed, anything else ignored.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let value = value.strip_prefix(['"', '\'']).unwrap_or(value);
        let value = value.strip_suffix(['"', '\'']).unwrap_or(value);
        let mut unescaped = String::with_capacity(value.len());
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('\\', Some(&next)) if matches!(next, '$' | '"' | '\'' | '\\' | '`') => {
                    unescaped.push(next);
                    chars.next();
                }
                _ => unescaped.push(c),
            }
        }
        out.insert(key.to_string(), unescaped);
    }
    out
}

/// Salt's `_OS_NAME_MAP`: the first ten characters of the de-"Linux"-ed `NAME`, without
/// spaces, lower-cased → the `os` grain.
const OS_NAME_MAP: &[(&str, &str)] = &[
    ("redhatente", "RedHat"),
    ("gentoobase", "Gentoo"),
    ("archarm", "Arch ARM"),
    ("arch", "Arch"),
    ("debian", "Debian"),
    ("raspbian", "Raspbian"),
    ("fedoraremi", "Fedora"),
    ("amazonami", "Amazon"),
    ("alt", "ALT"),
    ("enterprise", "OEL"),
    ("oracleserv", "OEL"),
    ("cloudserve", "CloudLinux"),
    ("cloudlinux", "CloudLinux"),
    ("almalinux", "AlmaLinux"),
    ("pidora", "Fedora"),
    ("scientific", "ScientificLinux"),
    ("manjaro", "Manjaro"),
    ("manjarolin", "Manjaro"),
    ("antergos", "Antergos"),
    ("sles", "SUSE"),
    ("void", "Void"),
    ("linuxmint", "Mint"),
    ("neon", "KDE neon"),
    ("pop", "Pop"),
    ("rocky", "Rocky"),
    ("alibabaclo", "Alinux"),
    ("mendel", "Mendel"),
];

/// Salt's `_OS_FAMILY_MAP` (the part for Linux): `os` → `os_family`; others are their own.
const OS_FAMILY_MAP: &[(&str, &str)] = &[
    ("Ubuntu", "Debian"),
    ("Mint", "Debian"),
    ("Raspbian", "Debian"),
    ("Devuan", "Debian"),
    ("Kali", "Debian"),
    ("Pop", "Debian"),
    ("KDE neon", "Debian"),
    ("Deepin", "Debian"),
    ("Trisquel", "Debian"),
    ("elementary OS", "Debian"),
    ("TurnKey", "Debian"),
    ("Mendel", "Debian"),
    ("Fedora", "RedHat"),
    ("CentOS", "RedHat"),
    ("CentOS Stream", "RedHat"),
    ("Amazon", "RedHat"),
    ("CloudLinux", "RedHat"),
    ("AlmaLinux", "RedHat"),
    ("Rocky", "RedHat"),
    ("OEL", "RedHat"),
    ("ScientificLinux", "RedHat"),
    ("ALT", "RedHat"),
    ("Alinux", "RedHat"),
    ("VMware Photon OS", "RedHat"),
    ("XCP-ng", "RedHat"),
    ("SUSE", "Suse"),
    ("SLES", "Suse"),
    ("openSUSE", "Suse"),
    ("openSUSE Leap", "Suse"),
    ("openSUSE Tumbleweed", "Suse"),
    ("Arch ARM", "Arch"),
    ("Manjaro", "Arch"),
    ("Antergos", "Arch"),
    ("Funtoo", "Gentoo"),
];

/// `ID` → `os` when os-release has no `NAME`.
const OS_ID_MAP: &[(&str, &str)] = &[
    ("debian", "Debian"),
    ("ubuntu", "Ubuntu"),
    ("centos", "CentOS"),
    ("rhel", "RedHat"),
    ("fedora", "Fedora"),
    ("rocky", "Rocky"),
    ("almalinux", "AlmaLinux"),
    ("alpine", "Alpine"),
    ("arch", "Arch"),
    ("amzn", "Amazon"),
    ("ol", "OEL"),
    ("sles", "SUSE"),
    ("opensuse", "SUSE"),
    ("opensuse-leap", "SUSE"),
    ("opensuse-tumbleweed", "SUSE"),
    ("linuxmint", "Mint"),
    ("raspbian", "Raspbian"),
];

fn lookup(map: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    map.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// `os`, `os_family`, `osfullname`, `osrelease`, `oscodename` and, when there is a release,
/// `osrelease_info`, `osmajorrelease`, `osfinger` (Salt's `os_data` for Linux).
pub fn os_grains(
    os_release: &BTreeMap<String, String>,
    kernel: &str,
) -> Vec<(&'static str, Value)> {
    let field = |k: &str| os_release.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let id = field("ID").unwrap_or_default().to_lowercase();
    let fullname = field("NAME").unwrap_or_else(|| match lookup(OS_ID_MAP, &id) {
        Some(os) => os.to_string(),
        None if id.is_empty() => kernel.to_string(),
        None => capitalise(&id),
    });
    let distro = strip_linux(&fullname);
    let short: String =
        distro.chars().filter(|c| *c != ' ').flat_map(char::to_lowercase).take(10).collect();
    let os = if cpe_vendor(field("CPE_NAME").as_deref())
        .is_some_and(|v| v == "suse" || v == "opensuse")
    {
        "SUSE".to_string()
    } else if field("NAME").is_none() {
        fullname.clone()
    } else {
        lookup(OS_NAME_MAP, &short).map_or(distro, str::to_string)
    };
    let family = lookup(OS_FAMILY_MAP, &os).map_or_else(|| os.clone(), str::to_string);
    let release = field("VERSION_ID").unwrap_or_default();
    let codename = match field("VERSION_CODENAME") {
        Some(codename) => codename,
        None => {
            let pretty = field("PRETTY_NAME").unwrap_or_default();
            // Debian's "Debian GNU/Linux 7 (wheezy)".
            match (id.as_str(), pretty.strip_suffix(')').and_then(|p| p.rsplit_once('('))) {
                ("debian", Some((_, word)))
                    if word.chars().all(|c| c.is_alphanumeric() || c == '_') =>
                {
                    word.to_string()
                }
                _ => pretty,
            }
        }
    };
    let mut out = vec![
        ("osfullname", json!(fullname)),
        ("osrelease", json!(release)),
        ("oscodename", json!(codename)),
    ];
    if !release.is_empty() {
        let info: Vec<Value> = release
            .split('.')
            .map(|part| match part.parse::<u64>() {
                Ok(n) if part.chars().all(|c| c.is_ascii_digit()) => json!(n),
                _ => json!(part),
            })
            .collect();
        if let Some(major) = info.first().and_then(Value::as_u64) {
            out.push(("osmajorrelease", json!(major)));
        }
        let name = match os.as_str() {
            "Debian" | "Raspbian" => &os,
            _ => &fullname,
        };
        let version = match (name.as_str(), info.first()) {
            ("Ubuntu", _) | (_, None) => release.clone(),
            (_, Some(Value::String(s))) => s.clone(),
            (_, Some(first)) => first.to_string(),
        };
        out.push(("osfinger", json!(format!("{name}-{version}"))));
        out.push(("osrelease_info", Value::Array(info)));
    }
    out.push(("os", json!(os)));
    out.push(("os_family", json!(family)));
    out
}

/// Salt's `_REPLACE_LINUX_RE` (`\W(?:gnu/)?linux`, any case) removed, then trimmed:
/// "Debian GNU/Linux" → "Debian", "Rocky Linux" → "Rocky", "AlmaLinux" stays.
fn strip_linux(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        let is_word = c.is_alphanumeric() || c == '_';
        let lower =
            after.get(..9.min(after.len())).map(str::to_ascii_lowercase).unwrap_or_default();
        let skip = if is_word {
            None
        } else if lower.starts_with("gnu/linux") {
            Some(9)
        } else if lower.starts_with("linux") {
            Some(5)
        } else {
            None
        };
        match skip {
            Some(n) => rest = &after[n..],
            None => {
                out.push(c);
                rest = after;
            }
        }
    }
    out.trim().to_string()
}

/// The vendor field of an os-release `CPE_NAME` (`cpe:/o:opensuse:leap:15.5`,
/// `cpe:2.3:o:suse:sles:15:sp5:*:...`).
fn cpe_vendor(cpe: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = cpe?.split(':').collect();
    match parts.as_slice() {
        ["cpe", part, vendor, ..] if part.starts_with('/') => Some(vendor.to_lowercase()),
        ["cpe", "2.3", _, vendor, ..] => Some(vendor.to_lowercase()),
        _ => None,
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// `hostname.domainname`, unless the hostname already has a domain or the domain is unset.
pub fn fqdn(hostname: &str, domainname: Option<&str>) -> String {
    match domainname.map(str::trim) {
        Some(domain) if !hostname.contains('.') && !domain.is_empty() && domain != "(none)" => {
            format!("{hostname}.{domain}")
        }
        _ => hostname.to_string(),
    }
}

/// A `/proc/meminfo` field in kB (`MemTotal:       16314172 kB` → 16314172).
pub fn meminfo_kib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, rest) = line.split_once(':')?;
        (key.trim() == field).then(|| rest.split_whitespace().next()?.parse().ok())?
    })
}

/// The first `model name` in `/proc/cpuinfo`.
pub fn cpu_model(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

/// The machine's own IPv4 addresses from `/proc/net/fib_trie`: each `/32 host LOCAL` entry
/// names the address on the line before it. Sorted as text, as Salt sorts them.
pub fn local_ipv4(text: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut last = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.parse::<std::net::Ipv4Addr>().ok();
        } else if line == "/32 host LOCAL" {
            if let Some(addr) = last.take() {
                found.insert(addr.to_string());
            }
        }
    }
    found.into_iter().collect()
}

/// The machine's IPv6 addresses from `/proc/net/if_inet6` (32 hex digits per line first),
/// in their short form, sorted as text.
pub fn local_ipv6(text: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let Some(hex) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(addr) = u128::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 32) {
            found.insert(Ipv6Addr::from(addr).to_string());
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const DEBIAN: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#;
    const UBUNTU: &str = "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\n\
                          VERSION_CODENAME=jammy\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n";
    const ROCKY: &str = "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=\"rocky\"\n\
                         PRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n";
    const LEAP: &str = "NAME=\"openSUSE Leap\"\nVERSION_ID=\"15.5\"\nID=\"opensuse-leap\"\n\
                        CPE_NAME=\"cpe:/o:opensuse:leap:15.5\"\n";

    fn os_of(text: &str) -> Map<String, Value> {
        let grains = os_grains(&parse_os_release(text), "Linux");
        grains.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn os_grains_follow_salt() {
        let nixos = "ID=nixos\n";
        let alpine = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n";
        let rocky_codename = "Rocky Linux 9.3 (Blue Onyx)";
        // os-release → os, os_family, osfullname, osrelease, oscodename, osfinger
        for (text, os, family, fullname, release, codename, finger) in [
            (DEBIAN, "Debian", "Debian", "Debian GNU/Linux", "12", "bookworm", "Debian-12"),
            (UBUNTU, "Ubuntu", "Debian", "Ubuntu", "22.04", "jammy", "Ubuntu-22.04"),
            (ROCKY, "Rocky", "RedHat", "Rocky Linux", "9.3", rocky_codename, "Rocky Linux-9"),
            (LEAP, "SUSE", "Suse", "openSUSE Leap", "15.5", "", "openSUSE Leap-15"),
            ("ID=centos\nVERSION_ID=7\n", "CentOS", "RedHat", "CentOS", "7", "", "CentOS-7"),
            (alpine, "Alpine", "Alpine", "Alpine Linux", "3.19.1", "", "Alpine Linux-3"),
            (nixos, "Nixos", "Nixos", "Nixos", "", "", ""),
            ("", "Linux", "Linux", "Linux", "", "", ""),
        ] {
            let g = os_of(text);
            let got = (&g["os"], &g["os_family"], &g["osfullname"], &g["osrelease"]);
            assert_eq!(got, (&json!(os), &json!(family), &json!(fullname), &json!(release)));
            assert_eq!(g["oscodename"], json!(codename), "{text}");
            let finger = Some(json!(finger)).filter(|_| !finger.is_empty());
            assert_eq!(g.get("osfinger"), finger.as_ref(), "{text}");
        }
        let ubuntu = os_of(UBUNTU);
        assert_eq!(
            (&ubuntu["osrelease_info"], &ubuntu["osmajorrelease"]),
            (&json!([22, 4]), &json!(22))
        );
        let odd = os_of("NAME=Odd\nVERSION_ID=rolling.2\n");
        assert_eq!(odd["osrelease_info"], json!(["rolling", 2]));
        assert!(!odd.contains_key("osmajorrelease"));
        assert_eq!(odd["osfinger"], json!("Odd-rolling"));
        let wheezy = os_of(
            "ID=debian\nNAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 7 (wheezy)\"\n",
        );
        assert_eq!(wheezy["oscodename"], json!("wheezy"));
        assert!(!os_of(nixos).contains_key("osrelease_info"));
    }

    #[test]
    fn os_names_map_like_salt() {
        for (name, os) in [
            ("Red Hat Enterprise Linux", "RedHat"),
            ("CentOS Linux", "CentOS"),
            ("CentOS Stream", "CentOS Stream"),
            ("Fedora Linux", "Fedora"),
            ("AlmaLinux", "AlmaLinux"),
            ("Arch Linux", "Arch"),
            ("Linux Mint", "Mint"),
            ("Oracle Linux Server", "OEL"),
            ("Amazon Linux", "Amazon"),
            ("Raspbian GNU/Linux", "Raspbian"),
            ("Kali GNU/Linux", "Kali"),
        ] {
            let text = format!("NAME=\"{name}\"\n");
            let grains = os_grains(&parse_os_release(&text), "Linux");
            assert_eq!(
                grains.iter().find(|(k, _)| *k == "os").map(|(_, v)| v.clone()),
                Some(json!(os)),
                "{name}"
            );
        }
    }

    #[test]
    fn os_release_parsing() {
        let parsed = parse_os_release(
            "A=\"q \\\"x\\\" \\$y\"\nB='single'\n# comment\n  C=plain  \nbad line\nD-E=1\nF=\n",
        );
        let want: BTreeMap<String, String> =
            [("A", "q \"x\" $y"), ("B", "single"), ("C", "plain"), ("F", "")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(parsed, want);
    }

    const FIB_TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.2
           /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
     |-- 10.1.2.3
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 172.17.0.2
           /32 host LOCAL
";

    #[test]
    fn proc_parsers() {
        assert_eq!(local_ipv4(FIB_TRIE), ["10.1.2.3", "127.0.0.1", "172.17.0.2"]);
        assert_eq!(local_ipv4(""), Vec::<String>::new());
        let inet6 = "00000000000000000000000000000001 01 80 10 80       lo\n\
                     fe800000000000000042acfffe110002 02 40 20 80     eth0\nbogus\n";
        assert_eq!(local_ipv6(inet6), ["::1", "fe80::42:acff:fe11:2"]);
        let meminfo =
            "MemTotal:       16314172 kB\nMemFree:         1234 kB\nSwapTotal:             0 kB\n";
        assert_eq!(meminfo_kib(meminfo, "MemTotal"), Some(16314172));
        assert_eq!(meminfo_kib(meminfo, "SwapTotal"), Some(0));
        assert_eq!(meminfo_kib(meminfo, "Nope"), None);
        assert_eq!(meminfo_kib("MemTotal: lots", "MemTotal"), None);
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
                       model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(fqdn("web1", Some("(none)")), "web1");
        assert_eq!(fqdn("web1", Some("example.com")), "web1.example.com");
        assert_eq!(fqdn("web1.lan", Some("example.com")), "web1.lan");
        assert_eq!(fqdn("web1", None), "web1");
        assert_eq!(strip_linux("Debian GNU/Linux"), "Debian");
        assert_eq!(capitalise("nixos"), "Nixos");
    }

    #[test]
    fn core_grains_from_a_fake_filesystem() {
        let files: HashMap<&str, String> = [
            ("/etc/os-release", DEBIAN.to_string()),
            ("/proc/sys/kernel/ostype", "Linux\n".into()),
            ("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n".into()),
            ("/proc/sys/kernel/hostname", "web1\n".into()),
            ("/proc/sys/kernel/domainname", "(none)\n".into()),
            ("/proc/meminfo", "MemTotal:        2048000 kB\n".into()),
            ("/proc/net/fib_trie", FIB_TRIE.into()),
        ]
        .into_iter()
        .collect();
        let g = core("minion1", |p| files.get(p).cloned());
        for (key, want) in [
            ("id", json!("minion1")),
            ("os", json!("Debian")),
            ("os_family", json!("Debian")),
            ("osrelease", json!("12")),
            ("kernel", json!("Linux")),
            ("kernelrelease", json!("6.1.0-18-amd64")),
            ("hostname", json!("web1")),
            ("fqdn", json!("web1")),
            ("host", json!("web1")),
            ("domain", json!("")),
            ("mem_total", json!(2000)),
            ("ipv4", json!(["10.1.2.3", "127.0.0.1", "172.17.0.2"])),
            ("ipv6", json!([])),
            ("cpuarch", json!(std::env::consts::ARCH)),
            ("halite_version", json!(env!("CARGO_PKG_VERSION"))),
        ] {
            assert_eq!(g.get(key), Some(&want), "{key}");
        }
        assert!(g["num_cpus"].as_u64().is_some_and(|n| n >= 1));
        for absent in ["kernelversion", "swap_total", "cpu_model", "machine_id"] {
            assert!(!g.contains_key(absent), "{absent}");
        }
        // Nothing readable at all still gives the basics.
        let bare = core("m", |_| None);
        assert_eq!(
            (&bare["os"], &bare["kernel"], &bare["ipv4"], &bare["fqdn"]),
            (&json!("Linux"), &json!("Linux"), &json!([]), &json!("localhost"))
        );
    }

    #[test]
    fn configured_grains_win() {
        let configured = json!({"roles": ["web"], "os": "Custom"});
        let g = collect("minion1", configured.as_object().unwrap_or(&Map::new()));
        assert_eq!(
            (&g["roles"], &g["os"], &g["id"]),
            (&json!(["web"]), &json!("Custom"), &json!("minion1"))
        );
        let keys: Vec<&String> = g.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
