//! The plan a benchmark runs: a CREATE STREAM followed by a CREATE ... AS SELECT.

use brook_planner::catalog::{Catalog, SourceDef};
use brook_planner::plan::Dataflow;
use brook_sql::ast::StatementKind;
use std::collections::BTreeMap;

/// Plans `script`'s second statement over the source its first one creates.
pub fn plan(script: &str) -> (Dataflow, SourceDef) {
    let statements = brook_sql::parse_statements(script, &mut BTreeMap::new()).expect("parse");
    let mut catalog = Catalog::default();
    let StatementKind::CreateSource(create) = &statements[0].kind else {
        panic!("the script starts with CREATE STREAM")
    };
    let source = catalog
        .source_from_create(create, &statements[0].text)
        .expect("source");
    catalog.sources.insert(source.name.clone(), source);
    let StatementKind::CreateAsSelect(query) = &statements[1].kind else {
        panic!("the script goes on with CREATE ... AS SELECT")
    };
    catalog
        .plan_create_as(query, &statements[1].text)
        .expect("plan")
}
