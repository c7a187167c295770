//! The one way this crate takes a `std::sync::Mutex`, as bb8's `lock`
//! module does.
//!
//! Every mutex here guards bookkeeping that each holder leaves consistent
//! before it can panic (no user code runs under one), so a poisoned lock
//! is taken as it is: one panicking thread must not stop every other user
//! of the pool.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
