//! The one way this crate takes a `std::sync::Mutex`, as keepalive's own
//! `lock` module does: no user code runs under these locks, so a poisoned
//! one is taken as it is rather than failing every later request.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
