//! Checkout properties: the chosen combination equals brute force (tie-breaks included), money
//! invariants of every quote, and scenario tables for reasons and stacking.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine, CustomerKind};
use coupons::checkout::{
    Checkout, CheckoutError, Ineligible, Offer, OfferId, PromotionIndex, Quote, StackingPolicy,
    ThresholdBase,
};
use coupons::id::*;
use coupons::money::{Currency, Money, Rounding};
use coupons::rule::*;
use proptest::prelude::*;

const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn buyer() -> Buyer {
    Buyer::new(UserId::new("u1").unwrap(), Channel::new("app").unwrap())
}

// ---------------------------------------------------------------------------------------------
// Generators: small integer minor units, all benefit kinds, several groups.

fn benefit() -> impl Strategy<Value = Benefit> {
    prop_oneof![
        (1i64..3000).prop_map(|a| Benefit::instant(m(a)).unwrap()),
        (100i64..8000, 1i64..100, proptest::bool::ANY).prop_map(|(spend, pct, two)| {
            let save = (spend * pct / 100).clamp(1, spend - 1);
            let mut tiers = vec![Tier {
                spend: m(spend),
                save: m(save),
            }];
            if two {
                tiers.push(Tier {
                    spend: m(spend * 2),
                    save: m(save + save / 2 + 1).min(m(spend * 2 - 1)),
                });
            }
            Benefit::tiered(tiers).unwrap()
        }),
        (100i64..5000, 1i64..99, proptest::option::of(1i64..5000)).prop_map(|(every, pct, max)| {
            Benefit::every(m(every), m((every * pct / 100).max(1)), max.map(m)).unwrap()
        }),
        (1i64..=100, proptest::option::of(1i64..5000)).prop_map(|(p, max)| {
            Benefit::percent(Percent::new(p.into()).unwrap(), max.map(m)).unwrap()
        }),
        proptest::option::of(1i64..1500).prop_map(|cap| Benefit::shipping(cap.map(m)).unwrap()),
        (1u32..3, 1u32..3, proptest::option::of(1u32..4))
            .prop_map(|(b, g, mx)| Benefit::buy_get(b, g, mx).unwrap()),
        (1u32..4, 100i64..6000, proptest::option::of(1u32..3))
            .prop_map(|(q, p, mx)| Benefit::fixed_price(q, m(p), mx).unwrap()),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        3 => Just(Scope::everything()),
        1 => prop_oneof![Just("a"), Just("b")].prop_map(|c| Scope::try_from(ScopeSpec {
            categories: Some([CategoryId::new(c).unwrap()].into()),
            ..Default::default()
        }).unwrap()),
        1 => Just(Scope::try_from(ScopeSpec {
            shops: Some([ShopId::new("s1").unwrap()].into()),
            ..Default::default()
        }).unwrap()),
        1 => Just(Scope::try_from(ScopeSpec { sale_items: false, ..Default::default() }).unwrap()),
    ]
}

#[derive(Clone, Debug)]
struct GenOffer {
    benefit: Benefit,
    scope: Scope,
    min_subtotal: Option<i64>,
    group: &'static str,
    exclusive: bool,
    with_promotions: bool,
    priority: i32,
    per_order: u32,
    expiry_days: i64,
    promotion: bool,
    template: u8,
}

fn gen_offer() -> impl Strategy<Value = GenOffer> {
    (
        benefit(),
        scope(),
        proptest::option::of(1i64..10000),
        prop_oneof![
            Just("platform"),
            Just("shop:s1"),
            Just("shipping"),
            Just("g3")
        ],
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.8),
        -1i32..2,
        1u32..3,
        1i64..4,
        proptest::bool::weighted(0.25),
        0u8..12,
    )
        .prop_map(
            |(
                benefit,
                scope,
                min_subtotal,
                group,
                exclusive,
                with_promotions,
                priority,
                per_order,
                expiry_days,
                promotion,
                template,
            )| GenOffer {
                benefit,
                scope,
                min_subtotal,
                group,
                exclusive,
                with_promotions,
                priority,
                per_order,
                expiry_days,
                promotion,
                template,
            },
        )
}

fn cart() -> impl Strategy<Value = Cart> {
    (
        proptest::collection::vec(
            (
                1i64..20000,
                1u32..4,
                prop_oneof![Just("a"), Just("b"), Just("c")],
                proptest::bool::ANY,
                proptest::bool::weighted(0.2),
            ),
            1..6,
        ),
        0i64..1500,
    )
        .prop_map(|(lines, ship)| {
            let lines = lines
                .into_iter()
                .enumerate()
                .map(|(i, (p, q, c, s1, sale))| {
                    let mut l = CartLine::new(Sku::new(format!("sku{i}")).unwrap(), m(p), q)
                        .in_category(CategoryId::new(c).unwrap())
                        .from_shop(ShopId::new(if s1 { "s1" } else { "s2" }).unwrap());
                    l.on_sale = sale;
                    l
                })
                .collect();
            Cart::new(CNY, lines, m(ship)).unwrap()
        })
}

fn policy() -> impl Strategy<Value = StackingPolicy> {
    (
        1u32..5,
        1u32..3,
        proptest::bool::ANY,
        prop_oneof![
            Just(Rounding::HalfEven),
            Just(Rounding::Down),
            Just(Rounding::Up)
        ],
    )
        .prop_map(|(max, limit, original, rounding)| StackingPolicy {
            max_coupons: max,
            default_group_limit: limit,
            threshold_base: if original {
                ThresholdBase::Original
            } else {
                ThresholdBase::AfterEarlierDiscounts
            },
            rounding,
            ..StackingPolicy::default()
        })
}

/// Builds wallet offers and a promotion index. Offers sharing a `template` number share the
/// template (copies in a wallet), the first one's rules winning.
fn build(specs: &[GenOffer]) -> (Vec<Offer>, PromotionIndex) {
    let mut templates: Vec<(u8, bool, Arc<Template>)> = Vec::new();
    let mut wallet = Vec::new();
    let mut promos = Vec::new();
    for (i, g) in specs.iter().enumerate() {
        let key = (g.template, g.promotion);
        let t = match templates.iter().find(|(k, p, _)| (*k, *p) == key) {
            Some((_, _, t)) if !g.promotion => t.clone(),
            Some(_) => continue, // one promotion per template id
            None => {
                let mut spec = TemplateSpec::new(
                    TemplateId::new(format!(
                        "t{}{}",
                        if g.promotion { "p" } else { "" },
                        g.template
                    ))
                    .unwrap(),
                    "generated",
                    CNY,
                    g.benefit.clone(),
                    Validity::fixed(now() - Duration::days(1), now() + Duration::days(30)).unwrap(),
                )
                .scope(g.scope.clone())
                .stacking(Stacking {
                    group: StackingGroup::new(g.group).unwrap(),
                    exclusive: g.exclusive,
                    with_promotions: g.with_promotions,
                    priority: g.priority,
                })
                .limits(
                    Limits::try_from(LimitsSpec {
                        per_order: Some(g.per_order),
                        ..Default::default()
                    })
                    .unwrap(),
                );
                if let Some(ms) = g.min_subtotal {
                    spec = spec.conditions(
                        Conditions::try_from(ConditionsSpec {
                            min_subtotal: Some(m(ms)),
                            ..Default::default()
                        })
                        .unwrap(),
                    );
                }
                if g.promotion {
                    spec = spec.distribution(Distribution::Automatic);
                }
                let t = Arc::new(spec.build().unwrap());
                templates.push((g.template, g.promotion, t.clone()));
                t
            }
        };
        if g.promotion {
            promos.push(t);
        } else {
            wallet.push(Offer::coupon(
                CouponId::new(format!("c{i:02}")).unwrap(),
                t,
                now() - Duration::days(1),
                now() + Duration::days(g.expiry_days),
            ));
        }
    }
    (wallet, PromotionIndex::new(promos))
}

/// The tie-break key of a set: saving (negated), sorted expiries (none last), sorted ids.
type Key = (i64, Vec<(bool, Option<DateTime<Utc>>)>, Vec<OfferId>);

/// The tie-break key of a set, computed independently of the engine.
fn key(q: &Quote, offers: &[Offer]) -> Key {
    let mut exp: Vec<_> = q
        .applied
        .iter()
        .map(|a| {
            let until = offers
                .iter()
                .find(|o| o.id == a.offer)
                .and_then(|o| o.valid_until)
                .or(a.valid_until);
            (until.is_none(), until)
        })
        .collect();
    exp.sort();
    let mut ids = q.applied_ids();
    ids.sort();
    (-q.saving.to_minor().unwrap(), exp, ids)
}

fn check_invariants(q: &Quote, c: &Cart) {
    let mut total_shares = 0i64;
    for (i, line) in q.lines.iter().enumerate() {
        let shares: i64 = line
            .shares
            .iter()
            .map(|s| s.amount.to_minor().unwrap())
            .sum();
        assert_eq!(line.original, c.line_total(i).unwrap());
        assert!(!line.final_amount.is_negative(), "line below zero");
        assert_eq!(
            line.original.to_minor().unwrap() - shares,
            line.final_amount.to_minor().unwrap()
        );
        assert!(line.shares.iter().all(|s| s.amount.is_positive()));
        total_shares += shares;
    }
    let ship: i64 = q
        .shipping
        .shares
        .iter()
        .map(|s| s.amount.to_minor().unwrap())
        .sum();
    assert!(!q.shipping.final_amount.is_negative());
    assert_eq!(
        q.shipping.original.to_minor().unwrap() - ship,
        q.shipping.final_amount.to_minor().unwrap()
    );
    assert_eq!(total_shares + ship, q.saving.to_minor().unwrap());
    assert!(q.saving <= q.total_before);
    assert!(!q.total_after.is_negative());
    for a in &q.applied {
        let mine: i64 = q
            .lines
            .iter()
            .flat_map(|l| &l.shares)
            .chain(&q.shipping.shares)
            .filter(|s| s.offer == a.offer)
            .map(|s| s.amount.to_minor().unwrap())
            .sum();
        assert_eq!(
            mine,
            a.saving.to_minor().unwrap(),
            "shares of {} do not sum to its saving",
            a.offer
        );
        assert!(a.saving.is_positive());
        if a.kind == "shipping" {
            assert!(
                q.lines
                    .iter()
                    .all(|l| l.shares.iter().all(|s| s.offer != a.offer))
            );
        }
    }
}

/// A few rules (benefit, scope, minimum spend), each repeated by several offers that differ
/// only in priority, template id, expiry, group and exclusivity.
fn near_identical_offers() -> impl Strategy<Value = Vec<GenOffer>> {
    (
        proptest::collection::vec(
            (benefit(), scope(), proptest::option::of(1i64..10000)),
            1..4,
        ),
        proptest::collection::vec(
            (
                0usize..3,
                prop_oneof![Just("platform"), Just("shipping"), Just("g3")],
                -1i32..2,
                1i64..3,
                proptest::bool::weighted(0.5),
                proptest::bool::weighted(0.05),
                0u8..12,
            ),
            2..12,
        ),
    )
        .prop_map(|(rules, picks)| {
            picks
                .into_iter()
                .map(
                    |(rule, group, priority, expiry_days, promotion, exclusive, template)| {
                        let (benefit, scope, min_subtotal) = rules[rule % rules.len()].clone();
                        GenOffer {
                            benefit,
                            scope,
                            min_subtotal,
                            group,
                            exclusive,
                            with_promotions: true,
                            priority,
                            per_order: 1,
                            expiry_days,
                            promotion,
                            template,
                        }
                    },
                )
                .collect()
        })
}

/// The engine's best combination against every subset priced exactly (at most 12 offers).
fn equals_brute_force(
    c: &Cart,
    spec: &[GenOffer],
    pol: &StackingPolicy,
) -> Result<(), TestCaseError> {
    let (wallet, promos) = build(spec);
    let b = buyer();
    let checkout = Checkout::new(c, &b, now(), pol)
        .offers(&wallet)
        .promotions(&promos);
    let best = checkout.best().unwrap();
    check_invariants(&best, c);
    prop_assert!(best.proven_optimal);

    let mut all: Vec<OfferId> = wallet.iter().map(|o| o.id.clone()).collect();
    all.extend(promos.candidates(c).iter().map(|o| o.id.clone()));
    prop_assume!(all.len() <= 12);
    let mut brute: Option<(Quote, _)> = None;
    for mask in 0u32..(1 << all.len()) {
        let set: Vec<OfferId> = (0..all.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| all[i].clone())
            .collect();
        let Ok(q) = checkout.apply_exactly(&set) else {
            continue;
        };
        check_invariants(&q, c);
        let k = key(&q, &wallet);
        if brute.as_ref().is_none_or(|(_, bk)| k < *bk) {
            brute = Some((q, k));
        }
    }
    let (bq, bk) = brute.unwrap();
    prop_assert_eq!(
        key(&best, &wallet),
        bk,
        "engine chose {:?}, brute force {:?}",
        best.applied_ids(),
        bq.applied_ids()
    );
    Ok(())
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn best_combination_equals_brute_force(
        c in cart(),
        spec in proptest::collection::vec(gen_offer(), 0..11),
        pol in policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Catalogue-like inputs: a few rules repeated by many offers that differ only in
    /// priority, id, expiry and group — the ties and near-duplicates the pruning and the
    /// bounds must get exactly right.
    #[test]
    fn best_combination_equals_brute_force_on_near_identical_offers(
        c in cart(),
        spec in near_identical_offers(),
        pol in policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Whatever the budget, the answer is a valid quote; when proven optimal it is the
    /// optimum, and otherwise the optimum lies within the stated gap above it.
    #[test]
    fn search_budget_degrades_to_a_valid_answer_within_its_gap(
        c in cart(),
        spec in prop_oneof![proptest::collection::vec(gen_offer(), 0..11), near_identical_offers()],
        pol in policy(),
        budget in 0u64..120,
    ) {
        let (wallet, promos) = build(&spec);
        let b = buyer();
        let full = Checkout::new(&c, &b, now(), &pol).offers(&wallet).promotions(&promos);
        let best = full.best().unwrap();
        prop_assert!(best.proven_optimal);
        prop_assert!(best.optimality_gap.is_zero());
        let cut = full.search_budget(budget).best().unwrap();
        check_invariants(&cut, &c);
        // The cut answer is a valid combination in its own right.
        prop_assert!(full.apply_exactly(&cut.applied_ids()).is_ok());
        if cut.proven_optimal {
            prop_assert_eq!(key(&cut, &wallet), key(&best, &wallet));
            prop_assert!(cut.optimality_gap.is_zero());
        } else {
            prop_assert!(cut.saving <= best.saving);
            prop_assert!(best.saving <= cut.saving.checked_add(&cut.optimality_gap).unwrap());
        }
    }

    #[test]
    fn buyer_selection_is_validated_and_others_explained(
        c in cart(),
        spec in proptest::collection::vec(gen_offer(), 1..8),
        pol in policy(),
        pick in proptest::collection::vec(proptest::bool::ANY, 8),
    ) {
        let (wallet, promos) = build(&spec);
        let b = buyer();
        let checkout = Checkout::new(&c, &b, now(), &pol).offers(&wallet).promotions(&promos);
        let chosen: Vec<OfferId> = wallet.iter().zip(&pick).filter(|(_, p)| **p).map(|(o, _)| o.id.clone()).collect();
        match checkout.with_selection(&chosen) {
            Ok(q) => {
                check_invariants(&q, &c);
                for id in &chosen {
                    prop_assert!(q.evaluation(id).unwrap().selected);
                }
                // Every coupon said to be addable really can be added.
                for e in q.offers.iter().filter(|e| e.addable() && matches!(e.offer, OfferId::Coupon(_))) {
                    let mut more = chosen.clone();
                    more.push(e.offer.clone());
                    prop_assert!(checkout.with_selection(&more).is_ok(), "{} said addable", e.offer);
                }
                // Promotions in the quote are the best compatible ones: never worse than none.
                // (The bare choice may be invalid: a promotion can make a coupon reach its units.)
                if let Ok(bare) = checkout.apply_exactly(&chosen) {
                    prop_assert!(q.saving >= bare.saving);
                }
            }
            Err(CheckoutError::NotUsable { .. } | CheckoutError::Incompatible { .. }) => {
                prop_assert!(checkout.apply_exactly(&chosen).is_err());
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn same_input_same_answer(c in cart(), spec in proptest::collection::vec(gen_offer(), 0..10), pol in policy()) {
        let (wallet, promos) = build(&spec);
        let b = buyer();
        let checkout = Checkout::new(&c, &b, now(), &pol).offers(&wallet).promotions(&promos);
        prop_assert_eq!(checkout.best().unwrap(), checkout.best().unwrap());
        let mut reversed = wallet.clone();
        reversed.reverse();
        let again = Checkout::new(&c, &b, now(), &pol).offers(&reversed).promotions(&promos).best().unwrap();
        let mut x = again.applied_ids();
        let mut y = checkout.best().unwrap().applied_ids();
        x.sort();
        y.sort();
        prop_assert_eq!(x, y);
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

fn template(id: &str, benefit: Benefit) -> TemplateSpec {
    TemplateSpec::new(
        TemplateId::new(id).unwrap(),
        id,
        CNY,
        benefit,
        Validity::relative(Span::Days(7), None).unwrap(),
    )
}

fn coupon(id: &str, t: TemplateSpec, days: i64) -> Offer {
    Offer::coupon(
        CouponId::new(id).unwrap(),
        Arc::new(t.build().unwrap()),
        now() - Duration::hours(1),
        now() + Duration::days(days),
    )
}

fn simple_cart(lines: &[(i64, u32)], shipping: i64) -> Cart {
    Cart::new(
        CNY,
        lines
            .iter()
            .enumerate()
            .map(|(i, (p, q))| CartLine::new(Sku::new(format!("s{i}")).unwrap(), m(*p), *q))
            .collect(),
        m(shipping),
    )
    .unwrap()
}

#[test]
fn two_fifty_percent_coupons_never_make_a_free_order() {
    let half = || Benefit::percent(Percent::new(50.into()).unwrap(), None).unwrap();
    let a = coupon("a", template("a", half()), 3);
    let b = coupon(
        "b",
        template("b", half()).stacking(Stacking::in_group(StackingGroup::new("shop:x").unwrap())),
        3,
    );
    let c = simple_cart(&[(10000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[a, b])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(7500));
    assert_eq!(q.total_after, m(2500));
}

#[test]
fn among_equal_savings_the_coupon_expiring_first_is_chosen() {
    let ten = || template("ten", Benefit::instant(m(1000)).unwrap());
    let late = coupon("a-late", ten(), 5);
    let soon = coupon(
        "b-soon",
        template("ten2", Benefit::instant(m(1000)).unwrap()),
        2,
    );
    let c = simple_cart(&[(5000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[late, soon])
        .best()
        .unwrap();
    assert_eq!(
        q.applied_ids(),
        vec![OfferId::Coupon(CouponId::new("b-soon").unwrap())]
    );
    let other = q
        .evaluation(&OfferId::Coupon(CouponId::new("a-late").unwrap()))
        .unwrap();
    assert!(matches!(other.reasons[0], Ineligible::GroupFull { .. }));
    assert_eq!(
        other.reasons[0].to_string(),
        "cannot combine with coupon b-soon (platform), which is selected"
    );
}

#[test]
fn unusable_coupons_carry_every_reason() {
    let new_only = template("new", Benefit::threshold(m(10000), m(1000)).unwrap()).conditions(
        Conditions::try_from(ConditionsSpec {
            audience: AudienceSpec {
                customer: Some(CustomerKind::New),
                ..Default::default()
            },
            channels: Some([Channel::new("web").unwrap()].into()),
            ..Default::default()
        })
        .unwrap(),
    );
    let o = coupon("x", new_only, 3);
    let c = simple_cart(&[(8750, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[o])
        .best()
        .unwrap();
    let e = &q.offers[0];
    assert!(!e.usable);
    let texts: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        vec![
            "for new users only",
            "not on this channel (app)",
            "spend 12.50 more on eligible items"
        ]
    );
}

#[test]
fn expired_and_not_yet_valid_coupons_say_when() {
    let t = Arc::new(
        template("t", Benefit::instant(m(100)).unwrap())
            .build()
            .unwrap(),
    );
    let old = Offer::coupon(
        CouponId::new("old").unwrap(),
        t.clone(),
        now() - Duration::days(9),
        now() - Duration::days(2),
    );
    let early = Offer::coupon(
        CouponId::new("early").unwrap(),
        t,
        now() + Duration::days(1),
        now() + Duration::days(9),
    );
    let c = simple_cart(&[(1000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[old, early])
        .best()
        .unwrap();
    assert!(q.applied.is_empty());
    assert!(matches!(q.offers[0].reasons[0], Ineligible::Expired { .. }));
    assert!(matches!(
        q.offers[1].reasons[0],
        Ineligible::NotYetValid { .. }
    ));
}

#[test]
fn shipping_coupon_only_reduces_shipping() {
    let ship = coupon(
        "s",
        template("s", Benefit::shipping(Some(m(800))).unwrap())
            .stacking(Stacking::in_group(StackingGroup::new("shipping").unwrap())),
        3,
    );
    let c = simple_cart(&[(3000, 1)], 1200);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[ship])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(800));
    assert_eq!(q.shipping.final_amount, m(400));
    assert_eq!(q.items_after, m(3000));
}

#[test]
fn threshold_base_policy_decides_whether_thresholds_see_earlier_discounts() {
    // A 20-off shop coupon, then a platform "spend 100 save 10" on a cart of exactly 100.
    let shop = coupon(
        "shop",
        template("shop", Benefit::instant(m(2000)).unwrap()).stacking(Stacking {
            priority: 1,
            ..Stacking::in_group(StackingGroup::new("shop:x").unwrap())
        }),
        3,
    );
    let plat = coupon(
        "plat",
        template("plat", Benefit::threshold(m(10000), m(1000)).unwrap()),
        3,
    );
    let c = simple_cart(&[(10000, 1)], 0);
    let u = buyer();
    let after = StackingPolicy::default();
    let q = Checkout::new(&c, &u, now(), &after)
        .offers(&[shop.clone(), plat.clone()])
        .best()
        .unwrap();
    assert_eq!(
        q.saving,
        m(2000),
        "after the shop's 20 off only 80 is paid: the platform threshold is missed"
    );
    let original = StackingPolicy {
        threshold_base: ThresholdBase::Original,
        ..StackingPolicy::default()
    };
    let q = Checkout::new(&c, &u, now(), &original)
        .offers(&[shop, plat])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(3000));
}

#[test]
fn buy_two_get_one_frees_the_cheapest_units() {
    let bg = coupon(
        "bg",
        template("bg", Benefit::buy_get(2, 1, None).unwrap()),
        3,
    );
    // Units 30, 20, 20, 10, 10, 5 → 2 free units: 5 and 10.
    let c = simple_cart(&[(3000, 1), (2000, 2), (1000, 2), (500, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[bg])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(1500));
}

#[test]
fn any_three_for_99_bundles_the_dearest_units() {
    let fp = coupon(
        "fp",
        template("fp", Benefit::fixed_price(3, m(9900), None).unwrap()),
        3,
    );
    let c = simple_cart(&[(5000, 1), (4000, 1), (3000, 1), (2000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[fp])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(2100));
    assert_eq!(q.lines[3].final_amount, m(2000));
}

#[test]
fn exclusive_coupon_stands_alone() {
    let ex = coupon(
        "ex",
        template("ex", Benefit::instant(m(3000)).unwrap()).stacking(Stacking {
            exclusive: true,
            ..Stacking::in_group(StackingGroup::new("vip").unwrap())
        }),
        3,
    );
    let a = coupon("a", template("a", Benefit::instant(m(2000)).unwrap()), 3);
    let b = coupon(
        "b",
        template("b", Benefit::instant(m(2000)).unwrap())
            .stacking(Stacking::in_group(StackingGroup::new("shop:x").unwrap())),
        3,
    );
    let c = simple_cart(&[(10000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[ex.clone(), a, b])
        .best()
        .unwrap();
    // 20 + 20 beats 30 alone.
    assert_eq!(q.saving, m(4000));
    let e = q.evaluation(&ex.id).unwrap();
    assert_eq!(e.reasons, vec![Ineligible::ExclusiveNeedsAlone]);
    let err = Checkout::new(&c, &u, now(), &pol)
        .offers(&[
            ex.clone(),
            coupon("a", template("a", Benefit::instant(m(2000)).unwrap()), 3),
        ])
        .with_selection(&[ex.id.clone(), OfferId::Coupon(CouponId::new("a").unwrap())])
        .unwrap_err();
    assert!(matches!(err, CheckoutError::Incompatible { .. }));
}

#[test]
fn coupon_refusing_promotions_competes_with_them() {
    let promo = Arc::new(
        template("promo", Benefit::instant(m(500)).unwrap())
            .distribution(Distribution::Automatic)
            .stacking(Stacking::in_group(StackingGroup::new("promo").unwrap()))
            .build()
            .unwrap(),
    );
    let ix = PromotionIndex::new([promo]);
    let solo = coupon(
        "solo",
        template("solo", Benefit::instant(m(1200)).unwrap()).stacking(Stacking {
            with_promotions: false,
            ..Stacking::platform()
        }),
        3,
    );
    let c = simple_cart(&[(5000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[solo])
        .promotions(&ix)
        .best()
        .unwrap();
    assert_eq!(q.saving, m(1200));
    let p = q
        .evaluation(&OfferId::Promotion(TemplateId::new("promo").unwrap()))
        .unwrap();
    assert!(matches!(p.reasons[0], Ineligible::RefusedBy { .. }));
}

#[test]
fn quote_serialises_to_json() {
    let a = coupon("a", template("a", Benefit::instant(m(1000)).unwrap()), 3);
    let c = simple_cart(&[(3333, 3)], 500);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[a])
        .best()
        .unwrap();
    let json = serde_json::to_string(&q).unwrap();
    assert!(
        json.contains(r#""saving":{"amount":"10.00","currency":"CNY"}"#),
        "{json}"
    );
    let back: Quote = serde_json::from_str(&json).unwrap();
    assert_eq!(back, q);
    let _: BTreeSet<OfferId> = q.applied_ids().into_iter().collect();
}
