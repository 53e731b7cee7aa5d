//! The PostgreSQL backend (issue 14, being built): several replicas may share one database.
//! Its checked SQL lives in `crates/postgres` (sqlx checks one crate's macros against one
//! database); the queries built at run time (filters) live here.

mod fleet;
mod read;

use std::sync::Arc;

use sqlx::PgPool;

use crate::domain::{Period, StalePolicy};

// What the modules below reach as `super::…`.
#[allow(unused_imports)]
use super::{record, rows, StatusRows, StoreError};

/// The database: a pool of connections to one PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    readers: PgPool,
    stale_policy: Arc<StalePolicy>,
    idempotency_window: Period,
}
