//! What retention removed, as its rows in the chain record it: the body of a `retention`
//! row lists the runs of consecutive ids it removed, with the hashes at both ends of each, so
//! `verify` can link the chain across every gap. The same on every backend.

use serde::{Deserialize, Serialize};

use crate::domain::chain::is_hash;

/// A run of consecutive ids that retention removed, and the hashes at its ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemovedRun {
    pub first_id: i64,
    pub last_id: i64,
    /// The `prev_hash` of the run's first row: the hash of the row before the gap.
    pub prev_hash: String,
    /// The `hash` of the run's last row: the `prev_hash` of the row after the gap.
    pub last_hash: String,
}

/// The body of a retention row.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RetentionRecord {
    /// Rows this transaction removed.
    pub removed: u64,
    /// Earlier retention rows among them, whose runs are restated in `runs`.
    pub restates: Vec<i64>,
    pub policy: PolicyText,
    /// The receive times below which routine reports and changes were removable.
    pub cutoffs: CutoffText,
    /// Every gap this row vouches for: what it removed, merged with what the rows it
    /// restates had removed.
    pub runs: Vec<RemovedRun>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PolicyText {
    pub retain_reports: String,
    pub retain_changes: String,
    pub retain_per_host: u32,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CutoffText {
    pub reports: Option<String>,
    pub changes: Option<String>,
}

/// Only what `verify` reads of a retention row.
#[derive(Deserialize)]
struct RunsOnly {
    runs: Vec<RemovedRun>,
}

impl RetentionRecord {
    /// The runs a retention row's body describes, checked for shape.
    pub(crate) fn runs_of(body: &str) -> Result<Vec<RemovedRun>, String> {
        let parsed: RunsOnly = serde_json::from_str(body).map_err(|e| {
            format!("its description of what retention removed cannot be read: {e}")
        })?;
        for run in &parsed.runs {
            if run.first_id < 1
                || run.last_id < run.first_id
                || !is_hash(&run.prev_hash)
                || !is_hash(&run.last_hash)
            {
                return Err(format!(
                    "its description of what retention removed holds a malformed run \
                     ({}..{})",
                    run.first_id, run.last_id
                ));
            }
        }
        Ok(parsed.runs)
    }
}
