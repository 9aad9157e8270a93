//! A query's execution plan as `EXPLAIN` shows it: one line per step, from the sink down
//! to the sources, each with the columns it produces.

use crate::catalog::SourceDef;
use crate::plan::{Dataflow, Projection, QueryPlan};
use brook_sql::ast::{JoinKind, WindowKind};

/// Columns as `name TYPE [KEY]`, comma separated.
pub fn schema(projection: &[Projection]) -> String {
    projection
        .iter()
        .map(|p| {
            let key = if p.key { " KEY" } else { "" };
            format!("`{}` {}{key}", p.name, p.expr.data_type)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

struct Lines(Vec<String>);

impl Lines {
    fn push(&mut self, depth: usize, step: &str, detail: String) {
        self.0
            .push(format!("{} > [ {step} ] | {detail}", "\t\t".repeat(depth)));
    }

    /// The steps of a stateless stage: projection, filter, source.
    fn stage(&mut self, depth: usize, plan: &QueryPlan) {
        self.push(
            depth,
            "PROJECT",
            format!("Schema: {}", schema(&plan.projection)),
        );
        let mut depth = depth + 1;
        if plan.filter.is_some() {
            self.push(depth, "FILTER", format!("Source: {}", plan.source.name));
            depth += 1;
        }
        self.source(depth, &plan.source);
    }

    fn source(&mut self, depth: usize, source: &SourceDef) {
        self.push(
            depth,
            "SOURCE",
            format!(
                "{} {} | Topic: {} | Key format: {} | Value format: {}",
                source.kind.keyword(),
                source.name,
                source.topic,
                source.key_format.kind.name(),
                source.value_format.kind.name()
            ),
        );
    }
}

fn window_text(kind: WindowKind) -> String {
    match kind {
        WindowKind::Tumbling { size } => format!("TUMBLING (SIZE {size} MILLISECONDS)"),
        WindowKind::Hopping { size, advance } => {
            format!("HOPPING (SIZE {size} MILLISECONDS, ADVANCE BY {advance} MILLISECONDS)")
        }
        WindowKind::Session { gap } => format!("SESSION ({gap} MILLISECONDS)"),
    }
}

fn join_text(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "INNER JOIN",
        JoinKind::Left => "LEFT JOIN",
        JoinKind::Right => "RIGHT JOIN",
        JoinKind::Outer => "FULL OUTER JOIN",
    }
}

/// The plan of `flow`, writing `sink` if it is a persistent query.
pub fn execution_plan(flow: &Dataflow, sink: Option<&SourceDef>) -> String {
    let mut lines = Lines(Vec::new());
    let mut depth = 0;
    if let Some(sink) = sink {
        lines.push(
            0,
            "SINK",
            format!(
                "{} {} | Topic: {} | Schema: {}",
                sink.kind.keyword(),
                sink.name,
                sink.topic,
                schema(flow.projection())
            ),
        );
        depth = 1;
    }
    match flow {
        Dataflow::Stateless(plan) => lines.stage(depth, plan),
        Dataflow::Aggregate(a) => {
            lines.push(
                depth,
                "PROJECT",
                format!("Schema: {}", schema(&a.projection)),
            );
            let mut depth = depth + 1;
            if a.having.is_some() {
                lines.push(depth, "HAVING", "Filter on the aggregated rows".into());
                depth += 1;
            }
            let functions: Vec<String> = a
                .aggregates
                .iter()
                .map(|c| format!("{:?}", c.aggregate.udaf).to_uppercase())
                .collect();
            let keys: Vec<&str> = a.pre.projection[..a.keys]
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            let window = a
                .window
                .as_ref()
                .map(|w| format!(" | Window: {}", window_text(w.kind)))
                .unwrap_or_default();
            let final_only = if a.emit_final { " | EMIT FINAL" } else { "" };
            lines.push(
                depth,
                "AGGREGATE",
                format!(
                    "Group by: {} | Aggregates: {}{window}{final_only}",
                    keys.join(", "),
                    functions.join(", ")
                ),
            );
            lines.stage(depth + 1, &a.pre);
        }
        Dataflow::Join(j) => {
            lines.push(
                depth,
                "PROJECT",
                format!("Schema: {}", schema(&j.post.projection)),
            );
            let depth = depth + 1;
            for (i, step) in j.steps.iter().enumerate().rev() {
                let within = step
                    .within
                    .as_ref()
                    .map(|w| format!(" | Within: {} ms before, {} ms after", w.before, w.after))
                    .unwrap_or_default();
                let foreign = if step.foreign_key {
                    " | Foreign key"
                } else {
                    ""
                };
                lines.push(
                    depth + (j.steps.len() - 1 - i),
                    "JOIN",
                    format!(
                        "{} of {} and {}{within}{foreign}",
                        join_text(step.kind),
                        step.left_kind.keyword(),
                        step.right_kind.keyword()
                    ),
                );
            }
            let depth = depth + j.steps.len();
            for input in &j.inputs {
                lines.source(depth, &input.pre.source);
            }
        }
    }
    lines.0.join("\n")
}
