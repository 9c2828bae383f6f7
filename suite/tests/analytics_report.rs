//! Campaign reports: partial reports of any partition of the feed (by time, user shard,
//! template, or at random) merge into the report of the whole, through JSON; the counts match
//! a reference model of the feed; a report advances from a saved position of a real store's
//! feed; the percentile sketch stays within its stated error.

use coupons::lifecycle::Actor;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use coupons::analytics::report::*;
use coupons::attributes::{AttrKey, AttrValue, Attributes};
use coupons::events::{CouponFacts, Event, EventKind, Logged};
use coupons::id::*;
use coupons::lifecycle::ClaimMode;
use coupons::money::{Currency, Money};
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

fn config(repurchase: bool) -> ReportConfig {
    let c = ReportConfig::new(CNY, FixedOffset::east_opt(8 * 3600).unwrap());
    if repurchase {
        c.repurchase_within_days(3)
    } else {
        c
    }
}

/// Users 0..6: even ones in segment "even", odd ones in "odd"; users 0 and 1 are new; offers
/// of template k are in arm "a" for even k, "b" for odd.
struct TestLookup;

impl Lookup for TestLookup {
    fn segment(&self, user: &UserId) -> Option<Arc<str>> {
        let n: u32 = user.as_str().trim_start_matches('u').parse().ok()?;
        Some(Arc::from(if n % 2 == 0 { "even" } else { "odd" }))
    }
    fn is_new(&self, user: &UserId, _at: DateTime<Utc>) -> Option<bool> {
        let n: u32 = user.as_str().trim_start_matches('u').parse().ok()?;
        (n < 5).then_some(n < 2)
    }
    fn offer_arm(&self, template: &TemplateId, _user: &UserId) -> Option<AttrValue> {
        let n: u32 = template.as_str().trim_start_matches('t').parse().ok()?;
        AttrValue::new(if n % 2 == 0 { "a" } else { "b" }).ok()
    }
}

/// One step of a synthetic shop.
#[derive(Clone, Debug)]
enum Step {
    Offer {
        t: u8,
        u: u8,
        ch: u8,
    },
    Claim {
        t: u8,
        u: u8,
        ch: u8,
        camp: bool,
    },
    /// The user pays an order using up to `k` of their coupons, each saving `save` minor units
    /// times its position + 1.
    Order {
        u: u8,
        k: u8,
        gross: i64,
        save: i64,
    },
    Expire {
        u: u8,
    },
    Void {
        u: u8,
    },
    Refund {
        u: u8,
        returned: bool,
    },
    Refuse {
        t: u8,
        u: u8,
    },
}

fn step() -> impl Strategy<Value = (Step, i64)> {
    let s = prop_oneof![
        3 => (0u8..3, 0u8..6, 0u8..2).prop_map(|(t, u, ch)| Step::Offer { t, u, ch }),
        3 => (0u8..3, 0u8..6, 0u8..2, any::<bool>())
            .prop_map(|(t, u, ch, camp)| Step::Claim { t, u, ch, camp }),
        3 => (0u8..6, 0u8..4, 1i64..50_000, 1i64..2_000)
            .prop_map(|(u, k, gross, save)| Step::Order { u, k, gross, save }),
        1 => (0u8..6).prop_map(|u| Step::Expire { u }),
        1 => (0u8..6).prop_map(|u| Step::Void { u }),
        1 => (0u8..6, any::<bool>()).prop_map(|(u, returned)| Step::Refund { u, returned }),
        1 => (0u8..3, 0u8..6).prop_map(|(t, u)| Step::Refuse { t, u }),
    ];
    // Time moves by 0 to 30 hours between steps.
    (s, 0i64..(30 * 3600))
}

/// What the reference model expects per template.
#[derive(Clone, Debug, Default, PartialEq)]
struct Expected {
    offered: u64,
    claimed: u64,
    used: u64,
    discount: i128,
    orders: u64,
    sales: i128,
    expired: u64,
    voided: u64,
    refunded: u64,
}

fn id<T: TryFrom<String>>(s: String) -> T
where
    T::Error: std::fmt::Debug,
{
    T::try_from(s).unwrap()
}

/// The feed of the steps, and the reference model's counts per template label.
fn build(steps: &[(Step, i64)]) -> (Vec<Logged>, BTreeMap<String, Expected>) {
    let mut at = t0();
    let mut feed = Vec::new();
    let mut wallets: BTreeMap<u8, Vec<CouponFacts>> = BTreeMap::new();
    let mut used: BTreeMap<u8, Vec<(CouponFacts, OrderId)>> = BTreeMap::new();
    let mut exp: BTreeMap<String, Expected> = BTreeMap::new();
    let mut n = 0u64;
    let money = |m: i64| Money::from_minor(m, CNY);
    for (s, dt) in steps {
        at += Duration::seconds(*dt);
        let mut push = |kind: EventKind| {
            feed.push(Logged {
                seq: feed.len() as u64 + 1,
                event: Event::new(at, kind),
            })
        };
        n += 1;
        match s {
            Step::Offer { t, u, ch } => {
                exp.entry(format!("t{t}")).or_default().offered += 1;
                push(EventKind::Offered {
                    template: id(format!("t{t}")),
                    user: id(format!("u{u}")),
                    channel: id(format!("ch{ch}")),
                    campaign: None,
                    attributes: Attributes::new(),
                });
            }
            Step::Claim { t, u, ch, camp } => {
                let mut attributes = Attributes::new();
                if u % 3 != 2 {
                    let arm = if (u + t) % 2 == 0 { "a" } else { "b" };
                    attributes
                        .insert(AttrKey::new("arm").unwrap(), AttrValue::new(arm).unwrap())
                        .unwrap();
                }
                let facts = CouponFacts {
                    id: id(format!("c{n}")),
                    template: id(format!("t{t}")),
                    user: id(format!("u{u}")),
                    channel: id(format!("ch{ch}")),
                    campaign: camp.then(|| id("double-11".to_owned())),
                    claimed_at: at,
                    attributes,
                };
                exp.entry(format!("t{t}")).or_default().claimed += 1;
                wallets.entry(*u).or_default().push(facts.clone());
                push(EventKind::Issued {
                    coupon: facts,
                    mode: ClaimMode::Click,
                });
            }
            Step::Order { u, k, gross, save } => {
                let wallet = wallets.entry(*u).or_default();
                let k = (*k as usize).min(wallet.len());
                let coupons: Vec<CouponFacts> = wallet.drain(..k).collect();
                let order: OrderId = id(format!("o{n}"));
                let savings: Vec<i64> = (0..k as i64).map(|i| save * (2 - i % 2)).collect(); // the 1st and 3rd tie
                let discount: i64 = savings.iter().sum();
                let gross = gross + discount;
                for (c, s) in coupons.iter().zip(&savings) {
                    let e = exp.entry(c.template.to_string()).or_default();
                    e.used += 1;
                    e.discount += i128::from(*s);
                    push(EventKind::Redeemed {
                        coupon: c.clone(),
                        order: order.clone(),
                        saving: money(*s),
                    });
                    used.entry(*u).or_default().push((c.clone(), order.clone()));
                }
                if let Some((lead, _)) = coupons
                    .iter()
                    .zip(&savings)
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.id.cmp(&a.0.id)))
                {
                    let e = exp.entry(lead.template.to_string()).or_default();
                    e.orders += 1;
                    e.sales += i128::from(gross - discount);
                }
                push(EventKind::OrderPaid {
                    order,
                    user: id(format!("u{u}")),
                    gross: money(gross),
                    discount: money(discount),
                    coupons: k as u32,
                });
            }
            Step::Expire { u } | Step::Void { u } => {
                if let Some(c) = wallets.entry(*u).or_default().pop() {
                    let e = exp.entry(c.template.to_string()).or_default();
                    if matches!(s, Step::Expire { .. }) {
                        e.expired += 1;
                        push(EventKind::Expired { coupon: c });
                    } else {
                        e.voided += 1;
                        push(EventKind::Voided { coupon: c });
                    }
                }
            }
            Step::Refund { u, returned } => {
                if let Some((c, order)) = used.entry(*u).or_default().pop() {
                    exp.entry(c.template.to_string()).or_default().refunded += 1;
                    if *returned {
                        wallets.entry(*u).or_default().push(c.clone());
                    }
                    push(EventKind::Refunded {
                        coupon: c,
                        order,
                        returned: *returned,
                        saving: None,
                    });
                }
            }
            Step::Refuse { t, u } => push(EventKind::Refused {
                user: id(format!("u{u}")),
                template: id(format!("t{t}")),
                refusal: coupons::events::Refusal::OutOfStock,
            }),
        }
    }
    (feed, exp)
}

fn fold(cfg: ReportConfig, events: &[Logged]) -> Report {
    let mut r = Report::new(cfg);
    r.extend(events, &TestLookup).unwrap();
    r
}

/// Through JSON, as a partial report saved by one worker and read by another.
fn roundtrip(r: &Report) -> Report {
    let json = serde_json::to_string(r).unwrap();
    serde_json::from_str(&json).unwrap()
}

fn merge_all(parts: Vec<Report>, cfg: ReportConfig) -> Report {
    let mut all = Report::new(cfg);
    for p in parts {
        all.merge(roundtrip(&p)).unwrap();
    }
    all
}

fn user_of(e: &Logged) -> Option<String> {
    Some(match &e.event.kind {
        EventKind::Offered { user, .. }
        | EventKind::OrderPaid { user, .. }
        | EventKind::Refused { user, .. } => user.to_string(),
        EventKind::Issued { coupon, .. }
        | EventKind::Redeemed { coupon, .. }
        | EventKind::Expired { coupon }
        | EventKind::Voided { coupon }
        | EventKind::Refunded { coupon, .. } => coupon.user.to_string(),
        _ => return None,
    })
}

fn template_of(e: &Logged) -> Option<String> {
    Some(match &e.event.kind {
        EventKind::Offered { template, .. } | EventKind::Refused { template, .. } => {
            template.to_string()
        }
        EventKind::Issued { coupon, .. }
        | EventKind::Redeemed { coupon, .. }
        | EventKind::Expired { coupon }
        | EventKind::Voided { coupon }
        | EventKind::Refunded { coupon, .. } => coupon.template.to_string(),
        _ => return None,
    })
}

fn steps() -> impl Strategy<Value = Vec<(Step, i64)>> {
    prop::collection::vec(step(), 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn time_partitions_merge_into_the_whole(steps in steps(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..5)) {
        let (feed, _) = build(&steps);
        let whole = fold(config(true), &feed);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(feed.len() + 1)).collect();
        at.push(0);
        at.push(feed.len());
        at.sort();
        let parts: Vec<Report> = at.windows(2).map(|w| fold(config(true), &feed[w[0]..w[1]])).collect();
        let merged = merge_all(parts, config(true));
        prop_assert_eq!(merged.unmerged_buyers(), 0);
        prop_assert_eq!(merged.open_orders(), 0);
        prop_assert_eq!(&merged, &whole);
    }

    #[test]
    fn user_shards_merge_into_the_whole_in_any_order(steps in steps(), shard_of in prop::collection::vec(0usize..3, 6), order in Just(vec![2usize, 0, 1]).prop_shuffle()) {
        let (feed, _) = build(&steps);
        let whole = fold(config(true), &feed);
        let mut shards: Vec<Vec<Logged>> = vec![Vec::new(); 3];
        for e in &feed {
            let s = user_of(e).map_or(0, |u| shard_of[u[1..].parse::<usize>().unwrap()]);
            shards[s].push(e.clone());
        }
        let parts: Vec<Report> = order.iter().map(|&i| fold(config(true), &shards[i])).collect();
        let merged = merge_all(parts, config(true));
        prop_assert_eq!(merged.unmerged_buyers(), 0);
        prop_assert_eq!(&merged, &whole);
    }

    /// Coupon events split by template, orders (which name no template) dealt at random: the
    /// order↔coupon join completes in the merge.
    #[test]
    fn template_partitions_merge_into_the_whole(steps in steps(), deal in prop::collection::vec(0usize..3, 200)) {
        let (feed, _) = build(&steps);
        let whole = fold(config(false), &feed);
        let mut parts: Vec<Vec<Logged>> = vec![Vec::new(); 3];
        for (i, e) in feed.iter().enumerate() {
            let p = template_of(e).map_or(deal[i % deal.len()], |t| t[1..].parse::<usize>().unwrap());
            parts[p].push(e.clone());
        }
        let reports: Vec<Report> = parts.iter().rev().map(|p| fold(config(false), p)).collect();
        let merged = merge_all(reports, config(false));
        prop_assert_eq!(merged.open_orders(), 0);
        prop_assert_eq!(&merged, &whole);
    }

    /// Every event dealt to a random part, parts merged in a random tree.
    #[test]
    fn random_partitions_merge_into_the_whole(steps in steps(), deal in prop::collection::vec(0usize..4, 200), split in 1usize..4) {
        let (feed, _) = build(&steps);
        let whole = fold(config(false), &feed);
        let mut parts: Vec<Vec<Logged>> = vec![Vec::new(); 4];
        for (i, e) in feed.iter().enumerate() {
            parts[deal[i % deal.len()]].push(e.clone());
        }
        let reports: Vec<Report> = parts.iter().map(|p| fold(config(false), p)).collect();
        let (left, right) = reports.split_at(split);
        let mut a = merge_all(left.to_vec(), config(false));
        let b = merge_all(right.to_vec(), config(false));
        a.merge(b).unwrap();
        prop_assert_eq!(&a, &whole);
    }

    #[test]
    fn counts_match_the_reference_model(steps in steps()) {
        let (feed, expected) = build(&steps);
        let report = fold(config(true), &feed);
        let by = report.by(Dimension::Template);
        for row in by.rows.iter().filter(|r| r.group != "(none)") {
            let m = &row.metrics;
            let got = Expected {
                offered: m.offered, claimed: m.claimed, used: m.used, discount: m.discount_minor,
                orders: m.coupon_orders, sales: m.coupon_sales_minor, expired: m.expired,
                voided: m.voided, refunded: m.refunded,
            };
            prop_assert_eq!(&got, &expected.get(&row.group).cloned().unwrap_or_default(), "{}", row.group);
        }
        // Every dimension adds up to the same total.
        let total = report.total();
        for d in [Dimension::Template, Dimension::Campaign, Dimension::Channel, Dimension::Segment, Dimension::Arm, Dimension::Day] {
            let mut sum = Metrics::default();
            for r in report.by(d).rows {
                sum.merge(&r.metrics);
            }
            prop_assert_eq!(&sum, &total);
        }
        let plain: u64 = feed.iter().filter(|e| matches!(e.event.kind, EventKind::OrderPaid { coupons: 0, .. })).count() as u64;
        prop_assert_eq!(total.plain_orders, plain);
        prop_assert_eq!(report.last_seq(), feed.len() as u64);
    }

    #[test]
    fn sketch_percentiles_are_within_the_stated_error(values in prop::collection::vec(0u64..10_000_000, 1..3000), q in 0.0f64..=1.0) {
        let mut d = Durations::new();
        for &v in &values {
            d.push(v);
        }
        let mut sorted = values.clone();
        sorted.sort();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        let exact = sorted[rank - 1];
        let approx = d.sketch_percentile(q).unwrap();
        prop_assert!((approx as f64 - exact as f64).abs() <= exact as f64 * SKETCH_RELATIVE_ERROR, "{} vs {}", approx, exact);
        let p = d.percentile(q).unwrap();
        if p.exact {
            prop_assert_eq!(p.secs, exact);
        }
    }
}

#[test]
fn repurchases_count_the_next_order_within_the_window() {
    let steps = vec![
        (
            Step::Claim {
                t: 0,
                u: 0,
                ch: 0,
                camp: false,
            },
            0,
        ),
        (
            Step::Order {
                u: 0,
                k: 1,
                gross: 10_000,
                save: 500,
            },
            3600,
        ),
        (
            Step::Order {
                u: 0,
                k: 0,
                gross: 5_000,
                save: 0,
            },
            2 * 86_400,
        ), // within 3 days
        (
            Step::Claim {
                t: 1,
                u: 1,
                ch: 0,
                camp: false,
            },
            0,
        ),
        (
            Step::Order {
                u: 1,
                k: 1,
                gross: 10_000,
                save: 500,
            },
            60,
        ),
        (
            Step::Order {
                u: 1,
                k: 0,
                gross: 5_000,
                save: 0,
            },
            4 * 86_400,
        ), // too late
        (
            Step::Claim {
                t: 2,
                u: 2,
                ch: 0,
                camp: false,
            },
            0,
        ),
        (
            Step::Order {
                u: 2,
                k: 1,
                gross: 10_000,
                save: 500,
            },
            60,
        ), // no next order yet
    ];
    let (feed, _) = build(&steps);
    let mut report = fold(config(true), &feed);
    let rate = |r: &Report| r.total().repurchase_rate().map(|r| (r.num(), r.den()));
    assert_eq!(rate(&report), Some((1, 2)));
    report.settle(feed.last().unwrap().event.at + Duration::days(2));
    assert_eq!(rate(&report), Some((1, 2)), "u2's window is still open");
    report.settle(feed.last().unwrap().event.at + Duration::days(4));
    assert_eq!(rate(&report), Some((1, 3)));
    let by = report.by(Dimension::Template);
    let t0 = by.rows.iter().find(|r| r.group == "t0").unwrap();
    assert_eq!(t0.repurchase_rate.map(|r| (r.num(), r.den())), Some((1, 1)));
}

#[test]
fn reports_of_different_settings_do_not_merge() {
    let mut a = Report::new(config(true));
    assert!(matches!(
        a.merge(Report::new(config(false))),
        Err(ReportError::ConfigMismatch { .. })
    ));
    let usd = Report::new(ReportConfig::new(
        Currency::USD,
        FixedOffset::east_opt(0).unwrap(),
    ));
    assert!(a.merge(usd).is_err());
    // An amount in another currency is refused, naming the event.
    let (feed, _) = build(&[
        (
            Step::Claim {
                t: 0,
                u: 0,
                ch: 0,
                camp: false,
            },
            0,
        ),
        (
            Step::Order {
                u: 0,
                k: 1,
                gross: 100,
                save: 5,
            },
            0,
        ),
    ]);
    let mut usd = Report::new(ReportConfig::new(
        Currency::USD,
        FixedOffset::east_opt(0).unwrap(),
    ));
    let err = usd.extend(&feed, &NoLookup).unwrap_err();
    assert!(matches!(err, ReportError::Currency { seq: 2, .. }), "{err}");
    // A JSON offset beyond a day is refused.
    let bad = r#"{"currency":"CNY","utc_offset_minutes":1441}"#;
    assert!(serde_json::from_str::<ReportConfig>(bad).is_err());
}

#[test]
fn events_and_reports_saved_before_order_refunds_were_counted_still_read() {
    let facts = CouponFacts {
        id: CouponId::new("c-1").unwrap(),
        template: TemplateId::new("t-1").unwrap(),
        user: UserId::new("alice").unwrap(),
        channel: Channel::new("app").unwrap(),
        campaign: None,
        claimed_at: t0(),
        attributes: Attributes::new(),
    };
    let refund = |coupons| {
        Event::new(
            t0(),
            EventKind::OrderRefunded {
                order: OrderId::new("o-1").unwrap(),
                user: UserId::new("alice").unwrap(),
                by_merchant: false,
                amount: Money::from_minor(10_750, CNY),
                discount: Money::from_minor(1_250, CNY),
                whole: false,
                coupons,
            },
        )
    };
    let with = refund(vec![coupons::events::OrderCoupon {
        coupon: facts,
        saving: Money::from_minor(2_500, CNY),
    }]);
    let json = serde_json::to_string(&with).unwrap();
    assert!(json.contains("\"coupons\""), "{json}");
    assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), with);
    // An event written before it listed the order's coupons reads with none; written back,
    // an empty list is left out (the same JSON as before).
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    let removed = remove_key(&mut old, "coupons");
    assert!(removed, "{old}");
    let read: Event = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(read, refund(Vec::new()));
    assert_eq!(serde_json::to_value(&read).unwrap(), old);
    // Counters saved without the refund fields read as zero.
    let mut m = serde_json::to_value(Metrics::default()).unwrap();
    for f in [
        "coupon_refunds",
        "coupon_refunded_minor",
        "plain_refunds",
        "plain_refunded_minor",
    ] {
        assert!(remove_key(&mut m, f), "no field {f}");
    }
    assert_eq!(
        serde_json::from_value::<Metrics>(m).unwrap(),
        Metrics::default()
    );
}

/// Removes `key` wherever it is in `v`; whether it was anywhere.
fn remove_key(v: &mut serde_json::Value, key: &str) -> bool {
    let mut found = false;
    match v {
        serde_json::Value::Object(o) => {
            found = o.remove(key).is_some();
            for x in o.values_mut() {
                found |= remove_key(x, key);
            }
        }
        serde_json::Value::Array(a) => {
            for x in a {
                found |= remove_key(x, key);
            }
        }
        _ => {}
    }
    found
}

mod store {
    use super::*;
    use coupons::cart::{Buyer, Cart, CartLine};
    use coupons::lifecycle::ClaimRequest;
    use coupons::repository::MemoryStore;
    use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
    use coupons::service::{LockRequest, Service};

    fn yuan(n: i64) -> Money {
        Money::from_minor(n * 100, CNY)
    }

    /// Claims, offers and paid orders through the service; returns the time after.
    fn shop(
        s: &Service<MemoryStore>,
        from: DateTime<Utc>,
        users: std::ops::Range<u32>,
    ) -> DateTime<Utc> {
        let t = TemplateId::new("spend-200-save-25").unwrap();
        let ch = Channel::new("app").unwrap();
        let mut now = from;
        for i in users {
            let u = UserId::new(format!("u{i}")).unwrap();
            s.record_offer(&t, &u, &ch, None, now).unwrap();
            if i % 3 == 0 {
                continue;
            }
            let key = IdempotencyKey::new(format!("claim-{i}")).unwrap();
            s.claim(
                &ClaimRequest::new(t.clone(), u.clone(), ch.clone(), ClaimMode::Click, key),
                now,
            )
            .unwrap();
            now += Duration::hours(5);
            if i % 3 == 1 {
                let cart = Cart::new(
                    CNY,
                    vec![CartLine::new(Sku::new("tea").unwrap(), yuan(120), 2)],
                    yuan(0),
                )
                .unwrap();
                let order = OrderId::new(format!("o{i}")).unwrap();
                let buyer = Buyer::new(u.clone(), ch.clone());
                let lock = IdempotencyKey::new(format!("lock-{i}")).unwrap();
                s.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &lock), now)
                    .unwrap();
                s.pay(
                    &order,
                    &Actor::System,
                    &IdempotencyKey::new(format!("pay-{i}")).unwrap(),
                    now,
                )
                .unwrap();
            }
        }
        now
    }

    /// A service with "spend 200, save 25" live, and the time it went live.
    fn open_shop() -> (Service<MemoryStore>, DateTime<Utc>) {
        let s = Service::new(MemoryStore::new());
        let now = t0();
        let t = TemplateSpec::new(
            TemplateId::new("spend-200-save-25").unwrap(),
            "Spend 200, save 25",
            CNY,
            Benefit::threshold(yuan(200), yuan(25)).unwrap(),
            Validity::relative(Span::Days(7), None).unwrap(),
        )
        .build()
        .unwrap();
        s.create_template(t.clone(), now).unwrap();
        s.submit_template(t.id(), now).unwrap();
        s.approve_template(t.id(), now).unwrap();
        s.activate_template(t.id(), now).unwrap();
        (s, now)
    }

    #[test]
    fn a_saved_report_advances_with_newer_events() {
        let (s, now) = open_shop();
        let later = shop(&s, now, 0..12);

        let mut report = Report::new(config(true));
        let read = report.advance(s.repository(), &TestLookup, 5).unwrap();
        assert_eq!(read, report.events());
        let saved = serde_json::to_string(&report).unwrap();

        shop(&s, later, 12..30);
        let mut restored: Report = serde_json::from_str(&saved).unwrap();
        restored.advance(s.repository(), &TestLookup, 7).unwrap();
        let mut fresh = Report::new(config(true));
        fresh.advance(s.repository(), &TestLookup, 1000).unwrap();
        assert_eq!(restored, fresh);
        assert_eq!(restored.advance(s.repository(), &TestLookup, 7).unwrap(), 0);

        // 30 offers, 20 claims, 10 orders of 240 less 25.
        let total = fresh.total();
        assert_eq!((total.offered, total.claimed, total.used), (30, 20, 10));
        assert_eq!(total.discount_minor, 25_000);
        assert_eq!(
            (total.coupon_orders, total.coupon_sales_minor),
            (10, 215_000)
        );
        let row = &fresh.by(Dimension::Total).rows[0];
        assert_eq!(row.roi.map(|r| r.to_string()), Some("8.6".into()));
        assert_eq!(row.claim_rate.map(|r| (r.num(), r.den())), Some((20, 30)));
        assert_eq!(row.usage_rate.map(|r| (r.num(), r.den())), Some((10, 20)));
        assert_eq!(row.aov_with_coupon, Some(yuan(215)));
        assert_eq!(
            row.time_to_use_p50.map(|p| (p.secs, p.exact)),
            Some((5 * 3600, true))
        );
        let table = fresh.by(Dimension::Segment).to_string();
        assert!(
            table.lines().count() == 4 && table.contains("even") && table.contains("odd"),
            "{table}"
        );
    }

    #[test]
    fn refunds_through_the_service_count_where_their_orders_sales_did() {
        use coupons::lifecycle::{RefundKind, RefundRequest, RefundUnits};
        let (s, now) = open_shop();
        // Orders o1, o4, o7 and o10, each 240 less 25.
        let later = shop(&s, now, 0..12) + Duration::days(2);
        let key = |k: &str| IdempotencyKey::new(k).unwrap();
        let one_unit = RefundRequest::units(
            RefundKind::Buyer,
            vec![RefundUnits {
                line: 0,
                quantity: 1,
            }],
        );
        let o1 = OrderId::new("o1").unwrap();
        let part = s
            .refund(&o1, &Actor::Merchant, &one_unit, &key("r1"), later)
            .unwrap();
        let rest = RefundRequest::whole(RefundKind::Buyer);
        let again = s
            .refund(&o1, &Actor::Merchant, &rest, &key("r1b"), later)
            .unwrap();
        let o4 = OrderId::new("o4").unwrap();
        let whole = RefundRequest::whole(RefundKind::Merchant);
        let all = s
            .refund(&o4, &Actor::Merchant, &whole, &key("r4"), later)
            .unwrap();
        let back = [&part, &again, &all]
            .iter()
            .map(|r| r.refund.amount.to_minor_i128())
            .sum::<i128>();
        // o1 is paid back in full over two refunds, o4 at once: 2 × 215.
        assert_eq!(back, 43_000);

        let mut report = Report::new(config(false));
        report.advance(s.repository(), &TestLookup, 1000).unwrap();
        let total = report.total();
        assert_eq!(
            (total.coupon_refunds, total.coupon_refunded_minor),
            (3, 43_000)
        );
        assert_eq!((total.plain_refunds, total.plain_refunded_minor), (0, 0));
        let row = &report.by(Dimension::Template).rows[0];
        assert_eq!(row.group, "spend-200-save-25");
        assert_eq!(row.coupon_sales, yuan(4 * 215));
        assert_eq!(row.coupon_refunded, yuan(2 * 215));
        assert_eq!(row.net_coupon_sales, yuan(2 * 215));
        // The refunds count on their own day, in the template's group.
        let day = later.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
        let by_day = report.by(Dimension::Day);
        let refund_day = by_day
            .rows
            .iter()
            .find(|r| r.group == day.date_naive().to_string())
            .unwrap();
        assert_eq!(refund_day.metrics.coupon_refunds, 3);
        assert!(
            report
                .by(Dimension::Template)
                .to_string()
                .contains("paid back")
        );
    }
}
