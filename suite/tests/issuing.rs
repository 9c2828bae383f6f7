//! Automated issuing: decisions match a reference model of every guard over random streams
//! (so caps are never exceeded, duplicates never issued, budgets spent exactly), decisions are
//! deterministic and replay in pieces, quiet hours defer and never drop, timers fire and are
//! replaced or cancelled, rules and policies round-trip through JSON with typed errors that
//! name the field, and carrying a stream out through the service twice issues nothing new.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Timelike, Utc};
use coupons::cart::CustomerKind;
use coupons::id::{OrderId, SegmentId, TemplateId, UserId};
use coupons::issuing::rule::MAX_COOLDOWN_MINUTES;
use coupons::issuing::*;
use coupons::money::{Currency, Money};
use coupons::repository::MemoryStore;
use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
use coupons::service::Service;
use coupons::targeting::Lifecycle;
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn user(i: u8) -> UserId {
    UserId::new(format!("u{i}")).unwrap()
}

fn tid(s: &str) -> TemplateId {
    TemplateId::new(s).unwrap()
}

fn rid(s: &str) -> RuleId {
    RuleId::new(s).unwrap()
}

fn offset(quarter_hours: i32) -> FixedOffset {
    FixedOffset::east_opt(quarter_hours * 900).unwrap()
}

// ------------------------------------------------------------------ the reference model

#[derive(Clone, Debug)]
struct CapCase {
    max: u32,
    calendar: bool,
    days: u16,
    message: Option<Message>,
}

#[derive(Clone, Debug)]
struct RuleCase {
    /// 0 share clicked, 1 occasion A, 2 occasion B, 3 birthday.
    trigger: u8,
    message: Option<Message>,
    transactional: bool,
    cooldown_minutes: Option<u32>,
    budget: Option<usize>,
    cost: i64,
}

#[derive(Clone, Debug)]
struct BudgetCase {
    money: Option<i64>,
    count: Option<u64>,
}

#[derive(Clone, Debug)]
struct EventCase {
    user: u8,
    secs: i64,
    /// 0 share clicked, 1 occasion A, 2 occasion B, 3 birthday.
    kind: u8,
    clicker: u8,
}

#[derive(Clone, Debug)]
struct Case {
    offsets: Vec<i32>,
    caps: Vec<CapCase>,
    rules: Vec<RuleCase>,
    budgets: Vec<BudgetCase>,
    quiet: Option<(u16, u16)>,
    events: Vec<EventCase>,
}

fn message() -> impl Strategy<Value = Option<Message>> {
    prop_oneof![
        Just(None),
        Just(Some(Message::Push)),
        Just(Some(Message::Sms)),
        Just(Some(Message::InApp))
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let cap =
        (1u32..4, any::<bool>(), 1u16..10, message()).prop_map(|(max, calendar, days, message)| {
            CapCase {
                max,
                calendar,
                days,
                message,
            }
        });
    let rule = (
        0u8..4,
        message(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.4, 1u32..(5 * 24 * 60)),
        prop::option::weighted(0.5, 0usize..2),
        0i64..500,
    )
        .prop_map(
            |(trigger, message, transactional, cooldown_minutes, budget, cost)| RuleCase {
                trigger,
                message,
                transactional,
                cooldown_minutes,
                budget,
                cost,
            },
        );
    let budget =
        (prop::option::of(0i64..3000), prop::option::of(0u64..15)).prop_map(|(money, count)| {
            BudgetCase {
                money: money.or(if count.is_none() { Some(1000) } else { None }),
                count,
            }
        });
    // Times on the hour half of the time, so that local midnights and exact window
    // boundaries come up.
    let secs = prop_oneof![
        0i64..(60 * 86_400),
        (0i64..(60 * 24)).prop_map(|h| h * 3600)
    ];
    let event = (0u8..5, secs, 0u8..4, 0u8..6).prop_map(|(user, secs, kind, clicker)| EventCase {
        user,
        secs,
        kind,
        clicker,
    });
    (
        prop::collection::vec(-48i32..=56, 5),
        prop::collection::vec(cap, 0..3),
        prop::collection::vec(rule, 1..5),
        prop::collection::vec(budget, 2),
        prop::option::of((0u16..1440, 0u16..1440)),
        prop::collection::vec(event, 1..80),
    )
        .prop_map(|(offsets, caps, rules, budgets, quiet, mut events)| {
            events.sort_by_key(|e| e.secs);
            Case {
                offsets,
                caps,
                rules,
                budgets,
                quiet: quiet.filter(|(a, b)| a != b),
                events,
            }
        })
}

fn budget_id(i: usize) -> BudgetId {
    BudgetId::new(format!("b{i}")).unwrap()
}

fn occasion(i: u8) -> Occasion {
    Occasion::new(if i == 1 { "spring" } else { "autumn" }).unwrap()
}

fn build(case: &Case, with_quiet: bool) -> Engine {
    let mut policy = Policy::new(CNY);
    for c in &case.caps {
        let window = if c.calendar {
            Window::Calendar { days: c.days }
        } else {
            Window::Rolling { days: c.days }
        };
        policy = policy.cap(FrequencyCap::new(c.max, window, c.message).unwrap());
    }
    for (i, b) in case.budgets.iter().enumerate() {
        policy = policy.budget(Budget::new(budget_id(i), b.money.map(m), b.count).unwrap());
    }
    if let (Some((a, b)), true) = (case.quiet, with_quiet) {
        policy = policy.quiet(QuietHours::new(a, b).unwrap());
    }
    let rules = case
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let trigger = match r.trigger {
                0 => Trigger::ShareClicked,
                1 | 2 => Trigger::Occasion {
                    name: occasion(r.trigger),
                },
                _ => Trigger::Birthday,
            };
            let mut spec = RuleSpec::new(
                rid(&format!("r{i}")),
                trigger,
                Offer::template(tid(&format!("t{i}")), m(r.cost)),
            );
            spec.message = r.message;
            spec.transactional = r.transactional;
            spec.cooldown_minutes = r.cooldown_minutes;
            spec.budget = r.budget.map(budget_id);
            spec.build().unwrap()
        })
        .collect();
    Engine::new(policy, rules).unwrap()
}

fn events(case: &Case) -> Vec<Event> {
    case.events
        .iter()
        .map(|e| Event {
            at: t0() + Duration::seconds(e.secs),
            user: user(e.user),
            occurrence: match e.kind {
                0 => Occurrence::ShareClicked {
                    clicker: UserId::new(format!("friend-{}", e.clicker)).unwrap(),
                },
                1 | 2 => Occurrence::Occasion {
                    name: occasion(e.kind),
                },
                _ => Occurrence::Birthday,
            },
        })
        .collect()
}

fn profiles(case: &Case) -> HashMap<UserId, Profile> {
    (0..5u8)
        .map(|i| {
            (
                user(i),
                Profile::new(user(i), offset(case.offsets[usize::from(i)])),
            )
        })
        .collect()
}

/// What the reference model decided for one (event, rule): issued, or the guard's kind.
type ModelOutcome = (usize, usize, Result<(), GuardKind>);

/// An independent statement of the guards: plain loops over everything issued so far.
fn model(case: &Case) -> Vec<ModelOutcome> {
    struct Given {
        user: u8,
        rule: usize,
        at: DateTime<Utc>,
        key: String,
        message: Option<Message>,
        transactional: bool,
    }
    let mut given: Vec<Given> = Vec::new();
    let mut spent = [0i64; 2];
    let mut count = [0u64; 2];
    let mut out = Vec::new();
    for (ei, e) in case.events.iter().enumerate() {
        let at = t0() + Duration::seconds(e.secs);
        let off = offset(case.offsets[usize::from(e.user)]);
        let local = at.with_timezone(&off).date_naive();
        let key = match e.kind {
            0 => format!("friend-{}", e.clicker),
            k => format!("{k}/{}", local.year()),
        };
        for (ri, r) in case.rules.iter().enumerate() {
            if r.trigger != e.kind {
                continue;
            }
            let mine = |g: &&Given| g.user == e.user && g.rule == ri;
            let verdict = (|| {
                if given.iter().filter(mine).any(|g| g.key == key) {
                    return Err(GuardKind::Duplicate);
                }
                if let (Some(cd), Some(last)) = (
                    r.cooldown_minutes,
                    given.iter().filter(mine).map(|g| g.at).max(),
                ) {
                    if at < last + Duration::minutes(i64::from(cd)) {
                        return Err(GuardKind::Cooldown);
                    }
                }
                if !r.transactional {
                    for c in &case.caps {
                        if c.message.is_some() && c.message != r.message {
                            continue;
                        }
                        let n = given
                            .iter()
                            .filter(|g| g.user == e.user && !g.transactional)
                            .filter(|g| c.message.is_none() || c.message == g.message)
                            .filter(|g| {
                                if c.calendar {
                                    let then = g.at.with_timezone(&off).date_naive();
                                    (local - then).num_days() < i64::from(c.days)
                                } else {
                                    at - g.at < Duration::days(i64::from(c.days))
                                }
                            })
                            .count();
                        if n as u32 >= c.max {
                            return Err(GuardKind::Frequency);
                        }
                    }
                }
                if let Some(b) = r.budget {
                    let budget = &case.budgets[b];
                    if budget.count.is_some_and(|max| count[b] >= max) {
                        return Err(GuardKind::BudgetCount);
                    }
                    if budget.money.is_some_and(|max| spent[b] + r.cost > max) {
                        return Err(GuardKind::BudgetMoney);
                    }
                }
                Ok(())
            })();
            if verdict.is_ok() {
                given.push(Given {
                    user: e.user,
                    rule: ri,
                    at,
                    key: key.clone(),
                    message: r.message,
                    transactional: r.transactional,
                });
                if let Some(b) = r.budget {
                    spent[b] += r.cost;
                    count[b] += 1;
                }
            }
            out.push((ei, ri, verdict));
        }
    }
    out
}

/// The engine's outcomes, in the model's shape, and the final state.
fn engine_outcomes(
    case: &Case,
    with_quiet: bool,
) -> (Vec<ModelOutcome>, Vec<(UserId, Decision)>, Memory) {
    let engine = build(case, with_quiet);
    let profiles = profiles(case);
    let mut memory = Memory::new(CNY);
    let mut outcomes = Vec::new();
    let mut decisions = Vec::new();
    for (ei, e) in events(case).iter().enumerate() {
        let d = memory
            .apply(&engine, &profiles[&e.user], &e.occurrence, e.at)
            .unwrap();
        let index = |id: &RuleId| id.as_str()[1..].parse::<usize>().unwrap();
        for i in &d.issues {
            outcomes.push((ei, index(&i.rule), Ok(())));
        }
        for h in &d.held {
            outcomes.push((ei, index(&h.rule), Err(h.guard.kind())));
        }
        decisions.push((e.user.clone(), d));
    }
    outcomes.sort_by_key(|(e, r, _)| (*e, *r));
    (outcomes, decisions, memory)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn decisions_match_the_reference_model_of_every_guard(case in case()) {
        let (got, _, _) = engine_outcomes(&case, true);
        prop_assert_eq!(got, model(&case));
    }

    #[test]
    fn caps_are_never_exceeded(case in case()) {
        let (_, decisions, _) = engine_outcomes(&case, true);
        let issues: Vec<(&UserId, &Issue)> =
            decisions.iter().flat_map(|(u, d)| d.issues.iter().map(move |i| (u, i))).collect();
        let offsets = profiles(&case);
        for c in &case.caps {
            for (u, i) in &issues {
                if i.transactional || !(c.message.is_none() || c.message == i.message) {
                    continue;
                }
                let off = offsets[*u].offset;
                let day = |t: DateTime<Utc>| t.with_timezone(&off).date_naive();
                let within = issues
                    .iter()
                    .filter(|(v, j)| v == u && !j.transactional && j.decided_at <= i.decided_at)
                    .filter(|(_, j)| c.message.is_none() || c.message == j.message)
                    .filter(|(_, j)| if c.calendar {
                        (day(i.decided_at) - day(j.decided_at)).num_days() < i64::from(c.days)
                    } else {
                        i.decided_at - j.decided_at < Duration::days(i64::from(c.days))
                    })
                    .count();
                prop_assert!(within as u32 <= c.max, "{} issues within a cap of {}", within, c.max);
            }
        }
    }

    #[test]
    fn budgets_are_spent_exactly_and_never_exceeded(case in case()) {
        let (_, decisions, memory) = engine_outcomes(&case, true);
        for (b, budget) in case.budgets.iter().enumerate() {
            let id = budget_id(b);
            let charged: Vec<&Issue> = decisions
                .iter()
                .flat_map(|(_, d)| &d.issues)
                .filter(|i| i.budget.as_ref() == Some(&id))
                .collect();
            let total: i64 = charged.iter().map(|i| i.cost.to_minor().unwrap()).sum();
            prop_assert_eq!(memory.ledger().spent(&id), (m(total), charged.len() as u64));
            if let Some(max) = budget.money {
                prop_assert!(total <= max);
            }
            if let Some(max) = budget.count {
                prop_assert!(charged.len() as u64 <= max);
            }
        }
    }

    #[test]
    fn no_rule_issues_twice_for_one_key(case in case()) {
        let (_, decisions, _) = engine_outcomes(&case, true);
        let mut seen = BTreeSet::new();
        for (u, d) in &decisions {
            for i in &d.issues {
                prop_assert!(seen.insert((u.clone(), i.rule.clone(), i.key.clone())));
            }
        }
    }

    #[test]
    fn decisions_are_deterministic_and_replay_in_pieces(case in case(), cut in 0usize..80) {
        let engine = build(&case, true);
        let (events, profiles) = (events(&case), profiles(&case));
        let (from, until) = (t0(), t0() + Duration::days(61));
        let dry = DryRun::new(&engine, from, until).unwrap();
        let whole = dry.run(&events, &profiles).unwrap();
        prop_assert_eq!(&whole, &dry.run(&events, &profiles).unwrap());
        // The same stream in two pieces, the state carried across, issues the same coupons.
        let cut = cut.min(events.len());
        let mut memory = Memory::new(CNY);
        let first = dry.run_with(&mut memory, &events[..cut], &profiles).unwrap();
        let second = dry.run_with(&mut memory, &events[cut..], &profiles).unwrap();
        let mut pieces = first.issued.clone();
        pieces.extend(second.issued.iter().cloned());
        prop_assert_eq!(pieces, whole.issued.clone());
        prop_assert_eq!(whole.events as usize, events.len());
        let tallied: u64 = whole.rules.values().map(|t| t.issued).sum();
        prop_assert_eq!(tallied as usize, whole.issued.len());
        let cost: i64 = whole.issued.iter().map(|i| i.cost.to_minor().unwrap()).sum();
        prop_assert_eq!(whole.cost, m(cost));
        // Every hold is counted once overall and once under its rule.
        for (kind, n) in &whole.held {
            let per_rule: u64 = whole.rules.values().map(|t| t.held.get(kind).copied().unwrap_or(0)).sum();
            prop_assert_eq!(per_rule, *n);
        }
        // The stream itself round-trips through JSON.
        let json = serde_json::to_string(&events).unwrap();
        prop_assert_eq!(serde_json::from_str::<Vec<Event>>(&json).unwrap(), events.clone());
    }

    #[test]
    fn quiet_hours_defer_and_never_drop(case in case()) {
        let (loud, _, _) = engine_outcomes(&case, false);
        let (quiet, decisions, _) = engine_outcomes(&case, true);
        prop_assert_eq!(loud, quiet);
        let profiles = profiles(&case);
        for (u, d) in &decisions {
            let off = profiles[u].offset;
            for i in &d.issues {
                prop_assert!(i.deliver_at >= i.decided_at);
                let Some((a, b)) = case.quiet else {
                    prop_assert_eq!(i.deliver_at, i.decided_at);
                    continue;
                };
                let is_quiet = |t: DateTime<Utc>| {
                    let l = t.with_timezone(&off);
                    let min = u16::try_from(l.hour() * 60 + l.minute()).unwrap();
                    if a < b { a <= min && min < b } else { min >= a || min < b }
                };
                let interrupts = matches!(i.message, Some(Message::Push | Message::Sms));
                if !interrupts || !is_quiet(i.decided_at) {
                    prop_assert_eq!(i.deliver_at, i.decided_at);
                } else {
                    // Delivered at the first minute after the quiet hours, within a day.
                    prop_assert!(!is_quiet(i.deliver_at));
                    prop_assert!(is_quiet(i.deliver_at - Duration::minutes(1)));
                    prop_assert!(i.deliver_at - i.decided_at <= Duration::days(1));
                    prop_assert_eq!(i.deliver_at.second(), 0);
                }
            }
        }
    }
}

// ------------------------------------------------------------------ explanations

fn welcome_engine(policy: Policy) -> Engine {
    let rules = vec![
        RuleSpec::new(
            rid("share-a"),
            Trigger::ShareClicked,
            Offer::template(tid("a"), m(100)),
        )
        .message(Message::Push)
        .build()
        .unwrap(),
        RuleSpec::new(
            rid("apology"),
            Trigger::OrderRefunded,
            Offer::template(tid("sorry"), m(500)),
        )
        .message(Message::Push)
        .transactional()
        .build()
        .unwrap(),
    ];
    Engine::new(policy, rules).unwrap()
}

#[test]
fn a_held_rule_says_which_guard_with_its_numbers() {
    let policy = Policy::new(CNY)
        .cap(FrequencyCap::new(2, Window::Rolling { days: 7 }, Some(Message::Push)).unwrap());
    let engine = welcome_engine(policy);
    let alice = Profile::new(user(0), offset(32));
    let mut memory = Memory::new(CNY);
    let share = |n: u8| Occurrence::ShareClicked {
        clicker: user(100 + n),
    };
    for n in 0..2 {
        let d = memory
            .apply(
                &engine,
                &alice,
                &share(n),
                t0() + Duration::hours(i64::from(n)),
            )
            .unwrap();
        assert_eq!(d.issues.len(), 1);
    }
    let d = memory
        .apply(&engine, &alice, &share(2), t0() + Duration::days(1))
        .unwrap();
    assert!(d.issues.is_empty());
    assert_eq!(d.held[0].rule.as_str(), "share-a");
    assert_eq!(
        d.held[0].guard,
        Guard::Frequency {
            issued: 2,
            max: 2,
            window: Window::Rolling { days: 7 },
            message: Some(Message::Push)
        }
    );
    assert_eq!(
        d.held[0].guard.to_string(),
        "2 of 2 push messages in the last 7 days"
    );
    assert_eq!(
        d.held[0].to_string(),
        "rule share-a: 2 of 2 push messages in the last 7 days"
    );
    // The transactional apology is exempt from the cap.
    let refund = Occurrence::OrderRefunded {
        order: OrderId::new("o-1").unwrap(),
    };
    let d = memory
        .apply(&engine, &alice, &refund, t0() + Duration::days(1))
        .unwrap();
    assert_eq!(d.issues.len(), 1);
    assert!(d.issues[0].transactional);
    // Seven days after the first share, one push has left the window.
    let d = memory
        .apply(&engine, &alice, &share(3), t0() + Duration::days(7))
        .unwrap();
    assert_eq!(d.issues.len(), 1);
    // The same friend again: a duplicate.
    let d = memory
        .apply(&engine, &alice, &share(3), t0() + Duration::days(30))
        .unwrap();
    assert!(matches!(d.held[0].guard, Guard::Duplicate { .. }));
    assert!(
        d.held[0]
            .guard
            .to_string()
            .starts_with("already issued for friend u103 at ")
    );
}

#[test]
fn budget_guards_explain_in_money_and_count() {
    let b = BudgetId::new("summer").unwrap();
    let policy = Policy::new(CNY).budget(Budget::new(b.clone(), Some(m(250)), Some(10)).unwrap());
    let rule = RuleSpec::new(
        rid("share"),
        Trigger::ShareClicked,
        Offer::template(tid("a"), m(100)),
    )
    .budget(b.clone())
    .build()
    .unwrap();
    let engine = Engine::new(policy, vec![rule]).unwrap();
    let alice = Profile::new(user(0), offset(0));
    let mut memory = Memory::new(CNY);
    for n in 0..3u8 {
        let d = memory
            .apply(
                &engine,
                &alice,
                &Occurrence::ShareClicked {
                    clicker: user(50 + n),
                },
                t0(),
            )
            .unwrap();
        assert_eq!(d.issues.len(), usize::from(n < 2));
        if n == 2 {
            assert_eq!(
                d.held[0].guard.to_string(),
                "budget summer: 2.00 CNY of 2.50 CNY spent, 1.00 CNY more would exceed it"
            );
        }
    }
    assert_eq!(memory.ledger().spent(&b), (m(200), 2));
}

// ------------------------------------------------------------------ triggers and timers

#[test]
fn an_abandoned_cart_is_a_timer_replaced_by_later_changes_and_voided_by_an_order() {
    let cart_rule = RuleSpec::new(
        rid("cart"),
        Trigger::cart_abandoned(),
        Offer::template(tid("c"), m(1)),
    )
    .build()
    .unwrap();
    let quick = RuleSpec::new(
        rid("cart-quick"),
        Trigger::CartAbandoned { after_minutes: 10 },
        Offer::template(tid("q"), m(1)),
    )
    .build()
    .unwrap();
    let engine = Engine::new(Policy::new(CNY), vec![cart_rule, quick]).unwrap();
    let cart = CartId::new("cart-9").unwrap();
    let alice = Profile::new(user(0), offset(0));
    let d = engine.decide(
        &alice,
        &Occurrence::CartChanged { cart: cart.clone() },
        &UserHistory::new(),
        &Ledger::new(CNY),
        t0(),
    );
    assert!(d.issues.is_empty());
    let dues: Vec<_> = d
        .timers
        .iter()
        .map(|t| (t.key.to_string(), t.due))
        .collect();
    assert_eq!(
        dues,
        vec![
            (
                "cart-idle/cart-9/10m".to_owned(),
                t0() + Duration::minutes(10)
            ),
            (
                "cart-idle/cart-9/30m".to_owned(),
                t0() + Duration::minutes(30)
            ),
        ]
    );
    // Fed back: issues once per cart.
    let fire = &d.timers[1].then;
    let mut memory = Memory::new(CNY);
    let at = t0() + Duration::minutes(30);
    assert_eq!(
        memory
            .apply(&engine, &alice, fire, at)
            .unwrap()
            .issues
            .len(),
        1
    );
    let again = memory.apply(&engine, &alice, fire, at).unwrap();
    assert!(matches!(again.held[0].guard, Guard::Duplicate { .. }));
    // An order after the change: not abandoned.
    let ordered = alice.clone().last_order_at(t0() + Duration::minutes(5));
    let d = engine.decide(&ordered, fire, &UserHistory::new(), &Ledger::new(CNY), at);
    assert_eq!(d.held[0].guard.kind(), GuardKind::OrderedSince);

    // In a replay, a second change replaces the timers: one coupon each, from the last change.
    let profiles = HashMap::from([(user(0), alice)]);
    let change = |min| Event {
        at: t0() + Duration::minutes(min),
        user: user(0),
        occurrence: Occurrence::CartChanged { cart: cart.clone() },
    };
    let report = DryRun::new(&engine, t0(), t0() + Duration::days(1))
        .unwrap()
        .run(&[change(0), change(8)], &profiles)
        .unwrap();
    let at: Vec<_> = report
        .issued
        .iter()
        .map(|i| (i.rule.to_string(), i.at))
        .collect();
    assert_eq!(
        at,
        vec![
            ("cart-quick".to_owned(), t0() + Duration::minutes(18)),
            ("cart".to_owned(), t0() + Duration::minutes(38)),
        ]
    );
    assert_eq!(report.timers, 2);
}

#[test]
fn a_closed_page_cancels_its_viewing_timer() {
    let rule = RuleSpec::new(
        rid("view"),
        Trigger::product_viewed(),
        Offer::template(tid("v"), m(1)),
    )
    .build()
    .unwrap();
    let engine = Engine::new(Policy::new(CNY), vec![rule]).unwrap();
    let profiles = HashMap::from([(user(0), Profile::new(user(0), offset(0)))]);
    let sku = coupons::id::Sku::new("tea").unwrap();
    let ev = |sec, occurrence| Event {
        at: t0() + Duration::seconds(sec),
        user: user(0),
        occurrence,
    };
    let dry = DryRun::new(&engine, t0(), t0() + Duration::days(1)).unwrap();
    let closed_early = [
        ev(
            0,
            Occurrence::ViewStarted {
                product: sku.clone(),
            },
        ),
        ev(
            120,
            Occurrence::ViewEnded {
                product: sku.clone(),
            },
        ),
    ];
    assert!(dry.run(&closed_early, &profiles).unwrap().issued.is_empty());
    let stayed = [
        ev(
            0,
            Occurrence::ViewStarted {
                product: sku.clone(),
            },
        ),
        ev(
            400,
            Occurrence::ViewEnded {
                product: sku.clone(),
            },
        ),
    ];
    let r = dry.run(&stayed, &profiles).unwrap();
    assert_eq!(r.issued.len(), 1);
    assert_eq!(r.issued[0].at, t0() + Duration::minutes(3));
}

#[test]
fn segments_choose_the_template_and_audiences_explain_misses() {
    let offer = Offer::by_segment(
        vec![
            (Lifecycle::New, Choice::new(tid("first-order"), m(500))),
            (Lifecycle::Dormant, Choice::new(tid("win-back"), m(800))),
            (Lifecycle::HighValue, Choice::new(tid("vip"), m(2000))),
            (Lifecycle::ChurnRisk, Choice::new(tid("care"), m(1000))),
        ],
        None,
    );
    let audience = Audience {
        excluded: BTreeSet::from([SegmentId::new("staff").unwrap()]),
        ..Audience::default()
    };
    let rule = RuleSpec::new(rid("alive"), Trigger::AliveBelow { threshold: 0.4 }, offer)
        .audience(audience)
        .build()
        .unwrap();
    let engine = Engine::new(Policy::new(CNY), vec![rule]).unwrap();
    let decide = |p: &Profile, p_alive| {
        engine.decide(
            p,
            &Occurrence::AliveDropped { p_alive },
            &UserHistory::new(),
            &Ledger::new(CNY),
            t0(),
        )
    };
    let base = Profile::new(user(0), offset(0));
    for (segment, template) in [
        (Lifecycle::New, "first-order"),
        (Lifecycle::Dormant, "win-back"),
        (Lifecycle::HighValue, "vip"),
        (Lifecycle::ChurnRisk, "care"),
    ] {
        let d = decide(&base.clone().lifecycle(segment), 0.2);
        assert_eq!(d.issues[0].template.as_str(), template);
    }
    assert!(
        decide(&base.clone().lifecycle(Lifecycle::New), 0.5)
            .held
            .is_empty()
    ); // not below
    let d = decide(&base.clone().lifecycle(Lifecycle::Active), 0.2);
    assert_eq!(
        d.held[0].guard.to_string(),
        "no template for lifecycle segment active"
    );
    let staff = base
        .clone()
        .lifecycle(Lifecycle::New)
        .segment(SegmentId::new("staff").unwrap());
    assert_eq!(
        decide(&staff, 0.2).held[0].guard.to_string(),
        "not in the audience: in excluded segment staff"
    );
    let new_only = RuleSpec::new(
        rid("n"),
        Trigger::Registration,
        Offer::template(tid("x"), m(1)),
    )
    .audience(Audience {
        kind: Some(CustomerKind::New),
        ..Audience::default()
    })
    .build()
    .unwrap();
    let engine = Engine::new(Policy::new(CNY), vec![new_only]).unwrap();
    let d = engine.decide(
        &base,
        &Occurrence::Registration,
        &UserHistory::new(),
        &Ledger::new(CNY),
        t0(),
    );
    assert_eq!(
        d.held[0].guard.to_string(),
        "not in the audience: for new users only"
    );
}

#[test]
fn spend_levels_fire_once_when_crossed_and_birthdays_once_a_local_year() {
    let rules = vec![
        RuleSpec::new(
            rid("500"),
            Trigger::SpendReached { level: m(50_000) },
            Offer::template(tid("s"), m(1)),
        )
        .build()
        .unwrap(),
        RuleSpec::new(
            rid("bday"),
            Trigger::Birthday,
            Offer::template(tid("b"), m(1)),
        )
        .build()
        .unwrap(),
    ];
    let engine = Engine::new(Policy::new(CNY), rules).unwrap();
    let alice = Profile::new(user(0), offset(32)); // +08:00
    let mut memory = Memory::new(CNY);
    let paid = |cum: i64| Occurrence::OrderPaid {
        order: OrderId::new(format!("o{cum}")).unwrap(),
        amount: m(20_000),
        cumulative: m(cum),
    };
    let n = |o: &Occurrence, at| {
        memory
            .clone()
            .apply(&engine, &alice, o, at)
            .unwrap()
            .issues
            .len()
    };
    assert_eq!(n(&paid(40_000), t0()), 0);
    assert_eq!(n(&paid(60_000), t0()), 1);
    assert_eq!(n(&paid(80_000), t0()), 0);
    // 2026-12-31 17:00 UTC is already 2027 in Beijing.
    let eve = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
    let before = Utc.with_ymd_and_hms(2026, 12, 31, 15, 0, 0).unwrap();
    assert_eq!(
        memory
            .apply(&engine, &alice, &Occurrence::Birthday, before)
            .unwrap()
            .issues
            .len(),
        1
    );
    assert_eq!(
        memory
            .apply(&engine, &alice, &Occurrence::Birthday, eve)
            .unwrap()
            .issues
            .len(),
        1
    );
    let later = eve + Duration::days(100);
    let d = memory
        .apply(&engine, &alice, &Occurrence::Birthday, later)
        .unwrap();
    assert_eq!(
        d.held[0].guard.to_string(),
        format!("already issued for year 2027 at {}", eve.to_rfc3339())
    );
}

// ------------------------------------------------------------------ JSON and typed errors

fn rule_strategy() -> impl Strategy<Value = Rule> {
    let trigger = prop_oneof![
        Just(Trigger::Registration),
        Just(Trigger::FirstPurchase),
        (1i64..1_000_000).prop_map(|l| Trigger::SpendReached { level: m(l) }),
        Just(Trigger::MembershipChanged { to: None }),
        (1u32..=10_080).prop_map(|after_minutes| Trigger::CartAbandoned { after_minutes }),
        (1u32..=60).prop_map(|minutes| Trigger::ProductViewed { minutes }),
        Just(Trigger::Birthday),
        Just(Trigger::Occasion {
            name: Occasion::new("singles-day").unwrap()
        }),
        Just(Trigger::Dormancy),
        (1u32..=1000).prop_map(|k| Trigger::AliveBelow {
            threshold: f64::from(k) / 1000.0
        }),
    ];
    let offer = prop_oneof![
        (0i64..10_000).prop_map(|c| Offer::template(tid("t"), m(c))),
        (
            prop::collection::btree_set(0usize..5, 1..5),
            prop::option::of(0i64..100)
        )
            .prop_map(|(segs, other)| Offer::by_segment(
                segs.into_iter()
                    .map(|s| (
                        Lifecycle::ALL[s],
                        Choice::new(tid(&format!("t{s}")), m(s as i64 * 100))
                    ))
                    .collect(),
                other.map(|c| Choice::new(tid("other"), m(c)))
            )),
    ];
    (
        trigger,
        offer,
        any::<bool>(),
        message(),
        prop::option::of(1u32..100_000),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(trigger, offer, notify, message, cooldown, transactional, new_only)| {
                let mut s = RuleSpec::new(rid("rule-x"), trigger, offer);
                s.delivery = if notify {
                    Delivery::NotifyToClaim
                } else {
                    Delivery::AutoClaim
                };
                s.message = message;
                s.cooldown_minutes = cooldown;
                s.transactional = transactional;
                if new_only {
                    s.audience.kind = Some(CustomerKind::New);
                    s.audience.lifecycle.insert(Lifecycle::Dormant);
                    s.audience.segments.insert(SegmentId::new("vip").unwrap());
                }
                s.build().unwrap()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rules_round_trip_through_json(rule in rule_strategy()) {
        let json = serde_json::to_string(&rule).unwrap();
        prop_assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
    }
}

#[test]
fn occurrences_round_trip_through_json() {
    let at = t0() + Duration::minutes(7);
    let all = [
        Occurrence::Registration,
        Occurrence::FirstPurchase {
            order: OrderId::new("o").unwrap(),
        },
        Occurrence::OrderPaid {
            order: OrderId::new("o").unwrap(),
            amount: m(100),
            cumulative: m(900),
        },
        Occurrence::MembershipChanged {
            from: None,
            to: coupons::id::MembershipLevel::new("gold").unwrap(),
        },
        Occurrence::CartChanged {
            cart: CartId::new("c").unwrap(),
        },
        Occurrence::CartAbandoned {
            cart: CartId::new("c").unwrap(),
            changed_at: at,
            after_minutes: 30,
        },
        Occurrence::ViewStarted {
            product: coupons::id::Sku::new("s").unwrap(),
        },
        Occurrence::ViewEnded {
            product: coupons::id::Sku::new("s").unwrap(),
        },
        Occurrence::ProductViewed {
            product: coupons::id::Sku::new("s").unwrap(),
            started_at: at,
            minutes: 3,
        },
        Occurrence::Birthday,
        Occurrence::Occasion { name: occasion(1) },
        Occurrence::ShopAnniversary {
            shop: coupons::id::ShopId::new("s").unwrap(),
            years: 2,
        },
        Occurrence::InvitationAccepted { invitee: user(9) },
        Occurrence::ShareClicked { clicker: user(8) },
        Occurrence::DormancyDetected { since: at },
        Occurrence::AliveDropped { p_alive: 0.125 },
        Occurrence::OrderRefunded {
            order: OrderId::new("o").unwrap(),
        },
    ];
    for o in all {
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(
            serde_json::from_str::<Occurrence>(&json).unwrap(),
            o,
            "{json}"
        );
    }
    let e =
        serde_json::from_str::<Occurrence>(r#"{"kind": "cart-changed", "cart": ""}"#).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cart: invalid name \"\": it is empty"),
        "{e}"
    );
}

#[test]
fn policies_round_trip_through_json() {
    let p = Policy::new(CNY)
        .cap(FrequencyCap::new(2, Window::Rolling { days: 7 }, Some(Message::Push)).unwrap())
        .cap(FrequencyCap::new(1, Window::Calendar { days: 1 }, None).unwrap())
        .quiet(QuietHours::new(22 * 60, 8 * 60).unwrap())
        .budget(Budget::new(BudgetId::new("b").unwrap(), Some(m(100_000)), Some(500)).unwrap());
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
}

fn rule_json(trigger: &str, offer: &str, rest: &str) -> String {
    format!(r#"{{"id": "r", "trigger": {trigger}, "offer": {offer}{rest}}}"#)
}

const OFFER: &str =
    r#"{"kind": "template", "template": "t", "cost": {"amount": "1.00", "currency": "CNY"}}"#;

#[test]
fn bad_rule_json_names_the_field() {
    let cases = [
        (
            rule_json(
                r#"{"kind": "cart-abandoned", "after_minutes": 0}"#,
                OFFER,
                "",
            ),
            "rule.trigger.after_minutes: 0 is invalid: a cart idles 1 to 10080 minutes",
        ),
        (
            rule_json(r#"{"kind": "alive-below", "threshold": 1.5}"#, OFFER, ""),
            "rule.trigger.threshold: 1.5 is invalid",
        ),
        (
            rule_json(r#"{"kind": "cart-abandoned", "x": 1}"#, OFFER, ""),
            "rule.trigger: unknown field `x`",
        ),
        (
            rule_json(r#"{"kind": "moon"}"#, OFFER, ""),
            "rule.trigger: unknown variant `moon`",
        ),
        (
            rule_json(
                r#"{"kind": "birthday"}"#,
                OFFER,
                r#", "cooldown_minutes": 0"#,
            ),
            "rule.cooldown_minutes: 0 is invalid",
        ),
        (
            rule_json(
                r#"{"kind": "birthday"}"#,
                r#"{"kind": "template", "template": "t", "cost": {"amount": "-1", "currency": "CNY"}}"#,
                "",
            ),
            "rule.offer.cost: -1",
        ),
        (
            rule_json(
                r#"{"kind": "birthday"}"#,
                r#"{"kind": "by-segment", "choices": [
                {"segment": "new", "template": "a", "cost": {"amount": "1", "currency": "CNY"}},
                {"segment": "new", "template": "b", "cost": {"amount": "1", "currency": "CNY"}}]}"#,
                "",
            ),
            "rule.offer.choices: new appears twice",
        ),
        (
            rule_json(
                r#"{"kind": "birthday"}"#,
                r#"{"kind": "by-segment", "choices": []}"#,
                "",
            ),
            "rule.offer.choices: [] is invalid",
        ),
        (
            rule_json(
                r#"{"kind": "birthday"}"#,
                OFFER,
                r#", "audience": {"kinds": "new"}"#,
            ),
            "rule.audience: unknown field `kinds`",
        ),
        (
            r#"{"id": "", "trigger": {"kind": "birthday"}}"#.to_owned(),
            "rule.id: invalid name \"\": it is empty",
        ),
    ];
    for (json, want) in cases {
        let e = serde_json::from_str::<Rule>(&json).unwrap_err().to_string();
        assert!(e.starts_with(want), "{json}\n  gave: {e}\n  want: {want}");
    }
}

#[test]
fn bad_policy_json_names_the_field() {
    let cases = [
        (
            r#"{"currency": "CNY", "caps": [{"max": 0, "window": {"kind": "rolling", "days": 7}}]}"#,
            "policy.caps.max: 0 is invalid",
        ),
        (
            r#"{"currency": "CNY", "caps": [{"max": 1, "window": {"kind": "calendar", "days": 0}}]}"#,
            "policy.caps.window.days: 0 is invalid",
        ),
        (
            r#"{"currency": "CNY", "quiet": {"start_minute": 60, "end_minute": 60}}"#,
            "policy.quiet.end_minute: 60 is invalid",
        ),
        (
            r#"{"currency": "CNY", "budgets": [{"id": "b"}]}"#,
            "policy.budgets: b is invalid",
        ),
    ];
    for (json, want) in cases {
        let e = serde_json::from_str::<Policy>(json)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{json}\n  gave: {e}\n  want: {want}");
    }
}

#[test]
fn constructors_refuse_what_json_refuses_with_typed_errors() {
    let e = RuleSpec::new(rid("r"), Trigger::Birthday, Offer::template(tid("t"), m(1)))
        .cooldown_minutes(0)
        .build()
        .unwrap_err();
    assert!(matches!(
        e,
        IssuingError::Invalid {
            field: "rule.cooldown_minutes",
            ..
        }
    ));
    let e = Trigger::ProductViewed { minutes: 0 }
        .validate()
        .unwrap_err();
    assert!(matches!(
        e,
        IssuingError::Invalid {
            field: "rule.trigger.minutes",
            ..
        }
    ));
    let e = RuleId::new("x".repeat(101)).unwrap_err();
    assert!(matches!(
        e,
        IssuingError::Name {
            field: "rule.id",
            ..
        }
    ));
    let rule =
        |id: &str| RuleSpec::new(rid(id), Trigger::Birthday, Offer::template(tid("t"), m(1)));
    let e = Engine::new(
        Policy::new(CNY),
        vec![rule("a").build().unwrap(), rule("a").build().unwrap()],
    )
    .unwrap_err();
    assert_eq!(
        e,
        IssuingError::Duplicate {
            field: "engine.rules",
            value: "a".into()
        }
    );
    let e = Engine::new(
        Policy::new(CNY),
        vec![
            rule("a")
                .budget(BudgetId::new("nope").unwrap())
                .build()
                .unwrap(),
        ],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "rule a: budget nope is not defined by the policy"
    );
    let usd = RuleSpec::new(
        rid("u"),
        Trigger::Birthday,
        Offer::template(tid("t"), Money::from_minor(1, Currency::USD)),
    )
    .build()
    .unwrap();
    let e = Engine::new(Policy::new(CNY), vec![usd]).unwrap_err();
    assert!(matches!(
        e,
        IssuingError::Currency {
            field: "rule.offer.cost",
            ..
        }
    ));
}

// ------------------------------------------------------------------ carrying out

fn service_with(templates: &[&str], now: DateTime<Utc>) -> Service<MemoryStore> {
    let service = Service::new(MemoryStore::new());
    for t in templates {
        let t = tid(t);
        service
            .create_template(
                TemplateSpec::new(
                    t.clone(),
                    "gift",
                    CNY,
                    Benefit::instant(m(1000)).unwrap(),
                    Validity::relative(Span::Days(30), None).unwrap(),
                )
                .build()
                .unwrap(),
                now,
            )
            .unwrap();
        service.submit_template(&t, now).unwrap();
        service.approve_template(&t, now).unwrap();
        service.activate_template(&t, now).unwrap();
    }
    service
}

#[test]
fn carrying_a_stream_twice_issues_nothing_new() {
    let rules = vec![
        RuleSpec::new(
            rid("share"),
            Trigger::ShareClicked,
            Offer::template(tid("a"), m(100)),
        )
        .build()
        .unwrap(),
        RuleSpec::new(
            rid("bday"),
            Trigger::Birthday,
            Offer::template(tid("b"), m(100)),
        )
        .delivery(Delivery::NotifyToClaim)
        .message(Message::Sms)
        .build()
        .unwrap(),
    ];
    let engine = Engine::new(Policy::new(CNY), rules).unwrap();
    let service = service_with(&["a", "b"], t0());
    let profiles: HashMap<UserId, Profile> = (0..3)
        .map(|i| (user(i), Profile::new(user(i), offset(0))))
        .collect();
    let stream: Vec<Event> = (0..30)
        .map(|k: i64| Event {
            at: t0() + Duration::minutes(k),
            user: user((k % 3) as u8),
            occurrence: if k % 5 == 0 {
                Occurrence::Birthday
            } else {
                Occurrence::ShareClicked {
                    clicker: user(10 + (k % 7) as u8),
                }
            },
        })
        .collect();
    let run = |memory: &mut Memory| {
        let (mut fresh, mut replayed, mut notify) = (0, 0, 0);
        for e in &stream {
            let d = memory
                .apply(&engine, &profiles[&e.user], &e.occurrence, e.at)
                .unwrap();
            for out in carry(&service, &e.user, &d, e.at) {
                match out.result.unwrap() {
                    Carried::Claimed(c) if c.replayed => replayed += 1,
                    Carried::Claimed(c) => {
                        assert_eq!(c.coupon.channel.as_str(), format!("auto:{}", out.rule));
                        fresh += 1
                    }
                    Carried::Notify { claim, .. } => {
                        assert_eq!(claim.mode, coupons::lifecycle::ClaimMode::Click);
                        notify += 1
                    }
                }
            }
        }
        (fresh, replayed, notify)
    };
    let (fresh, replayed, notify) = run(&mut Memory::new(CNY));
    assert!(fresh > 0 && notify > 0);
    assert_eq!(replayed, 0);
    let coupons = service.repository().coupon_count();
    assert_eq!(coupons, fresh);
    // The whole stream again, from a blank history (a replay): every claim answered from its
    // receipt, no coupon added.
    let (fresh2, replayed2, notify2) = run(&mut Memory::new(CNY));
    assert_eq!((fresh2, replayed2, notify2), (0, fresh, notify));
    assert_eq!(service.repository().coupon_count(), coupons);
}

#[test]
fn idempotency_keys_follow_the_occurrence() {
    let rule = RuleSpec::new(
        rid("share"),
        Trigger::ShareClicked,
        Offer::template(tid("a"), m(1)),
    )
    .build()
    .unwrap();
    let engine = Engine::new(Policy::new(CNY), vec![rule]).unwrap();
    let p = Profile::new(user(0), offset(0));
    let issue = |clicker: u8, at| {
        engine
            .decide(
                &p,
                &Occurrence::ShareClicked {
                    clicker: user(clicker),
                },
                &UserHistory::new(),
                &Ledger::new(CNY),
                at,
            )
            .issues
            .remove(0)
    };
    let k = |i: &Issue| idempotency_key(&p.user, i);
    assert_eq!(k(&issue(1, t0())), k(&issue(1, t0() + Duration::days(3))));
    assert_ne!(k(&issue(1, t0())), k(&issue(2, t0())));
    assert_ne!(
        k(&issue(1, t0())),
        idempotency_key(&user(1), &issue(1, t0()))
    );
    assert!(k(&issue(1, t0())).as_str().starts_with("auto-"));
    assert_eq!(k(&issue(1, t0())).as_str().len(), 37);
}

#[test]
fn windows_count_to_their_exact_boundaries() {
    let share = |n: u8| Occurrence::ShareClicked {
        clicker: user(200 + n),
    };
    let run = |window: Window, times: &[DateTime<Utc>]| -> Vec<usize> {
        let engine =
            welcome_engine(Policy::new(CNY).cap(FrequencyCap::new(1, window, None).unwrap()));
        let p = Profile::new(user(0), offset(32)); // +08:00
        let mut memory = Memory::new(CNY);
        times
            .iter()
            .enumerate()
            .map(|(n, t)| {
                memory
                    .apply(&engine, &p, &share(n as u8), *t)
                    .unwrap()
                    .issues
                    .len()
            })
            .collect()
    };
    // Local midnight in Beijing is 16:00 UTC.
    let midnight = Utc.with_ymd_and_hms(2026, 3, 1, 16, 0, 0).unwrap();
    let today = Window::Calendar { days: 1 };
    assert_eq!(
        run(today, &[midnight, midnight + Duration::hours(23)]),
        [1, 0]
    );
    assert_eq!(
        run(today, &[midnight - Duration::seconds(1), midnight]),
        [1, 1]
    );
    let two = Window::Calendar { days: 2 };
    assert_eq!(
        run(
            two,
            &[
                midnight,
                midnight + Duration::days(2) - Duration::seconds(1)
            ]
        ),
        [1, 0]
    );
    assert_eq!(run(two, &[midnight, midnight + Duration::days(2)]), [1, 1]);
    let week = Window::Rolling { days: 7 };
    let t = midnight + Duration::minutes(77);
    assert_eq!(
        run(
            week,
            &[t, t + Duration::days(7) - Duration::microseconds(1)]
        ),
        [1, 0]
    );
    assert_eq!(run(week, &[t, t + Duration::days(7)]), [1, 1]);
}

#[test]
fn decisions_at_the_ends_of_time_do_not_panic() {
    let rules = vec![
        RuleSpec::new(
            rid("cart"),
            Trigger::cart_abandoned(),
            Offer::template(tid("c"), m(1)),
        )
        .message(Message::Push)
        .cooldown_minutes(60)
        .build()
        .unwrap(),
        RuleSpec::new(
            rid("bday"),
            Trigger::Birthday,
            Offer::template(tid("b"), m(1)),
        )
        .message(Message::Sms)
        .cooldown_minutes(MAX_COOLDOWN_MINUTES)
        .build()
        .unwrap(),
    ];
    let policy = Policy::new(CNY)
        .cap(FrequencyCap::new(1, Window::Calendar { days: 366 }, None).unwrap())
        .cap(FrequencyCap::new(1, Window::Rolling { days: 366 }, None).unwrap())
        .quiet(QuietHours::new(0, 1439).unwrap());
    let engine = Engine::new(policy, rules).unwrap();
    for (t, q) in [
        (DateTime::<Utc>::MAX_UTC, 56),
        (DateTime::<Utc>::MIN_UTC, -48),
    ] {
        let p = Profile::new(user(0), offset(q));
        let mut memory = Memory::new(CNY);
        let cart = CartId::new("c").unwrap();
        let d = memory
            .apply(
                &engine,
                &p,
                &Occurrence::CartChanged { cart: cart.clone() },
                t,
            )
            .unwrap();
        assert_eq!(d.timers.len(), 1);
        for o in [
            Occurrence::Birthday,
            Occurrence::Birthday,
            d.timers[0].then.clone(),
        ] {
            let d = memory.apply(&engine, &p, &o, t).unwrap();
            for i in &d.issues {
                assert!(i.deliver_at >= i.decided_at);
            }
        }
    }
}
