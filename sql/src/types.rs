//! The ksqlDB type grammar (`ARRAY<T>`, `MAP<K, V>`, `STRUCT<name T, ...>`, `DECIMAL(p, s)`,
//! ...), read from `sqlparser`'s token stream, and its canonical text.

use crate::ast::DataType;
use crate::expr::fold_ident;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;
use std::fmt;

/// Parses one type. `>>` closing two nested types arrives as one token, so the parser keeps
/// count of a `>` it has read ahead.
pub(crate) fn parse_type(parser: &mut Parser) -> Result<DataType, ParserError> {
    let mut pending_gt = false;
    let t = parse_inner(parser, &mut pending_gt)?;
    if pending_gt {
        return Err(ParserError::ParserError("unexpected '>'".into()));
    }
    Ok(t)
}

fn expected<T>(parser: &Parser, what: &str) -> Result<T, ParserError> {
    parser.expected(what, parser.peek_token())
}

fn expect_gt(parser: &mut Parser, pending_gt: &mut bool) -> Result<(), ParserError> {
    if *pending_gt {
        *pending_gt = false;
        return Ok(());
    }
    match parser.peek_token_ref().token {
        Token::Gt => {
            parser.next_token();
            Ok(())
        }
        Token::ShiftRight => {
            parser.next_token();
            *pending_gt = true;
            Ok(())
        }
        _ => expected(parser, "'>'"),
    }
}

fn parse_inner(parser: &mut Parser, pending_gt: &mut bool) -> Result<DataType, ParserError> {
    let token = parser.next_token();
    let Token::Word(word) = &token.token else {
        return parser.expected("a type", token);
    };
    if word.quote_style.is_some() {
        return Ok(DataType::Named(word.value.clone()));
    }
    Ok(match word.value.to_uppercase().as_str() {
        "BOOLEAN" => DataType::Boolean,
        "INT" | "INTEGER" => DataType::Int,
        "BIGINT" => DataType::BigInt,
        "DOUBLE" => DataType::Double,
        "STRING" | "VARCHAR" => DataType::String,
        "BYTES" => DataType::Bytes,
        "DATE" => DataType::Date,
        "TIME" => DataType::Time,
        "TIMESTAMP" => DataType::Timestamp,
        "DECIMAL" => {
            parser.expect_token(&Token::LParen)?;
            let precision = parser.parse_literal_uint()?;
            parser.expect_token(&Token::Comma)?;
            let scale = parser.parse_literal_uint()?;
            parser.expect_token(&Token::RParen)?;
            decimal(precision, scale).map_err(ParserError::ParserError)?
        }
        "ARRAY" => {
            parser.expect_token(&Token::Lt)?;
            let inner = parse_inner(parser, pending_gt)?;
            expect_gt(parser, pending_gt)?;
            DataType::Array(Box::new(inner))
        }
        "MAP" => {
            parser.expect_token(&Token::Lt)?;
            let key = parse_inner(parser, pending_gt)?;
            parser.expect_token(&Token::Comma)?;
            let value = parse_inner(parser, pending_gt)?;
            expect_gt(parser, pending_gt)?;
            DataType::Map(Box::new(key), Box::new(value))
        }
        "STRUCT" => {
            parser.expect_token(&Token::Lt)?;
            let mut fields = Vec::new();
            if parser.peek_token_ref().token != Token::Gt {
                loop {
                    let name = fold_ident(&parser.parse_identifier()?);
                    fields.push((name, parse_inner(parser, pending_gt)?));
                    if *pending_gt || !parser.consume_token(&Token::Comma) {
                        break;
                    }
                }
            }
            expect_gt(parser, pending_gt)?;
            DataType::Struct(fields)
        }
        // A reserved word is no type name (ksqlDB's grammar refuses `NULL` as a type).
        "NULL" => {
            let at = token.span.start;
            return Err(ParserError::ParserError(format!(
                "mismatched input 'NULL' expecting a type at Line: {}, Column: {}",
                at.line, at.column
            )));
        }
        _ => DataType::Named(word.value.to_uppercase()),
    })
}

fn decimal(precision: u64, scale: u64) -> Result<DataType, String> {
    // ksqlDB's decimals are Java's BigDecimal: any precision may be declared. Brook holds
    // 38 digits; a value with more is refused where it is read.
    if !(1..=u8::MAX as u64).contains(&precision) {
        return Err(format!(
            "DECIMAL precision must be between 1 and {}: {precision}",
            u8::MAX
        ));
    }
    if scale > precision {
        return Err(format!(
            "DECIMAL scale must be between 0 and the precision {precision}: {scale}"
        ));
    }
    Ok(DataType::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

/// ksqlDB's canonical spelling, which `parse_type` reads back to the same type.
impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Boolean => f.write_str("BOOLEAN"),
            DataType::Int => f.write_str("INTEGER"),
            DataType::BigInt => f.write_str("BIGINT"),
            DataType::Double => f.write_str("DOUBLE"),
            DataType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            DataType::String => f.write_str("STRING"),
            DataType::Bytes => f.write_str("BYTES"),
            DataType::Date => f.write_str("DATE"),
            DataType::Time => f.write_str("TIME"),
            DataType::Timestamp => f.write_str("TIMESTAMP"),
            DataType::Array(inner) => write!(f, "ARRAY<{inner}>"),
            DataType::Map(k, v) => write!(f, "MAP<{k}, {v}>"),
            DataType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{}` {t}", name.replace('`', "``"))?;
                }
                f.write_str(">")
            }
            DataType::Named(name) => write!(f, "`{name}`"),
        }
    }
}
