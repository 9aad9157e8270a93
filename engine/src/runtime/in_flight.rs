//! Batches whose outputs are sent but not all acknowledged yet: a stateless query goes on
//! processing while they are delivered, and commits a batch's input offsets only once
//! every output of it (and of every batch before it) is acknowledged, so at-least-once
//! holds whatever the overlap.

use super::commit::{advance, positions, Positions};
use super::supervisor::TaskError;
use crate::pipeline::InputRecord;
use futures::channel::oneshot::Canceled;
use futures::FutureExt;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::DeliveryFuture;
use std::collections::VecDeque;
use std::future::Future;

/// How many batches may wait for their acknowledgements before processing waits for the
/// oldest: enough to keep the producer busy while the next batch is processed, few enough
/// that a rebalance or a crash replays little.
pub const MAX_IN_FLIGHT: usize = 4;

/// One batch in flight.
struct Batch<D> {
    deliveries: Vec<D>,
    /// How many of its deliveries are known to have succeeded, in order.
    delivered: usize,
    /// The offset after each input partition's last record.
    next: Positions,
    records: usize,
}

/// What the batches that were acknowledged let the query commit.
#[derive(Default)]
pub struct Settled {
    next: Positions,
    /// How many input records they held.
    pub records: usize,
}

impl Settled {
    /// The next offset of each input partition the settled batches reached.
    pub fn into_positions(self) -> Positions {
        self.next
    }

    /// Adds what later batches settled.
    fn absorb(&mut self, later: Settled) {
        advance(&mut self.next, later.next);
        self.records += later.records;
    }
}

/// The batches in flight to one output topic, oldest first, with the futures of their
/// deliveries (the producer's, or channels in tests).
pub struct InFlight<D = DeliveryFuture> {
    topic: String,
    batches: VecDeque<Batch<D>>,
}

impl<D> InFlight<D>
where
    D: Future<Output = Result<OwnedDeliveryResult, Canceled>> + Unpin,
{
    pub fn new(topic: &str) -> Self {
        Self {
            topic: topic.to_string(),
            batches: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.batches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// A batch whose outputs were sent.
    pub fn push(&mut self, inputs: &[InputRecord], deliveries: Vec<D>) {
        self.batches.push_back(Batch {
            deliveries,
            delivered: 0,
            next: positions(inputs),
            records: inputs.len(),
        });
    }

    /// Partitions this consumer lost: their offsets are not committed from here any
    /// more (their new owner reads again from the last commit), though their outputs
    /// are still awaited.
    pub fn forget(&mut self, revoked: &[(String, i32)]) {
        for batch in &mut self.batches {
            for (topic, partition) in revoked {
                batch.next.remove(&(topic.clone(), *partition));
            }
        }
    }

    /// Takes the oldest batches that are acknowledged: waits for the oldest one if
    /// `wait`, then takes those after it that need no waiting. A failed delivery is the
    /// task's error; nothing after it is committed.
    pub async fn settle(&mut self, wait: bool) -> Result<Settled, TaskError> {
        let mut settled = Settled::default();
        let mut must_wait = wait;
        while let Some(front) = self.batches.front_mut() {
            if must_wait {
                for d in &mut front.deliveries[front.delivered..] {
                    delivered(&self.topic, d.await)?;
                }
                must_wait = false;
            } else {
                while let Some(d) = front.deliveries.get_mut(front.delivered) {
                    match d.now_or_never() {
                        Some(result) => delivered(&self.topic, result)?,
                        None => return Ok(settled),
                    }
                    front.delivered += 1;
                }
            }
            let Some(batch) = self.batches.pop_front() else {
                break;
            };
            settled.absorb(Settled {
                next: batch.next,
                records: batch.records,
            });
        }
        Ok(settled)
    }

    /// Waits for every batch in flight.
    pub async fn settle_all(&mut self) -> Result<Settled, TaskError> {
        let mut all = Settled::default();
        while !self.batches.is_empty() {
            all.absorb(self.settle(true).await?);
        }
        Ok(all)
    }
}

/// A delivery's outcome as the task's.
pub fn delivered(
    topic: &str,
    result: Result<
        rdkafka::producer::future_producer::OwnedDeliveryResult,
        futures::channel::oneshot::Canceled,
    >,
) -> Result<(), TaskError> {
    match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(TaskError::kafka(
            format!("a record to {topic} was not delivered"),
            &e,
        )),
        Err(_) => Err(TaskError::fatal(
            "the producer was closed before delivering",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::oneshot;
    use rdkafka::producer::future_producer::Delivery;
    use rdkafka::Timestamp;

    fn input(partition: i32, offset: i64) -> InputRecord {
        InputRecord {
            headers: vec![],
            topic: "in".into(),
            partition,
            offset,
            timestamp: 0,
            key: None,
            value: None,
        }
    }

    // The producer's own type, whatever its size.
    #[allow(clippy::result_large_err)]
    fn ack() -> OwnedDeliveryResult {
        Ok(Delivery {
            partition: 0,
            offset: 0,
            timestamp: Timestamp::NotAvailable,
        })
    }

    fn committed(settled: &Settled) -> Vec<(i32, i64)> {
        crate::runtime::commit::offsets_of(&settled.next)
            .unwrap()
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_is_committed_only_once_it_and_every_batch_before_it_are_acknowledged() {
        let mut in_flight = InFlight::new("out");
        let (first, first_rx) = oneshot::channel();
        let (second, second_rx) = oneshot::channel();
        let (third, third_rx) = oneshot::channel();
        in_flight.push(&[input(0, 10), input(1, 5)], vec![first_rx, second_rx]);
        in_flight.push(&[input(0, 11)], vec![third_rx]);
        // The later batch is acknowledged first: nothing may be committed yet.
        third.send(ack()).unwrap();
        first.send(ack()).unwrap();
        let settled = in_flight.settle(false).await.unwrap();
        assert_eq!(settled.records, 0);
        assert_eq!(in_flight.len(), 2);
        // Once the first batch is whole, both go, with the later offsets.
        second.send(ack()).unwrap();
        let settled = in_flight.settle(false).await.unwrap();
        assert_eq!(settled.records, 3);
        assert_eq!(committed(&settled), vec![(0, 12), (1, 6)]);
        assert!(in_flight.is_empty());
    }

    #[tokio::test]
    async fn revoked_partitions_are_not_committed_and_failures_stop_the_commits() {
        let mut in_flight = InFlight::new("out");
        let (first, first_rx) = oneshot::channel();
        in_flight.push(&[input(0, 1), input(1, 1)], vec![first_rx]);
        in_flight.forget(&[("in".to_string(), 1)]);
        first.send(ack()).unwrap();
        let settled = in_flight.settle(true).await.unwrap();
        assert_eq!(committed(&settled), vec![(0, 2)]);

        let (failed, failed_rx) = oneshot::channel();
        let (later, later_rx) = oneshot::channel();
        in_flight.push(&[input(0, 2)], vec![failed_rx]);
        in_flight.push(&[input(0, 3)], vec![later_rx]);
        later.send(ack()).unwrap();
        drop(failed);
        assert!(in_flight.settle_all().await.is_err());
    }
}
