//! A two-arm coupon experiment, run through the service on the in-memory store for two weeks,
//! reported from the event feed and drawn as SVG charts.
//!
//! Every day new visitors are assigned to an arm by the experiment's hash: the control arm is
//! offered "spend 200, save 20", the treatment "spend 200, save 25". Some claim; some of those
//! pay an order with the coupon within three days; the rest expire. Returning customers buy
//! without a coupon in between, and a third of coupon users come back within ten days. The report then reads the store's feed and prints tables by
//! arm, day and segment, and writes:
//!
//! - `claimed_used_per_day.svg`: coupons claimed and used per day (UTC+08:00);
//! - `funnel_by_arm.svg`: offered → claimed → used per arm, with the step rates;
//! - `report.json`: the report itself (merge it with others, or advance it later).
//!
//! Run: `cargo run -p campaign-charts --release -- [output directory]` (default
//! `target/campaign_charts`).

mod svg;

use coupons::lifecycle::Actor;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::error::Error;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
use coupons::analytics::report::{Dimension, Lookups, Report, ReportConfig};
use coupons::attributes::Attributes;
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::*;
use coupons::lifecycle::{ClaimMode, ClaimRequest};
use coupons::money::{Currency, Money};
use coupons::repository::MemoryStore;
use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
use coupons::service::{LockRequest, Service};
use svg::{Labels, Series, bar_chart};

const CNY: Currency = Currency::CNY;
const DAYS: i64 = 14;
const VISITORS_PER_DAY: u64 = 120;

/// A small deterministic generator (SplitMix64), so every run draws the same charts.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// True with probability `percent` %.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// A new visitor sees the offer of their arm.
    Visit { user: u64 },
    /// A visitor pays an order with the coupon claimed earlier.
    Use { user: u64 },
    /// A returning customer pays without a coupon.
    Plain { user: u64 },
    /// The nightly expiry sweep.
    Sweep,
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, CNY)
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/campaign_charts".to_owned());
    std::fs::create_dir_all(&out)?;
    let east8 = FixedOffset::east_opt(8 * 3600).ok_or("offset")?;
    let start: DateTime<Utc> = east8
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .ok_or("start")?
        .with_timezone(&Utc);

    let service = Service::new(MemoryStore::new());
    for (id, save) in [("save-20", 20), ("save-25", 25)] {
        let t = TemplateSpec::new(
            TemplateId::new(id)?,
            format!("满200减{save}"),
            CNY,
            Benefit::threshold(yuan(200), yuan(save))?,
            Validity::relative(Span::Days(3), None)?,
        )
        .build()?;
        service.create_template(t.clone(), start)?;
        service.submit_template(t.id(), start)?;
        service.approve_template(t.id(), start)?;
        service.activate_template(t.id(), start)?;
    }
    let experiment = Experiment::new(
        ExperimentId::new("face-value")?,
        [Arm::control("save-20", 50)?, Arm::treatment("save-25", 50)?],
    )?;
    let user_id = |n: u64| UserId::new(format!("user-{n:05}"));
    let channel = Channel::new("app")?;

    // The fortnight's actions, in time order.
    let mut rng = Mix(11);
    let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, Action)>> = BinaryHeap::new();
    for day in 0..DAYS {
        let day_start = start + Duration::days(day);
        for i in 0..VISITORS_PER_DAY {
            let at = day_start + Duration::seconds(rng.below(86_400) as i64);
            queue.push(Reverse((
                at,
                Action::Visit {
                    user: day as u64 * 1000 + i,
                },
            )));
        }
        for _ in 0..25 {
            let at = day_start + Duration::seconds(rng.below(86_400) as i64);
            queue.push(Reverse((
                at,
                Action::Plain {
                    user: 900_000 + rng.below(400),
                },
            )));
        }
        queue.push(Reverse((day_start + Duration::days(1), Action::Sweep)));
    }
    let mut orders = 0u64;
    let cart = |price: i64| -> Result<Cart, Box<dyn Error>> {
        Ok(Cart::new(
            CNY,
            vec![CartLine::new(Sku::new("tea")?, yuan(price), 2)],
            yuan(0),
        )?)
    };
    while let Some(Reverse((at, action))) = queue.pop() {
        match action {
            Action::Visit { user } => {
                let u = user_id(user)?;
                let arm = experiment.assign(&u);
                let template = TemplateId::new(arm.name().as_str())?;
                // The offer is recorded with the user's arm, as the coupon will be.
                let mut attributes = Attributes::new();
                arm.record(&mut attributes)?;
                service.record_offer_with(&template, &u, &channel, None, &attributes, at)?;
                // The bigger coupon is claimed and used a little more often.
                let treated = arm.index() == 1;
                if !rng.chance(if treated { 38 } else { 30 }) {
                    continue;
                }
                let key = IdempotencyKey::new(format!("claim-{user}"))?;
                let request =
                    ClaimRequest::new(template, u, channel.clone(), ClaimMode::Click, key)
                        .with_attributes(attributes);
                service.claim(&request, at)?;
                if rng.chance(if treated { 60 } else { 50 }) {
                    let delay = Duration::seconds(rng.below(3 * 86_400 - 3_600) as i64);
                    queue.push(Reverse((at + delay, Action::Use { user })));
                }
            }
            Action::Use { user } | Action::Plain { user } => {
                // A third of coupon users come back within ten days, without a coupon.
                if matches!(action, Action::Use { .. }) && rng.chance(33) {
                    let later = at + Duration::seconds(rng.below(10 * 86_400) as i64);
                    queue.push(Reverse((later, Action::Plain { user })));
                }
                orders += 1;
                let u = user_id(user)?;
                let order = OrderId::new(format!("order-{orders}"))?;
                let buyer = Buyer::new(u, channel.clone());
                let lock = IdempotencyKey::new(format!("lock-{orders}"))?;
                let cart = cart(110 + rng.below(120) as i64)?;
                service.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lock), at)?;
                let pay = IdempotencyKey::new(format!("pay-{orders}"))?;
                service.pay(&order, &Actor::System, &pay, at + Duration::minutes(2))?;
            }
            Action::Sweep => {
                service.sweep(at, 100_000)?;
            }
        }
    }

    // The report, from the feed. Visitors are "new" and in segment "new"; repeat buyers are
    // "returning". Offers were recorded with their arm, so the lookup need not give it.
    let new_seg: Arc<str> = Arc::from("new");
    let returning: Arc<str> = Arc::from("returning");
    let number = |u: &UserId| u.as_str().trim_start_matches("user-").parse::<u64>().ok();
    let lookup = Lookups::new()
        .with_segment(|u| {
            number(u).map(|n| {
                if n >= 900_000 {
                    returning.clone()
                } else {
                    new_seg.clone()
                }
            })
        })
        .with_new_user(|u, _| number(u).map(|n| n < 900_000));
    let mut report = Report::new(ReportConfig::new(CNY, east8).repurchase_within_days(7));
    let read = report.advance(service.repository(), &lookup, 4096)?;
    report.settle(start + Duration::days(DAYS + 10));
    println!("read {read} events up to #{}\n", report.last_seq());
    let by_arm = report.by(Dimension::Arm);
    let by_day = report.by(Dimension::Day);
    println!(
        "By arm\n{by_arm}\nBy day\n{by_day}\nBy segment\n{}",
        report.by(Dimension::Segment)
    );

    // Chart 1: claimed and used per day.
    let days: Vec<&coupons::analytics::report::Row> = by_day.rows.iter().collect();
    let day_labels: Vec<String> = days.iter().map(|r| r.group[5..].to_owned()).collect();
    let chart = bar_chart(
        &Labels {
            title: "Coupons claimed and used per day",
            x: "day (UTC+08:00, month-day)",
            y: "coupons per day",
        },
        &day_labels,
        &[
            Series {
                name: "claimed",
                color: "#4e79a7",
                values: days.iter().map(|r| r.metrics.claimed).collect(),
                notes: None,
            },
            Series {
                name: "used",
                color: "#f28e2b",
                values: days.iter().map(|r| r.metrics.used).collect(),
                notes: None,
            },
        ],
    );
    std::fs::write(format!("{out}/claimed_used_per_day.svg"), chart)?;

    // Chart 2: the funnel per arm (offers with no arm are left out).
    let arms: Vec<&coupons::analytics::report::Row> =
        by_arm.rows.iter().filter(|r| r.group != "(none)").collect();
    let rate = |r: Option<coupons::analytics::Rate>| {
        r.and_then(|r| r.value())
            .map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0))
    };
    let chart = bar_chart(
        &Labels {
            title: "Offered → claimed → used, per experiment arm",
            x: "experiment arm (coupon template)",
            y: "coupons",
        },
        &arms.iter().map(|r| r.group.clone()).collect::<Vec<_>>(),
        &[
            Series {
                name: "offered",
                color: "#bab0ac",
                values: arms.iter().map(|r| r.metrics.offered).collect(),
                notes: None,
            },
            Series {
                name: "claimed (% of offered)",
                color: "#4e79a7",
                values: arms.iter().map(|r| r.metrics.claimed).collect(),
                notes: Some(
                    arms.iter()
                        .map(|r| format!("{} ({})", r.metrics.claimed, rate(r.claim_rate)))
                        .collect(),
                ),
            },
            Series {
                name: "used (% of claimed)",
                color: "#f28e2b",
                values: arms.iter().map(|r| r.metrics.used).collect(),
                notes: Some(
                    arms.iter()
                        .map(|r| format!("{} ({})", r.metrics.used, rate(r.usage_rate)))
                        .collect(),
                ),
            },
        ],
    );
    std::fs::write(format!("{out}/funnel_by_arm.svg"), chart)?;
    std::fs::write(
        format!("{out}/report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("wrote {out}/claimed_used_per_day.svg, {out}/funnel_by_arm.svg, {out}/report.json");
    Ok(())
}
