//! The scaling signal: how many replicas of a service its backlog asks for, computed as
//! Azure's Kafka trigger and KEDA's Kafka scaler do: one replica per `lag threshold`
//! records behind, never more than the partitions a consumer group can spread over, and
//! none when nothing is behind.

use crate::runtime::lag::PartitionLag;
use serde::Serialize;

/// Records behind per replica when `ksql.scaling.lag.threshold` is not set (the default of
/// Azure's `LagThreshold` and KEDA's `lagThreshold`).
pub const DEFAULT_LAG_THRESHOLD: u64 = 1000;

/// `ksql.scaling.lag.threshold`: records behind per replica.
pub fn lag_threshold(
    properties: &std::collections::BTreeMap<String, String>,
) -> Result<u64, String> {
    crate::settings::positive(
        properties,
        "ksql.scaling.lag.threshold",
        DEFAULT_LAG_THRESHOLD,
    )
}

/// One consumer group's backlog: a persistent query's or a sink connector's.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupBacklog {
    pub name: String,
    pub lag: u64,
    /// The most partitions of one topic it reads: how many members can share its work.
    pub partitions: u32,
    pub partition_lags: Vec<PartitionBacklog>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionBacklog {
    pub topic: String,
    pub partition: i32,
    pub lag: u64,
}

/// What `/scaling` answers (KEDA's `metrics-api` scaler reads `desiredReplicas`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scaling {
    pub desired_replicas: u64,
    pub total_lag: u64,
    pub lag_threshold: u64,
    pub max_partitions: u32,
    pub queries: Vec<GroupBacklog>,
    pub connectors: Vec<GroupBacklog>,
}

impl Scaling {
    pub fn of(
        queries: &[(String, Vec<PartitionLag>)],
        connectors: &[(String, Vec<PartitionLag>)],
        threshold: u64,
    ) -> Self {
        let queries: Vec<GroupBacklog> = queries.iter().map(backlog).collect();
        let connectors: Vec<GroupBacklog> = connectors.iter().map(backlog).collect();
        let groups = || queries.iter().chain(&connectors);
        let total_lag: u64 = groups().map(|g| g.lag).sum();
        let max_partitions = groups().map(|g| g.partitions).max().unwrap_or(0);
        let threshold = threshold.max(1);
        let desired_replicas = total_lag.div_ceil(threshold).min(max_partitions as u64);
        Self {
            desired_replicas,
            total_lag,
            lag_threshold: threshold,
            max_partitions,
            queries,
            connectors,
        }
    }
}

fn backlog((name, partitions): &(String, Vec<PartitionLag>)) -> GroupBacklog {
    let mut per_topic: std::collections::BTreeMap<&str, u32> = Default::default();
    for p in partitions {
        *per_topic.entry(p.topic.as_str()).or_default() += 1;
    }
    let partition_lags: Vec<PartitionBacklog> = partitions
        .iter()
        .map(|p| PartitionBacklog {
            topic: p.topic.clone(),
            partition: p.partition,
            lag: p.lag() as u64,
        })
        .collect();
    GroupBacklog {
        name: name.clone(),
        lag: partition_lags.iter().map(|p| p.lag).sum(),
        partitions: per_topic.values().copied().max().unwrap_or(0),
        partition_lags,
    }
}

#[cfg(test)]
mod tests {
    use super::Scaling;
    use crate::runtime::lag::PartitionLag;

    fn group(topic: &str, lags: &[i64]) -> Vec<PartitionLag> {
        lags.iter()
            .enumerate()
            .map(|(i, lag)| PartitionLag {
                topic: topic.into(),
                partition: i as i32,
                committed: Some(0),
                start: 0,
                end: *lag,
            })
            .collect()
    }

    #[test]
    fn replicas_follow_the_lag_up_to_the_partitions() {
        let q = vec![("Q".to_string(), group("t", &[1250; 8]))];
        let s = Scaling::of(&q, &[], 1000);
        assert_eq!(
            (s.total_lag, s.max_partitions, s.desired_replicas),
            (10000, 8, 8)
        );
        let q = vec![("Q".to_string(), group("t", &[100, 200, 0, 1]))];
        assert_eq!(Scaling::of(&q, &[], 1000).desired_replicas, 1);
        assert_eq!(Scaling::of(&q, &[], 100).desired_replicas, 4);
        let idle = vec![("Q".to_string(), group("t", &[0; 4]))];
        assert_eq!(Scaling::of(&idle, &[], 1000).desired_replicas, 0);
        let c = vec![("sink".to_string(), group("u", &[3000, 0]))];
        let s = Scaling::of(&idle, &c, 1000);
        assert_eq!(
            (s.total_lag, s.max_partitions, s.desired_replicas),
            (3000, 4, 3)
        );
    }
}
