//! Fuzz targets for what Brook reads from topics: every format's decoder over arbitrary
//! bytes (with and without a registry schema), and Brook's own internal records. Run as
//! tests for 20 s each (as CI does; `BOLERO_RANDOM_TEST_TIME_MS` sets longer) from the
//! seeds in `src/__fuzz__/`, then on inputs from bolero's random engine; a found input is shrunk and printed,
//! and goes into the seeds with its fix. No decoder may panic; each answers with an
//! error that says what was wrong.

use crate::formats::{ColumnsCodec, FormatContext};
use crate::schema_registry::MemoryRegistry;
use brook_planner::formats::{Format, FormatKind};
use brook_planner::value::Value;
use brook_sql::ast::DataType;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// How long each target runs in CI; `BOLERO_RANDOM_TEST_TIME_MS` runs it longer.
const BUDGET: Duration = Duration::from_secs(20);

/// Columns of every kind of type, nested ones included.
fn columns() -> Vec<(String, DataType)> {
    let t = |name: &str, data_type| (name.to_string(), data_type);
    vec![
        t("B", DataType::Boolean),
        t("I", DataType::Int),
        t("L", DataType::BigInt),
        t("D", DataType::Double),
        t(
            "DEC",
            DataType::Decimal {
                precision: 10,
                scale: 2,
            },
        ),
        t("S", DataType::String),
        t("BY", DataType::Bytes),
        t("DT", DataType::Date),
        t("TM", DataType::Time),
        t("TS", DataType::Timestamp),
        t("A", DataType::Array(Box::new(DataType::Int))),
        t(
            "M",
            DataType::Map(Box::new(DataType::String), Box::new(DataType::Double)),
        ),
        t(
            "ST",
            DataType::Struct(vec![
                ("X".into(), DataType::Int),
                ("Y".into(), DataType::Array(Box::new(DataType::String))),
            ]),
        ),
    ]
}

/// A codec of `kind` over `columns`, with a registry for the formats that need one. A
/// failing input is run again after its panic (to shrink it): the codecs keep no state a
/// panic could leave half-written.
fn codec(kind: FormatKind, columns: Vec<(String, DataType)>) -> AssertUnwindSafe<ColumnsCodec> {
    let context = FormatContext {
        registry: Some(Arc::new(MemoryRegistry::default())),
    };
    AssertUnwindSafe(ColumnsCodec::new(
        Format::new(kind),
        columns,
        false,
        "fuzz-value".into(),
        &context,
    ))
}

/// Decodes, then writes what was read back and reads it again: a value a decoder accepts
/// must survive its own encoder.
fn decode_and_reencode(codec: &ColumnsCodec, bytes: &[u8]) {
    let Ok(values) = codec.decode(Some(bytes)) else {
        return;
    };
    assert_eq!(values.len(), codec.columns().len());
    if let Ok(Some(written)) = codec.encode(&values) {
        let again = codec.decode(Some(&written));
        assert!(
            again.is_ok(),
            "{:?} could not read what it wrote: {again:?}",
            codec
        );
    }
}

/// The JSON paths that skip values (bytes straight into cells, arrays straight into bytes)
/// must read and write exactly what the lenient path and the value encoder do.
fn fast_paths_agree(codec: &ColumnsCodec, bytes: &[u8]) {
    let (mut fields, mut cells) = (Vec::new(), Vec::new());
    let lenient = codec.decode(Some(bytes));
    let Some(()) = codec.decode_cells(Some(bytes), &mut fields, &mut cells) else {
        return;
    };
    let fast: Vec<Value> = cells
        .into_iter()
        .zip(codec.columns())
        .map(|(c, (_, t))| c.into_value(t))
        .collect();
    assert_eq!(
        lenient.as_ref(),
        Ok(&fast),
        "{:?}",
        String::from_utf8_lossy(bytes)
    );
    let arrays: Vec<arrow::array::ArrayRef> = codec
        .columns()
        .iter()
        .zip(&fast)
        .map(|((_, t), v)| crate::arrays::build_array(t, &[v]).expect("builds"))
        .collect();
    let views: Vec<&dyn arrow::array::Array> = arrays.iter().map(|a| a.as_ref()).collect();
    if let Some(writer) = codec.array_writer(&views) {
        assert_eq!(writer.write(0), codec.encode(&fast).expect("encodes"));
    }
}

#[test]
fn fuzz_json_and_delimited_decoders() {
    let json = codec(FormatKind::Json, columns());
    let json_sr = codec(FormatKind::JsonSr, columns());
    // DELIMITED takes primitive columns only.
    let delimited = codec(
        FormatKind::Delimited,
        columns().into_iter().take(10).collect(),
    );
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(move |bytes: &[u8]| {
            decode_and_reencode(&json, bytes);
            fast_paths_agree(&json, bytes);
            decode_and_reencode(&json_sr, bytes);
            decode_and_reencode(&delimited, bytes);
        });
}

#[test]
fn fuzz_kafka_decoder() {
    let codecs: Vec<AssertUnwindSafe<ColumnsCodec>> = [
        DataType::Int,
        DataType::BigInt,
        DataType::Double,
        DataType::String,
        DataType::Bytes,
    ]
    .into_iter()
    .map(|t| codec(FormatKind::Kafka, vec![("V".into(), t)]))
    .collect();
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(move |bytes: &[u8]| {
            for c in &codecs {
                decode_and_reencode(c, bytes);
            }
        });
}

#[test]
fn fuzz_avro_and_protobuf_decoders() {
    let avro = codec(FormatKind::Avro, columns());
    let protobuf = codec(FormatKind::Protobuf, columns());
    let protobuf_nosr = codec(FormatKind::ProtobufNoSr, columns());
    // Registered, so that framed records name a schema the registry has.
    let values: Vec<Value> = vec![Value::Null; columns().len()];
    let _ = avro.encode(&values);
    let _ = protobuf.encode(&values);
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(move |bytes: &[u8]| {
            decode_and_reencode(&avro, bytes);
            decode_and_reencode(&protobuf, bytes);
            decode_and_reencode(&protobuf_nosr, bytes);
            // The same bytes behind a valid frame reach the body decoders.
            for id in 1..=2u32 {
                let mut framed = vec![0u8];
                framed.extend_from_slice(&id.to_be_bytes());
                framed.extend_from_slice(bytes);
                decode_and_reencode(&avro, &framed);
                let mut indexed = framed.clone();
                indexed.insert(5, 0);
                decode_and_reencode(&protobuf, &indexed);
            }
        });
}

#[test]
fn fuzz_internal_records() {
    bolero::check!()
        .with_test_time(BUDGET)
        .for_each(move |bytes: &[u8]| {
            // What store values and repartition records hold: rows of values.
            let framed = [&[0xB7, crate::internal_format::VERSION][..], bytes].concat();
            for b in [bytes, &framed[..]] {
                if let Ok(rows) =
                    crate::internal_format::decode::<(Vec<Vec<Value>>, bool, i64)>(b, "fuzz")
                {
                    // Compared as bytes: a NaN read is a NaN written, and NaN != NaN.
                    let written = crate::internal_format::encode(&rows);
                    let again: (Vec<Vec<Value>>, bool, i64) =
                        crate::internal_format::decode(&written, "fuzz").expect("reads itself");
                    assert_eq!(crate::internal_format::encode(&again), written);
                }
            }
        });
}
