//! Campaign report benchmarks: folding 10 million feed events into a report.
//!
//! The feed is generated in memory before timing: 400,000 users in 4 segments, 50 templates in
//! 5 campaigns, 4 channels, 2 experiment arms, 30 days at +08:00. Each journey is an offer,
//! then (70 %) a claim; a claimed coupon is used by a paid order (45 %: lock, order placed,
//! redeem, order paid — time to use up to a week) or expires (15 %); orders without a coupon
//! come in between: 10.0 M events in about 85,500 groups.
//!
//! - `analytics_report/fold/10M/1-core`: one report over the whole feed on one thread.
//! - `analytics_report/fold/10M/2-cores`: the feed cut in two halves, each folded on its own
//!   thread, then the two reports merged.
//! - `analytics_report/fold/10M-repurchase/…`: the same with the 7-day repurchase window on
//!   (one trail per buyer: about 394,000).
//!
//! `ANALYTICS_REPORT_ONCE=1 cargo bench -p coupons-benches --bench analytics_report` folds
//! each configuration once on one core and once on two and prints the CPU and wall times
//! (`ANALYTICS_REPORT_NO_REPURCHASE=1`: the configuration without the repurchase window only).
//!
//! The machine these run on is shared, so each sample's figure is CPU time, not wall time: the
//! folding thread's CPU time (from `/proc/thread-self/schedstat`); for two cores, the slower
//! worker's CPU time plus the merge's — what the wall time would be on two idle cores.
//!
//! Run: `cargo bench -p coupons-benches --bench analytics_report`

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{FixedOffset, TimeZone, Utc};
use coupons::analytics::report::{Lookup, Report, ReportConfig};
use coupons::attributes::{AttrKey, AttrValue, Attributes};
use coupons::events::{CouponFacts, Event, EventKind, Logged};
use coupons::id::*;
use coupons::lifecycle::ClaimMode;
use coupons::money::{Currency, Money};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 10_000_000;
const USERS: usize = 400_000;
const CNY: Currency = Currency::CNY;

/// The calling thread's CPU time so far (Linux), or zero elsewhere.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// A small deterministic generator (SplitMix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Segments by the user number's last digit: a lookup that costs next to nothing, so the
/// figures are the report's own (a caller's real lookup, e.g. a hash map of 400,000 users,
/// adds its own cost per event). It lends its segments (`Lookup::segment_ref`): cloning an
/// `Arc` per event would be two atomic operations on a line both folding threads share.
/// `ANALYTICS_REPORT_OWNED_SEGMENTS=1` makes it hand out clones instead (the default
/// `segment_ref`), to see what that costs.
struct Segments {
    names: [Arc<str>; 4],
    owned: bool,
}

impl Segments {
    fn of(&self, user: &UserId) -> Option<&Arc<str>> {
        let last = user.as_str().as_bytes().last()?;
        self.names.get(usize::from(*last) % 4)
    }
}

impl Lookup for Segments {
    fn segment(&self, user: &UserId) -> Option<Arc<str>> {
        self.of(user).cloned()
    }
    fn segment_ref<'a>(&'a self, user: &UserId) -> Option<Cow<'a, Arc<str>>> {
        if self.owned {
            return self.segment(user).map(Cow::Owned);
        }
        self.of(user).map(Cow::Borrowed)
    }
}

/// How many events the feed holds: 10 M, or `ANALYTICS_REPORT_EVENTS` (e.g. 1000000 for a
/// callgrind run of the same shape).
fn events_wanted() -> usize {
    std::env::var("ANALYTICS_REPORT_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(EVENTS)
}

fn feed() -> (Vec<Logged>, Segments) {
    let events = events_wanted();
    let mut rng = Mix(2026);
    let users: Vec<UserId> = (0..USERS)
        .map(|i| UserId::new(format!("user-{i:07}")).unwrap())
        .collect();
    let segments = Segments {
        names: ["new", "active", "lapsing", "vip"].map(Arc::from),
        owned: std::env::var_os("ANALYTICS_REPORT_OWNED_SEGMENTS").is_some(),
    };
    let templates: Vec<TemplateId> = (0..50)
        .map(|i| TemplateId::new(format!("template-{i:02}")).unwrap())
        .collect();
    let campaigns: Vec<Option<CampaignId>> = (0..5)
        .map(|i| (i > 0).then(|| CampaignId::new(format!("campaign-{i}")).unwrap()))
        .collect();
    let channels: Vec<Channel> = ["app", "web", "mini-program", "push"]
        .iter()
        .map(|c| Channel::new(c).unwrap())
        .collect();
    let arms: Vec<Attributes> = ["control", "save-25"]
        .iter()
        .map(|a| {
            let mut at = Attributes::new();
            at.insert(
                AttrKey::new("experiment").unwrap(),
                AttrValue::new("face-value").unwrap(),
            )
            .unwrap();
            at.insert(AttrKey::new("arm").unwrap(), AttrValue::new(a).unwrap())
                .unwrap();
            at
        })
        .collect();
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut out: Vec<Logged> = Vec::with_capacity(events + 8);
    let mut n = 0u64;
    let push = |out: &mut Vec<Logged>, at, kind| {
        let seq = out.len() as u64 + 1;
        out.push(Logged {
            seq,
            event: Event::new(at, kind),
        });
    };
    while out.len() < events {
        n += 1;
        // 30 days in order, with the journey's events close together.
        let at =
            start + chrono::Duration::seconds((out.len() as i64 * 30 * 86_400) / events as i64);
        let u = &users[rng.below(USERS as u64) as usize];
        let t = rng.below(50) as usize;
        let ch = &channels[rng.below(4) as usize];
        let campaign = campaigns[t % 5].clone();
        if rng.below(10) < 2 {
            let order = OrderId::new(format!("plain-{n}")).unwrap();
            let gross = Money::from_minor(5_000 + rng.below(50_000) as i64, CNY);
            push(
                &mut out,
                at,
                EventKind::OrderPaid {
                    order,
                    user: u.clone(),
                    gross,
                    discount: Money::zero(CNY),
                    coupons: 0,
                },
            );
            continue;
        }
        push(
            &mut out,
            at,
            EventKind::Offered {
                template: templates[t].clone(),
                user: u.clone(),
                channel: ch.clone(),
                campaign: campaign.clone(),
                // (Offers without their arm, as the figures before arms on offers.)
                attributes: Attributes::new(),
            },
        );
        if rng.below(10) >= 7 {
            continue;
        }
        let facts = CouponFacts {
            id: CouponId::new(format!("c-{n}")).unwrap(),
            template: templates[t].clone(),
            user: u.clone(),
            channel: ch.clone(),
            campaign,
            claimed_at: at,
            attributes: arms[rng.below(2) as usize].clone(),
        };
        push(
            &mut out,
            at,
            EventKind::Issued {
                coupon: facts.clone(),
                mode: ClaimMode::Click,
            },
        );
        let fate = rng.below(100);
        if fate < 45 {
            let used = at + chrono::Duration::seconds(rng.below(7 * 86_400) as i64);
            let order = OrderId::new(format!("o-{n}")).unwrap();
            let saving = Money::from_minor(1_000 + 500 * (t as i64 % 4), CNY);
            let gross = Money::from_minor(20_000 + rng.below(40_000) as i64, CNY);
            push(
                &mut out,
                used,
                EventKind::Locked {
                    coupon: facts.clone(),
                    order: order.clone(),
                    saving,
                },
            );
            push(
                &mut out,
                used,
                EventKind::OrderPlaced {
                    order: order.clone(),
                    user: u.clone(),
                    gross,
                    discount: saving,
                    coupons: 1,
                },
            );
            push(
                &mut out,
                used,
                EventKind::Redeemed {
                    coupon: facts,
                    order: order.clone(),
                    saving,
                },
            );
            push(
                &mut out,
                used,
                EventKind::OrderPaid {
                    order,
                    user: u.clone(),
                    gross,
                    discount: saving,
                    coupons: 1,
                },
            );
        } else if fate < 60 {
            push(
                &mut out,
                at + chrono::Duration::days(7),
                EventKind::Expired { coupon: facts },
            );
        }
    }
    out.truncate(events);
    (out, segments)
}

/// What any fold of the feed must read: every event, the segment lookup of its user and its
/// coupon's arm attribute (the floor under the report's own work).
fn floor(events: &[Logged], lookup: &Segments) -> usize {
    let mut n = 0usize;
    for e in events {
        let (user, attrs) = match &e.event.kind {
            EventKind::Offered { user, .. } | EventKind::OrderPaid { user, .. } => (user, None),
            EventKind::Issued { coupon, .. }
            | EventKind::Redeemed { coupon, .. }
            | EventKind::Expired { coupon } => (&coupon.user, Some(&coupon.attributes)),
            _ => continue,
        };
        n += usize::from(lookup.segment_ref(user).is_some());
        n += usize::from(attrs.and_then(|a| a.get("arm")).is_some());
    }
    std::hint::black_box(n)
}

fn config(repurchase: bool) -> ReportConfig {
    let c = ReportConfig::new(CNY, FixedOffset::east_opt(8 * 3600).unwrap());
    if repurchase {
        c.repurchase_within_days(7)
    } else {
        c
    }
}

fn fold(events: &[Logged], lookup: &Segments, repurchase: bool) -> Report {
    let mut r = Report::new(config(repurchase));
    r.extend(events, lookup).unwrap();
    r
}

/// The CPU times of a two-core fold, and its wall time (halves and merge).
struct TwoCores {
    left: Duration,
    right: Duration,
    merge: Duration,
    wall: Duration,
}

impl TwoCores {
    /// The slower worker's CPU time plus the merge's: the wall time on two idle cores.
    fn cpu(&self) -> Duration {
        self.left.max(self.right) + self.merge
    }
}

/// The two-core fold: halves on two threads, then the merge. Returns the report and the
/// CPU times of the halves and of the merge.
fn fold_two(events: &[Logged], lookup: &Segments, repurchase: bool) -> (Report, TwoCores) {
    let wall = Instant::now();
    let (left, right) = events.split_at(events.len() / 2);
    let ((mut a, ta), (b, tb)) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            let t = thread_cpu();
            let r = fold(left, lookup, repurchase);
            (r, thread_cpu() - t)
        });
        let t = thread_cpu();
        let rb = fold(right, lookup, repurchase);
        let tb = thread_cpu() - t;
        (ha.join().unwrap(), (rb, tb))
    });
    let t = thread_cpu();
    a.merge(b).unwrap();
    let tm = thread_cpu() - t;
    let wall = wall.elapsed();
    (
        a,
        TwoCores {
            left: ta,
            right: tb,
            merge: tm,
            wall,
        },
    )
}

/// `ANALYTICS_REPORT_RUN=1`: folds the feed once on one core, then its two halves and their
/// merge (on this thread), checks they agree and prints the counts. For instruction counts:
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*cg_*'` and read the
/// inclusive counts of `cg_whole` (one core) and `cg_left`, `cg_right`, `cg_merge` (two
/// cores: the larger half + the merge). `ANALYTICS_REPORT_REPURCHASE=1` turns the 7-day
/// repurchase window on.
fn run_once(events: &[Logged], lookup: &Segments) {
    let repurchase = std::env::var_os("ANALYTICS_REPORT_REPURCHASE").is_some();
    let whole = cg_whole(events, lookup, repurchase);
    let (left, right) = events.split_at(events.len() / 2);
    let a = cg_left(left, lookup, repurchase);
    let b = cg_right(right, lookup, repurchase);
    let merged = cg_merge(a, b);
    assert_eq!(merged, whole);
    eprintln!(
        "repurchase {repurchase}: {} events, {} groups, {} open orders, {} buyers followed",
        whole.events(),
        whole.groups().count(),
        whole.open_orders(),
        whole.buyers_followed(),
    );
}

#[inline(never)]
fn cg_whole(events: &[Logged], lookup: &Segments, repurchase: bool) -> Report {
    // (A distinct body each, so that the three are not folded into one function.)
    std::hint::black_box("whole");
    fold(events, lookup, repurchase)
}

#[inline(never)]
fn cg_left(events: &[Logged], lookup: &Segments, repurchase: bool) -> Report {
    // (A distinct body each, so that the three are not folded into one function.)
    std::hint::black_box("left");
    fold(events, lookup, repurchase)
}

#[inline(never)]
fn cg_right(events: &[Logged], lookup: &Segments, repurchase: bool) -> Report {
    // (A distinct body each, so that the three are not folded into one function.)
    std::hint::black_box("right");
    fold(events, lookup, repurchase)
}

#[inline(never)]
fn cg_merge(mut a: Report, b: Report) -> Report {
    a.merge(b).unwrap();
    a
}

fn bench(c: &mut Criterion) {
    let (events, lookup) = feed();
    if std::env::var_os("ANALYTICS_REPORT_RUN").is_some() {
        run_once(&events, &lookup);
        return;
    }
    let mut g = c.benchmark_group("analytics_report/fold");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(events.len() as u64));
    let configs: &[(&str, bool)] = if std::env::var_os("ANALYTICS_REPORT_NO_REPURCHASE").is_some() {
        &[("10M", false)]
    } else {
        &[("10M", false), ("10M-repurchase", true)]
    };
    for &(name, repurchase) in configs {
        let wall = Instant::now();
        let t = thread_cpu();
        let check = fold(&events, &lookup, repurchase);
        let one = thread_cpu() - t;
        let wall = wall.elapsed();
        eprintln!(
            "{name}: {} events, {} groups, {} open orders, {} buyers followed; one core {one:?} CPU, {wall:?} wall",
            check.events(),
            check.groups().count(),
            check.open_orders(),
            check.buyers_followed(),
        );
        if std::env::var_os("ANALYTICS_REPORT_ONCE").is_some() {
            let t = thread_cpu();
            let touched = floor(&events, &lookup);
            eprintln!(
                "{name}: reading the feed alone (segment lookup, arm attribute, {touched} ids): {:?} CPU",
                thread_cpu() - t
            );
            let (two, t) = fold_two(&events, &lookup, repurchase);
            assert_eq!(two, check);
            eprintln!(
                "{name}: two cores {:?} (slower worker's CPU time + merge; halves {:?} and {:?}, merge {:?}), {:?} wall",
                t.cpu(),
                t.left,
                t.right,
                t.merge,
                t.wall
            );
            continue;
        }
        g.bench_function(format!("{name}/1-core"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = thread_cpu();
                    let r = fold(&events, &lookup, repurchase);
                    total += thread_cpu() - t;
                    assert_eq!(r.events(), events.len() as u64);
                    drop(r);
                }
                total
            })
        });
        g.bench_function(format!("{name}/2-cores"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (r, t) = fold_two(&events, &lookup, repurchase);
                    total += t.cpu();
                    assert_eq!(r, check);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
