//! The `coupons` cycle statistics as [Apache DataFusion](https://datafusion.apache.org)
//! aggregate functions, so the new cycle's plan runs as SQL over CSV or Parquet — on one machine
//! with many partitions, or on a Ballista cluster.
//!
//! Two aggregate functions over the same six arguments,
//! `(user_id, ordered_at, gross, discount, paid, coupon_used)`:
//!
//! - [`cycle_stats`] returns the statistics of the rows it aggregated, as JSON — the serialised
//!   [`CycleStats`];
//! - [`cycle_plan`] returns the plan of the cycle after the configured one: a list with one
//!   struct per user (`user_id`, `consumption_type`, `last_rate`, `standard_rate`,
//!   `planned_rate`, `change`, `coupon_threshold`, `coupon_save`, `validity_days`, `last_cost`,
//!   `expected_cost`); `unnest` makes it rows.
//!
//! The state both keep between partitions *is* the crate's mergeable partial: each partition
//! folds its rows into a [`CycleStats`], the partial travels (serialised with serde, as JSON
//! bytes) to wherever DataFusion merges states, and merging is exact — so the plan does not
//! depend on how the files were split, how many partitions ran, or on which machines.
//!
//! ```no_run
//! # async fn demo() -> datafusion::error::Result<()> {
//! use chrono::FixedOffset;
//! use coupons::money::Currency;
//! use coupons::targeting::{Cycles, PlanRules};
//! use coupons_datafusion::{PlanConfig, register};
//! use datafusion::prelude::*;
//!
//! let cycles = Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap());
//! let september = cycles.index_of("1997-09-15T00:00:00Z".parse().unwrap());
//! let config = PlanConfig::new(cycles, Currency::USD, september, PlanRules::default());
//!
//! let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(16));
//! register(&ctx, &config);
//! ctx.register_parquet("orders", "orders/", ParquetReadOptions::default()).await?;
//! let plan = ctx
//!     .sql("SELECT unnest(cycle_plan(user_id, ordered_at, gross, discount, paid, coupon_used)) AS p FROM orders")
//!     .await?;
//! plan.show().await?;
//! # Ok(()) }
//! ```
//!
//! **Argument types.** `user_id`: any type castable to text (integers, strings). `ordered_at`: a
//! timestamp (naive timestamps and dates are UTC) or RFC 3339 text. Amounts: `DECIMAL` (exact),
//! text (parsed exactly), or floats and decimals with more places than the currency (rounded to
//! the minor unit by Arrow's cast — give `DECIMAL(p, 2)` or text for exact input).
//! `coupon_used`: boolean (or castable to it). A `NULL` in any argument is an error naming the
//! column.
//!
//! # On a Ballista cluster
//!
//! Ballista ships plans between its scheduler and executors by function *name*, so every node
//! registers the same two functions, built from the same [`PlanConfig`]:
//!
//! ```text
//! // client
//! let state = SessionStateBuilder::new().with_default_features().build();
//! let ctx = SessionContext::remote_with_state("df://scheduler:50050", state).await?;
//! coupons_datafusion::register(&ctx, &config);
//!
//! // scheduler: a session builder that registers them too
//! let scheduler_config = SchedulerConfig {
//!     override_session_builder: Some(Arc::new(move |cfg: SessionConfig| {
//!         let mut state = SessionStateBuilder::new().with_config(cfg).with_default_features().build();
//!         coupons_datafusion::register_state(&mut state, &config)?;
//!         Ok(state)
//!     })),
//!     ..Default::default()
//! };
//!
//! // each executor: its function registry
//! let mut registry = BallistaFunctionRegistry::default();
//! for udaf in coupons_datafusion::functions(&config) {
//!     registry.aggregate_functions.insert(udaf.name().to_owned(), Arc::new(udaf));
//! }
//! let executor_config = ExecutorProcessConfig {
//!     override_function_registry: Some(Arc::new(registry)),
//!     ..Default::default()
//! };
//! start_executor_process(Arc::new(executor_config)).await?;
//! ```
//!
//! Partial states then cross the network as the JSON of [`CycleStats`], and the final merge on
//! one executor gives exactly the in-process result.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::any::Any;
use std::sync::Arc;

use chrono::DateTime;
use coupons::money::{Currency, Money};
use coupons::targeting::{
    CycleIndex, CyclePlan, CycleStats, Cycles, PlanRules, StandardRule, TypeGrid, classify,
    plan_cycle, standard_rates,
};
use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Decimal128Builder, ListArray,
    StringArray, StringBuilder, StructArray, TimestampMicrosecondArray, UInt32Builder,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// What the functions need to know: the cycles, the currency, the cycle to plan from and the
/// plan's rules. Every node of a cluster registers the functions from the same config.
#[derive(Clone, Debug)]
pub struct PlanConfig {
    cycles: Cycles,
    currency: Currency,
    cycle: CycleIndex,
    rules: PlanRules,
    grid: TypeGrid,
    standard: StandardRule,
}

impl PlanConfig {
    /// Cycles in `currency`, planning the cycle after `cycle` with `rules`, medians for the
    /// types and the aggregate standard rate.
    pub fn new(
        cycles: Cycles,
        currency: Currency,
        cycle: CycleIndex,
        rules: PlanRules,
    ) -> PlanConfig {
        PlanConfig {
            cycles,
            currency,
            cycle,
            rules,
            grid: TypeGrid::medians(),
            standard: StandardRule::default(),
        }
    }

    /// Another grid of types.
    pub fn with_grid(mut self, grid: TypeGrid) -> PlanConfig {
        self.grid = grid;
        self
    }

    /// Another standard-rate rule.
    pub fn with_standard(mut self, standard: StandardRule) -> PlanConfig {
        self.standard = standard;
        self
    }

    /// The plan of merged statistics, in process — what [`cycle_plan`] computes at the end.
    ///
    /// # Errors
    /// The targeting functions' errors, as DataFusion errors.
    pub fn plan(&self, stats: &CycleStats<String>) -> Result<CyclePlan<String>> {
        let types = classify(stats, self.cycle, &self.grid).map_err(external)?;
        let standards = standard_rates(stats, &types, &self.standard).map_err(external)?;
        plan_cycle(stats, &types, &standards, &self.rules).map_err(external)
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Stats,
    Plan,
}

#[derive(Debug)]
struct CycleUdaf {
    name: &'static str,
    output: Output,
    config: PlanConfig,
    signature: Signature,
}

/// `cycle_stats(user_id, ordered_at, gross, discount, paid, coupon_used)`: the statistics as
/// JSON (a serialised [`CycleStats`] keyed by the user id as text).
pub fn cycle_stats(config: &PlanConfig) -> AggregateUDF {
    AggregateUDF::from(CycleUdaf {
        name: "cycle_stats",
        output: Output::Stats,
        config: config.clone(),
        signature: Signature::any(6, Volatility::Immutable),
    })
}

/// `cycle_plan(user_id, ordered_at, gross, discount, paid, coupon_used)`: the plan of the cycle
/// after the configured one, one struct per user (see the [crate docs](crate)).
pub fn cycle_plan(config: &PlanConfig) -> AggregateUDF {
    AggregateUDF::from(CycleUdaf {
        name: "cycle_plan",
        output: Output::Plan,
        config: config.clone(),
        signature: Signature::any(6, Volatility::Immutable),
    })
}

/// Both functions.
pub fn functions(config: &PlanConfig) -> [AggregateUDF; 2] {
    [cycle_stats(config), cycle_plan(config)]
}

/// Registers both functions with a session.
pub fn register(ctx: &SessionContext, config: &PlanConfig) {
    for f in functions(config) {
        ctx.register_udaf(f);
    }
}

/// Registers both functions with a session state (for a Ballista scheduler's session builder).
///
/// # Errors
/// DataFusion's registration errors.
pub fn register_state(state: &mut SessionState, config: &PlanConfig) -> Result<()> {
    use datafusion::execution::FunctionRegistry;
    for f in functions(config) {
        state.register_udaf(Arc::new(f))?;
    }
    Ok(())
}

fn money_type(currency: Currency) -> DataType {
    DataType::Decimal128(38, currency.exponent() as i8)
}

fn rate_type() -> DataType {
    DataType::Decimal128(10, 6)
}

/// The fields of one user's plan.
pub fn plan_fields(currency: Currency) -> Fields {
    let money = money_type(currency);
    Fields::from(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("consumption_type", DataType::Utf8, false),
        Field::new("last_rate", rate_type(), true),
        Field::new("standard_rate", rate_type(), false),
        Field::new("planned_rate", rate_type(), false),
        Field::new("change", DataType::Utf8, false),
        Field::new("coupon_threshold", money.clone(), true),
        Field::new("coupon_save", money.clone(), true),
        Field::new("validity_days", DataType::UInt32, true),
        Field::new("last_cost", money.clone(), false),
        Field::new("expected_cost", money, false),
    ])
}

fn plan_item(currency: Currency) -> FieldRef {
    Arc::new(Field::new(
        "item",
        DataType::Struct(plan_fields(currency)),
        true,
    ))
}

impl AggregateUDFImpl for CycleUdaf {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            Output::Stats => DataType::Utf8,
            Output::Plan => DataType::List(plan_item(self.config.currency)),
        })
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CycleAccumulator {
            stats: CycleStats::new(self.config.cycles, self.config.currency),
            output: self.output,
            config: self.config.clone(),
        }))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "partial"),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
struct CycleAccumulator {
    stats: CycleStats<String>,
    output: Output,
    config: PlanConfig,
}

const COLUMNS: [&str; 6] = [
    "user_id",
    "ordered_at",
    "gross",
    "discount",
    "paid",
    "coupon_used",
];

fn null_check(a: &dyn Array, i: usize, row: usize) -> Result<()> {
    if a.is_null(row) {
        return Err(DataFusionError::Execution(format!(
            "cycle statistics: {} is NULL in a row",
            COLUMNS[i]
        )));
    }
    Ok(())
}

fn downcast<'a, T: 'static>(a: &'a ArrayRef, what: &str) -> Result<&'a T> {
    a.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| DataFusionError::Internal(format!("cycle statistics: {what} did not cast")))
}

impl Accumulator for CycleAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [user, at, gross, discount, paid, coupon] = values else {
            return Err(DataFusionError::Plan(
                "cycle statistics take six arguments".into(),
            ));
        };
        let currency = self.config.currency;
        let money = money_type(currency);
        let user = cast(user, &DataType::Utf8)?;
        let at = cast(
            at,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let amounts = [
            cast(gross, &money)?,
            cast(discount, &money)?,
            cast(paid, &money)?,
        ];
        let coupon = cast(coupon, &DataType::Boolean)?;
        let user_a = downcast::<StringArray>(&user, "user_id")?;
        let at_a = downcast::<TimestampMicrosecondArray>(&at, "ordered_at")?;
        let g = downcast::<Decimal128Array>(&amounts[0], "gross")?;
        let d = downcast::<Decimal128Array>(&amounts[1], "discount")?;
        let p = downcast::<Decimal128Array>(&amounts[2], "paid")?;
        let c = downcast::<BooleanArray>(&coupon, "coupon_used")?;
        let cols: [&dyn Array; 6] = [user_a, at_a, g, d, p, c];
        let minor = |v: i128| -> Result<Money> {
            let v = i64::try_from(v).map_err(|_| {
                DataFusionError::Execution("cycle statistics: an amount is too large".into())
            })?;
            Ok(Money::from_minor(v, currency))
        };
        for row in 0..user_a.len() {
            for (i, col) in cols.iter().enumerate() {
                null_check(*col, i, row)?;
            }
            let when = DateTime::from_timestamp_micros(at_a.value(row)).ok_or_else(|| {
                DataFusionError::Execution("cycle statistics: ordered_at out of range".into())
            })?;
            self.stats
                .add_parts(
                    user_a.value(row),
                    when,
                    minor(g.value(row))?,
                    minor(d.value(row))?,
                    minor(p.value(row))?,
                    c.value(row),
                )
                .map_err(external)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.output {
            Output::Stats => Ok(ScalarValue::Utf8(Some(
                serde_json::to_string(&self.stats).map_err(external)?,
            ))),
            Output::Plan => {
                let plan = self.config.plan(&self.stats)?;
                Ok(ScalarValue::List(Arc::new(plan_list(
                    &plan,
                    self.config.currency,
                )?)))
            }
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.stats.user_count() * 160
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(
            serde_json::to_vec(&self.stats).map_err(external)?,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(first) = states.first() else {
            return Ok(());
        };
        let partials = downcast::<BinaryArray>(first, "the partial state")?;
        for i in 0..partials.len() {
            if partials.is_null(i) {
                continue;
            }
            let other: CycleStats<String> =
                serde_json::from_slice(partials.value(i)).map_err(external)?;
            self.stats.merge(other).map_err(external)?;
        }
        Ok(())
    }
}

/// One user's plan per element of a list with one entry.
fn plan_list(plan: &CyclePlan<String>, currency: Currency) -> Result<ListArray> {
    let n = plan.users().len();
    let money = money_type(currency);
    let exp = currency.exponent() as i8;
    let dec = |b: Decimal128Builder, t: &DataType| -> Result<ArrayRef> {
        Ok(Arc::new(b.with_data_type(t.clone()).finish()))
    };
    let (mut user, mut kind, mut change) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut last_rate, mut standard, mut rate) = (
        Decimal128Builder::with_capacity(n),
        Decimal128Builder::with_capacity(n),
        Decimal128Builder::with_capacity(n),
    );
    let (mut threshold, mut save, mut last_cost, mut expected) = (
        Decimal128Builder::with_capacity(n),
        Decimal128Builder::with_capacity(n),
        Decimal128Builder::with_capacity(n),
        Decimal128Builder::with_capacity(n),
    );
    let mut validity = UInt32Builder::with_capacity(n);
    let micros = |d: rust_decimal::Decimal| -> i128 {
        (d * rust_decimal::Decimal::from(1_000_000))
            .trunc()
            .mantissa()
    };
    let minor = |m: Money| -> i128 { m.to_minor().map_or(0, i128::from) };
    for p in plan.users() {
        user.append_value(p.user());
        kind.append_value(p.consumption().name());
        last_rate.append_option(p.last_rate().map(|r| micros(r.to_decimal(6))));
        standard.append_value(micros(p.standard()));
        rate.append_value(i128::from(p.rate_micros()));
        change.append_value(p.change().as_str());
        let coupon = p.coupon();
        threshold.append_option(coupon.map(|c| minor(c.threshold)));
        save.append_option(coupon.map(|c| minor(c.save)));
        validity.append_option(coupon.map(|c| c.validity_days));
        last_cost.append_value(minor(p.last_cost()));
        expected.append_value(minor(p.expected_cost()));
    }
    let _ = exp;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(user.finish()),
        Arc::new(kind.finish()),
        dec(last_rate, &rate_type())?,
        dec(standard, &rate_type())?,
        dec(rate, &rate_type())?,
        Arc::new(change.finish()),
        dec(threshold, &money)?,
        dec(save, &money)?,
        Arc::new(validity.finish()),
        dec(last_cost, &money)?,
        dec(expected, &money)?,
    ];
    let structs = StructArray::try_new(plan_fields(currency), columns, None)?;
    Ok(ListArray::try_new(
        plan_item(currency),
        OffsetBuffer::from_lengths([n]),
        Arc::new(structs),
        None,
    )?)
}
