//! Aggregation analysis: a `GROUP BY` query becomes three stages. A stateless stage computes
//! each row's grouping key and the aggregates' arguments; the aggregation keeps one state per
//! key (and window); a final stage applies HAVING and the projection to each updated
//! aggregate row.

use crate::catalog::{Catalog, RESERVED_COLUMNS, ROWOFFSET, ROWTIME, WINDOWEND, WINDOWSTART};
use crate::error::{PlanError, Result};
use crate::functions::aggregates::{self, Aggregate};
use crate::plan::{source_row, Projection, QueryPlan};
use crate::typing::{type_expr, ExprKind, RowColumn, Scope, TypedExpr};
use crate::value::Value;
use brook_sql::ast::{self, DataType, Emit, Expr, Literal, SelectItem, SourceKind};

/// One aggregate of the query: the function, and where its arguments are in the stateless
/// stage's output.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateCall {
    pub aggregate: Aggregate,
    pub args: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregatePlan {
    /// The stateless stage. Its projection is the grouping key columns, the aggregates'
    /// arguments, ROWOFFSET, then (for a table source) the source's key columns.
    pub pre: QueryPlan,
    pub keys: usize,
    pub aggregates: Vec<AggregateCall>,
    pub offset_column: usize,
    /// Where the source's key columns are in `pre`'s projection, for a table source.
    pub source_keys: Vec<usize>,
    pub window: Option<ast::Window>,
    /// What HAVING and the projection see: the key columns, each aggregate's result
    /// (`KSQL_AGG_VARIABLE_n`), ROWTIME, WINDOWSTART and WINDOWEND.
    pub row: Vec<RowColumn>,
    pub having: Option<TypedExpr>,
    pub projection: Vec<Projection>,
    pub emit_final: bool,
    /// For a push query, the rows after which it ends.
    pub limit: Option<u64>,
    /// The join whose rows are aggregated (`pre`'s source stands for its joined row).
    pub join: Option<Box<crate::join::JoinPlan>>,
}

impl AggregatePlan {
    /// Applies the function settings of the session (`ksql.functions.collect_list.limit`,
    /// `ksql.functions.collect_set.limit`).
    pub fn configure(&mut self, properties: &std::collections::BTreeMap<String, String>) {
        use crate::functions::aggregates::Udaf;
        let limit = |name: &str| {
            properties
                .get(&format!("ksql.functions.{name}.limit"))
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        for call in &mut self.aggregates {
            match &mut call.aggregate.udaf {
                Udaf::CollectList(n) => *n = limit("collect_list").unwrap_or(*n),
                Udaf::CollectSet(n) => *n = limit("collect_set").unwrap_or(*n),
                _ => {}
            }
        }
    }

    /// Whether the grouping key is the source's key, so that rows of one group are already
    /// in one partition.
    pub fn groups_by_source_key(&self) -> bool {
        let key_count = self.pre.source.key_columns().count();
        key_count == self.keys
            && self.pre.projection[..self.keys]
                .iter()
                .enumerate()
                .all(|(i, p)| p.expr.kind == ExprKind::Column(i))
    }
}

/// Whether a query aggregates.
pub fn is_aggregation(query: &ast::Query) -> bool {
    let mut found = false;
    let mut visit = |e: &Expr| {
        e.rewrite(&mut |node| {
            if let Expr::Function { name, .. } = node {
                if aggregates::is_aggregate(name) {
                    found = true;
                }
            }
            None
        });
    };
    for item in &query.select {
        if let SelectItem::Expr { expr, .. } = item {
            visit(expr);
        }
    }
    if let Some(h) = &query.having {
        visit(h);
    }
    found || !query.group_by.is_empty() || query.window.is_some()
}

/// Compares expressions as written, ignoring positions and source qualifiers.
fn normalized(e: &Expr) -> Expr {
    e.without_positions().rewrite(&mut |node| match node {
        Expr::Column { name, .. } => Some(Expr::Column {
            qualifier: None,
            name: name.clone(),
            position: Default::default(),
        }),
        _ => None,
    })
}

fn literal_value(e: &Expr) -> Option<Value> {
    match e {
        Expr::Literal(Literal::Integer(n)) => Some(match i32::try_from(*n) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(*n),
        }),
        Expr::Literal(Literal::Boolean(b)) => Some(Value::Boolean(*b)),
        Expr::Literal(Literal::String(s)) => Some(Value::String(s.clone())),
        Expr::Negate(inner) => match literal_value(inner)? {
            Value::Int(i) => Some(Value::Int(-i)),
            Value::BigInt(i) => Some(Value::BigInt(-i)),
            _ => None,
        },
        _ => None,
    }
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Column { name, .. } => name.clone(),
        other => format!("{other:?}"),
    }
}

pub fn plan_aggregate(
    catalog: &Catalog,
    query: &ast::Query,
    sink: Option<&str>,
) -> Result<AggregatePlan> {
    let source = catalog.sources.get(&query.from.name).ok_or_else(|| {
        PlanError::at(
            query.from.position,
            format!("{} does not exist.", query.from.name),
        )
    })?;
    if !query.partition_by.is_empty() {
        return Err(PlanError::new(
            "PARTITION BY and GROUP BY cannot be used in the same query.",
        ));
    }
    let table_function = query.select.iter().any(|item| {
        let mut found = false;
        if let SelectItem::Expr { expr, .. } = item {
            expr.rewrite(&mut |node| {
                if let Expr::Function { name, .. } = node {
                    found |= matches!(name.as_str(), "EXPLODE" | "CUBE_EXPLODE");
                }
                None
            });
        }
        found
    });
    if table_function {
        return Err(PlanError::new(
            "Table functions cannot be used with aggregations.",
        ));
    }
    if sink.is_some() && query.window.is_none() {
        // Without a window, the window bounds are only reserved names.
        for item in &query.select {
            if let SelectItem::Expr {
                expr: Expr::Column { name, .. },
                alias: None,
            } = item
            {
                if name == WINDOWSTART || name == WINDOWEND {
                    return Err(PlanError::new(format!(
                        "Reserved column name in select: `{name}`. Please remove or alias the column."
                    )));
                }
            }
        }
    }
    // A transient query that aggregates without GROUP BY aggregates every row into one
    // group (ksqlDB's push queries do); a persistent query needs its key.
    let group_by: Vec<Expr> = match (query.group_by.is_empty(), sink) {
        (false, _) => query.group_by.clone(),
        (true, None) => vec![Expr::Literal(ast::Literal::Integer(1))],
        (true, Some(_)) => {
            return Err(PlanError::new(
                "Non-aggregate SELECT expression(s) not part of GROUP BY: aggregations need a GROUP BY clause.",
            ))
        }
    };
    if query.emit == Some(Emit::Final) && query.window.is_none() {
        return Err(PlanError::new(
            "EMIT FINAL is only supported for windowed aggregations.",
        ));
    }
    if query.window.is_some() && source.kind == SourceKind::Table {
        return Err(PlanError::new(
            "KSQL does not support windowing on tables: aggregate a stream instead.",
        ));
    }
    let row = source_row(source);
    let mut qualifiers = vec![source.name.clone()];
    qualifiers.extend(query.from.alias.clone());
    let scope = Scope {
        columns: &row,
        qualifiers: qualifiers.clone(),
    };
    // Window bounds exist only after the aggregation: the WHERE clause cannot see them.
    let filter = crate::plan::plan_filter(query, &scope).map_err(|e| {
        match [WINDOWSTART, WINDOWEND]
            .into_iter()
            .find(|b| e.message == format!("WHERE column '{b}' cannot be resolved."))
        {
            Some(bound) if query.window.is_some() => PlanError::new(format!(
                "Error in WHERE expression: Unknown column {bound}."
            )),
            _ => e,
        }
    })?;

    // The grouping key.
    let mut pre: Vec<Projection> = Vec::new();
    let mut generated = 0usize;
    let mut key_exprs: Vec<(Expr, String)> = Vec::new();
    for e in &group_by {
        let typed =
            type_expr(e, &scope).map_err(|err| match err.message.strip_prefix("Column '") {
                Some(rest) => PlanError {
                    message: format!("GROUP BY column '{rest}"),
                    position: err.position,
                },
                None => err,
            })?;
        if matches!(typed.kind, ExprKind::Explode(_)) {
            return Err(PlanError::new(
                "Table functions cannot be used with aggregations.",
            ));
        }
        let name = match e {
            Expr::Column { name, .. } => name.clone(),
            _ => {
                // An aliased select item of the same expression names the key.
                let alias = query.select.iter().find_map(|item| match item {
                    SelectItem::Expr {
                        expr,
                        alias: Some(a),
                    } if normalized(expr) == normalized(e) => Some(a.clone()),
                    _ => None,
                });
                match alias {
                    Some(a) => a,
                    None => {
                        generated += 1;
                        format!("KSQL_COL_{}", generated - 1)
                    }
                }
            }
        };
        key_exprs.push((normalized(e), name.clone()));
        pre.push(Projection {
            name,
            expr: typed,
            key: true,
        });
    }
    let keys = pre.len();

    // The aggregates, each once, with their arguments computed by the stateless stage.
    let mut calls: Vec<(Expr, AggregateCall)> = Vec::new();
    let mut problem: Option<PlanError> = None;
    let mut collect = |e: &Expr,
                       calls: &mut Vec<(Expr, AggregateCall)>,
                       pre: &mut Vec<Projection>| {
        e.rewrite(&mut |node| {
            let Expr::Function {
                name,
                args,
                star,
                position,
                ..
            } = node
            else {
                return None;
            };
            if !aggregates::is_aggregate(name) || problem.is_some() {
                return None;
            }
            let key = normalized(node);
            if calls.iter().any(|(k, _)| *k == key) {
                return Some(node.clone());
            }
            let columns = if *star {
                0
            } else {
                aggregates::column_arguments(name, args.len())
            };
            let mut types = Vec::new();
            let mut indexes = Vec::new();
            for a in &args[..columns] {
                match type_expr(a, &scope) {
                    Ok(t) => {
                        types.push(t.data_type.clone());
                        indexes.push(pre.len());
                        pre.push(Projection {
                            name: format!("KSQL_AGG_ARG_{}", pre.len()),
                            expr: t,
                            key: false,
                        });
                    }
                    Err(err) => {
                        problem = Some(err);
                        return Some(node.clone());
                    }
                }
            }
            let mut params = Vec::new();
            for (i, a) in args[columns..].iter().enumerate() {
                match literal_value(a) {
                    Some(v) => params.push(v),
                    None => {
                        problem = Some(PlanError::at(
                            *position,
                            format!(
                                "Parameter {} passed to function {name} must be a literal constant, but was expression: '{}'",
                                columns + i + 1,
                                expr_text(a)
                            ),
                        ));
                        return Some(node.clone());
                    }
                }
            }
            match aggregates::resolve(name, &types, &params) {
                Ok(aggregate) => calls.push((
                    key,
                    AggregateCall {
                        aggregate,
                        args: indexes,
                    },
                )),
                Err(m) => problem = Some(PlanError::at(*position, m)),
            }
            Some(node.clone())
        });
    };
    for item in &query.select {
        if let SelectItem::Expr { expr, .. } = item {
            collect(expr, &mut calls, &mut pre);
        }
    }
    if let Some(h) = &query.having {
        collect(h, &mut calls, &mut pre);
    }
    if let Some(p) = problem {
        // An aggregate's argument comes from the input row, where window bounds are not.
        let bound = [WINDOWSTART, WINDOWEND]
            .into_iter()
            .find(|b| p.message.contains(&format!("'{b}' cannot be resolved")));
        return Err(match bound {
            Some(bound) => PlanError::new(format!(
                "Window bounds column {bound} can only be used in the SELECT clause of windowed aggregations"
            )),
            None => p,
        });
    }
    if calls.is_empty() {
        return Err(PlanError::new(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
        ));
    }
    if source.kind == SourceKind::Table {
        if let Some((_, c)) = calls.iter().find(|(_, c)| !c.aggregate.supports_undo()) {
            return Err(PlanError::new(format!(
                "The aggregation functions {:?} cannot be applied to a table source, only to a stream source.",
                c.aggregate.udaf
            )
            .to_uppercase()));
        }
    }
    let offset_column = pre.len();
    let offset_index = row.iter().position(|c| c.name == ROWOFFSET).unwrap_or(0);
    pre.push(Projection {
        name: ROWOFFSET.into(),
        expr: TypedExpr {
            kind: ExprKind::Column(offset_index),
            data_type: DataType::BigInt,
        },
        key: false,
    });
    let mut source_keys = Vec::new();
    if source.kind == SourceKind::Table {
        for (i, c) in row.iter().enumerate().take(source.key_columns().count()) {
            source_keys.push(pre.len());
            pre.push(Projection {
                name: format!("KSQL_SOURCE_KEY_{}", c.name),
                expr: TypedExpr {
                    kind: ExprKind::Column(i),
                    data_type: c.data_type.clone(),
                },
                key: false,
            });
        }
    }

    // The aggregate row, and the select items and HAVING over it.
    let mut agg_row: Vec<RowColumn> = pre[..keys]
        .iter()
        .map(|p| RowColumn {
            name: p.name.clone(),
            data_type: p.expr.data_type.clone(),
        })
        .collect();
    for (i, (_, c)) in calls.iter().enumerate() {
        agg_row.push(RowColumn {
            name: format!("KSQL_AGG_VARIABLE_{i}"),
            data_type: c.aggregate.returns.clone(),
        });
    }
    agg_row.push(RowColumn {
        name: ROWTIME.into(),
        data_type: DataType::BigInt,
    });
    if query.window.is_some() {
        for name in [WINDOWSTART, WINDOWEND] {
            agg_row.push(RowColumn {
                name: name.into(),
                data_type: DataType::BigInt,
            });
        }
    }
    let post_scope = Scope {
        columns: &agg_row,
        qualifiers,
    };
    let rewrite = |e: &Expr| {
        e.rewrite(&mut |node| {
            let key = normalized(node);
            if let Some((_, name)) = key_exprs.iter().find(|(k, _)| *k == key) {
                return Some(Expr::Column {
                    qualifier: None,
                    name: name.clone(),
                    position: Default::default(),
                });
            }
            calls
                .iter()
                .position(|(k, _)| *k == key)
                .map(|i| Expr::Column {
                    qualifier: None,
                    name: format!("KSQL_AGG_VARIABLE_{i}"),
                    position: Default::default(),
                })
        })
    };
    let type_post = |e: &Expr, clause: &str| -> Result<TypedExpr> {
        let rewritten = rewrite(e);
        type_expr(&rewritten, &post_scope).map_err(|err| {
            let missing = err
                .message
                .strip_prefix("Column '")
                .and_then(|rest| rest.split('\'').next())
                .map(|n| n.rsplit('.').next().unwrap_or(n).to_string());
            match missing {
                Some(name) if row.iter().any(|c| c.name == name) => PlanError::new(format!(
                    "Non-aggregate {clause} expression(s) not part of GROUP BY: {name}"
                )),
                _ => {
                    // Name aggregates as written, not as the columns they became.
                    let mut message = err.message;
                    for (i, (call, _)) in calls.iter().enumerate().rev() {
                        message =
                            message.replace(&format!("KSQL_AGG_VARIABLE_{i}"), &call.to_string());
                    }
                    crate::plan::in_clause(
                        PlanError {
                            message,
                            position: err.position,
                        },
                        clause,
                    )
                }
            }
        })
    };
    let mut projection = Vec::new();
    let mut generated = 0usize;
    for item in &query.select {
        match item {
            SelectItem::Wildcard { .. } => {
                return Err(PlanError::new(
                    "Non-aggregate SELECT expression(s) not part of GROUP BY: *",
                ))
            }
            SelectItem::Expr { expr, alias } => {
                let typed = type_post(expr, "SELECT")?;
                let key = match &typed.kind {
                    ExprKind::Column(i) => *i < keys,
                    _ => false,
                };
                let name = match (alias, expr) {
                    (Some(a), _) => a.clone(),
                    (None, Expr::Column { name, .. }) => name.clone(),
                    (None, Expr::Field { field, .. }) => field.clone(),
                    (None, _) => {
                        generated += 1;
                        format!("KSQL_COL_{}", generated - 1)
                    }
                };
                if sink.is_some() && RESERVED_COLUMNS.contains(&name.as_str()) && !key {
                    if alias.is_some() {
                        return Err(PlanError::new(format!(
                            "`{name}` is a reserved column name. You cannot use it as an alias for a column."
                        )));
                    }
                    if ![WINDOWSTART, WINDOWEND].contains(&name.as_str()) {
                        return Err(PlanError::new(format!(
                            "Reserved column name in select: `{name}`. Please remove or alias the column."
                        )));
                    }
                }
                projection.push(Projection {
                    name,
                    expr: typed,
                    key,
                });
            }
        }
    }
    // A key column selected twice is refused, as ksqlDB refuses it.
    let mut seen_keys: Vec<Option<String>> = vec![None; keys];
    for p in projection.iter_mut() {
        if let ExprKind::Column(i) = p.expr.kind {
            if p.key {
                if let (Some(first), Some(_)) = (&seen_keys[i], sink) {
                    return Err(PlanError::new(format!(
                        "The projection contains a key column more than once: `{first}` and `{}`.",
                        p.name
                    )));
                }
                if seen_keys[i].is_some() {
                    p.key = false;
                }
                seen_keys[i].get_or_insert_with(|| p.name.clone());
            }
        }
    }
    // Key columns come in the GROUP BY's order, before the values, as ksqlDB writes them.
    projection.sort_by_key(|p| match (&p.expr.kind, p.key) {
        (ExprKind::Column(i), true) => *i,
        _ => keys,
    });
    if let Some(sink) = sink {
        let missing: Vec<&str> = seen_keys
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| pre[i].name.as_str())
            .collect();
        if !missing.is_empty() {
            let (noun, list) = match missing.as_slice() {
                [one] => ("expression", one.to_string()),
                [rest @ .., last] => ("expressions", format!("{} and {last}", rest.join(", "))),
                [] => unreachable!("not empty"),
            };
            return Err(PlanError::new(format!(
                "The query used to build `{sink}` must include the grouping {noun} {list} in its projection (eg, SELECT {}...).",
                missing.join(", ")
            )));
        }
        if projection.iter().all(|p| p.key) {
            return Err(PlanError::new("The projection contains no value columns."));
        }
    }
    let having = match &query.having {
        Some(h) => {
            let typed = type_post(h, "HAVING").map_err(|e| {
                match [WINDOWSTART, WINDOWEND]
                    .into_iter()
                    .find(|b| e.message.contains(&format!("'{b}' cannot be resolved")))
                {
                    Some(bound) => PlanError::new(format!(
                        "Window bounds column {bound} can only be used in the SELECT clause of windowed aggregations"
                    )),
                    None => e,
                }
            })?;
            if typed.data_type != DataType::Boolean {
                return Err(PlanError::new(format!(
                    "Type error in HAVING expression: Should evaluate to boolean but is {h} ({}) instead.",
                    typed.data_type
                )));
            }
            Some(typed)
        }
        None => None,
    };
    crate::plan::check_unique_names(&projection)?;
    Ok(AggregatePlan {
        pre: QueryPlan {
            source: source.clone(),
            row,
            filter,
            projection: pre,
            limit: None,
        },
        keys,
        aggregates: calls.into_iter().map(|(_, c)| c).collect(),
        offset_column,
        source_keys,
        window: query.window.clone(),
        row: agg_row,
        having,
        projection,
        emit_final: query.emit == Some(Emit::Final),
        limit: query.limit,
        join: None,
    })
}
