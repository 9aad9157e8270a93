//! Query analysis: a `SELECT` against the catalog becomes a plan of typed expressions over
//! its source's row, and a `CREATE ... AS SELECT` also yields the source it creates.

use crate::aggregate::AggregatePlan;
use crate::catalog::{
    validate_source, Catalog, Column, ColumnRole, SourceDef, WithClause, RESERVED_COLUMNS,
    ROWOFFSET, ROWPARTITION, ROWTIME, WINDOWEND, WINDOWSTART,
};
use crate::error::{PlanError, Result};
use crate::functions::aggregates::Udaf;
use crate::typing::{type_expr, ExprKind, RowColumn, Scope, TypedExpr};
use brook_sql::ast::{self, DataType, Emit, Expr, SelectItem, SourceKind};

/// One output column of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub name: String,
    pub expr: TypedExpr,
    /// Whether it is a key column of the output.
    pub key: bool,
}

/// A stateless query: rows of `source` are filtered and projected.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub source: SourceDef,
    /// The row expressions are evaluated against: the source's key, value and header
    /// columns, then ROWTIME, ROWPARTITION and ROWOFFSET.
    pub row: Vec<RowColumn>,
    pub filter: Option<TypedExpr>,
    pub projection: Vec<Projection>,
    pub limit: Option<u64>,
}

/// The row of a source as queries see it.
pub fn source_row(source: &SourceDef) -> Vec<RowColumn> {
    let keys = source.key_columns();
    let others = source.columns.iter().filter(|c| c.role != ColumnRole::Key);
    keys.chain(others)
        .map(|c| RowColumn {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
        })
        .chain([
            RowColumn {
                name: ROWTIME.into(),
                data_type: DataType::BigInt,
            },
            RowColumn {
                name: ROWPARTITION.into(),
                data_type: DataType::Int,
            },
            RowColumn {
                name: ROWOFFSET.into(),
                data_type: DataType::BigInt,
            },
        ])
        .chain(source.window.iter().flat_map(|_| {
            [WINDOWSTART, WINDOWEND].map(|name| RowColumn {
                name: name.into(),
                data_type: DataType::BigInt,
            })
        }))
        .collect()
}

/// How many pseudo columns end a source's row: ROWTIME, ROWPARTITION, ROWOFFSET, and for
/// a windowed source WINDOWSTART and WINDOWEND.
pub fn pseudo_columns(source: &SourceDef) -> usize {
    if source.window.is_some() {
        5
    } else {
        3
    }
}

/// Plans a query. `sink` names the source a persistent query writes, which must carry the
/// source's key columns; transient queries (`sink` is `None`) have no keys.
pub fn plan_query(catalog: &Catalog, query: &ast::Query, sink: Option<&str>) -> Result<QueryPlan> {
    let source = catalog.sources.get(&query.from.name).ok_or_else(|| {
        PlanError::at(
            query.from.position,
            format!("{} does not exist.", query.from.name),
        )
    })?;
    if source.kind == SourceKind::Table && !query.partition_by.is_empty() {
        return Err(PlanError::new(
            "PARTITION BY is not supported for tables: a table is keyed by its primary key.",
        ));
    }
    if !query.group_by.is_empty() || query.having.is_some() {
        return Err(PlanError::new("GROUP BY and HAVING are not supported yet"));
    }
    if query.emit == Some(Emit::Final) {
        return Err(PlanError::new(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    let row = source_row(source);
    let mut qualifiers = vec![source.name.clone()];
    qualifiers.extend(query.from.alias.clone());
    let scope = Scope {
        columns: &row,
        qualifiers,
    };
    let filter = plan_filter(query, &scope)?;

    let visible = row.len() - pseudo_columns(source);
    let mut projection = Vec::new();
    let mut generated = 0;
    // PARTITION BY rekeys each row: its expressions become the key columns, and the old key
    // columns become value columns.
    let partition: Vec<(String, TypedExpr)> = if sink.is_some() {
        query
            .partition_by
            .iter()
            .map(|e| {
                let typed = type_expr(e, &scope).map_err(|e| {
                    let e = in_clause(e, "PARTITION BY");
                    match e.message.strip_prefix("PARTITION BY column '") {
                        Some(rest) => {
                            let name = rest.split('\'').next().unwrap_or_default().to_string();
                            PlanError::new(format!(
                                "{} '{name}' must be a column in the source schema since PARTITION BY is applied on the input.",
                                e.message
                            ))
                        }
                        None => e,
                    }
                })?;
                Ok((derived_name(e, &mut generated, &row), typed))
            })
            .collect::<Result<_>>()?
    } else {
        vec![]
    };
    let keyless = partition.len() == 1 && partition[0].1.is_null_literal();
    if partition.len() > 1 && partition.iter().any(|(_, e)| e.is_null_literal()) {
        return Err(PlanError::new(
            "Cannot PARTITION BY multiple columns including NULL",
        ));
    }
    let partition: Vec<(String, TypedExpr)> = if keyless { vec![] } else { partition };
    for item in &query.select {
        match item {
            SelectItem::Wildcard { qualifier } => {
                if let Some(q) = qualifier {
                    if !scope.qualifiers.contains(q) {
                        return Err(PlanError::new(format!(
                            "'{q}' is not a valid stream/table name or alias."
                        )));
                    }
                }
                let column = |index: usize| TypedExpr {
                    kind: ExprKind::Column(index),
                    data_type: row[index].data_type.clone(),
                };
                if query.partition_by.is_empty() {
                    // A transient query's `*` over windowed keys shows the window bounds
                    // after the key columns, as ksqlDB's does.
                    let keys = source.key_columns().count();
                    let bounds = match (sink, &source.window) {
                        (None, Some(_)) => row.len() - 2..row.len(),
                        _ => 0..0,
                    };
                    let order = (0..keys).chain(bounds).chain(keys..visible);
                    for index in order {
                        projection.push(Projection {
                            name: row[index].name.clone(),
                            expr: column(index),
                            key: false,
                        });
                    }
                } else {
                    // The rekeyed row: new keys, the values, then the old keys.
                    for (name, expr) in &partition {
                        projection.push(Projection {
                            name: name.clone(),
                            expr: expr.clone(),
                            key: true,
                        });
                    }
                    let keys = source.key_columns().count();
                    let moved = (keys..visible).chain(0..keys);
                    for index in moved {
                        if partition.iter().any(|(_, e)| *e == column(index)) {
                            continue;
                        }
                        projection.push(Projection {
                            name: row[index].name.clone(),
                            expr: column(index),
                            key: false,
                        });
                    }
                }
            }
            SelectItem::Expr {
                expr: Expr::Field { expr, field },
                alias: None,
            } if field == "*" => {
                let inner = type_expr(expr, &scope).map_err(|e| in_clause(e, "SELECT"))?;
                let DataType::Struct(fields) = inner.data_type.clone() else {
                    return Err(PlanError::new(format!(
                        "Expected STRUCT type for '->*' but got {}",
                        inner.data_type
                    )));
                };
                for (index, (name, t)) in fields.into_iter().enumerate() {
                    projection.push(Projection {
                        name,
                        expr: TypedExpr {
                            kind: ExprKind::StructField {
                                expr: Box::new(inner.clone()),
                                index,
                            },
                            data_type: t,
                        },
                        key: false,
                    });
                }
            }
            SelectItem::Expr { expr, alias } => {
                if matches!(expr, Expr::Literal(ast::Literal::Null)) {
                    return Err(PlanError::new(
                        "Can't infer a type of null. Please explicitly cast it to a required type, e.g. CAST(null AS VARCHAR).",
                    ));
                }
                let typed = type_expr(expr, &scope).map_err(|e| in_clause(e, "SELECT"))?;
                let name = match alias {
                    Some(a) => a.clone(),
                    None => derived_name(expr, &mut generated, &row),
                };
                // A struct field named like a column of the source or of the result becomes
                // NAME_1, NAME_2, ..., as ksqlDB names it.
                let taken = |n: &str| {
                    projection.iter().any(|p: &Projection| p.name == n)
                        || row.iter().any(|c| c.name == n)
                };
                let name = match (alias, expr) {
                    (None, Expr::Field { .. }) if taken(&name) => (1..)
                        .map(|n| format!("{name}_{n}"))
                        .find(|candidate| !taken(candidate))
                        .unwrap_or(name),
                    _ => name,
                };
                if sink.is_some() && alias.is_some() && RESERVED_COLUMNS.contains(&name.as_str()) {
                    return Err(PlanError::new(format!(
                        "`{name}` is a reserved column name. You cannot use it as an alias for a column."
                    )));
                }
                if sink.is_some() && alias.is_none() && RESERVED_COLUMNS.contains(&name.as_str()) {
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

    if sink.is_none() {
        // A transient query's result is keyed by the source's key columns (and window
        // bounds) it selects as they are.
        let keys = source.key_columns().count();
        let window = source.window.as_ref().map(|_| row.len() - 2..row.len());
        for p in &mut projection {
            if let ExprKind::Column(index) = p.expr.kind {
                p.key = index < keys || window.as_ref().is_some_and(|w| w.contains(&index));
            }
        }
    }
    if let (Some(sink), false) = (sink, query.partition_by.is_empty()) {
        // Each partitioning expression must be selected once; that selection is a key
        // column.
        for (name, expr) in &partition {
            let names: Vec<&str> = projection
                .iter()
                .filter(|p| p.expr == *expr)
                .map(|p| p.name.as_str())
                .collect();
            if names.len() > 1 {
                return Err(PlanError::new(format!(
                    "The projection contains a key column (`{name}`) more than once, aliased as: {}.",
                    names.join(" and ")
                )));
            }
        }
        // When any is missing, ksqlDB names them all.
        let mut missing = Vec::new();
        let any_missing = partition
            .iter()
            .any(|(_, expr)| !projection.iter().any(|p| p.expr == *expr));
        for (i, (name, expr)) in partition.iter().enumerate() {
            match projection
                .iter_mut()
                .find(|p| p.expr == *expr)
                .filter(|_| !any_missing)
            {
                Some(p) => {
                    if !p.key && p.name != *name && !selected_with_alias(query, &p.name) {
                        p.name = name.clone();
                    }
                    p.key = true;
                }
                // Named as ksqlDB prints it: columns qualified by their source.
                None => missing.push(
                    query.partition_by[i]
                        .rewrite(&mut |e| match e {
                            Expr::Column { name, position, .. } => Some(Expr::Column {
                                qualifier: Some(source.name.clone()),
                                name: name.clone(),
                                position: *position,
                            }),
                            _ => None,
                        })
                        .to_string(),
                ),
            }
        }
        if !missing.is_empty() {
            let (noun, list) = if missing.len() == 1 {
                ("expression", missing[0].clone())
            } else {
                ("expressions", missing.join(" and "))
            };
            return Err(PlanError::new(format!(
                "The query used to build `{sink}` must include the partitioning {noun} {list} in its projection (eg, SELECT {}...).",
                missing.join(", ")
            )));
        }
        // Key columns come in PARTITION BY's order.
        let position = |p: &Projection| partition.iter().position(|(_, e)| *e == p.expr);
        let (mut keys, values): (Vec<Projection>, Vec<Projection>) =
            projection.drain(..).partition(|p| p.key);
        keys.sort_by_key(|p| position(p));
        projection = keys.into_iter().chain(values).collect();
    } else if let Some(sink) = sink {
        // Each source key column must be selected as it is, once; that selection is the key.
        // When any is missing, ksqlDB names them all.
        let mut missing = Vec::new();
        let all_keys: Vec<String> = source.key_columns().map(|k| k.name.clone()).collect();
        for key in source.key_columns() {
            let index = row
                .iter()
                .position(|c| c.name == key.name)
                .unwrap_or(usize::MAX);
            let names: Vec<String> = projection
                .iter()
                .filter(|p| p.expr.kind == ExprKind::Column(index))
                .map(|p| p.name.clone())
                .collect();
            if names.len() > 1 {
                return Err(PlanError::new(format!(
                    "The projection contains a key column (`{}`) more than once, aliased as: {}.",
                    key.name,
                    names.join(" and ")
                )));
            }
            match projection
                .iter_mut()
                .find(|p| p.expr.kind == ExprKind::Column(index))
            {
                Some(p) => p.key = true,
                None => missing.push(key.name.clone()),
            }
        }
        if !missing.is_empty() {
            let missing = all_keys;
            let (noun, list) = if missing.len() == 1 {
                ("key column", missing[0].clone())
            } else {
                let (last, rest) = missing.split_last().unwrap_or((&missing[0], &[]));
                ("key columns", format!("{} and {last}", rest.join(", ")))
            };
            return Err(PlanError::new(format!(
                "The query used to build `{sink}` must include the {noun} {list} in its projection (eg, SELECT {}...).",
                missing.join(", ")
            )));
        }
    }
    if sink.is_some() && !projection.is_empty() && projection.iter().all(|p| p.key) {
        return Err(PlanError::new("The projection contains no value columns."));
    }
    if projection
        .iter()
        .any(|p| matches!(p.expr.kind, ExprKind::Explode(_)))
        && source.kind == SourceKind::Table
    {
        return Err(PlanError::new(
            "Table source is not supported with table functions",
        ));
    }
    check_unique_names(&projection)?;

    Ok(QueryPlan {
        source: source.clone(),
        row,
        filter,
        projection,
        limit: query.limit,
    })
}

fn selected_with_alias(query: &ast::Query, name: &str) -> bool {
    query
        .select
        .iter()
        .any(|i| matches!(i, SelectItem::Expr { alias: Some(a), .. } if a == name))
}

/// ksqlDB names the clause in which a column cannot be resolved, and calls a select item
/// it cannot cast invalid.
/// A query's WHERE clause, typed against its source's row; it must be a condition.
pub(crate) fn plan_filter(query: &ast::Query, scope: &Scope) -> Result<Option<TypedExpr>> {
    let Some(f) = &query.filter else {
        return Ok(None);
    };
    let typed = type_expr(f, scope).map_err(|e| in_clause(e, "WHERE"))?;
    if typed.data_type != DataType::Boolean {
        return Err(PlanError::new(format!(
            "Type error in WHERE expression: Should evaluate to boolean but is {f} ({}) instead.",
            typed.data_type
        )));
    }
    Ok(Some(typed))
}

/// Output columns need distinct names.
pub(crate) fn check_unique_names(projection: &[Projection]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for p in projection {
        if !seen.insert(p.name.as_str()) {
            return Err(PlanError::new(format!(
                "Duplicate value columns found in schema: `{}` {}",
                p.name, p.expr.data_type
            )));
        }
    }
    Ok(())
}

pub(crate) fn in_clause(e: PlanError, clause: &str) -> PlanError {
    if matches!(clause, "WHERE" | "HAVING")
        && (e.message.starts_with("Cannot compare ")
            || e.message.starts_with("Comparison with NULL")
            || e.message.starts_with("Error processing expression: ("))
    {
        return PlanError {
            message: format!("Error in {clause} expression: {}", e.message),
            position: e.position,
        };
    }
    if clause == "SELECT" && e.message.starts_with("Cast of ") {
        return PlanError {
            message: format!("Invalid Select: {}", e.message),
            position: e.position,
        };
    }
    match e.message.strip_prefix("Column '") {
        Some(rest) => PlanError {
            message: format!("{clause} column '{rest}"),
            position: e.position,
        },
        None => e,
    }
}

/// ksqlDB's name for an unaliased select item: generated names count up from zero,
/// skipping the names of the source's columns.
fn derived_name(expr: &Expr, generated: &mut usize, row: &[RowColumn]) -> String {
    match expr {
        Expr::Column { name, .. } => name.clone(),
        Expr::Field { field, .. } => field.clone(),
        _ => loop {
            let name = format!("KSQL_COL_{generated}");
            *generated += 1;
            if !row.iter().any(|c| c.name == name) {
                break name;
            }
        },
    }
}

/// What a query runs: stateless operators, or an aggregation.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per query, moved rarely
pub enum Dataflow {
    Stateless(QueryPlan),
    Aggregate(AggregatePlan),
    Join(crate::join::JoinPlan),
}

impl Dataflow {
    /// How the query's output keys are windowed: by its WINDOW clause, or as its source's.
    pub fn output_window(&self) -> Option<crate::catalog::SourceWindow> {
        match self {
            Dataflow::Aggregate(a) => a.window.as_ref().map(crate::catalog::SourceWindow::of),
            Dataflow::Stateless(p) => p.source.window,
            Dataflow::Join(j) => j.inputs[0].pre.source.window,
        }
    }

    /// The source the query reads.
    pub fn source(&self) -> &SourceDef {
        match self {
            Dataflow::Stateless(p) => &p.source,
            Dataflow::Aggregate(a) => &a.pre.source,
            Dataflow::Join(j) => &j.inputs[0].pre.source,
        }
    }

    /// Every source the query reads.
    pub fn sources(&self) -> Vec<&SourceDef> {
        match self {
            Dataflow::Join(j) => j.inputs.iter().map(|i| &i.pre.source).collect(),
            Dataflow::Aggregate(AggregatePlan { join: Some(j), .. }) => {
                j.inputs.iter().map(|i| &i.pre.source).collect()
            }
            _ => vec![self.source()],
        }
    }

    /// The query's output columns.
    pub fn projection(&self) -> &[Projection] {
        match self {
            Dataflow::Stateless(p) => &p.projection,
            Dataflow::Aggregate(a) => &a.projection,
            Dataflow::Join(j) => &j.post.projection,
        }
    }

    pub fn projection_mut(&mut self) -> &mut Vec<Projection> {
        match self {
            Dataflow::Stateless(p) => &mut p.projection,
            Dataflow::Aggregate(a) => &mut a.projection,
            Dataflow::Join(j) => &mut j.post.projection,
        }
    }

    /// What kind of source its output is.
    pub fn output_kind(&self) -> SourceKind {
        match self {
            Dataflow::Stateless(p) => p.source.kind,
            Dataflow::Aggregate(_) => SourceKind::Table,
            Dataflow::Join(j) => j.output_kind(),
        }
    }

    pub fn limit(&self) -> Option<u64> {
        match self {
            Dataflow::Stateless(p) => p.limit,
            Dataflow::Aggregate(a) => a.limit,
            Dataflow::Join(j) => j.post.limit,
        }
    }
}

/// Plans any query: an aggregation when it groups, else a stateless query.
pub fn plan_dataflow(
    catalog: &Catalog,
    query: &ast::Query,
    sink: Option<&str>,
) -> Result<Dataflow> {
    if !query.joins.is_empty() && crate::aggregate::is_aggregation(query) {
        crate::join::plan_join_aggregate(catalog, query, sink).map(Dataflow::Aggregate)
    } else if !query.joins.is_empty() {
        crate::join::plan_join(catalog, query, sink).map(Dataflow::Join)
    } else if crate::aggregate::is_aggregation(query) {
        let plan = crate::aggregate::plan_aggregate(catalog, query, sink)?;
        Ok(Dataflow::Aggregate(plan))
    } else {
        plan_query(catalog, query, sink).map(Dataflow::Stateless)
    }
}

/// The stream a `CREATE STREAM ... AS SELECT` creates: the query's output columns in the
/// formats its WITH clause names, else its source's.
pub fn sink_source(create: &ast::CreateAsSelect, flow: &Dataflow, sql: &str) -> Result<SourceDef> {
    let projection = flow.projection();
    // Without aggregation, a query over a stream gives a stream and over a table a table.
    match (create.kind, flow.output_kind()) {
        (SourceKind::Table, SourceKind::Stream) => {
            return Err(PlanError::new(
                "Invalid result type. Your SELECT query produces a STREAM. Please use CREATE STREAM AS SELECT statement instead.",
            ))
        }
        (SourceKind::Stream, SourceKind::Table) => {
            return Err(PlanError::new(
                "Invalid result type. Your SELECT query produces a TABLE. Please use CREATE TABLE AS SELECT statement instead.",
            ))
        }
        _ => {}
    }
    let props = WithClause::read(&create.properties, true)?;
    let source = flow.source();
    // A join's results have a key even when its first source has none.
    let default_key = match flow {
        Dataflow::Join(j) => j
            .inputs
            .iter()
            .map(|i| &i.pre.source.key_format)
            .find(|f| f.kind != crate::formats::FormatKind::None)
            .cloned()
            .unwrap_or_else(|| crate::formats::Format::new(crate::formats::FormatKind::Kafka)),
        // Rekeyed rows of a keyless source get KAFKA keys (the session may apply the
        // configured default key format instead).
        _ if source.key_format.kind == crate::formats::FormatKind::None
            && projection.iter().any(|p| p.key) =>
        {
            crate::formats::Format::new(crate::formats::FormatKind::Kafka)
        }
        _ => source.key_format.clone(),
    };
    let (mut key_format, value_format) =
        props.formats(Some((&default_key, &source.value_format)))?;
    let keyless = !projection.iter().any(|p| p.key);
    if keyless
        && props
            .key_format
            .is_some_and(|k| k != crate::formats::FormatKind::None)
    {
        return Err(PlanError::new(
            "Key format specified for stream without key columns.",
        ));
    }
    if keyless && props.key_format.is_none() && props.format.is_none() {
        key_format = crate::formats::Format::new(crate::formats::FormatKind::None);
    }
    let columns = projection
        .iter()
        .filter(|p| p.key)
        .chain(projection.iter().filter(|p| !p.key))
        .map(|p| Column {
            name: p.name.clone(),
            data_type: p.expr.data_type.clone(),
            role: if p.key {
                ColumnRole::Key
            } else {
                ColumnRole::Value
            },
        })
        .collect();
    crate::catalog::check_wrap(&props, projection.iter().filter(|p| !p.key).count())?;
    let sink = SourceDef {
        name: create.name.clone(),
        kind: create.kind,
        topic: props.topic.clone().unwrap_or_else(|| create.name.clone()),
        columns,
        key_format,
        value_format,
        timestamp_column: props.timestamp.clone(),
        timestamp_format: props.timestamp_format.clone(),
        partitions: props.partitions,
        replicas: props.replicas,
        retention_ms: props.retention_ms,
        is_source: false,
        sql: sql.to_string(),
        window: flow.output_window(),
    };
    if let Dataflow::Aggregate(a) = flow {
        // ksqlDB keeps aggregate states in the value format: DELIMITED holds only primitives.
        let complex = a.aggregates.iter().any(|c| {
            !matches!(
                c.aggregate.udaf,
                Udaf::Count | Udaf::Sum | Udaf::SumList | Udaf::Min | Udaf::Max
            )
        });
        if complex && sink.value_format.kind == crate::formats::FormatKind::Delimited {
            return Err(PlanError::new(
                "One of the functions used in the statement has an intermediate type that the value format can not handle. Please remove the function or change the format.",
            ));
        }
    }
    validate_source(&sink)?;
    Ok(sink)
}

impl Catalog {
    /// Plans a `CREATE STREAM ... AS SELECT`: the query and the stream it writes.
    pub fn plan_create_as(
        &self,
        create: &ast::CreateAsSelect,
        sql: &str,
    ) -> Result<(Dataflow, SourceDef)> {
        let flow = plan_dataflow(self, &create.query, Some(&create.name)).map_err(|e| {
            // ksqlDB checks the TIMESTAMP column against the result's columns first.
            missing_timestamp_column(create).unwrap_or(e)
        })?;
        let sink = sink_source(create, &flow, sql)?;
        Ok((flow, sink))
    }
}

/// The refusal of a TIMESTAMP property that names none of the columns a query selects by
/// name (a `*` may select it: that is checked with the result's schema).
fn missing_timestamp_column(create: &ast::CreateAsSelect) -> Option<PlanError> {
    let ts = create
        .properties
        .get("TIMESTAMP")
        .map(|v| v.as_property_text().to_uppercase())?;
    let mut names = Vec::new();
    for item in &create.query.select {
        match item {
            SelectItem::Wildcard { .. } => return None,
            SelectItem::Expr { alias: Some(a), .. } => names.push(a.clone()),
            SelectItem::Expr {
                expr: Expr::Column { name, .. },
                ..
            } => names.push(name.clone()),
            SelectItem::Expr {
                expr: Expr::Field { field, .. },
                ..
            } => names.push(field.clone()),
            // A generated name (KSQL_COL_n) is only known once planned.
            SelectItem::Expr { .. } => return None,
        }
    }
    (!names.contains(&ts)).then(|| {
        PlanError::new(format!(
            "The TIMESTAMP column set in the WITH clause does not exist in the schema: '{ts}'"
        ))
    })
}
