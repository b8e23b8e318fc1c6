//! Failover (`master_type: failover`): a real `halite-minion` on the first of two masters that
//! share a key pair; the first is killed and the clock runs until the minion's start event is
//! in the second master's log (then a `test.ping` there must answer).

use super::Bench;
use crate::procs::{median_ms, Daemon, Follow, Result};
use std::process::Command;
use std::time::Instant;

impl Bench {
    /// From killing a minion's master to the minion live on its second master.
    pub fn failover(&mut self) -> Result<()> {
        let reps = if self.quick { 1 } else { 5 };
        eprintln!("failover: {reps} runs, a master killed under a real minion");
        let mut samples = Vec::new();
        for _ in 0..reps {
            let a = self.master("failover-a", "auto_accept: true\n", |_| Ok(()))?;
            let (key, public) = (a.pki().join("master.key"), a.pki().join("master.pub"));
            let b = self.master("failover-b", "auto_accept: true\n", |dir| {
                let pki = dir.join("root/etc/halite/pki/master");
                std::fs::create_dir_all(&pki).map_err(|e| e.to_string())?;
                std::fs::copy(&key, pki.join("master.key")).map_err(|e| e.to_string())?;
                std::fs::copy(&public, pki.join("master.pub")).map_err(|e| e.to_string())?;
                Ok(())
            })?;
            // The minion's tree lives with the master that stays.
            b.dir.write(
                "minion-conf/minion",
                &format!(
                    "root_dir: {}\nid: fo1\nmaster: ['{}', '{}']\nmaster_type: failover\n\
                     master_alive_interval: 1\nrecon_default: 100\nrecon_max: 500\n",
                    b.dir.join("minion").display(),
                    a.addr,
                    b.addr
                ),
            )?;
            let mut on_a = Follow::from_end(&a.event_log());
            let mut cmd = Command::new(self.bin("halite-minion"));
            cmd.arg("-c").arg(b.dir.join("minion-conf"));
            let _minion = Daemon::spawn(cmd, b.dir.join("minion.log"), "halite-minion")?;
            on_a.wait_count("\"tag\":\"salt/minion/fo1/start\"", 1)?;
            let mut on_b = Follow::from_end(&b.event_log());
            let start = Instant::now();
            drop(a);
            on_b.wait_count("\"tag\":\"salt/minion/fo1/start\"", 1)?;
            samples.push(start.elapsed());
            let out = self.halite_until_ok(&b, &["fo1", "test.ping"])?;
            if !out.contains("True") {
                self.failures
                    .push(format!("failover: fo1 did not answer on the second master: {out}"));
            }
        }
        let ms = median_ms(samples);
        self.row(
            "failover",
            "a real minion whose master is killed, live on its second master (master_type: \
             failover, connection closed by the kernel)"
                .into(),
            format!("{ms:.0} ms"),
            "",
            None,
        );
        Ok(())
    }
}
