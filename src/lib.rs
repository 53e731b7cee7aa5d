//! gitops-status: per-host GitOps sync status for Grafana, with an SQLite audit history.
//!
//! `domain` holds the vocabulary and merge rules, `store` all SQL, `api` the HTTP handlers,
//! `app` the server; `cli`, `config` and `telemetry` wire them up for `main`.

pub mod api;
pub mod app;
pub mod auth;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod domain;
pub mod metrics;
pub mod openapi;
pub mod pruner;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod ui;
