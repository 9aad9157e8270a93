//! What a REST client keeps on its side of a session: the properties `SET` gives and the
//! variables `DEFINE` gives, sent with every request.

use brook_sql::ast::StatementKind;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct Local {
    pub properties: BTreeMap<String, String>,
    pub variables: BTreeMap<String, String>,
}

impl Local {
    /// Takes `SET`, `UNSET`, `DEFINE` and `UNDEFINE`, with what to tell the user; other
    /// statements are left to the server (`None`).
    pub fn take(&mut self, kind: &StatementKind) -> Option<String> {
        match kind {
            StatementKind::Set { name, value } => {
                self.properties.insert(name.clone(), value.clone());
                let shown = if brook_engine::session::is_secret(name) {
                    "[hidden]"
                } else {
                    value
                };
                Some(format!(
                    "Successfully changed local property '{name}' to '{shown}'."
                ))
            }
            StatementKind::Unset { name } => {
                self.properties.remove(name);
                Some(format!("Successfully unset local property '{name}'."))
            }
            StatementKind::Define { name, value } => {
                self.variables.insert(name.clone(), value.clone());
                Some(String::new())
            }
            StatementKind::Undefine { name } => {
                self.variables.remove(name);
                Some(String::new())
            }
            _ => None,
        }
    }

    /// `text` with its `${variables}` replaced, parsed.
    pub fn parse(&self, text: &str) -> Result<brook_sql::ast::Statement, String> {
        let substituted =
            brook_sql::substitute_variables(text, &self.variables, Default::default())
                .map_err(|e| e.to_string())?;
        brook_sql::parse_statement(&substituted, Default::default()).map_err(|e| e.to_string())
    }
}
