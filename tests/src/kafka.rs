//! Kafka clients for tests: create topics, produce records, read a topic whole.

use crate::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// A record to produce: key, value, timestamp.
pub type Input = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A record as the tests read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
    /// Header names and values (as text).
    pub headers: Vec<(String, String)>,
}

impl Record {
    fn of<M: Message>(m: &M) -> Self {
        use rdkafka::message::Headers;
        Record {
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            timestamp: m.timestamp().to_millis().unwrap_or(-1),
            partition: m.partition(),
            offset: m.offset(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                            (h.key.to_string(), value.into_owned())
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of header `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    pub fn value_json(&self) -> serde_json::Value {
        match &self.value {
            Some(v) => serde_json::from_slice(v).unwrap_or_else(|e| {
                panic!("value is not JSON ({e}): {}", String::from_utf8_lossy(v))
            }),
            None => serde_json::Value::Null,
        }
    }
}

/// Kafka's default partitioner: murmur2 of the key bytes, as the Java clients compute it.
/// Written here apart from Brook's own, so that tests check Brook's placement against an
/// independent implementation.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1e995;
    let seed: u32 = 0x9747b28c;
    let len = key.len();
    let mut h: u32 = seed ^ (len as u32);
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fffffff) % partitions as u32) as i32
}

impl Broker {
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// Creates a topic with topic settings (`retention.ms`, ...).
    pub fn create_topic_with(&self, name: &str, partitions: i32, config: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("admin client");
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in config {
            topic = topic.set(k, v);
        }
        let results = block_on(admin.create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("create_topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.partitions(name) != Some(partitions) {
            assert!(Instant::now() < deadline, "topic {name} did not appear");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Deletes a topic and waits until it is gone from the metadata.
    pub fn delete_topic(&self, name: &str) {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("admin client");
        let results = block_on(admin.delete_topics(
            &[name],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .expect("delete_topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("cannot delete topic {t}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.partitions(name).is_some() {
            assert!(Instant::now() < deadline, "topic {name} was not deleted");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A topic's setting as the broker describes it (`retention.ms`, ...).
    pub fn topic_config(&self, topic: &str, name: &str) -> Option<String> {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("admin client");
        let results = block_on(admin.describe_configs(
            [&rdkafka::admin::ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(30))),
        ))
        .ok()?;
        let resource = results.into_iter().next()?.ok()?;
        resource.get(name).and_then(|e| e.value.clone())
    }

    /// The names of every topic.
    pub fn topic_names(&self) -> Vec<String> {
        let consumer: BaseConsumer = self.config().create().expect("consumer");
        consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|md| md.topics().iter().map(|t| t.name().to_string()).collect())
            .unwrap_or_default()
    }

    /// The cluster's id, as its brokers give it.
    pub fn cluster_id(&self) -> String {
        let consumer: BaseConsumer = self.config().create().expect("consumer");
        consumer
            .client()
            .fetch_cluster_id(Duration::from_secs(10))
            .expect("the broker gives its cluster id")
    }

    /// The low and high watermarks of a partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        let consumer: BaseConsumer = self.config().create().expect("consumer");
        consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("watermarks")
    }

    pub fn partitions(&self, topic: &str) -> Option<i32> {
        let consumer: BaseConsumer = self.config().create().ok()?;
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .ok()?;
        md.topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
    }

    /// Removes the static member `instance_id` from `group` as an operator does with one
    /// that died (Kafka's LeaveGroup v3 with the member's `group.instance.id`, what
    /// `AdminClient::removeMembersFromConsumerGroup` sends): its partitions go to the
    /// members still alive. The broker must be the group's coordinator (the test broker
    /// is a single node).
    pub fn remove_static_member(&self, group: &str, instance_id: &str) -> Result<(), String> {
        use std::io::{Read, Write};
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as i16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut request = Vec::new();
        request.extend_from_slice(&13i16.to_be_bytes()); // LeaveGroup
        request.extend_from_slice(&3i16.to_be_bytes()); // version 3
        request.extend_from_slice(&1i32.to_be_bytes()); // correlation id
        string(&mut request, "brook-tests");
        string(&mut request, group);
        request.extend_from_slice(&1i32.to_be_bytes()); // one member
        string(&mut request, ""); // member id: unknown, named by its instance id
        string(&mut request, instance_id);
        let mut stream =
            std::net::TcpStream::connect(&self.bootstrap).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&(request.len() as i32).to_be_bytes())
            .and_then(|_| stream.write_all(&request))
            .map_err(|e| e.to_string())?;
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).map_err(|e| e.to_string())?;
        let mut response = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        stream
            .read_exact(&mut response)
            .map_err(|e| e.to_string())?;
        // correlation id, throttle time, error code, then the members' own errors.
        let error = |at: usize| {
            response
                .get(at..at + 2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| format!("a short LeaveGroup answer: {response:?}"))
        };
        match error(8)? {
            0 => {}
            code => return Err(format!("LeaveGroup failed with error code {code}")),
        }
        // The member's error code ends the answer.
        match error(response.len().saturating_sub(2))? {
            0 => Ok(()),
            code => Err(format!(
                "removing {instance_id} failed with error code {code}"
            )),
        }
    }

    /// The offsets `group` committed for each partition of `topic` (-1: none).
    pub fn committed(&self, group: &str, topic: &str) -> Vec<i64> {
        let partitions = self.partitions(topic).unwrap_or(0);
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions)
            .map(
                |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                },
            )
            .collect()
    }

    /// Produces `(key, value, timestamp)` records, placed by murmur2 of the key as Kafka's
    /// Java producer does, and waits until all are acknowledged.
    pub fn produce(&self, topic: &str, records: &[Input]) {
        let producer: ThreadedProducer<DefaultProducerContext> = self
            .config()
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        for (key, value, ts) in records {
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(*ts);
            if let Some(k) = key {
                r = r.key(k.as_slice());
            }
            if let Some(v) = value {
                r = r.payload(v.as_slice());
            }
            send_waiting(&producer, r);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }

    /// Produces `(partition, key, value)` records to the partitions named, whatever their
    /// keys: a topic written by a producer that does not place keys as Kafka's Java
    /// clients do.
    pub fn produce_to_partitions(&self, topic: &str, records: &[(i32, Vec<u8>, Vec<u8>)]) {
        let producer: ThreadedProducer<DefaultProducerContext> =
            self.config().create().expect("producer");
        for (partition, key, value) in records {
            let r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
                .partition(*partition)
                .key(key.as_slice())
                .payload(value.as_slice());
            send_waiting(&producer, r);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }

    /// Reads `topic` from the start until `expected` records arrived or `timeout` passed;
    /// returns what it read, in partition then offset order.
    pub fn read_topic(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
        self.read_topic_isolated(topic, expected, timeout, false)
    }

    /// `read_topic` of committed records only (`isolation.level=read_committed`): what a
    /// consumer of an exactly-once query's output sees.
    pub fn read_committed(&self, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
        self.read_topic_isolated(topic, expected, timeout, true)
    }

    fn read_topic_isolated(
        &self,
        topic: &str,
        expected: usize,
        timeout: Duration,
        committed: bool,
    ) -> Vec<Record> {
        // A topic the process under test has not created yet is waited for, within the
        // same timeout.
        let partitions = match crate::wait_for(timeout, || self.partitions(topic)) {
            Some(p) => p,
            None => return vec![],
        };
        let isolation = if committed {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "brook-test-reader")
            .set("enable.auto.commit", "false")
            .set("isolation.level", isolation)
            .create()
            .expect("consumer");
        assign_from_start(&consumer, topic, partitions);
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        while out.len() < expected && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                out.push(Record::of(&m));
            }
        }
        // Anything beyond `expected` that is already there counts too.
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            out.push(Record::of(&m));
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        out
    }
}

/// Sends a record, waiting while the producer's queue is full.
fn send_waiting(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(50));
            }
        }
    }
}

/// Runs an admin future to its end on a runtime of its own.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// A plain consumer of a topic's partitions from their start, with no group of its own to
/// join: what benchmarks read with as their baseline.
pub fn consumer_from_start(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", crate::unique("raw"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    assign_from_start(&consumer, topic, partitions);
    consumer
}

/// Has `consumer` read every partition of `topic` from its start.
fn assign_from_start(consumer: &BaseConsumer, topic: &str, partitions: i32) {
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&list).expect("assign");
}

#[cfg(test)]
mod tests {
    use super::murmur2_partition;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's own partitioner tests (Utils.murmur2 & 0x7fffffff).
        assert_eq!(
            murmur2_partition(b"21", i32::MAX),
            (-973932308i32 & 0x7fffffff)
        );
        assert_eq!(
            murmur2_partition(b"foobar", i32::MAX),
            (-790332482i32 & 0x7fffffff)
        );
        assert_eq!(
            murmur2_partition(b"a-little-bit-long-string", i32::MAX),
            (-985981536i32 & 0x7fffffff)
        );
        assert_eq!(
            murmur2_partition(b"a-little-bit-longer-string", i32::MAX),
            (-1486304829i32 & 0x7fffffff)
        );
        assert_eq!(
            murmur2_partition(
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                i32::MAX
            ),
            (-58897971i32 & 0x7fffffff)
        );
        assert_eq!(
            murmur2_partition(b"abc", i32::MAX),
            (479470107i32 & 0x7fffffff)
        );
    }
}
