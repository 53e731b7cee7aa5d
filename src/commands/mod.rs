//! One module per subcommand of `gitops-status`; `main.rs` only parses and dispatches.

pub mod backup;
pub mod import;
pub mod migrate_db;
pub mod report;
pub mod serve;
pub mod token;
pub mod verify;
