//! The embedded broker used when no Kafka is configured: librdkafka's in-process mock
//! cluster. Its data lives only as long as the process.
//!
//! The mock cluster cannot move between threads and does not answer CreateTopics, so a
//! thread of its own owns it and creates topics on request.

use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;

type Reply = mpsc::Sender<Result<(), String>>;

pub struct EmbeddedBroker {
    bootstrap_servers: String,
    requests: Mutex<Option<mpsc::Sender<(String, i32, Reply)>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmbeddedBroker({})", self.bootstrap_servers)
    }
}

impl EmbeddedBroker {
    pub fn start() -> Result<Self, String> {
        let (started_tx, started_rx) = mpsc::channel::<Result<String, String>>();
        let (requests, requests_rx) = mpsc::channel::<(String, i32, Reply)>();
        let thread = std::thread::Builder::new()
            .name("embedded-broker".into())
            .spawn(move || {
                // A client that owns the mock cluster (`test.mock.num.brokers`); both live on
                // this thread.
                let owner: BaseProducer = match ClientConfig::new()
                    .set("test.mock.num.brokers", "1")
                    .create()
                {
                    Ok(p) => p,
                    Err(e) => {
                        let _ =
                            started_tx.send(Err(format!("cannot start the embedded broker: {e}")));
                        return;
                    }
                };
                let Some(cluster) = owner.client().mock_cluster() else {
                    let _ = started_tx.send(Err("cannot start the embedded broker".into()));
                    return;
                };
                no_initial_rebalance_delay(&owner);
                let _ = started_tx.send(Ok(cluster.bootstrap_servers()));
                // Serves until every sender is gone, then drops the cluster.
                for (topic, partitions, reply) in requests_rx {
                    let result = cluster
                        .create_topic(&topic, partitions, 1)
                        .map_err(|e| format!("cannot create topic {topic}: {e}"));
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
        let bootstrap_servers = started_rx
            .recv()
            .map_err(|_| "the embedded broker did not start".to_string())??;
        Ok(Self {
            bootstrap_servers,
            requests: Mutex::new(Some(requests)),
            thread: Some(thread),
        })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap_servers.clone()
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        let (reply, result) = mpsc::channel();
        {
            let requests = self
                .requests
                .lock()
                .map_err(|_| "embedded broker lock poisoned")?;
            let Some(requests) = requests.as_ref() else {
                return Err("the embedded broker has stopped".into());
            };
            requests
                .send((topic.to_string(), partitions, reply))
                .map_err(|_| "the embedded broker has stopped".to_string())?;
        }
        result
            .recv()
            .map_err(|_| "the embedded broker has stopped".to_string())?
    }
}

/// A consumer group's first members are given their partitions at once, as a development
/// broker does (Confluent's images set `group.initial.rebalance.delay.ms=0`); the mock
/// cluster waits 3 s by default, which a query started on it spends waiting for its group.
fn no_initial_rebalance_delay(owner: &BaseProducer) {
    // rust-rdkafka's MockCluster does not expose this setting; librdkafka's C API does.
    // SAFETY: the pointer is the mock cluster of `owner`'s live client (checked non-null),
    // and librdkafka's mock API may be called from any thread.
    unsafe {
        let cluster = rdkafka::bindings::rd_kafka_handle_mock_cluster(owner.client().native_ptr());
        if !cluster.is_null() {
            rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0);
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.take();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
