//! Creating, describing and deleting topics.

use super::{EmbeddedBroker, KafkaSettings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Who reads a topic, as SHOW TOPICS EXTENDED tells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConsumers {
    /// Partitions assigned to a consumer, over every group.
    pub consumers: i32,
    pub groups: i32,
}

/// A consumer group's member, as the brokers know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub client_id: String,
    pub partitions: Vec<(String, i32)>,
}

pub struct Topics {
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// The embedded broker creates topics itself; it has no CreateTopics request.
    embedded: Option<Arc<EmbeddedBroker>>,
}

impl Topics {
    pub fn new(
        settings: &KafkaSettings,
        embedded: Option<Arc<EmbeddedBroker>>,
    ) -> Result<Self, String> {
        let admin = settings
            .base_config()
            .create()
            .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
        Ok(Self {
            admin: Arc::new(admin),
            embedded,
        })
    }

    /// The partition count of `topic`, or `None` when it does not exist. Lists all topics
    /// rather than asking for this one, which some brokers would answer by creating it.
    pub async fn partitions(&self, topic: &str) -> Result<Option<i32>, String> {
        Ok(self.layout(topic).await?.map(|(partitions, _)| partitions))
    }

    /// A topic's partition count and replication factor, if it exists.
    pub async fn layout(&self, topic: &str) -> Result<Option<(i32, i32)>, String> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|(name, _, _)| name == topic)
            .map(|(_, partitions, replicas)| (partitions, replicas)))
    }

    /// The cluster's brokers and topics, as a broker tells them.
    async fn metadata(&self) -> Result<rdkafka::metadata::Metadata, String> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || admin.inner().fetch_metadata(None, TIMEOUT))
            .await
            .map_err(|e| format!("cannot read topic metadata: {e}"))?
            .map_err(|e| format!("cannot read topic metadata: {e}"))
    }

    /// How many brokers the cluster has.
    pub async fn brokers(&self) -> Result<usize, String> {
        Ok(self.metadata().await?.brokers().len())
    }

    /// Every topic: its name, partition count and replication factor, by name.
    pub async fn list(&self) -> Result<Vec<(String, i32, i32)>, String> {
        let metadata = self.metadata().await?;
        let mut topics: Vec<(String, i32, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let replicas = t
                    .partitions()
                    .first()
                    .map_or(0, |p| p.replicas().len() as i32);
                (t.name().to_string(), t.partitions().len() as i32, replicas)
            })
            .collect();
        topics.sort();
        Ok(topics)
    }

    /// Creates `topic` with these settings unless it exists; returns its partition count.
    pub async fn ensure(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i32,
        config: &[(&str, &str)],
    ) -> Result<i32, String> {
        if let Some(n) = self.partitions(topic).await? {
            return Ok(n);
        }
        self.create(topic, partitions, replicas, config).await?;
        Ok(partitions)
    }

    pub async fn create(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i32,
        config: &[(&str, &str)],
    ) -> Result<(), String> {
        if let Some(embedded) = &self.embedded {
            let embedded = embedded.clone();
            let name = topic.to_string();
            tokio::task::spawn_blocking(move || embedded.create_topic(&name, partitions))
                .await
                .map_err(|e| format!("cannot create topic {topic}: {e}"))??;
            return self.await_visible(topic).await;
        }
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas));
        for (k, v) in config {
            new = new.set(k, v);
        }
        let results = self
            .admin
            .create_topics(
                [&new],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
            }
        }
        self.await_visible(topic).await
    }

    /// Waits until `topic` is in the metadata, so that producers and consumers find it.
    async fn await_visible(&self, topic: &str) -> Result<(), String> {
        for _ in 0..100 {
            if self.partitions(topic).await?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "topic {topic} was created but does not appear in metadata"
        ))
    }

    /// Per topic, how many partitions are assigned to consumers of groups and how many
    /// groups read it (ksqlDB's consumerCount and consumerGroupCount): from every consumer
    /// group the brokers know, by their members' assignments.
    pub async fn consumers(&self) -> Result<BTreeMap<String, TopicConsumers>, String> {
        if self.embedded.is_some() {
            return Ok(BTreeMap::new());
        }
        let admin = self.admin.clone();
        // The group list lives in librdkafka's memory: it is read where it is fetched.
        tokio::task::spawn_blocking(move || {
            let groups = admin
                .inner()
                .fetch_group_list(None, TIMEOUT)
                .map_err(|e| format!("cannot list consumer groups: {e}"))?;
            let mut counts: BTreeMap<String, TopicConsumers> = BTreeMap::new();
            for group in groups
                .groups()
                .iter()
                .filter(|g| g.protocol_type() == "consumer")
            {
                let mut read = std::collections::BTreeSet::new();
                for member in group.members() {
                    for (topic, partitions) in assigned(member.assignment().unwrap_or_default()) {
                        counts.entry(topic.clone()).or_default().consumers +=
                            partitions.len() as i32;
                        read.insert(topic);
                    }
                }
                for topic in read {
                    counts.entry(topic).or_default().groups += 1;
                }
            }
            Ok(counts)
        })
        .await
        .map_err(|e| format!("cannot list consumer groups: {e}"))?
    }

    /// The members of a consumer group: each one's client id and the partitions assigned
    /// to it (none while the group rebalances).
    pub async fn group_members(&self, group: &str) -> Result<Vec<GroupMember>, String> {
        if self.embedded.is_some() {
            return Ok(Vec::new());
        }
        let admin = self.admin.clone();
        let name = group.to_string();
        tokio::task::spawn_blocking(move || {
            let groups = admin
                .inner()
                .fetch_group_list(Some(&name), TIMEOUT)
                .map_err(|e| format!("cannot describe consumer group {name}: {e}"))?;
            let members = groups
                .groups()
                .iter()
                .filter(|g| g.name() == name)
                .flat_map(|g| g.members())
                .map(|m| GroupMember {
                    client_id: m.client_id().to_string(),
                    partitions: assigned(m.assignment().unwrap_or_default())
                        .into_iter()
                        .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                        .collect(),
                })
                .collect();
            Ok(members)
        })
        .await
        .map_err(|e| format!("cannot describe consumer group {group}: {e}"))?
    }

    /// One of a topic's settings as the broker describes it (`retention.ms`, ...): `None`
    /// when the broker has no value for it. The embedded broker keeps no settings.
    pub async fn setting(&self, topic: &str, name: &str) -> Result<Option<String>, String> {
        if self.embedded.is_some() {
            return Ok(None);
        }
        let results = self
            .admin
            .describe_configs(
                [&ResourceSpecifier::Topic(topic)],
                &AdminOptions::new().request_timeout(Some(TIMEOUT)),
            )
            .await
            .map_err(|e| format!("cannot read the settings of topic {topic}: {e}"))?;
        let resource = results
            .into_iter()
            .next()
            .ok_or_else(|| format!("cannot read the settings of topic {topic}: no answer"))?
            .map_err(|e| format!("cannot read the settings of topic {topic}: {e}"))?;
        Ok(resource.get(name).and_then(|e| e.value.clone()))
    }

    pub async fn delete(&self, topic: &str) -> Result<(), String> {
        if self.embedded.is_some() {
            return Err(format!(
                "cannot delete topic {topic}: the embedded broker does not delete topics"
            ));
        }
        let results = self
            .admin
            .delete_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            )
            .await
            .map_err(|e| format!("cannot delete topic {topic}: {e}"))?;
        for result in results {
            if let Err((name, code)) = result {
                if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(format!("cannot delete topic {name}: {code}"));
                }
            }
        }
        Ok(())
    }
}

/// The topics and partitions of a consumer's assignment, in Kafka's consumer protocol
/// (version, then per topic its name and partitions, then user data); what does not parse
/// is no assignment.
fn assigned(bytes: &[u8]) -> Vec<(String, Vec<i32>)> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    fn int(bytes: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(bytes, 4)?.try_into().ok()?))
    }
    let parse = |mut bytes: &[u8]| -> Option<Vec<(String, Vec<i32>)>> {
        take(&mut bytes, 2)?;
        let topics = int(&mut bytes)?;
        let mut out = Vec::new();
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(&mut bytes, 2)?.try_into().ok()?);
            let name = String::from_utf8(take(&mut bytes, len.max(0) as usize)?.to_vec()).ok()?;
            let count = int(&mut bytes)?;
            let partitions = (0..count.max(0))
                .map(|_| int(&mut bytes))
                .collect::<Option<Vec<i32>>>()?;
            out.push((name, partitions));
        }
        Some(out)
    };
    parse(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::assigned;

    #[test]
    fn assignments_are_read_from_the_consumer_protocol() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        let topics: [(&str, Vec<i32>); 2] = [("orders", vec![0, 3]), ("users", vec![1])];
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes());
        assert_eq!(
            assigned(&bytes),
            vec![
                ("orders".to_string(), vec![0, 3]),
                ("users".to_string(), vec![1])
            ]
        );
        assert!(assigned(&bytes[..9]).is_empty());
        assert!(assigned(&[]).is_empty());
    }
}
