//! `halite -p`: Salt's progress bar (the `progressbar` widgets of salt/output/progress.py:
//! percentage, bar, elapsed time, `Returns: [k/n]`), redrawn on stderr with `\r`, and only
//! when stderr is a terminal, so a pipe or a log never receives it.

use std::io::Write;
use std::time::{Duration, Instant};

/// One line of the bar, `width` columns wide (the bar stretches to fill them).
pub fn line(done: usize, total: usize, elapsed: Duration, width: usize) -> String {
    let fraction = match total {
        0 => 1.0,
        _ => (done as f64 / total as f64).min(1.0),
    };
    let secs = elapsed.as_secs();
    let percent = format!("{:3}%", (fraction * 100.0) as u32);
    let tail = format!(
        "Elapsed Time: {}:{:02}:{:02} Returns: [{done}/{total}]",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    // `percent |bar| tail`: two spaces and two bar ends besides the bar itself.
    let inner = width.saturating_sub(percent.len() + tail.len() + 4).max(1);
    let filled = ((inner as f64) * fraction) as usize;
    format!("{percent} |{}{}| {tail}", "#".repeat(filled), " ".repeat(inner - filled))
}

/// The bar on a terminal's stderr; does nothing at all when stderr is not one.
pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    tty: bool,
}

impl Progress {
    /// A bar for `total` minions, drawn at once (at 0%) if stderr is a terminal.
    pub fn start(total: usize) -> Progress {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
        let bar = Progress { total, done: 0, started: Instant::now(), tty };
        bar.draw();
        bar
    }

    /// One more minion returned (or was given up on).
    pub fn step(&mut self) {
        self.done += 1;
        self.draw();
    }

    /// Ends the bar's line.
    pub fn finish(self) {
        if self.tty {
            let _ = std::io::stderr().write_all(b"\n");
        }
    }

    fn draw(&self) {
        if !self.tty {
            return;
        }
        let text = line(self.done, self.total, self.started.elapsed(), terminal_width());
        let _ = std::io::stderr().write_all(format!("\r{text}").as_bytes());
    }
}

/// stderr's width in columns (80 when the terminal does not say).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass, which lives across the call.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    match ok && size.ws_col > 0 {
        true => usize::from(size.ws_col),
        false => 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_is_salts_widgets_filling_the_width() {
        let text = line(1, 9, Duration::from_secs(3725), 80);
        assert_eq!(text.len(), 80);
        assert!(text.starts_with(" 11% |#### "), "{text}");
        assert!(text.ends_with("| Elapsed Time: 1:02:05 Returns: [1/9]"), "{text}");
        let full = line(4, 4, Duration::ZERO, 60);
        assert_eq!(full.len(), 60);
        assert!(full.starts_with("100% |###"), "{full}");
        assert!(full.contains("#| Elapsed Time: 0:00:00 Returns: [4/4]"), "{full}");
        // A narrow terminal still gets the counts; no targets is complete.
        assert!(line(0, 0, Duration::ZERO, 10).starts_with("100% |#| "));
        assert!(line(0, 3, Duration::ZERO, 10).starts_with("  0% | | "));
    }
}
