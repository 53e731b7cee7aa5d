//! `gitops-status report`: the CI and cron side, in the same binary. It reads its
//! surroundings (the CI system's variables, the drift check's output), builds the report from
//! the API's own request types, and sends it until the server has answered it, with one
//! Idempotency-Key for all attempts.

pub mod ci;
pub mod drift;
pub mod request;
pub mod send;
