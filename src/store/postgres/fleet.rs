//! The fleet read side on PostgreSQL (to be written).
