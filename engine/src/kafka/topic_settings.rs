//! The settings of the topics that statements create, as ksqlDB sets them: a stream's
//! topic deletes old records, a table's compacts, a windowed table's does both; the
//! retention comes from `WITH (RETENTION_MS=...)`, or else from the topic the query reads
//! (its left-most source in a join), so that a query over a topic that keeps everything
//! writes one that keeps everything too.

use brook_sql::ast::SourceKind;

/// `retention.ms` meaning "keep for ever".
const FOREVER: i64 = -1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    pub cleanup_policy: &'static str,
    pub retention_ms: Option<i64>,
}

/// What a new topic will hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Stream,
    Table,
    /// A windowed aggregate's rows, with the window's `RETENTION` when it has one.
    WindowedTable {
        window_retention: Option<i64>,
    },
}

impl Holds {
    pub fn of(kind: SourceKind) -> Self {
        match kind {
            SourceKind::Stream => Holds::Stream,
            SourceKind::Table => Holds::Table,
        }
    }
}

impl TopicSettings {
    /// The settings for a topic holding `holds`, with the statement's `RETENTION_MS`
    /// (`declared`) or the retention of the topic the query reads (`inherited`).
    pub fn new(
        holds: Holds,
        declared: Option<i64>,
        inherited: Option<i64>,
    ) -> Result<Self, String> {
        if holds == Holds::Table && declared.is_some() {
            return Err("Invalid config variable in the WITH clause: RETENTION_MS. Non-windowed tables do not support retention.".into());
        }
        let retention = declared.or(inherited);
        Ok(match holds {
            Holds::Stream => TopicSettings {
                cleanup_policy: "delete",
                retention_ms: retention,
            },
            // Compaction keeps a table's every key; a retention would not apply.
            Holds::Table => TopicSettings {
                cleanup_policy: "compact",
                retention_ms: None,
            },
            Holds::WindowedTable { window_retention } => TopicSettings {
                cleanup_policy: "compact,delete",
                retention_ms: match (retention, window_retention) {
                    (Some(a), Some(b)) => Some(longer(a, b)),
                    (a, b) => a.or(b),
                },
            },
        })
    }

    /// The topic configuration to create the topic with.
    pub fn config(&self) -> Vec<(&'static str, String)> {
        let mut config = vec![("cleanup.policy", self.cleanup_policy.to_string())];
        if let Some(ms) = self.retention_ms {
            config.push(("retention.ms", ms.to_string()));
        }
        config
    }
}

/// The longer of two retentions, where -1 is longer than any.
fn longer(a: i64, b: i64) -> i64 {
    if a == FOREVER || b == FOREVER {
        FOREVER
    } else {
        a.max(b)
    }
}

#[cfg(test)]
mod tests {
    use super::{Holds, TopicSettings};

    fn settings(
        holds: Holds,
        declared: Option<i64>,
        inherited: Option<i64>,
    ) -> (String, Option<i64>) {
        let s = TopicSettings::new(holds, declared, inherited).unwrap();
        (s.cleanup_policy.to_string(), s.retention_ms)
    }

    #[test]
    fn streams_take_the_declared_retention_or_their_sources() {
        assert_eq!(
            settings(Holds::Stream, Some(5), Some(9)),
            ("delete".into(), Some(5))
        );
        assert_eq!(
            settings(Holds::Stream, None, Some(-1)),
            ("delete".into(), Some(-1))
        );
        assert_eq!(settings(Holds::Stream, None, None), ("delete".into(), None));
    }

    #[test]
    fn tables_compact_and_refuse_a_retention() {
        assert_eq!(
            settings(Holds::Table, None, Some(9)),
            ("compact".into(), None)
        );
        let refused = TopicSettings::new(Holds::Table, Some(9), None).unwrap_err();
        assert!(
            refused.contains("Non-windowed tables do not support retention"),
            "{refused}"
        );
    }

    #[test]
    fn windowed_tables_keep_the_longer_of_the_retention_and_the_windows() {
        let windowed = |r| Holds::WindowedTable {
            window_retention: r,
        };
        assert_eq!(
            settings(windowed(Some(7_200_000)), Some(604_800_000), None),
            ("compact,delete".into(), Some(604_800_000))
        );
        assert_eq!(
            settings(windowed(Some(7_200_000)), None, Some(1000)).1,
            Some(7_200_000)
        );
        // A source that keeps everything keeps the windows for ever too.
        assert_eq!(
            settings(windowed(Some(7_200_000)), None, Some(-1)).1,
            Some(-1)
        );
        assert_eq!(settings(windowed(None), None, None).1, None);
    }
}
