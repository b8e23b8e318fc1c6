//! Beacons: the memory of an idle minion running the beacons (inotify, diskusage,
//! load, memusage, log), and the latency from writing a file in a watched directory to its
//! inotify beacon event in the master's event log.

use super::{mib, Bench};
use crate::procs::{median_ms, Follow, Result};
use std::time::{Duration, Instant};

impl Bench {
    pub fn beacons(&mut self) -> Result<()> {
        eprintln!("beacons: one real minion with inotify, diskusage, load, memusage and log");
        let master = self.master("beacons", "auto_accept: True\n", |dir| {
            dir.write("watched/app.log", "")?;
            Ok(())
        })?;
        let dir = master.dir.join("watched");
        let config = format!(
            "beacons:\n  inotify:\n    - files:\n        {dir}:\n          mask: [close_write]\n    \
             - disable_during_state_run: True\n  diskusage:\n    - /: 90%\n    - interval: 60\n  \
             load:\n    - averages:\n        1m: [0.0, 1000.0]\n  memusage:\n    - percent: 100%\n  \
             log:\n    - file: {log}\n    - tags:\n        error:\n          regex: ERROR\n",
            dir = dir.display(),
            log = master.dir.join("watched/app.log").display()
        );
        let mut minion = self.minion(&master, "minion1", &config)?;
        minion.wait_line("log beacon: watching")?;
        minion.wait_line("authenticated to master")?;
        // Let every beacon run a few times (they run each second) before measuring.
        std::thread::sleep(Duration::from_secs(3));
        let idle = minion.memory();
        self.row(
            "beacons",
            "`halite-minion` RSS, idle, with 5 beacons".into(),
            mib(idle.rss_kib),
            "< 4 MB",
            Some(idle.rss_kib < 4 * 1024),
        );

        let reps = if self.quick { 5 } else { 31 };
        let mut samples = Vec::new();
        let mut log = Follow::from_end(&master.event_log());
        // A new file each time: one IN_CLOSE_WRITE, one event, a path no other line has.
        for i in 0..reps {
            let path = dir.join(format!("f{i}"));
            let started = Instant::now();
            std::fs::write(&path, "x").map_err(|e| e.to_string())?;
            log.wait_count(&format!("{}\"", path.display()), 1)?;
            samples.push(started.elapsed());
        }
        let ms = median_ms(samples);
        self.row(
            "beacons",
            "file write → its inotify beacon event in the master's event log (median)".into(),
            format!("{ms:.2} ms"),
            "",
            None,
        );
        Ok(())
    }
}
