//! A query's operators, whatever its plan: stateless filter and projection, or an
//! aggregation. Backends run them the same way, handing each task's store in.

use crate::aggregation::Aggregation;
use crate::formats::FormatContext;
use crate::join::Join;
use crate::pipeline::{InputRecord, Output, Pipeline, RecordError};
use crate::serving::PushRow;
use brook_planner::catalog::SourceDef;
use brook_planner::plan::{Dataflow, Projection};
use brook_planner::value::Value;
use brook_state::Store;

#[allow(clippy::large_enum_variant)] // one per query
pub enum Operators {
    Stateless(Pipeline),
    Aggregate(Aggregation),
    Join(Join),
}

impl Operators {
    pub fn new(flow: Dataflow, formats: &FormatContext) -> Self {
        match flow {
            Dataflow::Stateless(plan) => Operators::Stateless(Pipeline::new(plan, formats)),
            Dataflow::Aggregate(plan) => Operators::Aggregate(Aggregation::new(plan, formats)),
            Dataflow::Join(plan) => Operators::Join(Join::new(plan, formats)),
        }
    }

    pub fn source(&self) -> &SourceDef {
        match self {
            Operators::Stateless(p) => &p.plan.source,
            Operators::Aggregate(a) => &a.plan.pre.source,
            Operators::Join(j) => &j.plan.inputs[0].pre.source,
        }
    }

    /// The topics the operators read.
    pub fn topics(&self) -> Vec<String> {
        match self {
            Operators::Join(j) => j.topics(),
            Operators::Aggregate(a) => a.topics(),
            Operators::Stateless(p) => vec![p.plan.source.topic.clone()],
        }
    }

    /// The join the operators run, alone or under an aggregation of its rows.
    pub fn join(&self) -> Option<&Join> {
        match self {
            Operators::Join(j) => Some(j),
            Operators::Aggregate(a) => a.join.as_ref(),
            Operators::Stateless(_) => None,
        }
    }

    pub fn join_mut(&mut self) -> Option<&mut Join> {
        match self {
            Operators::Join(j) => Some(j),
            Operators::Aggregate(a) => a.join.as_mut(),
            Operators::Stateless(_) => None,
        }
    }

    pub fn projection(&self) -> &[Projection] {
        match self {
            Operators::Stateless(p) => &p.plan.projection,
            Operators::Aggregate(a) => a.projection(),
            Operators::Join(j) => j.projection(),
        }
    }

    /// The rows a push query ends after (`LIMIT`).
    pub fn limit(&self) -> Option<u64> {
        match self {
            Operators::Stateless(p) => p.plan.limit,
            Operators::Aggregate(a) => a.plan.limit,
            Operators::Join(j) => j.plan.post.limit,
        }
    }

    pub fn aggregation(&self) -> Option<&Aggregation> {
        match self {
            Operators::Aggregate(a) => Some(a),
            _ => None,
        }
    }

    /// Whether the output is a table: only then may updates of a key be coalesced.
    pub fn emits_table(&self) -> bool {
        match self {
            Operators::Stateless(p) => p.plan.source.kind == brook_sql::ast::SourceKind::Table,
            Operators::Aggregate(_) => true,
            Operators::Join(j) => j.plan.output_kind() == brook_sql::ast::SourceKind::Table,
        }
    }

    /// Whether the operators keep state, and so need a store per task.
    pub fn stateful(&self) -> bool {
        matches!(self, Operators::Aggregate(_) | Operators::Join(_))
    }

    /// Processes records of one task, in order. A failure of the store fails the batch.
    /// Whether a push query shows the output row: a stream's records without a value are
    /// not rows, as ksqlDB ignores them; a table's are deletions, shown with NULLs.
    /// A row of `output` as a push query shows it: a stream's records that carry a value;
    /// a table's changes, its deletes as tombstones with their key columns only.
    pub fn push_row(&self, output: &Output, row: usize) -> Option<PushRow> {
        let tombstone = output.tombstone.get(row).copied().unwrap_or(false);
        if tombstone && !self.emits_table() {
            return None;
        }
        let mut columns = output.row(self.projection(), row);
        if tombstone {
            for (value, p) in columns.iter_mut().zip(self.projection()) {
                if !p.key {
                    *value = Value::Null;
                }
            }
        }
        Some(PushRow { columns, tombstone })
    }

    /// Runs the operators as a push query: a table's rows that do not match the WHERE
    /// clause are left out rather than deleted, as ksqlDB's push queries leave them.
    pub fn for_push(mut self) -> Self {
        if let Operators::Stateless(p) = &mut self {
            p.unmatched_delete = false;
        }
        self
    }

    pub fn process(
        &self,
        records: &[InputRecord],
        store: &mut Store,
        errors: &mut Vec<RecordError>,
    ) -> Result<Output, String> {
        match self {
            Operators::Stateless(p) => Ok(p.process(records, errors)),
            Operators::Aggregate(a) => a.process(records, store, errors),
            Operators::Join(j) => j.process(records, store, errors),
        }
    }
}
