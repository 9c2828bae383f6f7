//! `plan-cycle`: the new cycle's coupon plan from an orders CSV.
//!
//! ```text
//! cargo run -p plan-cycle --release -- examples/plan_cycle/data/cdnow_orders.csv --cycle 1997-09
//! ```
//!
//! Reads `user_id,ordered_at,gross,discount,paid,coupon_used` (see the README beside this
//! file), runs cycle statistics → consumption types → standard rates → the plan → segments,
//! writes the per-user plan as CSV (`--out`, default `plan.csv`) and prints a summary table.
//! Parses on every core (`--threads`), each thread building a partial that merges exactly.
//! A bad row stops the run, naming its line (`--on-bad-row stop`, the default), or is skipped
//! and reported with every other skipped line (`--on-bad-row skip`).

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use coupons::id::UserId;
use coupons::money::Currency;
use coupons::targeting::{CycleIndex, Cycles, PlanRules};
use plan_cycle::{
    OnBadRow, ParseKey, Read, ReadError, Settings, read_orders, run, summary, write_plan,
};
use rust_decimal::Decimal;

const USAGE: &str =
    "usage: plan-cycle ORDERS.csv [--cycle YYYY-MM] [--utc-offset +08:00] [--currency USD]
                  [--out plan.csv] [--on-bad-row stop|skip] [--threads N] [--now RFC3339]
                  [--max-step 0.02] [--floor 0] [--ceiling 0.3] [--p-alive FILE.csv] [--quiet]";

struct Args {
    path: String,
    cycle: Option<String>,
    offset: FixedOffset,
    currency: Currency,
    out: String,
    on_bad_row: OnBadRow,
    threads: usize,
    now: Option<DateTime<Utc>>,
    rules: PlanRules,
    p_alive: Option<String>,
    quiet: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        path: String::new(),
        cycle: None,
        offset: FixedOffset::east_opt(0).ok_or("offset")?,
        currency: Currency::USD,
        out: "plan.csv".into(),
        on_bad_row: OnBadRow::Stop,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        now: None,
        rules: PlanRules::default(),
        p_alive: None,
        quiet: false,
    };
    let dec = |v: String, what: &str| {
        v.parse::<Decimal>()
            .map_err(|_| format!("{what}: {v:?} is not a decimal"))
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cycle" => a.cycle = Some(value()?),
            "--utc-offset" => {
                let v = value()?;
                a.offset = v
                    .parse()
                    .map_err(|_| format!("--utc-offset: {v:?} is not like +08:00"))?;
            }
            "--currency" => {
                let v = value()?;
                a.currency = v.parse().map_err(|e| format!("--currency: {e}"))?;
            }
            "--out" => a.out = value()?,
            "--on-bad-row" => {
                a.on_bad_row = match value()?.as_str() {
                    "stop" => OnBadRow::Stop,
                    "skip" => OnBadRow::Skip,
                    v => return Err(format!("--on-bad-row: {v:?} is neither stop nor skip")),
                }
            }
            "--threads" => {
                let v = value()?;
                a.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads: {v:?}"))?;
            }
            "--now" => {
                let v = value()?;
                a.now = Some(
                    DateTime::parse_from_rfc3339(&v)
                        .map_err(|_| format!("--now: {v:?} is not RFC 3339"))?
                        .with_timezone(&Utc),
                );
            }
            "--max-step" => a.rules.max_step = dec(value()?, "--max-step")?,
            "--floor" => a.rules.floor = dec(value()?, "--floor")?,
            "--ceiling" => a.rules.ceiling = dec(value()?, "--ceiling")?,
            "--p-alive" => a.p_alive = Some(value()?),
            "--quiet" => a.quiet = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            s if a.path.is_empty() => a.path = s.to_owned(),
            s => return Err(format!("unexpected argument {s:?}\n{USAGE}")),
        }
    }
    if a.path.is_empty() {
        return Err(USAGE.into());
    }
    Ok(a)
}

/// `user_id,p_alive` lines, for the churn-risk segment.
fn read_p_alive<K: ParseKey>(path: &str) -> Result<HashMap<K, f64>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut m = HashMap::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let Some((u, p)) = line.split_once(',') else {
            continue;
        };
        let bad = || format!("{path}: line {}: expected user_id,p_alive", i + 1);
        let k = K::parse_key(u.trim()).map_err(|_| bad())?;
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        m.insert(k, p);
    }
    Ok(m)
}

fn analysed_cycle(
    a: &Args,
    cycles: &Cycles,
    last: Option<DateTime<Utc>>,
) -> Result<CycleIndex, String> {
    match &a.cycle {
        Some(c) => {
            let d = NaiveDate::parse_from_str(&format!("{c}-15"), "%Y-%m-%d")
                .map_err(|_| format!("--cycle: {c:?} is not YYYY-MM"))?;
            let t = d.and_hms_opt(12, 0, 0).ok_or("--cycle")?.and_utc();
            Ok(cycles.index_of(t))
        }
        // The month of the latest order.
        None => last
            .map(|t| cycles.index_of(t))
            .ok_or_else(|| "no orders".to_owned()),
    }
}

fn go<K: ParseKey>(a: &Args, data: &[u8], settings: &Settings) -> Result<Option<()>, String> {
    let bar = if a.quiet || data.len() < (64 << 20) {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(data.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            b.set_style(style);
        }
        b
    };
    let read = read_orders::<K>(data, settings, &bar).map_err(|e| match e {
        ReadError::Bad(b) => format!(
            "line {}: {}\n(use --on-bad-row skip to skip bad rows and report them)",
            b.line, b.reason
        ),
        e => e.to_string(),
    });
    bar.finish_and_clear();
    let Some(Read {
        stats,
        skipped,
        rows,
    }) = read?
    else {
        return Ok(None);
    };
    for b in &skipped {
        eprintln!("skipped line {}: {}", b.line, b.reason);
    }
    let cycles = settings.cycles;
    let cycle = analysed_cycle(a, &cycles, stats.last_order())?;
    let now = match a.now {
        Some(t) => t,
        None => cycles.bounds(cycle).map_err(|e| e.to_string())?.1,
    };
    let p_alive = match &a.p_alive {
        Some(p) => read_p_alive::<K>(p)?,
        None => HashMap::new(),
    };
    let outcome = run(&stats, cycle, now, &a.rules, &p_alive).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(&a.out).map_err(|e| format!("{}: {e}", a.out))?;
    write_plan(&outcome, file).map_err(|e| format!("{}: {e}", a.out))?;
    print!("{}", summary(&outcome, &cycles, rows, skipped.len()));
    println!("plan written to {}", a.out);
    Ok(Some(()))
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let data = match std::fs::read(&a.path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{}: {e}", a.path);
            return ExitCode::from(1);
        }
    };
    let settings = Settings {
        cycles: Cycles::monthly(a.offset),
        currency: a.currency,
        on_bad_row: a.on_bad_row,
        threads: a.threads,
    };
    // Plain numeric ids are read as numbers (fast); any other id reads the file again as text.
    let result = match go::<u64>(&a, &data, &settings) {
        Ok(None) => go::<UserId>(&a, &data, &settings).map(|_| ()),
        r => r.map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
