//! Tables as `brook run` and the shell print them: a rule, the column names, a rule, the
//! rows (as they come, for a query), a closing rule.

use std::io::Write;

pub struct Table {
    widths: Vec<usize>,
}

impl Table {
    /// Columns as wide as their names, at least 12 characters: rows that stream in are
    /// printed before the widest is known.
    pub fn streaming(names: &[String]) -> Self {
        Self {
            widths: names.iter().map(|n| n.chars().count().max(12)).collect(),
        }
    }

    /// Columns as wide as their widest cell.
    pub fn fitted(names: &[String], rows: &[Vec<String>]) -> Self {
        let widths = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                rows.iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .chain([n.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        Self { widths }
    }

    pub fn rule(&self) -> String {
        self.widths
            .iter()
            .map(|w| format!("+{}", "-".repeat(w + 2)))
            .collect::<String>()
            + "+"
    }

    pub fn line(&self, cells: &[String]) -> String {
        cells
            .iter()
            .zip(&self.widths)
            .map(|(c, w)| format!("| {c:<w$} "))
            .collect::<String>()
            + "|"
    }

    /// The rule, the names and the rule under them.
    pub fn print_header(&self, out: &mut impl Write, names: &[String]) {
        let _ = writeln!(out, "{}", self.rule());
        let _ = writeln!(out, "{}", self.line(names));
        let _ = writeln!(out, "{}", self.rule());
        let _ = out.flush();
    }

    pub fn print_row(&self, out: &mut impl Write, cells: &[String]) {
        let _ = writeln!(out, "{}", self.line(cells));
        let _ = out.flush();
    }
}

/// A whole table at once.
pub fn print_table(out: &mut impl Write, names: &[String], rows: &[Vec<String>]) {
    let table = Table::fitted(names, rows);
    table.print_header(out, names);
    for row in rows {
        let _ = writeln!(out, "{}", table.line(row));
    }
    let _ = writeln!(out, "{}", table.rule());
    let _ = out.flush();
}
