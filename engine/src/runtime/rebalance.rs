//! Which partitions a persistent query's consumer lost in rebalances: their tasks' stores
//! must be closed, because another process may change their state before they come back,
//! and reopening a store restores what the changelog gained meanwhile; and records of
//! theirs fetched before the revocation must not be processed, since their new owner (or
//! this consumer, once they come back) reads them again from the committed offset.

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct RebalanceContext {
    /// Revoked partitions, each with the number of the revocation that took it.
    revoked: Arc<Mutex<Vec<(u64, String, i32)>>>,
    /// How many revocations happened: the fetch loop tells by it which records it got
    /// before one (those of the revoked partitions are not to be processed).
    revocations: Arc<AtomicU64>,
}

impl RebalanceContext {
    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|(_, t, p)| (t, p))
            .collect()
    }

    /// The partitions revoked by revocations after the `seen`-th, left in place.
    pub fn revoked_after(&self, seen: u64) -> Vec<(String, i32)> {
        self.lock()
            .iter()
            .filter(|(n, _, _)| *n > seen)
            .map(|(_, t, p)| (t.clone(), *p))
            .collect()
    }

    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, String, i32)>> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut revoked = self.lock();
            let n = self.revocations.fetch_add(1, Ordering::SeqCst) + 1;
            for p in partitions.elements() {
                revoked.push((n, p.topic().to_string(), p.partition()));
            }
        }
    }
}
