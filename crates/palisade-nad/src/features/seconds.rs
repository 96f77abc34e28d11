//! A non-negative duration in whole nanoseconds, parsed exactly from decimal seconds.

use std::fmt;
use std::str::FromStr;

/// Seconds with nanosecond precision, e.g. a window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seconds(u64);

impl Seconds {
    /// From nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        Seconds(ns)
    }

    /// From whole seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        Seconds(s.saturating_mul(1_000_000_000))
    }

    /// In nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// In seconds, as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Formats a time `ns` after the epoch like this duration is written: whole seconds when
    /// the duration is whole seconds, else a decimal without trailing zeros.
    pub fn format_instant(self, ns: u64) -> String {
        let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
        if self.0.is_multiple_of(1_000_000_000) || frac == 0 {
            return s.to_string();
        }
        let digits = format!("{frac:09}");
        format!("{s}.{}", digits.trim_end_matches('0'))
    }
}

/// Not a non-negative decimal number of seconds with at most 9 decimals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a non-negative number of seconds with at most 9 decimals")]
pub struct BadSeconds(pub String);

impl FromStr for Seconds {
    type Err = BadSeconds;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSeconds(s.to_owned());
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) || frac.len() > 9 {
            return Err(bad());
        }
        let whole: u64 = if int.is_empty() { 0 } else { int.parse().map_err(|_| bad())? };
        let frac_ns: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(|_| bad())? };
        whole.checked_mul(1_000_000_000).and_then(|n| n.checked_add(frac_ns)).map(Seconds).ok_or_else(bad)
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", Seconds(1).format_instant(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::Seconds;

    #[test]
    fn decimal_seconds_parse_exactly() {
        assert_eq!("60".parse::<Seconds>(), Ok(Seconds::from_secs(60)));
        assert_eq!("0.5".parse::<Seconds>(), Ok(Seconds::from_nanos(500_000_000)));
        assert_eq!(".25".parse::<Seconds>(), Ok(Seconds::from_nanos(250_000_000)));
        assert_eq!("1.000000001".parse::<Seconds>(), Ok(Seconds::from_nanos(1_000_000_001)));
        for bad in ["", ".", "-1", "1e3", "1.0000000001", "abc", "99999999999999999999"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn instants_print_whole_seconds_for_whole_windows() {
        assert_eq!(Seconds::from_secs(60).format_instant(1_700_000_040_000_000_000), "1700000040");
        assert_eq!(Seconds::from_nanos(500_000_000).format_instant(1_500_000_000), "1.5");
        assert_eq!(Seconds::from_nanos(500_000_000).format_instant(2_000_000_000), "2");
    }
}
