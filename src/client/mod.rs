//! `gitops-status report`: the CI and cron side, in the same binary. This module holds what
//! the client reads from its surroundings (the CI system's variables, the drift check's
//! output); the command that sends the report is built on it.

pub mod ci;
pub mod drift;
