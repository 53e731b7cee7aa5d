//! Lengths of time as operators write them: `45s`, `90m`, `36h`, `30d`, the one form every
//! duration option of the service takes.

use std::fmt;
use std::time::Duration;

/// A whole number of seconds, at least one, written with a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    seconds: u64,
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// The longest period accepted: 100 years, far beyond any retention and safe to add to a time.
const MAX_SECONDS: u64 = 100 * 366 * 86_400;

impl Period {
    pub const MINUTE: Period = Period { seconds: 60 };
    pub const HOUR: Period = Period { seconds: 3_600 };
    pub const DAY: Period = Period { seconds: 86_400 };

    /// `45s`, `90m`, `36h` or `30d`: a whole number above zero and one unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let problem = || {
            format!("{text:?} is not a duration: write a whole number and a unit, e.g. 45s, 90m, 36h, 30d")
        };
        let mut chars = text.chars();
        let unit = chars.next_back().ok_or_else(problem)?;
        let number = chars.as_str();
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(problem)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(problem());
        }
        let count: u64 = number.parse().map_err(|_| problem())?;
        let seconds = count
            .checked_mul(*scale)
            .filter(|s| *s <= MAX_SECONDS)
            .ok_or_else(|| format!("{text:?} is longer than 100 years"))?;
        if seconds == 0 {
            return Err(format!("{text:?} is zero; it must be at least 1s"));
        }
        Ok(Period { seconds })
    }

    /// A period, or `0` / `off` for "no limit" (None).
    pub fn parse_or_off(text: &str) -> Result<Option<Self>, String> {
        match text {
            "0" | "off" => Ok(None),
            _ => Self::parse(text)
                .map(Some)
                .map_err(|problem| format!("{problem}; or 0 or off for no limit")),
        }
    }

    pub fn from_secs(seconds: u64) -> Option<Self> {
        (1..=MAX_SECONDS)
            .contains(&seconds)
            .then_some(Period { seconds })
    }

    pub fn as_secs(self) -> u64 {
        self.seconds
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

impl fmt::Display for Period {
    /// In the largest unit that divides it: `30d`, `36h`, `90m`, `45s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, scale)| self.seconds.is_multiple_of(*scale))
            .unwrap_or(&('s', 1));
        write!(f, "{}{unit}", self.seconds / scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_their_text() {
        for (text, seconds) in [
            ("45s", 45),
            ("90m", 5400),
            ("36h", 129_600),
            ("30d", 2_592_000),
        ] {
            let period = Period::parse(text).unwrap();
            assert_eq!(period.as_secs(), seconds);
            assert_eq!(period.to_string(), text);
        }
        assert_eq!(Period::parse("120m").unwrap().to_string(), "2h");
        assert_eq!(Period::parse("86400s").unwrap().to_string(), "1d");
    }

    #[test]
    fn malformed_durations_are_refused_with_the_form_to_use() {
        for bad in [
            "", "30", "d", "30 d", "-5m", "1.5h", "30D", "5w", "+5m", " 5m", "0s",
        ] {
            let problem = Period::parse(bad).unwrap_err();
            assert!(problem.contains(&format!("{bad:?}")), "{bad}: {problem}");
        }
        assert!(Period::parse("30d").is_ok());
        assert!(Period::parse("99999999999999999999d").is_err());
        assert!(Period::parse("40000d").unwrap_err().contains("100 years"));
    }

    #[test]
    fn zero_or_off_means_no_limit() {
        assert_eq!(Period::parse_or_off("0").unwrap(), None);
        assert_eq!(Period::parse_or_off("off").unwrap(), None);
        assert_eq!(
            Period::parse_or_off("400d").unwrap(),
            Period::from_secs(400 * 86_400)
        );
        let problem = Period::parse_or_off("forever").unwrap_err();
        assert!(problem.contains("0 or off"), "{problem}");
    }
}
