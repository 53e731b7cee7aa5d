//! Server groups and host names. Both are URL path segments (`/status/{server_group}/{host}`),
//! so they are restricted to characters that need no escaping.

use std::fmt;

/// The longest server group or host name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Server groups that would collide with the endpoints `/status/pipeline` and `/status/cron`.
pub const RESERVED_GROUPS: [&str; 2] = ["pipeline", "cron"];

fn check_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(format!("must be at most {MAX_NAME_LEN} characters"));
    }
    if value == "." || value == ".." {
        return Err("must not be `.` or `..` (they are not usable in a URL path)".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "may contain only letters, digits, `.`, `_` and `-`; found {bad:?}"
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps; the error says what is wrong with the value.
            pub fn parse(value: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(value).map(|()| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A logical group of hosts, e.g. `rsyslog-prod` (the v1 `repo`).
    ServerGroup,
    |value| {
        check_name(value)?;
        if RESERVED_GROUPS.contains(&value) {
            return Err(format!(
                "{value:?} is reserved: /status/{value} is an endpoint, not a group"
            ));
        }
        Ok(())
    }
);
name_type!(
    /// A host inside a server group, e.g. `rsyslog-01` (the v1 `server`).
    HostName,
    check_name
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_seed_names() {
        for name in [
            "rsyslog-prod",
            "rsyslog-01",
            "splunk-indexer-01",
            "a.b_c-D9",
            "rsyslog",
        ] {
            assert!(ServerGroup::parse(name).is_ok(), "{name}");
            assert!(HostName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_empty_long_and_unsafe_names() {
        assert!(HostName::parse("").unwrap_err().contains("empty"));
        assert!(HostName::parse(&"a".repeat(129))
            .unwrap_err()
            .contains("128"));
        assert!(HostName::parse(&"a".repeat(128)).is_ok());
        assert!(HostName::parse("web 01").unwrap_err().contains("' '"));
        assert!(HostName::parse("a/b").is_err());
        assert!(HostName::parse("..").is_err());
        assert!(HostName::parse("é").is_err());
    }

    #[test]
    fn endpoint_names_are_not_groups() {
        assert!(ServerGroup::parse("cron").unwrap_err().contains("reserved"));
        assert!(ServerGroup::parse("pipeline").is_err());
        assert!(ServerGroup::parse("crons").is_ok());
        assert!(
            HostName::parse("cron").is_ok(),
            "hosts may be called anything"
        );
    }
}
