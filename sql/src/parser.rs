//! The statement grammar, written over `sqlparser`'s token stream; expressions and types are
//! handed to `sqlparser`'s own parsers and converted.

use crate::ast::*;
use crate::dialect::KsqlDialect;
use crate::error::{ParseError, Position};
use crate::expr::{convert_expr, position_of};
use crate::split::{split_statements, StatementText};
use crate::variables::substitute_variables;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::collections::BTreeMap;

/// Splits and parses a script. `DEFINE` and `UNDEFINE` take effect for the statements after
/// them, so `variables` holds the script's variables when this returns.
pub fn parse_statements(
    script: &str,
    variables: &mut BTreeMap<String, String>,
) -> Result<Vec<Statement>, ParseError> {
    parse_statements_at(script, variables, Position { line: 1, column: 1 })
}

/// [`parse_statements`] of a script that starts at `start` of a larger text (a statement
/// of a request run on its own later): positions, and so messages, are the larger text's.
pub fn parse_statements_at(
    script: &str,
    variables: &mut BTreeMap<String, String>,
    start: Position,
) -> Result<Vec<Statement>, ParseError> {
    let mut out = Vec::new();
    for StatementText { text, position } in split_statements(script)? {
        let position = absolute(start, position);
        let text = substitute_variables(&text, variables, position)?;
        let statement = parse_statement(&text, position)?;
        match &statement.kind {
            StatementKind::Define { name, value } => {
                variables.insert(name.clone(), value.clone());
            }
            StatementKind::Undefine { name } => {
                variables.remove(name);
            }
            _ => {}
        }
        out.push(statement);
    }
    Ok(out)
}

/// Parses one statement (without its `;`) that starts at `position` of a script.
pub fn parse_statement(text: &str, position: Position) -> Result<Statement, ParseError> {
    if let Some(inner) = explained_statement(text) {
        let offset = (text.len() - inner.len()) as u64;
        let at = Position {
            line: position.line,
            column: position.column + offset,
        };
        let explained = parse_statement(inner, at)?;
        return Ok(Statement {
            kind: StatementKind::Explain(ExplainTarget::Statement(Box::new(explained))),
            text: text.to_string(),
            position,
        });
    }
    let dialect = KsqlDialect;
    let tokens = Tokenizer::new(&dialect, text)
        .tokenize_with_location()
        .map_err(|e| {
            let at = Position {
                line: e.location.line,
                column: e.location.column,
            };
            ParseError::new(absolute(position, at), e.message)
        })?;
    let mut p = StatementParser {
        p: Parser::new(&dialect).with_tokens_with_locations(tokens),
        base: position,
    };
    let kind = p.statement()?;
    p.expect_end()?;
    Ok(Statement {
        kind,
        text: text.to_string(),
        position,
    })
}

/// The statement `EXPLAIN <statement>` explains, if `text` is one.
fn explained_statement(text: &str) -> Option<&str> {
    let trimmed = text.trim_start();
    let (first, rest) = trimmed.split_once(char::is_whitespace)?;
    if !first.eq_ignore_ascii_case("EXPLAIN") {
        return None;
    }
    let rest = rest.trim_start();
    let next = rest.split_whitespace().next()?;
    ["SELECT", "CREATE", "INSERT"]
        .iter()
        .any(|w| next.eq_ignore_ascii_case(w))
        .then_some(rest)
}

/// A position inside a statement, made relative to the whole script.
fn absolute(base: Position, at: Position) -> Position {
    if at.line <= 1 {
        Position {
            line: base.line,
            column: base.column + at.column.saturating_sub(1),
        }
    } else {
        Position {
            line: base.line + at.line - 1,
            column: at.column,
        }
    }
}

struct StatementParser<'a> {
    p: Parser<'a>,
    base: Position,
}

const CLAUSE_WORDS: &[&str] = &[
    "FROM",
    "WHERE",
    "GROUP",
    "PARTITION",
    "HAVING",
    "EMIT",
    "LIMIT",
    "WINDOW",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "ON",
    "WITHIN",
];

impl StatementParser<'_> {
    fn here(&self) -> Position {
        self.token_position(self.p.peek_token_ref())
    }

    fn token_position(&self, t: &TokenWithSpan) -> Position {
        if t.token == Token::EOF {
            return self.end_position();
        }
        absolute(self.base, position_of(t.span))
    }

    fn end_position(&self) -> Position {
        // The EOF token has no location; point just past the last real token.
        let mut n = 0;
        let mut last = None;
        loop {
            let t = self.p.peek_nth_token_ref(n);
            if t.token == Token::EOF {
                break;
            }
            last = Some(t.span.end);
            n += 1;
        }
        let end = last.unwrap_or(sqlparser::tokenizer::Location { line: 1, column: 1 });
        match self.p.get_current_index() {
            0 if last.is_none() => self.base,
            _ => absolute(
                self.base,
                Position {
                    line: end.line.max(1),
                    column: end.column,
                },
            ),
        }
    }

    fn error<T>(&self, expected: &str) -> Result<T, ParseError> {
        let found = self.p.peek_token_ref();
        let found_text = match &found.token {
            Token::EOF => "end of statement".to_string(),
            t => format!("'{t}'"),
        };
        Err(ParseError::new(
            self.here(),
            format!("expected {expected}, found {found_text}"),
        ))
    }

    /// Turns a `sqlparser` error into ours, reading the position it embeds in its text.
    fn sp_error(&self, e: ParserError) -> ParseError {
        let text = e.to_string();
        let text = text.strip_prefix("sql parser error: ").unwrap_or(&text);
        if let Some((message, at)) = text.rsplit_once(" at Line: ") {
            if let Some((line, column)) = at.split_once(", Column: ") {
                if let (Ok(line), Ok(column)) = (line.trim().parse(), column.trim().parse()) {
                    let mut message = message.replace("Expected: ", "expected ");
                    let at = absolute(self.base, Position { line, column });
                    // ksqlDB's "at or near" errors end with their place.
                    if message.starts_with("Syntax error at or near") {
                        message = format!("{message} at line {}:{}", at.line, at.column);
                    }
                    return ParseError::new(at, message);
                }
            }
        }
        ParseError::new(self.here(), text.to_string())
    }

    fn peek_word(&self, n: usize) -> Option<&str> {
        match &self.p.peek_nth_token_ref(n).token {
            Token::Word(w) if w.quote_style.is_none() => Some(&w.value),
            _ => None,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        self.peek_word(0)
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    fn eat_words(&mut self, words: &[&str]) -> bool {
        let all = words
            .iter()
            .enumerate()
            .all(|(i, w)| self.peek_word(i).is_some_and(|v| v.eq_ignore_ascii_case(w)));
        if all {
            for _ in words {
                self.p.next_token();
            }
        }
        all
    }

    fn expect_word(&mut self, word: &str) -> Result<(), ParseError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            self.error(word)
        }
    }

    fn eat_token(&mut self, token: &Token) -> bool {
        self.p.consume_token(token)
    }

    fn expect_token(&mut self, token: &Token) -> Result<(), ParseError> {
        if self.eat_token(token) {
            Ok(())
        } else {
            self.error(&format!("'{token}'"))
        }
    }

    fn expect_end(&mut self) -> Result<(), ParseError> {
        self.eat_token(&Token::SemiColon);
        if self.p.peek_token_ref().token == Token::EOF {
            Ok(())
        } else {
            self.error("end of statement")
        }
    }

    fn identifier(&mut self) -> Result<String, ParseError> {
        match &self.p.peek_token_ref().token {
            Token::Word(w) => {
                let name = match w.quote_style {
                    Some(_) => w.value.clone(),
                    None => w.value.to_uppercase(),
                };
                self.p.next_token();
                Ok(name)
            }
            _ => self.error("an identifier"),
        }
    }

    fn string_literal(&mut self) -> Result<String, ParseError> {
        match &self.p.peek_token_ref().token {
            Token::SingleQuotedString(s) => {
                let s = s.clone();
                self.p.next_token();
                Ok(s)
            }
            _ => self.error("a quoted string"),
        }
    }

    fn statement(&mut self) -> Result<StatementKind, ParseError> {
        if self.eat_word("CREATE") {
            return self.create();
        }
        if self.eat_word("INSERT") {
            return self.insert();
        }
        if self.is_word("SELECT") {
            return Ok(StatementKind::Query(self.query()?));
        }
        if self.eat_word("DROP") {
            return self.drop();
        }
        if self.eat_word("ALTER") {
            return self.alter();
        }
        if self.eat_word("SET") {
            let name = self.string_literal()?;
            self.expect_token(&Token::Eq)?;
            let value = self.string_literal()?;
            return Ok(StatementKind::Set { name, value });
        }
        if self.eat_word("UNSET") {
            let name = self.string_literal()?;
            return Ok(StatementKind::Unset { name });
        }
        if self.eat_word("DEFINE") {
            let name = self.variable_name()?;
            self.expect_token(&Token::Eq)?;
            let value = self.string_literal()?;
            return Ok(StatementKind::Define { name, value });
        }
        if self.eat_word("UNDEFINE") {
            let name = self.variable_name()?;
            return Ok(StatementKind::Undefine { name });
        }
        if self.eat_word("ASSERT") {
            return self.assert();
        }
        if self.eat_word("SHOW") || self.eat_word("LIST") {
            let kind = if self.eat_word("STREAMS") {
                ShowKind::Streams
            } else if self.eat_word("TABLES") {
                ShowKind::Tables
            } else if self.eat_word("QUERIES") {
                ShowKind::Queries {
                    extended: self.is_word("EXTENDED"),
                }
            } else if self.eat_word("PROPERTIES") {
                ShowKind::Properties
            } else if self.eat_word("VARIABLES") {
                ShowKind::Variables
            } else if self.eat_word("TOPICS") {
                ShowKind::Topics {
                    all: false,
                    extended: self.is_word("EXTENDED"),
                }
            } else if self.eat_words(&["ALL", "TOPICS"]) {
                ShowKind::Topics {
                    all: true,
                    extended: self.is_word("EXTENDED"),
                }
            } else if self.eat_word("FUNCTIONS") {
                ShowKind::Functions
            } else if self.eat_word("TYPES") {
                ShowKind::Types
            } else if self.eat_word("USAGE") {
                ShowKind::Usage
            } else if self.eat_words(&["CONNECTOR", "PLUGINS"]) {
                ShowKind::ConnectorPlugins
            } else if self.eat_word("CONNECTORS") {
                ShowKind::Connectors(None)
            } else if self.eat_words(&["SINK", "CONNECTORS"]) {
                ShowKind::Connectors(Some(ConnectorKind::Sink))
            } else if self.eat_words(&["SOURCE", "CONNECTORS"]) {
                ShowKind::Connectors(Some(ConnectorKind::Source))
            } else {
                return self.error(
                    "STREAMS, TABLES, QUERIES, PROPERTIES, VARIABLES, TOPICS, FUNCTIONS, TYPES, CONNECTORS, CONNECTOR PLUGINS or USAGE",
                );
            };
            let extended = self.eat_word("EXTENDED");
            return Ok(match kind {
                ShowKind::Streams if extended => StatementKind::DescribeAll {
                    kind: SourceKind::Stream,
                    extended,
                },
                ShowKind::Tables if extended => StatementKind::DescribeAll {
                    kind: SourceKind::Table,
                    extended,
                },
                kind => StatementKind::Show(kind),
            });
        }
        if self.eat_word("EXPLAIN") {
            // EXPLAIN of a statement is parsed in parse_statement.
            let query_id = self.identifier()?;
            return Ok(StatementKind::Explain(ExplainTarget::Query(query_id)));
        }
        if self.eat_word("PRINT") {
            let topic = self.identifier_or_string()?;
            let mut print = Print {
                topic,
                from_beginning: false,
                interval: 1,
                limit: None,
            };
            loop {
                if self.eat_words(&["FROM", "BEGINNING"]) {
                    print.from_beginning = true;
                } else if self.eat_word("INTERVAL") || self.eat_word("SAMPLE") {
                    print.interval = self.whole_number()?.max(1);
                } else if self.eat_word("LIMIT") {
                    print.limit = Some(self.whole_number()?);
                } else {
                    break;
                }
            }
            return Ok(StatementKind::Print(print));
        }
        if self.eat_word("DESCRIBE") {
            if self.eat_word("FUNCTION") {
                let name = self.identifier()?;
                return Ok(StatementKind::DescribeFunction { name });
            }
            if self.eat_word("CONNECTOR") {
                let name = self.identifier()?;
                return Ok(StatementKind::DescribeConnector { name });
            }
            for (word, kind) in [
                ("STREAMS", SourceKind::Stream),
                ("TABLES", SourceKind::Table),
            ] {
                if self.eat_word(word) {
                    let extended = self.eat_word("EXTENDED");
                    return Ok(StatementKind::DescribeAll { kind, extended });
                }
            }
            let name = self.identifier()?;
            let extended = self.eat_word("EXTENDED");
            return Ok(StatementKind::Describe { name, extended });
        }
        for (word, running) in [("PAUSE", false), ("RESUME", true)] {
            if self.eat_word(word) {
                let query_id = if self.eat_word("ALL") {
                    None
                } else {
                    Some(self.identifier()?)
                };
                return Ok(StatementKind::SetRunning { query_id, running });
            }
        }
        if self.eat_word("TERMINATE") {
            if self.eat_word("ALL") {
                return Ok(StatementKind::Terminate { query_id: None });
            }
            let query_id = self.identifier()?;
            return Ok(StatementKind::Terminate {
                query_id: Some(query_id),
            });
        }
        if self.is_word("RUN") {
            return Err(ParseError::new(
                self.here(),
                "Syntax Error\nUnknown statement 'RUN' (RUN SCRIPT is a command of the shell)",
            ));
        }
        self.error(
            "CREATE, INSERT, SELECT, DROP, ALTER, SET, UNSET, DEFINE, UNDEFINE, SHOW, LIST, DESCRIBE, EXPLAIN, PRINT, TERMINATE or ASSERT",
        )
    }

    fn assert(&mut self) -> Result<StatementKind, ParseError> {
        let exists = !self.eat_words(&["NOT", "EXISTS"]);
        if self.eat_word("TOPIC") {
            let topic = self.identifier_or_string()?;
            let properties = if self.eat_word("WITH") {
                self.properties()?
            } else {
                BTreeMap::new()
            };
            let timeout_ms = self.assert_timeout()?;
            return Ok(StatementKind::AssertTopic {
                topic,
                exists,
                properties,
                timeout_ms,
            });
        }
        if self.eat_word("SCHEMA") {
            let subject = if self.eat_word("SUBJECT") {
                Some(self.identifier_or_string()?)
            } else {
                None
            };
            let id = if self.eat_word("ID") {
                match &self.p.peek_token_ref().token {
                    Token::Number(n, _) => match n.parse::<i64>() {
                        Ok(n) => {
                            self.p.next_token();
                            Some(n)
                        }
                        Err(_) => return self.error("a schema id"),
                    },
                    _ => return self.error("a schema id"),
                }
            } else {
                None
            };
            if subject.is_none() && id.is_none() {
                return Err(ParseError::new(
                    self.here(),
                    "ASSERT SCHEMA statements must include a subject name or an id",
                ));
            }
            let timeout_ms = self.assert_timeout()?;
            return Ok(StatementKind::AssertSchema {
                subject,
                id,
                exists,
                timeout_ms,
            });
        }
        let here = self.here();
        let found = self.p.peek_token_ref().token.to_string();
        Err(ParseError::new(
            here,
            format!(
                "Syntax error at or near '{found}' at line {}:{}",
                here.line, here.column
            ),
        ))
    }

    fn assert_timeout(&mut self) -> Result<Option<i64>, ParseError> {
        if self.eat_word("TIMEOUT") {
            Ok(Some(self.duration()?))
        } else {
            Ok(None)
        }
    }

    fn whole_number(&mut self) -> Result<u64, ParseError> {
        match &self.p.peek_token_ref().token {
            Token::Number(n, _) => match n.parse::<u64>() {
                Ok(n) => {
                    self.p.next_token();
                    Ok(n)
                }
                Err(_) => self.error("a whole number"),
            },
            _ => self.error("a whole number"),
        }
    }

    /// A name, as an identifier or a quoted string (topics and subjects may hold dots).
    fn identifier_or_string(&mut self) -> Result<String, ParseError> {
        if let Token::SingleQuotedString(text) = &self.p.peek_token_ref().token {
            let text = text.clone();
            self.p.next_token();
            return Ok(text);
        }
        self.identifier()
    }

    fn variable_name(&mut self) -> Result<String, ParseError> {
        match &self.p.peek_token_ref().token {
            Token::Word(w) => {
                let name = w.value.to_uppercase();
                self.p.next_token();
                Ok(name)
            }
            _ => self.error("a variable name"),
        }
    }

    fn source_kind(&mut self) -> Result<SourceKind, ParseError> {
        if self.eat_word("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_word("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.error("STREAM or TABLE")
        }
    }

    fn create(&mut self) -> Result<StatementKind, ParseError> {
        if self.eat_word("TYPE") {
            let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
            let name = self.identifier()?;
            self.expect_word("AS")?;
            let data_type = self.data_type()?;
            return Ok(StatementKind::CreateType {
                name,
                data_type,
                if_not_exists,
            });
        }
        for (words, kind) in [
            (["SINK", "CONNECTOR"], ConnectorKind::Sink),
            (["SOURCE", "CONNECTOR"], ConnectorKind::Source),
        ] {
            if self.eat_words(&words) {
                return self.create_connector(kind);
            }
        }
        let or_replace = self.eat_words(&["OR", "REPLACE"]);
        let is_source = self.eat_word("SOURCE");
        let kind = self.source_kind()?;
        let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
        let name = self.identifier()?;
        let columns = if self.p.peek_token_ref().token == Token::LParen {
            Some(self.column_defs(kind)?)
        } else {
            None
        };
        let properties = if self.eat_word("WITH") {
            self.properties()?
        } else {
            BTreeMap::new()
        };
        if self.eat_word("AS") {
            if columns.is_some() {
                return Err(ParseError::new(
                    self.here(),
                    "a CREATE ... AS SELECT statement cannot declare columns",
                ));
            }
            if is_source {
                return Err(ParseError::new(
                    self.here(),
                    "CREATE SOURCE cannot be used with AS SELECT",
                ));
            }
            let query = self.query()?;
            return Ok(StatementKind::CreateAsSelect(CreateAsSelect {
                kind,
                name,
                or_replace,
                if_not_exists,
                properties,
                query,
            }));
        }
        Ok(StatementKind::CreateSource(CreateSource {
            kind,
            name,
            or_replace,
            if_not_exists,
            is_source,
            columns: columns.unwrap_or_default(),
            properties,
        }))
    }

    fn column_defs(&mut self, kind: SourceKind) -> Result<Vec<ColumnDef>, ParseError> {
        self.expect_token(&Token::LParen)?;
        let mut columns = Vec::new();
        loop {
            let position = self.here();
            let name = self.identifier()?;
            let data_type = self.data_type()?;
            let (mut role, mut primary_key, mut header_key) = (ColumnRole::Value, false, None);
            if self.eat_words(&["PRIMARY", "KEY"]) {
                if kind == SourceKind::Stream {
                    return Err(ParseError::semantic(
                        position,
                        format!(
                            "Column `{name}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints."
                        ),
                    ));
                }
                role = ColumnRole::Key;
                primary_key = true;
            } else if self.eat_word("KEY") {
                if kind == SourceKind::Table {
                    return Err(ParseError::semantic(
                        position,
                        format!(
                            "Column `{name}` is a 'KEY' column: please use 'PRIMARY KEY' for tables.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints."
                        ),
                    ));
                }
                role = ColumnRole::Key;
            } else if self.eat_word("HEADERS") {
                role = ColumnRole::Headers;
            } else if self.eat_word("HEADER") {
                self.expect_token(&Token::LParen)?;
                header_key = Some(self.string_literal()?);
                self.expect_token(&Token::RParen)?;
                role = ColumnRole::Headers;
            }
            columns.push(ColumnDef {
                name,
                data_type,
                role,
                primary_key,
                header_key,
                position,
            });
            if self.eat_token(&Token::RParen) {
                return Ok(columns);
            }
            self.expect_token(&Token::Comma)?;
        }
    }

    fn data_type(&mut self) -> Result<DataType, ParseError> {
        let position = self.here();
        crate::types::parse_type(&mut self.p).map_err(|e| {
            let mut err = self.sp_error(e);
            if err.position == self.here() {
                err.position = position;
            }
            err
        })
    }

    fn properties(&mut self) -> Result<Properties, ParseError> {
        self.expect_token(&Token::LParen)?;
        let mut props = BTreeMap::new();
        loop {
            let position = self.here();
            let key = self.identifier()?.to_uppercase();
            self.expect_token(&Token::Eq)?;
            let value = match self.expr()? {
                Expr::Literal(l) => l,
                _ => {
                    return Err(ParseError::new(
                        position,
                        format!("the value of property {key} must be a literal"),
                    ))
                }
            };
            if props.insert(key.clone(), value).is_some() {
                return Err(ParseError::new(
                    position,
                    format!("Duplicate property: {key}"),
                ));
            }
            if self.eat_token(&Token::RParen) {
                return Ok(props);
            }
            self.expect_token(&Token::Comma)?;
        }
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let position = self.here();
        let parsed = self.p.parse_expr().map_err(|e| self.sp_error(e))?;
        self.converted(&parsed, position)
    }

    /// GROUP BY's expressions: `a, b`, or `(a, b)` as ksqlDB's grammar also writes them.
    fn grouping_exprs(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut out = Vec::new();
        loop {
            let position = self.here();
            let parsed = self.p.parse_expr().map_err(|e| self.sp_error(e))?;
            match &parsed {
                sqlparser::ast::Expr::Tuple(items) => {
                    for item in items {
                        out.push(self.converted(item, position)?);
                    }
                }
                _ => out.push(self.converted(&parsed, position)?),
            }
            if !self.eat_token(&Token::Comma) {
                return Ok(out);
            }
        }
    }

    fn converted(
        &self,
        parsed: &sqlparser::ast::Expr,
        position: Position,
    ) -> Result<Expr, ParseError> {
        let expr = convert_expr(parsed).map_err(|e| {
            let at = e
                .position
                .map(|p| absolute(self.base, p))
                .unwrap_or(position);
            if e.message.starts_with("Invalid numeric literal")
                || e.message.starts_with("Number overflows DOUBLE")
            {
                ParseError::literal(at, e.message)
            } else {
                ParseError::new(at, e.message)
            }
        })?;
        // Places in the script, as messages give them, not in the statement.
        let base = self.base;
        Ok(expr.map_positions(&|p| absolute(base, p)))
    }

    fn expr_list(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut out = vec![self.expr()?];
        while self.eat_token(&Token::Comma) {
            out.push(self.expr()?);
        }
        Ok(out)
    }

    fn insert(&mut self) -> Result<StatementKind, ParseError> {
        self.expect_word("INTO")?;
        let target_position = self.here();
        let target = self.identifier()?;
        let mut columns = None;
        if self.eat_token(&Token::LParen) {
            let mut names = vec![self.identifier()?];
            while self.eat_token(&Token::Comma) {
                names.push(self.identifier()?);
            }
            self.expect_token(&Token::RParen)?;
            columns = Some(names);
        }
        if self.eat_word("VALUES") {
            self.expect_token(&Token::LParen)?;
            let values = self.expr_list()?;
            self.expect_token(&Token::RParen)?;
            return Ok(StatementKind::InsertValues(InsertValues {
                target,
                columns,
                values,
            }));
        }
        if columns.is_some() {
            return self.error("VALUES");
        }
        let properties = if self.eat_word("WITH") {
            self.properties()?
        } else {
            BTreeMap::new()
        };
        if !self.is_word("SELECT") {
            return self.error("VALUES or SELECT");
        }
        let query = self.query()?;
        Ok(StatementKind::InsertInto(InsertInto {
            target,
            target_position,
            properties,
            query,
        }))
    }

    fn create_connector(&mut self, kind: ConnectorKind) -> Result<StatementKind, ParseError> {
        let if_not_exists = self.eat_words(&["IF", "NOT", "EXISTS"]);
        let name = self.identifier()?;
        self.expect_word("WITH")?;
        self.expect_token(&Token::LParen)?;
        let mut config = BTreeMap::new();
        loop {
            let position = self.here();
            let key = match &self.p.peek_token_ref().token {
                Token::SingleQuotedString(s) => s.clone(),
                Token::Word(w) => w.value.clone(),
                _ => return self.error("a property name"),
            };
            self.p.next_token();
            self.expect_token(&Token::Eq)?;
            let value = match self.expr()? {
                Expr::Literal(Literal::Null) => {
                    return Err(ParseError::new(
                        position,
                        format!("the value of property {key} cannot be NULL"),
                    ))
                }
                Expr::Literal(l) => l.as_property_text(),
                _ => {
                    return Err(ParseError::new(
                        position,
                        format!("the value of property {key} must be a literal"),
                    ))
                }
            };
            if config.insert(key.clone(), value).is_some() {
                return Err(ParseError::new(
                    position,
                    format!("Duplicate property: {key}"),
                ));
            }
            if self.eat_token(&Token::RParen) {
                break;
            }
            self.expect_token(&Token::Comma)?;
        }
        Ok(StatementKind::CreateConnector(CreateConnector {
            kind,
            name,
            if_not_exists,
            config,
        }))
    }

    fn alter(&mut self) -> Result<StatementKind, ParseError> {
        if self.eat_word("SYSTEM") {
            let name = self.string_literal()?;
            self.expect_token(&Token::Eq)?;
            let value = self.string_literal()?;
            return Ok(StatementKind::AlterSystem { name, value });
        }
        let kind = self.source_kind()?;
        let name = self.identifier()?;
        let mut columns = Vec::new();
        loop {
            self.expect_word("ADD")?;
            self.eat_word("COLUMN");
            let column = self.identifier()?;
            columns.push((column, self.data_type()?));
            // The additions are separated by commas, or follow one another.
            if !self.eat_token(&Token::Comma) && !self.is_word("ADD") {
                break;
            }
        }
        Ok(StatementKind::Alter {
            kind,
            name,
            columns,
        })
    }

    fn drop(&mut self) -> Result<StatementKind, ParseError> {
        if self.eat_word("CONNECTOR") {
            let if_exists = self.eat_words(&["IF", "EXISTS"]);
            let name = self.identifier()?;
            return Ok(StatementKind::DropConnector { name, if_exists });
        }
        if self.eat_word("TYPE") {
            let if_exists = self.eat_words(&["IF", "EXISTS"]);
            let name = self.identifier()?;
            return Ok(StatementKind::DropType { name, if_exists });
        }
        let kind = self.source_kind()?;
        let if_exists = self.eat_words(&["IF", "EXISTS"]);
        let name = self.identifier()?;
        let delete_topic = self.eat_words(&["DELETE", "TOPIC"]);
        Ok(StatementKind::Drop(Drop {
            kind,
            name,
            if_exists,
            delete_topic,
        }))
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.expect_word("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.eat_token(&Token::Comma) {
            select.push(self.select_item()?);
        }
        self.expect_word("FROM")?;
        let position = self.here();
        let name = self.identifier()?;
        let alias = self.alias()?;
        let from = Relation {
            name,
            alias,
            position,
        };
        let mut joins = Vec::new();
        while let Some(kind) = self.join_kind()? {
            joins.push(self.join(kind)?);
        }
        let window = if self.eat_word("WINDOW") {
            Some(self.window()?)
        } else {
            None
        };
        let filter = if self.eat_word("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let group_by = if self.eat_words(&["GROUP", "BY"]) {
            self.grouping_exprs()?
        } else {
            vec![]
        };
        let partition_by = if self.eat_words(&["PARTITION", "BY"]) {
            let clause_ends =
                matches!(self.p.peek_token_ref().token, Token::EOF | Token::SemiColon)
                    || ["HAVING", "EMIT", "LIMIT"].iter().any(|w| self.is_word(w))
                    || (self.p.peek_token_ref().token == Token::LParen
                        && self.p.peek_nth_token(1).token == Token::RParen);
            if clause_ends {
                return Err(ParseError::new(
                    self.here(),
                    "PARTITION BY requires at least one expression",
                ));
            }
            let position = self.here();
            let exprs = self.expr_list()?;
            // ksqlDB's grammar partitions by value expressions: a bare condition is not one.
            if exprs.iter().any(|e| {
                matches!(
                    e,
                    Expr::Binary {
                        op: BinaryOp::And | BinaryOp::Or,
                        ..
                    } | Expr::Not(_)
                )
            }) {
                return Err(ParseError::new(
                    position,
                    "PARTITION BY takes value expressions, not conditions (AND, OR, NOT)",
                ));
            }
            exprs
        } else {
            vec![]
        };
        let having = if self.eat_word("HAVING") {
            Some(self.expr()?)
        } else {
            None
        };
        let emit = if self.eat_word("EMIT") {
            if self.eat_word("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat_word("FINAL") {
                Some(Emit::Final)
            } else {
                return self.error("CHANGES or FINAL");
            }
        } else {
            None
        };
        let limit = if self.eat_word("LIMIT") {
            Some(self.whole_number()?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            joins,
            filter,
            partition_by,
            group_by,
            having,
            emit,
            limit,
            window,
        })
    }

    fn window(&mut self) -> Result<Window, ParseError> {
        // A window may be named: `WINDOW w TUMBLING (...)`.
        if !["TUMBLING", "HOPPING", "SESSION"]
            .iter()
            .any(|w| self.is_word(w))
        {
            self.identifier()?;
        }
        let kind = if self.eat_word("TUMBLING") {
            0
        } else if self.eat_word("HOPPING") {
            1
        } else if self.eat_word("SESSION") {
            2
        } else {
            return self.error("TUMBLING, HOPPING or SESSION");
        };
        self.expect_token(&Token::LParen)?;
        let (mut size, mut advance, mut retention, mut grace) = (None, None, None, None);
        if kind == 2 {
            size = Some(self.duration()?);
            if !self.eat_token(&Token::Comma) {
                self.expect_token(&Token::RParen)?;
                return Ok(Window {
                    kind: WindowKind::Session {
                        gap: size.unwrap_or_default(),
                    },
                    retention: None,
                    grace: None,
                });
            }
        }
        loop {
            if kind != 2 && size.is_none() {
                self.expect_word("SIZE")?;
                size = Some(self.duration()?);
            } else if kind == 1 && advance.is_none() && self.eat_words(&["ADVANCE", "BY"]) {
                advance = Some(self.duration()?);
            } else if retention.is_none() && self.eat_word("RETENTION") {
                retention = Some(self.duration()?);
            } else if grace.is_none() && self.eat_words(&["GRACE", "PERIOD"]) {
                grace = Some(self.duration()?);
            } else if self.eat_token(&Token::RParen) {
                break;
            } else {
                return self.error("ADVANCE BY, RETENTION, GRACE PERIOD or )");
            }
            if !self.eat_token(&Token::Comma) {
                self.expect_token(&Token::RParen)?;
                break;
            }
        }
        let size = size.unwrap_or_default();
        let kind = match kind {
            0 => WindowKind::Tumbling { size },
            1 => WindowKind::Hopping {
                size,
                advance: match advance {
                    Some(a) => a,
                    None => return self.error("ADVANCE BY"),
                },
            },
            _ => WindowKind::Session { gap: size },
        };
        Ok(Window {
            kind,
            retention,
            grace,
        })
    }

    /// The words that start a join, if they come next.
    fn join_kind(&mut self) -> Result<Option<JoinKind>, ParseError> {
        let kind = if self.eat_word("JOIN") {
            return Ok(Some(JoinKind::Inner));
        } else if self.eat_word("INNER") {
            JoinKind::Inner
        } else if self.eat_word("LEFT") {
            JoinKind::Left
        } else if self.eat_word("RIGHT") {
            JoinKind::Right
        } else if self.eat_word("FULL") {
            JoinKind::Outer
        } else {
            return Ok(None);
        };
        if kind != JoinKind::Inner {
            self.eat_word("OUTER");
        }
        self.expect_word("JOIN")?;
        Ok(Some(kind))
    }

    fn join(&mut self, kind: JoinKind) -> Result<Join, ParseError> {
        let position = self.here();
        let name = self.identifier()?;
        let alias = self.alias()?;
        let within = if self.eat_word("WITHIN") {
            let (before, after) = if self.eat_token(&Token::LParen) {
                let before = self.duration()?;
                self.expect_token(&Token::Comma)?;
                let after = self.duration()?;
                self.expect_token(&Token::RParen)?;
                (before, after)
            } else {
                let size = self.duration()?;
                (size, size)
            };
            let grace = if self.eat_words(&["GRACE", "PERIOD"]) {
                Some(self.duration()?)
            } else {
                None
            };
            Some(JoinWithin {
                before,
                after,
                grace,
            })
        } else {
            None
        };
        self.expect_word("ON")?;
        let on = self.expr()?;
        Ok(Join {
            kind,
            relation: Relation {
                name,
                alias,
                position,
            },
            within,
            on,
        })
    }

    /// `30 SECONDS`: a whole number and a time unit, in milliseconds.
    fn duration(&mut self) -> Result<i64, ParseError> {
        let n = match &self.p.peek_token_ref().token {
            Token::Number(n, _) => match n.parse::<i64>() {
                Ok(n) => n,
                Err(_) => return self.error("a whole number"),
            },
            _ => return self.error("a duration"),
        };
        self.p.next_token();
        let unit = match &self.p.peek_token_ref().token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => return self.error("a time unit"),
        };
        let millis = match unit.trim_end_matches('S') {
            "MILLISECOND" => 1,
            "SECOND" => 1000,
            "MINUTE" => 60_000,
            "HOUR" => 3_600_000,
            "DAY" => 86_400_000,
            _ => return self.error("a time unit"),
        };
        self.p.next_token();
        Ok(n * millis)
    }

    fn select_item(&mut self) -> Result<SelectItem, ParseError> {
        if self.eat_token(&Token::Mul) {
            return Ok(SelectItem::Wildcard { qualifier: None });
        }
        if matches!(self.p.peek_token_ref().token, Token::Word(_))
            && self.p.peek_nth_token_ref(1).token == Token::Period
            && self.p.peek_nth_token_ref(2).token == Token::Mul
        {
            let qualifier = self.identifier()?;
            self.p.next_token();
            self.p.next_token();
            return Ok(SelectItem::Wildcard {
                qualifier: Some(qualifier),
            });
        }
        let expr = self.expr()?;
        let alias = self.alias()?;
        Ok(SelectItem::Expr { expr, alias })
    }

    /// `AS name`, or a bare name that does not start the next clause.
    fn alias(&mut self) -> Result<Option<String>, ParseError> {
        if self.eat_word("AS") {
            return Ok(Some(self.identifier()?));
        }
        match &self.p.peek_token_ref().token {
            Token::Word(w) if w.quote_style.is_some() || !is_clause_word(&w.value) => {
                Ok(Some(self.identifier()?))
            }
            _ => Ok(None),
        }
    }
}

fn is_clause_word(w: &str) -> bool {
    CLAUSE_WORDS.iter().any(|c| c.eq_ignore_ascii_case(w))
}
