//! One media-sync at a time per destination: a lease object written only where none exists
//! (S3's conditional `If-None-Match: *`). EventBridge delivers a schedule at least once, so two
//! runs can start together; both copying under their own run ids would leave one snapshot
//! naming a copy the other replaced (and only one version in the trash). A lease outlives a
//! crashed run only until it expires; a second run then takes it over.

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, StoreKind};
use crate::keys;
use crate::store::ObjectStore;

/// What the lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub run_id: String,
    pub started: Timestamp,
    /// After this, the run is taken to be gone (a Lambda is stopped at its deadline).
    pub expires: Timestamp,
}

/// A lease this run holds; [`Held::release`] gives it back.
#[derive(Debug)]
pub struct Held {
    key: String,
    run_id: String,
}

/// How long a lease lasts when the run has no deadline (the CLI): long enough for a first copy
/// of millions of objects, short enough that a crashed run does not stop backups for a day.
pub const WITHOUT_DEADLINE: SignedDuration = SignedDuration::from_hours(6);

fn refused(store: &dyn ObjectStore, key: &str, detail: String) -> Error {
    Error::Store {
        op: "lease",
        location: store.locate(key),
        detail,
        source: None,
        retryable: true,
        kind: StoreKind::PreconditionFailed,
    }
}

/// Takes the lease for `run_id` until `expires`, or says who holds it. An expired lease is
/// taken over (deleted, then written anew, still conditionally: of two runs taking it over at
/// once, one wins).
pub async fn acquire(
    store: &dyn ObjectStore,
    prefix: &str,
    run_id: &str,
    now: Timestamp,
    expires: Timestamp,
) -> Result<Held> {
    let key = keys::media_lease(prefix);
    let lease = Lease { run_id: run_id.to_owned(), started: now, expires };
    let body = Bytes::from(serde_json::to_vec(&lease).expect("leases serialize"));
    for _ in 0..2 {
        if store.put_new(&key, body.clone(), "application/json").await? {
            // A store that ignores the condition overwrote instead: read back who won.
            let back = store.get(&key).await?.and_then(|b| serde_json::from_slice::<Lease>(&b).ok());
            return match back {
                Some(l) if l.run_id == run_id => Ok(Held { key, run_id: run_id.to_owned() }),
                Some(l) => Err(refused(
                    store,
                    &key,
                    format!("another media-sync (run {}) took the lease at once", l.run_id),
                )),
                None => Err(refused(store, &key, "the lease could not be read back".into())),
            };
        }
        let held = store.get(&key).await?.map(|b| serde_json::from_slice::<Lease>(&b));
        match held {
            // Released meanwhile: try again.
            None => continue,
            Some(Ok(l)) if l.expires > now => {
                return Err(refused(
                    store,
                    &key,
                    format!(
                        "another media-sync (run {}, started {}) is running and holds the lease until {}; this run did nothing \
                         (if no media-sync runs, delete the lease object)",
                        l.run_id, l.started, l.expires
                    ),
                ));
            }
            // Expired, or unreadable (a write cut short): the run that held it is gone.
            Some(_) => {
                tracing::warn!(key = %key, "taking over an expired media-sync lease");
                store.delete(&key).await?;
            }
        }
    }
    Err(refused(store, &key, "the lease changed hands while this run tried to take it".into()))
}

impl Held {
    /// Gives the lease back, if it is still this run's.
    pub async fn release(self, store: &dyn ObjectStore) {
        let ours = match store.get(&self.key).await {
            Ok(Some(b)) => serde_json::from_slice::<Lease>(&b).is_ok_and(|l| l.run_id == self.run_id),
            _ => false,
        };
        if ours && let Err(e) = store.delete(&self.key).await {
            tracing::warn!(key = %self.key, error = %e.report(), "could not release the media-sync lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_run_holds_the_lease_until_it_releases_or_the_lease_expires() {
        let dir = std::env::temp_dir().join(format!("backstop-lease-{}", uuid::Uuid::new_v4()));
        let store = crate::store::LocalStore::new(&dir);
        let now = Timestamp::now();
        let later = now + SignedDuration::from_mins(20);
        let a = acquire(&store, "p/", "run-a", now, later).await.unwrap();
        let err = acquire(&store, "p/", "run-b", now, later).await.unwrap_err();
        assert!(err.to_string().contains("run-a") && err.is_retryable(), "{err}");
        a.release(&store).await;
        let b = acquire(&store, "p/", "run-b", now, later).await.unwrap();
        // b crashed without releasing: after its lease expires, c takes over.
        drop(b);
        assert!(acquire(&store, "p/", "run-c", now, later).await.is_err());
        let c = acquire(&store, "p/", "run-c", later + SignedDuration::from_secs(1), later).await.unwrap();
        c.release(&store).await;
        assert!(store.get("p/media/lease.json").await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
