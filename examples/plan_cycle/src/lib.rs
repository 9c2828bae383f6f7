//! The cycle plan as a batch job: orders from CSV in, per-user plan CSV and a summary out.
//!
//! The library half of the `plan-cycle` binary, so its pieces are tested: [`read_orders`]
//! parses a CSV file on every core into mergeable partial statistics (one per chunk of the
//! file, merged exactly), reporting each bad row by its line number; [`run`] computes types,
//! standard rates, the plan and segments; [`write_plan`] and [`summary`] produce the outputs.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Write};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use coupons::id::UserId;
use coupons::money::Currency;
use coupons::targeting::*;

/// The columns every orders file has, by name, in any order (more are ignored).
pub const COLUMNS: [&str; 6] = [
    "user_id",
    "ordered_at",
    "gross",
    "discount",
    "paid",
    "coupon_used",
];

/// What to do with a row that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnBadRow {
    /// Stop at the first bad row (the default); nothing is written.
    Stop,
    /// Skip it, and report every skipped line.
    Skip,
}

/// A row that could not be read: its 1-based line number in the file and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The line number, 1 for the header.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The file could not be read.
    Io(io::Error),
    /// The header lacks a column.
    Header(String),
    /// A bad row, with [`OnBadRow::Stop`].
    Bad(BadRow),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read the orders: {e}"),
            ReadError::Header(h) => write!(f, "line 1: {h}"),
            ReadError::Bad(b) => write!(f, "line {}: {}", b.line, b.reason),
        }
    }
}

impl std::error::Error for ReadError {}

/// A user key the reader can parse from a field.
pub trait ParseKey: UserKey + Send + Sync + 'static {
    /// The key; `Err(None)` when the field is not this kind of key (the file is read again
    /// with text ids), `Err(Some(reason))` for a bad id.
    fn parse_key(field: &str) -> Result<Self, Option<String>>;
    /// The key as written in the output.
    fn write_key(&self, out: &mut String);
}

impl ParseKey for u64 {
    /// Only canonical decimal numbers (no sign, no leading zero), so the output spells every id
    /// exactly as the input did.
    fn parse_key(field: &str) -> Result<u64, Option<String>> {
        let b = field.as_bytes();
        if b.is_empty()
            || b.len() > 19
            || (b.len() > 1 && b[0] == b'0')
            || !b.iter().all(u8::is_ascii_digit)
        {
            return Err(None);
        }
        field.parse().map_err(|_| None)
    }
    fn write_key(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl ParseKey for UserId {
    fn parse_key(field: &str) -> Result<UserId, Option<String>> {
        UserId::new(field).map_err(|e| Some(e.to_string()))
    }
    fn write_key(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
}

/// Settings of a run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The cycles (months in an offset by default).
    pub cycles: Cycles,
    /// The currency of every amount.
    pub currency: Currency,
    /// What to do with bad rows.
    pub on_bad_row: OnBadRow,
    /// Threads to parse with.
    pub threads: usize,
}

/// Statistics read from a file, with every skipped row.
pub struct Read<K> {
    /// The merged statistics.
    pub stats: CycleStats<K>,
    /// Rows skipped, in line order.
    pub skipped: Vec<BadRow>,
    /// Data rows read (skipped ones included).
    pub rows: u64,
}

/// What a chunk's worker read: its partial, its skipped rows, its row count.
type Chunk<K> = (CycleStats<K>, Vec<BadRow>, u64);

/// Why a chunk's worker stopped.
enum ChunkEnd {
    Bad(BadRow),
    /// A user id did not fit the key type: the caller retries with text ids.
    WrongKey,
}

struct Columns {
    user: usize,
    at: usize,
    gross: usize,
    discount: usize,
    paid: usize,
    coupon: usize,
    count: usize,
}

fn header(line: &str) -> Result<Columns, ReadError> {
    let names: Vec<&str> = line
        .trim_end_matches('\r')
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .collect();
    let find = |c: &str| {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(c))
            .ok_or_else(|| {
                ReadError::Header(format!("no column {c:?} (need {})", COLUMNS.join(", ")))
            })
    };
    Ok(Columns {
        user: find("user_id")?,
        at: find("ordered_at")?,
        gross: find("gross")?,
        discount: find("discount")?,
        paid: find("paid")?,
        coupon: find("coupon_used")?,
        count: names.len(),
    })
}

/// An amount like `29.33` in minor units of a currency with `exp` decimals.
fn parse_minor(s: &str, exp: u32, what: &str) -> Result<i64, String> {
    let bad = || format!("{what} {s:?} is not an amount with at most {exp} decimals");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty()
        || frac.len() > exp as usize
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let mut v: i64 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or_else(bad)?;
    }
    for _ in frac.len()..exp as usize {
        v = v.checked_mul(10).ok_or_else(bad)?;
    }
    Ok(v)
}

fn two(b: &[u8], i: usize) -> Option<u32> {
    let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit())
        .then(|| u32::from(x - b'0') * 10 + u32::from(y - b'0'))
}

/// An instant: RFC 3339 (`1997-01-01T12:00:00Z`, `…+08:00`, fractions allowed) or a bare date
/// `1997-01-01`, taken as midnight in the cycles' offset.
fn parse_time(s: &str, offset: FixedOffset) -> Result<DateTime<Utc>, String> {
    let b = s.as_bytes();
    // The common case, `YYYY-MM-DDTHH:MM:SSZ`, without a general parser.
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        if let (Some(y1), Some(y2), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
            two(b, 0),
            two(b, 2),
            two(b, 5),
            two(b, 8),
            two(b, 11),
            two(b, 14),
            two(b, 17),
        ) {
            if let Some(t) = NaiveDate::from_ymd_opt((y1 * 100 + y2) as i32, mo, d)
                .and_then(|d| d.and_hms_opt(h, mi, se))
            {
                return Ok(t.and_utc());
            }
        }
    }
    if b.len() == 10 {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            if let Some(t) = d
                .and_hms_opt(0, 0, 0)
                .and_then(|t| t.and_local_timezone(offset).single())
            {
                return Ok(t.with_timezone(&Utc));
            }
        }
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("ordered_at {s:?} is not an RFC 3339 instant or a date"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "TRUE" | "True" | "1" | "yes" | "y" => Ok(true),
        "false" | "FALSE" | "False" | "0" | "no" | "n" | "" => Ok(false),
        _ => Err(format!("coupon_used {s:?} is not true or false")),
    }
}

/// One data line as an order, or why not (`Err(None)`: the id is not this kind of key).
fn parse_row<K: ParseKey>(
    raw: &[u8],
    cols: &Columns,
    exp: u32,
    offset: FixedOffset,
    fields: &mut Vec<usize>,
) -> Result<MinorOrder<K>, Option<String>> {
    let text = std::str::from_utf8(raw).map_err(|_| "the line is not UTF-8".to_owned())?;
    // Field boundaries, without allocating per row.
    fields.clear();
    fields.push(0);
    for (i, b) in text.bytes().enumerate() {
        if b == b',' {
            fields.push(i + 1);
        }
    }
    if fields.len() != cols.count {
        return Err(Some(format!(
            "{} fields, the header has {}",
            fields.len(),
            cols.count
        )));
    }
    let field = |i: usize| -> &str {
        let start = fields.get(i).copied().unwrap_or(0);
        let end = fields.get(i + 1).map_or(text.len(), |e| e - 1);
        text.get(start..end).unwrap_or("").trim().trim_matches('"')
    };
    let user = K::parse_key(field(cols.user))?;
    let at = parse_time(field(cols.at), offset)?;
    let gross = parse_minor(field(cols.gross), exp, "gross")?;
    let discount = parse_minor(field(cols.discount), exp, "discount")?;
    let paid = parse_minor(field(cols.paid), exp, "paid")?;
    if discount > gross {
        return Err(Some(format!(
            "discount {} exceeds the gross amount {}",
            field(cols.discount),
            field(cols.gross)
        )));
    }
    let coupon_used = parse_bool(field(cols.coupon))?;
    Ok(MinorOrder {
        user,
        at_micros: at.timestamp_micros(),
        gross,
        discount,
        paid,
        coupon_used,
    })
}

/// Parses one chunk of data lines into a partial; `first_line` is the chunk's first line number.
fn read_chunk<K: ParseKey>(
    chunk: &[u8],
    first_line: u64,
    cols: &Columns,
    settings: &Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Chunk<K>, ChunkEnd> {
    let mut stats = CycleStats::new(settings.cycles, settings.currency);
    let mut skipped = Vec::new();
    let exp = u32::from(settings.currency.exponent());
    let offset = settings.cycles.offset();
    let mut line = first_line;
    let mut rows = 0u64;
    let mut since_tick = 0usize;
    let mut stop: Option<ChunkEnd> = None;
    let mut fields = Vec::with_capacity(cols.count + 1);
    let mut lines = chunk.split(|b| *b == b'\n');
    // Rows parse lazily as the statistics take them in.
    let orders = std::iter::from_fn(|| {
        loop {
            let raw = lines.next()?;
            since_tick += raw.len() + 1;
            if since_tick >= 1 << 22 {
                progress.inc(since_tick as u64);
                since_tick = 0;
            }
            let this = line;
            line += 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            rows += 1;
            match parse_row::<K>(raw, cols, exp, offset, &mut fields) {
                Ok(o) => return Some(o),
                Err(None) => {
                    stop = Some(ChunkEnd::WrongKey);
                    return None;
                }
                Err(Some(reason)) => {
                    let bad = BadRow { line: this, reason };
                    match settings.on_bad_row {
                        OnBadRow::Stop => {
                            stop = Some(ChunkEnd::Bad(bad));
                            return None;
                        }
                        OnBadRow::Skip => skipped.push(bad),
                    }
                }
            }
        }
    });
    let added = stats.extend_minor(orders);
    progress.inc(since_tick as u64);
    if let Some(s) = stop {
        return Err(s);
    }
    if let Err((_, e)) = added {
        // Rows are checked while parsing; what is left is a sum that no longer fits.
        return Err(ChunkEnd::Bad(BadRow {
            line: first_line,
            reason: e.to_string(),
        }));
    }
    Ok((stats, skipped, rows))
}

/// Reads the orders in `data` (a whole CSV file with its header) on `settings.threads` threads.
/// Returns `Ok(None)` when a user id is not a plain number and `K` is `u64` (read again with
/// text ids).
///
/// # Errors
/// [`ReadError::Header`] for a missing column, [`ReadError::Bad`] for the first bad row (by line
/// number) under [`OnBadRow::Stop`].
pub fn read_orders<K: ParseKey>(
    data: &[u8],
    settings: &Settings,
    progress: &indicatif::ProgressBar,
) -> Result<Option<Read<K>>, ReadError> {
    let header_end = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let head = std::str::from_utf8(&data[..header_end])
        .map_err(|_| ReadError::Header("the header is not UTF-8".into()))?;
    let cols = header(head.trim_start_matches('\u{feff}'))?;
    let body = data.get(header_end + 1..).unwrap_or(&[]);
    // Chunks end at line ends; each worker counts its own lines.
    let n = settings.threads.max(1);
    let mut bounds = vec![0usize];
    for i in 1..n {
        let mut at = body.len() * i / n;
        while at < body.len() && body[at - 1] != b'\n' {
            at += 1;
        }
        if at > *bounds.last().unwrap_or(&0) {
            bounds.push(at);
        }
    }
    bounds.push(body.len());
    bounds.dedup();
    let chunks: Vec<&[u8]> = bounds.windows(2).map(|w| &body[w[0]..w[1]]).collect();
    // Line numbers: the header is line 1; each chunk starts after the lines before it.
    let mut firsts = Vec::with_capacity(chunks.len());
    let mut line = 2u64;
    for c in &chunks {
        firsts.push(line);
        line += c.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let results: Vec<Result<Chunk<K>, ChunkEnd>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .zip(&firsts)
            .map(|(c, f)| {
                let cols = &cols;
                s.spawn(move || read_chunk::<K>(c, *f, cols, settings, progress))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(ChunkEnd::WrongKey)))
            .collect()
    });
    let mut stats = CycleStats::new(settings.cycles, settings.currency);
    let mut skipped = Vec::new();
    let mut rows = 0;
    let mut first_bad: Option<BadRow> = None;
    for r in results {
        match r {
            Ok((partial, bad, n)) => {
                stats
                    .merge(partial)
                    .map_err(|e| ReadError::Header(e.to_string()))?;
                skipped.extend(bad);
                rows += n;
            }
            Err(ChunkEnd::WrongKey) => return Ok(None),
            Err(ChunkEnd::Bad(b)) => {
                if first_bad.as_ref().is_none_or(|f| b.line < f.line) {
                    first_bad = Some(b);
                }
            }
        }
    }
    if let Some(b) = first_bad {
        return Err(ReadError::Bad(b));
    }
    skipped.sort_by_key(|b| b.line);
    Ok(Some(Read {
        stats,
        skipped,
        rows,
    }))
}

/// Everything a run computes.
pub struct Outcome<K> {
    /// The cycle analysed.
    pub cycle: CycleIndex,
    /// Consumption types.
    pub types: ConsumptionTypes<K>,
    /// Standard rates.
    pub standards: StandardRates,
    /// The plan of the next cycle.
    pub plan: CyclePlan<K>,
    /// Lifecycle segments at `now`.
    pub lifecycle: Segments<K, Lifecycle>,
    /// RFM scores at `now`.
    pub rfm: Segments<K, RfmScore>,
}

/// Types → standard rates → plan → segments, for `cycle`, with segments at `now`.
///
/// # Errors
/// The targeting functions' errors.
pub fn run<K: UserKey>(
    stats: &CycleStats<K>,
    cycle: CycleIndex,
    now: DateTime<Utc>,
    rules: &PlanRules,
    p_alive: &HashMap<K, f64>,
) -> Result<Outcome<K>, TargetingError> {
    let types = classify(stats, cycle, &TypeGrid::medians())?;
    let standards = standard_rates(stats, &types, &StandardRule::default())?;
    let plan = plan_cycle(stats, &types, &standards, rules)?;
    let lifecycle = lifecycle_segments(stats, now, &LifecycleRules::default(), |k| {
        p_alive.get(k).copied()
    })?;
    let rfm = rfm_scores(stats, now)?;
    Ok(Outcome {
        cycle,
        types,
        standards,
        plan,
        lifecycle,
        rfm,
    })
}

fn push_minor(out: &mut String, v: i64, exp: u32) {
    if exp == 0 {
        let _ = write!(out, "{v}");
        return;
    }
    let p = 10i64.pow(exp);
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    let _ = write!(
        out,
        "{sign}{}.{:0w$}",
        a / p as u64,
        a % p as u64,
        w = exp as usize
    );
}

fn push_micros(out: &mut String, v: i64) {
    let _ = write!(out, "{}.{:06}", v / 1_000_000, v % 1_000_000);
}

/// The per-user plan as CSV, one line per user, sorted by user.
///
/// # Errors
/// Write errors.
pub fn write_plan<K: ParseKey, W: Write>(o: &Outcome<K>, out: W) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    w.write_all(b"user_id,consumption_type,last_rate,standard_rate,planned_rate,change,coupon_threshold,coupon_save,validity_days,last_cost,expected_cost,lifecycle,rfm_r,rfm_f,rfm_m,rfm_segment\n")?;
    let mut line = String::with_capacity(256);
    let names: BTreeMap<ConsumptionType, String> = o
        .types
        .all_types()
        .into_iter()
        .map(|t| (t, t.name()))
        .collect();
    for p in o.plan.users() {
        line.clear();
        let exp = u32::from(p.last_cost().currency().exponent());
        p.user().write_key(&mut line);
        line.push(',');
        line.push_str(names.get(&p.consumption()).map_or("", String::as_str));
        line.push(',');
        if let Some(r) = p.last_rate() {
            let _ = write!(line, "{}", r.to_decimal(6));
        }
        line.push(',');
        push_micros(
            &mut line,
            (p.standard() * rust_decimal::Decimal::from(1_000_000))
                .try_into()
                .unwrap_or(0),
        );
        line.push(',');
        push_micros(&mut line, p.rate_micros());
        line.push(',');
        line.push_str(p.change().as_str());
        line.push(',');
        if let Some(c) = p.coupon() {
            push_minor(&mut line, c.threshold.to_minor().unwrap_or(0), exp);
            line.push(',');
            push_minor(&mut line, c.save.to_minor().unwrap_or(0), exp);
            let _ = write!(line, ",{}", c.validity_days);
        } else {
            line.push_str(",,");
        }
        line.push(',');
        push_minor(&mut line, p.last_cost().to_minor().unwrap_or(0), exp);
        line.push(',');
        push_minor(&mut line, p.expected_cost().to_minor().unwrap_or(0), exp);
        line.push(',');
        line.push_str(o.lifecycle.get(p.user()).map_or("", |l| l.as_str()));
        match o.rfm.get(p.user()) {
            Some(s) => {
                let _ = write!(line, ",{},{},{},{}", s.r, s.f, s.m, s.segment);
            }
            None => line.push_str(",,,,"),
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    w.flush()
}

/// The summary table: per type, users, standard rate, coupons, last and expected cost; then the
/// segments.
pub fn summary<K: UserKey>(o: &Outcome<K>, cycles: &Cycles, rows: u64, skipped: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rows read: {rows}, skipped: {skipped}; cycle {} → plan for {}",
        cycles.label(o.cycle),
        cycles.label(o.plan.cycle())
    );
    let _ = writeln!(
        s,
        "{:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>16} {:>16}",
        "type", "users", "standard", "coupons", "down", "up", "last cost", "expected cost"
    );
    for (t, c) in o.plan.by_type() {
        if c.users == 0 {
            continue;
        }
        let std = o.standards.get(t).map_or_else(
            || "-".to_owned(),
            |r| format!("{:.2}%", r.rate * rust_decimal::Decimal::ONE_HUNDRED),
        );
        let _ = writeln!(
            s,
            "{:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>16} {:>16}",
            t.name(),
            c.users,
            std,
            c.coupons,
            c.down,
            c.up,
            c.last_cost.amount().to_string(),
            c.expected_cost.amount().to_string()
        );
    }
    let t = o.plan.total();
    let _ = writeln!(
        s,
        "{:<24} {:>9} {:>9} {:>8} {:>8} {:>8} {:>16} {:>16}",
        "total",
        t.users,
        "",
        t.coupons,
        t.down,
        t.up,
        t.last_cost.amount().to_string(),
        t.expected_cost.amount().to_string()
    );
    let life = o.lifecycle.counts();
    let _ = write!(s, "lifecycle:");
    for l in Lifecycle::ALL {
        let _ = write!(s, " {}={}", l, life.get(&l).copied().unwrap_or(0));
    }
    let mut rfm: HashMap<RfmSegment, usize> = HashMap::new();
    for (_, r) in o.rfm.iter() {
        *rfm.entry(r.segment).or_insert(0) += 1;
    }
    let _ = write!(s, "\nrfm:");
    for seg in RfmSegment::ALL {
        let _ = write!(s, " {}={}", seg, rfm.get(&seg).copied().unwrap_or(0));
    }
    s.push('\n');
    s
}
