//! UTC timestamps in Salt's formats (`_stamp`, jids, asctime) without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Utc {
    pub fn from_system(t: SystemTime) -> Utc {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            micros: since.subsec_micros(),
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    pub fn now() -> Utc {
        Utc::from_system(SystemTime::now())
    }

    /// Salt 3008's `_stamp`: `2026-11-25T19:15:35.104958+00:00`. Written digit by digit:
    /// every event is stamped, and `format!`'s machinery was 5% of the event path.
    pub fn stamp(&self) -> String {
        if !(0..=9999).contains(&self.year) {
            return format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
                self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
            );
        }
        let mut out = [0u8; 32];
        let mut at = 0;
        let mut put = |value: u32, width: usize, then: &[u8]| {
            let mut v = value;
            for i in (0..width).rev() {
                out[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            at += width;
            out[at..at + then.len()].copy_from_slice(then);
            at += then.len();
        };
        put(self.year as u32, 4, b"-");
        put(self.month, 2, b"-");
        put(self.day, 2, b"T");
        put(self.hour, 2, b":");
        put(self.minute, 2, b":");
        put(self.second, 2, b".");
        put(self.micros, 6, b"+00:00");
        String::from_utf8_lossy(&out[..at]).into_owned()
    }

    /// A jid: `%Y%m%d%H%M%S%f`, 20 digits.
    pub fn jid(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}{:06}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// `time.asctime()`: `Wed Nov 25 19:20:40 2026`.
    pub fn asctime(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        format!(
            "{} {} {:2} {:02}:{:02}:{:02} {}",
            DAYS[self.weekday as usize],
            MONTHS[self.month as usize - 1],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

/// Seconds since the epoch, as Salt's `ts` fields.
pub fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_match_salt() {
        // 1795634440 is the `ts` of the Salt 3008 sample start event.
        let t = UNIX_EPOCH + Duration::from_micros(1_795_634_440_104_958);
        let utc = Utc::from_system(t);
        assert_eq!(utc.stamp(), "2026-11-25T19:20:40.104958+00:00");
        let early = Utc::from_system(UNIX_EPOCH + Duration::from_micros(7));
        assert_eq!(early.stamp(), "1970-01-01T00:00:00.000007+00:00");
        assert_eq!(utc.jid(), "20261125192040104958");
        assert_eq!(utc.asctime(), "Wed Nov 25 19:20:40 2026");
        let leap = Utc::from_system(UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(leap.stamp(), "2000-02-29T00:00:00.000000+00:00");
        assert_eq!(Utc::from_system(UNIX_EPOCH).asctime(), "Thu Jan  1 00:00:00 1970");
    }
}
