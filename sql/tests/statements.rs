//! Every statement form of the dialect, and where errors point.

use brook_sql::ast::*;
use brook_sql::{parse_statement, parse_statements, Position};
use std::collections::BTreeMap;

fn parse(text: &str) -> StatementKind {
    parse_statement(text, Position { line: 1, column: 1 })
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .kind
}

fn parse_err(text: &str) -> brook_sql::ParseError {
    match parse_statement(text, Position { line: 1, column: 1 }) {
        Ok(s) => panic!("{text} parsed as {s:?}"),
        Err(e) => e,
    }
}

fn col(name: &str) -> Expr {
    match parse(&format!("SELECT {name} FROM s")) {
        StatementKind::Query(q) => match q.select.into_iter().next() {
            Some(SelectItem::Expr { expr, .. }) => expr,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn create_stream_with_keys_types_and_properties() {
    let StatementKind::CreateSource(c) = parse(
        "CREATE OR REPLACE STREAM IF NOT EXISTS orders (id INT KEY, `Name` VARCHAR, price DECIMAL(10, 2), \
         tags ARRAY<STRING>, attrs MAP<STRING, BIGINT>, addr STRUCT<street STRING, `Zip` INT>, \
         ts TIMESTAMP, d DATE, t TIME, b BYTES, ok BOOLEAN, x DOUBLE, h BYTES HEADER('k'), hs ARRAY<STRUCT<key STRING, value BYTES>> HEADERS) \
         WITH (kafka_topic='orders', value_format='JSON', partitions=4, WRAP_SINGLE_VALUE=false)",
    ) else {
        panic!()
    };
    assert_eq!(c.kind, SourceKind::Stream);
    assert!(c.or_replace && c.if_not_exists && !c.is_source);
    assert_eq!(c.name, "ORDERS");
    let names: Vec<_> = c.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ID", "Name", "PRICE", "TAGS", "ATTRS", "ADDR", "TS", "D", "T", "B", "OK", "X", "H",
            "HS"
        ]
    );
    assert_eq!(c.columns[0].role, ColumnRole::Key);
    assert_eq!(c.columns[0].data_type, DataType::Int);
    assert_eq!(
        c.columns[2].data_type,
        DataType::Decimal {
            precision: 10,
            scale: 2
        }
    );
    assert_eq!(
        c.columns[3].data_type,
        DataType::Array(Box::new(DataType::String))
    );
    assert_eq!(
        c.columns[4].data_type,
        DataType::Map(Box::new(DataType::String), Box::new(DataType::BigInt))
    );
    assert_eq!(
        c.columns[5].data_type,
        DataType::Struct(vec![
            ("STREET".into(), DataType::String),
            ("Zip".into(), DataType::Int)
        ])
    );
    assert_eq!(c.columns[12].header_key.as_deref(), Some("k"));
    assert_eq!(c.columns[13].role, ColumnRole::Headers);
    assert_eq!(
        c.columns[1].position,
        Position {
            line: 1,
            column: 60
        }
    );
    assert_eq!(
        c.properties["KAFKA_TOPIC"],
        Literal::String("orders".into())
    );
    assert_eq!(c.properties["PARTITIONS"], Literal::Integer(4));
    assert_eq!(c.properties["WRAP_SINGLE_VALUE"], Literal::Boolean(false));
}

#[test]
fn create_table_needs_primary_key_syntax() {
    let StatementKind::CreateSource(c) =
        parse("CREATE SOURCE TABLE users (id STRING PRIMARY KEY, name STRING) WITH (kafka_topic='u', format='JSON')")
    else {
        panic!()
    };
    assert!(c.is_source);
    assert_eq!(c.kind, SourceKind::Table);
    assert!(c.columns[0].primary_key);
    let err = parse_err("CREATE TABLE t (id STRING KEY) WITH (kafka_topic='u', format='JSON')");
    assert!(
        err.message.contains("please use 'PRIMARY KEY' for tables"),
        "{err}"
    );
    let err =
        parse_err("CREATE STREAM t (id STRING PRIMARY KEY) WITH (kafka_topic='u', format='JSON')");
    assert!(
        err.message.contains("please use 'KEY' for streams"),
        "{err}"
    );
}

#[test]
fn create_stream_as_select() {
    let StatementKind::CreateAsSelect(c) = parse(
        "create stream big_orders with (kafka_topic='big', partitions=2) as \
         select id, price * 2 as double_price, name from orders o where price > 10.5 emit changes",
    ) else {
        panic!()
    };
    assert_eq!(c.name, "BIG_ORDERS");
    assert_eq!(c.properties["KAFKA_TOPIC"], Literal::String("big".into()));
    let q = c.query;
    assert_eq!(q.from.name, "ORDERS");
    assert_eq!(q.from.alias.as_deref(), Some("O"));
    assert_eq!(q.select.len(), 3);
    assert!(matches!(&q.select[1], SelectItem::Expr { alias: Some(a), .. } if a == "DOUBLE_PRICE"));
    assert_eq!(q.emit, Some(Emit::Changes));
    assert!(matches!(
        q.filter,
        Some(Expr::Binary { op: BinaryOp::Gt, ref right, .. }) if **right == Expr::Literal(Literal::Decimal("10.5".into()))
    ));
}

#[test]
fn insert_values_and_insert_select() {
    let StatementKind::InsertValues(i) =
        parse("INSERT INTO orders (id, name, price) VALUES (1, 'it''s', -2.50)")
    else {
        panic!()
    };
    assert_eq!(i.target, "ORDERS");
    assert_eq!(i.columns.unwrap(), ["ID", "NAME", "PRICE"]);
    assert_eq!(
        i.values,
        vec![
            Expr::Literal(Literal::Integer(1)),
            Expr::Literal(Literal::String("it's".into())),
            Expr::Literal(Literal::Decimal("-2.50".into())),
        ]
    );
    let StatementKind::InsertValues(i) = parse("INSERT INTO s VALUES (1, NULL, true)") else {
        panic!()
    };
    assert!(i.columns.is_none());
    assert_eq!(i.values[1], Expr::Literal(Literal::Null));
    let StatementKind::InsertInto(i) = parse("INSERT INTO all_orders SELECT * FROM orders") else {
        panic!()
    };
    assert_eq!(i.target, "ALL_ORDERS");
    assert_eq!(
        i.query.select,
        vec![SelectItem::Wildcard { qualifier: None }]
    );
}

#[test]
fn push_query_with_limit() {
    let StatementKind::Query(q) =
        parse("SELECT * FROM orders WHERE id IS NOT NULL EMIT CHANGES LIMIT 5;")
    else {
        panic!()
    };
    assert_eq!(q.limit, Some(5));
    assert_eq!(q.emit, Some(Emit::Changes));
    assert!(matches!(q.filter, Some(Expr::IsNull { negated: true, .. })));
}

#[test]
fn drop_set_unset_define_undefine() {
    assert_eq!(
        parse("DROP STREAM IF EXISTS orders DELETE TOPIC"),
        StatementKind::Drop(Drop {
            kind: SourceKind::Stream,
            name: "ORDERS".into(),
            if_exists: true,
            delete_topic: true
        })
    );
    assert_eq!(
        parse("DROP TABLE t"),
        StatementKind::Drop(Drop {
            kind: SourceKind::Table,
            name: "T".into(),
            if_exists: false,
            delete_topic: false
        })
    );
    assert_eq!(
        parse("SET 'auto.offset.reset' = 'earliest'"),
        StatementKind::Set {
            name: "auto.offset.reset".into(),
            value: "earliest".into()
        }
    );
    assert_eq!(
        parse("ALTER SYSTEM 'auto.offset.reset'='earliest'"),
        StatementKind::AlterSystem {
            name: "auto.offset.reset".into(),
            value: "earliest".into()
        }
    );
    assert_eq!(
        parse("UNSET 'auto.offset.reset'"),
        StatementKind::Unset {
            name: "auto.offset.reset".into()
        }
    );
    assert_eq!(
        parse("DEFINE topic = 'orders'"),
        StatementKind::Define {
            name: "TOPIC".into(),
            value: "orders".into()
        }
    );
    assert_eq!(
        parse("UNDEFINE topic"),
        StatementKind::Undefine {
            name: "TOPIC".into()
        }
    );
}

#[test]
fn variables_comments_and_positions_in_a_script() {
    let script = "-- the orders\nDEFINE t = 'orders';\n/* a block\n comment */ CREATE STREAM s (id INT KEY) WITH (kafka_topic='${t}', format='JSON');\nSELECT id FROM s EMIT CHANGES;";
    let mut vars = BTreeMap::new();
    let statements = parse_statements(script, &mut vars).unwrap();
    assert_eq!(statements.len(), 3);
    assert_eq!(vars["T"], "orders");
    let StatementKind::CreateSource(c) = &statements[1].kind else {
        panic!()
    };
    assert_eq!(
        c.properties["KAFKA_TOPIC"],
        Literal::String("orders".into())
    );
    assert_eq!(
        statements[1].position,
        Position {
            line: 4,
            column: 13
        }
    );
    assert_eq!(statements[2].position, Position { line: 5, column: 1 });
}

#[test]
fn expressions() {
    assert!(
        matches!(col("a->b->c"), Expr::Field { field, expr } if field == "C" && matches!(*expr, Expr::Field { .. }))
    );
    assert!(matches!(col("arr[1]"), Expr::Subscript { .. }));
    assert!(matches!(col("m['k']"), Expr::Subscript { .. }));
    assert!(matches!(
        col("CAST(x AS DECIMAL(4, 2))"),
        Expr::Cast {
            to: DataType::Decimal {
                precision: 4,
                scale: 2
            },
            ..
        }
    ));
    assert!(matches!(
        col("CAST(x AS STRING)"),
        Expr::Cast {
            to: DataType::String,
            ..
        }
    ));
    assert!(matches!(
        col("CASE WHEN a > 1 THEN 'x' ELSE 'y' END"),
        Expr::Case { operand: None, .. }
    ));
    assert!(matches!(
        col("CASE a WHEN 1 THEN 'x' END"),
        Expr::Case {
            operand: Some(_),
            ..
        }
    ));
    assert!(matches!(
        col("name LIKE 'a%'"),
        Expr::Like { negated: false, .. }
    ));
    assert!(matches!(
        col("name NOT LIKE 'a!%' ESCAPE '!'"),
        Expr::Like {
            negated: true,
            escape: Some('!'),
            ..
        }
    ));
    assert!(matches!(
        col("x BETWEEN 1 AND 5"),
        Expr::Between { negated: false, .. }
    ));
    assert!(
        matches!(col("x NOT IN (1, 2, 3)"), Expr::InList { negated: true, ref list, .. } if list.len() == 3)
    );
    assert!(matches!(col("NOT (a AND b OR c)"), Expr::Not(_)));
    assert!(matches!(col("-x"), Expr::Negate(_)));
    assert!(matches!(col("1.5e3"), Expr::Literal(Literal::Double(d)) if d == 1500.0));
    assert!(matches!(
        col("'a' + name"),
        Expr::Binary {
            op: BinaryOp::Plus,
            ..
        }
    ));
    assert!(
        matches!(col("s.`Mixed`"), Expr::Column { qualifier: Some(q), name, .. } if q == "S" && name == "Mixed")
    );
    assert!(
        matches!(col("UCASE(name)"), Expr::Function { name, args, .. } if name == "UCASE" && args.len() == 1)
    );
    assert!(matches!(col("COUNT(*)"), Expr::Function { star: true, .. }));
    assert!(matches!(col("ARRAY[1, 2]"), Expr::Array(v) if v.len() == 2));
    assert!(matches!(col("MAP('a' := 1, 'b' := 2)"), Expr::Map(v) if v.len() == 2));
    assert!(
        matches!(col("STRUCT(a := 1, `b` := 'x')"), Expr::Struct(v) if v[0].0 == "A" && v[1].0 == "b")
    );
    assert!(
        matches!(col("TRANSFORM(arr, x => x + 1)"), Expr::Function { args, .. } if matches!(&args[1], Expr::Lambda { params, .. } if params == &["X"]))
    );
    assert!(
        matches!(col("REDUCE(arr, 0, (s, x) => s + x)"), Expr::Function { args, .. } if matches!(&args[2], Expr::Lambda { params, .. } if params.len() == 2))
    );
    // `->` binds tighter than arithmetic and comparison.
    assert!(matches!(
        col("a->b + 1 > 2"),
        Expr::Binary {
            op: BinaryOp::Gt,
            ..
        }
    ));
}

#[test]
fn errors_point_at_line_and_column() {
    let err = parse_err("CREATE STREAM s (id INT KEY WITH (kafka_topic='x')");
    assert_eq!(
        err.position,
        Position {
            line: 1,
            column: 29
        },
        "{err}"
    );
    assert!(err.message.contains("expected ','"), "{err}");

    let err = parse_err("SELEC * FROM s");
    assert_eq!(err.position, Position { line: 1, column: 1 });
    assert!(
        err.message.contains("expected CREATE, INSERT, SELECT"),
        "{err}"
    );

    let mut vars = BTreeMap::new();
    let err =
        parse_statements("SET 'a'='b';\nSELECT a FROM s\n  WHERE a = = 1;", &mut vars).unwrap_err();
    assert_eq!(
        err.position,
        Position {
            line: 3,
            column: 13
        },
        "{err}"
    );

    let err = parse_err("SELECT * FROM s EMIT");
    assert!(
        err.message
            .contains("expected CHANGES or FINAL, found end of statement"),
        "{err}"
    );

    let err = parse_err("CREATE STREAM s (a FOO<INT>) WITH (kafka_topic='x')");
    assert_eq!(err.position.line, 1);

    let err = parse_err("CREATE STREAM s (a INT) WITH (kafka_topic='x', kafka_topic='y')");
    assert!(
        err.message.contains("Duplicate property: KAFKA_TOPIC"),
        "{err}"
    );

    let err = parse_err("INSERT INTO s VALUES (1, 'unterminated)");
    assert!(
        err.to_string().starts_with("Syntax Error at line 1:"),
        "{err}"
    );

    let err = parse_err("SELECT * FROM s LIMIT x");
    assert!(err.message.contains("expected a whole number"), "{err}");
}

#[test]
fn create_and_drop_type() {
    assert_eq!(
        parse("CREATE TYPE address AS STRUCT<street STRING, zip INT>"),
        StatementKind::CreateType {
            name: "ADDRESS".into(),
            data_type: DataType::Struct(vec![
                ("STREET".into(), DataType::String),
                ("ZIP".into(), DataType::Int)
            ]),
            if_not_exists: false,
        }
    );
    assert_eq!(
        parse("DROP TYPE IF EXISTS address"),
        StatementKind::DropType {
            name: "ADDRESS".into(),
            if_exists: true
        }
    );
}

#[test]
fn partition_by_needs_an_expression() {
    let err = parse_err("CREATE STREAM o AS SELECT * FROM s PARTITION BY EMIT CHANGES");
    assert!(
        err.message
            .contains("PARTITION BY requires at least one expression"),
        "{err}"
    );
}

#[test]
fn assert_statements() {
    assert_eq!(
        parse("ASSERT TOPIC `orders` WITH (PARTITIONS=3) TIMEOUT 5 SECONDS"),
        StatementKind::AssertTopic {
            topic: "orders".into(),
            exists: true,
            properties: [("PARTITIONS".to_string(), Literal::Integer(3))].into(),
            timeout_ms: Some(5000),
        }
    );
    assert_eq!(
        parse("ASSERT NOT EXISTS SCHEMA SUBJECT 'orders-value' ID 4"),
        StatementKind::AssertSchema {
            subject: Some("orders-value".into()),
            id: Some(4),
            exists: false,
            timeout_ms: None,
        }
    );
    assert!(parse_err("ASSERT SCHEMA TIMEOUT 1 SECOND")
        .to_string()
        .contains("must include a subject name or an id"));
    assert!(parse_err("ASSERT VALUES foo (id INT) VALUES (123)")
        .to_string()
        .contains("Syntax error at or near 'VALUES' at line 1:8"));
}

#[test]
fn joins() {
    let StatementKind::Query(q) = parse(
        "SELECT * FROM a JOIN b WITHIN (1 SECOND, 2 MINUTES) GRACE PERIOD 3 SECONDS ON a.id = b.id \
         LEFT OUTER JOIN c ON a.id = c.id FULL JOIN d WITHIN 1 HOUR ON a.id = d.id",
    ) else {
        panic!("a query")
    };
    let kinds: Vec<JoinKind> = q.joins.iter().map(|j| j.kind).collect();
    assert_eq!(kinds, [JoinKind::Inner, JoinKind::Left, JoinKind::Outer]);
    assert_eq!(
        q.joins[0].within,
        Some(JoinWithin {
            before: 1000,
            after: 120_000,
            grace: Some(3000)
        })
    );
    assert_eq!(q.joins[1].within, None);
    assert_eq!(q.joins[2].relation.name, "D");
}

#[test]
fn listings_and_terminate() {
    assert_eq!(
        parse("SHOW STREAMS"),
        StatementKind::Show(ShowKind::Streams)
    );
    assert_eq!(
        parse("LIST TABLES EXTENDED"),
        StatementKind::DescribeAll {
            kind: SourceKind::Table,
            extended: true
        }
    );
    assert_eq!(
        parse("DESCRIBE STREAMS"),
        StatementKind::DescribeAll {
            kind: SourceKind::Stream,
            extended: false
        }
    );
    assert_eq!(
        parse("SHOW QUERIES EXTENDED"),
        StatementKind::Show(ShowKind::Queries { extended: true })
    );
    assert_eq!(
        parse("SHOW QUERIES"),
        StatementKind::Show(ShowKind::Queries { extended: false })
    );
    assert_eq!(parse("SHOW USAGE"), StatementKind::Show(ShowKind::Usage));
    assert_eq!(
        parse("TERMINATE CSAS_OUT_3"),
        StatementKind::Terminate {
            query_id: Some("CSAS_OUT_3".into())
        }
    );
    assert_eq!(
        parse("TERMINATE ALL"),
        StatementKind::Terminate { query_id: None }
    );
    assert_eq!(
        parse("PAUSE CSAS_OUT_3"),
        StatementKind::SetRunning {
            query_id: Some("CSAS_OUT_3".into()),
            running: false
        }
    );
    assert_eq!(
        parse("RESUME ALL"),
        StatementKind::SetRunning {
            query_id: None,
            running: true
        }
    );
}

#[test]
fn describe() {
    assert_eq!(
        parse("DESCRIBE pageviews EXTENDED"),
        StatementKind::Describe {
            name: "PAGEVIEWS".into(),
            extended: true
        }
    );
    assert_eq!(
        parse("DESCRIBE FUNCTION abs"),
        StatementKind::DescribeFunction { name: "ABS".into() }
    );
    assert_eq!(
        parse("DESCRIBE TABLES EXTENDED"),
        StatementKind::DescribeAll {
            kind: SourceKind::Table,
            extended: true
        }
    );
}

#[test]
fn explain_show_and_print() {
    assert_eq!(
        parse("EXPLAIN CTAS_X_1"),
        StatementKind::Explain(ExplainTarget::Query("CTAS_X_1".into()))
    );
    let StatementKind::Explain(ExplainTarget::Statement(inner)) =
        parse("EXPLAIN SELECT * FROM s EMIT CHANGES")
    else {
        panic!("EXPLAIN of a statement");
    };
    assert!(matches!(inner.kind, StatementKind::Query(_)));
    assert_eq!(
        parse("SHOW ALL TOPICS"),
        StatementKind::Show(ShowKind::Topics {
            all: true,
            extended: false
        })
    );
    assert_eq!(
        parse("LIST FUNCTIONS"),
        StatementKind::Show(ShowKind::Functions)
    );
    assert_eq!(parse("SHOW TYPES"), StatementKind::Show(ShowKind::Types));
    assert_eq!(
        parse("PRINT 'my.topic' FROM BEGINNING INTERVAL 2 LIMIT 10"),
        StatementKind::Print(Print {
            topic: "my.topic".into(),
            from_beginning: true,
            interval: 2,
            limit: Some(10),
        })
    );
}

#[test]
fn connector_statements() {
    let StatementKind::CreateConnector(c) = parse(
        "CREATE SINK CONNECTOR IF NOT EXISTS `fn-sink` WITH ('connector.class'='AzureFunctionsSink', \
         'topics'='user_trades', 'max.batch.size'=500, \"tasks.max\"='2')",
    ) else {
        panic!()
    };
    assert_eq!(c.kind, ConnectorKind::Sink);
    assert_eq!(c.name, "fn-sink");
    assert!(c.if_not_exists);
    assert_eq!(c.config["connector.class"], "AzureFunctionsSink");
    assert_eq!(c.config["max.batch.size"], "500");
    assert_eq!(c.config["tasks.max"], "2");
    let StatementKind::CreateConnector(c) =
        parse("CREATE SOURCE CONNECTOR gen WITH ('connector.class'='DatagenSource')")
    else {
        panic!()
    };
    assert_eq!((c.kind, c.name.as_str()), (ConnectorKind::Source, "GEN"));
    assert_eq!(
        parse("DROP CONNECTOR IF EXISTS gen"),
        StatementKind::DropConnector {
            name: "GEN".into(),
            if_exists: true
        }
    );
    assert_eq!(
        parse("DESCRIBE CONNECTOR `fn-sink`"),
        StatementKind::DescribeConnector {
            name: "fn-sink".into()
        }
    );
    assert_eq!(
        parse("SHOW SINK CONNECTORS"),
        StatementKind::Show(ShowKind::Connectors(Some(ConnectorKind::Sink)))
    );
    assert_eq!(
        parse("LIST CONNECTORS"),
        StatementKind::Show(ShowKind::Connectors(None))
    );
    assert_eq!(
        parse("SHOW CONNECTOR PLUGINS"),
        StatementKind::Show(ShowKind::ConnectorPlugins)
    );
    let err = parse_err("CREATE SINK CONNECTOR c WITH ('a'='1', 'a'='2')");
    assert!(err.message.contains("Duplicate property: a"), "{err}");
}
