//! The registry's locking rule, shared by every module.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data half-updated in a way
    // that matters more than stopping the hub would, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
