//! A pooled connection that is only returned to the pool when the operation using it finished.
//!
//! If a store call's future is dropped mid-operation (a cancelled request, a timeout around
//! the call), the connection may still be busy: a SQLite statement still runs on the blocking
//! pool (and diesel-async's `SyncConnectionWrapper` panics if the pool inspects a connection
//! in that state), or a transaction is half done. Such a connection is detached from the pool
//! and closed instead of being handed to the next caller (SQLite and PostgreSQL roll back the
//! open transaction when the connection closes).

use deadpool::managed::{Manager, Object};

use crate::error::{DbError, DbResult};

/// A checked-out connection; see the module docs.
pub(crate) struct Checkout<M: Manager> {
    obj: Option<Object<M>>,
    finished: bool,
}

impl<M: Manager> Checkout<M> {
    pub(crate) fn new(obj: Object<M>) -> Self {
        Self {
            obj: Some(obj),
            finished: false,
        }
    }

    /// The connection.
    pub(crate) fn conn(&mut self) -> DbResult<&mut M::Type> {
        self.obj
            .as_deref_mut()
            .ok_or(DbError::Internal("connection used after release"))
    }

    /// The operation completed: the connection goes back to the pool.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl<M: Manager> Drop for Checkout<M> {
    fn drop(&mut self) {
        if !self.finished
            && let Some(obj) = self.obj.take()
        {
            drop(Object::take(obj));
        }
    }
}
