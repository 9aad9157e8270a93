//! The typed statement tree. Identifiers are already case-folded by ksqlDB's rules:
//! unquoted names are upper-cased, back-quoted names are kept as written.

use crate::error::Position;
use std::collections::BTreeMap;

/// One parsed statement with its text and where it started.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub kind: StatementKind,
    /// The statement text after variable substitution, without the trailing `;`.
    pub text: String,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StatementKind {
    CreateSource(CreateSource),
    CreateAsSelect(CreateAsSelect),
    InsertValues(InsertValues),
    InsertInto(InsertInto),
    Query(Query),
    Drop(Drop),
    Set {
        name: String,
        value: String,
    },
    Unset {
        name: String,
    },
    /// `ALTER SYSTEM 'name'='value'`: a property for every query of the service.
    AlterSystem {
        name: String,
        value: String,
    },
    Define {
        name: String,
        value: String,
    },
    /// `CREATE TYPE [IF NOT EXISTS] name AS type`
    CreateType {
        name: String,
        data_type: DataType,
        if_not_exists: bool,
    },
    /// `ALTER STREAM|TABLE name ADD [COLUMN] name type [, ADD [COLUMN] name type ...]`:
    /// value columns added to a source that a CREATE (not a query) declared.
    Alter {
        kind: SourceKind,
        name: String,
        columns: Vec<(String, DataType)>,
    },
    /// `DROP TYPE [IF EXISTS] name`
    DropType {
        name: String,
        if_exists: bool,
    },
    Undefine {
        name: String,
    },
    /// `SHOW | LIST STREAMS | TABLES | QUERIES | PROPERTIES | VARIABLES [EXTENDED]`
    Show(ShowKind),
    /// `DESCRIBE source [EXTENDED]`
    Describe {
        name: String,
        extended: bool,
    },
    /// `DESCRIBE STREAMS|TABLES [EXTENDED]`, and `SHOW STREAMS|TABLES EXTENDED` (which is
    /// `DESCRIBE ... EXTENDED`): every stream's or table's description.
    DescribeAll {
        kind: SourceKind,
        extended: bool,
    },
    /// `DESCRIBE FUNCTION name`
    DescribeFunction {
        name: String,
    },
    /// `EXPLAIN query_id` or `EXPLAIN statement`
    Explain(ExplainTarget),
    /// `PRINT topic [FROM BEGINNING] [INTERVAL n] [LIMIT n]`
    Print(Print),
    /// `TERMINATE query_id` or `TERMINATE ALL` (`None`).
    Terminate {
        query_id: Option<String>,
    },
    /// `PAUSE query_id | ALL` (`running` false) or `RESUME query_id | ALL`.
    SetRunning {
        query_id: Option<String>,
        running: bool,
    },
    /// `ASSERT [NOT EXISTS] TOPIC name [WITH (...)] [TIMEOUT n unit]`
    AssertTopic {
        topic: String,
        exists: bool,
        properties: Properties,
        timeout_ms: Option<i64>,
    },
    /// `CREATE SINK|SOURCE CONNECTOR [IF NOT EXISTS] name WITH (...)`
    CreateConnector(CreateConnector),
    /// `DROP CONNECTOR [IF EXISTS] name`
    DropConnector {
        name: String,
        if_exists: bool,
    },
    /// `DESCRIBE CONNECTOR name`
    DescribeConnector {
        name: String,
    },
    /// `ASSERT [NOT EXISTS] SCHEMA [SUBJECT name] [ID n] [TIMEOUT n unit]`
    AssertSchema {
        subject: Option<String>,
        id: Option<i64>,
        exists: bool,
        timeout_ms: Option<i64>,
    },
}

impl StatementKind {
    /// Queries and PRINT answer with rows, streamed from endpoints of their own; every
    /// other statement answers once.
    pub fn answers_with_rows(&self) -> bool {
        matches!(self, StatementKind::Query(_) | StatementKind::Print(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowKind {
    Streams,
    Tables,
    /// `SHOW QUERIES [EXTENDED]`: EXTENDED describes each query as EXPLAIN does.
    Queries {
        extended: bool,
    },
    Properties,
    Variables,
    /// `SHOW [ALL] TOPICS`: ALL includes internal topics (named with a leading `_`).
    Topics {
        all: bool,
        /// EXTENDED also counts each topic's consumers and consumer groups.
        extended: bool,
    },
    Functions,
    Types,
    /// `SHOW [SINK|SOURCE] CONNECTORS`: `None` lists both kinds.
    Connectors(Option<ConnectorKind>),
    /// `SHOW CONNECTOR PLUGINS`
    ConnectorPlugins,
    /// `SHOW USAGE`: what each query moved and held (a Brook extension).
    Usage,
}

/// Which way a connector moves records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    Source,
    Sink,
}

impl ConnectorKind {
    /// As Kafka Connect names it (`source`, `sink`).
    pub fn name(self) -> &'static str {
        match self {
            ConnectorKind::Source => "source",
            ConnectorKind::Sink => "sink",
        }
    }
}

/// `CREATE SINK|SOURCE CONNECTOR`. Property names keep their case (Kafka Connect's
/// configuration names are case-sensitive); values are their text.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateConnector {
    pub kind: ConnectorKind,
    pub name: String,
    pub if_not_exists: bool,
    pub config: BTreeMap<String, String>,
}

/// What `EXPLAIN` describes: a running query, or a statement not run.
#[derive(Debug, Clone, PartialEq)]
pub enum ExplainTarget {
    Query(String),
    Statement(Box<Statement>),
}

/// `PRINT topic`: the topic's records as they come (from the start with FROM BEGINNING),
/// every `interval`-th one, up to `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Print {
    pub topic: String,
    pub from_beginning: bool,
    pub interval: u64,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Stream,
    Table,
}

impl SourceKind {
    pub fn keyword(self) -> &'static str {
        match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        }
    }
}

/// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name (columns) WITH (...)`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSource {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub is_source: bool,
    pub columns: Vec<ColumnDef>,
    pub properties: Properties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    Value,
    /// `KEY` on a stream or `PRIMARY KEY` on a table.
    Key,
    /// `HEADERS` (all headers) or `HEADER('name')`.
    Headers,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub data_type: DataType,
    pub role: ColumnRole,
    pub primary_key: bool,
    pub header_key: Option<String>,
    pub position: Position,
}

/// The `WITH (...)` clause, keyed by upper-cased property name.
pub type Properties = BTreeMap<String, Literal>;

/// `CREATE [OR REPLACE] STREAM|TABLE [IF NOT EXISTS] name [WITH (...)] AS SELECT ...`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateAsSelect {
    pub kind: SourceKind,
    pub name: String,
    pub or_replace: bool,
    pub if_not_exists: bool,
    pub properties: Properties,
    pub query: Query,
}

/// `INSERT INTO name [(columns)] VALUES (...)`
#[derive(Debug, Clone, PartialEq)]
pub struct InsertValues {
    pub target: String,
    pub columns: Option<Vec<String>>,
    pub values: Vec<Expr>,
}

/// `INSERT INTO name [WITH (...)] SELECT ...`
#[derive(Debug, Clone, PartialEq)]
pub struct InsertInto {
    pub target: String,
    /// Where the target's name is, for messages about it.
    pub target_position: Position,
    pub properties: Properties,
    pub query: Query,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drop {
    pub kind: SourceKind,
    pub name: String,
    pub if_exists: bool,
    pub delete_topic: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Relation,
    /// Sources joined to `from`, left to right.
    pub joins: Vec<Join>,
    pub filter: Option<Expr>,
    pub partition_by: Vec<Expr>,
    pub group_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
    pub window: Option<Window>,
}

/// `WINDOW TUMBLING (SIZE ..)`, `HOPPING (SIZE .., ADVANCE BY ..)` or `SESSION (gap)`, with
/// durations in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kind: WindowKind,
    pub retention: Option<i64>,
    pub grace: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumbling { size: i64 },
    Hopping { size: i64, advance: i64 },
    Session { gap: i64 },
}

/// `[INNER | LEFT [OUTER] | RIGHT [OUTER] | FULL [OUTER]] JOIN relation [WITHIN ..] ON expr`
#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub relation: Relation,
    pub within: Option<JoinWithin>,
    pub on: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Outer,
}

/// A stream-stream join's window: how far the right record's time may be before and
/// after the left's, in milliseconds, and how late records may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWithin {
    pub before: i64,
    pub after: i64,
    pub grace: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub name: String,
    pub alias: Option<String>,
    pub position: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*` or `alias.*`
    Wildcard {
        qualifier: Option<String>,
    },
    Expr {
        expr: Expr,
        alias: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

/// The ksqlDB type grammar.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataType {
    Boolean,
    Int,
    BigInt,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    String,
    Bytes,
    Date,
    Time,
    Timestamp,
    Array(Box<DataType>),
    Map(Box<DataType>, Box<DataType>),
    Struct(Vec<(String, DataType)>),
    /// A type defined with `CREATE TYPE`, resolved by the planner.
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    /// An integer literal as written; the planner types it INT or BIGINT by its size.
    Integer(i64),
    /// A literal with a decimal point, kept as written (ksqlDB types it DECIMAL).
    Decimal(String),
    /// A literal in scientific notation (ksqlDB types it DOUBLE).
    Double(f64),
    String(String),
}

impl Literal {
    /// The literal as the plain text a `WITH` property value reads as.
    pub fn as_property_text(&self) -> String {
        match self {
            Literal::Null => "null".to_string(),
            Literal::Boolean(b) => b.to_string(),
            Literal::Integer(i) => i.to_string(),
            Literal::Decimal(d) => d.clone(),
            Literal::Double(d) => d.to_string(),
            Literal::String(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Plus,
    Minus,
    Multiply,
    Divide,
    Modulo,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Plus => "+",
            BinaryOp::Minus => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
            BinaryOp::Concat => "||",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column {
        qualifier: Option<String>,
        name: String,
        position: Position,
    },
    Literal(Literal),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Negate(Box<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    /// `a IS [NOT] DISTINCT FROM b`: equality that treats NULLs as equal.
    IsDistinctFrom {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Cast {
        expr: Box<Expr>,
        to: DataType,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    /// `expr->field`
    Field {
        expr: Box<Expr>,
        field: String,
    },
    /// `expr[index]`
    Subscript {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    Function {
        name: String,
        args: Vec<Expr>,
        distinct: bool,
        /// `COUNT(*)`
        star: bool,
        position: Position,
    },
    Array(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Struct(Vec<(String, Expr)>),
    Lambda {
        params: Vec<String>,
        body: Box<Expr>,
    },
}

impl Expr {
    /// A copy where every node `f` replaces is replaced (its children are not visited), and
    /// the others are rebuilt from rewritten children.
    pub fn rewrite(&self, f: &mut dyn FnMut(&Expr) -> Option<Expr>) -> Expr {
        if let Some(replaced) = f(self) {
            return replaced;
        }
        let mut r = |e: &Expr| e.rewrite(f);
        match self {
            Expr::Column { .. } | Expr::Literal(_) => self.clone(),
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: Box::new(r(left)),
                right: Box::new(r(right)),
            },
            Expr::Negate(e) => Expr::Negate(Box::new(r(e))),
            Expr::Not(e) => Expr::Not(Box::new(r(e))),
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: Box::new(r(expr)),
                negated: *negated,
            },
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => Expr::IsDistinctFrom {
                left: Box::new(r(left)),
                right: Box::new(r(right)),
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => Expr::Like {
                expr: Box::new(r(expr)),
                pattern: Box::new(r(pattern)),
                escape: *escape,
                negated: *negated,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: Box::new(r(expr)),
                low: Box::new(r(low)),
                high: Box::new(r(high)),
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: Box::new(r(expr)),
                list: list.iter().map(&mut r).collect(),
                negated: *negated,
            },
            Expr::Cast { expr, to } => Expr::Cast {
                expr: Box::new(r(expr)),
                to: to.clone(),
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: operand.as_ref().map(|o| Box::new(r(o))),
                whens: whens.iter().map(|(w, t)| (r(w), r(t))).collect(),
                otherwise: otherwise.as_ref().map(|o| Box::new(r(o))),
            },
            Expr::Field { expr, field } => Expr::Field {
                expr: Box::new(r(expr)),
                field: field.clone(),
            },
            Expr::Subscript { expr, index } => Expr::Subscript {
                expr: Box::new(r(expr)),
                index: Box::new(r(index)),
            },
            Expr::Function {
                name,
                args,
                distinct,
                star,
                position,
            } => Expr::Function {
                name: name.clone(),
                args: args.iter().map(&mut r).collect(),
                distinct: *distinct,
                star: *star,
                position: *position,
            },
            Expr::Array(items) => Expr::Array(items.iter().map(&mut r).collect()),
            Expr::Map(entries) => Expr::Map(entries.iter().map(|(k, v)| (r(k), r(v))).collect()),
            Expr::Struct(fields) => {
                Expr::Struct(fields.iter().map(|(n, e)| (n.clone(), r(e))).collect())
            }
            Expr::Lambda { params, body } => Expr::Lambda {
                params: params.clone(),
                body: Box::new(r(body)),
            },
        }
    }

    /// The same expression with every position cleared, to compare expressions as written.
    pub fn without_positions(&self) -> Expr {
        self.map_positions(&|_| Position::default())
    }

    /// The same expression with every position mapped by `f`.
    pub fn map_positions(&self, f: &impl Fn(Position) -> Position) -> Expr {
        self.rewrite(&mut |e| match e {
            Expr::Column {
                qualifier,
                name,
                position,
            } => Some(Expr::Column {
                qualifier: qualifier.clone(),
                name: name.clone(),
                position: f(*position),
            }),
            Expr::Function {
                name,
                args,
                distinct,
                star,
                position,
            } => Some(Expr::Function {
                name: name.clone(),
                args: args.iter().map(|a| a.map_positions(f)).collect(),
                distinct: *distinct,
                star: *star,
                position: f(*position),
            }),
            _ => None,
        })
    }
}

/// An expression as ksqlDB prints it in messages: `ARRAY_LENGTH(VAL0)`, `MAP('a':=V)`.
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |items: &[Expr]| {
            items
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Expr::Column {
                qualifier: Some(q),
                name,
                ..
            } => write!(f, "{q}.{name}"),
            Expr::Column { name, .. } => write!(f, "{name}"),
            Expr::Literal(Literal::Null) => write!(f, "null"),
            Expr::Literal(Literal::Boolean(b)) => write!(f, "{b}"),
            Expr::Literal(Literal::Integer(n)) => write!(f, "{n}"),
            Expr::Literal(Literal::Decimal(text)) => write!(f, "{text}"),
            Expr::Literal(Literal::Double(d)) => write!(f, "{d:E}"),
            Expr::Literal(Literal::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Negate(e) => write!(f, "-{e}"),
            Expr::Not(e) => write!(f, "(NOT {e})"),
            Expr::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::Field { expr, field } => write!(f, "{expr}->{field}"),
            Expr::Subscript { expr, index } => write!(f, "{expr}[{index}]"),
            Expr::Function {
                name, args, star, ..
            } => {
                if *star {
                    write!(f, "{name}(*)")
                } else {
                    write!(f, "{name}({})", list(args))
                }
            }
            Expr::Array(items) => write!(f, "ARRAY[{}]", list(items)),
            Expr::Map(entries) => write!(
                f,
                "MAP({})",
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}:={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Expr::Struct(fields) => write!(
                f,
                "STRUCT({})",
                fields
                    .iter()
                    .map(|(n, v)| format!("{n}:={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => write!(
                f,
                "({left} IS {}DISTINCT FROM {right})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                match escape {
                    Some(c) => write!(f, "({expr} {not}LIKE {pattern} ESCAPE '{c}')"),
                    None => write!(f, "({expr} {not}LIKE {pattern})"),
                }
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::InList {
                expr,
                list: items,
                negated,
            } => write!(
                f,
                "({expr} {}IN ({}))",
                if *negated { "NOT " } else { "" },
                list(items)
            ),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                write!(f, "(CASE")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (when, then) in whens {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " ELSE {otherwise}")?;
                }
                write!(f, " END)")
            }
            Expr::Lambda { params, body } => write!(f, "({}) => {body}", params.join(", ")),
        }
    }
}
