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

/// One node of a topology: a source (the topics it reads), a processor (the stores it
/// keeps) or a sink (the topic it writes).
enum Node {
    Source(Vec<String>),
    Processor(Vec<String>),
    Sink(String),
}

/// A sub-topology under construction: its nodes in order, each with the names it feeds.
#[derive(Default)]
struct SubTopology {
    nodes: Vec<(String, Node, Vec<String>)>,
}

impl SubTopology {
    /// Adds a node fed by `from`.
    fn add(&mut self, name: &str, node: Node, from: &[String]) -> String {
        for (n, _, next) in &mut self.nodes {
            if from.contains(n) {
                next.push(name.to_string());
            }
        }
        self.nodes.push((name.to_string(), node, Vec::new()));
        name.to_string()
    }

    fn text(&self, index: usize) -> String {
        let mut out = format!("   Sub-topology: {index}\n");
        for (name, node, next) in &self.nodes {
            let prev: Vec<&str> = self
                .nodes
                .iter()
                .filter(|(_, _, n)| n.contains(name))
                .map(|(n, _, _)| n.as_str())
                .collect();
            let head = match node {
                Node::Source(topics) => format!("Source: {name} (topics: [{}])", topics.join(", ")),
                Node::Processor(stores) => {
                    format!("Processor: {name} (stores: [{}])", stores.join(", "))
                }
                Node::Sink(topic) => format!("Sink: {name} (topic: {topic})"),
            };
            out.push_str(&format!("    {head}\n"));
            if !next.is_empty() {
                out.push_str(&format!("      --> {}\n", next.join(", ")));
            }
            if !prev.is_empty() {
                out.push_str(&format!("      <-- {}\n", prev.join(", ")));
            }
        }
        out
    }
}

/// Names nodes as Kafka Streams numbers them: kind, then a counter over the topology.
#[derive(Default)]
struct Names(usize);

impl Names {
    fn next(&mut self, kind: &str) -> String {
        self.0 += 1;
        format!("KSTREAM-{kind}-{:010}", self.0 - 1)
    }
}

/// A stateless stage after its source: the WHERE filter, then what feeds the next step.
fn stage(sub: &mut SubTopology, plan: &QueryPlan, from: String) -> String {
    let mut last = from;
    if plan.filter.is_some() {
        last = sub.add("WhereFilter", Node::Processor(vec![]), &[last]);
    }
    last
}

/// The state stores a query's tasks keep, by the names its topology gives them.
pub fn state_stores(flow: &Dataflow) -> Vec<String> {
    match flow {
        Dataflow::Stateless(_) => vec![],
        Dataflow::Aggregate(a) => {
            let mut stores: Vec<String> = a.join.iter().map(|_| JOIN_STORE.into()).collect();
            stores.push(AGGREGATE_STORE.into());
            stores
        }
        Dataflow::Join(_) => vec![JOIN_STORE.into()],
    }
}

const JOIN_STORE: &str = "Join-changelog";
const AGGREGATE_STORE: &str = "Aggregate-Aggregate-Materialize";

/// What a query runs, in the shape of Kafka Streams' topology description: each
/// sub-topology from its source topics through its processors (with their state stores)
/// to its sink, split where records move through a repartition topic. Internal topics and
/// stores are named without the query's prefix, as Kafka Streams names them.
pub fn topology(flow: &Dataflow, sink: Option<&SourceDef>) -> String {
    let mut names = Names::default();
    let mut subs: Vec<SubTopology> = Vec::new();
    let mut main = SubTopology::default();
    let last = match flow {
        Dataflow::Stateless(plan) => {
            let source = names.next("SOURCE");
            main.add(&source, Node::Source(vec![plan.source.topic.clone()]), &[]);
            let last = stage(&mut main, plan, source);
            main.add("Project", Node::Processor(vec![]), &[last])
        }
        Dataflow::Aggregate(a) => {
            let store = AGGREGATE_STORE.to_string();
            let input = match &a.join {
                Some(j) => join_nodes(&mut main, &mut subs, &mut names, j),
                None => {
                    let source = names.next("SOURCE");
                    main.add(&source, Node::Source(vec![a.pre.source.topic.clone()]), &[]);
                    source
                }
            };
            let mut last = stage(&mut main, &a.pre, input);
            if !a.groups_by_source_key() || a.join.is_some() {
                // Rows move to their group's partition, and are aggregated from there.
                let topic = "Aggregate-GroupBy-repartition".to_string();
                let grouped = main.add("Aggregate-GroupBy", Node::Processor(vec![]), &[last]);
                let moved = names.next("SINK");
                main.add(&moved, Node::Sink(topic.clone()), &[grouped]);
                subs.push(std::mem::take(&mut main));
                last = main.add(&format!("{topic}-source"), Node::Source(vec![topic]), &[]);
            }
            last = main.add("Aggregate-Aggregate", Node::Processor(vec![store]), &[last]);
            if a.having.is_some() {
                last = main.add("Aggregate-HavingFilter", Node::Processor(vec![]), &[last]);
            }
            main.add("Project", Node::Processor(vec![]), &[last])
        }
        Dataflow::Join(j) => {
            let joined = join_nodes(&mut main, &mut subs, &mut names, j);
            main.add("Project", Node::Processor(vec![]), &[joined])
        }
    };
    if let Some(sink) = sink {
        let name = names.next("SINK");
        main.add(&name, Node::Sink(sink.topic.clone()), &[last]);
    }
    subs.push(main);
    let mut out = "Topologies:\n".to_string();
    for (i, sub) in subs.iter().enumerate() {
        out.push_str(&sub.text(i));
    }
    out
}

/// A join's sources (those that move go through their own repartition topic first, in
/// sub-topologies of their own) and the join itself; returns the join's node.
fn join_nodes(
    main: &mut SubTopology,
    subs: &mut Vec<SubTopology>,
    names: &mut Names,
    j: &crate::join::JoinPlan,
) -> String {
    let moved: Vec<usize> = match j.inputs_to_repartition() {
        Some(moved) => moved.into_iter().map(|(i, _)| i).collect(),
        None => (0..j.inputs.len()).collect(),
    };
    let mut sides = Vec::new();
    for (i, input) in j.inputs.iter().enumerate() {
        let topic = input.pre.source.topic.clone();
        if moved.contains(&i) {
            let repartition = format!("Join-{}-repartition", input.alias);
            let mut sub = SubTopology::default();
            let source = names.next("SOURCE");
            sub.add(&source, Node::Source(vec![topic]), &[]);
            let keyed = sub.add(
                &format!("Join-{}-SelectKey", input.alias),
                Node::Processor(vec![]),
                &[source],
            );
            let sink = names.next("SINK");
            sub.add(&sink, Node::Sink(repartition.clone()), &[keyed]);
            subs.push(sub);
            sides.push(main.add(
                &format!("{repartition}-source"),
                Node::Source(vec![repartition]),
                &[],
            ));
        } else {
            let source = names.next("SOURCE");
            sides.push(main.add(&source, Node::Source(vec![topic]), &[]));
        }
    }
    main.add("Join", Node::Processor(vec![JOIN_STORE.into()]), &sides)
}

#[cfg(test)]
mod tests {
    use super::topology;
    use crate::catalog::Catalog;
    use brook_sql::ast::StatementKind;

    /// The topology of the last statement (a CREATE ... AS SELECT) over the sources the
    /// statements before it declare.
    fn topology_of(sql: &str) -> String {
        let statements =
            brook_sql::parse_statements(sql, &mut Default::default()).expect("statements");
        let mut catalog = Catalog::default();
        let (last, sources) = statements.split_last().expect("statements");
        for s in sources {
            let StatementKind::CreateSource(create) = &s.kind else {
                panic!("CREATE STREAM|TABLE first")
            };
            let source = catalog.source_from_create(create, &s.text).expect("source");
            catalog.sources.insert(source.name.clone(), source);
        }
        let StatementKind::CreateAsSelect(create) = &last.kind else {
            panic!("a CREATE ... AS SELECT last")
        };
        let (flow, sink) = catalog.plan_create_as(create, &last.text).expect("plan");
        topology(&flow, Some(&sink))
    }

    #[test]
    fn a_grouping_on_a_value_column_moves_rows_through_a_repartition_topic() {
        let text = topology_of(
            "CREATE STREAM clicks (u STRING KEY, page STRING) WITH (kafka_topic='clicks', value_format='JSON');
             CREATE TABLE per_page AS SELECT page, COUNT(*) AS n FROM clicks WHERE page <> '/' GROUP BY page HAVING COUNT(*) > 1;",
        );
        assert_eq!(
            text,
            "Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [clicks])
      --> WhereFilter
    Processor: WhereFilter (stores: [])
      --> Aggregate-GroupBy
      <-- KSTREAM-SOURCE-0000000000
    Processor: Aggregate-GroupBy (stores: [])
      --> KSTREAM-SINK-0000000001
      <-- WhereFilter
    Sink: KSTREAM-SINK-0000000001 (topic: Aggregate-GroupBy-repartition)
      <-- Aggregate-GroupBy
   Sub-topology: 1
    Source: Aggregate-GroupBy-repartition-source (topics: [Aggregate-GroupBy-repartition])
      --> Aggregate-Aggregate
    Processor: Aggregate-Aggregate (stores: [Aggregate-Aggregate-Materialize])
      --> Aggregate-HavingFilter
      <-- Aggregate-GroupBy-repartition-source
    Processor: Aggregate-HavingFilter (stores: [])
      --> Project
      <-- Aggregate-Aggregate
    Processor: Project (stores: [])
      --> KSTREAM-SINK-0000000002
      <-- Aggregate-HavingFilter
    Sink: KSTREAM-SINK-0000000002 (topic: PER_PAGE)
      <-- Project
"
        );
    }

    #[test]
    fn a_stream_joined_on_a_value_column_moves_first() {
        let text = topology_of(
            "CREATE STREAM orders (id STRING KEY, user_id STRING) WITH (kafka_topic='orders', value_format='JSON');
             CREATE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='users', value_format='JSON');
             CREATE STREAM enriched AS SELECT o.user_id, o.id, u.name FROM orders o JOIN users u ON o.user_id = u.id;",
        );
        assert!(
            text.contains("Sink: KSTREAM-SINK-0000000001 (topic: Join-O-repartition)"),
            "{text}"
        );
        assert!(
            text.contains("Processor: Join (stores: [Join-changelog])\n      --> Project\n      <-- Join-O-repartition-source, KSTREAM-SOURCE-0000000002"),
            "{text}"
        );
        assert!(text.contains("(topic: ENRICHED)"), "{text}");
    }
}
