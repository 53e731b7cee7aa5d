//! The vocabulary of the service: validated names, statuses, timestamps, reports and the rules
//! that merge reports into a host's current state. No HTTP, no SQL.

pub mod chain;
mod clock;
mod merge;
mod names;
mod period;
mod report;
mod retention;
mod status;
mod timestamp;

pub use clock::Clock;
pub use merge::{FacetTimes, Facets, Head, Heads};
pub use names::{HostName, ServerGroup, MAX_NAME_LEN, RESERVED_GROUPS};
pub use period::Period;
pub use report::{
    ChangedFiles, Deployment, HistoryEntry, HistoryFilter, HostState, Observation, Report,
    MAX_CHANGED_FILES, MAX_MESSAGE_LEN, MAX_PATH_LEN, MAX_TEXT_LEN,
};
pub use retention::{Cutoffs, RetentionPolicy, Tier};
pub use status::{ReportKind, Status};
pub use timestamp::Timestamp;
