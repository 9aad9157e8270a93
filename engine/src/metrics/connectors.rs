//! Connector figures for `/metrics`: taken from the connector runtime's task counters when
//! scraped, so that what `/metrics`, Kafka Connect's status and DESCRIBE CONNECTOR show is
//! one count.

use crate::connect::{ConnectorState, ConnectorStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    connector: String,
    task: u32,
}

/// The latest statuses of the process's connectors, encoded at each scrape.
#[derive(Debug, Default, Clone)]
pub struct ConnectorCollector {
    statuses: Arc<Mutex<Vec<ConnectorStatus>>>,
}

impl ConnectorCollector {
    pub fn set(&self, statuses: Vec<ConnectorStatus>) {
        *self.statuses.lock().unwrap_or_else(|p| p.into_inner()) = statuses;
    }
}

impl Collector for ConnectorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let statuses = self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if statuses.is_empty() {
            return Ok(());
        }
        type Figure = fn(&crate::connect::TaskStatus) -> u64;
        let counters: [(&str, &str, Figure); 3] = [
            (
                "brook_connector_records_sent",
                "Records a connector task's endpoint acknowledged",
                |t| t.records_sent,
            ),
            (
                "brook_connector_retries",
                "Requests a connector task sent again after a retriable failure",
                |t| t.retries,
            ),
            (
                "brook_connector_dead_letters",
                "Records a connector task wrote to its dead-letter topic",
                |t| t.dead_letters,
            ),
        ];
        for (name, help, figure) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for status in &statuses {
                for task in &status.tasks {
                    let labels = TaskLabels {
                        connector: status.name.clone(),
                        task: task.id,
                    };
                    ConstCounter::new(figure(task)).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "brook_connector_requests_in_flight",
            "Requests a connector task sent and has no answer to yet",
            None,
            MetricType::Gauge,
        )?;
        for status in &statuses {
            for task in &status.tasks {
                let labels = TaskLabels {
                    connector: status.name.clone(),
                    task: task.id,
                };
                ConstGauge::new(task.batches_in_flight as i64)
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "brook_connector_tasks_running",
            "A connector's tasks in the RUNNING state",
            None,
            MetricType::Gauge,
        )?;
        for status in &statuses {
            let running = status
                .tasks
                .iter()
                .filter(|t| t.state == ConnectorState::Running)
                .count();
            let labels = ConnectorLabels {
                connector: status.name.clone(),
            };
            ConstGauge::new(running as i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
