//! Black-box tests: every test talks HTTP to a real server on a free port, backed by a fresh
//! SQLite file. All integration tests live in this one binary.

mod auth;
mod backup;
mod chain;
mod concurrency;
mod cron;
mod decommission;
mod errors;
mod health;
mod helpers;
mod history;
mod import;
mod legacy;
mod lifecycle;
mod limits;
mod openapi;
mod ordering;
mod pipeline;
mod retention;
mod seeds;
mod status;
mod storage;
mod validation;
mod writer;
