//! Which offsets a sink task may commit: per partition, the batches it sent in offset
//! order, and the end of their contiguous acknowledged prefix. A batch acknowledged ahead
//! of an earlier one waits for it, so a committed offset never passes a record whose
//! request has not been answered, however many requests are in flight.

use std::collections::{BTreeMap, VecDeque};

pub type Partition = (String, i32);

#[derive(Default)]
pub struct Offsets {
    partitions: BTreeMap<Partition, Track>,
}

#[derive(Default)]
struct Track {
    /// Batches sent and not yet part of the committable prefix: (id, next offset after
    /// the batch, acknowledged).
    batches: VecDeque<(u64, i64, bool)>,
    /// The offset the prefix reaches (the next record to read), not yet committed.
    committable: Option<i64>,
}

impl Offsets {
    /// Records a batch sent for `partition` ending before `next`.
    pub fn sent(&mut self, partition: &Partition, id: u64, next: i64) {
        self.partitions
            .entry(partition.clone())
            .or_default()
            .batches
            .push_back((id, next, false));
    }

    /// Records that batch `id` was answered (or its records were settled otherwise:
    /// dead-lettered or skipped).
    pub fn acknowledged(&mut self, partition: &Partition, id: u64) {
        let Some(track) = self.partitions.get_mut(partition) else {
            return;
        };
        if let Some(batch) = track.batches.iter_mut().find(|(b, _, _)| *b == id) {
            batch.2 = true;
        }
        while let Some(&(_, next, true)) = track.batches.front() {
            track.committable = Some(next);
            track.batches.pop_front();
        }
    }

    /// The offsets to commit now, taken (each is returned once).
    pub fn take_committable(&mut self) -> Vec<(Partition, i64)> {
        self.partitions
            .iter_mut()
            .filter_map(|(p, t)| t.committable.take().map(|o| (p.clone(), o)))
            .collect()
    }

    /// Puts offsets back whose commit failed, unless a later one is waiting.
    pub fn restore(&mut self, offsets: Vec<(Partition, i64)>) {
        for (p, offset) in offsets {
            let track = self.partitions.entry(p).or_default();
            track.committable = Some(track.committable.map_or(offset, |o| o.max(offset)));
        }
    }

    /// Forgets a partition (revoked: its new owner reads from the committed offset).
    pub fn forget(&mut self, partition: &Partition) {
        self.partitions.remove(partition);
    }

    /// Batches sent and not answered.
    pub fn unanswered(&self) -> usize {
        self.partitions
            .values()
            .map(|t| t.batches.iter().filter(|b| !b.2).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_the_contiguous_acknowledged_prefix() {
        let p: Partition = ("t".into(), 0);
        let mut offsets = Offsets::default();
        offsets.sent(&p, 1, 10);
        offsets.sent(&p, 2, 20);
        offsets.sent(&p, 3, 30);
        offsets.acknowledged(&p, 2);
        offsets.acknowledged(&p, 3);
        assert_eq!(offsets.take_committable(), vec![]);
        offsets.acknowledged(&p, 1);
        assert_eq!(offsets.take_committable(), vec![(p.clone(), 30)]);
        assert_eq!(offsets.take_committable(), vec![]);
        offsets.sent(&p, 4, 40);
        offsets.restore(vec![(p.clone(), 30)]);
        assert_eq!(offsets.unanswered(), 1);
        assert_eq!(offsets.take_committable(), vec![(p, 30)]);
    }
}
