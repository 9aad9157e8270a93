//! Creating, describing and deleting topics.

use super::{EmbeddedBroker, KafkaSettings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

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
