//! Instants in UTC with a fixed millisecond precision. Their text form is RFC 3339
//! (`2026-04-26T10:30:00.000Z`), the same width for every value, so text order is time order
//! in SQLite and Grafana reads every timestamp with one parser.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

const CANONICAL: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A UTC instant truncated to whole milliseconds; the only way in is through a validating parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The server clock, now.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self(now.replace_millisecond(now.millisecond()).unwrap_or(now))
    }

    /// Parses RFC 3339 with any offset and any number of fractional digits; the result is UTC,
    /// truncated to milliseconds. Years outside 0000–9999 cannot be written in RFC 3339.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
            format!(
                "`{}` is not an RFC 3339 timestamp with a time zone, e.g. 2026-04-26T10:30:00Z",
                shorten(text)
            )
        })?;
        Self::from_datetime(parsed).ok_or_else(|| {
            format!(
                "`{}` lies outside the years 0000–9999 in UTC",
                shorten(text)
            )
        })
    }

    /// Milliseconds since the Unix epoch.
    pub fn epoch_millis(self) -> i64 {
        i64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Milliseconds since the Unix epoch (what Grafana's `${__timeFrom}` sends).
    pub fn from_epoch_millis(millis: i64) -> Result<Self, String> {
        let nanos = i128::from(millis) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(Self::from_datetime)
            .ok_or_else(|| format!("{millis} ms since the epoch is outside the years 0000–9999"))
    }

    /// A query-string instant: epoch milliseconds (all digits, optionally signed) or RFC 3339.
    pub fn parse_query(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let millis: i64 = text
                .parse()
                .map_err(|_| format!("`{}` is too large for epoch milliseconds", shorten(text)))?;
            return Self::from_epoch_millis(millis);
        }
        // In a query string an unencoded `+` arrives as a space: `…12:00:00 02:00`.
        let repaired = text.replacen(' ', "+", 1);
        Self::parse_rfc3339(&repaired).map_err(|_| {
            format!(
                "`{}` is neither epoch milliseconds nor an RFC 3339 timestamp \
                 (write `+` in an offset as %2B)",
                shorten(text)
            )
        })
    }

    /// UTC, truncated to milliseconds; None when the UTC year is outside 0000–9999 (an offset
    /// can push `9999-12-31T23:30:00-01:00` into year 10000).
    fn from_datetime(value: OffsetDateTime) -> Option<Self> {
        let utc = value.checked_to_offset(UtcOffset::UTC)?;
        if !(0..=9999).contains(&utc.year()) {
            return None;
        }
        // Truncation cannot fail: the value stays on the same second.
        let truncated = utc.replace_millisecond(utc.millisecond()).unwrap_or(utc);
        Some(Self(truncated))
    }

    /// This instant `period` earlier; None before the year 0000.
    pub fn checked_sub(self, period: super::Period) -> Option<Self> {
        let seconds = i64::try_from(period.as_secs()).ok()?;
        self.0
            .checked_sub(Duration::seconds(seconds))
            .and_then(Self::from_datetime)
    }

    /// This instant `period` later; None after the year 9999.
    pub fn checked_add(self, period: super::Period) -> Option<Self> {
        let seconds = i64::try_from(period.as_secs()).ok()?;
        self.0
            .checked_add(Duration::seconds(seconds))
            .and_then(Self::from_datetime)
    }

    /// How far this instant lies after `other` (negative when before).
    pub fn since(self, other: Timestamp) -> Duration {
        self.0 - other.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Formatting can only fail for years that parsing already refused.
        match self.0.format(CANONICAL) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// Echoes client input in error messages without letting a huge value flood the response.
fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_is_utc_with_three_fraction_digits() {
        let t = Timestamp::parse_rfc3339("2026-04-26T12:30:00+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-04-26T10:30:00.000Z");
        let t = Timestamp::parse_rfc3339("2026-04-26T10:30:00.123456789Z").unwrap();
        assert_eq!(t.to_string(), "2026-04-26T10:30:00.123Z");
    }

    #[test]
    fn canonical_form_parses_back_to_the_same_instant() {
        let t = Timestamp::parse_rfc3339("2026-04-26T10:30:00.5Z").unwrap();
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn timestamps_without_zone_are_refused() {
        let err = Timestamp::parse_rfc3339("2026-04-26T10:30:00").unwrap_err();
        assert!(err.contains("time zone"), "{err}");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
        assert!(Timestamp::parse_rfc3339("").is_err());
    }

    #[test]
    fn query_accepts_epoch_millis_and_rfc3339() {
        let a = Timestamp::parse_query("1777199400000").unwrap();
        let b = Timestamp::parse_query("2026-04-26T10:30:00Z").unwrap();
        assert_eq!(a, b);
        assert!(Timestamp::parse_query("-1000").is_ok());
        assert!(Timestamp::parse_query("99999999999999999999").is_err());
        assert!(
            Timestamp::parse_query("999999999999999").is_err(),
            "year > 9999"
        );
        assert!(
            Timestamp::parse_query("99999999999999").is_ok(),
            "year 5138"
        );
        assert!(Timestamp::parse_query("12abc").is_err());
    }

    #[test]
    fn offsets_cannot_leave_the_four_digit_years() {
        assert!(Timestamp::parse_rfc3339("9999-12-31T23:30:00-01:00").is_err());
        assert!(Timestamp::parse_rfc3339("0000-01-01T00:30:00+01:00").is_err());
        assert!(Timestamp::parse_rfc3339("9999-12-31T23:30:00+01:00").is_ok());
        assert!(Timestamp::parse_query("9999-12-31T23:30:00-01:00").is_err());
    }

    #[test]
    fn query_repairs_a_plus_decoded_as_space() {
        let spaced = Timestamp::parse_query("2026-04-26T12:30:00 02:00").unwrap();
        assert_eq!(spaced.to_string(), "2026-04-26T10:30:00.000Z");
    }

    #[test]
    fn surrounding_whitespace_is_not_a_timestamp() {
        assert!(Timestamp::parse_rfc3339(" 2026-04-26T10:30:00Z").is_err());
    }

    #[test]
    fn text_order_is_time_order() {
        let early = Timestamp::parse_rfc3339("2026-04-26T09:59:59.999Z").unwrap();
        let late = Timestamp::parse_rfc3339("2026-04-26T10:00:00Z").unwrap();
        assert!(early < late);
        assert!(early.to_string() < late.to_string());
    }
}
