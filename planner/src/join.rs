//! Join planning: `FROM a JOIN b ON .. [JOIN c ON ..]` as a chain of steps, each joining
//! the rows joined so far with one more source, as ksqlDB plans them (left-deep).
//!
//! Every source's row keeps its columns under the names `ALIAS_COLUMN`; the joined row is
//! the join key, then each source's row in FROM order, then the result's ROWTIME. WHERE
//! and the projection are typed against the joined row.

use crate::catalog::{
    Catalog, Column, ColumnRole, SourceDef, ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND,
    WINDOWSTART,
};
use crate::error::{PlanError, Result};
use crate::formats::FormatKind;
use crate::plan::{
    check_unique_names, in_clause, plan_filter, pseudo_columns, source_row, Projection, QueryPlan,
};
use crate::typing::{type_expr, ExprKind, RowColumn, Scope, TypedExpr};
use brook_sql::ast::{self, DataType, Expr, JoinKind, JoinWithin, SelectItem, SourceKind};

/// The name of the joined row's key when no source column holds it: ksqlDB's synthetic
/// key column.
pub const SYNTHETIC_KEY: &str = "ROWKEY";
/// The joined row's key column when source columns hold it: not a name queries can use.
const HIDDEN_KEY: &str = "$JOIN_KEY";

#[derive(Debug, Clone, PartialEq)]
pub struct JoinPlan {
    /// Each source's rows: its row columns, then the join keys computed on it.
    pub inputs: Vec<JoinInput>,
    /// `steps[i]` joins the rows of `inputs[..=i]` with `inputs[i + 1]`.
    pub steps: Vec<JoinStep>,
    /// The joined rows through WHERE and the projection; its source stands for the
    /// joined row.
    pub post: QueryPlan,
    /// On Kafka, when the inputs cannot be brought to the partitions of their join keys:
    /// every input goes through a repartition topic with one partition, so that one task
    /// joins them all.
    pub funnel: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinInput {
    /// The source's row, projected as is and followed by join keys.
    pub pre: QueryPlan,
    pub alias: String,
    /// How many of the projected columns are the source's row.
    pub width: usize,
    /// Positions of the source's key columns in its row.
    pub primary_key: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinStep {
    pub kind: JoinKind,
    /// The input whose row computes the left key, and where in its projection.
    pub left_key: (usize, usize),
    /// Where in the right input's projection its key is.
    pub right_key: usize,
    pub left_kind: SourceKind,
    pub right_kind: SourceKind,
    pub within: Option<JoinWithin>,
    /// A table-table join from a column of the left table to the right's primary key:
    /// its results are keyed by the left table's key.
    pub foreign_key: bool,
}

impl JoinStep {
    pub fn output_kind(&self) -> SourceKind {
        if self.left_kind == SourceKind::Table && self.right_kind == SourceKind::Table {
            SourceKind::Table
        } else {
            SourceKind::Stream
        }
    }
}

impl JoinPlan {
    pub fn output_kind(&self) -> SourceKind {
        self.steps
            .last()
            .map(JoinStep::output_kind)
            .unwrap_or(SourceKind::Stream)
    }

    /// Whether results are keyed by the left table's primary key (a foreign-key join).
    pub fn foreign_key(&self) -> bool {
        self.steps.iter().any(|s| s.foreign_key)
    }

    /// Whether every step joins its sides on their message keys, written alike: then
    /// records that join are in the same partition of their topics (given equal partition
    /// counts) and each partition's task can join them without moving records.
    pub fn joins_on_message_keys(&self) -> bool {
        let first = &self.inputs[0].pre.source.key_format;
        self.steps.iter().enumerate().all(|(n, s)| {
            !s.foreign_key
                && self.is_message_key(s.left_key.0, s.left_key.1)
                && self.is_message_key(n + 1, s.right_key)
        }) && self
            .inputs
            .iter()
            .all(|i| i.pre.source.key_format.kind == first.kind)
    }

    /// Whether the join key at `slot` of `input`'s projection is its record key as is.
    fn is_message_key(&self, input: usize, slot: usize) -> bool {
        let i = &self.inputs[input];
        i.primary_key.len() == 1
            && i.pre.projection.get(slot).map(|p| &p.expr.kind)
                == Some(&ExprKind::Column(i.primary_key[0]))
    }

    /// For running on several partitions: the inputs whose records must first move to
    /// the partition of their join key (written in the key format of an input that does
    /// not move), and where their key is in their projection. `None` when that cannot make
    /// the join's records meet: a table would have to move, a foreign-key join, or
    /// several join steps on different keys.
    pub fn inputs_to_repartition(&self) -> Option<Vec<(usize, usize)>> {
        if self.joins_on_message_keys() {
            return Some(vec![]);
        }
        if self.steps.len() != 1 || self.steps[0].foreign_key {
            return None;
        }
        let step = &self.steps[0];
        let slots = [step.left_key.1, step.right_key];
        let keyed = [
            self.is_message_key(0, slots[0]),
            self.is_message_key(1, slots[1]),
        ];
        let format = |i: usize| self.inputs[i].pre.source.key_format.kind;
        let target = (0..2).find(|i| keyed[*i]);
        let mut moved = Vec::new();
        for i in 0..2 {
            let needs = !keyed[i] || target.is_some_and(|t| t != i && format(i) != format(t));
            if needs {
                if self.inputs[i].pre.source.kind == SourceKind::Table {
                    return None;
                }
                moved.push((i, slots[i]));
            }
        }
        Some(moved)
    }
}

/// A source of the join as expressions name it.
struct Side<'a> {
    source: &'a SourceDef,
    alias: String,
    /// Where its row starts in the joined row.
    offset: usize,
    row: Vec<RowColumn>,
}

impl Side<'_> {
    fn names(&self, qualifier: &str) -> bool {
        self.alias == qualifier || self.source.name == qualifier
    }

    fn has(&self, name: &str) -> bool {
        self.row.iter().any(|c| c.name == name)
    }
}

/// Qualifies every column of `e` with the source it belongs to (by alias); names no
/// source has stay as written. Fails on unknown qualifiers and ambiguous names.
fn qualify(e: &Expr, sides: &[Side]) -> Result<Expr> {
    let mut problem = None;
    let mut unknown = None;
    let out = e.rewrite(&mut |node| {
        let Expr::Column {
            qualifier,
            name,
            position,
        } = node
        else {
            return None;
        };
        match qualifier {
            Some(q) => match sides.iter().find(|s| s.names(q)) {
                Some(s) => Some(Expr::Column {
                    qualifier: Some(s.alias.clone()),
                    name: name.clone(),
                    position: *position,
                }),
                None => {
                    // An unknown qualifier is reported before any ambiguous name.
                    if unknown.is_none() {
                        unknown = Some(PlanError::new(format!(
                            "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                        )));
                    }
                    None
                }
            },
            None => {
                if name == ROWTIME {
                    return None;
                }
                let owners: Vec<&Side> = sides.iter().filter(|s| s.has(name)).collect();
                match owners.as_slice() {
                    [one] => Some(Expr::Column {
                        qualifier: Some(one.alias.clone()),
                        name: name.clone(),
                        position: *position,
                    }),
                    [] => None,
                    many => {
                        let list: Vec<String> =
                            many.iter().map(|s| format!("{}.{name}", s.alias)).collect();
                        problem.get_or_insert(PlanError::at(
                            *position,
                            format!(
                                "Column '{name}' is ambiguous. Could be {}.",
                                list.join(" or ")
                            ),
                        ));
                        None
                    }
                }
            }
        }
    });
    match unknown.or(problem) {
        Some(p) => Err(p),
        None => Ok(out),
    }
}

/// The joined-row name of each qualified column: `ALIAS_NAME`.
fn flatten(e: &Expr) -> Expr {
    e.rewrite(&mut |node| match node {
        Expr::Column {
            qualifier: Some(q),
            name,
            position,
        } => Some(Expr::Column {
            qualifier: None,
            name: format!("{q}_{name}"),
            position: *position,
        }),
        _ => None,
    })
}

/// The sources (by index) whose columns `e` (qualified) uses.
fn sources_of(e: &Expr, sides: &[Side]) -> Vec<usize> {
    let mut out = Vec::new();
    e.rewrite(&mut |node| {
        if let Expr::Column {
            qualifier: Some(q), ..
        } = node
        {
            if let Some(i) = sides.iter().position(|s| s.alias == *q) {
                if !out.contains(&i) {
                    out.push(i);
                }
            }
        }
        None
    });
    out
}

fn join_word(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "[INNER] JOIN",
        JoinKind::Left => "LEFT [OUTER] JOIN",
        JoinKind::Right => "RIGHT [OUTER] JOIN",
        JoinKind::Outer => "[FULL] OUTER JOIN",
    }
}

/// The sources of a join as its expressions name them, each with where its row starts
/// in the joined row.
fn sides_of<'a>(catalog: &'a Catalog, query: &ast::Query) -> Result<Vec<Side<'a>>> {
    let relations: Vec<&ast::Relation> = std::iter::once(&query.from)
        .chain(query.joins.iter().map(|j| &j.relation))
        .collect();
    let mut sides: Vec<Side> = Vec::new();
    // The joined row starts with the key.
    let mut offset = 1;
    for r in &relations {
        let source = catalog
            .sources
            .get(&r.name)
            .ok_or_else(|| PlanError::at(r.position, format!("{} does not exist.", r.name)))?;
        let alias = r.alias.clone().unwrap_or_else(|| source.name.clone());
        let row = source_row(source);
        let width = row.len();
        sides.push(Side {
            source,
            alias,
            offset,
            row,
        });
        offset += width;
    }
    Ok(sides)
}

/// An aggregation of joined rows (`GROUP BY` over a join), as ksqlDB plans it: the join
/// gives every column of its sources under `ALIAS_NAME`, and the aggregation reads those
/// rows, WHERE first, with its expressions written against those names (`SUM(I1_BAR)`).
pub fn plan_join_aggregate(
    catalog: &Catalog,
    query: &ast::Query,
    sink: Option<&str>,
) -> Result<crate::aggregate::AggregatePlan> {
    let sides = sides_of(catalog, query)?;
    if sides.iter().any(|s| s.source.window.is_some()) {
        return Err(PlanError::new(
            "Aggregations over joins of windowed sources are not supported: write the join to a stream or table and aggregate that.",
        ));
    }
    let inner = ast::Query {
        select: vec![SelectItem::Wildcard { qualifier: None }],
        filter: None,
        partition_by: vec![],
        group_by: vec![],
        having: None,
        emit: None,
        limit: None,
        window: None,
        ..query.clone()
    };
    let join = plan_join(catalog, &inner, None)?;
    let joined = |e: &Expr, clause: &str| -> Result<Expr> {
        Ok(flatten(
            &qualify(e, &sides).map_err(|err| in_clause(err, clause))?,
        ))
    };
    let mut select = Vec::new();
    for item in &query.select {
        select.push(match item {
            SelectItem::Expr { expr, alias } => {
                // A column keeps the name it has in a join's projection: its own, unless
                // several sources have it.
                let alias = alias.clone().or_else(|| match qualify(expr, &sides) {
                    Ok(Expr::Column {
                        qualifier: Some(_),
                        name,
                        ..
                    }) if sides.iter().filter(|s| s.has(&name)).count() == 1 => Some(name),
                    _ => None,
                });
                SelectItem::Expr {
                    expr: joined(expr, "SELECT")?,
                    alias,
                }
            }
            SelectItem::Wildcard { .. } => {
                return Err(PlanError::new(
                    "Aggregations over joins cannot select *: name the columns and aggregates.",
                ))
            }
        });
    }
    let outer = ast::Query {
        select,
        from: ast::Relation {
            name: join.post.source.name.clone(),
            alias: None,
            position: query.from.position,
        },
        joins: vec![],
        filter: query
            .filter
            .as_ref()
            .map(|f| joined(f, "WHERE"))
            .transpose()?,
        group_by: query
            .group_by
            .iter()
            .map(|e| joined(e, "GROUP BY"))
            .collect::<Result<_>>()?,
        having: query
            .having
            .as_ref()
            .map(|h| joined(h, "HAVING"))
            .transpose()?,
        ..query.clone()
    };
    // The joined row as the aggregation's source; a table's rows are keyed by the join key.
    let mut source = join.post.source.clone();
    if source.kind == SourceKind::Table {
        if let Some(key) = source.columns.first_mut() {
            key.role = ColumnRole::Key;
        }
    }
    let mut scoped = catalog.clone();
    scoped.sources.insert(source.name.clone(), source);
    let mut plan = crate::aggregate::plan_aggregate(&scoped, &outer, sink)?;
    plan.join = Some(Box::new(join));
    Ok(plan)
}

pub fn plan_join(catalog: &Catalog, query: &ast::Query, sink: Option<&str>) -> Result<JoinPlan> {
    let sides = sides_of(catalog, query)?;
    for i in 0..query.joins.len() {
        let right = &sides[i + 1];
        if sides[..=i]
            .iter()
            .any(|s| s.source.name == right.source.name)
        {
            return Err(PlanError::new(match query.joins.len() {
                1 => format!(
                    "Can not join '{0}' to '{0}': self joins are not yet supported.",
                    right.source.name
                ),
                _ => format!(
                    "N-way joins do not support multiple occurrences of the same source. Source: '{}'",
                    right.source.name
                ),
            }));
        }
    }
    let kafka: Vec<&str> = sides
        .iter()
        .filter(|s| s.source.value_format.kind == FormatKind::Kafka)
        .map(|s| s.source.name.as_str())
        .collect();
    if !kafka.is_empty() {
        return Err(PlanError::new(format!(
            "Source(s) {} are using the 'KAFKA' value format. This format does not yet support JOIN.",
            kafka.join(", ")
        )));
    }

    check_criteria(query, &sides)?;

    // The join conditions: per step, the left and right key expressions (qualified).
    let mut keys: Vec<(Expr, Expr)> = Vec::new();
    let mut kinds = vec![sides[0].source.kind];
    // Per step: its kind, the kinds of its sides, its window, whether on a foreign key.
    let mut steps_out: Vec<(JoinKind, SourceKind, SourceKind, Option<JoinWithin>, bool)> =
        Vec::new();
    for (i, join) in query.joins.iter().enumerate() {
        let on = qualify(&join.on, &sides[..=i + 1]).map_err(|e| {
            if e.message.contains("is ambiguous") {
                // ksqlDB finds a join condition's ambiguity while preparing the statement.
                let at = e
                    .position
                    .map(|p| format!("{}: ", brook_sql::located(p)))
                    .unwrap_or_default();
                PlanError::new(format!(
                    "Exception while preparing statement: {at}{}",
                    e.message
                ))
            } else {
                in_clause(e, "JOIN ON")
            }
        })?;
        let Expr::Binary {
            op: ast::BinaryOp::Eq,
            left,
            right,
        } = &on
        else {
            return Err(PlanError::new(format!(
                "Invalid join condition: joins on multiple conditions are not yet supported. Got {on}."
            )));
        };
        for side in [left, right] {
            if sources_of(side, &sides).len() != 1 {
                return Err(PlanError::new(format!(
                    "Invalid comparison expression '{side}' in join '{on}'. Each side of the join comparision must contain references from exactly one source."
                )));
            }
        }
        let (l, r) = if sources_of(left, &sides) == [i + 1] {
            (right.as_ref().clone(), left.as_ref().clone())
        } else {
            (left.as_ref().clone(), right.as_ref().clone())
        };
        if sources_of(&r, &sides) != [i + 1] || sources_of(&l, &sides)[0] > i {
            return Err(PlanError::new(format!(
                "Invalid comparison expression '{r}' in join '{on}'. Each side of the join comparision must contain references from exactly one source."
            )));
        }
        // Columns resolve before anything else is checked.
        type_key(&l, &sides[sources_of(&l, &sides)[0]])?;
        type_key(&r, &sides[i + 1])?;
        let left_kind = kinds[i];
        let right_source = sides[i + 1].source;
        let right_kind = right_source.kind;
        // The source the condition's left side reads names the left of a step.
        let left_name = sides[sources_of(&l, &sides)[0]].alias.clone();
        let described = format!(
            "{} {} {}",
            left_name,
            join_word(join.kind),
            sides[i + 1].alias
        );
        // The condition as written, for messages.
        let written = match &on {
            Expr::Binary { left, right, .. } => format!("{left} = {right}"),
            other => other.to_string(),
        };
        let is_primary_key = |e: &Expr, side: &Side| -> bool {
            let keys: Vec<&Column> = side.source.key_columns().collect();
            match e {
                Expr::Column { name, .. } => keys.len() == 1 && keys[0].name == *name,
                _ => false,
            }
        };
        let mut foreign_key = false;
        match (left_kind, right_kind) {
            (SourceKind::Table, SourceKind::Stream) => {
                return Err(PlanError::new(format!(
                    "Invalid join order: table-stream joins are not supported; only stream-table joins. Got {described}."
                )))
            }
            (SourceKind::Stream, SourceKind::Table) => {
                if join.kind == JoinKind::Outer || join.kind == JoinKind::Right {
                    let word = if join.kind == JoinKind::Outer {
                        "full-outer"
                    } else {
                        "right"
                    };
                    return Err(PlanError::new(format!(
                        "Invalid join type: {word} join not supported for stream-table join. Got {described}."
                    )));
                }
                if !is_primary_key(&r, &sides[i + 1]) {
                    return Err(PlanError::new(format!(
                        "Invalid join condition: stream-table joins require to join on the table's primary key. Got {written}."
                    )));
                }
                if join.within.is_some() {
                    return Err(PlanError::new(
                        "A window definition was provided for a Stream-Table join. These joins are not windowed. Please drop the window definition (i.e. the WITHIN clause) and try to execute your join again.",
                    ));
                }
            }
            (SourceKind::Table, SourceKind::Table) => {
                if !is_primary_key(&r, &sides[i + 1]) {
                    return Err(PlanError::new(format!(
                        "Invalid join condition: table-table joins require to join on the primary key of the right input table. Got {written}."
                    )));
                }
                let left_side = sources_of(&l, &sides)[0];
                // The results of a foreign-key step are keyed by the left table's key,
                // not by what that step joined on.
                let result_keys: Vec<(Expr, Expr)> = keys
                    .iter()
                    .zip(&steps_out)
                    .filter(|(_, step)| !step.4)
                    .map(|(k, _)| k.clone())
                    .collect();
                let on_left_key = i == 0 && is_primary_key(&l, &sides[0])
                    || i > 0 && is_previous_key(&l, &result_keys, &sides, left_side);
                if !on_left_key {
                    if i > 0 {
                        return Err(PlanError::new(format!(
                            "Invalid join condition: foreign-key table-table joins are not supported as part of n-way joins. Got {written}."
                        )));
                    }
                    if join.kind == JoinKind::Right || join.kind == JoinKind::Outer {
                        let word = if join.kind == JoinKind::Right {
                            "RIGHT"
                        } else {
                            "FULL"
                        };
                        return Err(PlanError::new(format!(
                            "{word} OUTER JOIN on a foreign key is not supported"
                        )));
                    }
                    let left_windowed = sides[left_side].source.window.is_some();
                    if left_windowed || right_source.window.is_some() {
                        return Err(PlanError::new(
                            "Foreign-key table-table joins are not supported on windowed tables.",
                        ));
                    }
                    foreign_key = true;
                }
                if join.within.is_some() {
                    return Err(PlanError::new(
                        "A window definition was provided for a Table-Table join. These joins are not windowed. Please drop the window definition (i.e. the WITHIN clause) and try to execute your join again.",
                    ));
                }
            }
            (SourceKind::Stream, SourceKind::Stream) => {
                if join.within.is_none() {
                    return Err(PlanError::new(
                        "Stream-Stream joins must have a WITHIN clause specified. None was provided. To learn about how to specify a WITHIN clause with a stream-stream join, please visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html#create-stream-as-select",
                    ));
                }
            }
        }
        // Windowed sources join only alike windowed sources, on their keys.
        let lw = sides[sources_of(&l, &sides)[0]].source.window;
        let rw = right_source.window;
        match (lw, rw) {
            (Some(a), None) | (None, Some(a)) => {
                let (w, n) = if lw.is_some() {
                    (&sides[sources_of(&l, &sides)[0]], &sides[i + 1])
                } else {
                    (&sides[i + 1], &sides[sources_of(&l, &sides)[0]])
                };
                return Err(PlanError::new(format!(
                    "Can not join windowed source to non-windowed source.\n`{}` is {} windowed\n`{}` is not windowed",
                    w.source.name,
                    a.kind.name(),
                    n.source.name
                )));
            }
            (Some(a), Some(b))
                if (a.kind == crate::catalog::WindowType::Session)
                    != (b.kind == crate::catalog::WindowType::Session) =>
            {
                return Err(PlanError::new(format!(
                    "Incompatible windowed sources.\nLeft source: {}\nRight source: {}\nSession windowed sources can only be joined to other session windowed sources, and may still not result in expected behaviour as session bounds must be an exact match for the join to work\nHopping and tumbling windowed sources can only be joined to other hopping and tumbling windowed sources",
                    a.kind.name(),
                    b.kind.name()
                )));
            }
            (Some(a), Some(b)) => {
                let l_side = &sides[sources_of(&l, &sides)[0]];
                // Windows of other sizes key their records apart in the KAFKA format:
                // one side would move (ksqlDB lets schema-registry keys through).
                let registry_keys = l_side.source.key_format.kind.supports_schema_inference()
                    && right_source.key_format.kind.supports_schema_inference();
                if a.size != b.size && !registry_keys
                    || !is_primary_key(&l, l_side)
                    || !is_primary_key(&r, &sides[i + 1])
                {
                    return Err(PlanError::new(
                        "Implicit repartitioning of windowed sources is not supported. See https://github.com/confluentinc/ksql/issues/4385.",
                    ));
                }
            }
            (None, None) => {}
        }
        let step_kind = if left_kind == SourceKind::Table && right_kind == SourceKind::Table {
            SourceKind::Table
        } else {
            SourceKind::Stream
        };
        kinds.push(step_kind);
        keys.push((l, r));
        steps_out.push((join.kind, left_kind, right_kind, join.within, foreign_key));
    }

    // Each source's row, then the keys computed on it.
    let mut inputs: Vec<JoinInput> = Vec::new();
    let mut key_slots: Vec<((usize, usize), usize)> = Vec::new();
    let mut extra: Vec<Vec<TypedExpr>> = vec![Vec::new(); sides.len()];
    let mut key_types = Vec::new();
    for (i, (l, r)) in keys.iter().enumerate() {
        let typed = |e: &Expr, side: usize| type_key(e, &sides[side]);
        let ls = sources_of(l, &sides)[0];
        let lt = typed(l, ls)?;
        let rt = typed(r, i + 1)?;
        let comparable = lt.data_type == rt.data_type
            || matches!(
                (&lt.data_type, &rt.data_type),
                (DataType::Int, DataType::BigInt) | (DataType::BigInt, DataType::Int)
            ) && !sides[i + 1]
                .source
                .key_format
                .kind
                .supports_schema_inference();
        if !comparable {
            return Err(PlanError::new(format!(
                "Invalid join condition: types don't match. Got {l}{{{}}} = {r}{{{}}}.",
                lt.data_type, rt.data_type
            )));
        }
        if contains_map(&lt.data_type) {
            return Err(PlanError::new(format!(
                "Map keys, including types that contain maps, are not supported as they may lead to unexpected behavior due to inconsistent serialization. Key column name: `{}`. Column type: {}. See https://github.com/confluentinc/ksql/issues/6621 for more.",
                match flatten(l) {
                    Expr::Column { name, .. } => name,
                    _ => SYNTHETIC_KEY.to_string(),
                },
                lt.data_type
            )));
        }
        // Keys compare as BIGINT when one side is INT.
        let (lt, rt) = if lt.data_type != rt.data_type {
            (lt.coerce(&DataType::BigInt), rt.coerce(&DataType::BigInt))
        } else {
            (lt, rt)
        };
        key_types.push(lt.data_type.clone());
        extra[ls].push(lt);
        let left_slot = (ls, sides[ls].row.len() + extra[ls].len() - 1);
        extra[i + 1].push(rt);
        let right_slot = sides[i + 1].row.len() + extra[i + 1].len() - 1;
        key_slots.push((left_slot, right_slot));
    }
    for (i, s) in sides.iter().enumerate() {
        let mut projection: Vec<Projection> = s
            .row
            .iter()
            .enumerate()
            .map(|(c, col)| Projection {
                name: col.name.clone(),
                expr: TypedExpr::new(ExprKind::Column(c), col.data_type.clone()),
                key: false,
            })
            .collect();
        for (k, e) in extra[i].iter().enumerate() {
            projection.push(Projection {
                name: format!("$KEY_{k}"),
                expr: e.clone(),
                key: false,
            });
        }
        let primary_key = s
            .source
            .key_columns()
            .filter_map(|k| s.row.iter().position(|c| c.name == k.name))
            .collect();
        inputs.push(JoinInput {
            pre: QueryPlan {
                source: s.source.clone(),
                row: s.row.clone(),
                filter: None,
                projection,
                limit: None,
            },
            alias: s.alias.clone(),
            width: s.row.len(),
            primary_key,
        });
    }
    let steps: Vec<JoinStep> = steps_out
        .into_iter()
        .zip(&key_slots)
        .map(
            |((kind, left_kind, right_kind, within, foreign_key), (left_key, right_key))| {
                JoinStep {
                    kind,
                    left_key: *left_key,
                    right_key: *right_key,
                    left_kind,
                    right_kind,
                    within,
                    foreign_key,
                }
            },
        )
        .collect();

    // The key of the result: source columns equal to the last join key, or a synthetic
    // column.
    let last = steps.len() - 1;
    let foreign_key = steps[last].foreign_key;
    let (l_last, r_last) = &keys[last];
    let mut viable: Vec<Expr> = Vec::new();
    if steps[last].kind != JoinKind::Outer && !foreign_key {
        let mut chain: Vec<Expr> = Vec::new();
        for (i, (l, r)) in keys.iter().enumerate() {
            let mut these = Vec::new();
            if steps[i].foreign_key {
                // Results are keyed by the left table's key.
                let s = &sides[0];
                chain.clear();
                these.extend(s.source.key_columns().map(|k| Expr::Column {
                    qualifier: Some(s.alias.clone()),
                    name: k.name.clone(),
                    position: Default::default(),
                }));
            } else {
                for e in [l, r] {
                    if matches!(e, Expr::Column { .. }) {
                        these.push(e.without_positions());
                    }
                }
            }
            if i > 0 && !chain.contains(&l.without_positions()) {
                chain.clear();
            }
            for e in these {
                if !chain.contains(&e) {
                    chain.push(e);
                }
            }
        }
        let _ = (l_last, r_last);
        viable = chain;
    }
    let synthetic = viable.is_empty() && !foreign_key;
    // ROWKEY, or the first ROWKEY_n no source column is named.
    let synthetic_name = (0..)
        .map(|n| {
            if n == 0 {
                SYNTHETIC_KEY.to_string()
            } else {
                format!("{SYNTHETIC_KEY}_{n}")
            }
        })
        .find(|name| !sides.iter().any(|s| s.has(name)))
        .unwrap_or_else(|| SYNTHETIC_KEY.to_string());

    // The joined row.
    let key_type = key_types[last].clone();
    let mut row = vec![RowColumn {
        name: if synthetic {
            synthetic_name.clone()
        } else {
            HIDDEN_KEY.to_string()
        },
        data_type: key_type.clone(),
    }];
    for s in &sides {
        for c in &s.row {
            row.push(RowColumn {
                name: format!("{}_{}", s.alias, c.name),
                data_type: c.data_type.clone(),
            });
        }
    }
    // Windowed sources give windowed results, in the first source's window.
    let windowed = sides[0].source.window.is_some();
    let pseudo: &[&str] = if windowed {
        &[ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND]
    } else {
        &[ROWTIME, ROWPARTITION, ROWOFFSET]
    };
    for name in pseudo {
        row.push(RowColumn {
            name: (*name).into(),
            data_type: if *name == ROWPARTITION {
                DataType::Int
            } else {
                DataType::BigInt
            },
        });
    }
    let scope = Scope {
        columns: &row,
        qualifiers: vec![],
    };
    let typed_joined = |e: &Expr, clause: &str| -> Result<TypedExpr> {
        // An ambiguous name is reported as ksqlDB does, without the clause.
        let q = qualify(e, &sides).map_err(|err| {
            if err.message.contains("is ambiguous") {
                err
            } else {
                in_clause(err, clause)
            }
        })?;
        type_expr(&flatten(&q), &scope).map_err(|err| {
            // Name the column as written.
            match err.message.strip_prefix("Column '") {
                Some(rest) => {
                    let name = rest.split('\'').next().unwrap_or_default();
                    let shown = sides
                        .iter()
                        .find_map(|s| {
                            name.strip_prefix(&format!("{}_", s.alias))
                                .map(|n| format!("{}.{n}", s.alias))
                        })
                        .unwrap_or_else(|| name.to_string());
                    in_clause(
                        PlanError {
                            message: format!("Column '{shown}' cannot be resolved."),
                            position: err.position,
                        },
                        clause,
                    )
                }
                None => in_clause(err, clause),
            }
        })
    };
    let filter = match &query.filter {
        Some(f) => {
            let typed = typed_joined(f, "WHERE")?;
            if typed.data_type != DataType::Boolean {
                return Err(PlanError::new(format!(
                    "Type error in WHERE expression: Should evaluate to boolean but is {f} ({}) instead.",
                    typed.data_type
                )));
            }
            Some(typed)
        }
        None => None,
    };
    let _ = plan_filter;

    let mut projection: Vec<Projection> = Vec::new();
    let mut generated = 0usize;
    for item in &query.select {
        match item {
            SelectItem::Wildcard { qualifier } => {
                let chosen: Vec<&Side> = match qualifier {
                    Some(q) => {
                        let s = sides.iter().find(|s| s.names(q)).ok_or_else(|| {
                            PlanError::new(format!(
                                "'{q}' is not a valid stream/table name or alias."
                            ))
                        })?;
                        vec![s]
                    }
                    None => {
                        if synthetic {
                            projection.push(Projection {
                                name: synthetic_name.clone(),
                                expr: TypedExpr::new(ExprKind::Column(0), key_type.clone()),
                                key: false,
                            });
                        }
                        sides.iter().collect()
                    }
                };
                for s in chosen {
                    let visible = s.row.len() - pseudo_columns(s.source);
                    // A windowed source's window bounds follow its key columns.
                    let keys = s.source.key_columns().count();
                    let mut order: Vec<usize> = (0..keys).collect();
                    if s.source.window.is_some() {
                        order.extend([s.row.len() - 2, s.row.len() - 1]);
                    }
                    order.extend(keys..visible);
                    for c in order {
                        let col = &s.row[c];
                        projection.push(Projection {
                            name: format!("{}_{}", s.alias, col.name),
                            expr: TypedExpr::new(
                                ExprKind::Column(s.offset + c),
                                col.data_type.clone(),
                            ),
                            key: false,
                        });
                    }
                }
            }
            SelectItem::Expr { expr, alias } => {
                let typed = typed_joined(expr, "SELECT")?;
                let name = match alias {
                    Some(a) => a.clone(),
                    None => match qualify(expr, &sides)? {
                        // A column is named by its name, unless several sources have it.
                        Expr::Column {
                            qualifier: Some(q),
                            name,
                            ..
                        } if sides.iter().filter(|s| s.has(&name)).count() > 1 => {
                            format!("{q}_{name}")
                        }
                        Expr::Column { name, .. } => name,
                        Expr::Field { field, .. } => field,
                        _ => {
                            generated += 1;
                            format!("KSQL_COL_{}", generated - 1)
                        }
                    },
                };
                if sink.is_some()
                    && [ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND]
                        .contains(&name.as_str())
                {
                    return Err(PlanError::new(format!(
                        "Reserved column name in select: `{name}`. Please remove or alias the column."
                    )));
                }
                projection.push(Projection {
                    name,
                    expr: typed,
                    key: false,
                });
            }
        }
    }

    if let (Some(sink), false) = (sink, query.partition_by.is_empty()) {
        // PARTITION BY rekeys the joined rows: its expressions are the key.
        if steps[last].output_kind() == SourceKind::Table {
            return Err(PlanError::new(
                "PARTITION BY is not supported for tables: a table is keyed by its primary key.",
            ));
        }
        let mut missing = Vec::new();
        let mut keys = Vec::new();
        for e in &query.partition_by {
            let typed = typed_joined(e, "PARTITION BY")?;
            let mut names: Vec<String> = projection
                .iter()
                .filter(|p| p.expr == typed)
                .map(|p| p.name.clone())
                .collect();
            if names.len() > 1 {
                names.sort();
                return Err(PlanError::new(format!(
                    "The projection contains a key column (`{}`) more than once, aliased as: {}.",
                    names[0],
                    names.join(" and ")
                )));
            }
            match projection.iter().position(|p| p.expr == typed) {
                Some(i) => keys.push(i),
                None => missing.push(qualify(e, &sides)?.to_string()),
            }
        }
        if !missing.is_empty() {
            let noun = if missing.len() > 1 {
                "expressions"
            } else {
                "expression"
            };
            return Err(PlanError::new(format!(
                "The query used to build `{sink}` must include the partitioning {noun} {} in its projection (eg, SELECT {}...).",
                missing.join(" and "),
                missing.join(", ")
            )));
        }
        // Key columns first, in PARTITION BY's order.
        let mut ordered: Vec<Projection> = keys
            .iter()
            .map(|i| Projection {
                key: true,
                ..projection[*i].clone()
            })
            .collect();
        ordered.extend(
            projection
                .iter()
                .enumerate()
                .filter(|(i, _)| !keys.contains(i))
                .map(|(_, p)| p.clone()),
        );
        projection = ordered;
    } else if let Some(sink) = sink {
        if foreign_key {
            let left = &sides[0];
            let mut missing = Vec::new();
            for k in left.source.key_columns() {
                let index =
                    left.offset + left.row.iter().position(|c| c.name == k.name).unwrap_or(0);
                let names: Vec<String> = projection
                    .iter()
                    .filter(|p| p.expr.kind == ExprKind::Column(index))
                    .map(|p| p.name.clone())
                    .collect();
                if names.len() > 1 {
                    let mut names = names;
                    names.sort();
                    return Err(PlanError::new(format!(
                        "The projection contains a key column (`{}_{}`) more than once, aliased as: {}.",
                        left.alias,
                        k.name,
                        names.join(" and ")
                    )));
                }
                match projection
                    .iter_mut()
                    .find(|p| p.expr.kind == ExprKind::Column(index))
                {
                    Some(p) => p.key = true,
                    None => missing.push(format!("`{}`", k.name)),
                }
            }
            if !missing.is_empty() {
                let plural = if missing.len() > 1 { "s" } else { "" };
                return Err(PlanError::new(format!(
                    "Primary key column{plural} missing in projection. For foreign-key table-table joins, the projection must include all primary key columns from the left input table (`{}`). Missing column{plural}: {}.",
                    left.source.name,
                    missing.join(", ")
                )));
            }
        } else {
            let viable_index: Vec<usize> = if synthetic {
                vec![0]
            } else {
                viable
                    .iter()
                    .filter_map(|e| match flatten(e) {
                        Expr::Column { name, .. } => row.iter().position(|c| c.name == name),
                        _ => None,
                    })
                    .collect()
            };
            // The left side's key column is preferred, wherever it is selected.
            let first = viable_index.iter().find_map(|v| {
                projection
                    .iter()
                    .position(|p| p.expr.kind == ExprKind::Column(*v))
            });
            let Some(first) = first else {
                let message = if synthetic {
                    format!(
                        "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\nThe query used to build `{sink}` must include the join expression {synthetic_name} in its projection (eg, SELECT {synthetic_name}...).\n{synthetic_name} was added as a synthetic key column because the join criteria did not match any source column. This expression must be included in the projection and may be aliased. "
                    )
                } else {
                    let shown: Vec<String> = viable.iter().map(|e| e.to_string()).collect();
                    let noun = if shown.len() > 1 {
                        "expressions"
                    } else {
                        "expression"
                    };
                    format!(
                        "The query used to build `{sink}` must include the join {noun} {} in its projection (eg, SELECT {}...).",
                        or_list(&shown),
                        shown[0]
                    )
                };
                return Err(PlanError::new(message));
            };
            let chosen = projection[first].expr.kind.clone();
            let mut names: Vec<String> = projection
                .iter()
                .filter(|p| p.expr.kind == chosen)
                .map(|p| p.name.clone())
                .collect();
            if names.len() > 1 {
                names.sort();
                let key_name = match &chosen {
                    ExprKind::Column(i) => row[*i].name.clone(),
                    _ => String::new(),
                };
                return Err(PlanError::new(format!(
                    "The projection contains a key column (`{key_name}`) more than once, aliased as: {}.",
                    names.join(" and ")
                )));
            }
            let p = &mut projection[first];
            p.expr = TypedExpr::new(ExprKind::Column(0), key_type.clone());
            p.key = true;
        }
    }
    if sink.is_some() && !projection.is_empty() && projection.iter().all(|p| p.key) {
        return Err(PlanError::new("The projection contains no value columns."));
    }
    check_unique_names(&projection)?;

    // The joined row as a source: the left source's formats, the result's kind.
    let first = sides[0].source;
    let post_source = SourceDef {
        name: first.name.clone(),
        kind: steps[last].output_kind(),
        topic: first.topic.clone(),
        columns: row[..row.len() - pseudo.len()]
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                role: ColumnRole::Value,
            })
            .collect(),
        key_format: first.key_format.clone(),
        value_format: first.value_format.clone(),
        timestamp_column: None,
        timestamp_format: None,
        partitions: first.partitions,
        replicas: first.replicas,
        retention_ms: first.retention_ms,
        is_source: false,
        sql: String::new(),
        window: first.window,
    };
    let post = QueryPlan {
        source: post_source,
        row,
        filter,
        projection,
        limit: query.limit,
    };
    Ok(JoinPlan {
        inputs,
        steps,
        post,
        funnel: false,
    })
}

/// A join key expression typed against its source's row.
fn type_key(e: &Expr, s: &Side) -> Result<TypedExpr> {
    let local = e.rewrite(&mut |node| match node {
        Expr::Column {
            qualifier: Some(_),
            name,
            position,
        } => Some(Expr::Column {
            qualifier: None,
            name: name.clone(),
            position: *position,
        }),
        _ => None,
    });
    type_expr(
        &local,
        &Scope {
            columns: &s.row,
            qualifiers: vec![s.alias.clone()],
        },
    )
    .map_err(|err| match err.message.strip_prefix("Column '") {
        Some(rest) => {
            let name = rest.split('\'').next().unwrap_or_default();
            PlanError {
                message: format!("JOIN ON column '{}.{name}' cannot be resolved.", s.alias),
                position: err.position,
            }
        }
        None => err,
    })
}

/// Whether `e` is a key the earlier steps joined on (the key of the rows joined so far).
fn is_previous_key(e: &Expr, keys: &[(Expr, Expr)], sides: &[Side], side: usize) -> bool {
    let e = e.without_positions();
    let key_of = |s: &Side| -> Option<Expr> {
        let k: Vec<&Column> = s.source.key_columns().collect();
        (k.len() == 1).then(|| Expr::Column {
            qualifier: Some(s.alias.clone()),
            name: k[0].name.clone(),
            position: Default::default(),
        })
    };
    if key_of(&sides[side]).map(|k| k.without_positions()) == Some(e.clone()) {
        return true;
    }
    keys.iter()
        .any(|(l, r)| l.without_positions() == e || r.without_positions() == e)
}

fn contains_map(t: &DataType) -> bool {
    match t {
        DataType::Map(..) => true,
        DataType::Struct(fields) => fields.iter().any(|(_, t)| contains_map(t)),
        DataType::Array(t) => contains_map(t),
        _ => false,
    }
}

/// Each join's condition as ksqlDB checks them all before planning any step: an equality
/// whose sides each read exactly one source, two different ones, one of them the source
/// that step joins.
fn check_criteria(query: &ast::Query, sides: &[Side]) -> Result<()> {
    for (i, join) in query.joins.iter().enumerate() {
        let Ok(on) = qualify(&join.on, &sides[..=i + 1]) else {
            // Unknown columns are reported with the step.
            continue;
        };
        let Expr::Binary {
            op: ast::BinaryOp::Eq,
            left,
            right,
        } = &on
        else {
            continue;
        };
        let (ls, rs) = (sources_of(left, sides), sources_of(right, sides));
        if ls.len() != 1 || rs.len() != 1 {
            continue;
        }
        let name = |s: usize| sides[s].alias.clone();
        if ls == rs {
            return Err(PlanError::new(format!(
                "Each side of the join must reference exactly one source and not the same source. Left side references `{}` and right references `{}`",
                name(ls[0]),
                name(rs[0])
            )));
        }
        if ls[0] != i + 1 && rs[0] != i + 1 {
            return Err(PlanError::new(format!(
                "A join criteria is expected to reference the source (`{}`) in the FROM clause, instead the right source references `{}` and the left source references `{}`",
                name(i + 1),
                name(rs[0]),
                name(ls[0])
            )));
        }
    }
    Ok(())
}

/// `A`, `A or B`, `A, B or C`: a list as ksqlDB's messages join it.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}
