//! Silent hosts. A host that has had a drift check (cron or v1) turns stale when the server
//! has received none for longer than its group's allowance; a host that only ever reported
//! deployments is never stale. Computed from the server's receive times at read time, never
//! stored.

use std::fmt;

use super::{Pattern, Period, Timestamp};

/// How long hosts of the groups matching a pattern may stay silent; None: never stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaleRule {
    pub groups: Pattern,
    pub after: Option<Period>,
}

/// `--stale-after`: rules tried in order, the first whose pattern matches the server_group
/// wins; a group no rule matches gets `DEFAULT_AFTER`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StalePolicy {
    pub rules: Vec<StaleRule>,
}

/// One hour: the seeds' cron runs every 2 minutes, so this is many missed checks.
pub const DEFAULT_AFTER: Period = Period::HOUR;

impl Default for StalePolicy {
    fn default() -> Self {
        StalePolicy {
            rules: vec![StaleRule {
                groups: Pattern::any(),
                after: Some(DEFAULT_AFTER),
            }],
        }
    }
}

impl StalePolicy {
    /// `GLOB=DURATION[,GLOB=DURATION...]`, e.g. `rsyslog-*=10m,lab-*=off,*=1h`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (groups, after) = item.split_once('=').ok_or_else(|| {
                format!("{item:?} is not GLOB=DURATION (e.g. rsyslog-*=10m or *=1h)")
            })?;
            let groups = Pattern::parse(groups.trim())
                .map_err(|p| format!("the group pattern in {item:?} {p}"))?;
            let after =
                Period::parse_or_off(after.trim()).map_err(|p| format!("in {item:?}: {p}"))?;
            rules.push(StaleRule { groups, after });
        }
        if rules.is_empty() {
            return Err("is empty: give at least one GLOB=DURATION, e.g. *=1h".to_owned());
        }
        Ok(StalePolicy { rules })
    }

    /// How long hosts of `group` may stay silent; None: they are never stale.
    pub fn after(&self, group: &str) -> Option<Period> {
        self.rules
            .iter()
            .find(|rule| rule.groups.matches(group))
            .map_or(Some(DEFAULT_AFTER), |rule| rule.after)
    }

    /// When a host of `group` whose newest drift check arrived at `last_drift` turns stale.
    pub fn due_by(&self, group: &str, last_drift: Option<Timestamp>) -> Option<Timestamp> {
        last_drift?.checked_add(self.after(group)?)
    }
}

/// Whether a host due by `due_by` is stale at `now`: silent for longer than allowed.
pub fn is_stale(due_by: Option<Timestamp>, now: Timestamp) -> bool {
    due_by.is_some_and(|due| now > due)
}

impl fmt::Display for StalePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match rule.after {
                Some(after) => write!(f, "{sep}{}={after}", rule.groups)?,
                None => write!(f, "{sep}{}=off", rule.groups)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn first_matching_rule_wins_and_unmatched_groups_get_an_hour() {
        let policy = StalePolicy::parse("rsyslog-*=10m, lab-*=off,rsyslog-prod=1d").unwrap();
        assert_eq!(policy.after("rsyslog-prod"), Period::from_secs(600));
        assert_eq!(policy.after("lab-1"), None);
        assert_eq!(policy.after("nginx"), Some(DEFAULT_AFTER));
        assert_eq!(
            policy.to_string(),
            "rsyslog-*=10m,lab-*=off,rsyslog-prod=1d"
        );
    }

    #[test]
    fn bad_policies_name_the_item() {
        for (text, needle) in [
            ("", "empty"),
            ("rsyslog", "GLOB=DURATION"),
            ("*=10", "duration"),
            ("=1h", "empty"),
            ("*=0s", "zero"),
        ] {
            let problem = StalePolicy::parse(text).unwrap_err();
            assert!(problem.contains(needle), "{text:?}: {problem}");
        }
    }

    #[test]
    fn due_by_counts_from_the_last_drift_check_and_stale_is_strictly_after() {
        let policy = StalePolicy::default();
        assert_eq!(policy.due_by("g", None), None, "never had a drift check");
        let due = policy
            .due_by("g", Some(at("2026-04-26T11:00:00Z")))
            .unwrap();
        assert_eq!(due, at("2026-04-26T12:00:00Z"));
        assert!(!is_stale(Some(due), due));
        assert!(is_stale(Some(due), at("2026-04-26T12:00:00.001Z")));
        assert!(!is_stale(None, at("2099-01-01T00:00:00Z")));
    }
}
