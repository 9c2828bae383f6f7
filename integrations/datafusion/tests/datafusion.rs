//! The plan as SQL: DataFusion with many partitions, over CSV split into files and over
//! Parquet, gives exactly the in-process statistics and plan.

use chrono::FixedOffset;
use coupons::money::{Currency, Money};
use coupons::targeting::{CycleStats, Cycles, PlanRules};
use coupons_datafusion::{PlanConfig, register};
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema, UInt32Type};
use datafusion::prelude::*;

const SAMPLE: &str = include_str!("../../../examples/plan_cycle/data/cdnow_orders.csv");
const ARGS: &str = "user_id, ordered_at, gross, discount, paid, coupon_used";

fn config() -> PlanConfig {
    let cycles = Cycles::monthly(FixedOffset::east_opt(0).unwrap());
    let september = cycles.index_of("1997-09-15T00:00:00Z".parse().unwrap());
    PlanConfig::new(cycles, Currency::USD, september, PlanRules::default())
}

fn in_process() -> CycleStats<String> {
    let usd = |s: &str| Money::parse(s, Currency::USD).unwrap();
    let mut stats = CycleStats::new(
        Cycles::monthly(FixedOffset::east_opt(0).unwrap()),
        Currency::USD,
    );
    for line in SAMPLE.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        stats
            .add_parts(
                f[0],
                f[1].parse().unwrap(),
                usd(f[2]),
                usd(f[3]),
                usd(f[4]),
                f[5] == "true",
            )
            .unwrap();
    }
    stats
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("ordered_at", DataType::Utf8, false),
        Field::new("gross", DataType::Decimal128(12, 2), false),
        Field::new("discount", DataType::Decimal128(12, 2), false),
        Field::new("paid", DataType::Decimal128(12, 2), false),
        Field::new("coupon_used", DataType::Boolean, false),
    ])
}

/// The sample split into `n` CSV files, rows dealt round-robin so every file spans all dates.
fn split_csv(n: usize) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("coupons-df-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = SAMPLE.lines();
    let header = lines.next().unwrap();
    let mut files: Vec<String> = (0..n).map(|_| format!("{header}\n")).collect();
    for (i, l) in lines.enumerate() {
        files[i % n].push_str(l);
        files[i % n].push('\n');
    }
    for (i, text) in files.iter().enumerate() {
        std::fs::write(dir.join(format!("part-{i}.csv")), text).unwrap();
    }
    dir
}

async fn stats_of(ctx: &SessionContext, table: &str) -> CycleStats<String> {
    let batches = ctx
        .sql(&format!("SELECT cycle_stats({ARGS}) FROM {table}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let col = batches[0].column(0);
    let json = col.as_any().downcast_ref::<StringArray>().unwrap().value(0);
    serde_json::from_str(json).unwrap()
}

/// (user, type, planned rate µ, threshold, save, validity, expected cost) per user.
type Row = (
    String,
    String,
    i128,
    Option<i128>,
    Option<i128>,
    Option<u32>,
    i128,
);

fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let mut out = Vec::new();
    for b in batches {
        let s = b.column(0).as_struct();
        let text = |name: &str| s.column_by_name(name).unwrap().as_string::<i32>().clone();
        let dec = |name: &str| {
            s.column_by_name(name)
                .unwrap()
                .as_primitive::<Decimal128Type>()
                .clone()
        };
        let (user, kind) = (text("user_id"), text("consumption_type"));
        let (rate, threshold, save, expected) = (
            dec("planned_rate"),
            dec("coupon_threshold"),
            dec("coupon_save"),
            dec("expected_cost"),
        );
        let validity = s
            .column_by_name("validity_days")
            .unwrap()
            .as_primitive::<UInt32Type>()
            .clone();
        let opt = |a: &datafusion::arrow::array::Decimal128Array, i: usize| {
            (!a.is_null(i)).then(|| a.value(i))
        };
        for i in 0..s.len() {
            out.push((
                user.value(i).to_owned(),
                kind.value(i).to_owned(),
                rate.value(i),
                opt(&threshold, i),
                opt(&save, i),
                (!validity.is_null(i)).then(|| validity.value(i)),
                expected.value(i),
            ));
        }
    }
    out.sort();
    out
}

fn expected_rows(stats: &CycleStats<String>) -> Vec<Row> {
    let plan = config().plan(stats).unwrap();
    let mut v: Vec<Row> = plan
        .users()
        .iter()
        .map(|p| {
            let c = p.coupon();
            (
                p.user().clone(),
                p.consumption().name(),
                i128::from(p.rate_micros()),
                c.map(|c| i128::from(c.threshold.to_minor().unwrap())),
                c.map(|c| i128::from(c.save.to_minor().unwrap())),
                c.map(|c| c.validity_days),
                i128::from(p.expected_cost().to_minor().unwrap()),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_many_partitions_gives_the_in_process_plan() {
    let reference = in_process();
    let expected = expected_rows(&reference);
    assert_eq!(expected.len(), 2_357);

    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(16)
            .with_batch_size(256),
    );
    register(&ctx, &config());
    let dir = split_csv(7);
    let schema = schema();
    let options = CsvReadOptions::new().schema(&schema).has_header(true);
    ctx.register_csv("orders", dir.to_str().unwrap(), options)
        .await
        .unwrap();

    // The physical plan aggregates partially in each partition and merges the partials.
    let explain = ctx
        .sql(&format!("EXPLAIN SELECT cycle_stats({ARGS}) FROM orders"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&explain)
        .unwrap()
        .to_string();
    assert!(
        text.contains("mode=Partial") && text.contains("mode=Final"),
        "{text}"
    );
    assert!(
        text.contains("file_groups={7 groups")
            || text.contains("partitions=7")
            || text.contains("7 groups"),
        "{text}"
    );

    // The statistics: every partition's partial, merged by DataFusion, equals one pass.
    assert_eq!(stats_of(&ctx, "orders").await, reference);

    // The plan as rows.
    let sql = format!("SELECT unnest(cycle_plan({ARGS})) AS p FROM orders");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    assert_eq!(rows_of(&batches), expected);

    // Partials are mergeable outside the engine too: per-group statistics merged in Rust.
    let grouped = ctx
        .sql(&format!(
            "SELECT cycle_stats({ARGS}) AS s FROM orders GROUP BY substr(ordered_at, 1, 7)"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut merged: Option<CycleStats<String>> = None;
    for b in &grouped {
        let col = b.column(0).as_string::<i32>();
        for i in 0..col.len() {
            let part: CycleStats<String> = serde_json::from_str(col.value(i)).unwrap();
            match merged.as_mut() {
                Some(m) => m.merge(part).unwrap(),
                None => merged = Some(part),
            }
        }
    }
    assert_eq!(merged.unwrap(), reference);

    // The same over Parquet.
    let pq = dir.join("parquet");
    ctx.sql("SELECT * FROM orders")
        .await
        .unwrap()
        .repartition(Partitioning::RoundRobinBatch(5))
        .unwrap()
        .write_parquet(
            pq.to_str().unwrap(),
            datafusion::dataframe::DataFrameWriteOptions::new(),
            None,
        )
        .await
        .unwrap();
    ctx.register_parquet(
        "orders_pq",
        pq.to_str().unwrap(),
        ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(stats_of(&ctx, "orders_pq").await, reference);
    let batches = ctx
        .sql(&format!(
            "SELECT unnest(cycle_plan({ARGS})) AS p FROM orders_pq"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(rows_of(&batches), expected);

    // A NULL is an error naming its column.
    let nulls = ctx
        .sql("SELECT cycle_stats(user_id, ordered_at, CAST(NULL AS DECIMAL(12,2)), discount, paid, coupon_used) FROM orders")
        .await
        .unwrap()
        .collect()
        .await;
    let err = nulls.unwrap_err().to_string();
    assert!(err.contains("gross is NULL"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
