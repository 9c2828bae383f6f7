//! Budget-optimal allocation against brute force on small instances, and its guarantees on a
//! million users.

use coupons::budget::{Allocation, Budget, BudgetError, Candidates, Choice, allocate};
use coupons::id::{SegmentId, UserId};
use coupons::money::{Currency, Money};
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn fen(n: i64) -> Money {
    Money::from_minor(n, CNY)
}

/// A user: a segment (0, 1 or none) and (value, cost in fen) choices.
type User = (Option<u8>, Vec<(i32, i64)>);

/// One small instance.
#[derive(Debug, Clone)]
struct Instance {
    users: Vec<User>,
    total: Option<i64>,
    segments: [Option<i64>; 2],
}

fn instance() -> impl Strategy<Value = Instance> {
    let choice = (-3i32..40, prop_oneof![Just(0i64), 1i64..30]);
    let user = (
        prop_oneof![Just(None), Just(Some(0u8)), Just(Some(1u8))],
        prop::collection::vec(choice, 0..4),
    );
    (
        prop::collection::vec(user, 0..7),
        prop_oneof![Just(None), (0i64..80).prop_map(Some)],
        [
            prop_oneof![Just(None), (0i64..50).prop_map(Some)],
            prop_oneof![Just(None), (0i64..50).prop_map(Some)],
        ],
    )
        .prop_map(|(users, total, segments)| Instance {
            users,
            total,
            segments,
        })
}

fn segment_id(s: u8) -> SegmentId {
    SegmentId::new(format!("s{s}")).unwrap()
}

fn build(inst: &Instance) -> (Candidates, Budget) {
    let mut c = Candidates::new(CNY);
    for (i, (seg, choices)) in inst.users.iter().enumerate() {
        let choices: Vec<Choice> = choices
            .iter()
            .map(|&(v, cost)| Choice::new(f64::from(v), fen(cost)).unwrap())
            .collect();
        let seg = seg.map(segment_id);
        c.push(
            UserId::new(format!("u{i}")).unwrap(),
            seg.as_ref(),
            &choices,
        )
        .unwrap();
    }
    let mut b = match inst.total {
        Some(t) => Budget::total(fen(t)).unwrap(),
        None => Budget::unlimited(),
    };
    for (s, amount) in inst.segments.iter().enumerate() {
        if let Some(a) = amount {
            b = b.with_segment(segment_id(s as u8), fen(*a)).unwrap();
        }
    }
    (c, b)
}

/// Whether a plan (choice per user or none) is within every budget.
fn feasible(inst: &Instance, plan: &[Option<usize>]) -> bool {
    let mut total = 0;
    let mut seg = [0i64; 2];
    for ((s, choices), p) in inst.users.iter().zip(plan) {
        if let Some(k) = p {
            let cost = choices[*k].1;
            total += cost;
            if let Some(s) = s {
                seg[*s as usize] += cost;
            }
        }
    }
    inst.total.is_none_or(|t| total <= t)
        && (0..2).all(|s| inst.segments[s].is_none_or(|b| seg[s] <= b))
}

fn value_of(inst: &Instance, plan: &[Option<usize>]) -> i64 {
    inst.users
        .iter()
        .zip(plan)
        .map(|((_, choices), p)| p.map_or(0, |k| i64::from(choices[k].0)))
        .sum()
}

/// The optimum by enumerating every plan.
fn brute_force(inst: &Instance) -> i64 {
    let mut best = 0;
    let mut plan: Vec<Option<usize>> = vec![None; inst.users.len()];
    fn go(inst: &Instance, i: usize, plan: &mut Vec<Option<usize>>, best: &mut i64) {
        if i == inst.users.len() {
            if feasible(inst, plan) {
                *best = (*best).max(value_of(inst, plan));
            }
            return;
        }
        plan[i] = None;
        go(inst, i + 1, plan, best);
        for k in 0..inst.users[i].1.len() {
            plan[i] = Some(k);
            go(inst, i + 1, plan, best);
        }
        plan[i] = None;
    }
    go(inst, 0, &mut plan, &mut best);
    best
}

fn picks(inst: &Instance, a: &Allocation) -> Vec<Option<usize>> {
    (0..inst.users.len()).map(|u| a.pick(u)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn plan_is_feasible_and_brackets_the_optimum_with_its_bound(inst in instance()) {
        let (c, b) = build(&inst);
        let a = allocate(&c, &b).unwrap();
        let plan = picks(&inst, &a);
        // Within every budget, exactly.
        prop_assert!(feasible(&inst, &plan));
        if let Some(t) = inst.total {
            prop_assert!(a.cost <= fen(t));
        }
        for s in &a.segments {
            prop_assert!(s.spent <= s.budget);
        }
        // The reported value and cost are the plan's.
        prop_assert_eq!(a.value, value_of(&inst, &plan) as f64);
        let cost: i64 = inst.users.iter().zip(&plan)
            .map(|((_, ch), p)| p.map_or(0, |k| ch[k].1)).sum();
        prop_assert_eq!(a.cost, fen(cost));
        // value <= optimum <= bound.
        let opt = brute_force(&inst) as f64;
        prop_assert!(a.value <= opt, "value {} > optimum {opt}", a.value);
        prop_assert!(opt <= a.bound + 1e-9, "optimum {opt} > bound {}", a.bound);
        // The gap is at most one upgrade per budget that can bind.
        let vmax = inst.users.iter().flat_map(|(_, ch)| ch.iter().map(|c| c.0)).max().unwrap_or(0).max(0);
        let constraints = 1 + inst.segments.iter().filter(|s| s.is_some()).count();
        prop_assert!(a.gap() <= (constraints as f64) * f64::from(vmax) + 1e-9,
            "gap {} with vmax {vmax}", a.gap());
        // A zero gap certifies optimality.
        if a.gap() <= 1e-9 {
            prop_assert_eq!(a.value, opt);
        }
    }

    #[test]
    fn a_budget_that_does_not_bind_gives_the_optimum_and_a_tight_bound(inst in instance()) {
        // Everyone's most valuable choice (the cheapest among equals), if it fits.
        let best: Vec<Option<usize>> = inst.users.iter().map(|(_, ch)| {
            let mut best: Option<usize> = None;
            for (k, c) in ch.iter().enumerate() {
                if c.0 <= 0 { continue; }
                match best {
                    Some(b) if (ch[b].0, -ch[b].1) >= (c.0, -c.1) => {}
                    _ => best = Some(k),
                }
            }
            best
        }).collect();
        prop_assume!(feasible(&inst, &best));
        let (c, b) = build(&inst);
        let a = allocate(&c, &b).unwrap();
        let want = value_of(&inst, &best) as f64;
        prop_assert_eq!(a.value, want);
        prop_assert!((a.bound - want).abs() <= 1e-9, "bound {} vs {want}", a.bound);
        prop_assert_eq!(a.price, 0.0);
    }

    #[test]
    fn one_constraint_spent_exactly_at_its_price_is_optimal(
        values in prop::collection::vec(1i32..50, 1..8), unit in 1i64..5,
    ) {
        // Every user has one choice costing `unit`; a budget of k units takes the k best.
        let inst = Instance {
            users: values.iter().map(|&v| (None, vec![(v, unit)])).collect(),
            total: Some(unit * (values.len() as i64 / 2)),
            segments: [None, None],
        };
        let (c, b) = build(&inst);
        let a = allocate(&c, &b).unwrap();
        let mut sorted = values.clone();
        sorted.sort_unstable_by(|x, y| y.cmp(x));
        let want: i32 = sorted.iter().take(values.len() / 2).sum();
        prop_assert_eq!(a.value, f64::from(want));
        prop_assert!(a.gap() <= 1e-9);
    }
}

#[test]
fn budgets_in_another_currency_are_refused() {
    let mut c = Candidates::new(CNY);
    c.push(
        UserId::new("a").unwrap(),
        None,
        &[Choice::new(1.0, fen(5)).unwrap()],
    )
    .unwrap();
    let usd = Budget::total(Money::from_minor(100, Currency::USD)).unwrap();
    assert!(matches!(
        allocate(&c, &usd),
        Err(BudgetError::CurrencyMismatch { .. })
    ));
}

/// A realistic campaign: a million users, five coupon options each, drawn from a handful of
/// customer types (so many users have identical options: ties), with dominated options, free
/// options (points), and three segments with budgets of their own.
fn campaign(users: usize) -> (Candidates, Budget) {
    let mut c = Candidates::with_capacity(CNY, users, users * 5);
    let segments = [
        SegmentId::new("new").unwrap(),
        SegmentId::new("active").unwrap(),
        SegmentId::new("churn-risk").unwrap(),
    ];
    let mut state: u64 = 42;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let faces = [500i64, 1000, 2000, 5000]; // fen
    let mut choices = Vec::with_capacity(5);
    for u in 0..users {
        choices.clear();
        // 40 customer types; within a type every user has the same options.
        let kind = next() % 40;
        let propensity = 0.02 + 0.01 * (kind % 10) as f64;
        let basket = 8_000 + 2_000 * (kind / 10) as i64; // fen
        // Free option (double points): small value, no money.
        choices.push(Choice::new(0.2 * propensity * basket as f64 / 100.0, fen(0)).unwrap());
        for (j, &face) in faces.iter().enumerate() {
            let redeem = (propensity * (1.0 + j as f64)).min(0.9);
            let cost = (face as f64 * redeem).round() as i64;
            // Diminishing, sometimes negative returns: bigger coupons are often dominated.
            let uplift = redeem * basket as f64 * 0.3 / 100.0 - 0.4 * j as f64;
            choices.push(Choice::new(uplift, fen(cost)).unwrap());
        }
        let seg = match next() % 4 {
            0 => None,
            s => Some(&segments[(s - 1) as usize]),
        };
        c.push(UserId::new(format!("user-{u}")).unwrap(), seg, &choices)
            .unwrap();
    }
    let yuan = |n: i64| fen(n * 100);
    let budget = Budget::total(yuan(users as i64 / 2))
        .unwrap()
        .with_segment(segments[0].clone(), yuan(users as i64 / 20))
        .unwrap()
        .with_segment(segments[2].clone(), yuan(users as i64 / 10))
        .unwrap();
    (c, budget)
}

#[test]
fn a_million_users_plan_is_within_one_percent_of_the_bound() {
    let (c, b) = campaign(1_000_000);
    let a = allocate(&c, &b).unwrap();
    assert!(a.cost <= b.total_amount().unwrap());
    for s in &a.segments {
        assert!(s.spent <= s.budget, "{s:?}");
    }
    assert!(a.price > 0.0, "the total budget binds");
    assert!(a.relative_gap() <= 0.01, "gap {} of {}", a.gap(), a.bound);
    assert!(a.relative_gap() >= -1e-12);
}
