//! The read path on PostgreSQL (to be written).
