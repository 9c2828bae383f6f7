//! Targeting: statistics merge exactly from any partition, the plan matches a reference model
//! on real purchase data, every rate moves toward its standard within the rules, suggestions
//! are valid templates, quintile scores keep ties together without collapsing a bin, and
//! segments plug into audience rules.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use coupons::cart::Buyer;
use coupons::id::{Channel, SegmentId, TemplateId, UserId};
use coupons::money::{Currency, Money};
use coupons::rule::{AudienceMiss, AudienceSpec, Conditions, ConditionsSpec};
use coupons::targeting::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn cycles() -> Cycles {
    Cycles::monthly(FixedOffset::east_opt(8 * 3600).unwrap())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// (user, seconds after 2026-01-01, gross minor, discount per mille of gross)
fn order_strategy() -> impl Strategy<Value = (u64, i64, i64, i64)> {
    (0u64..25, 0i64..(100 * 86_400), 0i64..20_000, 0i64..=1000)
}

fn to_order((user, secs, gross, permille): (u64, i64, i64, i64)) -> Order<u64> {
    let discount = gross * permille / 1000;
    Order::new(
        user,
        t0() + chrono::Duration::seconds(secs),
        m(gross),
        m(discount),
        m(gross - discount),
        discount > 0,
    )
    .unwrap()
}

fn stats_of(orders: &[Order<u64>]) -> CycleStats<u64> {
    let mut s = CycleStats::new(cycles(), CNY);
    for o in orders {
        s.add(o).unwrap();
    }
    s
}

/// A case the property once got wrong: a new user (AOV 0) gets the lowest charm threshold,
/// 9 yuan, and 3.33 % of it is under one yuan, so no coupon, though the value cap alone (2
/// yuan) would allow one.
#[test]
fn no_coupon_when_the_lowest_threshold_leaves_under_one_yuan() {
    let got = suggest(
        m(0),
        Decimal::new(33_334, 6),
        m(2000),
        None,
        &SuggestRules::default(),
    )
    .unwrap();
    assert_eq!(got, None);
    let got = suggest(
        m(0),
        Decimal::new(12, 2),
        m(2000),
        None,
        &SuggestRules::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!((got.threshold, got.save), (m(900), m(100)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn merging_random_partitions_equals_one_pass(
        raw in proptest::collection::vec(order_strategy(), 0..120),
        parts in proptest::collection::vec(0usize..5, 120),
        order_seed in any::<u64>(),
    ) {
        let orders: Vec<Order<u64>> = raw.into_iter().map(to_order).collect();
        let whole = stats_of(&orders);
        // Deal the orders into five partitions at random, each fed in a shuffled order.
        let mut buckets: Vec<Vec<Order<u64>>> = vec![Vec::new(); 5];
        for (i, o) in orders.iter().enumerate() {
            buckets[parts[i]].push(o.clone());
        }
        let mut seed = order_seed;
        for b in &mut buckets {
            for i in (1..b.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                b.swap(i, (seed >> 33) as usize % (i + 1));
            }
        }
        // Each partial travels as JSON, as it would between machines.
        let partials: Vec<CycleStats<u64>> = buckets
            .iter()
            .map(|b| serde_json::from_str(&serde_json::to_string(&stats_of(b)).unwrap()).unwrap())
            .collect();
        // Merge in a rotated order, pairwise like a tree.
        let rot = (order_seed % 5) as usize;
        let mut it = partials.into_iter().cycle().skip(rot).take(5);
        let mut left = it.next().unwrap();
        let mut right = it.next().unwrap();
        right.merge(it.next().unwrap()).unwrap();
        for p in it { left.merge(p).unwrap(); }
        left.merge(right).unwrap();
        prop_assert_eq!(&left, &whole);
        prop_assert_eq!(serde_json::to_string(&left).unwrap(), serde_json::to_string(&whole).unwrap());
        prop_assert_eq!(left.order_count(), orders.len() as u64);

        // The batch path gives the same statistics.
        let mut batch = CycleStats::new(cycles(), CNY);
        let minor: Vec<MinorOrder<u64>> = orders
            .iter()
            .map(|o| MinorOrder {
                user: *o.user(),
                at_micros: o.at().timestamp_micros(),
                gross: o.gross().to_minor().unwrap(),
                discount: o.discount().to_minor().unwrap(),
                paid: o.paid().to_minor().unwrap(),
                coupon_used: o.coupon_used(),
            })
            .collect();
        batch.extend_minor(minor.clone()).unwrap();
        prop_assert_eq!(&batch, &whole);
        // A bad order: everything before it is added, nothing after.
        if minor.len() > 2 {
            let cut = minor.len() / 2;
            let mut broken = minor.clone();
            broken[cut].discount = broken[cut].gross + 1;
            let mut partial = CycleStats::new(cycles(), CNY);
            let (at, err) = partial.extend_minor(broken).unwrap_err();
            prop_assert_eq!(at, cut);
            let is_discount_error = matches!(err, TargetingError::DiscountAboveGross { .. });
            prop_assert!(is_discount_error);
            prop_assert_eq!(&partial, &stats_of(&orders[..cut]));
        }
    }

    #[test]
    fn plan_moves_each_rate_toward_its_standard_within_the_rules(
        raw in proptest::collection::vec(order_strategy(), 1..150),
        step in 1i64..100_000,
        floor in 0i64..50_000,
        span in 0i64..400_000,
    ) {
        let stats = stats_of(&raw.into_iter().map(to_order).collect::<Vec<_>>());
        let feb = cycles().index_of(Utc.with_ymd_and_hms(2026, 2, 10, 0, 0, 0).unwrap());
        let types = classify(&stats, feb, &TypeGrid::medians()).unwrap();
        let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
        let rules = PlanRules {
            max_step: Decimal::new(step, 6),
            floor: Decimal::new(floor, 6),
            ceiling: Decimal::new(floor + span, 6),
            ..PlanRules::default()
        };
        let plan = plan_cycle(&stats, &types, &standards, &rules).unwrap();
        let (lo, hi, st) = (rules.floor, rules.ceiling, rules.max_step);
        let mut last_total = m(0);
        let mut expected_total = m(0);
        for p in plan.users() {
            prop_assert!(p.rate() >= lo && p.rate() <= hi, "{} outside [{}, {}]", p.rate(), lo, hi);
            last_total = last_total.checked_add(&p.last_cost()).unwrap();
            expected_total = expected_total.checked_add(&p.expected_cost()).unwrap();
            let Some(last) = p.last_rate() else {
                prop_assert!(matches!(p.change(), Move::Activate) || p.consumption() != ConsumptionType::Inactive);
                continue;
            };
            let last_d = last.to_decimal(6);
            let std = p.standard();
            // The unclamped target lies between the last rate and the standard, at most a step away.
            let target = if last_d > std { std.max(last_d - st) } else { std.min(last_d + st) };
            let clamped = target.max(lo).min(hi);
            prop_assert_eq!(p.rate(), clamped, "user {:?}: last {} std {}", p.user(), last_d, std);
            // Expected cost: planned rate × last gross.
            let gross = stats.cycle_totals(p.user(), feb).unwrap().gross;
            prop_assert_eq!(p.expected_cost(), gross.mul_ratio(p.rate(), Default::default()).unwrap());
            if let Some(c) = p.coupon() {
                prop_assert!(c.save < c.threshold);
                prop_assert!(c.save.amount() <= c.threshold.amount() * p.rate());
            }
        }
        prop_assert_eq!(plan.total().last_cost, last_total);
        prop_assert_eq!(plan.total().expected_cost, expected_total);
        let by_type: Money = Money::sum(CNY, plan.by_type().values().map(|s| &s.expected_cost).collect::<Vec<_>>()).unwrap();
        prop_assert_eq!(by_type, expected_total);
    }

    #[test]
    fn suggestions_are_valid_templates_a_little_above_the_aov(
        aov in 0i64..2_000_000,
        rate in 0i64..=1_000_000,
        value in 0i64..5_000_000,
        gap in proptest::option::of(0u32..60),
        charm in any::<bool>(),
    ) {
        let rules = SuggestRules {
            price_step: if charm {
                PriceStep::Charm { step: Decimal::TEN, below: Decimal::ONE }
            } else {
                PriceStep::Multiple(Decimal::from(50))
            },
            ..SuggestRules::default()
        };
        let got = suggest(m(aov), Decimal::new(rate, 6), m(value), gap, &rules).unwrap();
        let Some(s) = got else {
            // No coupon only when the caps leave less than one yuan at the threshold it would
            // have had: the AOV raised by 10 % (and by at least a fen), to the cent, then up to
            // the next price ending in 9 or the next multiple of 50.
            let target = (Decimal::new(aov, 2) * Decimal::new(11, 1)).max(Decimal::new(aov + 1, 2));
            let target = (target * Decimal::ONE_HUNDRED).ceil() / Decimal::ONE_HUNDRED;
            let threshold = if charm {
                ((target + Decimal::ONE) / Decimal::TEN).ceil().max(Decimal::ONE) * Decimal::TEN - Decimal::ONE
            } else {
                (target / Decimal::from(50)).ceil().max(Decimal::ONE) * Decimal::from(50)
            };
            let cap = (threshold * Decimal::new(rate, 6))
                .min(threshold * Decimal::new(3, 1))
                .min(Decimal::new(value, 2) / Decimal::TEN)
                .min(threshold - Decimal::new(1, 2));
            prop_assert!(cap < Decimal::ONE, "no coupon though the cap at {} is {}", threshold, cap);
            return Ok(());
        };
        prop_assert!(s.threshold > m(aov));
        prop_assert!(s.threshold.amount() >= Decimal::new(aov, 2) * Decimal::new(11, 1));
        let whole = s.threshold.amount();
        prop_assert_eq!(whole.fract(), Decimal::ZERO);
        if charm {
            prop_assert_eq!((whole + Decimal::ONE) % Decimal::TEN, Decimal::ZERO);
            prop_assert!(whole - Decimal::TEN < Decimal::new(aov, 2) * Decimal::new(11, 1) || whole - Decimal::TEN <= Decimal::new(aov, 2));
        } else {
            prop_assert_eq!(whole % Decimal::from(50), Decimal::ZERO);
        }
        prop_assert_eq!(s.save.amount().fract(), Decimal::ZERO);
        prop_assert!(s.save.amount() <= s.threshold.amount() * Decimal::new(rate, 6));
        prop_assert!(s.save.amount() <= s.threshold.amount() * Decimal::new(3, 1));
        prop_assert!(s.save.amount() <= Decimal::new(value, 2) / Decimal::TEN);
        prop_assert!((7..=14).contains(&s.validity_days));
        let template = s.template_spec(TemplateId::new("t").unwrap(), "suggested").unwrap().build();
        prop_assert!(template.is_ok());
    }

    #[test]
    fn quintile_scores_keep_ties_and_use_every_score(values in proptest::collection::vec(0i64..40, 0..300)) {
        let scores = quintile_scores(&values);
        prop_assert_eq!(scores.len(), values.len());
        let mut by_value: BTreeMap<i64, BTreeSet<u8>> = BTreeMap::new();
        for (v, s) in values.iter().zip(&scores) {
            prop_assert!((1..=5).contains(s));
            by_value.entry(*v).or_default().insert(*s);
        }
        // Ties never split; higher values never score lower.
        let mut prev = 0u8;
        for set in by_value.values() {
            prop_assert_eq!(set.len(), 1);
            let s = *set.iter().next().unwrap();
            prop_assert!(s >= prev);
            prev = s;
        }
        // Bins never collapse: min(distinct, 5) scores in use.
        let used: BTreeSet<u8> = scores.iter().copied().collect();
        prop_assert_eq!(used.len(), by_value.len().min(5));
    }
}

#[test]
fn a_tampered_partial_is_refused() {
    let s = stats_of(&[to_order((1, 10, 1000, 100))]);
    let json = serde_json::to_string(&s).unwrap();
    assert!(serde_json::from_str::<CycleStats<u64>>(&json).is_ok());
    let bad = json.replace("\"discount_minor\":100", "\"discount_minor\":5000");
    assert!(serde_json::from_str::<CycleStats<u64>>(&bad).is_err());
    let bad = json.replace("\"orders\":1,\"users\"", "\"orders\":2,\"users\"");
    assert!(serde_json::from_str::<CycleStats<u64>>(&bad).is_err());
    let other = CycleStats::<u64>::new(Cycles::monthly(FixedOffset::east_opt(0).unwrap()), CNY);
    assert!(matches!(
        s.clone().merge(other),
        Err(TargetingError::Incompatible { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// The plan on real purchases (CDNOW, with synthetic discounts), against a reference model.

struct Row {
    user: u64,
    at: DateTime<Utc>,
    gross: i64,
    discount: i64,
}

fn cdnow() -> Vec<Row> {
    let text = include_str!("../../examples/plan_cycle/data/cdnow_orders.csv");
    let minor = |s: &str| {
        (s.parse::<Decimal>().unwrap() * Decimal::ONE_HUNDRED)
            .try_into()
            .unwrap()
    };
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Row {
                user: f[0].parse().unwrap(),
                at: f[1].parse().unwrap(),
                gross: minor(f[2]),
                discount: minor(f[3]),
            }
        })
        .collect()
}

fn round_half_even(n: i128, d: i128) -> i128 {
    let (q, r) = (n.div_euclid(d), n.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// The plan computed the slow, obvious way: per-user sums in a BTreeMap, sorted medians, and the
/// rules written out; returns (type name, planned rate in millionths, expected cost) per user.
fn reference_plan(
    rows: &[Row],
    cycles: Cycles,
    p: CycleIndex,
    step: i128,
) -> BTreeMap<u64, (String, i128, i128)> {
    let (start, end) = cycles.bounds(p).unwrap();
    let mut first: BTreeMap<u64, DateTime<Utc>> = BTreeMap::new();
    let mut in_p: BTreeMap<u64, (i128, i128, i128)> = BTreeMap::new();
    for r in rows {
        let f = first.entry(r.user).or_insert(r.at);
        *f = (*f).min(r.at);
        if r.at >= start && r.at < end {
            let e = in_p.entry(r.user).or_default();
            e.0 += 1;
            e.1 += i128::from(r.gross);
            e.2 += i128::from(r.discount);
        }
    }
    let active: Vec<(u64, i128, i128)> = in_p
        .iter()
        .filter(|(u, _)| first[u] < start)
        .map(|(u, (n, g, _))| (*u, *n, round_half_even(*g, *n)))
        .collect();
    let median = |mut v: Vec<i128>| {
        v.sort();
        v[v.len().div_ceil(2) - 1]
    };
    let f_cut = median(active.iter().map(|a| a.1).collect());
    let s_cut = median(active.iter().map(|a| a.2).collect());
    let mut kind: BTreeMap<u64, String> = BTreeMap::new();
    for (u, f) in &first {
        if *f >= end {
            continue;
        }
        let name = if *f >= start {
            "new".to_string()
        } else if let Some((n, g, _)) = in_p.get(u) {
            let aov = round_half_even(*g, *n);
            format!(
                "{}-{}",
                if *n > f_cut { "frequent" } else { "occasional" },
                if aov > s_cut {
                    "high-spend"
                } else {
                    "low-spend"
                }
            )
        } else {
            "inactive".to_string()
        };
        kind.insert(*u, name);
    }
    let mut sums: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    let mut pop = (0i128, 0i128);
    for (u, (_, g, d)) in &in_p {
        if let Some(k) = kind.get(u) {
            let e = sums.entry(k.clone()).or_default();
            e.0 += d;
            e.1 += g;
            pop.0 += d;
            pop.1 += g;
        }
    }
    let micros = |d: i128, g: i128| round_half_even(d * 1_000_000, g);
    let pop_std = micros(pop.0, pop.1);
    let mut out = BTreeMap::new();
    for (u, k) in &kind {
        match in_p.get(u) {
            Some((_, g, d)) => {
                let (sd, sg) = sums[k];
                let std = if sg > 0 { micros(sd, sg) } else { pop_std };
                if *g == 0 {
                    // Nothing bought for money: one step up from nothing, at most the standard.
                    out.insert(*u, (k.clone(), std.min(step).clamp(0, 300_000), 0));
                    continue;
                }
                let last = micros(*d, *g);
                // exact comparison of d/g with std/1e6
                let over = d * 1_000_000 > std * g;
                let under = d * 1_000_000 < std * g;
                let rate = if over {
                    std.max(last - step)
                } else if under {
                    std.min(last + step)
                } else {
                    std
                };
                let rate = rate.clamp(0, 300_000);
                out.insert(*u, (k.clone(), rate, round_half_even(g * rate, 1_000_000)));
            }
            None => {
                out.insert(*u, (k.clone(), pop_std.clamp(0, 300_000), -1));
            }
        }
    }
    out
}

#[test]
fn the_plan_on_cdnow_matches_a_reference_model_from_any_partition() {
    let rows = cdnow();
    assert_eq!(rows.len(), 6_919);
    let cycles = Cycles::monthly(FixedOffset::east_opt(0).unwrap());
    // Partition by user parity and by half of the file, then merge.
    let mut parts: Vec<CycleStats<u64>> = (0..4)
        .map(|_| CycleStats::new(cycles, Currency::USD))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let usd = |x| Money::from_minor(x, Currency::USD);
        let o = Order::new(
            r.user,
            r.at,
            usd(r.gross),
            usd(r.discount),
            usd(r.gross - r.discount),
            r.discount > 0,
        )
        .unwrap();
        parts[(r.user as usize % 2) * 2 + usize::from(i >= rows.len() / 2)]
            .add(&o)
            .unwrap();
    }
    let mut stats = parts.pop().unwrap();
    for p in parts {
        stats.merge(p).unwrap();
    }
    assert_eq!(stats.user_count(), 2_357);
    for (label, day) in [
        ("1997-03", NaiveDate::from_ymd_opt(1997, 3, 15)),
        ("1997-09", NaiveDate::from_ymd_opt(1997, 9, 15)),
    ] {
        let p = cycles.index_of(day.unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc());
        assert_eq!(cycles.label(p), label);
        let types = classify(&stats, p, &TypeGrid::medians()).unwrap();
        let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
        let plan = plan_cycle(&stats, &types, &standards, &PlanRules::default()).unwrap();
        let reference = reference_plan(&rows, cycles, p, 20_000);
        assert_eq!(plan.users().len(), reference.len(), "{label}");
        for up in plan.users() {
            let (kind, rate, cost) = &reference[up.user()];
            assert_eq!(&up.consumption().name(), kind, "{label} user {}", up.user());
            assert_eq!(
                i128::from(up.rate_micros()),
                *rate,
                "{label} user {}",
                up.user()
            );
            if *cost >= 0 {
                assert_eq!(i128::from(up.expected_cost().to_minor().unwrap()), *cost);
            }
        }
        // The cohort first bought in Q1 1997: by September nobody is new.
        let counts = types.counts();
        if label == "1997-09" {
            assert_eq!(counts[&ConsumptionType::New], 0);
            assert!(counts[&ConsumptionType::Inactive] > 1_500);
        } else {
            assert!(counts[&ConsumptionType::New] > 500);
        }
    }
}

#[test]
fn the_documented_worked_example_holds() {
    // The table in the plan module's docs, checked line by line.
    let usd = |n: i64| Money::from_minor(n * 100, CNY);
    let at = |mo, d| Utc.with_ymd_and_hms(2026, mo, d, 4, 0, 0).unwrap();
    let mut stats = CycleStats::new(cycles(), CNY);
    for (u, when, g, d) in [
        ("A", at(2, 3), 50, 0),
        ("B", at(2, 5), 50, 0),
        ("C", at(2, 9), 50, 0),
        ("D", at(2, 9), 80, 0),
        ("A", at(3, 2), 100, 20),
        ("A", at(3, 9), 100, 20),
        ("B", at(3, 4), 300, 15),
        ("C", at(3, 5), 500, 45),
    ] {
        stats
            .add(&Order::new(u.to_string(), when, usd(g), usd(d), usd(g - d), d > 0).unwrap())
            .unwrap();
    }
    let march = cycles().index_of(at(3, 1));
    let grid = TypeGrid::new(Cuts::Fixed(vec![100]), Cuts::Fixed(vec![usd(10_000)])).unwrap();
    let types = classify(&stats, march, &grid).unwrap();
    let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
    let kind = *types.get(&"A".to_string()).unwrap();
    assert_eq!(standards.get(&kind).unwrap().rate, Decimal::new(1, 1));
    let rules = PlanRules {
        max_step: Decimal::new(5, 2),
        ..PlanRules::default()
    };
    let plan = plan_cycle(&stats, &types, &standards, &rules).unwrap();
    let table = [
        ("A", Move::Down, 15, 30, Some((119, 17))),
        ("B", Move::Up, 10, 30, Some((339, 30))),
        ("C", Move::Up, 10, 50, Some((559, 50))),
        ("D", Move::Activate, 10, 8, Some((89, 8))),
    ];
    for (u, mv, pct, cost, coupon) in table {
        let p = plan.user(&u.to_string()).unwrap();
        assert_eq!(p.change(), mv, "{u}");
        assert_eq!(p.rate(), Decimal::new(pct, 2), "{u}");
        assert_eq!(p.expected_cost(), usd(cost), "{u}");
        assert_eq!(
            p.coupon().map(|c| (c.threshold, c.save)),
            coupon.map(|(t, s)| (usd(t), usd(s))),
            "{u}"
        );
    }
    assert_eq!(plan.by_type()[&kind].last_cost, usd(100));
    assert_eq!(plan.by_type()[&kind].expected_cost, usd(110));
    assert_eq!(plan.total().expected_cost, usd(118));
    assert_eq!(plan.total().saving().unwrap(), usd(-18));
}

#[test]
fn standard_rate_alternatives_follow_their_definitions() {
    // One type, rates 0 %, 10 %, 20 %, 90 % on grosses 100, 100, 100, 1000.
    let mut stats = CycleStats::new(cycles(), CNY);
    let at = |mo, d| Utc.with_ymd_and_hms(2026, mo, d, 4, 0, 0).unwrap();
    for (u, g, d) in [
        (1u64, 10_000, 0),
        (2, 10_000, 1_000),
        (3, 10_000, 2_000),
        (4, 100_000, 90_000),
    ] {
        stats
            .add(&Order::new(u, at(1, 2), m(100), m(0), m(100), false).unwrap())
            .unwrap();
        stats
            .add(&Order::new(u, at(2, 2), m(g), m(d), m(g - d), d > 0).unwrap())
            .unwrap();
    }
    let feb = cycles().index_of(at(2, 2));
    let grid = TypeGrid::new(Cuts::Fixed(vec![10]), Cuts::Fixed(vec![m(100_000_000)])).unwrap();
    let types = classify(&stats, feb, &grid).unwrap();
    let kind = *types.get(&1).unwrap();
    let rate = |rule: StandardRule| {
        standard_rates(&stats, &types, &rule)
            .unwrap()
            .get(&kind)
            .unwrap()
            .rate
    };
    // Aggregate: 93 000 / 130 000 = 0.715384…
    assert_eq!(rate(StandardRule::default()), Decimal::new(715_385, 6));
    let median = StandardRule {
        method: RateMethod::MedianOfUsers,
        adjustment: None,
    };
    assert_eq!(rate(median), Decimal::new(1, 1));
    let trimmed = StandardRule {
        method: RateMethod::TrimmedMean {
            trim: Decimal::new(25, 2),
        },
        adjustment: None,
    };
    assert_eq!(rate(trimmed), Decimal::new(15, 2));
    let scaled = StandardRule {
        method: RateMethod::MedianOfUsers,
        adjustment: Some(Adjustment::Scale(Decimal::new(5, 1))),
    };
    assert_eq!(rate(scaled), Decimal::new(5, 2));
    let toward = StandardRule {
        method: RateMethod::MedianOfUsers,
        adjustment: Some(Adjustment::Toward {
            target: Decimal::new(3, 1),
            weight: Decimal::new(5, 1),
        }),
    };
    assert_eq!(rate(toward), Decimal::new(2, 1));
}

#[test]
fn segments_plug_into_audience_rules() {
    let mut stats: CycleStats<UserId> = CycleStats::new(cycles(), CNY);
    let at = |mo, d| Utc.with_ymd_and_hms(2026, mo, d, 4, 0, 0).unwrap();
    let u = |s: &str| UserId::new(s).unwrap();
    for (user, when, g) in [
        ("old", at(1, 2), 100),
        ("fresh", at(5, 25), 50),
        ("vip", at(1, 3), 9_000),
        ("vip", at(5, 1), 9_000),
        ("shaky", at(2, 1), 10),
        ("shaky", at(5, 3), 20),
    ] {
        stats
            .add_parts(user, when, m(g * 100), m(0), m(g * 100), false)
            .unwrap();
    }
    let now = at(6, 1);
    let p_alive = |k: &UserId| (k.as_str() == "shaky").then_some(0.2);
    let rules = LifecycleRules {
        high_value_share: Decimal::new(25, 2),
        ..LifecycleRules::default()
    };
    let life = lifecycle_segments(&stats, now, &rules, p_alive).unwrap();
    assert_eq!(life.get(&u("old")), Some(Lifecycle::Dormant));
    assert_eq!(life.get(&u("fresh")), Some(Lifecycle::New));
    assert_eq!(life.get(&u("vip")), Some(Lifecycle::HighValue));
    assert_eq!(life.get(&u("shaky")), Some(Lifecycle::ChurnRisk));

    let rfm = rfm_scores(&stats, now).unwrap();
    assert_eq!(rfm.get(&u("vip")).unwrap().m, 5);
    assert_eq!(rfm.get(&u("old")).unwrap().r, 1);

    // A come-back coupon for dormant users only.
    let conditions = Conditions::try_from(ConditionsSpec {
        audience: AudienceSpec {
            segments: Some(BTreeSet::from([SegmentId::new("dormant").unwrap()])),
            ..AudienceSpec::default()
        },
        ..ConditionsSpec::default()
    })
    .unwrap();
    for (user, eligible) in [("old", true), ("fresh", false), ("vip", false)] {
        let mut buyer = Buyer::new(u(user), Channel::new("app").unwrap());
        life.tag(&mut buyer);
        rfm.tag(&mut buyer);
        assert_eq!(buyer.segments.len(), 2);
        let misses = conditions.audience_misses(&buyer);
        assert_eq!(misses.is_empty(), eligible, "{user}: {misses:?}");
        if !eligible {
            assert_eq!(misses, vec![AudienceMiss::Segment]);
        }
    }
}

#[test]
fn bad_orders_and_settings_are_typed_errors() {
    let at = t0();
    assert!(matches!(
        Order::new(1u64, at, m(100), m(200), m(0), true),
        Err(TargetingError::DiscountAboveGross { .. })
    ));
    assert!(matches!(
        Order::new(1u64, at, m(-1), m(0), m(0), false),
        Err(TargetingError::Negative { .. })
    ));
    let usd = Money::from_minor(1, Currency::USD);
    assert!(matches!(
        Order::new(1u64, at, m(100), usd, m(0), false),
        Err(TargetingError::CurrencyMismatch { .. })
    ));
    let mut s: CycleStats<u64> = CycleStats::new(cycles(), CNY);
    let o = Order::new(1u64, at, usd, Money::zero(Currency::USD), usd, false).unwrap();
    assert!(matches!(
        s.add(&o),
        Err(TargetingError::CurrencyMismatch { .. })
    ));
    assert_eq!(s.order_count(), 0);
    let stats = stats_of(&[to_order((1, 10, 1000, 100))]);
    let jan = cycles().index_of(at);
    let types = classify(&stats, jan, &TypeGrid::medians()).unwrap();
    let standards = standard_rates(&stats, &types, &StandardRule::default()).unwrap();
    let bad = PlanRules {
        floor: Decimal::new(5, 1),
        ceiling: Decimal::new(1, 1),
        ..PlanRules::default()
    };
    assert!(plan_cycle(&stats, &types, &standards, &bad).is_err());
    let bad = PlanRules {
        max_step: Decimal::new(1, 7),
        ..PlanRules::default()
    };
    assert!(plan_cycle(&stats, &types, &standards, &bad).is_err());
}
