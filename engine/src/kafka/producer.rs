//! A producer shared by everything a process writes outside its queries' own tasks: the
//! processing log, usage records, INSERT ... VALUES, records sent over HTTP, the command
//! topic. librdkafka's idempotent producer can enter a fatal state (a broker that lost
//! its producer state across a restart answers with sequence errors) after which every
//! send fails; a query's task would be restarted with new clients, but this producer
//! lives as long as the process. So it is replaced, with a warning, as soon as it is
//! found fatal.

use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::ClientConfig;
use std::sync::RwLock;

pub struct SharedProducer {
    config: ClientConfig,
    current: RwLock<FutureProducer>,
}

impl SharedProducer {
    pub fn new(config: ClientConfig) -> Result<Self, String> {
        let producer = config
            .create()
            .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
        Ok(Self {
            config,
            current: RwLock::new(producer),
        })
    }

    /// The producer to send with: the current one, or a new one if the current one has
    /// failed for good.
    pub fn get(&self) -> FutureProducer {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((code, reason)) = current.client().fatal_error() else {
            return current;
        };
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        // Another caller may have replaced it meanwhile.
        if slot.client().fatal_error().is_none() {
            return slot.clone();
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(
                    "the shared Kafka producer failed for good ({code:?}: {reason}); it is replaced by a new one"
                );
                *slot = fresh.clone();
                fresh
            }
            Err(e) => {
                tracing::error!(
                    "the shared Kafka producer failed for good ({code:?}: {reason}) and cannot be replaced: {e}"
                );
                current
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_producer_in_a_fatal_state_is_replaced() {
        let mut config = ClientConfig::new();
        // No broker is needed: the producer is only created and failed.
        config
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("enable.idempotence", "true");
        let shared = SharedProducer::new(config).expect("producer");
        let first = shared.get();
        assert!(first.client().fatal_error().is_none());
        assert_eq!(
            shared.get().client().native_ptr(),
            first.client().native_ptr()
        );
        // librdkafka's own way to put a client in the fatal state it reaches when a broker
        // answers an idempotent producer with sequence errors.
        let reason = std::ffi::CString::new("injected by the test").expect("text");
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                first.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
        assert!(
            first.client().fatal_error().is_some(),
            "the producer is failed"
        );
        let second = shared.get();
        assert!(second.client().fatal_error().is_none(), "a new producer");
        assert_ne!(second.client().native_ptr(), first.client().native_ptr());
        assert_eq!(
            shared.get().client().native_ptr(),
            second.client().native_ptr()
        );
    }
}
