//! Query parameters as every read endpoint takes them. Values are read as text and checked
//! here, so one 422 names every bad parameter. Filters take several comma-separated values
//! (Grafana's `${var:csv}`); names take `*` globs; an empty value or `*` means "all", which is
//! how Grafana's All and empty variables arrive.

use crate::domain::{AnyOf, Pattern, ReportKind, Status, Timestamp};

use super::error::{ApiError, FieldProblem};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 1000;

/// The problems found so far; `finish` turns them into one 422.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldProblem>);

impl Problems {
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.0))
        }
    }

    /// Parses an optional parameter (empty counts as absent), recording the problem under
    /// its name.
    pub fn one<T>(
        &mut self,
        name: &str,
        text: &Option<String>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = super::non_empty(text)?;
        if text.chars().count() > 1024 {
            self.0.push(FieldProblem::new(
                name,
                format!("is {} characters long; at most 1024", text.chars().count()),
            ));
            return None;
        }
        match parse(text) {
            Ok(value) => Some(value),
            Err(problem) => {
                self.0.push(FieldProblem::new(name, problem));
                None
            }
        }
    }

    /// Comma-separated values of any text, with `*` globs.
    pub fn patterns(&mut self, name: &str, text: &Option<String>) -> AnyOf<Pattern> {
        self.one(name, text, AnyOf::parse_csv).unwrap_or_default()
    }

    /// Comma-separated server group or host names, with `*` globs.
    pub fn names(&mut self, name: &str, text: &Option<String>) -> AnyOf<Pattern> {
        let check = |text: &str| {
            let values = AnyOf::parse_csv(text)?;
            for value in values.iter() {
                let bare = value.as_str().replace('*', "");
                if let Some(bad) = bare
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                {
                    return Err(format!(
                        "{:?}: names contain only letters, digits, `.`, `_`, `-` (and `*` as \
                         a wildcard here); found {bad:?}",
                        value.as_str()
                    ));
                }
            }
            Ok(values)
        };
        self.one(name, text, check).unwrap_or_default()
    }

    /// Comma-separated values of a closed set (`*` or empty: all).
    fn closed<T>(
        &mut self,
        name: &str,
        text: &Option<String>,
        parse: fn(&str) -> Result<T, String>,
    ) -> AnyOf<T> {
        let all = |text: &str| -> Result<AnyOf<T>, String> {
            let mut values = Vec::new();
            for item in text.split(',').filter(|i| !i.is_empty()) {
                if item == "*" {
                    return Ok(AnyOf(Vec::new()));
                }
                values.push(parse(item)?);
            }
            Ok(AnyOf(values))
        };
        self.one(name, text, all).unwrap_or(AnyOf(Vec::new()))
    }

    pub fn statuses(&mut self, name: &str, text: &Option<String>) -> AnyOf<Status> {
        self.closed(name, text, Status::parse)
    }

    pub fn kinds(&mut self, name: &str, text: &Option<String>) -> AnyOf<ReportKind> {
        self.closed(name, text, ReportKind::parse)
    }

    /// `true` or `false` (empty or `*`: no filter).
    pub fn boolean(&mut self, name: &str, text: &Option<String>) -> Option<bool> {
        self.one(name, text, |text| match text {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            "*" => Ok(None),
            other => Err(format!("must be true or false; got {other:?}")),
        })
        .flatten()
    }

    /// RFC 3339 or epoch milliseconds.
    pub fn instant(&mut self, name: &str, text: &Option<String>) -> Option<Timestamp> {
        self.one(name, text, Timestamp::parse_query)
    }

    /// Rows per page, 1–1000, default 100.
    pub fn limit(&mut self, text: &Option<String>) -> u32 {
        self.one(
            "limit",
            text,
            whole(1..=MAX_LIMIT, "a whole number from 1 to 1000"),
        )
        .unwrap_or(DEFAULT_LIMIT)
    }

    /// A report id to page below.
    pub fn before(&mut self, text: &Option<String>) -> Option<i64> {
        self.one(
            "before",
            text,
            whole(1.., "a report id (a whole number from 1)"),
        )
    }
}

/// A whole number in `range`, described as `expected` in the error.
pub fn whole<'a, T, R>(range: R, expected: &'a str) -> impl FnOnce(&str) -> Result<T, String> + 'a
where
    T: std::str::FromStr + PartialOrd,
    R: std::ops::RangeBounds<T> + 'a,
{
    move |text| match text.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!("must be {expected}; got {text:?}")),
    }
}

/// A string with a pattern and a length limit: what a filter parameter accepts, so that
/// every value the schema allows is one the parser takes.
fn pattern_schema(pattern: &str, max: usize) -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(pattern))
        .max_length(Some(max))
        .into()
}

/// Comma-separated values from a closed set, or `*`, or empty.
fn closed_schema(item: &str) -> utoipa::openapi::schema::Schema {
    let item = format!("({item}|\\*)?");
    pattern_schema(&format!("^{item}(,{item})*$"), 1024)
}

/// Free-text values (comma-separated, `*` globs).
pub fn text_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .max_length(Some(1024))
        .into()
}

/// Server group or host names (comma-separated, `*` globs).
pub fn names_schema() -> utoipa::openapi::schema::Schema {
    pattern_schema("^[A-Za-z0-9._*,-]*$", 1024)
}

/// Statuses, v1 or v2 spelling, any case.
pub fn statuses_schema() -> utoipa::openapi::schema::Schema {
    closed_schema(
        "[sS][yY][nN][cC][eE][dD]|[oO][uU][tT]_[oO][fF]_[sS][yY][nN][cC]\
         |[fF][aA][iI][lL][eE][dD]|[uU][nN][kK][nN][oO][wW][nN]",
    )
}

/// History row kinds.
pub fn kinds_schema() -> utoipa::openapi::schema::Schema {
    closed_schema("pipeline|cron|legacy|decommission|import|retention")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_values_globs_and_all() {
        let mut p = Problems::default();
        let names = p.names("server_group", &Some("rsyslog-*,nginx".into()));
        assert_eq!(names.0.len(), 2);
        assert!(p.names("host", &Some("*".into())).is_empty());
        assert!(p.statuses("status", &Some("".into())).is_empty());
        assert_eq!(
            p.statuses("status", &Some("synced,FAILED".into())).0.len(),
            2
        );
        assert_eq!(p.boolean("stale", &Some("true".into())), Some(true));
        assert!(p.finish().is_ok());
    }

    #[test]
    fn every_bad_value_is_named() {
        let mut p = Problems::default();
        p.names("server_group", &Some("a b".into()));
        p.statuses("status", &Some("synced,green".into()));
        p.boolean("stale", &Some("yes".into()));
        p.limit(&Some("0".into()));
        match p.finish() {
            Err(ApiError::Unprocessable(problems)) => {
                let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
                assert_eq!(fields, ["server_group", "status", "stale", "limit"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
