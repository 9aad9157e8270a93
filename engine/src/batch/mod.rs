//! Building a batch's columns record by record: one typed Arrow builder per column, fed
//! either by a decoder that reads bytes straight into scalars ([`Cell`]) or, for the formats
//! and records that go through the lenient path, by [`Value`]s.

use crate::arrays::{build_array, mismatch};
use arrow::array::*;
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use std::borrow::Cow;
use std::sync::Arc;

/// One decoded field, as a decoder hands it over before it is appended: scalars without a
/// [`Value`] in between, borrowing text from the record's bytes where it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Boolean(bool),
    /// Any integral type (INT, BIGINT, DATE, TIME, TIMESTAMP), range-checked by the decoder.
    Long(i64),
    Double(f64),
    Str(Cow<'a, str>),
    /// What has no scalar form here (decimals, bytes, nested types).
    Value(Value),
}

impl Cell<'_> {
    /// The same field as a [`Value`] of type `t`.
    pub fn into_value(self, t: &DataType) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Boolean(b) => Value::Boolean(b),
            Cell::Long(i) => match t {
                DataType::Int => Value::Int(i as i32),
                DataType::Date => Value::Date(i as i32),
                DataType::Time => Value::Time(i as i32),
                DataType::Timestamp => Value::Timestamp(i),
                _ => Value::BigInt(i),
            },
            Cell::Double(d) => Value::Double(d),
            Cell::Str(s) => Value::String(s.into_owned()),
            Cell::Value(v) => v,
        }
    }
}

/// The builder of one column of a ksqlDB type.
pub enum ColumnBuilder {
    Boolean(BooleanBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    String(StringBuilder),
    Date(Date32Builder),
    Time(Time32MillisecondBuilder),
    Timestamp(TimestampMillisecondBuilder),
    /// Decimals, bytes and nested types: collected as values, built at the end.
    Values(DataType, Vec<Value>),
}

impl ColumnBuilder {
    pub fn new(t: &DataType, capacity: usize) -> Self {
        match t {
            DataType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(capacity)),
            DataType::Int => Self::Int(Int32Builder::with_capacity(capacity)),
            DataType::BigInt => Self::BigInt(Int64Builder::with_capacity(capacity)),
            DataType::Double => Self::Double(Float64Builder::with_capacity(capacity)),
            DataType::String => Self::String(StringBuilder::with_capacity(capacity, capacity * 16)),
            DataType::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time => Self::Time(Time32MillisecondBuilder::with_capacity(capacity)),
            DataType::Timestamp => {
                Self::Timestamp(TimestampMillisecondBuilder::with_capacity(capacity))
            }
            other => Self::Values(other.clone(), Vec::with_capacity(capacity)),
        }
    }

    pub fn append_null(&mut self) {
        match self {
            Self::Boolean(b) => b.append_null(),
            Self::Int(b) => b.append_null(),
            Self::BigInt(b) => b.append_null(),
            Self::Double(b) => b.append_null(),
            Self::String(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Time(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::Values(_, v) => v.push(Value::Null),
        }
    }

    /// Appends a value of the column's type (or NULL); another type is an error and
    /// appends nothing.
    pub fn append_value(&mut self, value: Value) -> Result<(), String> {
        match (self, value) {
            (b, Value::Null) => b.append_null(),
            (Self::Boolean(b), Value::Boolean(x)) => b.append_value(x),
            (Self::Int(b), Value::Int(x)) => b.append_value(x),
            (Self::BigInt(b), Value::BigInt(x)) => b.append_value(x),
            (Self::Double(b), Value::Double(x)) => b.append_value(x),
            (Self::String(b), Value::String(x)) => b.append_value(x),
            (Self::Date(b), Value::Date(x)) => b.append_value(x),
            (Self::Time(b), Value::Time(x)) => b.append_value(x),
            (Self::Timestamp(b), Value::Timestamp(x)) => b.append_value(x),
            (Self::Values(_, v), x) => v.push(x),
            (b, other) => return Err(mismatch(&b.data_type(), &other)),
        }
        Ok(())
    }

    /// Appends a decoded field; a cell whose kind does not fit the column goes through its
    /// value.
    pub fn append_cell(&mut self, cell: Cell<'_>) -> Result<(), String> {
        match (self, cell) {
            (b, Cell::Null) => b.append_null(),
            (Self::Boolean(b), Cell::Boolean(x)) => b.append_value(x),
            (Self::Int(b), Cell::Long(x)) => b.append_value(x as i32),
            (Self::BigInt(b), Cell::Long(x)) => b.append_value(x),
            (Self::Date(b), Cell::Long(x)) => b.append_value(x as i32),
            (Self::Time(b), Cell::Long(x)) => b.append_value(x as i32),
            (Self::Timestamp(b), Cell::Long(x)) => b.append_value(x),
            (Self::Double(b), Cell::Double(x)) => b.append_value(x),
            (Self::String(b), Cell::Str(x)) => b.append_value(x),
            (b, Cell::Value(v)) => return b.append_value(v),
            (b, other) => {
                let t = b.data_type();
                return b.append_value(other.into_value(&t));
            }
        }
        Ok(())
    }

    /// Whether a cell can be appended.
    fn accepts(&self, cell: &Cell<'_>) -> bool {
        match (self, cell) {
            (_, Cell::Null) | (_, Cell::Value(Value::Null)) => true,
            (Self::Boolean(_), Cell::Boolean(_) | Cell::Value(Value::Boolean(_))) => true,
            (Self::Int(_), Cell::Value(Value::Int(_))) => true,
            (Self::Date(_), Cell::Value(Value::Date(_))) => true,
            (Self::Time(_), Cell::Value(Value::Time(_))) => true,
            (Self::Int(_) | Self::Date(_) | Self::Time(_), Cell::Long(i)) => {
                i32::try_from(*i).is_ok()
            }
            (Self::BigInt(_), Cell::Long(_) | Cell::Value(Value::BigInt(_))) => true,
            (Self::Timestamp(_), Cell::Long(_) | Cell::Value(Value::Timestamp(_))) => true,
            (Self::Double(_), Cell::Double(_) | Cell::Value(Value::Double(_))) => true,
            (Self::String(_), Cell::Str(_) | Cell::Value(Value::String(_))) => true,
            (Self::Values(t, _), Cell::Value(v)) => shallow_fit(t, v),
            _ => false,
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Self::Boolean(_) => DataType::Boolean,
            Self::Int(_) => DataType::Int,
            Self::BigInt(_) => DataType::BigInt,
            Self::Double(_) => DataType::Double,
            Self::String(_) => DataType::String,
            Self::Date(_) => DataType::Date,
            Self::Time(_) => DataType::Time,
            Self::Timestamp(_) => DataType::Timestamp,
            Self::Values(t, _) => t.clone(),
        }
    }

    /// The column built so far; the builder is left empty for the next batch.
    pub fn finish(&mut self) -> Result<ArrayRef, String> {
        Ok(match self {
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::BigInt(b) => Arc::new(b.finish()),
            Self::Double(b) => Arc::new(b.finish()),
            Self::String(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::Values(t, values) => {
                let array = build_array(t, &values.iter().collect::<Vec<_>>())?;
                values.clear();
                array
            }
        })
    }
}

/// Whether a value has the outer shape of a type (its elements are checked when the column
/// is built).
fn shallow_fit(t: &DataType, v: &Value) -> bool {
    match (t, v) {
        (DataType::Decimal { scale, .. }, Value::Decimal(_, s)) => s == scale,
        (DataType::Bytes, Value::Bytes(_))
        | (DataType::Array(_), Value::Array(_))
        | (DataType::Map(..), Value::Map(_))
        | (DataType::Struct(_), Value::Struct(_)) => true,
        _ => false,
    }
}

/// The columns of a batch, built a row at a time.
pub struct RowBuilder {
    columns: Vec<ColumnBuilder>,
}

impl RowBuilder {
    pub fn new<'t>(types: impl Iterator<Item = &'t DataType>, capacity: usize) -> Self {
        Self {
            columns: types.map(|t| ColumnBuilder::new(t, capacity)).collect(),
        }
    }

    /// Appends one row (one cell per column, drained), all of it or none of it: a cell that
    /// does not fit its column is an error and leaves the columns as they were.
    pub fn append(&mut self, row: &mut Vec<Cell<'_>>) -> Result<(), String> {
        if row.len() != self.columns.len() {
            return Err(format!(
                "a row of {} columns in a batch of {}",
                row.len(),
                self.columns.len()
            ));
        }
        if let Some((b, cell)) = self
            .columns
            .iter()
            .zip(row.iter())
            .find(|(b, cell)| !b.accepts(cell))
        {
            let cell = cell.clone().into_value(&b.data_type());
            return Err(mismatch(&b.data_type(), &cell));
        }
        for (b, cell) in self.columns.iter_mut().zip(row.drain(..)) {
            b.append_cell(cell)?;
        }
        Ok(())
    }

    /// The columns built so far; the builders are left empty.
    pub fn finish(&mut self) -> Result<Vec<ArrayRef>, String> {
        self.columns.iter_mut().map(ColumnBuilder::finish).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arrays::value_at;

    #[test]
    fn cells_and_values_build_the_same_columns() {
        let types = [
            DataType::Boolean,
            DataType::Int,
            DataType::BigInt,
            DataType::Double,
            DataType::String,
            DataType::Timestamp,
            DataType::Decimal {
                precision: 4,
                scale: 1,
            },
        ];
        let cells = [
            Cell::Boolean(true),
            Cell::Long(7),
            Cell::Long(-3),
            Cell::Double(1.5),
            Cell::Str("x".into()),
            Cell::Long(1_000),
            Cell::Value(Value::Decimal(15, 1)),
        ];
        for (t, cell) in types.iter().zip(cells) {
            let value = cell.clone().into_value(t);
            let (mut a, mut b) = (ColumnBuilder::new(t, 2), ColumnBuilder::new(t, 2));
            a.append_cell(cell).unwrap();
            a.append_cell(Cell::Null).unwrap();
            b.append_value(value.clone()).unwrap();
            b.append_value(Value::Null).unwrap();
            let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
            assert_eq!(a.as_ref(), b.as_ref(), "{t}");
            assert_eq!(value_at(&a, t, 0), value);
            assert!(a.is_null(1));
        }
    }

    #[test]
    fn a_value_of_another_type_is_an_error() {
        let mut b = ColumnBuilder::new(&DataType::BigInt, 1);
        assert!(b.append_value(Value::String("x".into())).is_err());
        assert_eq!(b.finish().unwrap().len(), 0);
    }
}
