//! Aggregation analysis: a `GROUP BY` query becomes three stages. A stateless stage computes
//! each row's grouping key and the aggregates' arguments; the aggregation keeps one state per
//! key (and window); a final stage applies HAVING and the projection to each updated
//! aggregate row.

use crate::catalog::{
    Catalog, ColumnRole, RESERVED_COLUMNS, ROWOFFSET, ROWTIME, WINDOWEND, WINDOWSTART,
};
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

/// `SELECT *` of an aggregation stands for the source's columns, keys first, as in
/// ksqlDB: each is then a non-aggregate select expression like any other.
fn expand_wildcards(query: &ast::Query, source: &crate::catalog::SourceDef) -> Option<ast::Query> {
    if !query
        .select
        .iter()
        .any(|item| matches!(item, SelectItem::Wildcard { .. }))
    {
        return None;
    }
    let columns: Vec<&str> = source
        .key_columns()
        .chain(source.columns.iter().filter(|c| c.role != ColumnRole::Key))
        .map(|c| c.name.as_str())
        .collect();
    let select = query
        .select
        .iter()
        .flat_map(|item| match item {
            SelectItem::Wildcard { .. } => columns
                .iter()
                .map(|name| SelectItem::Expr {
                    expr: Expr::Column {
                        qualifier: None,
                        name: name.to_string(),
                        position: Default::default(),
                    },
                    alias: None,
                })
                .collect::<Vec<_>>(),
            other => vec![other.clone()],
        })
        .collect();
    Some(ast::Query {
        select,
        ..query.clone()
    })
}

/// ksqlDB's refusal of a window bound outside a windowed aggregation's SELECT.
fn window_bound_misplaced(bound: &str) -> PlanError {
    PlanError::new(format!(
        "Window bounds column {bound} can only be used in the SELECT clause of windowed aggregations and can not be passed to aggregate functions.\nSee https://github.com/confluentinc/ksql/issues/4397"
    ))
}

/// The first window bound `e` reads, in the order it is written.
fn first_window_bound(e: &Expr) -> Option<&'static str> {
    let mut found = None;
    e.rewrite(&mut |node| {
        if let Expr::Column { name, .. } = node {
            if found.is_none() {
                found = [WINDOWSTART, WINDOWEND].into_iter().find(|b| name == b);
            }
        }
        None
    });
    found
}

/// Where a windowed aggregation's window bounds may not be: in WHERE (they exist only
/// after the aggregation), in an aggregate's arguments, in GROUP BY or HAVING.
fn check_window_bounds(query: &ast::Query) -> Result<()> {
    if query.window.is_none() {
        return Ok(());
    }
    if let Some(bound) = query.filter.as_ref().and_then(first_window_bound) {
        return Err(PlanError::new(format!(
            "Error in WHERE expression: Unknown column {bound}."
        )));
    }
    let mut in_aggregate = None;
    for item in &query.select {
        if let SelectItem::Expr { expr, .. } = item {
            expr.rewrite(&mut |node| match node {
                Expr::Function { name, args, .. } if aggregates::is_aggregate(name) => {
                    if in_aggregate.is_none() {
                        in_aggregate = args.iter().find_map(first_window_bound);
                    }
                    Some(node.clone())
                }
                _ => None,
            });
        }
    }
    let misplaced = in_aggregate
        .or_else(|| query.group_by.iter().find_map(first_window_bound))
        .or_else(|| query.having.as_ref().and_then(first_window_bound));
    match misplaced {
        Some(bound) => Err(window_bound_misplaced(bound)),
        None => Ok(()),
    }
}

/// Where aggregate functions may not be: inside another aggregate, or in GROUP BY.
fn check_aggregate_placement(query: &ast::Query) -> Result<()> {
    let mut problem = None;
    let mut visit = |e: &Expr| {
        e.rewrite(&mut |node| {
            let Expr::Function { name, args, .. } = node else {
                return None;
            };
            if !aggregates::is_aggregate(name) || problem.is_some() {
                return None;
            }
            for a in args {
                a.rewrite(&mut |inner| {
                    if let Expr::Function { name: nested, .. } = inner {
                        if aggregates::is_aggregate(nested) && problem.is_none() {
                            problem = Some(format!(
                                "Aggregate functions can not be nested: {}({}())",
                                name.to_uppercase(),
                                nested.to_uppercase()
                            ));
                        }
                    }
                    None
                });
            }
            Some(node.clone())
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
    if let Some(p) = problem {
        return Err(PlanError::new(p));
    }
    for e in &query.group_by {
        let mut found = None;
        e.rewrite(&mut |node| {
            if let Expr::Function { name, .. } = node {
                if aggregates::is_aggregate(name) {
                    found.get_or_insert_with(|| name.to_uppercase());
                }
            }
            None
        });
        if let Some(name) = found {
            return Err(PlanError::new(format!(
                "GROUP BY does not support aggregate functions: {name} is an aggregate function."
            )));
        }
    }
    Ok(())
}

/// The columns `e` reads outside its aggregate functions and outside any grouping
/// expression it contains (the window bounds of a windowed aggregation are grouped).
fn ungrouped_columns(e: &Expr, grouped: &[Expr], windowed: bool) -> Vec<Expr> {
    let mut lambda_params: Vec<String> = Vec::new();
    e.rewrite(&mut |node| {
        if let Expr::Lambda { params, .. } = node {
            lambda_params.extend(params.iter().cloned());
        }
        None
    });
    let mut found = Vec::new();
    e.rewrite(&mut |node| {
        let n = normalized(node);
        if grouped.contains(&n) {
            return Some(node.clone());
        }
        match node {
            Expr::Function { name, .. } if aggregates::is_aggregate(name) => Some(node.clone()),
            Expr::Column { name, .. } => {
                let bound = windowed && (name == WINDOWSTART || name == WINDOWEND);
                if !bound && !lambda_params.contains(name) && !found.contains(&n) {
                    found.push(n);
                }
                Some(node.clone())
            }
            _ => None,
        }
    });
    found
}

/// ksqlDB's rule for what an aggregation reads outside its aggregates: a select expression
/// that is not itself grouped reads only grouped expressions, and so does HAVING. Select
/// expressions are named whole, HAVING's columns one by one, as ksqlDB names them.
fn check_grouped(query: &ast::Query, group_by: &[Expr]) -> Result<()> {
    let grouped: Vec<Expr> = group_by.iter().map(normalized).collect();
    let windowed = query.window.is_some();
    let unmatched: Vec<String> = query
        .select
        .iter()
        .filter_map(|item| match item {
            SelectItem::Expr { expr, .. } => Some(expr),
            SelectItem::Wildcard { .. } => None,
        })
        .filter(|e| {
            !grouped.contains(&normalized(e))
                && !ungrouped_columns(e, &grouped, windowed).is_empty()
        })
        .map(|e| normalized(e).to_string())
        .collect();
    if !unmatched.is_empty() {
        return Err(PlanError::new(format!(
            "Non-aggregate SELECT expression(s) not part of GROUP BY: {}\nEither add the column(s) to the GROUP BY or remove them from the SELECT.",
            unmatched.join(", ")
        )));
    }
    if let Some(h) = &query.having {
        let columns = ungrouped_columns(h, &grouped, windowed);
        if !columns.is_empty() {
            return Err(PlanError::new(format!(
                "Non-aggregate HAVING expression not part of GROUP BY: {}\nConsider switching the HAVING clause to a WHERE clause before the GROUP BY.",
                columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
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
    let expanded;
    let query = match expand_wildcards(query, source) {
        Some(q) => {
            expanded = q;
            &expanded
        }
        None => query,
    };
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
    check_window_bounds(query)?;
    check_aggregate_placement(query)?;
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
            Some(bound) => window_bound_misplaced(bound),
            None => p,
        });
    }
    if calls.is_empty() {
        return Err(PlanError::new(
            "GROUP BY requires aggregate functions in either the SELECT or HAVING clause.",
        ));
    }
    if !query.group_by.is_empty() {
        check_grouped(query, &group_by)?;
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
                    Some(bound) => window_bound_misplaced(bound),
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
