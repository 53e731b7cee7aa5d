//! Black-box tests: every test talks HTTP to a real server on a free port, backed by a fresh
//! SQLite file, or with GITOPS_STATUS_TEST_BACKEND=postgres a fresh PostgreSQL database
//! (helpers.rs). All integration tests live in this one binary.

mod auth;
mod backup;
mod badges;
mod chain;
mod commits;
mod concurrency;
mod cron;
mod dashboard;
mod decommission;
mod errors;
mod filters;
mod health;
mod helpers;
mod history;
mod idempotency;
mod import;
mod legacy;
mod lifecycle;
mod limits;
mod metrics;
mod migrate;
mod openapi;
mod ordering;
mod pipeline;
mod replicas;
mod report;
mod requests;
mod retention;
mod seeds;
mod staleness;
mod status;
mod storage;
mod summary;
mod transitions;
mod ui;
mod validation;
mod writer;
