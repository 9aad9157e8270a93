//! The embedded broker used when no Kafka is configured: librdkafka's in-process mock
//! cluster. Its data lives only as long as the process.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    pub fn start() -> Result<Self, String> {
        let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the embedded broker: {e}"))?;
        Ok(Self { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
