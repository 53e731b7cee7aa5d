//! The vocabulary of the service: validated names, statuses, timestamps, reports and the rules
//! that merge reports into a host's current state. No HTTP, no SQL.

pub mod chain;
mod merge;
mod names;
mod report;
mod status;
mod timestamp;

pub use merge::{Facets, Head, Heads};
pub use names::{HostName, ServerGroup, MAX_NAME_LEN, RESERVED_GROUPS};
pub use report::{
    ChangedFiles, Deployment, HistoryEntry, HistoryFilter, HostState, Observation, Report,
    MAX_CHANGED_FILES, MAX_MESSAGE_LEN, MAX_PATH_LEN, MAX_TEXT_LEN,
};
pub use status::{ReportKind, Status};
pub use timestamp::Timestamp;
