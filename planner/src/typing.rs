//! Expressions resolved against a row: columns become positions, every node gets its ksqlDB
//! type, and implicit conversions become explicit casts.

use crate::coercion::coerce_list;
use crate::error::{PlanError, Result};
use crate::functions::{self, FunctionRef};
use crate::types::{as_decimal, common_numeric, decimal_result, is_numeric};
use crate::value::{decimal_literal_type, parse_decimal, Value};
use brook_sql::ast::{BinaryOp, DataType, Expr, Literal};

/// A column of the row that expressions are evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub struct RowColumn {
    pub name: String,
    pub data_type: DataType,
}

/// What a name may refer to: the row's columns and the names its source goes by.
pub struct Scope<'a> {
    pub columns: &'a [RowColumn],
    pub qualifiers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaOp {
    TransformArray,
    TransformMap,
    FilterArray,
    FilterMap,
    ReduceArray,
    ReduceMap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypedExpr {
    pub kind: ExprKind,
    pub data_type: DataType,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Column(usize),
    Literal(Value),
    /// Operands have the result type, except for DECIMAL, where each keeps its own.
    Arithmetic {
        op: ArithOp,
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
    },
    Concat(Box<TypedExpr>, Box<TypedExpr>),
    /// Operands have a common type.
    Compare {
        op: CmpOp,
        left: Box<TypedExpr>,
        right: Box<TypedExpr>,
    },
    And(Box<TypedExpr>, Box<TypedExpr>),
    Or(Box<TypedExpr>, Box<TypedExpr>),
    Not(Box<TypedExpr>),
    Negate(Box<TypedExpr>),
    IsNull {
        expr: Box<TypedExpr>,
        negated: bool,
    },
    Like {
        expr: Box<TypedExpr>,
        pattern: Box<TypedExpr>,
        escape: Option<char>,
        negated: bool,
    },
    /// The list has the type of `expr`.
    InList {
        expr: Box<TypedExpr>,
        list: Vec<TypedExpr>,
        negated: bool,
    },
    /// To this node's type.
    Cast(Box<TypedExpr>),
    /// Searched form; a `CASE x WHEN v` is rewritten to `CASE WHEN x = v`.
    Case {
        whens: Vec<(TypedExpr, TypedExpr)>,
        otherwise: Option<Box<TypedExpr>>,
    },
    StructField {
        expr: Box<TypedExpr>,
        index: usize,
    },
    /// ksqlDB's one-based index; negative counts from the end.
    ArrayIndex {
        expr: Box<TypedExpr>,
        index: Box<TypedExpr>,
    },
    MapLookup {
        expr: Box<TypedExpr>,
        key: Box<TypedExpr>,
    },
    MakeArray(Vec<TypedExpr>),
    MakeMap(Vec<(TypedExpr, TypedExpr)>),
    MakeStruct(Vec<TypedExpr>),
    /// TRANSFORM, FILTER and REDUCE: `bodies` are lambdas typed against the row's columns
    /// followed by the lambda's parameters.
    Lambda {
        op: LambdaOp,
        input: Box<TypedExpr>,
        /// REDUCE's initial state.
        init: Option<Box<TypedExpr>>,
        bodies: Vec<TypedExpr>,
    },
    /// A table function (EXPLODE): one output row per element of the array. Only a select
    /// item can be one; the query expands rows around it.
    Explode(Box<TypedExpr>),
    /// Arguments have the function's parameter types.
    Function {
        function: FunctionRef,
        args: Vec<TypedExpr>,
    },
}

impl TypedExpr {
    pub fn new(kind: ExprKind, data_type: DataType) -> Self {
        Self { kind, data_type }
    }

    fn boxed(self) -> Box<Self> {
        Box::new(self)
    }

    pub fn is_null_literal(&self) -> bool {
        matches!(self.kind, ExprKind::Literal(Value::Null))
    }

    /// Whether every row column this expression reads is one of the first `n` (a lambda's
    /// parameters count as columns past the row).
    pub fn reads_only_first(&self, n: usize) -> bool {
        let all = |items: &[TypedExpr]| items.iter().all(|e| e.reads_only_first(n));
        match &self.kind {
            ExprKind::Column(i) => *i < n,
            ExprKind::Literal(_) => true,
            ExprKind::Arithmetic { left, right, .. } | ExprKind::Compare { left, right, .. } => {
                left.reads_only_first(n) && right.reads_only_first(n)
            }
            ExprKind::Concat(a, b) | ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                a.reads_only_first(n) && b.reads_only_first(n)
            }
            ExprKind::Not(e)
            | ExprKind::Negate(e)
            | ExprKind::Cast(e)
            | ExprKind::Explode(e)
            | ExprKind::IsNull { expr: e, .. }
            | ExprKind::StructField { expr: e, .. } => e.reads_only_first(n),
            ExprKind::Like { expr, pattern, .. } => {
                expr.reads_only_first(n) && pattern.reads_only_first(n)
            }
            ExprKind::InList { expr, list, .. } => expr.reads_only_first(n) && all(list),
            ExprKind::Case { whens, otherwise } => {
                whens
                    .iter()
                    .all(|(w, t)| w.reads_only_first(n) && t.reads_only_first(n))
                    && otherwise.as_ref().is_none_or(|o| o.reads_only_first(n))
            }
            ExprKind::ArrayIndex { expr, index } => {
                expr.reads_only_first(n) && index.reads_only_first(n)
            }
            ExprKind::MapLookup { expr, key } => {
                expr.reads_only_first(n) && key.reads_only_first(n)
            }
            ExprKind::MakeArray(items) | ExprKind::MakeStruct(items) => all(items),
            ExprKind::MakeMap(entries) => entries
                .iter()
                .all(|(k, v)| k.reads_only_first(n) && v.reads_only_first(n)),
            ExprKind::Lambda {
                input,
                init,
                bodies,
                ..
            } => {
                input.reads_only_first(n)
                    && init.as_ref().is_none_or(|i| i.reads_only_first(n))
                    && all(bodies)
            }
            ExprKind::Function { args, .. } => all(args),
        }
    }

    /// This expression converted to `to`: NULL literals are retyped, others cast.
    pub fn coerce(self, to: &DataType) -> TypedExpr {
        if &self.data_type == to {
            return self;
        }
        if self.is_null_literal() {
            return TypedExpr::new(ExprKind::Literal(Value::Null), to.clone());
        }
        TypedExpr::new(ExprKind::Cast(self.boxed()), to.clone())
    }
}

pub fn type_of_literal(lit: &Literal) -> Result<TypedExpr> {
    Ok(match lit {
        // A NULL takes its type from where it is used; STRING when nothing says otherwise.
        Literal::Null => TypedExpr::new(ExprKind::Literal(Value::Null), DataType::String),
        Literal::Boolean(b) => {
            TypedExpr::new(ExprKind::Literal(Value::Boolean(*b)), DataType::Boolean)
        }
        Literal::Integer(i) => match i32::try_from(*i) {
            Ok(v) => TypedExpr::new(ExprKind::Literal(Value::Int(v)), DataType::Int),
            Err(_) => TypedExpr::new(ExprKind::Literal(Value::BigInt(*i)), DataType::BigInt),
        },
        Literal::Decimal(text) => {
            let (precision, scale) = decimal_literal_type(text);
            let unscaled = parse_decimal(text, scale)
                .ok_or_else(|| PlanError::new(format!("Invalid decimal literal: {text}")))?;
            TypedExpr::new(
                ExprKind::Literal(Value::Decimal(unscaled, scale)),
                DataType::Decimal { precision, scale },
            )
        }
        Literal::Double(d) => {
            TypedExpr::new(ExprKind::Literal(Value::Double(*d)), DataType::Double)
        }
        Literal::String(s) => TypedExpr::new(
            ExprKind::Literal(Value::String(s.clone())),
            DataType::String,
        ),
    })
}

/// Types `expr` against `scope`.
pub fn type_expr(expr: &Expr, scope: &Scope) -> Result<TypedExpr> {
    let t = |e: &Expr| type_expr(e, scope);
    Ok(match expr {
        Expr::Column {
            qualifier,
            name,
            position,
        } => {
            if let Some(q) = qualifier {
                if !scope.qualifiers.iter().any(|s| s == q) {
                    // ksqlDB gives this one without its place.
                    return Err(PlanError::new(format!(
                        "Failed to prepare statement: '{q}' is not a valid stream/table name or alias."
                    )));
                }
            }
            // From the end, so that lambda parameters hide columns of the same name.
            let index = scope
                .columns
                .iter()
                .rposition(|c| &c.name == name)
                .ok_or_else(|| {
                    let shown = match qualifier {
                        Some(q) => format!("{q}.{name}"),
                        None => name.clone(),
                    };
                    PlanError::at(*position, format!("Column '{shown}' cannot be resolved."))
                })?;
            TypedExpr::new(
                ExprKind::Column(index),
                scope.columns[index].data_type.clone(),
            )
        }
        Expr::Literal(lit) => type_of_literal(lit)?,
        Expr::Binary {
            op,
            left: l,
            right: r,
        } => {
            let (left, right) = match (magic_time(l, r), magic_time(r, l)) {
                (Some(left), _) => (left, t(r)?),
                (_, Some(right)) => (t(l)?, right),
                _ => (t(l)?, t(r)?),
            };
            // ksqlDB does not read a string as a number, or the reverse, in a comparison.
            let string_vs_other = |a: &TypedExpr, b: &TypedExpr| {
                a.data_type == DataType::String
                    && !b.is_null_literal()
                    && b.data_type != DataType::String
                    && (is_numeric(&b.data_type) || b.data_type == DataType::Boolean)
            };
            // ROWTIME and the window bounds compare with date-time strings.
            let time_column = |e: &Expr| {
                matches!(e, Expr::Column { name, .. }
                    if ["ROWTIME", "WINDOWSTART", "WINDOWEND"].contains(&name.as_str()))
            };
            let arithmetic = matches!(
                op,
                BinaryOp::Plus
                    | BinaryOp::Minus
                    | BinaryOp::Multiply
                    | BinaryOp::Divide
                    | BinaryOp::Modulo
            );
            let is_null = |e: &Expr| matches!(e, Expr::Literal(Literal::Null));
            if arithmetic && (is_null(l) || is_null(r)) {
                let name = |e: &Expr, t: &TypedExpr| match is_null(e) {
                    true => "null".to_string(),
                    false => t.data_type.to_string(),
                };
                return Err(PlanError::new(format!(
                    "Error processing expression: {expr}. Arithmetic on types {} and {} are not supported.",
                    name(l, &left),
                    name(r, &right)
                )));
            }
            if comparison_name(*op).is_some() && (is_null(l) || is_null(r)) {
                let shown = |e: &Expr, t: &TypedExpr| match is_null(e) {
                    true => "NULL".to_string(),
                    false => t.data_type.to_string(),
                };
                return Err(PlanError::new(format!(
                    "Comparison with NULL not supported: {} {} {}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
                    shown(l, &left),
                    op.symbol(),
                    shown(r, &right)
                )));
            }
            if let Some(name) = comparison_name(*op) {
                if !time_column(l)
                    && !time_column(r)
                    && (string_vs_other(&left, &right) || string_vs_other(&right, &left))
                {
                    return Err(PlanError::new(format!(
                        "Cannot compare {l} ({}) to {r} ({}) with {name}.",
                        left.data_type, right.data_type
                    )));
                }
            }
            let types = (left.data_type.clone(), right.data_type.clone());
            binary(*op, left, right).map_err(|e| {
                // ksqlDB names the expression and the kinds of its operands.
                if e.message.starts_with(COMPARE_FAILED) {
                    compare_error(e, *op, l, r)
                } else if e.message.starts_with(UNSUPPORTED_ARITHMETIC) {
                    PlanError::new(format!(
                        "Error processing expression: {expr}. Unsupported arithmetic types. {} {}",
                        base_type_name(&types.0),
                        base_type_name(&types.1)
                    ))
                } else {
                    e
                }
            })?
        }
        Expr::Negate(inner) => {
            let inner = t(inner)?;
            if !is_numeric(&inner.data_type) {
                return Err(PlanError::new(format!(
                    "Unary minus is not supported on type {}",
                    inner.data_type
                )));
            }
            let dt = inner.data_type.clone();
            TypedExpr::new(ExprKind::Negate(inner.boxed()), dt)
        }
        Expr::Not(inner) => {
            let inner = boolean_operand(t(inner)?, "NOT")?;
            TypedExpr::new(ExprKind::Not(inner.boxed()), DataType::Boolean)
        }
        Expr::IsNull { expr, negated } => TypedExpr::new(
            ExprKind::IsNull {
                expr: t(expr)?.boxed(),
                negated: *negated,
            },
            DataType::Boolean,
        ),
        Expr::IsDistinctFrom {
            left,
            right,
            negated,
        } => {
            // CASE WHEN l IS NULL THEN r IS NOT NULL WHEN r IS NULL THEN TRUE ELSE l <> r END
            let (l, r) = (t(left)?, t(right)?);
            let is_null = |e: &TypedExpr, negated: bool| {
                TypedExpr::new(
                    ExprKind::IsNull {
                        expr: e.clone().boxed(),
                        negated,
                    },
                    DataType::Boolean,
                )
            };
            let differ = compare(CmpOp::NotEq, l.clone(), r.clone())?;
            let distinct = TypedExpr::new(
                ExprKind::Case {
                    whens: vec![
                        (is_null(&l, false), is_null(&r, true)),
                        (
                            is_null(&r, false),
                            TypedExpr::new(
                                ExprKind::Literal(Value::Boolean(true)),
                                DataType::Boolean,
                            ),
                        ),
                    ],
                    otherwise: Some(differ.boxed()),
                },
                DataType::Boolean,
            );
            if *negated {
                TypedExpr::new(ExprKind::Not(distinct.boxed()), DataType::Boolean)
            } else {
                distinct
            }
        }
        Expr::Like {
            expr,
            pattern,
            escape,
            negated,
        } => {
            let e = t(expr)?.coerce_if_null(&DataType::String);
            let p = t(pattern)?.coerce_if_null(&DataType::String);
            if e.data_type != DataType::String || p.data_type != DataType::String {
                return Err(PlanError::new(format!(
                    "Unsupported argument types for LIKE: {} and {}",
                    e.data_type, p.data_type
                )));
            }
            TypedExpr::new(
                ExprKind::Like {
                    expr: e.boxed(),
                    pattern: p.boxed(),
                    escape: *escape,
                    negated: *negated,
                },
                DataType::Boolean,
            )
        }
        Expr::Between {
            expr,
            low,
            high,
            negated,
        } => {
            let e = t(expr)?;
            let (low_written, high_written) = (&**low, &**high);
            let low = match magic_time(low, expr) {
                Some(low) => low,
                None => t(low)?,
            };
            let high = match magic_time(high, expr) {
                Some(high) => high,
                None => t(high)?,
            };
            // ksqlDB checks a BETWEEN as its two comparisons.
            let lower = compare(CmpOp::GtEq, e.clone(), low)
                .map_err(|err| between_error(err, BinaryOp::GtEq, expr, low_written))?;
            let upper = compare(CmpOp::LtEq, e, high)
                .map_err(|err| between_error(err, BinaryOp::LtEq, expr, high_written))?;
            let both = TypedExpr::new(
                ExprKind::And(lower.boxed(), upper.boxed()),
                DataType::Boolean,
            );
            if *negated {
                TypedExpr::new(ExprKind::Not(both.boxed()), DataType::Boolean)
            } else {
                both
            }
        }
        Expr::InList {
            expr,
            list,
            negated,
        } => {
            let mut items = vec![t(expr)?];
            items.extend(list.iter().map(t).collect::<Result<Vec<_>>>()?);
            let written: Vec<String> = std::iter::once(expr.as_ref())
                .chain(list)
                .map(|e| e.to_string())
                .collect();
            let (_, mut items) = coerce_list(items, &written)
                .map_err(|e| PlanError::new(format!("Invalid Predicate: {}", e.message)))?;
            let e = items.remove(0);
            TypedExpr::new(
                ExprKind::InList {
                    expr: e.boxed(),
                    list: items,
                    negated: *negated,
                },
                DataType::Boolean,
            )
        }
        Expr::Cast { expr, to } => {
            let inner = t(expr)?;
            if inner.is_null_literal() {
                // A typed NULL: no longer a bare NULL literal, which has no type of its own.
                return Ok(TypedExpr::new(
                    ExprKind::Cast(inner.coerce(to).boxed()),
                    to.clone(),
                ));
            }
            check_cast(&inner.data_type, to)?;
            TypedExpr::new(ExprKind::Cast(inner.boxed()), to.clone())
        }
        Expr::Case {
            operand,
            whens,
            otherwise,
        } => {
            let operand = operand.as_deref().map(t).transpose()?;
            let mut conds = Vec::new();
            let mut results = Vec::new();
            for (cond, result) in whens {
                let cond = match &operand {
                    Some(op) => compare(CmpOp::Eq, op.clone(), t(cond)?)?,
                    None => boolean_operand(t(cond)?, "WHEN")?,
                };
                conds.push(cond);
                results.push(t(result)?);
            }
            let otherwise = otherwise.as_deref().map(t).transpose()?;
            let result_type = results
                .iter()
                .chain(otherwise.iter())
                .find(|r| !r.is_null_literal())
                .map(|r| r.data_type.clone())
                .ok_or_else(|| {
                    PlanError::new("Invalid Case expression. All case branches have NULL type")
                })?;
            for r in results.iter().chain(otherwise.iter()) {
                if !r.is_null_literal() && r.data_type != result_type {
                    return Err(PlanError::new(format!(
                        "Invalid Case expression. Type for all 'THEN' clauses should be the same.\nTHEN expression has type: {}. Expected type: {result_type}",
                        r.data_type
                    )));
                }
            }
            let whens = conds
                .into_iter()
                .zip(results.into_iter().map(|r| r.coerce(&result_type)))
                .collect();
            TypedExpr::new(
                ExprKind::Case {
                    whens,
                    otherwise: otherwise.map(|o| o.coerce(&result_type).boxed()),
                },
                result_type,
            )
        }
        Expr::Field { expr, field } => {
            // A field of each exploded element: explode the array of those fields.
            if let Expr::Function {
                name,
                args,
                distinct,
                star,
                position,
            } = expr.as_ref()
            {
                if name == "EXPLODE" && args.len() == 1 {
                    let element = "KSQL_EXPLODED_ELEMENT".to_string();
                    let fields = Expr::Function {
                        name: "TRANSFORM".into(),
                        args: vec![
                            args[0].clone(),
                            Expr::Lambda {
                                params: vec![element.clone()],
                                body: Box::new(Expr::Field {
                                    expr: Box::new(Expr::Column {
                                        qualifier: None,
                                        name: element,
                                        position: *position,
                                    }),
                                    field: field.clone(),
                                }),
                            },
                        ],
                        distinct: *distinct,
                        star: *star,
                        position: *position,
                    };
                    return t(&Expr::Function {
                        name: name.clone(),
                        args: vec![fields],
                        distinct: *distinct,
                        star: *star,
                        position: *position,
                    });
                }
            }
            let inner = t(expr)?;
            let DataType::Struct(fields) = &inner.data_type else {
                return Err(PlanError::new(format!(
                    "Expected STRUCT type for '->' but got {}",
                    inner.data_type
                )));
            };
            let index = fields
                .iter()
                .position(|(n, _)| n == field)
                .or_else(|| {
                    fields
                        .iter()
                        .position(|(n, _)| n.eq_ignore_ascii_case(field))
                })
                .ok_or_else(|| {
                    PlanError::new(format!("Could not find field '{field}' in struct"))
                })?;
            let dt = fields[index].1.clone();
            TypedExpr::new(
                ExprKind::StructField {
                    expr: inner.boxed(),
                    index,
                },
                dt,
            )
        }
        Expr::Subscript { expr, index } => {
            let inner = t(expr)?;
            let index = t(index)?;
            match inner.data_type.clone() {
                DataType::Array(element) => {
                    if !matches!(index.data_type, DataType::Int | DataType::BigInt) {
                        return Err(PlanError::new("Array index must be an integer"));
                    }
                    let index = index.coerce(&DataType::Int);
                    TypedExpr::new(
                        ExprKind::ArrayIndex {
                            expr: inner.boxed(),
                            index: index.boxed(),
                        },
                        *element,
                    )
                }
                DataType::Map(k, v) => {
                    let key = coerce_literal(index, &k)?;
                    if key.data_type != *k {
                        return Err(PlanError::new(format!(
                            "Map key must be of type {k}, got {}",
                            key.data_type
                        )));
                    }
                    TypedExpr::new(
                        ExprKind::MapLookup {
                            expr: inner.boxed(),
                            key: key.boxed(),
                        },
                        *v,
                    )
                }
                other => {
                    return Err(PlanError::new(format!(
                        "Subscript is only supported on ARRAY and MAP, not {other}"
                    )))
                }
            }
        }
        Expr::Array(items) => {
            if items.is_empty() {
                return Err(PlanError::new("Array constructor cannot be empty. Please supply at least one element (see https://github.com/confluentinc/ksql/issues/4239)."));
            }
            let items_ast = items;
            let items = items.iter().map(t).collect::<Result<Vec<_>>>()?;
            if items.iter().all(|i| i.is_null_literal()) {
                return Err(PlanError::new("Cannot construct an array with all NULL elements (see https://github.com/confluentinc/ksql/issues/4239). As a workaround, you may cast a NULL value to the desired type."));
            }
            let written = items_written(items_ast);
            let (element, items) = coerce_list(items, &written)?;
            let element = element.unwrap_or(DataType::String);
            TypedExpr::new(
                ExprKind::MakeArray(items),
                DataType::Array(Box::new(element)),
            )
        }
        Expr::Map(entries) => {
            if entries.is_empty() {
                return Err(PlanError::new("Map constructor cannot be empty. Please supply at least one key value pair (see https://github.com/confluentinc/ksql/issues/4239)."));
            }
            let keys = entries
                .iter()
                .map(|(k, _)| t(k))
                .collect::<Result<Vec<_>>>()?;
            let values = entries
                .iter()
                .map(|(_, v)| t(v))
                .collect::<Result<Vec<_>>>()?;
            if keys.iter().all(|k| k.is_null_literal()) {
                return Err(PlanError::new("Cannot construct a map with all NULL keys"));
            }
            if values.iter().all(|v| v.is_null_literal()) {
                return Err(PlanError::new(
                    "Cannot construct a map with all NULL values",
                ));
            }
            let (kt, keys) = coerce_list(keys, &items_written(entries.iter().map(|(k, _)| k)))?;
            let (vt, values) = coerce_list(values, &items_written(entries.iter().map(|(_, v)| v)))?;
            let (kt, vt) = (
                kt.unwrap_or(DataType::String),
                vt.unwrap_or(DataType::String),
            );
            let entries = keys.into_iter().zip(values).collect();
            TypedExpr::new(
                ExprKind::MakeMap(entries),
                DataType::Map(Box::new(kt), Box::new(vt)),
            )
        }
        Expr::Struct(fields) => {
            let mut types = Vec::new();
            let mut values = Vec::new();
            for (name, e) in fields {
                if types.iter().any(|(n, _)| n == name) {
                    return Err(PlanError::new("Duplicate field names found in STRUCT"));
                }
                let v = t(e)?;
                types.push((name.clone(), v.data_type.clone()));
                values.push(v);
            }
            TypedExpr::new(ExprKind::MakeStruct(values), DataType::Struct(types))
        }
        Expr::Function {
            name,
            args,
            position,
            ..
        } => {
            if name == "EXPLODE" {
                let arg = match args.as_slice() {
                    [a] => t(a)?,
                    _ => return Err(PlanError::at(*position, "EXPLODE takes one ARRAY argument")),
                };
                let DataType::Array(element) = arg.data_type.clone() else {
                    return Err(PlanError::at(
                        *position,
                        format!(
                            "Function 'explode' does not accept parameters ({}).\nValid alternatives are:\nexplode(ARRAY<DECIMAL> input)\nexplode(ARRAY<T> list)",
                            arg.data_type
                        ),
                    ));
                };
                return Ok(TypedExpr::new(ExprKind::Explode(arg.boxed()), *element));
            }
            if name == "CUBE_EXPLODE" {
                let arg = match args.as_slice() {
                    [a] => t(a)?,
                    _ => {
                        return Err(PlanError::at(
                            *position,
                            "CUBE_EXPLODE takes one ARRAY argument",
                        ))
                    }
                };
                let function = FunctionRef(&functions::arrays::CUBE);
                let signature = (function.0.resolve)(&[Some(arg.data_type.clone())])
                    .map_err(|m| PlanError::at(*position, m))?;
                let element = arg.data_type.clone();
                let cube = TypedExpr::new(
                    ExprKind::Function {
                        function,
                        args: vec![arg],
                    },
                    signature.returns,
                );
                return Ok(TypedExpr::new(ExprKind::Explode(cube.boxed()), element));
            }
            if matches!(name.as_str(), "TRANSFORM" | "FILTER" | "REDUCE") {
                return type_lambda_call(name, args, scope);
            }
            let Some(function) = functions::lookup(name) else {
                return Err(PlanError::at(
                    *position,
                    format!("Can't find any functions with the name '{name}'"),
                ));
            };
            // Their first argument is a time unit written as a bare word.
            let unit_first = matches!(
                name.as_str(),
                "TIMEADD" | "TIMESUB" | "TIMESTAMPADD" | "TIMESTAMPSUB" | "DATEADD" | "DATESUB"
            );
            let args = args
                .iter()
                .enumerate()
                .map(|(i, a)| match a {
                    Expr::Column {
                        qualifier: None,
                        name,
                        ..
                    } if unit_first && i == 0 && !scope.columns.iter().any(|c| &c.name == name) => {
                        type_of_literal(&Literal::String(name.clone()))
                    }
                    other => t(other),
                })
                .collect::<Result<Vec<_>>>()?;
            let arg_types: Vec<Option<DataType>> = args
                .iter()
                .map(|a| (!a.is_null_literal()).then(|| a.data_type.clone()))
                .collect();
            let signature =
                (function.0.resolve)(&arg_types).map_err(|m| PlanError::at(*position, m))?;
            let args = args
                .into_iter()
                .zip(&signature.params)
                .map(|(a, p)| a.coerce(p))
                .collect();
            TypedExpr::new(ExprKind::Function { function, args }, signature.returns)
        }
        Expr::Lambda { .. } => {
            return Err(PlanError::new(
                "Lambdas are only allowed as function arguments",
            ))
        }
    })
}

impl TypedExpr {
    fn coerce_if_null(self, to: &DataType) -> TypedExpr {
        if self.is_null_literal() {
            self.coerce(to)
        } else {
            self
        }
    }
}

fn boolean_operand(e: TypedExpr, what: &str) -> Result<TypedExpr> {
    let e = e.coerce_if_null(&DataType::Boolean);
    if e.data_type != DataType::Boolean {
        return Err(PlanError::new(format!(
            "{what} requires a BOOLEAN operand, got {}",
            e.data_type
        )));
    }
    Ok(e)
}

/// The type a list of expressions shares, for constructors.
/// A date-time string compared with ROWTIME, WINDOWSTART or WINDOWEND, as the epoch
/// milliseconds ksqlDB reads it as: `yyyy[-MM[-dd]][THH[:mm[:ss[.SSS]]]][zone]`, UTC
/// unless a zone (`Z`, `+HHmm`, `+HH:mm`) follows.
fn magic_time(e: &Expr, other: &Expr) -> Option<TypedExpr> {
    let is_time = matches!(other, Expr::Column { name, .. }
        if ["ROWTIME", "WINDOWSTART", "WINDOWEND"].contains(&name.as_str()));
    let Expr::Literal(Literal::String(text)) = e else {
        return None;
    };
    if !is_time {
        return None;
    }
    let millis = epoch_millis_of(text.trim())?;
    Some(TypedExpr::new(
        ExprKind::Literal(Value::BigInt(millis)),
        DataType::BigInt,
    ))
}

fn epoch_millis_of(text: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    let (date, rest) = match text.split_once('T') {
        Some((d, r)) => (d, r),
        None => (text, ""),
    };
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u32 = parts.next().map_or(Some(1), |d| d.parse().ok())?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    // The zone starts at Z, + or - after the time.
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let (hms, fraction) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut fields = hms.split(':').filter(|f| !f.is_empty());
    let hour: u32 = fields.next().map_or(Some(0), |h| h.parse().ok())?;
    let minute: u32 = fields.next().map_or(Some(0), |m| m.parse().ok())?;
    let second: u32 = fields.next().map_or(Some(0), |s| s.parse().ok())?;
    let millis: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<3}")[..3].parse().ok()?
    };
    let time = NaiveTime::from_hms_milli_opt(hour, minute, second, millis)?;
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_millis();
    let offset_minutes: i64 = match zone {
        "" | "Z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i64>().ok()?, 0),
                4 => (
                    digits[..2].parse::<i64>().ok()?,
                    digits[2..].parse::<i64>().ok()?,
                ),
                _ => return None,
            };
            sign * (h * 60 + m)
        }
    };
    Some(local - offset_minutes * 60_000)
}

/// Each expression as the statement writes it, for coercion messages.
fn items_written<'a>(items: impl IntoIterator<Item = &'a Expr>) -> Vec<String> {
    items.into_iter().map(|e| e.to_string()).collect()
}

/// The type two types both widen to: numbers to their common type, and arrays, maps and
/// structs (with the same fields) element by element.
fn widen(a: &DataType, b: &DataType) -> Option<DataType> {
    if a == b {
        return Some(a.clone());
    }
    match (a, b) {
        (DataType::Array(x), DataType::Array(y)) => Some(DataType::Array(Box::new(widen(x, y)?))),
        (DataType::Map(k1, v1), DataType::Map(k2, v2)) => Some(DataType::Map(
            Box::new(widen(k1, k2)?),
            Box::new(widen(v1, v2)?),
        )),
        (DataType::Struct(f1), DataType::Struct(f2)) if f1.len() == f2.len() => {
            Some(DataType::Struct(
                f1.iter()
                    .zip(f2)
                    .map(|((n1, t1), (n2, t2))| {
                        (n1 == n2).then(|| widen(t1, t2).map(|t| (n1.clone(), t)))?
                    })
                    .collect::<Option<_>>()?,
            ))
        }
        _ => common_numeric(a, b),
    }
}

/// The type two operands are compared in, if they can be; a string literal compared with
/// another type is read as that type.
fn comparable_type(a: &DataType, b: &TypedExpr) -> Option<DataType> {
    if b.is_null_literal() || *a == b.data_type {
        return Some(a.clone());
    }
    if let Some(common) = widen(a, &b.data_type) {
        return Some(common);
    }
    // A DATE compares with a TIMESTAMP as its first instant.
    if matches!(
        (a, &b.data_type),
        (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date)
    ) {
        return Some(DataType::Timestamp);
    }
    if b.data_type == DataType::String && matches!(b.kind, ExprKind::Literal(_)) {
        return Some(a.clone());
    }
    None
}

/// Converts a literal to `to` at plan time where ksqlDB would (a string literal compared
/// with a number); other expressions are cast.
fn coerce_literal(e: TypedExpr, to: &DataType) -> Result<TypedExpr> {
    if e.data_type == *to || e.is_null_literal() {
        return Ok(e.coerce(to));
    }
    if let ExprKind::Literal(Value::String(s)) = &e.kind {
        if is_numeric(to) || *to == DataType::Boolean {
            let value = parse_literal_as(s, to).ok_or_else(|| {
                PlanError::new(format!(
                    "Invalid Predicate: invalid input syntax for type {to}: \"{s}\"."
                ))
            })?;
            return Ok(TypedExpr::new(ExprKind::Literal(value), to.clone()));
        }
    }
    Ok(e.coerce(to))
}

fn parse_literal_as(s: &str, to: &DataType) -> Option<Value> {
    let s = s.trim();
    Some(match to {
        DataType::Int => Value::Int(s.parse().ok()?),
        DataType::BigInt => Value::BigInt(s.parse().ok()?),
        DataType::Double => Value::Double(s.parse().ok()?),
        DataType::Decimal { scale, .. } => Value::Decimal(parse_decimal(s, *scale)?, *scale),
        DataType::Boolean => Value::Boolean(match s.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => return None,
        }),
        _ => return None,
    })
}

fn compare(op: CmpOp, left: TypedExpr, right: TypedExpr) -> Result<TypedExpr> {
    let (left, right) = if left.is_null_literal() {
        (right, left)
    } else {
        (left, right)
    };
    let common = comparable_type(&left.data_type, &right)
        .or_else(|| comparable_type(&right.data_type, &left))
        .ok_or_else(|| {
            PlanError::new(format!(
                "Cannot compare {} to {} with {op:?}",
                left.data_type, right.data_type
            ))
        })?;
    if matches!(
        common,
        DataType::Map(..) | DataType::Array(_) | DataType::Struct(_)
    ) && !matches!(op, CmpOp::Eq | CmpOp::NotEq)
    {
        return Err(PlanError::new(format!(
            "Cannot compare {common} with {op:?}"
        )));
    }
    let left = coerce_literal(left, &common)?;
    let right = coerce_literal(right, &common)?;
    Ok(TypedExpr::new(
        ExprKind::Compare {
            op,
            left: left.boxed(),
            right: right.boxed(),
        },
        DataType::Boolean,
    ))
}

/// The name ksqlDB gives a comparison in its messages.
const COMPARE_FAILED: &str = "Cannot compare ";

/// A failed bound of a BETWEEN, as ksqlDB words it.
fn between_error(err: PlanError, op: BinaryOp, expr: &Expr, bound: &Expr) -> PlanError {
    if !err.message.starts_with(COMPARE_FAILED) {
        return err;
    }
    let err = compare_error(err, op, expr, bound);
    PlanError {
        message: format!("Invalid expression: {}", err.message),
        position: err.position,
    }
}

/// A failed comparison in ksqlDB's words: `Cannot compare B (ARRAY<INTEGER>) to C
/// (ARRAY<INTEGER>) with LESS_THAN.`, the operands as written with their types.
fn compare_error(err: PlanError, op: BinaryOp, l: &Expr, r: &Expr) -> PlanError {
    let (Some(name), Some((lt, rt))) = (comparison_name(op), compared_types(&err.message)) else {
        return err;
    };
    PlanError {
        message: format!("Cannot compare {l} ({lt}) to {r} ({rt}) with {name}."),
        position: err.position,
    }
}

/// The operand types `compare` names in its message.
fn compared_types(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix(COMPARE_FAILED)?;
    let (types, _) = rest.rsplit_once(" with ")?;
    match types.split_once(" to ") {
        Some((l, r)) => Some((l.to_string(), r.to_string())),
        None => Some((types.to_string(), types.to_string())),
    }
}

fn comparison_name(op: BinaryOp) -> Option<&'static str> {
    Some(match op {
        BinaryOp::Eq => "EQUAL",
        BinaryOp::NotEq => "NOT_EQUAL",
        BinaryOp::Lt => "LESS_THAN",
        BinaryOp::LtEq => "LESS_THAN_OR_EQUAL",
        BinaryOp::Gt => "GREATER_THAN",
        BinaryOp::GtEq => "GREATER_THAN_OR_EQUAL",
        _ => return None,
    })
}

const UNSUPPORTED_ARITHMETIC: &str = "Error processing expression: Unsupported arithmetic types.";

/// A type's kind as ksqlDB's messages name it: `DECIMAL`, not `DECIMAL(2, 1)`.
fn base_type_name(t: &DataType) -> String {
    match t {
        DataType::Decimal { .. } => "DECIMAL".into(),
        other => other.to_string(),
    }
}

fn binary(op: BinaryOp, left: TypedExpr, right: TypedExpr) -> Result<TypedExpr> {
    let arith = match op {
        BinaryOp::Plus => ArithOp::Add,
        BinaryOp::Minus => ArithOp::Subtract,
        BinaryOp::Multiply => ArithOp::Multiply,
        BinaryOp::Divide => ArithOp::Divide,
        BinaryOp::Modulo => ArithOp::Modulo,
        BinaryOp::Eq => return compare(CmpOp::Eq, left, right),
        BinaryOp::NotEq => return compare(CmpOp::NotEq, left, right),
        BinaryOp::Lt => return compare(CmpOp::Lt, left, right),
        BinaryOp::LtEq => return compare(CmpOp::LtEq, left, right),
        BinaryOp::Gt => return compare(CmpOp::Gt, left, right),
        BinaryOp::GtEq => return compare(CmpOp::GtEq, left, right),
        BinaryOp::And | BinaryOp::Or => {
            let l = boolean_operand(left, op.symbol())?.boxed();
            let r = boolean_operand(right, op.symbol())?.boxed();
            let kind = if op == BinaryOp::And {
                ExprKind::And(l, r)
            } else {
                ExprKind::Or(l, r)
            };
            return Ok(TypedExpr::new(kind, DataType::Boolean));
        }
        BinaryOp::Concat => return concat(left, right),
    };
    let (left, right) = match (left.is_null_literal(), right.is_null_literal()) {
        (true, false) => (left.coerce(&right.data_type), right),
        (false, true) => {
            let dt = left.data_type.clone();
            (left, right.coerce(&dt))
        }
        _ => (left, right),
    };
    if op == BinaryOp::Plus
        && left.data_type == DataType::String
        && right.data_type == DataType::String
    {
        return concat(left, right);
    }
    let Some(common) = common_numeric(&left.data_type, &right.data_type) else {
        return Err(PlanError::new(format!(
            "{UNSUPPORTED_ARITHMETIC} {} {}",
            left.data_type, right.data_type
        )));
    };
    if let DataType::Decimal { .. } = common {
        let (Some(a), Some(b)) = (as_decimal(&left.data_type), as_decimal(&right.data_type)) else {
            // common_numeric gives DECIMAL only for integer and decimal operands; should that
            // ever change, the statement fails rather than the process.
            return Err(PlanError::new(format!(
                "{UNSUPPORTED_ARITHMETIC} {} {}",
                left.data_type, right.data_type
            )));
        };
        let result = decimal_result(op, a, b);
        let to_decimal = |e: TypedExpr, (p, s): (u8, i8)| {
            e.coerce(&DataType::Decimal {
                precision: p,
                scale: s,
            })
        };
        return Ok(TypedExpr::new(
            ExprKind::Arithmetic {
                op: arith,
                left: to_decimal(left, a).boxed(),
                right: to_decimal(right, b).boxed(),
            },
            result,
        ));
    }
    Ok(TypedExpr::new(
        ExprKind::Arithmetic {
            op: arith,
            left: left.coerce(&common).boxed(),
            right: right.coerce(&common).boxed(),
        },
        common,
    ))
}

fn concat(left: TypedExpr, right: TypedExpr) -> Result<TypedExpr> {
    let left = left.coerce_if_null(&DataType::String);
    let right = right.coerce_if_null(&DataType::String);
    if left.data_type != DataType::String || right.data_type != DataType::String {
        return Err(PlanError::new(format!(
            "{UNSUPPORTED_ARITHMETIC} {} {}",
            left.data_type, right.data_type
        )));
    }
    Ok(TypedExpr::new(
        ExprKind::Concat(left.boxed(), right.boxed()),
        DataType::String,
    ))
}

/// Whether ksqlDB can cast `from` to `to`.
fn check_cast(from: &DataType, to: &DataType) -> Result<()> {
    let scalar = |t: &DataType| {
        !matches!(
            t,
            DataType::Array(_) | DataType::Map(..) | DataType::Struct(_)
        )
    };
    let ok = from == to
        || (is_numeric(from) && is_numeric(to))
        || *to == DataType::String
        || *from == DataType::String && scalar(to)
        || (matches!(from, DataType::Timestamp | DataType::Date | DataType::Time)
            && matches!(
                to,
                DataType::Timestamp | DataType::Date | DataType::Time | DataType::String
            ))
        || match (from, to) {
            (DataType::Array(a), DataType::Array(b)) => check_cast(a, b).is_ok(),
            (DataType::Struct(a), DataType::Struct(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((_, x), (_, y))| check_cast(x, y).is_ok())
            }
            (DataType::Map(k1, v1), DataType::Map(k2, v2)) => {
                check_cast(k1, k2).is_ok() && check_cast(v1, v2).is_ok()
            }
            _ => false,
        };
    if ok {
        Ok(())
    } else {
        Err(PlanError::new(format!(
            "Cast of {from} to {to} is not supported"
        )))
    }
}

/// Types a lambda's body with its parameters bound to `params`.
fn type_lambda(lambda: &Expr, params: &[DataType], scope: &Scope) -> Result<TypedExpr> {
    let Expr::Lambda {
        params: names,
        body,
    } = lambda
    else {
        return Err(PlanError::new("expected a lambda such as x => x + 1"));
    };
    if names.len() != params.len() {
        return Err(PlanError::new(format!(
            "Was expecting {} arguments to lambda function, got {}",
            params.len(),
            names.len()
        )));
    }
    let mut columns = scope.columns.to_vec();
    columns.extend(names.iter().zip(params).map(|(n, t)| RowColumn {
        name: n.clone(),
        data_type: t.clone(),
    }));
    type_expr(
        body,
        &Scope {
            columns: &columns,
            qualifiers: scope.qualifiers.clone(),
        },
    )
}

fn type_lambda_call(name: &str, args: &[Expr], scope: &Scope) -> Result<TypedExpr> {
    let wrong = || {
        PlanError::new(format!(
            "Function '{}' does not accept these arguments",
            name.to_lowercase()
        ))
    };
    let input = type_expr(args.first().ok_or_else(wrong)?, scope)?;
    let lambda =
        |i: usize, params: &[DataType]| type_lambda(args.get(i).ok_or_else(wrong)?, params, scope);
    let (op, init, bodies, result) = match (name, &input.data_type) {
        ("TRANSFORM", DataType::Array(e)) if args.len() == 2 => {
            let body = lambda(1, &[(**e).clone()])?;
            let t = DataType::Array(Box::new(body.data_type.clone()));
            (LambdaOp::TransformArray, None, vec![body], t)
        }
        ("TRANSFORM", DataType::Map(k, v)) if args.len() == 3 => {
            let params = [(**k).clone(), (**v).clone()];
            let (key, value) = (lambda(1, &params)?, lambda(2, &params)?);
            let t = DataType::Map(
                Box::new(key.data_type.clone()),
                Box::new(value.data_type.clone()),
            );
            (LambdaOp::TransformMap, None, vec![key, value], t)
        }
        ("FILTER", DataType::Array(e)) if args.len() == 2 => {
            let body = boolean_operand(lambda(1, &[(**e).clone()])?, "FILTER")?;
            (
                LambdaOp::FilterArray,
                None,
                vec![body],
                input.data_type.clone(),
            )
        }
        ("FILTER", DataType::Map(k, v)) if args.len() == 2 => {
            let body = boolean_operand(lambda(1, &[(**k).clone(), (**v).clone()])?, "FILTER")?;
            (
                LambdaOp::FilterMap,
                None,
                vec![body],
                input.data_type.clone(),
            )
        }
        ("REDUCE", DataType::Array(e)) if args.len() == 3 => {
            let init = type_expr(&args[1], scope)?;
            let state = init.data_type.clone();
            let body = lambda(2, &[state.clone(), (**e).clone()])?.coerce(&state);
            (LambdaOp::ReduceArray, Some(init.boxed()), vec![body], state)
        }
        ("REDUCE", DataType::Map(k, v)) if args.len() == 3 => {
            let init = type_expr(&args[1], scope)?;
            let state = init.data_type.clone();
            let body = lambda(2, &[state.clone(), (**k).clone(), (**v).clone()])?.coerce(&state);
            (LambdaOp::ReduceMap, Some(init.boxed()), vec![body], state)
        }
        _ => return Err(wrong()),
    };
    Ok(TypedExpr::new(
        ExprKind::Lambda {
            op,
            input: input.boxed(),
            init,
            bodies,
        },
        result,
    ))
}
