//! The embedded broker used when no Kafka is configured: librdkafka's in-process mock
//! cluster. Its data lives only as long as the process.
//!
//! The mock cluster cannot move between threads and does not answer CreateTopics, so a
//! thread of its own owns it and creates topics on request.

use rdkafka::mocking::MockCluster;
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
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ =
                            started_tx.send(Err(format!("cannot start the embedded broker: {e}")));
                        return;
                    }
                };
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
