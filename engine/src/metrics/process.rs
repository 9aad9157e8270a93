//! The process's own figures, read from `/proc` when scraped: CPU time, resident memory,
//! threads. Where `/proc` does not exist they are left out rather than reported as zero.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug)]
pub struct ProcessCollector {
    started: std::time::SystemTime,
}

impl ProcessCollector {
    pub fn new() -> Self {
        Self {
            started: std::time::SystemTime::now(),
        }
    }
}

/// What `/proc/self/stat` and `/proc/self/statm` say.
struct Usage {
    cpu_seconds: f64,
    resident_bytes: i64,
    threads: i64,
}

/// The kernel's clock ticks per second for `/proc` times (USER_HZ), 100 on Linux.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_BYTES: i64 = 4096;

fn usage() -> Option<Usage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; threads 20.
    let cpu_seconds = (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND;
    let threads = fields.get(17)?.parse().ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(Usage {
        cpu_seconds,
        resident_bytes: resident_pages * PAGE_BYTES,
        threads,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(usage) = usage() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(usage.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "brook_process_cpu_seconds",
            "CPU time this process used, user and system",
            None,
            cpu.metric_type(),
        )?)?;
        let memory = ConstGauge::new(usage.resident_bytes);
        memory.encode(encoder.encode_descriptor(
            "brook_process_resident_memory_bytes",
            "Resident memory of this process",
            None,
            memory.metric_type(),
        )?)?;
        let threads = ConstGauge::new(usage.threads);
        threads.encode(encoder.encode_descriptor(
            "brook_process_threads",
            "Threads of this process",
            None,
            threads.metric_type(),
        )?)?;
        let started = self
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let start = ConstGauge::new(started);
        start.encode(encoder.encode_descriptor(
            "brook_process_start_time_seconds",
            "When this process started, in seconds since the epoch",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_is_read_from_proc() {
        let usage = super::usage().expect("/proc/self is readable on Linux");
        assert!(usage.resident_bytes > 0);
        assert!(usage.threads >= 1);
        assert!(usage.cpu_seconds >= 0.0);
    }
}
