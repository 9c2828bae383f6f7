//! Coupon rules as data: every valid template survives JSON unchanged, every invalid one is
//! refused with the same typed error through JSON as through the constructors, no input makes
//! deserialising panic, and the JSON examples in the docs are valid templates of every kind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, NaiveTime, TimeZone, Utc, Weekday};
use coupons::cart::CustomerKind;
use coupons::id::{
    CategoryId, Channel, MembershipLevel, SegmentId, ShopId, Sku, StackingGroup, TemplateId, UserId,
};
use coupons::money::{Currency, Money};
use coupons::rule::{
    AudienceSpec, Benefit, Conditions, ConditionsSpec, Distribution, Limits, LimitsSpec, Percent,
    PercentTier, QuantityTier, RefundPolicy, Requirement, Reward, RuleError, Schedule,
    ScheduleSpec, Scope, ScopeSpec, Span, Stacking, Template, TemplateSpec, Tier, TimeWindow,
    UnitOff, UnitPick, Validity,
};
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const CNY: Currency = Currency::CNY;

fn cny(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::USD)
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

fn money_json(m: Money) -> Value {
    serde_json::to_value(m).unwrap()
}

/// A minimal valid template to vary one part of.
fn base_spec() -> TemplateSpec {
    TemplateSpec::new(
        TemplateId::new("t-1").unwrap(),
        "满100减10",
        CNY,
        Benefit::threshold(cny(10_000), cny(1_000)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
}

/// The variant name and field of a rule error, for the table below.
fn variant_and_field(e: &RuleError) -> (&'static str, &'static str) {
    match e {
        RuleError::NotPositive { field, .. } => ("NotPositive", *field),
        RuleError::PercentOutOfRange { field, .. } => ("PercentOutOfRange", *field),
        RuleError::Zero { field } => ("Zero", *field),
        RuleError::Empty { field } => ("Empty", *field),
        RuleError::TooLong { field, .. } => ("TooLong", *field),
        RuleError::TiersNotIncreasing { field, .. } => ("TiersNotIncreasing", *field),
        RuleError::TierSavingDecreases { field, .. } => ("TierSavingDecreases", *field),
        RuleError::SavingNotBelowThreshold { field, .. } => ("SavingNotBelowThreshold", *field),
        RuleError::CurrencyMismatch { field, .. } => ("CurrencyMismatch", *field),
        RuleError::WindowEndsBeforeStart { field, .. } => ("WindowEndsBeforeStart", *field),
        RuleError::Conflict { field, .. } => ("Conflict", *field),
        RuleError::Invalid { field, .. } => ("Invalid", *field),
        RuleError::Id { field, .. } => ("Id", *field),
        RuleError::Money { field, .. } => ("Money", *field),
        RuleError::Time(e) => ("Time", e.field),
        _ => ("unknown variant", ""),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies for valid rules, from small integer minor units
// ---------------------------------------------------------------------------------------------

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![
        4 => Just(CNY),
        1 => Just(Currency::USD),
        1 => Just(Currency::JPY),
        1 => Just(Currency::KWD),
        1 => Just(Currency::new("XTS", 2).unwrap()),
    ]
}

/// A positive amount of at most `max` minor units.
fn amount(c: Currency, max: i64) -> impl Strategy<Value = Money> {
    (1..=max).prop_map(move |m| Money::from_minor(m, c))
}

/// Identifier text: ASCII, a few CJK characters, and `:`, `-`, `_` inside.
fn ident() -> impl Strategy<Value = String> {
    "[a-z0-9\u{4e00}-\u{4e0f}][a-z0-9:_\u{4e00}-\u{4e0f}-]{0,10}"
}

fn id_set<T: Ord + std::fmt::Debug>(
    make: fn(String) -> T,
    size: std::ops::Range<usize>,
) -> impl Strategy<Value = BTreeSet<T>> {
    btree_set(ident().prop_map(make), size)
}

fn sku(s: String) -> Sku {
    Sku::new(s).unwrap()
}
fn category(s: String) -> CategoryId {
    CategoryId::new(s).unwrap()
}
fn shop(s: String) -> ShopId {
    ShopId::new(s).unwrap()
}

/// Tiers with strictly increasing spends and non-decreasing savings, each below its spend.
fn tiers(c: Currency) -> impl Strategy<Value = Vec<Tier>> {
    (
        2i64..=20_000,
        vec((1i64..=20_000, 0i64..=2_000), 0..4),
        1i64..=20_000,
    )
        .prop_map(move |(first_spend, steps, first_save)| {
            let mut spend = first_spend;
            let mut save = 1 + (first_save - 1) % (first_spend - 1);
            let mut v = vec![Tier {
                spend: Money::from_minor(spend, c),
                save: Money::from_minor(save, c),
            }];
            for (dspend, dsave) in steps {
                spend += dspend;
                save = (save + dsave).min(spend - 1);
                v.push(Tier {
                    spend: Money::from_minor(spend, c),
                    save: Money::from_minor(save, c),
                });
            }
            v
        })
}

fn benefit(c: Currency) -> BoxedStrategy<Benefit> {
    prop_oneof![
        amount(c, 100_000).prop_map(|a| Benefit::instant(a).unwrap()),
        tiers(c).prop_map(|t| Benefit::tiered(t).unwrap()),
        (
            2i64..=100_000,
            1i64..=100_000,
            option::of(amount(c, 1_000_000))
        )
            .prop_map(move |(every, save, max)| {
                let save = 1 + (save - 1) % (every - 1);
                Benefit::every(Money::from_minor(every, c), Money::from_minor(save, c), max)
                    .unwrap()
            }),
        (1i64..=1_000_000, 0u32..=4, option::of(amount(c, 100_000))).prop_map(|(p, scale, max)| {
            // (0, 100] in steps of 1, 0.1, 0.01, 0.001 or 0.0001.
            let p = Decimal::new(1 + (p - 1) % (100 * 10i64.pow(scale)), scale);
            Benefit::percent(Percent::new(p).unwrap(), max).unwrap()
        }),
        option::of(amount(c, 5_000)).prop_map(|cap| Benefit::shipping(cap).unwrap()),
        (1u32..=10, 1u32..=5, option::of(1u32..=20))
            .prop_map(|(b, g, m)| Benefit::buy_get(b, g, m).unwrap()),
        (1u32..=10, amount(c, 100_000), option::of(1u32..=10))
            .prop_map(|(q, p, m)| Benefit::fixed_price(q, p, m).unwrap()),
        newer_benefit(c).boxed(),
    ]
    .boxed()
}

/// The kinds added with per-unit offers, tiers, shipping percentages and buy X get Y.
fn newer_benefit(c: Currency) -> BoxedStrategy<Benefit> {
    let pct = |p: i64| Percent::new(Decimal::new(1 + (p - 1) % 100, 0)).unwrap();
    prop_oneof![
        (amount(c, 100_000), option::of(1u32..=10))
            .prop_map(|(a, m)| Benefit::per_unit(a, m).unwrap()),
        (amount(c, 100_000), option::of(1u32..=10))
            .prop_map(|(a, m)| Benefit::per_line(a, m).unwrap()),
        (any::<bool>(), option::of(amount(c, 100_000)), 1i64..=100).prop_map(
            move |(dearest, a, p)| {
                let pick = if dearest {
                    UnitPick::Dearest
                } else {
                    UnitPick::Cheapest
                };
                let off = a.map_or(UnitOff::Percent(pct(p)), UnitOff::Amount);
                Benefit::apply_once(pick, off).unwrap()
            }
        ),
        (
            0i64..=10_000,
            1i64..=10_000,
            1i64..=50,
            0i64..=50,
            option::of(amount(c, 100_000))
        )
            .prop_map(move |(first, step, p1, p2, max)| {
                let tiers = vec![
                    PercentTier {
                        spend: Money::from_minor(first, c),
                        percent: pct(p1),
                    },
                    PercentTier {
                        spend: Money::from_minor(first + step, c),
                        percent: pct(p1 + p2),
                    },
                ];
                Benefit::tiered_percent(tiers, max).unwrap()
            }),
        (1u32..=5, 1u32..=5, 1i64..=50, 0i64..=50).prop_map(move |(u, step, p1, p2)| {
            let tiers = vec![
                QuantityTier {
                    units: u,
                    percent: pct(p1),
                },
                QuantityTier {
                    units: u + step,
                    percent: pct(p1 + p2),
                },
            ];
            Benefit::quantity_tiers(tiers, None).unwrap()
        }),
        (1i64..=100).prop_map(move |p| Benefit::shipping_percent(pct(p)).unwrap()),
        (0i64..=5_000).prop_map(move |p| Benefit::shipping_price(Money::from_minor(p, c)).unwrap()),
        (
            1u32..=5,
            scope(),
            1u32..=5,
            0u8..3,
            1i64..=100,
            option::of(1u32..=10)
        )
            .prop_map(move |(buy, buy_scope, get, r, p, m)| {
                let reward = match r {
                    0 => Reward::Free,
                    1 => Reward::Percent { percent: pct(p) },
                    _ => Reward::Price {
                        price: Money::from_minor(p, c),
                    },
                };
                Benefit::buy_x_get_y(buy, buy_scope, get, reward, m).unwrap()
            }),
        (
            option::of(amount(c, 100_000)),
            1i64..=100,
            option::of(amount(c, 100_000))
        )
            .prop_map(move |(a, p, max)| match a {
                Some(a) => Benefit::items_and_shipping(UnitOff::Amount(a), None).unwrap(),
                None => Benefit::items_and_shipping(UnitOff::Percent(pct(p)), max).unwrap(),
            }),
    ]
    .boxed()
}

fn scope() -> impl Strategy<Value = Scope> {
    (
        option::of(id_set(shop, 1..3)),
        option::of(id_set(sku, 1..4)),
        option::of(id_set(category, 1..4)),
        id_set(sku, 0..3),
        id_set(category, 0..3),
        any::<bool>(),
    )
        .prop_map(|(shops, skus, categories, mut xs, mut xc, sale_items)| {
            if let Some(s) = &skus {
                xs.retain(|x| !s.contains(x));
            }
            if let Some(c) = &categories {
                xc.retain(|x| !c.contains(x));
            }
            Scope::try_from(ScopeSpec {
                shops,
                skus,
                categories,
                exclude_skus: xs,
                exclude_categories: xc,
                sale_items,
            })
            .unwrap()
        })
}

fn time_of_day(secs: u32) -> NaiveTime {
    NaiveTime::from_num_seconds_from_midnight_opt(secs % 86_400, 0).unwrap()
}

fn schedule() -> impl Strategy<Value = ScheduleSpec> {
    let offset = (
        any::<bool>(),
        0u32..=14,
        prop_oneof![Just(0u32), Just(30), Just(45)],
    )
        .prop_map(|(east, h, m)| {
            let m = if h == 14 { 0 } else { m };
            format!("{}{h:02}:{m:02}", if east { '+' } else { '-' })
        });
    let day = (0u8..7).prop_map(|d| Weekday::try_from(d).unwrap());
    // Start and a length in (0, 24h): start and end always differ; some run past midnight.
    let window = (0u32..86_400, 1u32..86_400).prop_map(|(s, len)| TimeWindow {
        start: time_of_day(s),
        end: time_of_day(s + len),
    });
    (offset, vec(day, 0..4), vec(window, 0..3)).prop_map(|(utc_offset, days, windows)| {
        ScheduleSpec {
            utc_offset,
            days,
            windows,
        }
    })
}

fn conditions(c: Currency) -> impl Strategy<Value = Conditions> {
    let customer = option::of(prop_oneof![
        Just(CustomerKind::New),
        Just(CustomerKind::Returning)
    ]);
    let audience = (
        customer,
        option::of(id_set(|s| MembershipLevel::new(s).unwrap(), 1..3)),
        option::of(id_set(|s| SegmentId::new(s).unwrap(), 1..3)),
        option::of(id_set(|s| UserId::new(s).unwrap(), 1..3)),
    )
        .prop_map(
            |(customer, membership_levels, segments, users)| AudienceSpec {
                customer,
                membership_levels,
                segments,
                users,
            },
        );
    (
        option::of(amount(c, 100_000)),
        option::of(1u32..=10),
        audience,
        option::of(id_set(|s| Channel::new(s).unwrap(), 1..4)),
        option::of(schedule()),
        option::of(0i64..=100_000),
        vec(
            (
                option::of(id_set(sku, 1..3)),
                option::of(id_set(category, 1..3)),
                option::of(id_set(shop, 1..3)),
                1u32..=5,
            ),
            0..3,
        ),
    )
        .prop_map(
            move |(min_subtotal, min_quantity, audience, channels, schedule, extra, requires)| {
                // A maximum at or above the minimum (or any, without one).
                let max_subtotal = extra.map(|x| {
                    Money::from_minor(min_subtotal.map_or(1, |m| m.to_minor().unwrap()) + x, c)
                });
                let requires = requires
                    .into_iter()
                    .map(|(skus, categories, shops, min_quantity)| Requirement {
                        skus: skus.clone(),
                        categories: categories.clone(),
                        shops: if skus.is_none() && categories.is_none() && shops.is_none() {
                            Some([ShopId::new("s").unwrap()].into())
                        } else {
                            shops
                        },
                        min_quantity,
                    })
                    .collect();
                Conditions::try_from(ConditionsSpec {
                    min_subtotal,
                    min_quantity,
                    audience,
                    channels,
                    schedule,
                    max_subtotal,
                    requires,
                })
                .unwrap()
            },
        )
}

/// An instant between 2020 and 2036, sometimes with a fraction of a second.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (
        1_577_836_800i64..2_082_758_400,
        prop_oneof![3 => Just(0u32), 1 => 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| Utc.timestamp_opt(s, n).unwrap())
}

fn validity() -> impl Strategy<Value = Validity> {
    let span = prop_oneof![
        (1u32..=365).prop_map(Span::Days),
        (1u32..=720).prop_map(Span::Hours)
    ];
    prop_oneof![
        (instant(), 1i64..=400 * 86_400).prop_map(|(from, len)| {
            Validity::fixed(from, from + chrono::Duration::seconds(len)).unwrap()
        }),
        (span, option::of(instant()))
            .prop_map(|(span, not_after)| Validity::relative(span, not_after).unwrap()),
    ]
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        option::of(prop_oneof![1u64..=1_000_000, Just(u64::MAX)]),
        option::of(1u32..=10),
        option::of(1u32..=10),
        option::of(1u32..=5),
    )
        .prop_map(|(total_stock, per_user_claims, per_user_uses, per_order)| {
            Limits::try_from(LimitsSpec {
                total_stock,
                per_user_claims,
                per_user_uses,
                per_order,
            })
            .unwrap()
        })
}

fn stacking() -> impl Strategy<Value = Stacking> {
    let group = prop_oneof![
        Just("platform".to_owned()),
        Just("shipping".to_owned()),
        ident().prop_map(|s| format!("shop:{s}")),
        ident(),
    ];
    (group, any::<bool>(), any::<bool>(), any::<i32>()).prop_map(
        |(group, exclusive, with_promotions, priority)| Stacking {
            group: StackingGroup::new(group).unwrap(),
            exclusive,
            with_promotions,
            priority,
        },
    )
}

fn distribution() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        Just(Distribution::Private),
        (
            "[A-Za-z0-9_-]{3,32}",
            option::of(prop_oneof![1u64..=100_000, Just(u64::MAX)]),
            option::of(1u32..=5),
        )
            .prop_map(
                |(code, max, per_user)| Distribution::promo_code(&code, max, per_user).unwrap()
            ),
        Just(Distribution::Automatic),
    ]
}

/// Any valid template spec: every benefit kind, scope, condition, validity, limit, stacking and
/// distribution, all amounts in the template's currency.
fn template_spec() -> impl Strategy<Value = TemplateSpec> {
    currency().prop_flat_map(|c| {
        let texts = (
            "[a-z0-9][a-z0-9-]{0,20}",
            "[\\p{L}\\p{N}]\\PC{0,30}",
            "\\PC{0,40}",
            "\\PC{0,40}",
        );
        let rules = (benefit(c), scope(), conditions(c), validity());
        let rest = (limits(), stacking(), distribution(), any::<(bool, bool)>());
        (texts, rules, rest).prop_map(
            move |(
                (id, name, description, terms),
                (benefit, scope, conditions, validity),
                (limits, stacking, distribution, (m, b)),
            )| TemplateSpec {
                id: TemplateId::new(id).unwrap(),
                name,
                description,
                terms,
                currency: c,
                benefit,
                scope,
                conditions,
                validity,
                limits,
                stacking,
                distribution,
                refund: RefundPolicy {
                    merchant_refund_returns: m,
                    buyer_refund_returns: b,
                },
            },
        )
    })
}

/// Every `{"amount", "currency"}` object in a JSON tree is a decimal string with exactly the
/// currency's number of decimal places ("12.50" CNY, "1250" JPY, "1.250" KWD).
fn assert_amounts_readable(v: &Value) -> Result<(), TestCaseError> {
    match v {
        Value::Object(o) => {
            if o.len() == 2 && o.contains_key("amount") && o.contains_key("currency") {
                let Some(text) = o["amount"].as_str() else {
                    return Err(TestCaseError::fail(format!("amount not a string: {v}")));
                };
                let c: Currency = o["currency"].as_str().unwrap_or("").parse().unwrap();
                let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
                prop_assert_eq!(decimals, usize::from(c.exponent()), "{}", v);
                prop_assert!(
                    text.trim_start_matches('-')
                        .bytes()
                        .all(|b| b == b'.' || b.is_ascii_digit())
                );
            }
            for x in o.values() {
                assert_amounts_readable(x)?;
            }
        }
        Value::Array(a) => {
            for x in a {
                assert_amounts_readable(x)?;
            }
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Invalid input: mutations of valid JSON, each with the error its constructor gives
// ---------------------------------------------------------------------------------------------

/// One way to break a valid template's JSON.
#[derive(Clone, Debug)]
enum Mutation {
    /// A percentage outside (0, 100] or with more than four decimal places.
    BadPercent(Decimal),
    /// Which amount (0..7) to make zero or negative, and its minor units (≤ 0).
    NotPositive(usize, i64),
    /// Two tiers; the second's spend is `drop` (≥ 0) below the first's.
    TiersNotIncreasing(i64, i64),
    /// A higher tier saving `less` (> 0) below the first.
    TierSavingDecreases(i64),
    /// A tier or step whose saving is `extra` (≥ 0) above its spend; `every` when true.
    SavingNotBelowThreshold(bool, i64, i64),
    /// A fixed window whose end is `back` (≥ 0) seconds before its start.
    WindowEndsBeforeStart(i64, i64),
    ZeroSpan(bool),
    /// Which limit (0..4) to set to zero; 4 and 5 are the promo code's.
    ZeroLimit(usize),
    /// Which count (0..5) of buy_get and fixed_price to set to zero.
    ZeroCount(usize),
    /// Benefit in another currency (0), tiers mixing currencies (1), min_subtotal in another
    /// currency (2), percent cap in another currency (3).
    MixedCurrency(usize),
    /// Which include list (0..7) is present but empty.
    EmptyList(usize),
    /// A SKU (true) or category both included and excluded.
    IncludedAndExcluded(bool, String),
    /// A name of only white space.
    EmptyName(String),
    /// Which text (0..3) is one character too long.
    TooLong(usize),
    BadCurrency(String),
    /// An amount with one decimal place too many.
    TooPrecise(i64, i64),
    BadOffset(String),
    /// A schedule window that starts where it ends.
    EmptyWindow(u32),
    BadPromoCode(String),
    /// An unknown field at location (0..14), named `x_<name>`.
    UnknownField(usize, String),
    BadId(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let percent = prop_oneof![
        Just(Decimal::ZERO),
        (1i64..=1_000_000).prop_map(|n| -Decimal::new(n, 2)),
        (1i64..=1_000_000).prop_map(|n| Decimal::ONE_HUNDRED + Decimal::new(n, 2)),
        // In range, but five to eight decimal places.
        (0i64..=999_999, 1i64..=9, 5u32..=8)
            .prop_map(|(m, k, scale)| Decimal::new(m * 10 + k, scale)),
    ];
    let bad_offset = prop_oneof![
        Just("8".to_owned()),
        Just("+8:00".to_owned()),
        Just("++8:00".to_owned()),
        Just("+08:+5".to_owned()),
        Just("+14:30".to_owned()),
        Just("+15:00".to_owned()),
        Just("UTC+8".to_owned()),
        Just(String::new()),
        "\\PC{0,8}".prop_filter("a valid offset", |s| {
            Schedule::try_from(ScheduleSpec {
                utc_offset: s.clone(),
                days: vec![],
                windows: vec![],
            })
            .is_err()
        }),
    ];
    let bad_currency = prop_oneof![
        Just("cny".to_owned()),
        Just("CN".to_owned()),
        Just("CNYY".to_owned()),
        Just("XXQ".to_owned()),
        Just("XTS:9".to_owned()),
        Just("人民币".to_owned()),
        "\\PC{0,6}".prop_filter("a valid currency", |s| s.parse::<Currency>().is_err()),
    ];
    let bad_code = prop_oneof![
        Just("ab".to_owned()),
        Just("has space".to_owned()),
        Just("x".repeat(33)),
        Just("双十一".to_owned()),
        "\\PC{0,40}".prop_filter("a valid code", |s| Distribution::promo_code(s, None, None)
            .is_err()),
    ];
    prop_oneof![
        percent.prop_map(Mutation::BadPercent),
        (0usize..7, -100_000i64..=0).prop_map(|(w, m)| Mutation::NotPositive(w, m)),
        (2i64..=100_000, 0i64..=100_000).prop_map(|(s, d)| Mutation::TiersNotIncreasing(s, d)),
        (1i64..=1_000).prop_map(Mutation::TierSavingDecreases),
        (any::<bool>(), 1i64..=100_000, 0i64..=1_000)
            .prop_map(|(e, s, x)| Mutation::SavingNotBelowThreshold(e, s, x)),
        (1_577_836_800i64..2_082_758_400, 0i64..=86_400 * 30)
            .prop_map(|(f, b)| Mutation::WindowEndsBeforeStart(f, b)),
        any::<bool>().prop_map(Mutation::ZeroSpan),
        (0usize..6).prop_map(Mutation::ZeroLimit),
        (0usize..5).prop_map(Mutation::ZeroCount),
        (0usize..4).prop_map(Mutation::MixedCurrency),
        (0usize..7).prop_map(Mutation::EmptyList),
        (any::<bool>(), ident()).prop_map(|(k, s)| Mutation::IncludedAndExcluded(k, s)),
        "[ \t\n\u{3000}]{0,5}".prop_map(Mutation::EmptyName),
        (0usize..3).prop_map(Mutation::TooLong),
        bad_currency.prop_map(Mutation::BadCurrency),
        (1i64..=100_000, 1i64..=9).prop_map(|(m, d)| Mutation::TooPrecise(m, d)),
        bad_offset.prop_map(Mutation::BadOffset),
        (0u32..86_400).prop_map(Mutation::EmptyWindow),
        bad_code.prop_map(Mutation::BadPromoCode),
        (0usize..14, "[a-z]{1,8}").prop_map(|(w, n)| Mutation::UnknownField(w, n)),
        prop_oneof![
            Just(String::new()),
            Just(" t".to_owned()),
            Just("a\u{7}".to_owned()),
            Just("x".repeat(129))
        ]
        .prop_map(Mutation::BadId),
    ]
}

fn other_currency(c: Currency) -> Currency {
    if c == CNY { Currency::USD } else { CNY }
}

fn set(v: &mut Value, key: &str, x: Value) {
    v.as_object_mut().unwrap().insert(key.to_owned(), x);
}

fn conditions_err(spec: ConditionsSpec) -> String {
    Conditions::try_from(spec).unwrap_err().to_string()
}

fn scope_err(spec: ScopeSpec) -> String {
    Scope::try_from(spec).unwrap_err().to_string()
}

/// Breaks `v` (the JSON of `spec`) as `m` says and returns the message the constructors give
/// for the same mistake.
fn apply(m: &Mutation, spec: &TemplateSpec, v: &mut Value) -> String {
    let c = spec.currency;
    let money = |minor: i64| Money::from_minor(minor, c);
    match m {
        Mutation::BadPercent(p) => {
            set(
                v,
                "benefit",
                json!({"kind": "percent", "percent": p.to_string()}),
            );
            Percent::new(*p).unwrap_err().to_string()
        }
        Mutation::NotPositive(which, minor) => {
            let (a, ok) = (money(*minor), money(10_000));
            let (benefit, err) = match which {
                0 => (
                    json!({"kind": "instant", "amount": money_json(a)}),
                    Benefit::instant(a).unwrap_err(),
                ),
                1 => (
                    json!({"kind": "shipping", "cap": money_json(a)}),
                    Benefit::shipping(Some(a)).unwrap_err(),
                ),
                2 => (
                    json!({"kind": "fixed_price", "quantity": 3, "price": money_json(a)}),
                    Benefit::fixed_price(3, a, None).unwrap_err(),
                ),
                3 => (
                    json!({"kind": "percent", "percent": "15", "max_saving": money_json(a)}),
                    Benefit::percent(Percent::new(Decimal::from(15)).unwrap(), Some(a))
                        .unwrap_err(),
                ),
                4 => (
                    json!({"kind": "every_threshold", "every": money_json(a), "save": money_json(ok)}),
                    Benefit::every(a, ok, None).unwrap_err(),
                ),
                5 => (
                    json!({"kind": "threshold", "tiers": [{"spend": money_json(ok), "save": money_json(a)}]}),
                    Benefit::threshold(ok, a).unwrap_err(),
                ),
                _ => {
                    set(v, "conditions", json!({"min_subtotal": money_json(a)}));
                    return conditions_err(ConditionsSpec {
                        min_subtotal: Some(a),
                        ..Default::default()
                    });
                }
            };
            set(v, "benefit", benefit);
            err.to_string()
        }
        Mutation::TiersNotIncreasing(spend, drop) => {
            let t = [
                Tier {
                    spend: money(*spend),
                    save: money(1),
                },
                Tier {
                    spend: money((spend - drop).max(2)),
                    save: money(1),
                },
            ];
            set(v, "benefit", json!({"kind": "threshold", "tiers": t}));
            Benefit::tiered(t.to_vec()).unwrap_err().to_string()
        }
        Mutation::TierSavingDecreases(less) => {
            let t = [
                Tier {
                    spend: money(100_000),
                    save: money(1 + less),
                },
                Tier {
                    spend: money(200_000),
                    save: money(1),
                },
            ];
            set(v, "benefit", json!({"kind": "threshold", "tiers": t}));
            Benefit::tiered(t.to_vec()).unwrap_err().to_string()
        }
        Mutation::SavingNotBelowThreshold(every, spend, extra) => {
            let (s, save) = (money(*spend), money(spend + extra));
            if *every {
                set(
                    v,
                    "benefit",
                    json!({"kind": "every_threshold", "every": s, "save": save}),
                );
                Benefit::every(s, save, None).unwrap_err().to_string()
            } else {
                set(
                    v,
                    "benefit",
                    json!({"kind": "threshold", "tiers": [{"spend": s, "save": save}]}),
                );
                Benefit::threshold(s, save).unwrap_err().to_string()
            }
        }
        Mutation::WindowEndsBeforeStart(from, back) => {
            let (from, until) = (at(*from), at(from - back));
            set(
                v,
                "validity",
                json!({"kind": "fixed", "from": from, "until": until}),
            );
            Validity::fixed(from, until).unwrap_err().to_string()
        }
        Mutation::ZeroSpan(days) => {
            let (key, span) = if *days {
                ("days", Span::Days(0))
            } else {
                ("hours", Span::Hours(0))
            };
            set(v, "validity", json!({"kind": "relative", key: 0}));
            Validity::relative(span, None).unwrap_err().to_string()
        }
        Mutation::ZeroLimit(which) => {
            let mut l = LimitsSpec::default();
            let key = match which {
                0 => {
                    l.total_stock = Some(0);
                    "total_stock"
                }
                1 => {
                    l.per_user_claims = Some(0);
                    "per_user_claims"
                }
                2 => {
                    l.per_user_uses = Some(0);
                    "per_user_uses"
                }
                3 => {
                    l.per_order = Some(0);
                    "per_order"
                }
                4 => {
                    set(
                        v,
                        "distribution",
                        json!({"kind": "promo_code", "code": "SAVE10", "max_redemptions": 0}),
                    );
                    return Distribution::promo_code("SAVE10", Some(0), None)
                        .unwrap_err()
                        .to_string();
                }
                _ => {
                    set(
                        v,
                        "distribution",
                        json!({"kind": "promo_code", "code": "SAVE10", "per_user": 0}),
                    );
                    return Distribution::promo_code("SAVE10", None, Some(0))
                        .unwrap_err()
                        .to_string();
                }
            };
            set(v, "limits", json!({ key: 0 }));
            Limits::try_from(l).unwrap_err().to_string()
        }
        Mutation::ZeroCount(which) => {
            let p = money(9_900);
            let (b, e) = match which {
                0 => (
                    json!({"kind": "buy_get", "buy": 0, "get": 1}),
                    Benefit::buy_get(0, 1, None),
                ),
                1 => (
                    json!({"kind": "buy_get", "buy": 2, "get": 0}),
                    Benefit::buy_get(2, 0, None),
                ),
                2 => (
                    json!({"kind": "buy_get", "buy": 2, "get": 1, "max_free_units": 0}),
                    Benefit::buy_get(2, 1, Some(0)),
                ),
                3 => (
                    json!({"kind": "fixed_price", "quantity": 0, "price": p}),
                    Benefit::fixed_price(0, p, None),
                ),
                _ => (
                    json!({"kind": "fixed_price", "quantity": 3, "price": p, "max_bundles": 0}),
                    Benefit::fixed_price(3, p, Some(0)),
                ),
            };
            set(v, "benefit", b);
            e.unwrap_err().to_string()
        }
        Mutation::MixedCurrency(which) => {
            let o = Money::from_minor(1_000, other_currency(c));
            match which {
                0 => {
                    set(v, "benefit", json!({"kind": "instant", "amount": o}));
                    TemplateSpec {
                        benefit: Benefit::instant(o).unwrap(),
                        ..spec.clone()
                    }
                    .build()
                    .unwrap_err()
                    .to_string()
                }
                1 => {
                    let t = [
                        Tier {
                            spend: money(10_000),
                            save: money(500),
                        },
                        Tier {
                            spend: Money::from_minor(20_000, other_currency(c)),
                            save: o,
                        },
                    ];
                    set(v, "benefit", json!({"kind": "threshold", "tiers": t}));
                    Benefit::tiered(t.to_vec()).unwrap_err().to_string()
                }
                2 => {
                    set(v, "conditions", json!({"min_subtotal": o}));
                    let conditions = Conditions::try_from(ConditionsSpec {
                        min_subtotal: Some(o),
                        ..Default::default()
                    })
                    .unwrap();
                    TemplateSpec {
                        conditions,
                        ..spec.clone()
                    }
                    .build()
                    .unwrap_err()
                    .to_string()
                }
                _ => {
                    set(
                        v,
                        "benefit",
                        json!({"kind": "percent", "percent": "12.5", "max_saving": o}),
                    );
                    let benefit = Benefit::percent(Percent::new(dec("12.5")).unwrap(), Some(o));
                    TemplateSpec {
                        benefit: benefit.unwrap(),
                        ..spec.clone()
                    }
                    .build()
                    .unwrap_err()
                    .to_string()
                }
            }
        }
        Mutation::EmptyList(which) => match which {
            0 => {
                set(v, "scope", json!({"shops": []}));
                scope_err(ScopeSpec {
                    shops: Some(BTreeSet::new()),
                    ..Default::default()
                })
            }
            1 => {
                set(v, "scope", json!({"skus": []}));
                scope_err(ScopeSpec {
                    skus: Some(BTreeSet::new()),
                    ..Default::default()
                })
            }
            2 => {
                set(v, "scope", json!({"categories": []}));
                scope_err(ScopeSpec {
                    categories: Some(BTreeSet::new()),
                    ..Default::default()
                })
            }
            3 => {
                set(v, "conditions", json!({"channels": []}));
                conditions_err(ConditionsSpec {
                    channels: Some(BTreeSet::new()),
                    ..Default::default()
                })
            }
            4 => {
                set(
                    v,
                    "conditions",
                    json!({"audience": {"membership_levels": []}}),
                );
                conditions_err(ConditionsSpec {
                    audience: AudienceSpec {
                        membership_levels: Some(BTreeSet::new()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
            }
            5 => {
                set(v, "conditions", json!({"audience": {"segments": []}}));
                conditions_err(ConditionsSpec {
                    audience: AudienceSpec {
                        segments: Some(BTreeSet::new()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
            }
            _ => {
                set(v, "conditions", json!({"audience": {"users": []}}));
                conditions_err(ConditionsSpec {
                    audience: AudienceSpec {
                        users: Some(BTreeSet::new()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
            }
        },
        Mutation::IncludedAndExcluded(is_sku, id) => {
            if *is_sku {
                set(v, "scope", json!({"skus": [id], "exclude_skus": [id]}));
                scope_err(ScopeSpec {
                    skus: Some([sku(id.clone())].into()),
                    exclude_skus: [sku(id.clone())].into(),
                    ..Default::default()
                })
            } else {
                set(
                    v,
                    "scope",
                    json!({"categories": [id], "exclude_categories": [id]}),
                );
                scope_err(ScopeSpec {
                    categories: Some([category(id.clone())].into()),
                    exclude_categories: [category(id.clone())].into(),
                    ..Default::default()
                })
            }
        }
        Mutation::EmptyName(name) => {
            set(v, "name", json!(name));
            TemplateSpec {
                name: name.clone(),
                ..spec.clone()
            }
            .build()
            .unwrap_err()
            .to_string()
        }
        Mutation::TooLong(which) => {
            let (key, len) = [("name", 200), ("description", 2_000), ("terms", 10_000)][*which];
            let text = "券".repeat(len + 1);
            set(v, key, json!(text));
            let mut s = spec.clone();
            match which {
                0 => s.name = text,
                1 => s.description = text,
                _ => s.terms = text,
            }
            s.build().unwrap_err().to_string()
        }
        Mutation::BadCurrency(code) => {
            set(v, "currency", json!(code));
            code.parse::<Currency>().unwrap_err().to_string()
        }
        Mutation::TooPrecise(minor, digit) => {
            let exp = u32::from(c.exponent());
            let amount = Decimal::new(minor * 10 + digit, exp + 1);
            set(
                v,
                "benefit",
                json!({"kind": "instant", "amount": {"amount": amount.to_string(), "currency": c}}),
            );
            Money::new(amount, c).unwrap_err().to_string()
        }
        Mutation::BadOffset(offset) => {
            set(v, "conditions", json!({"schedule": {"utc_offset": offset}}));
            conditions_err(ConditionsSpec {
                schedule: Some(ScheduleSpec {
                    utc_offset: offset.clone(),
                    days: vec![],
                    windows: vec![],
                }),
                ..Default::default()
            })
        }
        Mutation::EmptyWindow(secs) => {
            let w = TimeWindow {
                start: time_of_day(*secs),
                end: time_of_day(*secs),
            };
            set(
                v,
                "conditions",
                json!({"schedule": {"utc_offset": "+08:00", "windows": [w]}}),
            );
            conditions_err(ConditionsSpec {
                schedule: Some(ScheduleSpec {
                    utc_offset: "+08:00".into(),
                    days: vec![],
                    windows: vec![w],
                }),
                ..Default::default()
            })
        }
        Mutation::BadPromoCode(code) => {
            set(
                v,
                "distribution",
                json!({"kind": "promo_code", "code": code}),
            );
            Distribution::promo_code(code, None, None)
                .unwrap_err()
                .to_string()
        }
        Mutation::UnknownField(which, name) => {
            let key = format!("x_{name}");
            let extra = |mut o: Value| {
                set(&mut o, &key, json!(1));
                o
            };
            let m = money_json(money(1_000));
            match which {
                0 => set(v, &key, json!(1)),
                1..=9 => {
                    let at = [
                        "/benefit",
                        "/scope",
                        "/conditions",
                        "/conditions/audience",
                        "/validity",
                        "/limits",
                        "/stacking",
                        "/distribution",
                        "/refund",
                    ][which - 1];
                    set(v.pointer_mut(at).unwrap(), &key, json!(1));
                }
                10 => set(v, "benefit", json!({"kind": "instant", "amount": extra(m)})),
                11 => set(
                    v,
                    "benefit",
                    json!({"kind": "threshold", "tiers": [extra(json!({"spend": money_json(money(2_000)), "save": m}))]}),
                ),
                12 => set(
                    v,
                    "conditions",
                    json!({"schedule": extra(json!({"utc_offset": "+08:00"}))}),
                ),
                _ => set(
                    v,
                    "conditions",
                    json!({"schedule": {"utc_offset": "+08:00", "windows": [extra(json!({"start": "11:00:00", "end": "14:00:00"}))]}}),
                ),
            }
            format!("unknown field `{key}`")
        }
        Mutation::BadId(id) => {
            set(v, "id", json!(id));
            TemplateId::new(id).unwrap_err().to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary JSON, for "never panics"
// ---------------------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "terms",
    "currency",
    "benefit",
    "kind",
    "amount",
    "tiers",
    "spend",
    "save",
    "every",
    "max_saving",
    "percent",
    "cap",
    "buy",
    "get",
    "max_free_units",
    "quantity",
    "price",
    "max_bundles",
    "scope",
    "shops",
    "skus",
    "categories",
    "exclude_skus",
    "exclude_categories",
    "sale_items",
    "conditions",
    "min_subtotal",
    "min_quantity",
    "audience",
    "customer",
    "membership_levels",
    "segments",
    "users",
    "channels",
    "schedule",
    "utc_offset",
    "days",
    "windows",
    "start",
    "end",
    "validity",
    "from",
    "until",
    "hours",
    "not_after",
    "limits",
    "total_stock",
    "per_user_claims",
    "per_user_uses",
    "per_order",
    "stacking",
    "group",
    "exclusive",
    "with_promotions",
    "priority",
    "distribution",
    "code",
    "max_redemptions",
    "per_user",
    "refund",
    "merchant_refund_returns",
    "buyer_refund_returns",
];

const WORDS: &[&str] = &[
    "CNY",
    "JPY",
    "KWD",
    "XTS:2",
    "instant",
    "threshold",
    "every_threshold",
    "percent",
    "shipping",
    "buy_get",
    "fixed_price",
    "fixed",
    "relative",
    "private",
    "promo_code",
    "automatic",
    "new",
    "returning",
    "Mon",
    "Sun",
    "11:00",
    "23:59:60",
    "+08:00",
    "-14:00",
    "2026-11-11T00:00:00+08:00",
    "12.50",
    "0",
    "-1",
    "100",
    "100.01",
    "1e3",
    "79228162514264337593543950335",
    "0.000000000000000000000000001",
    "SAVE10",
    "platform",
];

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        prop::sample::select(WORDS).prop_map(|s| s.to_owned()),
        "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    4 => prop::sample::select(KEYS).prop_map(|s| s.to_owned()),
                    1 => "[a-z_]{1,6}",
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in a tree, the root included.
fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                pointers(
                    x,
                    format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

/// Parses any text; when it is a template, it must round-trip like any other.
fn parse_and_check(text: &str) -> Result<(), TestCaseError> {
    if let Ok(t) = serde_json::from_str::<Template>(text) {
        let again = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<Template>(&again).unwrap(), t);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn valid_templates_round_trip_through_json(spec in template_spec()) {
        let template = spec.clone().build().unwrap();
        let text = serde_json::to_string(&template).unwrap();
        let back: Template = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &template);
        prop_assert_eq!(back.spec(), &spec);
        // The text is stable: writing the read template gives the same text.
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text.clone());
        // And a `TemplateSpec` reads the same JSON to the same data.
        prop_assert_eq!(serde_json::from_str::<TemplateSpec>(&text).unwrap(), spec);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_amounts_readable(&value)?;
        if let Some(p) = value["benefit"].get("percent") {
            prop_assert!(p.is_string(), "percent is a decimal string: {}", p);
        }
    }

    #[test]
    fn invalid_json_never_builds_a_template(spec in template_spec(), m in mutation()) {
        let mut value = serde_json::to_value(spec.clone().build().unwrap()).unwrap();
        let expected = apply(&m, &spec, &mut value);
        let text = value.to_string();
        match serde_json::from_str::<Template>(&text) {
            Ok(t) => prop_assert!(false, "{:?} built {:?} from {}", m, t, text),
            Err(e) => prop_assert!(
                e.to_string().contains(&expected),
                "{:?}: JSON error {:?} does not contain the constructor's {:?}",
                m, e.to_string(), expected
            ),
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        parse_and_check(&text)?;
    }

    #[test]
    fn arbitrary_json_trees_never_panic(value in arbitrary_json()) {
        parse_and_check(&value.to_string())?;
    }

    #[test]
    fn template_json_with_any_part_replaced_never_panics(
        spec in template_spec(),
        part in any::<prop::sample::Index>(),
        replacement in arbitrary_json(),
    ) {
        let mut value = serde_json::to_value(spec.build().unwrap()).unwrap();
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        let at = part.get(&all);
        *value.pointer_mut(at).unwrap() = replacement;
        parse_and_check(&value.to_string())?;
    }
}

/// Every kind of mutation, each sub-case once, on a fixed template of each currency: the sweep
/// the property above samples from.
#[test]
fn every_kind_of_invalid_json_is_refused_like_its_constructor() {
    let d = Decimal::new;
    let mut all = vec![
        Mutation::BadPercent(Decimal::ZERO),
        Mutation::BadPercent(d(-5, 0)),
        Mutation::BadPercent(d(10_001, 2)),
        Mutation::BadPercent(d(1_234_567, 5)),
        Mutation::TiersNotIncreasing(10_000, 0),
        Mutation::TiersNotIncreasing(10_000, 5_000),
        Mutation::TierSavingDecreases(1),
        Mutation::SavingNotBelowThreshold(true, 10_000, 0),
        Mutation::SavingNotBelowThreshold(false, 10_000, 1),
        Mutation::WindowEndsBeforeStart(1_794_326_400, 0),
        Mutation::WindowEndsBeforeStart(1_794_326_400, 1),
        Mutation::ZeroSpan(true),
        Mutation::ZeroSpan(false),
        Mutation::IncludedAndExcluded(true, "tea-250g".into()),
        Mutation::IncludedAndExcluded(false, "茶叶".into()),
        Mutation::EmptyName(String::new()),
        Mutation::EmptyName(" \u{3000}".into()),
        Mutation::BadCurrency("cny".into()),
        Mutation::BadCurrency("XXQ".into()),
        Mutation::BadCurrency("XTS:9".into()),
        Mutation::TooPrecise(123, 4),
        Mutation::BadOffset("+8:00".into()),
        Mutation::BadOffset("++8:00".into()),
        Mutation::BadOffset("+14:30".into()),
        Mutation::EmptyWindow(43_200),
        Mutation::BadPromoCode("ab".into()),
        Mutation::BadPromoCode("双十一".into()),
        Mutation::BadId(String::new()),
    ];
    all.extend((0..7).map(|w| Mutation::NotPositive(w, 0)));
    all.extend((0..7).map(|w| Mutation::NotPositive(w, -1)));
    all.extend((0..6).map(Mutation::ZeroLimit));
    all.extend((0..5).map(Mutation::ZeroCount));
    all.extend((0..4).map(Mutation::MixedCurrency));
    all.extend((0..7).map(Mutation::EmptyList));
    all.extend((0..3).map(Mutation::TooLong));
    all.extend((0..14).map(|w| Mutation::UnknownField(w, "extra".into())));
    let mut failures = Vec::new();
    for currency in [CNY, Currency::JPY, Currency::KWD] {
        let spec = TemplateSpec {
            currency,
            benefit: Benefit::instant(Money::from_minor(500, currency)).unwrap(),
            ..base_spec()
        };
        for m in &all {
            let mut value = serde_json::to_value(spec.clone().build().unwrap()).unwrap();
            let expected = apply(m, &spec, &mut value);
            match serde_json::from_value::<Template>(value) {
                Ok(_) => failures.push(format!("{currency} {m:?}: accepted")),
                Err(e) if !e.to_string().contains(&expected) => {
                    failures.push(format!("{currency} {m:?}: {e} lacks {expected:?}"))
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Constructor-level invalid cases, as a table
// ---------------------------------------------------------------------------------------------

#[test]
fn constructors_refuse_invalid_rules_naming_variant_and_field() {
    let t0 = at(1_794_326_400); // 2026-11-11T00:00:00Z
    let p15 = Percent::new(Decimal::from(15)).unwrap();
    let set1 = |s: &str| -> Option<BTreeSet<Sku>> { Some([Sku::new(s).unwrap()].into()) };
    let cat1 =
        |s: &str| -> Option<BTreeSet<CategoryId>> { Some([CategoryId::new(s).unwrap()].into()) };
    let empty_sched = |offset: &str, windows: Vec<TimeWindow>| ConditionsSpec {
        schedule: Some(ScheduleSpec {
            utc_offset: offset.into(),
            days: vec![],
            windows,
        }),
        ..Default::default()
    };
    let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
    let unit = |r: Result<Benefit, RuleError>| r.map(|_| ());
    let cases: Vec<(&str, Result<(), RuleError>, &str, &str)> = vec![
        (
            "percent 0",
            Percent::new(Decimal::ZERO).map(|_| ()),
            "PercentOutOfRange",
            "percent",
        ),
        (
            "percent -5",
            Percent::new(dec("-5")).map(|_| ()),
            "PercentOutOfRange",
            "percent",
        ),
        (
            "percent 100.01",
            Percent::new(dec("100.01")).map(|_| ()),
            "PercentOutOfRange",
            "percent",
        ),
        (
            "percent 12.34567",
            Percent::new(dec("12.34567")).map(|_| ()),
            "Invalid",
            "percent",
        ),
        (
            "instant 0",
            unit(Benefit::instant(cny(0))),
            "NotPositive",
            "benefit.amount",
        ),
        (
            "instant -1",
            unit(Benefit::instant(cny(-100))),
            "NotPositive",
            "benefit.amount",
        ),
        (
            "no tiers",
            unit(Benefit::tiered(vec![])),
            "Empty",
            "benefit.tiers",
        ),
        (
            "tier spend 0",
            unit(Benefit::threshold(cny(0), cny(0))),
            "NotPositive",
            "benefit.tiers.spend",
        ),
        (
            "tier save 0",
            unit(Benefit::threshold(cny(100), cny(0))),
            "NotPositive",
            "benefit.tiers.save",
        ),
        (
            "spend 100 save 100",
            unit(Benefit::threshold(cny(10_000), cny(10_000))),
            "SavingNotBelowThreshold",
            "benefit.tiers",
        ),
        (
            "spend 100 save 120",
            unit(Benefit::threshold(cny(10_000), cny(12_000))),
            "SavingNotBelowThreshold",
            "benefit.tiers",
        ),
        (
            "equal tier spends",
            unit(Benefit::tiered(vec![
                Tier {
                    spend: cny(10_000),
                    save: cny(1_000),
                },
                Tier {
                    spend: cny(10_000),
                    save: cny(2_000),
                },
            ])),
            "TiersNotIncreasing",
            "benefit.tiers",
        ),
        (
            "decreasing tier spends",
            unit(Benefit::tiered(vec![
                Tier {
                    spend: cny(20_000),
                    save: cny(1_000),
                },
                Tier {
                    spend: cny(10_000),
                    save: cny(2_000),
                },
            ])),
            "TiersNotIncreasing",
            "benefit.tiers",
        ),
        (
            "higher tier saves less",
            unit(Benefit::tiered(vec![
                Tier {
                    spend: cny(10_000),
                    save: cny(2_000),
                },
                Tier {
                    spend: cny(20_000),
                    save: cny(1_000),
                },
            ])),
            "TierSavingDecreases",
            "benefit.tiers",
        ),
        (
            "tiers in two currencies",
            unit(Benefit::tiered(vec![
                Tier {
                    spend: cny(10_000),
                    save: cny(1_000),
                },
                Tier {
                    spend: usd(20_000),
                    save: usd(2_000),
                },
            ])),
            "CurrencyMismatch",
            "benefit.tiers.spend",
        ),
        (
            "every 0",
            unit(Benefit::every(cny(0), cny(100), None)),
            "NotPositive",
            "benefit.every",
        ),
        (
            "every save 0",
            unit(Benefit::every(cny(10_000), cny(0), None)),
            "NotPositive",
            "benefit.save",
        ),
        (
            "every save = step",
            unit(Benefit::every(cny(10_000), cny(10_000), None)),
            "SavingNotBelowThreshold",
            "benefit.save",
        ),
        (
            "every cap 0",
            unit(Benefit::every(cny(10_000), cny(1_000), Some(cny(0)))),
            "NotPositive",
            "benefit.max_saving",
        ),
        (
            "every save in USD",
            unit(Benefit::every(cny(10_000), usd(1_000), None)),
            "CurrencyMismatch",
            "benefit.save",
        ),
        (
            "percent cap 0",
            unit(Benefit::percent(p15, Some(cny(0)))),
            "NotPositive",
            "benefit.max_saving",
        ),
        (
            "shipping cap 0",
            unit(Benefit::shipping(Some(cny(0)))),
            "NotPositive",
            "benefit.cap",
        ),
        (
            "shipping cap -8",
            unit(Benefit::shipping(Some(cny(-800)))),
            "NotPositive",
            "benefit.cap",
        ),
        (
            "buy 0",
            unit(Benefit::buy_get(0, 1, None)),
            "Zero",
            "benefit.buy",
        ),
        (
            "get 0",
            unit(Benefit::buy_get(2, 0, None)),
            "Zero",
            "benefit.get",
        ),
        (
            "free units cap 0",
            unit(Benefit::buy_get(2, 1, Some(0))),
            "Zero",
            "benefit.max_free_units",
        ),
        (
            "bundle of 0",
            unit(Benefit::fixed_price(0, cny(9_900), None)),
            "Zero",
            "benefit.quantity",
        ),
        (
            "bundle price 0",
            unit(Benefit::fixed_price(3, cny(0), None)),
            "NotPositive",
            "benefit.price",
        ),
        (
            "bundles cap 0",
            unit(Benefit::fixed_price(3, cny(9_900), Some(0))),
            "Zero",
            "benefit.max_bundles",
        ),
        (
            "empty shops",
            Scope::try_from(ScopeSpec {
                shops: Some(BTreeSet::new()),
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "scope.shops",
        ),
        (
            "empty skus",
            Scope::try_from(ScopeSpec {
                skus: Some(BTreeSet::new()),
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "scope.skus",
        ),
        (
            "empty categories",
            Scope::try_from(ScopeSpec {
                categories: Some(BTreeSet::new()),
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "scope.categories",
        ),
        (
            "sku included and excluded",
            Scope::try_from(ScopeSpec {
                skus: set1("tea-250g"),
                exclude_skus: set1("tea-250g").unwrap(),
                ..Default::default()
            })
            .map(|_| ()),
            "Conflict",
            "scope.exclude_skus",
        ),
        (
            "category included and excluded",
            Scope::try_from(ScopeSpec {
                categories: cat1("tea"),
                exclude_categories: cat1("tea").unwrap(),
                ..Default::default()
            })
            .map(|_| ()),
            "Conflict",
            "scope.exclude_categories",
        ),
        (
            "min subtotal 0",
            Conditions::try_from(ConditionsSpec {
                min_subtotal: Some(cny(0)),
                ..Default::default()
            })
            .map(|_| ()),
            "NotPositive",
            "conditions.min_subtotal",
        ),
        (
            "min quantity 0",
            Conditions::try_from(ConditionsSpec {
                min_quantity: Some(0),
                ..Default::default()
            })
            .map(|_| ()),
            "Zero",
            "conditions.min_quantity",
        ),
        (
            "empty channels",
            Conditions::try_from(ConditionsSpec {
                channels: Some(BTreeSet::new()),
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "conditions.channels",
        ),
        (
            "empty membership levels",
            Conditions::try_from(ConditionsSpec {
                audience: AudienceSpec {
                    membership_levels: Some(BTreeSet::new()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "conditions.audience.membership_levels",
        ),
        (
            "empty segments",
            Conditions::try_from(ConditionsSpec {
                audience: AudienceSpec {
                    segments: Some(BTreeSet::new()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "conditions.audience.segments",
        ),
        (
            "empty users",
            Conditions::try_from(ConditionsSpec {
                audience: AudienceSpec {
                    users: Some(BTreeSet::new()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .map(|_| ()),
            "Empty",
            "conditions.audience.users",
        ),
        (
            "offset UTC+8",
            Conditions::try_from(empty_sched("UTC+8", vec![])).map(|_| ()),
            "Invalid",
            "conditions.schedule.utc_offset",
        ),
        (
            "offset +8:00",
            Conditions::try_from(empty_sched("+8:00", vec![])).map(|_| ()),
            "Invalid",
            "conditions.schedule.utc_offset",
        ),
        (
            "offset ++8:00",
            Conditions::try_from(empty_sched("++8:00", vec![])).map(|_| ()),
            "Invalid",
            "conditions.schedule.utc_offset",
        ),
        (
            "offset +14:30",
            Conditions::try_from(empty_sched("+14:30", vec![])).map(|_| ()),
            "Invalid",
            "conditions.schedule.utc_offset",
        ),
        (
            "window 12:00-12:00",
            Conditions::try_from(empty_sched(
                "+08:00",
                vec![TimeWindow {
                    start: noon,
                    end: noon,
                }],
            ))
            .map(|_| ()),
            "Invalid",
            "conditions.schedule.windows",
        ),
        (
            "window ends at start",
            Validity::fixed(t0, t0).map(|_| ()),
            "WindowEndsBeforeStart",
            "validity",
        ),
        (
            "window ends before start",
            Validity::fixed(t0, t0 - chrono::Duration::seconds(1)).map(|_| ()),
            "WindowEndsBeforeStart",
            "validity",
        ),
        (
            "0 days",
            Validity::relative(Span::Days(0), None).map(|_| ()),
            "Zero",
            "validity.days",
        ),
        (
            "0 hours",
            Validity::relative(Span::Hours(0), Some(t0)).map(|_| ()),
            "Zero",
            "validity.hours",
        ),
        (
            "stock 0",
            Limits::try_from(LimitsSpec {
                total_stock: Some(0),
                ..Default::default()
            })
            .map(|_| ()),
            "Zero",
            "limits.total_stock",
        ),
        (
            "claims per user 0",
            Limits::try_from(LimitsSpec {
                per_user_claims: Some(0),
                ..Default::default()
            })
            .map(|_| ()),
            "Zero",
            "limits.per_user_claims",
        ),
        (
            "uses per user 0",
            Limits::try_from(LimitsSpec {
                per_user_uses: Some(0),
                ..Default::default()
            })
            .map(|_| ()),
            "Zero",
            "limits.per_user_uses",
        ),
        (
            "per order 0",
            Limits::try_from(LimitsSpec {
                per_order: Some(0),
                ..Default::default()
            })
            .map(|_| ()),
            "Zero",
            "limits.per_order",
        ),
        (
            "code too short",
            Distribution::promo_code("ab", None, None).map(|_| ()),
            "Invalid",
            "distribution.code",
        ),
        (
            "code too long",
            Distribution::promo_code(&"A".repeat(33), None, None).map(|_| ()),
            "Invalid",
            "distribution.code",
        ),
        (
            "code with a space",
            Distribution::promo_code("SAVE 10", None, None).map(|_| ()),
            "Invalid",
            "distribution.code",
        ),
        (
            "code in Chinese",
            Distribution::promo_code("双十一", None, None).map(|_| ()),
            "Invalid",
            "distribution.code",
        ),
        (
            "code redemptions 0",
            Distribution::promo_code("SAVE10", Some(0), None).map(|_| ()),
            "Zero",
            "distribution.max_redemptions",
        ),
        (
            "code per user 0",
            Distribution::promo_code("SAVE10", None, Some(0)).map(|_| ()),
            "Zero",
            "distribution.per_user",
        ),
        (
            "empty name",
            TemplateSpec {
                name: String::new(),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "Empty",
            "name",
        ),
        (
            "blank name",
            TemplateSpec {
                name: " \u{3000}\t".into(),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "Empty",
            "name",
        ),
        (
            "name of 201",
            TemplateSpec {
                name: "券".repeat(201),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "TooLong",
            "name",
        ),
        (
            "description of 2001",
            base_spec()
                .description("a".repeat(2_001))
                .build()
                .map(|_| ()),
            "TooLong",
            "description",
        ),
        (
            "terms of 10001",
            base_spec().terms("a".repeat(10_001)).build().map(|_| ()),
            "TooLong",
            "terms",
        ),
        (
            "USD benefit in a CNY template",
            TemplateSpec {
                benefit: Benefit::instant(usd(500)).unwrap(),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "CurrencyMismatch",
            "benefit.amount",
        ),
        (
            "USD tiers in a CNY template",
            TemplateSpec {
                benefit: Benefit::threshold(usd(10_000), usd(500)).unwrap(),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "CurrencyMismatch",
            "benefit.tiers.spend",
        ),
        (
            "USD cap in a CNY template",
            TemplateSpec {
                benefit: Benefit::percent(p15, Some(usd(500))).unwrap(),
                ..base_spec()
            }
            .build()
            .map(|_| ()),
            "CurrencyMismatch",
            "benefit.max_saving",
        ),
        (
            "USD minimum in a CNY template",
            base_spec()
                .conditions(
                    Conditions::try_from(ConditionsSpec {
                        min_subtotal: Some(usd(9_900)),
                        ..Default::default()
                    })
                    .unwrap(),
                )
                .build()
                .map(|_| ()),
            "CurrencyMismatch",
            "conditions.min_subtotal",
        ),
    ];
    let mut failures = Vec::new();
    for (case, result, variant, field) in cases {
        match result {
            Ok(()) => failures.push(format!("{case}: accepted")),
            Err(e) => {
                if variant_and_field(&e) != (variant, field) {
                    failures.push(format!("{case}: got {e:?}, want {variant} at {field}"));
                }
                if !e.to_string().starts_with(field) {
                    failures.push(format!("{case}: message {e} does not start with {field}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tier_errors_say_which_tier() {
    let e = Benefit::tiered(vec![
        Tier {
            spend: cny(10_000),
            save: cny(1_000),
        },
        Tier {
            spend: cny(20_000),
            save: cny(2_000),
        },
        Tier {
            spend: cny(15_000),
            save: cny(3_000),
        },
    ])
    .unwrap_err();
    assert_eq!(
        e,
        RuleError::TiersNotIncreasing {
            field: "benefit.tiers",
            index: 2,
            threshold: cny(15_000)
        }
    );
    assert_eq!(
        e.to_string(),
        "benefit.tiers: tier 2 threshold 150.00 CNY is not above the previous tier's"
    );
}

#[test]
fn boundary_values_are_accepted() {
    assert!(Percent::new(Decimal::ONE_HUNDRED).is_ok());
    assert!(Percent::new(dec("0.0001")).is_ok());
    assert!(Percent::new(dec("12.50000000")).is_ok());
    assert!(Benefit::threshold(cny(2), cny(1)).is_ok());
    // Equal savings in increasing tiers are allowed.
    assert!(
        Benefit::tiered(vec![
            Tier {
                spend: cny(10_000),
                save: cny(1_000)
            },
            Tier {
                spend: cny(20_000),
                save: cny(1_000)
            },
        ])
        .is_ok()
    );
    assert!(Validity::fixed(at(0), at(1)).is_ok());
    assert!(
        TemplateSpec {
            name: "券".repeat(200),
            ..base_spec()
        }
        .build()
        .is_ok()
    );
    for offset in ["+14:00", "-14:00", "+05:45", "-00:00"] {
        assert!(
            Conditions::try_from(ConditionsSpec {
                schedule: Some(ScheduleSpec {
                    utc_offset: offset.into(),
                    days: vec![],
                    windows: vec![]
                }),
                ..Default::default()
            })
            .is_ok(),
            "{offset}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// JSON shape
// ---------------------------------------------------------------------------------------------

#[test]
fn json_is_readable_with_amounts_as_decimal_strings() {
    let t = TemplateSpec::new(
        TemplateId::new("instant-12-50").unwrap(),
        "立减12.5元",
        CNY,
        Benefit::instant(cny(1_250)).unwrap(),
        Validity::relative(Span::Days(7), None).unwrap(),
    )
    .build()
    .unwrap();
    let v = serde_json::to_value(&t).unwrap();
    assert_eq!(
        v["benefit"],
        json!({"kind": "instant", "amount": {"amount": "12.50", "currency": "CNY"}})
    );
    assert_eq!(v["validity"], json!({"kind": "relative", "days": 7}));
    assert_eq!(v["distribution"], json!({"kind": "private"}));
    let p = TemplateSpec {
        benefit: Benefit::percent(Percent::new(dec("12.5")).unwrap(), Some(cny(3_000))).unwrap(),
        ..base_spec()
    }
    .build()
    .unwrap();
    assert_eq!(
        serde_json::to_value(&p).unwrap()["benefit"],
        json!({"kind": "percent", "percent": "12.5", "max_saving": {"amount": "30.00", "currency": "CNY"}})
    );
}

#[test]
fn json_accepts_minimal_templates_and_fills_defaults() {
    let t: Template = serde_json::from_str(
        r#"{"id": "t-1", "name": "满100减10", "currency": "CNY",
            "benefit": {"kind": "threshold", "tiers": [{"spend": {"amount": "100", "currency": "CNY"},
                                                        "save": {"amount": "10", "currency": "CNY"}}]},
            "validity": {"kind": "relative", "days": 7}}"#,
    )
    .unwrap();
    assert_eq!(t, base_spec().build().unwrap());
    assert!(t.scope().is_everything());
    assert_eq!(t.limits().per_order(), 1);
    assert_eq!(t.stacking(), &Stacking::platform());
    assert_eq!(t.distribution(), &Distribution::Private);
}

#[test]
fn unit_distributions_refuse_unknown_fields() {
    for kind in ["private", "automatic"] {
        let mut v = serde_json::to_value(base_spec().build().unwrap()).unwrap();
        set(
            &mut v,
            "distribution",
            json!({"kind": kind, "code": "SAVE10"}),
        );
        let e = serde_json::from_value::<Template>(v)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `code`"), "{kind}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The documented examples
// ---------------------------------------------------------------------------------------------

const HEADING: &str = "## Benefit kinds in JSON";

/// The ```json blocks under the heading, up to the next level-2 heading.
fn json_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        if let Some(b) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                blocks.push(block.take().unwrap());
            } else {
                b.push_str(line);
                b.push('\n');
            }
            continue;
        }
        if line.starts_with("## ") || line.starts_with("# ") {
            in_section = line.trim_end() == HEADING;
        } else if in_section && line.trim_start().starts_with("```json") {
            block = Some(String::new());
        }
    }
    assert!(block.is_none(), "an unclosed ```json block");
    blocks
}

#[test]
fn documented_json_examples_are_valid_templates_of_every_kind() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for file in ["README.md"] {
        let Ok(markdown) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        if !markdown.lines().any(|l| l.trim_end() == HEADING) {
            assert_ne!(file, "README.md", "README.md lost its section");
            continue;
        }
        seen += 1;
        let mut kinds = BTreeMap::<&str, usize>::new();
        let mut templates = Vec::new();
        for (i, block) in json_blocks(&markdown).iter().enumerate() {
            let t: Template = serde_json::from_str(block)
                .unwrap_or_else(|e| panic!("{file}: JSON block {}: {e}\n{block}", i + 1));
            let again = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Template>(&again).unwrap(), t);
            *kinds.entry(t.benefit().kind()).or_default() += 1;
            templates.push(t);
        }
        for kind in [
            "instant",
            "threshold",
            "every_threshold",
            "percent",
            "shipping",
            "buy_get",
            "fixed_price",
            "per_unit",
            "per_line",
            "apply_once",
            "tiered_percent",
            "quantity_tiers",
            "shipping_percent",
            "shipping_price",
            "buy_x_get_y",
            "items_and_shipping",
            "gift",
        ] {
            assert!(
                kinds.contains_key(kind),
                "{file}: no `{kind}` example in {kinds:?}"
            );
        }
        // The examples show every part of a template at least once.
        let any = |what: &str, f: &dyn Fn(&Template) -> bool| {
            assert!(templates.iter().any(f), "{file}: no example shows {what}");
        };
        any(
            "a two-tier threshold",
            &|t| matches!(t.benefit(), Benefit::Threshold { tiers, .. } if tiers.len() >= 2),
        );
        any("a capped every_threshold", &|t| {
            matches!(
                t.benefit(),
                Benefit::EveryThreshold {
                    max_saving: Some(_),
                    ..
                }
            )
        });
        any("a capped percent with a minimum subtotal", &|t| {
            matches!(
                t.benefit(),
                Benefit::Percent {
                    max_saving: Some(_),
                    ..
                }
            ) && t.conditions().min_subtotal().is_some()
        });
        any("free shipping", &|t| {
            matches!(t.benefit(), Benefit::Shipping { cap: None, .. })
        });
        any("capped shipping", &|t| {
            matches!(t.benefit(), Benefit::Shipping { cap: Some(_), .. })
        });
        any("categories with exclusions", &|t| {
            let s = t.scope().spec();
            s.categories.is_some()
                && !(s.exclude_skus.is_empty() && s.exclude_categories.is_empty())
        });
        any("new users only", &|t| {
            t.conditions().spec().audience.customer == Some(CustomerKind::New)
        });
        any("channels", &|t| t.conditions().spec().channels.is_some());
        any("a schedule with windows", &|t| {
            t.conditions()
                .schedule()
                .is_some_and(|s| !s.spec().windows.is_empty())
        });
        any("a fixed validity", &|t| {
            matches!(t.validity(), Validity::Fixed { .. })
        });
        any("a relative validity", &|t| {
            matches!(t.validity(), Validity::Relative { .. })
        });
        any("limits", &|t| t.limits() != &Limits::unlimited());
        any("a shop stacking group", &|t| {
            t.stacking().group.as_str().starts_with("shop:")
        });
        any("a promo code", &|t| {
            matches!(t.distribution(), Distribution::PromoCode { .. })
        });
        any("an automatic promotion", &|t| t.is_automatic());
        any("a requirement apart from the scope", &|t| {
            !t.conditions().requires().is_empty()
        });
        any("a maximum subtotal", &|t| {
            t.conditions().max_subtotal().is_some()
        });
        any(
            "a tiered percentage with a base tier at zero",
            &|t| matches!(t.benefit(), Benefit::TieredPercent { tiers, .. } if tiers[0].spend.is_zero()),
        );
    }
    assert!(seen >= 1, "no file has the `{HEADING}` section");
}
