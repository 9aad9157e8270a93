//! What every benchmark uses: its plan (CREATE STREAM/TABLE statements followed by a
//! CREATE ... AS SELECT over them) and its arguments.

use brook_planner::catalog::{Catalog, SourceDef};
use brook_planner::plan::Dataflow;
use brook_sql::ast::StatementKind;
use std::collections::BTreeMap;

/// The bench's `i`-th positional argument as a number, or `default` (cargo's own flags,
/// such as `--bench`, are left out).
pub fn argument(i: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Plans `script`'s last statement over the sources the ones before it create.
pub fn plan(script: &str) -> (Dataflow, SourceDef) {
    let statements = brook_sql::parse_statements(script, &mut BTreeMap::new()).expect("parse");
    let mut catalog = Catalog::default();
    let (last, sources) = statements.split_last().expect("statements");
    for s in sources {
        let StatementKind::CreateSource(create) = &s.kind else {
            panic!("the script starts with CREATE STREAM or CREATE TABLE statements")
        };
        let source = catalog.source_from_create(create, &s.text).expect("source");
        catalog.sources.insert(source.name.clone(), source);
    }
    let StatementKind::CreateAsSelect(query) = &last.kind else {
        panic!("the script ends with CREATE ... AS SELECT")
    };
    catalog.plan_create_as(query, &last.text).expect("plan")
}
