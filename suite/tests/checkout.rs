//! Checkout properties: the chosen combination equals brute force (tie-breaks included), money
//! invariants of every quote, and scenario tables for reasons and stacking.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine, CustomerKind, ShippingLine};
use coupons::checkout::{
    Checkout, CheckoutError, ExcludedBy, Ineligible, Offer, OfferId, OpenOrder, PercentPlace,
    PromotionIndex, PromotionMode, PromotionPlace, Quote, RoundingScope, StackingPolicy,
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

fn pct(p: i64) -> Percent {
    Percent::new(p.into()).unwrap()
}

/// The kinds added with units priced one by one, tiers and shipping percentages.
fn newer_benefit() -> impl Strategy<Value = Benefit> {
    prop_oneof![
        (1i64..3000, proptest::option::of(1u32..4))
            .prop_map(|(a, mx)| Benefit::per_unit(m(a), mx).unwrap()),
        (1i64..3000, proptest::option::of(1u32..3))
            .prop_map(|(a, mx)| Benefit::per_line(m(a), mx).unwrap()),
        (
            proptest::bool::ANY,
            proptest::bool::ANY,
            1i64..3000,
            1i64..=100
        )
            .prop_map(|(dearest, by_amount, a, p)| {
                let pick = if dearest {
                    UnitPick::Dearest
                } else {
                    UnitPick::Cheapest
                };
                let off = if by_amount {
                    UnitOff::Amount(m(a))
                } else {
                    UnitOff::Percent(pct(p))
                };
                Benefit::apply_once(pick, off).unwrap()
            }),
        (
            0i64..5000,
            1i64..5000,
            1i64..50,
            0i64..50,
            proptest::option::of(1i64..5000)
        )
            .prop_map(|(first, step, p1, p2, max)| {
                let tiers = vec![
                    PercentTier {
                        spend: m(first),
                        percent: pct(p1),
                    },
                    PercentTier {
                        spend: m(first + step),
                        percent: pct(p1 + p2),
                    },
                ];
                Benefit::tiered_percent(tiers, max.map(m)).unwrap()
            }),
        (
            1u32..4,
            1u32..4,
            1i64..50,
            0i64..50,
            proptest::option::of(1i64..5000)
        )
            .prop_map(|(first, step, p1, p2, max)| {
                let tiers = vec![
                    QuantityTier {
                        units: first,
                        percent: pct(p1),
                    },
                    QuantityTier {
                        units: first + step,
                        percent: pct(p1 + p2),
                    },
                ];
                Benefit::quantity_tiers(tiers, max.map(m)).unwrap()
            }),
        (1i64..=100).prop_map(|p| Benefit::shipping_percent(pct(p)).unwrap()),
        (0i64..1500).prop_map(|p| Benefit::shipping_price(m(p)).unwrap()),
        (
            proptest::bool::ANY,
            1i64..5000,
            1i64..=100,
            proptest::option::of(1i64..5000)
        )
            .prop_map(|(by_amount, a, p, max)| if by_amount {
                Benefit::items_and_shipping(UnitOff::Amount(m(a)), None).unwrap()
            } else {
                Benefit::items_and_shipping(UnitOff::Percent(pct(p)), max.map(m)).unwrap()
            }),
        (
            1u32..3,
            prop_oneof![Just("a"), Just("b"), Just("c")],
            1u32..3,
            prop_oneof![
                Just(Reward::Free),
                (1i64..=100).prop_map(|p| Reward::Percent { percent: pct(p) }),
                (0i64..5000).prop_map(|p| Reward::Price { price: m(p) }),
            ],
            proptest::option::of(1u32..4),
        )
            .prop_map(|(buy, cat, get, reward, mx)| {
                let buy_scope = Scope::try_from(ScopeSpec {
                    categories: Some([CategoryId::new(cat).unwrap()].into()),
                    ..Default::default()
                })
                .unwrap();
                Benefit::buy_x_get_y(buy, buy_scope, get, reward, mx).unwrap()
            }),
        (prop_oneof![Just("mug"), Just("tote")], 1i64..3000, 1u32..3)
            .prop_map(|(sku, v, q)| Benefit::gift(Sku::new(sku).unwrap(), m(v), q).unwrap()),
    ]
}

fn benefit() -> impl Strategy<Value = Benefit> {
    prop_oneof![
        7 => older_benefit(),
        7 => newer_benefit(),
    ]
}

fn older_benefit() -> impl Strategy<Value = Benefit> {
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
    max_subtotal: Option<i64>,
    requires: Option<(&'static str, u32)>,
}

impl GenOffer {
    /// An offer of one rule in `group`: not exclusive, combinable with promotions, one per
    /// order, a coupon (not a promotion), no maximum spend or required category.
    fn plain(
        (benefit, scope, min_subtotal): (Benefit, Scope, Option<i64>),
        group: &'static str,
        priority: i32,
        expiry_days: i64,
        template: u8,
    ) -> GenOffer {
        GenOffer {
            benefit,
            scope,
            min_subtotal,
            group,
            exclusive: false,
            with_promotions: true,
            priority,
            per_order: 1,
            expiry_days,
            promotion: false,
            template,
            max_subtotal: None,
            requires: None,
        }
    }
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
        (
            proptest::option::weighted(0.2, 5000i64..40000),
            proptest::option::weighted(
                0.2,
                (prop_oneof![Just("a"), Just("b"), Just("c")], 1u32..4),
            ),
        ),
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
                (max_subtotal, requires),
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
                max_subtotal,
                requires,
            },
        )
}

/// Cart lines: `count` lines of `quantities` units each, in three categories and two shops,
/// a fifth of them on sale.
fn cart_lines(
    quantities: std::ops::Range<u32>,
    count: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<CartLine>> {
    proptest::collection::vec(
        (
            1i64..20000,
            quantities,
            prop_oneof![Just("a"), Just("b"), Just("c")],
            proptest::bool::ANY,
            proptest::bool::weighted(0.2),
        ),
        count,
    )
    .prop_map(|lines| {
        lines
            .into_iter()
            .enumerate()
            .map(|(i, (p, q, c, s1, sale))| {
                let mut l = CartLine::new(Sku::new(format!("sku{i}")).unwrap(), m(p), q)
                    .in_category(CategoryId::new(c).unwrap())
                    .from_shop(ShopId::new(if s1 { "s1" } else { "s2" }).unwrap());
                l.on_sale = sale;
                l
            })
            .collect()
    })
}

fn cart() -> impl Strategy<Value = Cart> {
    (
        cart_lines(1..4, 1..6),
        0i64..1500,
        proptest::option::weighted(0.4, (0i64..1500, proptest::bool::ANY)),
    )
        .prop_map(|(lines, ship, per_shop)| {
            match per_shop {
                // One fee per shop (and, sometimes, one more for the order).
                Some((other, order_fee)) => {
                    let mut ships = vec![
                        ShippingLine::of_shop(ShopId::new("s1").unwrap(), m(ship)),
                        ShippingLine::of_shop(ShopId::new("s2").unwrap(), m(other)),
                    ];
                    if order_fee {
                        ships.push(ShippingLine {
                            shop: None,
                            fee: m(300),
                        });
                    }
                    Cart::with_shipping_lines(CNY, lines, ships).unwrap()
                }
                None => Cart::new(CNY, lines, m(ship)).unwrap(),
            }
        })
}

fn policy() -> impl Strategy<Value = StackingPolicy> {
    let order = (
        prop_oneof![
            2 => Just(vec![]),
            1 => Just(vec!["shop:*", "platform", "shipping"]),
            1 => Just(vec!["g3", "shop:s1"]),
            1 => Just(vec!["shipping", "platform"]),
        ],
        proptest::bool::ANY,
        proptest::bool::ANY,
        proptest::bool::weighted(0.3),
    );
    (
        1u32..5,
        1u32..3,
        proptest::bool::ANY,
        prop_oneof![
            Just(Rounding::HalfEven),
            Just(Rounding::Down),
            Just(Rounding::Up)
        ],
        0u8..3,
        order,
    )
        .prop_map(
            |(max, limit, original, rounding, per_line, (groups, pct_first, promo_last, open))| {
                StackingPolicy {
                    max_coupons: max,
                    default_group_limit: limit,
                    threshold_base: if original {
                        ThresholdBase::Original
                    } else {
                        ThresholdBase::AfterEarlierDiscounts
                    },
                    rounding,
                    rounding_scope: match per_line {
                        0 => RoundingScope::PerOrder,
                        1 => RoundingScope::PerLine,
                        _ => RoundingScope::PerUnit,
                    },
                    group_order: groups
                        .into_iter()
                        .map(|g| StackingGroup::new(g).unwrap())
                        .collect(),
                    percentages: if pct_first {
                        PercentPlace::BeforeFixed
                    } else {
                        PercentPlace::AfterFixed
                    },
                    promotion_place: if promo_last {
                        PromotionPlace::Last
                    } else {
                        PromotionPlace::First
                    },
                    open_order: if open {
                        OpenOrder::Groups
                    } else {
                        OpenOrder::Closed
                    },
                    ..StackingPolicy::default()
                }
            },
        )
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
                let max_subtotal = g.max_subtotal.map(|mx| mx.max(g.min_subtotal.unwrap_or(0)));
                spec = spec.conditions(
                    Conditions::try_from(ConditionsSpec {
                        min_subtotal: g.min_subtotal.map(m),
                        max_subtotal: max_subtotal.map(m),
                        requires: g
                            .requires
                            .iter()
                            .map(|(c, n)| {
                                Requirement::categories([CategoryId::new(*c).unwrap()], *n).unwrap()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .unwrap(),
                );
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
        if i < c.lines().len() {
            assert!(!line.gift);
            assert_eq!(line.original, c.line_total(i).unwrap());
        } else {
            // A gift line: one share, its offer's whole saving; the line ends at zero.
            assert!(line.gift, "a line past the cart's is a gift");
            assert!(line.final_amount.is_zero());
            assert_eq!(line.shares.len(), 1);
            let a = q
                .applied
                .iter()
                .find(|a| a.offer == line.shares[0].offer)
                .unwrap();
            assert_eq!(a.kind, "gift");
            assert_eq!(a.saving, line.original);
        }
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
    if c.has_one_fee() {
        assert!(q.shipping.lines.is_empty());
    } else {
        // Per shipping line: shares sum exactly, no fee below zero, the lines add up.
        assert_eq!(q.shipping.lines.len(), c.shipping_lines().len());
        let mut original = 0;
        let mut left = 0;
        for (sl, cl) in q.shipping.lines.iter().zip(c.shipping_lines()) {
            assert_eq!((&sl.shop, sl.original), (&cl.shop, cl.fee));
            let shares: i64 = sl.shares.iter().map(|s| s.amount.to_minor().unwrap()).sum();
            assert_eq!(
                sl.original.to_minor().unwrap() - shares,
                sl.final_amount.to_minor().unwrap()
            );
            assert!(!sl.final_amount.is_negative());
            original += sl.original.to_minor().unwrap();
            left += sl.final_amount.to_minor().unwrap();
        }
        assert_eq!(original, q.shipping.original.to_minor().unwrap());
        assert_eq!(left, q.shipping.final_amount.to_minor().unwrap());
        // An offer reaches a shop's fee only through a line of that shop in its scope.
        for sl in &q.shipping.lines {
            let Some(shop) = &sl.shop else { continue };
            for share in &sl.shares {
                let has_line = q
                    .lines
                    .iter()
                    .zip(c.lines())
                    .any(|(_, l)| l.shop.as_ref() == Some(shop));
                assert!(
                    has_line,
                    "{} reached {shop} with no line of it",
                    share.offer
                );
            }
        }
    }
    assert_eq!(
        q.shipping.original.to_minor().unwrap() - ship,
        q.shipping.final_amount.to_minor().unwrap()
    );
    assert_eq!(total_shares + ship, q.saving.to_minor().unwrap());
    let items: i64 = q.lines.iter().map(|l| l.original.to_minor().unwrap()).sum();
    assert_eq!(items, q.items_before.to_minor().unwrap());
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
        if a.kind.starts_with("shipping") {
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
                        let rule = rules[rule % rules.len()].clone();
                        GenOffer {
                            exclusive,
                            promotion,
                            ..GenOffer::plain(rule, group, priority, expiry_days, template)
                        }
                    },
                )
                .collect()
        })
}

/// Catalogue-like inputs for the pruning of groups of one: two rules per stacking group, each
/// repeated by offers whose priorities interleave with the other rule's (so near-equal offers
/// of one group are not neighbours in the canonical order, only separated by offers of their
/// group), every offer its own template, mostly promotions; under [`groups_of_one_policy`].
fn interleaved_rules_in_groups_of_one() -> impl Strategy<Value = Vec<GenOffer>> {
    (
        proptest::collection::vec((benefit(), scope(), proptest::option::of(1i64..10000)), 6),
        proptest::collection::vec(
            (
                0usize..3,
                0usize..2,
                0i32..6,
                1i64..3,
                proptest::bool::weighted(0.7),
                proptest::bool::weighted(0.05),
            ),
            4..12,
        ),
    )
        .prop_map(|(rules, picks)| {
            const GROUPS: [&str; 3] = ["g3", "shipping", "platform"];
            picks
                .into_iter()
                .enumerate()
                .map(
                    |(i, (group, rule, priority, expiry_days, promotion, exclusive))| {
                        let rule = rules[2 * group + rule].clone();
                        let plain =
                            GenOffer::plain(rule, GROUPS[group], priority, expiry_days, i as u8);
                        GenOffer {
                            exclusive,
                            promotion,
                            ..plain
                        }
                    },
                )
                .collect()
        })
}

/// Any policy, every group of limit one.
fn groups_of_one_policy() -> impl Strategy<Value = StackingPolicy> {
    policy().prop_map(|mut p| {
        p.default_group_limit = 1;
        p
    })
}

/// Wallet-like inputs for the best-first search: every offer from its own template (nothing
/// collapses), most with a minimum spend, so adding an offer that applies earlier can make a
/// later one lose its threshold (the sets whose extensions the search skips as invalid, and
/// whose exact savings bound their extensions).
fn distinct_rules() -> impl Strategy<Value = Vec<GenOffer>> {
    proptest::collection::vec(
        (gen_offer(), proptest::option::weighted(0.7, 1i64..30000)),
        2..11,
    )
    .prop_map(|offers| {
        offers
            .into_iter()
            .enumerate()
            .map(|(i, (mut g, min_subtotal))| {
                g.template = i as u8;
                g.min_subtotal = min_subtotal;
                g
            })
            .collect()
    })
}

/// Several unit offers (buy 2 get 1 and kin) with different scopes, all in one stacking group
/// of limit one, plus amount offers, each rule repeated at near-identical priorities: the
/// inputs on which the canonical-order search is chosen although unit offers make lines
/// uneven (at most one of them per set). Its marginals apply several unit behaviours to
/// states one after another; each must see its own state's runs, not those another node left.
fn unit_offers_in_one_group() -> impl Strategy<Value = Vec<GenOffer>> {
    let unit = prop_oneof![
        4 => proptest::option::of(1u32..3).prop_map(|mx| Benefit::buy_get(2, 1, mx).unwrap()),
        1 => (1u32..3, 1u32..3).prop_map(|(b, g)| Benefit::buy_get(b, g, None).unwrap()),
        1 => (2u32..4, 100i64..6000).prop_map(|(q, p)| Benefit::fixed_price(q, m(p), None).unwrap()),
        1 => (1i64..3000, proptest::option::of(1u32..4))
            .prop_map(|(a, mx)| Benefit::per_unit(m(a), mx).unwrap()),
    ];
    let amount = prop_oneof![
        (1i64..3000).prop_map(|a| Benefit::instant(m(a)).unwrap()),
        (1i64..=100, proptest::option::of(1i64..5000)).prop_map(|(p, max)| Benefit::percent(
            pct(p),
            max.map(m)
        )
        .unwrap()),
        (100i64..5000, 1i64..99).prop_map(|(every, p)| {
            Benefit::every(m(every), m((every * p / 100).max(1)), None).unwrap()
        }),
    ];
    (
        proptest::collection::vec((unit, scope()), 2..4),
        proptest::collection::vec((amount, scope(), proptest::option::of(1i64..10000)), 1..3),
        proptest::collection::vec(
            (
                0usize..6,
                prop_oneof![Just("g3"), Just("shipping")],
                0i32..2,
                1i64..3,
                proptest::bool::weighted(0.4),
                0u8..12,
            ),
            6..12,
        ),
    )
        .prop_map(|(units, amounts, picks)| {
            picks
                .into_iter()
                .enumerate()
                .map(
                    |(i, (rule, amount_group, priority, expiry_days, promotion, template))| {
                        // Every unit rule at least once, then any rule.
                        let rule = if i < units.len() { i } else { rule };
                        let (rule, group) = if rule < units.len() {
                            let (b, s) = units[rule].clone();
                            ((b, s, None), "platform")
                        } else {
                            (amounts[rule % amounts.len()].clone(), amount_group)
                        };
                        GenOffer {
                            promotion,
                            ..GenOffer::plain(rule, group, priority, expiry_days, template)
                        }
                    },
                )
                .collect()
        })
}

/// Wallet-like inputs of the best-first search whose distinct templates share a few rules:
/// unit offers (fixed prices, buy 2 get 1) and amount offers, each rule drawn by several
/// templates in different stacking groups, some with a minimum spend. Sets of such offers
/// meet the same states again and again, so the search looks its applications up by
/// behaviour and state; each looked-up application must be the one it stands for.
fn shared_rules_in_many_groups() -> impl Strategy<Value = Vec<GenOffer>> {
    let rule = prop_oneof![
        2 => (2u32..4, 100i64..6000, proptest::option::of(1u32..3))
            .prop_map(|(q, p, mx)| Benefit::fixed_price(q, m(p), mx).unwrap()),
        1 => proptest::option::of(1u32..3).prop_map(|mx| Benefit::buy_get(2, 1, mx).unwrap()),
        1 => (1i64..3000).prop_map(|a| Benefit::instant(m(a)).unwrap()),
        1 => (1i64..=100, proptest::option::of(1i64..5000)).prop_map(|(p, max)| Benefit::percent(
            pct(p),
            max.map(m)
        )
        .unwrap()),
    ];
    (
        proptest::collection::vec((rule, scope()), 2..4),
        proptest::collection::vec(
            (
                0usize..4,
                prop_oneof![
                    Just("platform"),
                    Just("g3"),
                    Just("shop:s1"),
                    Just("shipping")
                ],
                0i32..3,
                1i64..4,
                proptest::option::weighted(0.3, 1i64..20000),
            ),
            4..11,
        ),
    )
        .prop_map(|(rules, picks)| {
            picks
                .into_iter()
                .enumerate()
                .map(|(i, (r, group, priority, expiry_days, min_subtotal))| {
                    let (benefit, scope) = rules[r % rules.len()].clone();
                    let rule = (benefit, scope, min_subtotal);
                    GenOffer::plain(rule, group, priority, expiry_days, i as u8)
                })
                .collect()
        })
}

/// Carts of lines of 2–4 units and one shipping fee (the canonical-order search's carts).
fn multi_unit_cart() -> impl Strategy<Value = Cart> {
    (cart_lines(2..5, 1..5), 0i64..1500)
        .prop_map(|(lines, ship)| Cart::new(CNY, lines, m(ship)).unwrap())
}

/// A policy under which unit offers in one group may use the canonical-order search: groups
/// of limit one, a closed order, percentages not rounded per unit.
fn one_per_group_policy() -> impl Strategy<Value = StackingPolicy> {
    policy().prop_map(|mut p| {
        p.default_group_limit = 1;
        p.open_order = OpenOrder::Closed;
        if p.rounding_scope == RoundingScope::PerUnit {
            p.rounding_scope = RoundingScope::PerLine;
        }
        p
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

    /// Several unit offers of different scopes in one group of limit one, amount offers, and
    /// near-identical priorities (the canonical-order search): each unit offer's saving is
    /// computed on its own state's units.
    #[test]
    fn best_combination_equals_brute_force_with_unit_offers_in_one_group(
        c in multi_unit_cart(),
        spec in unit_offers_in_one_group(),
        pol in one_per_group_policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Near-equal offers of one group of limit one separated only by offers of their group
    /// (the pruning's slots in a group of one): the best set and its tie-break are kept.
    #[test]
    fn best_combination_equals_brute_force_on_interleaved_rules_in_groups_of_one(
        c in cart(),
        spec in interleaved_rules_in_groups_of_one(),
        pol in groups_of_one_policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Distinct rules with thresholds that earlier discounts can break: the best-first
    /// search's pruning of invalid sets and its exact-saving bounds must stay exact.
    #[test]
    fn best_combination_equals_brute_force_on_distinct_rules_with_thresholds(
        c in cart(),
        spec in distinct_rules(),
        pol in policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Distinct templates sharing a few rules across groups on carts of several units per
    /// line (the best-first search, its applications looked up by behaviour and state).
    #[test]
    fn best_combination_equals_brute_force_on_shared_rules_in_many_groups(
        c in multi_unit_cart(),
        spec in shared_rules_in_many_groups(),
        pol in policy(),
    ) {
        equals_brute_force(&c, &spec, &pol)?;
    }

    /// Whatever the budget, the answer is a valid quote; when proven optimal it is the
    /// optimum, and otherwise the optimum lies within the stated gap above it.
    #[test]
    fn search_budget_degrades_to_a_valid_answer_within_its_gap(
        c in cart(),
        spec in prop_oneof![
            proptest::collection::vec(gen_offer(), 0..11),
            near_identical_offers(),
            distinct_rules(),
        ],
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
    fn standing_promotions_then_the_best_coupons_equal_brute_force(
        c in cart(),
        spec in proptest::collection::vec(gen_offer(), 0..10),
        pol in policy(),
    ) {
        let pol = StackingPolicy { promotions: PromotionMode::AlwaysApply, ..pol };
        let (wallet, promos) = build(&spec);
        let b = buyer();
        let checkout = Checkout::new(&c, &b, now(), &pol).offers(&wallet).promotions(&promos);
        let best = checkout.best().unwrap();
        check_invariants(&best, &c);
        let coupons: Vec<OfferId> = wallet.iter().map(|o| o.id.clone()).collect();
        let promo_ids: Vec<OfferId> = promos.candidates(&c).iter().map(|o| o.id.clone()).collect();
        prop_assume!(coupons.len() <= 9 && promo_ids.len() <= 5);
        let brute = |pool: &[OfferId], with: &[OfferId]| {
            let mut found: Option<(Vec<OfferId>, Key)> = None;
            for mask in 0u32..(1 << pool.len()) {
                let mut set: Vec<OfferId> = with.to_vec();
                set.extend((0..pool.len()).filter(|i| mask & (1 << i) != 0).map(|i| pool[i].clone()));
                let Ok(q) = checkout.apply_exactly(&set) else { continue };
                let k = key(&q, &wallet);
                if found.as_ref().is_none_or(|(_, fk)| k < *fk) {
                    found = Some((set, k));
                }
            }
            found
        };
        // The promotions alone first, then the coupons on top of them.
        let standing = brute(&promo_ids, &[]).map(|(set, _)| set).unwrap_or_default();
        let (_, k) = brute(&coupons, &standing).unwrap();
        prop_assert_eq!(key(&best, &wallet), k);
        for id in &standing {
            prop_assert!(best.applied_ids().contains(id), "standing promotion {} left out", id);
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
        "cannot combine with \"ten2\", which is selected"
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
    assert_eq!(*e.reasons, [Ineligible::ExclusiveNeedsAlone]);
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

// ---------------------------------------------------------------------------------------------
// The worked numbers of the newer benefit kinds, as their docs state them.

fn saving_of(benefit: Benefit, lines: &[(i64, u32)], shipping: i64) -> Option<Money> {
    let offer = coupon("x", template("x", benefit), 3);
    let c = simple_cart(lines, shipping);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[offer])
        .best()
        .unwrap();
    check_invariants(&q, &c);
    (!q.applied.is_empty()).then_some(q.saving)
}

#[test]
fn per_unit_takes_the_amount_off_the_dearest_units() {
    // 5 off each, at most 3 units, on 2 × 30.00 and 2 × 4.00: 5 + 5 + 4.
    let b = Benefit::per_unit(m(500), Some(3)).unwrap();
    assert_eq!(saving_of(b, &[(400, 2), (3000, 2)], 0), Some(m(1400)));
    // Uncapped: every unit, none below zero.
    let b = Benefit::per_unit(m(500), None).unwrap();
    assert_eq!(saving_of(b, &[(400, 2), (3000, 2)], 0), Some(m(1800)));
}

#[test]
fn per_line_takes_the_amount_off_the_dearest_lines() {
    // 10 off each line, at most 2 lines, on 3 × 20.00, 1 × 8.00, 1 × 15.00: 10 + 10.
    let b = Benefit::per_line(m(1000), Some(2)).unwrap();
    assert_eq!(
        saving_of(b, &[(2000, 3), (800, 1), (1500, 1)], 0),
        Some(m(2000))
    );
    let b = Benefit::per_line(m(1000), None).unwrap();
    assert_eq!(
        saving_of(b, &[(2000, 3), (800, 1), (1500, 1)], 0),
        Some(m(2800))
    );
}

#[test]
fn apply_once_takes_one_unit_only() {
    let lines = [(8000, 1), (4500, 2)];
    let dearest_half = Benefit::apply_once(UnitPick::Dearest, UnitOff::Percent(pct(50))).unwrap();
    assert_eq!(saving_of(dearest_half, &lines, 0), Some(m(4000)));
    let cheapest_20 = Benefit::apply_once(UnitPick::Cheapest, UnitOff::Amount(m(2000))).unwrap();
    assert_eq!(saving_of(cheapest_20, &lines, 0), Some(m(2000)));
    let cheapest_all = Benefit::apply_once(UnitPick::Cheapest, UnitOff::Amount(m(9000))).unwrap();
    assert_eq!(saving_of(cheapest_all, &lines, 0), Some(m(4500)));
}

#[test]
fn tiered_percent_takes_the_highest_tier_reached() {
    let b = || {
        Benefit::tiered_percent(
            vec![
                PercentTier {
                    spend: m(0),
                    percent: pct(5),
                },
                PercentTier {
                    spend: m(20000),
                    percent: pct(10),
                },
                PercentTier {
                    spend: m(50000),
                    percent: pct(15),
                },
            ],
            Some(m(6000)),
        )
        .unwrap()
    };
    assert_eq!(saving_of(b(), &[(15000, 1)], 0), Some(m(750)));
    assert_eq!(saving_of(b(), &[(30000, 1)], 0), Some(m(3000)));
    assert_eq!(saving_of(b(), &[(60000, 1)], 0), Some(m(6000)));
}

#[test]
fn quantity_tiers_count_units_in_scope() {
    let b = || {
        Benefit::quantity_tiers(
            vec![
                QuantityTier {
                    units: 2,
                    percent: pct(10),
                },
                QuantityTier {
                    units: 3,
                    percent: pct(20),
                },
            ],
            None,
        )
        .unwrap()
    };
    assert_eq!(saving_of(b(), &[(5000, 2)], 0), Some(m(1000)));
    assert_eq!(saving_of(b(), &[(5000, 4)], 0), Some(m(4000)));
    assert_eq!(saving_of(b(), &[(5000, 1)], 0), None);
}

#[test]
fn shipping_percent_and_shipping_price_reduce_only_shipping() {
    let half = || Benefit::shipping_percent(pct(50)).unwrap();
    assert_eq!(saving_of(half(), &[(5000, 1)], 1200), Some(m(600)));
    assert_eq!(saving_of(half(), &[(5000, 1)], 999), Some(m(500)));
    let five = || Benefit::shipping_price(m(500)).unwrap();
    assert_eq!(saving_of(five(), &[(5000, 1)], 1200), Some(m(700)));
    assert_eq!(saving_of(five(), &[(5000, 1)], 500), None);
}

#[test]
fn requirements_and_a_maximum_subtotal_are_conditions_apart_from_scope() {
    let cat = |c: &str| CategoryId::new(c).unwrap();
    // 10 % off tea when the order holds two cups.
    let t = template("tea", Benefit::percent(pct(10), None).unwrap())
        .scope(
            Scope::try_from(ScopeSpec {
                categories: Some([cat("tea")].into()),
                ..Default::default()
            })
            .unwrap(),
        )
        .conditions(
            Conditions::try_from(ConditionsSpec {
                requires: vec![Requirement::categories([cat("cups")], 2).unwrap()],
                max_subtotal: Some(m(50000)),
                ..Default::default()
            })
            .unwrap(),
        );
    let offer = coupon("tea", t, 3);
    let line = |sku: &str, c: &str, price: i64, q: u32| {
        CartLine::new(Sku::new(sku).unwrap(), m(price), q).in_category(cat(c))
    };
    let pol = StackingPolicy::default();
    let u = buyer();
    let quote = |lines: Vec<CartLine>| {
        let c = Cart::new(CNY, lines, m(0)).unwrap();
        Checkout::new(&c, &u, now(), &pol)
            .offers(std::slice::from_ref(&offer))
            .best()
            .unwrap()
    };
    // One cup: one more needed; the reason names the category.
    let q = quote(vec![line("t", "tea", 10000, 1), line("c", "cups", 3000, 1)]);
    assert!(q.applied.is_empty());
    let reasons = &q.evaluation(&offer.id).unwrap().reasons;
    assert!(
        reasons
            .iter()
            .any(|r| r.to_string() == "add 1 more item of category cups"),
        "{reasons:?}"
    );
    // Two cups: 10 % of the tea only (the cups are not in scope).
    let q = quote(vec![line("t", "tea", 10000, 1), line("c", "cups", 3000, 2)]);
    assert_eq!(q.saving, m(1000));
    // Tea above 500.00: over the maximum.
    let q = quote(vec![line("t", "tea", 60000, 1), line("c", "cups", 3000, 2)]);
    assert!(q.applied.is_empty());
    let reasons = &q.evaluation(&offer.id).unwrap().reasons;
    assert!(
        reasons.contains(&Ineligible::AboveMaxSubtotal {
            max: m(50000),
            over: m(10000)
        }),
        "{reasons:?}"
    );
}

#[test]
fn buy_x_get_y_rewards_the_cheapest_units_of_the_reward_set() {
    let cat = |c: &str| CategoryId::new(c).unwrap();
    let in_cat = |c: &str| {
        Scope::try_from(ScopeSpec {
            categories: Some([cat(c)].into()),
            ..Default::default()
        })
        .unwrap()
    };
    let b = Benefit::buy_x_get_y(
        2,
        in_cat("shirts"),
        1,
        Reward::Percent { percent: pct(50) },
        None,
    )
    .unwrap();
    let offer = coupon("bxgy", template("bxgy", b).scope(in_cat("hats")), 3);
    let pol = StackingPolicy::default();
    let u = buyer();
    let saving = |shirts: u32| {
        let lines = vec![
            CartLine::new(Sku::new("shirt").unwrap(), m(10000), shirts).in_category(cat("shirts")),
            CartLine::new(Sku::new("cap").unwrap(), m(4000), 2).in_category(cat("hats")),
            CartLine::new(Sku::new("beanie").unwrap(), m(3000), 1).in_category(cat("hats")),
        ];
        let c = Cart::new(CNY, lines, m(0)).unwrap();
        let q = Checkout::new(&c, &u, now(), &pol)
            .offers(std::slice::from_ref(&offer))
            .best()
            .unwrap();
        check_invariants(&q, &c);
        q.saving
    };
    assert_eq!(saving(1), m(0));
    assert_eq!(saving(3), m(1500));
    assert_eq!(saving(4), m(3500));
    assert_eq!(saving(20), m(5500));

    // One set for both (the classic buy 2 get 1 free): a unit counts once.
    let same = Benefit::buy_x_get_y(2, Scope::everything(), 1, Reward::Free, None).unwrap();
    let classic = Benefit::buy_get(2, 1, None).unwrap();
    for lines in [
        vec![(3000, 1), (2000, 2), (1000, 2), (500, 1)],
        vec![(3000, 2)],
        vec![(3000, 3), (100, 1)],
    ] {
        assert_eq!(
            saving_of(same.clone(), &lines, 0),
            saving_of(classic.clone(), &lines, 0),
            "{lines:?}"
        );
    }
}

#[test]
fn items_and_shipping_share_one_discount() {
    let ten = Benefit::items_and_shipping(UnitOff::Percent(pct(10)), None).unwrap();
    let offer = coupon("all", template("all", ten), 3);
    let c = simple_cart(&[(9000, 1)], 1000);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[offer])
        .best()
        .unwrap();
    check_invariants(&q, &c);
    assert_eq!(q.saving, m(1000));
    assert_eq!(q.lines[0].final_amount, m(8100));
    assert_eq!(q.shipping.final_amount, m(900));
    let thirty = Benefit::items_and_shipping(UnitOff::Amount(m(3000)), None).unwrap();
    assert_eq!(saving_of(thirty, &[(2000, 1)], 500), Some(m(2500)));
}

// ---------------------------------------------------------------------------------------------
// Reasons a buyer can read.

fn reasons_of(q: &Quote, id: &str) -> Vec<String> {
    q.evaluation(&OfferId::Coupon(CouponId::new(id).unwrap()))
        .unwrap()
        .reasons
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn an_exclusion_names_what_excluded_each_line() {
    let cat = |c: &str| CategoryId::new(c).unwrap();
    let t = template("20-off", Benefit::percent(pct(20), None).unwrap()).scope(
        Scope::try_from(ScopeSpec {
            exclude_categories: [cat("liquor")].into(),
            sale_items: false,
            ..Default::default()
        })
        .unwrap(),
    );
    let offer = coupon("c", t, 3);
    let c = Cart::new(
        CNY,
        vec![
            CartLine::new(Sku::new("baijiu").unwrap(), m(30000), 1).in_category(cat("liquor")),
            CartLine::new(Sku::new("tea").unwrap(), m(5000), 1).on_sale(),
        ],
        m(0),
    )
    .unwrap();
    let (pol, u) = (StackingPolicy::default(), buyer());
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[offer])
        .best()
        .unwrap();
    assert_eq!(
        reasons_of(&q, "c"),
        vec![
            "not for the items in the cart: baijiu is in the excluded category liquor; \
             tea is already on sale"
        ]
    );
    let e = q
        .evaluation(&OfferId::Coupon(CouponId::new("c").unwrap()))
        .unwrap();
    let Ineligible::NoItemInScope { excluded } = &e.reasons[0] else {
        panic!("{:?}", e.reasons)
    };
    assert_eq!(
        excluded[0].by,
        ExcludedBy::Category {
            category: cat("liquor")
        }
    );
    assert_eq!(excluded[1].by, ExcludedBy::SaleItem);
}

#[test]
fn one_reason_per_state_and_instants_in_the_buyers_offset() {
    let t = || template("ten", Benefit::instant(m(1000)).unwrap());
    let used_and_expired = Offer::coupon(
        CouponId::new("used").unwrap(),
        Arc::new(t().build().unwrap()),
        now() - Duration::days(9),
        now() - Duration::hours(4),
    )
    .with_blocked(coupons::checkout::Blocked::Used);
    let expired = Offer::coupon(
        CouponId::new("old").unwrap(),
        Arc::new(t().build().unwrap()),
        now() - Duration::days(9),
        now() - Duration::hours(4),
    );
    let c = simple_cart(&[(5000, 1)], 0);
    let pol = StackingPolicy::default();
    let u = buyer().in_offset(chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[used_and_expired, expired])
        .best()
        .unwrap();
    assert_eq!(reasons_of(&q, "used"), vec!["already used"]);
    // 2026-11-23 08:00 UTC is 16:00 in UTC+08:00.
    assert_eq!(
        reasons_of(&q, "old"),
        vec!["expired at 2026-11-23 16:00 (UTC+08:00)"]
    );
}

#[test]
fn losing_a_free_shipping_threshold_is_told_apart_from_no_saving() {
    // Free shipping from 99.00 measured after earlier discounts; a 10.00 coupon on a 100.00
    // cart would leave 90.00 and cost the free shipping.
    let ship = coupon(
        "ship",
        template("ship", Benefit::shipping(None).unwrap())
            .conditions(
                Conditions::try_from(ConditionsSpec {
                    min_subtotal: Some(m(9900)),
                    ..Default::default()
                })
                .unwrap(),
            )
            .stacking(Stacking::in_group(StackingGroup::new("shipping").unwrap())),
        3,
    );
    let ten = coupon(
        "ten",
        template("立减10元", Benefit::instant(m(1000)).unwrap()),
        3,
    );
    let c = simple_cart(&[(10000, 1)], 800);
    let pol = StackingPolicy::default();
    let u = buyer();
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(&[ship.clone(), ten])
        .with_selection(std::slice::from_ref(&ship.id))
        .unwrap();
    assert_eq!(
        reasons_of(&q, "ten"),
        vec![
            "would lose the shipping offer \"ship\", whose minimum spend would then be 9.00 short"
        ]
    );
}

#[test]
fn counts_are_in_the_singular_for_one() {
    assert_eq!(
        Ineligible::MoreItems { missing: 1 }.to_string(),
        "add 1 more eligible item"
    );
    assert_eq!(
        Ineligible::MoreItems { missing: 2 }.to_string(),
        "add 2 more eligible items"
    );
    assert_eq!(
        Ineligible::MaxCoupons { max: 1 }.to_string(),
        "at most 1 coupon per order"
    );
    assert_eq!(
        Ineligible::MaxCoupons { max: 3 }.to_string(),
        "at most 3 coupons per order"
    );
}

#[test]
fn always_applying_promotions_keep_them_in_the_order() {
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
    let pol = StackingPolicy {
        promotions: PromotionMode::AlwaysApply,
        ..StackingPolicy::default()
    };
    let u = buyer();
    let checkout = Checkout::new(&c, &u, now(), &pol)
        .offers(std::slice::from_ref(&solo))
        .promotions(&ix);
    let q = checkout.best().unwrap();
    // The promotion stands; the coupon that refuses promotions cannot join it.
    assert_eq!(q.saving, m(500));
    assert!(matches!(
        checkout.with_selection(std::slice::from_ref(&solo.id)),
        Err(CheckoutError::Incompatible { .. })
    ));
}

#[test]
fn percentages_round_per_order_or_per_line() {
    let off = || {
        coupon(
            "p",
            template(
                "p",
                Benefit::percent(
                    Percent::new(rust_decimal::Decimal::new(125, 1)).unwrap(),
                    None,
                )
                .unwrap(),
            ),
            3,
        )
    };
    let c = simple_cart(&[(100, 1), (100, 1), (100, 1)], 0);
    let u = buyer();
    let per_order = StackingPolicy::default();
    let q = Checkout::new(&c, &u, now(), &per_order)
        .offers(&[off()])
        .best()
        .unwrap();
    assert_eq!(q.saving, m(38));
    let per_line = StackingPolicy {
        rounding_scope: RoundingScope::PerLine,
        ..StackingPolicy::default()
    };
    let q = Checkout::new(&c, &u, now(), &per_line)
        .offers(&[off()])
        .best()
        .unwrap();
    check_invariants(&q, &c);
    assert_eq!(q.saving, m(36));
    assert!(q.lines.iter().all(|l| l.final_amount == m(88)));
}

#[test]
fn percentages_round_per_unit_on_lines_of_several_units() {
    let off = || {
        coupon(
            "p",
            template(
                "p",
                Benefit::percent(
                    Percent::new(rust_decimal::Decimal::new(125, 1)).unwrap(),
                    None,
                )
                .unwrap(),
            ),
            3,
        )
    };
    let c = simple_cart(&[(100, 3)], 0);
    let u = buyer();
    let saving = |scope| {
        let pol = StackingPolicy {
            rounding_scope: scope,
            ..StackingPolicy::default()
        };
        let q = Checkout::new(&c, &u, now(), &pol)
            .offers(&[off()])
            .best()
            .unwrap();
        check_invariants(&q, &c);
        q.saving
    };
    assert_eq!(saving(RoundingScope::PerUnit), m(36));
    assert_eq!(saving(RoundingScope::PerLine), m(38));
    assert_eq!(saving(RoundingScope::PerOrder), m(38));
}

#[test]
fn a_gift_is_its_own_line_worth_its_value_and_competes_by_it() {
    let mug = || Benefit::gift(Sku::new("mug").unwrap(), m(2500), 1).unwrap();
    let spend = |t: TemplateSpec, min: i64| {
        t.conditions(
            Conditions::try_from(ConditionsSpec {
                min_subtotal: Some(m(min)),
                ..Default::default()
            })
            .unwrap(),
        )
    };
    let c = simple_cart(&[(21000, 1)], 800);
    let pol = StackingPolicy::default();
    let u = buyer();
    // Spend 199 get a mug worth 25.00: its own line, the buyer pays what the cart costs.
    let gift = coupon("gift", spend(template("gift", mug()), 19900), 3);
    let q = Checkout::new(&c, &u, now(), &pol)
        .offers(std::slice::from_ref(&gift))
        .best()
        .unwrap();
    check_invariants(&q, &c);
    assert_eq!(q.lines.len(), 2);
    let line = &q.lines[1];
    assert!(line.gift);
    assert_eq!(line.sku.as_str(), "mug");
    assert_eq!(
        (line.quantity, line.original, line.final_amount),
        (1, m(2500), m(0))
    );
    assert_eq!(q.saving, m(2500));
    assert_eq!(q.total_after, m(21800));
    assert_eq!(q.items_before, m(23500));
    // Below the threshold: no gift line, and the reason is the spend.
    let small = simple_cart(&[(15000, 1)], 800);
    let q = Checkout::new(&small, &u, now(), &pol)
        .offers(std::slice::from_ref(&gift))
        .best()
        .unwrap();
    assert_eq!(q.lines.len(), 1);
    assert_eq!(
        q.offers[0].reasons[0].to_string(),
        "spend 49.00 more on eligible items"
    );
    // Against 20.00 off in the same group (one per order), the gift's 25.00 wins; against
    // 30.00 off, the discount does.
    for (off, gift_wins) in [(2000, true), (3000, false)] {
        let discount = coupon("off", template("off", Benefit::instant(m(off)).unwrap()), 3);
        let offers = [gift.clone(), discount];
        let q = Checkout::new(&c, &u, now(), &pol)
            .offers(&offers)
            .best()
            .unwrap();
        check_invariants(&q, &c);
        assert_eq!(q.applied.len(), 1);
        assert_eq!(q.applied[0].kind == "gift", gift_wins, "off {off}");
        assert_eq!(q.lines.len(), if gift_wins { 2 } else { 1 });
    }
}

#[test]
fn shipping_lines_per_shop_take_offers_scoped_to_their_shop() {
    let (s1, s2) = (ShopId::new("s1").unwrap(), ShopId::new("s2").unwrap());
    let cart = Cart::with_shipping_lines(
        CNY,
        vec![
            CartLine::new(Sku::new("tea").unwrap(), m(10000), 1).from_shop(s1.clone()),
            CartLine::new(Sku::new("cup").unwrap(), m(5000), 1).from_shop(s2.clone()),
        ],
        vec![
            ShippingLine::of_shop(s1.clone(), m(800)),
            ShippingLine::of_shop(s2.clone(), m(1200)),
        ],
    )
    .unwrap();
    assert_eq!(cart.shipping(), m(2000));
    let u = buyer();
    let pol = StackingPolicy::default();
    let shop1 = Scope::try_from(ScopeSpec {
        shops: Some([s1.clone()].into()),
        ..Default::default()
    })
    .unwrap();
    let quote = |b: Benefit, scope: Scope| {
        let o = coupon("x", template("x", b).scope(scope), 3);
        let q = Checkout::new(&cart, &u, now(), &pol)
            .offers(&[o])
            .best()
            .unwrap();
        check_invariants(&q, &cart);
        let fees: Vec<Money> = q.shipping.lines.iter().map(|l| l.final_amount).collect();
        (q.saving, fees)
    };
    // Shop s1's free shipping frees only s1's parcel.
    assert_eq!(
        quote(Benefit::shipping(None).unwrap(), shop1.clone()),
        (m(800), vec![m(0), m(1200)])
    );
    // A platform cap of 10.00 over both parcels, in proportion to their fees: 4.00 and 6.00.
    assert_eq!(
        quote(
            Benefit::shipping(Some(m(1000))).unwrap(),
            Scope::everything()
        ),
        (m(1000), vec![m(400), m(600)])
    );
    // Shipping for 10.00 is per parcel: only s2's 12.00 parcel comes down.
    assert_eq!(
        quote(
            Benefit::shipping_price(m(1000)).unwrap(),
            Scope::everything()
        ),
        (m(200), vec![m(800), m(1000)])
    );
    // Half off s1's parcel only.
    assert_eq!(
        quote(Benefit::shipping_percent(pct(50)).unwrap(), shop1),
        (m(400), vec![m(400), m(1200)])
    );
    // The old one-fee constructor is one shipping line with no shop, and a quote with no lines.
    let one = simple_cart(&[(10000, 1)], 800);
    assert!(one.has_one_fee());
    assert_eq!(
        one.shipping_lines(),
        &[ShippingLine {
            shop: None,
            fee: m(800)
        }]
    );
}

#[test]
fn an_order_left_open_takes_the_best_order_and_accepts_a_selection_valid_in_one() {
    let in_group = |id: &str, b: Benefit, g: &str| {
        coupon(
            id,
            template(id, b).stacking(Stacking::in_group(StackingGroup::new(g).unwrap())),
            3,
        )
    };
    let wallet = [
        in_group(
            "shop",
            Benefit::threshold(m(20000), m(3000)).unwrap(),
            "shop:1",
        ),
        in_group(
            "plat",
            Benefit::threshold(m(10000), m(1500)).unwrap(),
            "platform",
        ),
    ];
    let ids: Vec<OfferId> = wallet.iter().map(|o| o.id.clone()).collect();
    let c = simple_cart(&[(21000, 1)], 0);
    let u = buyer();
    let closed = StackingPolicy::default();
    let open = StackingPolicy {
        open_order: OpenOrder::Groups,
        ..StackingPolicy::default()
    };
    // Closed: the platform coupon applies first (195.00 < 200.00): the pair is refused and the
    // best is the shop coupon alone.
    let checkout = Checkout::new(&c, &u, now(), &closed).offers(&wallet);
    assert!(checkout.with_selection(&ids).is_err());
    assert_eq!(checkout.best().unwrap().saving, m(3000));
    // Open: shop first leaves 180.00 ≥ 100.00, both apply, in that order.
    let checkout = Checkout::new(&c, &u, now(), &open).offers(&wallet);
    for q in [
        checkout.with_selection(&ids).unwrap(),
        checkout.best().unwrap(),
    ] {
        check_invariants(&q, &c);
        assert_eq!(q.saving, m(4500));
        let names: Vec<&str> = q.applied.iter().map(|a| &*a.name).collect();
        assert_eq!(names, ["shop", "plat"]);
    }
    // A group order that states the positions keeps them: platform before shop stays refused.
    let stated = StackingPolicy {
        group_order: vec![
            StackingGroup::new("platform").unwrap(),
            StackingGroup::new("shop:*").unwrap(),
        ],
        ..open
    };
    assert!(
        Checkout::new(&c, &u, now(), &stated)
            .offers(&wallet)
            .with_selection(&ids)
            .is_err()
    );
}

/// The proptest regression `be4d5e7f…`: two fixed prices and two 94 % coupons in two groups of
/// one position. In the documented order the groups interleave (both fixed prices, then both
/// percentages) and all four save; in neither order that keeps each group's members together
/// does the second fixed price save anything. The documented order is one an open order
/// allows, so the four apply together and take the whole order.
#[test]
fn an_open_order_allows_the_documented_order_where_groups_interleave() {
    let percent = || Benefit::percent(pct(94), None).unwrap();
    let fixed = || Benefit::fixed_price(1, m(134), Some(1)).unwrap();
    let in_group = |id: &str, b: Benefit, g: &str| {
        coupon(
            id,
            template(id, b).stacking(Stacking::in_group(StackingGroup::new(g).unwrap())),
            3,
        )
    };
    let wallet = [
        in_group("p_ship", percent(), "shipping"),
        in_group("f_plat", fixed(), "platform"),
        in_group("f_ship", fixed(), "shipping"),
        in_group("p_plat", percent(), "platform"),
    ];
    let ids: Vec<OfferId> = wallet.iter().map(|o| o.id.clone()).collect();
    let c = simple_cart(&[(2234, 2)], 0);
    let u = buyer();
    let pol = StackingPolicy {
        max_coupons: 4,
        default_group_limit: 2,
        rounding: Rounding::Up,
        open_order: OpenOrder::Groups,
        ..StackingPolicy::default()
    };
    let checkout = Checkout::new(&c, &u, now(), &pol).offers(&wallet);
    for q in [
        checkout.best().unwrap(),
        checkout.apply_exactly(&ids).unwrap(),
        checkout.with_selection(&ids).unwrap(),
    ] {
        check_invariants(&q, &c);
        assert!(q.proven_optimal);
        assert_eq!(q.saving, m(4468));
        let names: Vec<&str> = q.applied.iter().map(|a| &*a.name).collect();
        assert_eq!(names, ["f_plat", "f_ship", "p_plat", "p_ship"]);
    }
    // The same set is valid in the closed order, and saves the same there.
    let closed = StackingPolicy {
        open_order: OpenOrder::Closed,
        ..pol
    };
    let q = Checkout::new(&c, &u, now(), &closed)
        .offers(&wallet)
        .apply_exactly(&ids)
        .unwrap();
    assert_eq!(q.saving, m(4468));
}
