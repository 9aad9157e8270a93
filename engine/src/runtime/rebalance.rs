//! Which partitions a persistent query's consumer lost in rebalances: their tasks' stores
//! must be closed, because another process may change their state before they come back,
//! and reopening a store restores what the changelog gained meanwhile.

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct RebalanceContext {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
}

impl RebalanceContext {
    /// The partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
            for p in partitions.elements() {
                revoked.push((p.topic().to_string(), p.partition()));
            }
        }
    }
}
