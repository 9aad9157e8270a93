//! The ksqlDB dialect: statement grammar on top of `sqlparser`'s tokenizer and expression
//! parser, a typed AST whose statements and column references carry source positions,
//! statement splitting and `${var}` substitution. No I/O happens here.

pub mod ast;
mod dialect;
mod error;
mod expr;
#[cfg(test)]
mod fuzz;
mod keywords;
mod parser;
mod split;
mod types;
mod variables;

pub use error::{located, ParseError, ParseErrorKind, Position};
pub use keywords::KEYWORDS;
pub use parser::{parse_statement, parse_statements, parse_statements_at};
pub use split::{split_statements, StatementText};
pub use variables::substitute_variables;
