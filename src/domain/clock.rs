//! The server's clock. The service reads the system clock; tests set their own, so that a
//! history of weeks is written in seconds and retention is checked without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::{Period, Timestamp};

/// The system clock, or one that stands still until it is set or advanced.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that reads `start` until it is moved.
    pub fn manual(start: Timestamp) -> Self {
        Clock(Some(Arc::new(AtomicI64::new(start.epoch_millis()))))
    }

    pub fn now(&self) -> Timestamp {
        match &self.0 {
            None => Timestamp::now(),
            Some(millis) => Timestamp::from_epoch_millis(millis.load(Ordering::Acquire))
                .unwrap_or_else(|_| Timestamp::now()),
        }
    }

    /// Sets a manual clock; the system clock cannot be set (returns false).
    pub fn set(&self, to: Timestamp) -> bool {
        match &self.0 {
            None => false,
            Some(millis) => {
                millis.store(to.epoch_millis(), Ordering::Release);
                true
            }
        }
    }

    /// Moves a manual clock forward.
    pub fn advance(&self, by: Period) -> bool {
        match self.now().checked_add(by) {
            Some(later) => self.set(later),
            None => false,
        }
    }
}
