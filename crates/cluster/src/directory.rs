//! The session directory: `<ns>:session:<id>` names the replica that owns a handshake-era
//! session. Written before the session's id reaches its client, deleted when the session ends;
//! an entry that names a dead replica is deleted by whoever finds it.

use redis::AsyncCommands as _;

use crate::{ClusterError, Inner, Replica, membership};

/// Where a session lives, per the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Owned by another live replica.
    Remote(Replica),
    /// Owned by this replica (if it is not in this replica's table, it has ended).
    Here,
    /// Never known, ended, or owned by a replica that is gone: the client must re-initialize.
    Gone,
}

fn key(ns: &str, session: &str) -> String {
    format!("{ns}:session:{session}")
}

pub(crate) async fn claim(inner: &Inner, session: &str) -> Result<(), ClusterError> {
    let mut conn = inner.conn.clone();
    conn.set::<_, _, ()>(key(&inner.ns, session), &inner.me.id)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}

pub(crate) async fn release(inner: &Inner, session: &str) -> Result<(), ClusterError> {
    let mut conn = inner.conn.clone();
    conn.del::<_, ()>(key(&inner.ns, session))
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))
}

pub(crate) async fn locate(inner: &Inner, session: &str) -> Result<Location, ClusterError> {
    let mut conn = inner.conn.clone();
    let k = key(&inner.ns, session);
    let owner: Option<String> = conn
        .get(&k)
        .await
        .map_err(|e| ClusterError::redis(&inner.shown_url, e))?;
    let Some(owner) = owner else {
        return Ok(Location::Gone);
    };
    if owner == inner.me.id {
        return Ok(Location::Here);
    }
    match membership::get(inner, &owner).await? {
        Some(r) => Ok(Location::Remote(r)),
        None => {
            // Its owner is gone and will never serve it: nobody needs the entry any more.
            let _: Result<(), _> = conn.del(&k).await;
            Ok(Location::Gone)
        }
    }
}
