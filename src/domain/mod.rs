//! The vocabulary of the service: validated names, statuses, timestamps, reports and the rules
//! that merge reports into a host's current state. No HTTP, no SQL.

pub mod chain;
mod clock;
mod fleet;
mod merge;
mod names;
mod pattern;
mod period;
mod report;
mod retention;
mod staleness;
mod status;
mod timestamp;

pub use clock::Clock;
pub use fleet::{
    FleetFilter, FleetOrder, FleetPage, FleetRow, FleetSummary, HistoryStats, HostGauge, Rollout,
    RolloutFilter, RolloutHost, SortKey, Transition, TransitionFilter,
};
pub use merge::{FacetTimes, Facets, Head, Heads};
pub use names::{HostName, ServerGroup, MAX_NAME_LEN, RESERVED_GROUPS};
pub use pattern::{AnyOf, Pattern};
pub use period::Period;
pub use report::{
    ChangedFiles, Deployment, HistoryEntry, HistoryFilter, HostState, Observation, Report,
    MAX_CHANGED_FILES, MAX_MESSAGE_LEN, MAX_PATH_LEN, MAX_TEXT_LEN,
};
pub use retention::{Cutoffs, RetentionPolicy, Tier};
pub use staleness::{is_stale, StalePolicy, StaleRule, DEFAULT_AFTER};
pub use status::{ReportKind, Status};
pub use timestamp::Timestamp;
