//! Filter values as dashboards send them: a name or value where `*` stands for any run of
//! characters (`rsyslog-*`). Nothing else is special, so a value with `?` or `[` matches
//! itself; `*` alone matches everything.

use std::fmt;

/// A value with `*` wildcards. Matching is case-sensitive, like the names it matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Any non-empty text (empty means "no filter" and never reaches here).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("is empty".to_owned());
        }
        let length = text.chars().count();
        if length > 1024 {
            return Err(format!("is {length} characters long; at most 1024"));
        }
        Ok(Pattern(text.to_owned()))
    }

    /// `*`: everything.
    pub fn any() -> Self {
        Pattern("*".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `*` alone: everything (Grafana's All).
    pub fn is_any(&self) -> bool {
        self.0.bytes().all(|b| b == b'*')
    }

    /// Whether `text` matches: the literal pieces between the stars appear in order, the first
    /// at the start and the last at the end (unless a star stands there).
    pub fn matches(&self, text: &str) -> bool {
        let mut pieces = self.0.split('*');
        let first = pieces.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let pieces: Vec<&str> = pieces.collect();
        let Some((last, middle)) = pieces.split_last() else {
            // No star: the whole text is the first piece.
            return rest.is_empty();
        };
        for piece in middle {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One filter: the values it accepts (any of them). Empty: no filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnyOf<T>(pub Vec<T>);

impl<T> Default for AnyOf<T> {
    fn default() -> Self {
        AnyOf(Vec::new())
    }
}

impl<T> AnyOf<T> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
}

impl AnyOf<Pattern> {
    /// Comma-separated values as Grafana's `${var:csv}` sends them. An empty value, an empty
    /// item or `*` means "all": the filter is dropped.
    pub fn parse_csv(text: &str) -> Result<Self, String> {
        let mut values = Vec::new();
        for item in text.split(',') {
            if item.is_empty() {
                continue;
            }
            let pattern = Pattern::parse(item)?;
            if pattern.is_any() {
                return Ok(AnyOf(Vec::new()));
            }
            values.push(pattern);
        }
        Ok(AnyOf(values))
    }

    pub fn accepts(&self, text: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    #[test]
    fn stars_match_any_run_of_characters() {
        assert!(p("rsyslog-*").matches("rsyslog-prod"));
        assert!(p("rsyslog-*").matches("rsyslog-"));
        assert!(!p("rsyslog-*").matches("nginx-prod"));
        assert!(p("*-prod").matches("nginx-prod"));
        assert!(!p("*-prod").matches("nginx-prod-2"));
        assert!(p("a*b*c").matches("a-b-c"));
        assert!(p("a*b*c").matches("abc"));
        assert!(!p("a*b*c").matches("acb"));
        assert!(!p("ab*ba").matches("aba"), "pieces may not overlap");
        assert!(p("*").matches(""));
        assert!(p("**").matches("x"));
    }

    #[test]
    fn without_a_star_the_value_matches_itself_only() {
        assert!(p("rsyslog-01").matches("rsyslog-01"));
        assert!(!p("rsyslog-01").matches("rsyslog-012"));
        assert!(!p("rsyslog-01").matches("Rsyslog-01"));
        assert!(p("a?[b]").matches("a?[b]"), "? and [ are literal");
        assert!(!p("a?").matches("ab"));
    }

    #[test]
    fn csv_lists_values_and_all_means_no_filter() {
        let two = AnyOf::parse_csv("a,b-*").unwrap();
        assert_eq!(two.0.len(), 2);
        assert!(two.accepts("b-1") && two.accepts("a") && !two.accepts("c"));
        assert!(AnyOf::parse_csv("").unwrap().is_empty());
        assert!(AnyOf::parse_csv("*").unwrap().is_empty());
        assert!(AnyOf::parse_csv("a,*").unwrap().is_empty());
        assert_eq!(AnyOf::parse_csv("a,,b").unwrap().0.len(), 2);
    }
}
