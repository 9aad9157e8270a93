//! Converting `sqlparser` expressions into Brook's [`Expr`], applying ksqlDB's identifier
//! case rules and rejecting SQL that ksqlDB does not have.

use crate::ast::{BinaryOp, Expr, Literal};
use crate::dialect::cast_target;
use crate::error::Position;
use sqlparser::ast::{
    self as sp, AccessExpr, DuplicateTreatment, FunctionArg, FunctionArgExpr, FunctionArguments,
    OneOrManyWithParens, Subscript, UnaryOperator,
};

/// Unquoted identifiers are upper-cased; back-quoted ones keep their case.
pub(crate) fn fold_ident(ident: &sp::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_uppercase(),
    }
}

pub(crate) fn position_of(span: sqlparser::tokenizer::Span) -> Position {
    Position {
        line: span.start.line,
        column: span.start.column,
    }
}

/// An error in an expression, at the position of the closest node that has one.
pub(crate) struct ExprError {
    pub position: Option<Position>,
    pub message: String,
}

fn unsupported(what: impl std::fmt::Display) -> ExprError {
    ExprError {
        position: None,
        message: format!("unsupported expression: {what}"),
    }
}

pub(crate) fn convert_expr(e: &sp::Expr) -> Result<Expr, ExprError> {
    let b = |e: &sp::Expr| convert_expr(e).map(Box::new);
    Ok(match e {
        sp::Expr::Identifier(ident) => Expr::Column {
            qualifier: None,
            name: fold_ident(ident),
            position: position_of(ident.span),
        },
        sp::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, n] => Expr::Column {
                qualifier: Some(fold_ident(q)),
                name: fold_ident(n),
                position: position_of(q.span),
            },
            _ => return Err(unsupported(e)),
        },
        // A literal's own place, for the errors of literals no type can hold.
        sp::Expr::Value(v) => Expr::Literal(convert_value(&v.value).map_err(|e| ExprError {
            position: e.position.or(Some(position_of(v.span))),
            ..e
        })?),
        sp::Expr::Nested(inner) => convert_expr(inner)?,
        sp::Expr::BinaryOp { left, op, right } => {
            if *op == sp::BinaryOperator::Arrow {
                let sp::Expr::Identifier(field) = right.as_ref() else {
                    return Err(unsupported(e));
                };
                return Ok(Expr::Field {
                    expr: b(left)?,
                    field: fold_ident(field),
                });
            }
            let op = match op {
                sp::BinaryOperator::Plus => BinaryOp::Plus,
                sp::BinaryOperator::Minus => BinaryOp::Minus,
                sp::BinaryOperator::Multiply => BinaryOp::Multiply,
                sp::BinaryOperator::Divide => BinaryOp::Divide,
                sp::BinaryOperator::Modulo => BinaryOp::Modulo,
                sp::BinaryOperator::Eq => BinaryOp::Eq,
                sp::BinaryOperator::NotEq => BinaryOp::NotEq,
                sp::BinaryOperator::Lt => BinaryOp::Lt,
                sp::BinaryOperator::LtEq => BinaryOp::LtEq,
                sp::BinaryOperator::Gt => BinaryOp::Gt,
                sp::BinaryOperator::GtEq => BinaryOp::GtEq,
                sp::BinaryOperator::And => BinaryOp::And,
                sp::BinaryOperator::Or => BinaryOp::Or,
                sp::BinaryOperator::StringConcat => BinaryOp::Concat,
                other => return Err(unsupported(format!("operator {other}"))),
            };
            Expr::Binary {
                op,
                left: b(left)?,
                right: b(right)?,
            }
        }
        sp::Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Minus => match negative_literal(expr)? {
                Some(lit) => Expr::Literal(lit),
                None => match convert_expr(expr)? {
                    Expr::Literal(Literal::Integer(i)) => Expr::Literal(Literal::Integer(-i)),
                    Expr::Literal(Literal::Decimal(d)) => {
                        Expr::Literal(Literal::Decimal(format!("-{d}")))
                    }
                    Expr::Literal(Literal::Double(d)) => Expr::Literal(Literal::Double(-d)),
                    other => Expr::Negate(Box::new(other)),
                },
            },
            UnaryOperator::Plus => convert_expr(expr)?,
            UnaryOperator::Not => Expr::Not(b(expr)?),
            other => return Err(unsupported(format!("operator {other}"))),
        },
        sp::Expr::IsNull(inner) => Expr::IsNull {
            expr: b(inner)?,
            negated: false,
        },
        sp::Expr::IsNotNull(inner) => Expr::IsNull {
            expr: b(inner)?,
            negated: true,
        },
        sp::Expr::IsDistinctFrom(l, r) => Expr::IsDistinctFrom {
            left: b(l)?,
            right: b(r)?,
            negated: false,
        },
        sp::Expr::IsNotDistinctFrom(l, r) => Expr::IsDistinctFrom {
            left: b(l)?,
            right: b(r)?,
            negated: true,
        },
        sp::Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char,
        } => {
            let escape = match escape_char.as_deref() {
                None => None,
                Some(sp::Expr::Value(v)) => match &v.value {
                    sp::Value::SingleQuotedString(s) if s.chars().count() == 1 => s.chars().next(),
                    _ => return Err(unsupported("LIKE ESCAPE takes one character")),
                },
                Some(_) => return Err(unsupported("LIKE ESCAPE takes one character")),
            };
            Expr::Like {
                expr: b(expr)?,
                pattern: b(pattern)?,
                escape,
                negated: *negated,
            }
        }
        sp::Expr::Between {
            expr,
            negated,
            low,
            high,
        } => Expr::Between {
            expr: b(expr)?,
            low: b(low)?,
            high: b(high)?,
            negated: *negated,
        },
        sp::Expr::InList {
            expr,
            list,
            negated,
        } => Expr::InList {
            expr: b(expr)?,
            list: list.iter().map(convert_expr).collect::<Result<_, _>>()?,
            negated: *negated,
        },
        sp::Expr::Cast {
            kind: sp::CastKind::Cast,
            expr,
            data_type,
            format: None,
            ..
        } => Expr::Cast {
            expr: b(expr)?,
            to: cast_target(data_type).map_err(|message| ExprError {
                position: None,
                message,
            })?,
        },
        sp::Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => Expr::Case {
            operand: operand
                .as_deref()
                .map(convert_expr)
                .transpose()?
                .map(Box::new),
            whens: conditions
                .iter()
                .map(|w| Ok((convert_expr(&w.condition)?, convert_expr(&w.result)?)))
                .collect::<Result<_, ExprError>>()?,
            otherwise: else_result
                .as_deref()
                .map(convert_expr)
                .transpose()?
                .map(Box::new),
        },
        sp::Expr::CompoundFieldAccess { root, access_chain } => {
            let mut out = convert_expr(root)?;
            for access in access_chain {
                out = match access {
                    AccessExpr::Subscript(Subscript::Index { index }) => Expr::Subscript {
                        expr: Box::new(out),
                        index: b(index)?,
                    },
                    // `alias.column[1]`: the qualified column, then its subscript.
                    AccessExpr::Dot(sp::Expr::Identifier(name)) => match out {
                        Expr::Column {
                            qualifier: None,
                            name: qualifier,
                            position,
                        } => Expr::Column {
                            qualifier: Some(qualifier),
                            name: fold_ident(name),
                            position,
                        },
                        _ => return Err(unsupported(e)),
                    },
                    _ => return Err(unsupported(e)),
                };
            }
            out
        }
        sp::Expr::Array(array) => Expr::Array(
            array
                .elem
                .iter()
                .map(convert_expr)
                .collect::<Result<_, _>>()?,
        ),
        sp::Expr::Function(f) => convert_function(f)?,
        // sqlparser reads these as special forms; in ksqlDB they are plain functions.
        sp::Expr::Substring {
            expr,
            substring_from,
            substring_for,
            ..
        } => {
            let mut args = vec![convert_expr(expr)?];
            for a in [substring_from, substring_for].into_iter().flatten() {
                args.push(convert_expr(a)?);
            }
            plain_function("SUBSTRING", args)
        }
        sp::Expr::Trim {
            expr,
            trim_where: None,
            trim_what: None,
            trim_characters: None,
        } => plain_function("TRIM", vec![convert_expr(expr)?]),
        sp::Expr::Ceil {
            expr,
            field: sp::CeilFloorKind::DateTimeField(sp::DateTimeField::NoDateTime),
        } => plain_function("CEIL", vec![convert_expr(expr)?]),
        sp::Expr::Floor {
            expr,
            field: sp::CeilFloorKind::DateTimeField(sp::DateTimeField::NoDateTime),
        } => plain_function("FLOOR", vec![convert_expr(expr)?]),
        sp::Expr::Lambda(l) => Expr::Lambda {
            params: match &l.params {
                OneOrManyWithParens::One(p) => vec![fold_ident(&p.name)],
                OneOrManyWithParens::Many(ps) => ps.iter().map(|p| fold_ident(&p.name)).collect(),
            },
            body: b(&l.body)?,
        },
        other => return Err(unsupported(other)),
    })
}

fn plain_function(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function {
        name: name.to_string(),
        args,
        distinct: false,
        star: false,
        position: Position::default(),
    }
}

fn convert_value(v: &sp::Value) -> Result<Literal, ExprError> {
    Ok(match v {
        sp::Value::Number(text, _) => number_literal(text)?,
        sp::Value::SingleQuotedString(s) => Literal::String(s.clone()),
        sp::Value::Boolean(b) => Literal::Boolean(*b),
        sp::Value::Null => Literal::Null,
        other => return Err(unsupported(other)),
    })
}

/// `-<number>` as one literal, so that the most negative BIGINT can be written.
fn negative_literal(e: &sp::Expr) -> Result<Option<Literal>, ExprError> {
    match e {
        sp::Expr::Value(v) => match &v.value {
            sp::Value::Number(text, _) => number_literal(&format!("-{text}")).map(Some),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

fn number_literal(text: &str) -> Result<Literal, ExprError> {
    let error = |message: String| ExprError {
        position: None,
        message,
    };
    if text.contains(['e', 'E']) {
        let d: f64 = text
            .parse()
            .map_err(|_| error(format!("Invalid numeric literal: {text}")))?;
        if d.is_infinite() {
            let shown = text.to_uppercase();
            return Err(error(format!("Number overflows DOUBLE: {shown}")));
        }
        return Ok(Literal::Double(d));
    }
    if text.contains('.') {
        return Ok(Literal::Decimal(text.to_string()));
    }
    text.parse::<i64>()
        .map(Literal::Integer)
        .map_err(|_| error(format!("Invalid numeric literal: {text}")))
}

fn convert_function(f: &sp::Function) -> Result<Expr, ExprError> {
    let [name] = f.name.0.as_slice() else {
        return Err(unsupported(&f.name));
    };
    let ident = name.as_ident().ok_or_else(|| unsupported(&f.name))?;
    let fname = fold_ident(ident);
    let position = position_of(ident.span);
    let list = match &f.args {
        FunctionArguments::List(list) => list,
        FunctionArguments::None => {
            return Ok(Expr::Function {
                name: fname,
                args: vec![],
                distinct: false,
                star: false,
                position,
            })
        }
        FunctionArguments::Subquery(_) => return Err(unsupported("subqueries")),
    };
    if f.filter.is_some() || f.over.is_some() || !list.clauses.is_empty() {
        return Err(unsupported(f));
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    // `MAP(k := v, ...)` and `STRUCT(name := v, ...)` are constructors with named entries.
    // They reach here as `:=` assignments.
    let named = list.args.iter().any(|a| {
        matches!(
            a,
            FunctionArg::Unnamed(FunctionArgExpr::Expr(sp::Expr::BinaryOp {
                op: sp::BinaryOperator::Assignment,
                ..
            }))
        )
    });
    if named || (list.args.is_empty() && (fname == "MAP" || fname == "STRUCT")) {
        let mut entries = Vec::new();
        for arg in &list.args {
            let (key, value) = match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(sp::Expr::BinaryOp {
                    left,
                    op: sp::BinaryOperator::Assignment,
                    right,
                })) => (left.as_ref().clone(), right.as_ref()),
                _ => return Err(unsupported(f)),
            };
            entries.push((key, convert_expr(value)?));
        }
        return match fname.as_str() {
            "MAP" => Ok(Expr::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((convert_expr(&k)?, v)))
                    .collect::<Result<_, ExprError>>()?,
            )),
            "STRUCT" => Ok(Expr::Struct(
                entries
                    .into_iter()
                    .map(|(k, v)| match k {
                        sp::Expr::Identifier(i) => Ok((fold_ident(&i), v)),
                        other => Err(unsupported(format!("struct field name {other}"))),
                    })
                    .collect::<Result<_, ExprError>>()?,
            )),
            _ => Err(unsupported(f)),
        };
    }
    let mut args = Vec::new();
    let mut star = false;
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(convert_expr(e)?),
            // `x => body` inside an argument list arrives as a named argument.
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(body),
                operator: sp::FunctionArgOperator::RightArrow,
            } => args.push(Expr::Lambda {
                params: vec![fold_ident(name)],
                body: Box::new(convert_expr(body)?),
            }),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
            _ => return Err(unsupported(f)),
        }
    }
    Ok(Expr::Function {
        name: fname,
        args,
        distinct,
        star,
        position,
    })
}
