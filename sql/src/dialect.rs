//! ksqlDB's lexical and expression rules as a `sqlparser` dialect: back-quoted identifiers,
//! `->` for struct fields, `=>` lambdas, `:=` in MAP/STRUCT constructors.

use sqlparser::ast::{
    Expr, Ident, LambdaFunction, LambdaFunctionParameter, LambdaSyntax, OneOrManyWithParens,
};
use sqlparser::dialect::{Dialect, Precedence};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

#[derive(Debug, Default)]
pub struct KsqlDialect;

impl Dialect for KsqlDialect {
    /// `sqlparser` gates `MAP<..>` and `STRUCT<..>` types on the generic dialect; ksqlDB has
    /// both, so this dialect presents itself as that one for such checks.
    fn dialect(&self) -> std::any::TypeId {
        std::any::TypeId::of::<sqlparser::dialect::GenericDialect>()
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '@'
    }

    /// ksqlDB's grammar has identifiers that start with digits (`1R`, `2_COUNT`).
    fn supports_numeric_prefix(&self) -> bool {
        true
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`' || ch == '"'
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if matches!(&parser.peek_token_ref().token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("CAST"))
            && parser.peek_nth_token_ref(1).token == Token::LParen
        {
            parser.next_token();
            return Some(parse_cast(parser));
        }
        let params = lambda_params(parser)?;
        Some(parser.parse_expr().map(|body| {
            Expr::Lambda(LambdaFunction {
                params,
                body: Box::new(body),
                syntax: LambdaSyntax::Arrow,
            })
        }))
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        _precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        match parser.peek_token_ref().token {
            Token::Arrow => {
                parser.next_token();
                // `struct->*` selects every field of the struct.
                if parser.consume_token(&Token::Mul) {
                    return Some(Ok(Expr::BinaryOp {
                        left: Box::new(expr.clone()),
                        op: sqlparser::ast::BinaryOperator::Arrow,
                        right: Box::new(Expr::Identifier(Ident::with_quote('`', "*"))),
                    }));
                }
                Some(parser.parse_identifier().map(|field| Expr::BinaryOp {
                    left: Box::new(expr.clone()),
                    op: sqlparser::ast::BinaryOperator::Arrow,
                    right: Box::new(Expr::Identifier(field)),
                }))
            }
            // `x[i]` after any expression, including `a->b[i]`.
            Token::LBracket => {
                parser.next_token();
                let index = match parser.parse_expr() {
                    Ok(index) => index,
                    Err(e) => return Some(Err(e)),
                };
                if let Err(e) = parser.expect_token(&Token::RBracket) {
                    return Some(Err(e));
                }
                Some(Ok(Expr::CompoundFieldAccess {
                    root: Box::new(expr.clone()),
                    access_chain: vec![sqlparser::ast::AccessExpr::Subscript(
                        sqlparser::ast::Subscript::Index { index },
                    )],
                }))
            }
            _ => None,
        }
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        match parser.peek_token_ref().token {
            Token::Arrow | Token::LBracket => Some(Ok(self.prec_value(Precedence::Period))),
            _ => None,
        }
    }
}

/// Consumes `x =>` or `(x, y) =>` and returns the parameters; leaves the parser untouched
/// (returning `None`) when what follows is not a lambda.
fn lambda_params(parser: &mut Parser) -> Option<OneOrManyWithParens<LambdaFunctionParameter>> {
    let word = |t: &Token| match t {
        Token::Word(w) => Some(LambdaFunctionParameter {
            name: match w.quote_style {
                Some(q) => Ident::with_quote(q, w.value.clone()),
                None => Ident::new(w.value.clone()),
            },
            data_type: None,
        }),
        _ => None,
    };
    let first = parser.peek_token_ref().token.clone();
    if let Some(ident) = word(&first) {
        if parser.peek_nth_token_ref(1).token == Token::RArrow {
            parser.next_token();
            parser.next_token();
            return Some(OneOrManyWithParens::One(ident));
        }
        return None;
    }
    if first != Token::LParen {
        return None;
    }
    let mut idents = Vec::new();
    let mut n = 1;
    loop {
        let ident = word(&parser.peek_nth_token_ref(n).token)?;
        idents.push(ident);
        match parser.peek_nth_token_ref(n + 1).token {
            Token::Comma => n += 2,
            Token::RParen => break,
            _ => return None,
        }
    }
    if parser.peek_nth_token_ref(n + 2).token != Token::RArrow {
        return None;
    }
    for _ in 0..n + 3 {
        parser.next_token();
    }
    Some(OneOrManyWithParens::Many(idents))
}

/// `CAST(expr AS type)` with ksqlDB's type grammar. `sqlparser`'s expression tree has no
/// place for those types, so the type travels as its canonical text in a custom type name,
/// which the conversion reads back.
fn parse_cast(parser: &mut Parser) -> Result<Expr, ParserError> {
    parser.expect_token(&Token::LParen)?;
    let expr = parser.parse_expr()?;
    parser.expect_keyword_is(sqlparser::keywords::Keyword::AS)?;
    // ksqlDB's grammar has no NULL type to cast to: a syntax error at the word.
    let next = parser.peek_token_ref();
    if matches!(&next.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("NULL"))
    {
        let at = next.span.start;
        return Err(ParserError::ParserError(format!(
            "Syntax error at or near 'NULL' at Line: {}, Column: {}",
            at.line, at.column
        )));
    }
    let to = crate::types::parse_type(parser)?;
    parser.expect_token(&Token::RParen)?;
    Ok(Expr::Cast {
        kind: sqlparser::ast::CastKind::Cast,
        expr: Box::new(expr),
        data_type: sqlparser::ast::DataType::Custom(
            sqlparser::ast::ObjectName::from(vec![Ident::new(to.to_string())]),
            vec![],
        ),
        format: None,
    })
}

/// Reads back a type that [`parse_cast`] wrote as text.
pub(crate) fn cast_target(t: &sqlparser::ast::DataType) -> Result<crate::ast::DataType, String> {
    let sqlparser::ast::DataType::Custom(name, _) = t else {
        return Err(format!("unsupported type {t}"));
    };
    let text = name.to_string();
    let tokens = sqlparser::tokenizer::Tokenizer::new(&KsqlDialect, &text)
        .tokenize_with_location()
        .map_err(|e| e.to_string())?;
    let mut parser = Parser::new(&KsqlDialect).with_tokens_with_locations(tokens);
    crate::types::parse_type(&mut parser).map_err(|e| e.to_string())
}
