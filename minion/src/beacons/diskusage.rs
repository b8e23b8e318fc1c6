//! Salt's `diskusage` beacon: each key is a mount point regex (Python's `re.match`, `$`
//! appended), each value a threshold (`90%`); fires `{"diskusage": <percent>, "mount": …}`
//! for every mounted file system that matches and is at least that full (statvfs).

use super::{config, Module, Payload};
use serde_json::{Map, Value};

pub(super) struct DiskUsage {
    mounts: Vec<(regex::Regex, f64)>,
}

impl DiskUsage {
    pub fn new(config: &Map<String, Value>) -> Result<DiskUsage, String> {
        let mut mounts = Vec::new();
        for (mount, threshold) in config {
            let limit = config::percent(threshold).ok_or_else(|| {
                format!("diskusage beacon: threshold {threshold} for {mount} is not a number")
            })?;
            let pattern = match mount.ends_with('$') {
                true => mount.clone(),
                false => format!("{mount}$"),
            };
            let re = regex::RegexBuilder::new(&format!("^(?:{pattern})"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("diskusage beacon: bad mount regex {mount}: {e}"))?;
            mounts.push((re, limit));
        }
        // Salt takes an empty list as valid: the beacon then fires nothing.
        Ok(DiskUsage { mounts })
    }

    fn decide(&self, mount_points: &[String], usage: impl Fn(&str) -> Option<f64>) -> Vec<Payload> {
        let mut out = Vec::new();
        for (re, limit) in &self.mounts {
            for mount in mount_points.iter().filter(|m| re.is_match(m)) {
                let Some(percent) = usage(mount) else {
                    log::warn!("{mount} is not a valid mount point.");
                    continue;
                };
                if percent >= *limit {
                    let event = [
                        ("diskusage".to_string(), Value::from(percent)),
                        ("mount".to_string(), Value::from(mount.as_str())),
                    ];
                    out.push(event.into_iter().collect());
                }
            }
        }
        out
    }
}

/// The mount points of `/proc/self/mounts` (octal escapes such as `\040` undone).
pub(super) fn mount_points(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.split_whitespace().nth(1)).map(unescape).collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], code) {
            (b'\\', Some(d)) => {
                let n = d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0'));
                out.push(n as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// psutil's `disk_usage(path).percent`: used over what a non-root user can use, one decimal.
pub(super) fn percent_used(blocks: u64, bfree: u64, bavail: u64) -> f64 {
    let used = blocks.saturating_sub(bfree);
    let total_user = used + bavail;
    if total_user == 0 {
        return 0.0;
    }
    (used as f64 / total_user as f64 * 1000.0).round() / 10.0
}

fn statvfs_percent(mount: &str) -> Option<f64> {
    let path = std::ffi::CString::new(mount).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` a buffer of the right type, which
    // statvfs(3) fills when it returns 0.
    let st = unsafe {
        if libc::statvfs(path.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between libcs
    Some(percent_used(st.f_blocks as u64, st.f_bfree as u64, st.f_bavail as u64))
}

impl Module for DiskUsage {
    /// `statvfs` on a mount a user made (FUSE with `allow_other`) may never answer: on the
    /// worker thread, so the loop (keepalives, jobs) goes on.
    fn blocking(&self) -> bool {
        true
    }

    fn check(&mut self) -> Vec<Payload> {
        let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        self.decide(&mount_points(&text), statvfs_percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MOUNTS: &str = "/dev/sda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n\
                          /dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n/dev/sdc1 /var/log xfs rw 0 0\n";

    fn disk(config: Value) -> DiskUsage {
        DiskUsage::new(config.as_object().unwrap()).unwrap()
    }

    #[test]
    fn reads_proc_mounts() {
        assert_eq!(mount_points(MOUNTS), ["/", "/proc", "/mnt/my disk", "/var/log"]);
    }

    #[test]
    fn thresholds_and_regexes_as_salt_applies_them() {
        let d = disk(json!({"/": "90%", "/var/.*": 50, "/mnt/my disk": "10%"}));
        let usage = |m: &str| match m {
            "/" => Some(95.5),
            "/var/log" => Some(20.0),
            "/mnt/my disk" => Some(10.0),
            _ => None,
        };
        let fired: Vec<Value> =
            d.decide(&mount_points(MOUNTS), usage).into_iter().map(Value::Object).collect();
        assert_eq!(
            fired,
            [
                json!({"diskusage": 95.5, "mount": "/"}),
                json!({"diskusage": 10.0, "mount": "/mnt/my disk"})
            ]
        );
    }

    #[test]
    fn percent_matches_psutil() {
        // total 1000 blocks, 100 free, 50 available to users: 900 / 950.
        assert_eq!(percent_used(1000, 100, 50), 94.7);
        assert_eq!(percent_used(0, 0, 0), 0.0);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(DiskUsage::new(json!({"/": "full"}).as_object().unwrap()).is_err());
        assert!(DiskUsage::new(json!({"(": "90%"}).as_object().unwrap()).is_err());
        assert!(DiskUsage::new(&Map::new())
            .unwrap()
            .decide(&["/".into()], |_| Some(99.0))
            .is_empty());
    }
}
