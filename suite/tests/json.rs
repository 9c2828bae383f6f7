//! Reading JSON: every invalid input gets one exact, readable error that names the field path
//! and the line, and JSON money is read exactly or refused — never through a binary float.
//!
//! The cases are data: a valid template, the part to replace (a JSON pointer) and the raw text
//! put there, and the exact message expected.

use coupons::cart::{Cart, CartLine};
use coupons::id::{ShopId, Sku};
use coupons::money::{Currency, Money};
use coupons::rule::{Limits, Template, Validity};
use serde_json::Value;

/// A valid template touching every part whose JSON this suite pins down.
const BASE: &str = r#"{"id": "t-1", "name": "满100减10", "currency": "CNY",
    "benefit": {"kind": "instant", "amount": {"amount": "10", "currency": "CNY"}},
    "validity": {"kind": "relative", "days": 7},
    "limits": {"total_stock": 1000, "per_user_claims": 1},
    "distribution": {"kind": "promo_code", "code": "SAVE10"},
    "refund": {"buyer_refund_returns": false}}"#;

/// `BASE`, pretty-printed (keys sorted, one per line), with the value at `pointer` replaced by
/// the raw text `raw` — raw so that a number keeps the exact digits a client sent.
fn document(pointer: &str, raw: &str) -> String {
    let mut v: Value = serde_json::from_str(BASE).unwrap();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let slot = v.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    slot.insert(key.to_owned(), Value::String("@@replace@@".into()));
    serde_json::to_string_pretty(&v)
        .unwrap()
        .replace("\"@@replace@@\"", raw)
}

/// (what, pointer, raw replacement, exact error).
const TEMPLATE_CASES: &[(&str, &str, &str, &str)] = &[
    // limits
    (
        "negative stock",
        "/limits/total_stock",
        "-5",
        "limits.total_stock: expected a non-negative integer, got -5 at line 17 column 21",
    ),
    (
        "stock as text",
        "/limits/total_stock",
        r#""100""#,
        "limits.total_stock: expected a non-negative integer, got the text \"100\" at line 17 column 24",
    ),
    (
        "fractional limit",
        "/limits/per_order",
        "1.5",
        "limits.per_order: expected a non-negative integer, got the number 1.5 at line 16 column 20",
    ),
    (
        "limit beyond u32",
        "/limits/per_user_claims",
        "4294967296",
        "limits.per_user_claims: expected an integer of at most 4294967295, got 4294967296 at line 16 column 33",
    ),
    (
        "zero limit",
        "/limits/per_order",
        "0",
        "limits.per_order: must be at least 1 at line 16 column 18",
    ),
    (
        "null limit is unlimited",
        "/limits/per_user_uses",
        "null",
        "ok",
    ),
    (
        "unknown limit",
        "/limits/stock",
        "5",
        "limits: unknown field `stock`, expected one of `total_stock`, `per_user_claims`, `per_user_uses`, `per_order` at line 17 column 11",
    ),
    (
        "limits not an object",
        "/limits",
        "[1000]",
        "limits: expected an object of limits, got a list at line 15 column 13",
    ),
    // validity
    (
        "days and hours",
        "/validity/hours",
        "12",
        "validity: give the span in `days` or in `hours`, not both at line 25 column 15",
    ),
    (
        "fixed with days",
        "/validity",
        r#"{"kind": "fixed", "from": "2026-11-11T00:00:00+08:00", "until": "2026-11-12T00:00:00+08:00", "days": 1}"#,
        "validity: `days` belongs to a relative validity; a fixed one has `from` and `until` at line 23 column 117",
    ),
    (
        "relative with until",
        "/validity/until",
        r#""2026-11-12T00:00:00Z""#,
        "validity: `until` belongs to a fixed validity; a relative one has `days` or `hours`, and an optional `not_after` at line 27 column 3",
    ),
    (
        "no kind",
        "/validity",
        r#"{"days": 7}"#,
        "validity: missing field `kind` at line 23 column 25",
    ),
    (
        "unknown kind",
        "/validity/kind",
        r#""rolling""#,
        "validity.kind: expected `fixed` or `relative`, got the text \"rolling\" at line 25 column 21",
    ),
    (
        "no span",
        "/validity",
        r#"{"kind": "relative"}"#,
        "validity: a relative validity needs `days` or `hours` at line 23 column 34",
    ),
    (
        "zero days",
        "/validity/days",
        "0",
        "validity.days: must be at least 1 at line 24 column 13",
    ),
    (
        "negative days",
        "/validity/days",
        "-7",
        "validity.days: expected a non-negative integer, got -7 at line 24 column 14",
    ),
    (
        "not an instant",
        "/validity",
        r#"{"kind": "fixed", "from": "11/11/2026", "until": "2026-11-12T00:00:00Z"}"#,
        "validity.from: expected an RFC 3339 instant such as \"2026-11-11T00:00:00+08:00\", got \"11/11/2026\" (input contains invalid characters) at line 23 column 52",
    ),
    (
        "before 1970",
        "/validity",
        r#"{"kind": "fixed", "from": "1969-12-31T23:59:59Z", "until": "2026-11-12T00:00:00Z"}"#,
        "validity.from: 1969-12-31 23:59:59 UTC is outside the instants a record holds (1970-01-01 to 9999-12-31 UTC) at line 23 column 62",
    ),
    (
        "after 9999",
        "/validity",
        r#"{"kind": "fixed", "from": "2026-11-11T00:00:00Z", "until": "9999-12-31T23:30:00-01:00"}"#,
        "validity.until: +10000-01-01 00:30:00 UTC is outside the instants a record holds (1970-01-01 to 9999-12-31 UTC) at line 23 column 100",
    ),
    (
        "window ends first",
        "/validity",
        r#"{"kind": "fixed", "from": "2026-11-12T00:00:00Z", "until": "2026-11-11T00:00:00Z"}"#,
        "validity: the window ends (2026-11-11 00:00:00 UTC) at or before it starts (2026-11-12 00:00:00 UTC) at line 23 column 96",
    ),
    (
        "not_after after 9999",
        "/validity/not_after",
        r#""9999-12-31T23:30:00-01:00""#,
        "validity.not_after: +10000-01-01 00:30:00 UTC is outside the instants a record holds (1970-01-01 to 9999-12-31 UTC) at line 26 column 44",
    ),
    (
        "validity as text",
        "/validity",
        r#""7 days""#,
        "validity: expected a validity object such as {\"kind\": \"relative\", \"days\": 7}, got the text \"7 days\" at line 23 column 22",
    ),
    // distribution
    (
        "private with a code",
        "/distribution",
        r#"{"kind": "private", "code": "SAVE10"}"#,
        "distribution: unknown field `code`: a private distribution has only `kind` at line 10 column 55",
    ),
    (
        "promo code without code",
        "/distribution",
        r#"{"kind": "promo_code"}"#,
        "distribution: missing field `code` at line 10 column 40",
    ),
    (
        "short promo code",
        "/distribution/code",
        r#""ab""#,
        "distribution.code: invalid value \"ab\": a promo code has 3 to 32 characters at line 11 column 16",
    ),
    (
        "promo code as a number",
        "/distribution/code",
        "10",
        "distribution.code: expected the promo code as text, got 10 at line 11 column 14",
    ),
    (
        "negative redemptions",
        "/distribution/max_redemptions",
        "-1",
        "distribution.max_redemptions: expected a non-negative integer, got -1 at line 13 column 25",
    ),
    (
        "zero per user",
        "/distribution/per_user",
        "0",
        "distribution.per_user: must be at least 1 at line 13 column 17",
    ),
    (
        "unknown distribution",
        "/distribution/kind",
        r#""lottery""#,
        "distribution.kind: expected `private`, `promo_code` or `automatic`, got the text \"lottery\" at line 12 column 21",
    ),
    // refund
    (
        "refund flag as text",
        "/refund/buyer_refund_returns",
        r#""yes""#,
        "refund.buyer_refund_returns: expected true or false, got the text \"yes\" at line 21 column 33",
    ),
    (
        "unknown refund field",
        "/refund/buyer_returns",
        "true",
        "refund: unknown field `buyer_returns`, expected `merchant_refund_returns` or `buyer_refund_returns` at line 22 column 19",
    ),
    // benefit
    (
        "benefit amount float",
        "/benefit/amount",
        r#"{"amount": 10.5, "currency": "CNY"}"#,
        "benefit.amount: the number arrived as the binary float 10.5, which may have lost digits; send the amount as a decimal string such as \"12.50\" at line 5 column 3",
    ),
    (
        "benefit amount fen fraction",
        "/benefit/amount",
        r#"{"amount": "10.005", "currency": "CNY"}"#,
        "benefit.amount: 10.005 has more decimal places than CNY allows (2) at line 5 column 3",
    ),
    (
        "benefit amount as number",
        "/benefit/amount",
        "10",
        "benefit.amount: expected an amount as an object {\"amount\": \"12.50\", \"currency\": \"CNY\"}, got 10 at line 5 column 3",
    ),
    (
        "benefit amount negative",
        "/benefit/amount",
        r#"{"amount": "-1", "currency": "CNY"}"#,
        "benefit.amount: -1.00 CNY must be above zero at line 5 column 3",
    ),
    (
        "benefit unknown kind",
        "/benefit/kind",
        r#""lottery""#,
        "benefit.kind: unknown variant `lottery`, expected one of `instant`, `threshold`, `every_threshold`, `percent`, `shipping`, `buy_get`, `fixed_price`, `per_unit`, `per_line`, `apply_once`, `tiered_percent`, `quantity_tiers`, `shipping_percent`, `shipping_price`, `items_and_shipping`, `buy_x_get_y`, `gift` at line 8 column 3",
    ),
    (
        "benefit unknown field",
        "/benefit/amout",
        "1",
        "benefit: unknown field `amout`, expected `amount` at line 9 column 3",
    ),
    (
        "benefit no kind",
        "/benefit",
        r#"{"amount": {"amount": "1", "currency": "CNY"}}"#,
        "benefit: missing field `kind` at line 2 column 59",
    ),
    (
        "tier save text",
        "/benefit",
        r#"{"kind": "threshold", "tiers": [{"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "10", "currency": "CNY"}}, {"spend": {"amount": "200", "currency": "CNY"}, "save": "25"}]}"#,
        "benefit.tiers[1].save: expected an amount as an object {\"amount\": \"12.50\", \"currency\": \"CNY\"}, got the text \"25\" at line 2 column 202",
    ),
    (
        "tier unknown field",
        "/benefit",
        r#"{"kind": "threshold", "tiers": [{"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "10", "currency": "CNY"}, "min": 1}]}"#,
        "benefit.tiers[0]: unknown field `min`, expected `spend` or `save` at line 2 column 149",
    ),
    (
        "tiers not increasing",
        "/benefit",
        r#"{"kind": "threshold", "tiers": [{"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "10", "currency": "CNY"}}, {"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "20", "currency": "CNY"}}]}"#,
        "benefit.tiers: tier 1 threshold 100.00 CNY is not above the previous tier's at line 2 column 233",
    ),
    (
        "percent out of range",
        "/benefit",
        r#"{"kind": "percent", "percent": 120}"#,
        "benefit.percent: percentage 120 is outside (0, 100] at line 2 column 48",
    ),
    (
        "percent as float",
        "/benefit",
        r#"{"kind": "percent", "percent": 12.5}"#,
        "benefit.percent: the number arrived as the binary float 12.5, which may have lost digits; send the value as a decimal string such as \"12.50\" at line 2 column 49",
    ),
    (
        "percent as text",
        "/benefit",
        r#"{"kind": "percent", "percent": "12.5"}"#,
        "ok",
    ),
    (
        "negative buy",
        "/benefit",
        r#"{"kind": "buy_get", "buy": -2, "get": 1}"#,
        "benefit.buy: expected a non-negative integer, got -2 at line 2 column 53",
    ),
    (
        "zero get",
        "/benefit",
        r#"{"kind": "buy_get", "buy": 2, "get": 0}"#,
        "benefit.get: must be at least 1 at line 2 column 52",
    ),
    (
        "benefit in another currency",
        "/benefit/amount",
        r#"{"amount": "1", "currency": "USD"}"#,
        "benefit.amount: USD is not the template's currency CNY",
    ),
    // scope
    (
        "scope sku empty",
        "/scope",
        r#"{"skus": ["tea", ""]}"#,
        "scope.skus[1]: invalid sku \"\": it is empty at line 23 column 32",
    ),
    (
        "scope skus not a list",
        "/scope",
        r#"{"skus": "tea"}"#,
        "scope.skus: expected a list, got the text \"tea\" at line 23 column 26",
    ),
    (
        "scope unknown field",
        "/scope",
        r#"{"sku": ["tea"]}"#,
        "scope: unknown field `sku`, expected one of `shops`, `skus`, `categories`, `exclude_skus`, `exclude_categories`, `sale_items` at line 23 column 17",
    ),
    (
        "scope empty include",
        "/scope",
        r#"{"categories": []}"#,
        "scope.categories: must not be empty at line 23 column 29",
    ),
    (
        "scope sale items as text",
        "/scope",
        r#"{"sale_items": "no"}"#,
        "scope.sale_items: expected true or false, got the text \"no\" at line 23 column 31",
    ),
    (
        "scope conflict",
        "/scope",
        r#"{"skus": ["tea"], "exclude_skus": ["tea"]}"#,
        "scope.exclude_skus: sku tea is both included and excluded at line 23 column 53",
    ),
    // conditions
    (
        "min subtotal float",
        "/conditions",
        r#"{"min_subtotal": {"amount": 99.9, "currency": "CNY"}}"#,
        "conditions.min_subtotal: the number arrived as the binary float 99.9, which may have lost digits; send the amount as a decimal string such as \"12.50\" at line 9 column 48",
    ),
    (
        "min quantity negative",
        "/conditions",
        r#"{"min_quantity": -1}"#,
        "conditions.min_quantity: expected a non-negative integer, got -1 at line 9 column 36",
    ),
    (
        "conditions unknown field",
        "/conditions",
        r#"{"max_subtotal_x": 1}"#,
        "conditions: unknown field `max_subtotal_x`, expected one of `min_subtotal`, `min_quantity`, `audience`, `channels`, `max_subtotal`, `requires`, `schedule` at line 9 column 33",
    ),
    (
        "audience unknown field",
        "/conditions",
        r#"{"audience": {"customers": "new"}}"#,
        "conditions.audience: unknown field `customers`, expected one of `customer`, `membership_levels`, `segments`, `users` at line 9 column 41",
    ),
    (
        "audience unknown customer",
        "/conditions",
        r#"{"audience": {"customer": "vip"}}"#,
        "conditions.audience.customer: unknown variant `vip`, expected `new` or `returning` at line 9 column 49",
    ),
    (
        "audience bad segment",
        "/conditions",
        r#"{"audience": {"segments": ["ok", 5]}}"#,
        "conditions.audience.segments[1]: expected the segment id as text, got 5 at line 9 column 53",
    ),
    (
        "channel not text",
        "/conditions",
        r#"{"channels": [1]}"#,
        "conditions.channels[0]: expected the channel as text, got 1 at line 9 column 33",
    ),
    (
        "schedule bad offset",
        "/conditions",
        r#"{"schedule": {"utc_offset": "8"}}"#,
        "conditions.schedule.utc_offset: invalid value \"8\": an offset starts with + or -, e.g. +08:00 at line 9 column 49",
    ),
    (
        "schedule bad day",
        "/conditions",
        r#"{"schedule": {"utc_offset": "+08:00", "days": ["Mon", "Funday"]}}"#,
        "conditions.schedule.days[1]: short or long weekday names expected at line 9 column 81",
    ),
    (
        "schedule bad window",
        "/conditions",
        r#"{"schedule": {"utc_offset": "+08:00", "windows": [{"start": "25:00", "end": "02:00"}]}}"#,
        "conditions.schedule.windows[0]: input is out of range at line 9 column 85",
    ),
    (
        "schedule no offset",
        "/conditions",
        r#"{"schedule": {"days": ["Mon"]}}"#,
        "conditions.schedule: missing field `utc_offset` at line 9 column 47",
    ),
    // top level
    (
        "name not text",
        "/name",
        "5",
        "name: expected text, got 5 at line 19 column 11",
    ),
    (
        "unknown currency",
        "/currency",
        r#""XXQ""#,
        "currency: unknown currency \"XXQ\": give its minor unit explicitly, e.g. \"XXQ:2\" at line 9 column 19",
    ),
    (
        "unknown top field",
        "/subtotal",
        "5",
        "unknown field `subtotal`, expected one of `id`, `name`, `description`, `terms`, `currency`, `benefit`, `scope`, `conditions`, `validity`, `limits`, `stacking`, `distribution`, `refund` at line 23 column 12",
    ),
    // newer benefit kinds and conditions
    (
        "per unit zero cap",
        "/benefit",
        r#"{"kind": "per_unit", "amount": {"amount": "5", "currency": "CNY"}, "max_units": 0}"#,
        "benefit.max_units: must be at least 1 at line 2 column 95",
    ),
    (
        "per line negative cap",
        "/benefit",
        r#"{"kind": "per_line", "amount": {"amount": "5", "currency": "CNY"}, "max_lines": -1}"#,
        "benefit.max_lines: expected a non-negative integer, got -1 at line 2 column 96",
    ),
    (
        "apply once both",
        "/benefit",
        r#"{"kind": "apply_once", "pick": "cheapest", "percent": "50", "amount": {"amount": "5", "currency": "CNY"}}"#,
        "benefit: give `amount` or `percent`, not both at line 2 column 118",
    ),
    (
        "apply once neither",
        "/benefit",
        r#"{"kind": "apply_once", "pick": "dearest"}"#,
        "benefit: apply_once needs `amount` or `percent` at line 2 column 54",
    ),
    (
        "apply once unknown pick",
        "/benefit",
        r#"{"kind": "apply_once", "pick": "middle", "percent": "50"}"#,
        "benefit.pick: unknown variant `middle`, expected `cheapest` or `dearest` at line 2 column 70",
    ),
    (
        "tiered percent decreasing",
        "/benefit",
        r#"{"kind": "tiered_percent", "tiers": [{"spend": {"amount": "0", "currency": "CNY"}, "percent": "10"}, {"spend": {"amount": "100", "currency": "CNY"}, "percent": "5"}]}"#,
        "benefit.tiers: tier 1 takes 5%, less than the tier below it at line 2 column 179",
    ),
    (
        "tiered percent out of range",
        "/benefit",
        r#"{"kind": "tiered_percent", "tiers": [{"spend": {"amount": "0", "currency": "CNY"}, "percent": "10"}, {"spend": {"amount": "100", "currency": "CNY"}, "percent": "150"}]}"#,
        "benefit.tiers[1].percent: percentage 150 is outside (0, 100] at line 2 column 181",
    ),
    (
        "quantity tier zero units",
        "/benefit",
        r#"{"kind": "quantity_tiers", "tiers": [{"units": 0, "percent": "10"}]}"#,
        "benefit.tiers.units: must be at least 1 at line 2 column 81",
    ),
    (
        "quantity tiers not increasing",
        "/benefit",
        r#"{"kind": "quantity_tiers", "tiers": [{"units": 3, "percent": "10"}, {"units": 2, "percent": "20"}]}"#,
        "benefit.tiers: tier 1 needs 2 units, not more than the tier below it at line 2 column 112",
    ),
    (
        "shipping percent zero",
        "/benefit",
        r#"{"kind": "shipping_percent", "percent": "0"}"#,
        "benefit.percent: percentage 0 is outside (0, 100] at line 2 column 57",
    ),
    (
        "shipping price negative",
        "/benefit",
        r#"{"kind": "shipping_price", "price": {"amount": "-1", "currency": "CNY"}}"#,
        "benefit.price: invalid value \"-1.00 CNY\": a shipping price is zero or above at line 2 column 85",
    ),
    (
        "max below min subtotal",
        "/conditions",
        r#"{"min_subtotal": {"amount": "100", "currency": "CNY"}, "max_subtotal": {"amount": "50", "currency": "CNY"}}"#,
        "conditions.max_subtotal: 50.00 CNY is below the minimum subtotal 100.00 CNY at line 9 column 123",
    ),
    (
        "requirement naming nothing",
        "/conditions",
        r#"{"requires": [{"min_quantity": 2}]}"#,
        "conditions.requires: a requirement names `skus`, `categories` or `shops` at line 9 column 51",
    ),
    (
        "requirement zero quantity",
        "/conditions",
        r#"{"requires": [{"skus": ["teapot"], "min_quantity": 0}]}"#,
        "conditions.requires.min_quantity: must be at least 1 at line 9 column 71",
    ),
    (
        "requirement unknown field",
        "/conditions",
        r#"{"requires": [{"skus": ["teapot"]}, {"sku": ["cup"]}]}"#,
        "conditions.requires[1]: unknown field `sku`, expected one of `skus`, `categories`, `shops`, `min_quantity` at line 9 column 58",
    ),
    (
        "bxgy zero buy",
        "/benefit",
        r#"{"kind": "buy_x_get_y", "buy": 0, "buy_scope": {}, "get": 1, "reward": {"kind": "free"}}"#,
        "benefit.buy: must be at least 1 at line 2 column 101",
    ),
    (
        "bxgy bad buy scope",
        "/benefit",
        r#"{"kind": "buy_x_get_y", "buy": 2, "buy_scope": {"skus": []}, "get": 1, "reward": {"kind": "free"}}"#,
        "benefit.buy_scope: scope.skus: must not be empty at line 2 column 111",
    ),
    (
        "gift zero quantity",
        "/benefit",
        r#"{"kind": "gift", "sku": "mug", "value": {"amount": "25.00", "currency": "CNY"}, "quantity": 0}"#,
        "benefit.quantity: must be at least 1 at line 2 column 107",
    ),
    (
        "gift empty sku",
        "/benefit",
        r#"{"kind": "gift", "sku": "", "value": {"amount": "25.00", "currency": "CNY"}}"#,
        "benefit.sku: invalid sku \"\": it is empty at line 2 column 89",
    ),
    (
        "bxgy unknown reward",
        "/benefit",
        r#"{"kind": "buy_x_get_y", "buy": 2, "buy_scope": {}, "get": 1, "reward": {"kind": "gift"}}"#,
        "benefit.reward.kind: unknown variant `gift`, expected one of `free`, `percent`, `price` at line 2 column 101",
    ),
    (
        "bxgy reward percent",
        "/benefit",
        r#"{"kind": "buy_x_get_y", "buy": 2, "buy_scope": {}, "get": 1, "reward": {"kind": "percent", "percent": "101"}}"#,
        "benefit.reward.percent: percentage 101 is outside (0, 100] at line 2 column 122",
    ),
    (
        "bxgy reward price float",
        "/benefit",
        r#"{"kind": "buy_x_get_y", "buy": 2, "buy_scope": {}, "get": 1, "reward": {"kind": "price", "price": {"amount": 9.9, "currency": "CNY"}}}"#,
        "benefit.reward.price: the number arrived as the binary float 9.9, which may have lost digits; send the amount as a decimal string such as \"12.50\" at line 2 column 147",
    ),
    (
        "items and shipping capped amount",
        "/benefit",
        r#"{"kind": "items_and_shipping", "amount": {"amount": "5", "currency": "CNY"}, "max_saving": {"amount": "5", "currency": "CNY"}}"#,
        "benefit.max_saving: an amount off needs no cap; `max_saving` caps a percentage at line 2 column 139",
    ),
];

#[test]
fn invalid_templates_get_one_exact_error_naming_field_and_line() {
    let mut wrong = Vec::new();
    for (what, pointer, raw, expected) in TEMPLATE_CASES {
        let text = document(pointer, raw);
        let got = match serde_json::from_str::<Template>(&text) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        if got != *expected {
            wrong.push(format!(
                "    (\"{what}\", {pointer:?}, {raw:?},\n     {got:?}),"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cases differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// (what, JSON, exact error) for an amount read on its own.
const MONEY_CASES: &[(&str, &str, &str)] = &[
    (
        "a float that lost digits",
        r#"{"amount": 12345678901234567.89, "currency": "CNY"}"#,
        "the number arrived as the binary float 12345678901234568, which may have lost digits; \
         send the amount as a decimal string such as \"12.50\" at line 1 column 31",
    ),
    (
        "a float that looks whole",
        r#"{"amount": 20.000000000000001, "currency": "CNY"}"#,
        "the number arrived as the binary float 20, which may have lost digits; send the amount \
         as a decimal string such as \"12.50\" at line 1 column 29",
    ),
    (
        "a fraction of a fen",
        r#"{"amount": "20.005", "currency": "CNY"}"#,
        "20.005 has more decimal places than CNY allows (2) at line 1 column 39",
    ),
    (
        "a yen fraction",
        r#"{"amount": "1.5", "currency": "JPY"}"#,
        "1.5 has more decimal places than JPY allows (0) at line 1 column 36",
    ),
    (
        "an exponent in text",
        r#"{"amount": "1e3", "currency": "CNY"}"#,
        "expected the amount as a decimal string such as \"12.50\" (digits, an optional '-' and \
         fraction), got the text \"1e3\" at line 1 column 16",
    ),
    (
        "beyond the largest amount",
        r#"{"amount": "792281625142643375935439503.36", "currency": "CNY"}"#,
        "792281625142643375935439503.36 CNY is beyond the largest amount held \
         (79228162514264337593543950335 minor units either side of zero) at line 1 column 63",
    ),
    (
        "an unknown currency",
        r#"{"amount": "1", "currency": "XXQ"}"#,
        "currency: unknown currency \"XXQ\": give its minor unit explicitly, e.g. \"XXQ:2\" at \
         line 1 column 33",
    ),
    (
        "an extra field",
        r#"{"amount": "1", "currency": "CNY", "note": "x"}"#,
        "unknown field `note`, expected `amount` or `currency` at line 1 column 41",
    ),
    (
        "no currency",
        r#"{"amount": "1"}"#,
        "missing field `currency` at line 1 column 15",
    ),
    (
        "a bare number",
        "12.5",
        "expected an amount as an object {\"amount\": \"12.50\", \"currency\": \"CNY\"}, got the \
         number 12.5 at line 1 column 4",
    ),
];

#[test]
fn invalid_amounts_get_one_exact_error() {
    let mut wrong = Vec::new();
    for (what, json, expected) in MONEY_CASES {
        let got = match serde_json::from_str::<Money>(json) {
            Ok(m) => format!("ok: {m}"),
            Err(e) => e.to_string(),
        };
        if got != *expected {
            wrong.push(format!(
                "{what}: {json}\n  got:      {got}\n  expected: {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The message of a JSON error without serde_json's position.
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((head, _)) if e.line() > 0 => head.to_owned(),
        _ => text,
    }
}

#[test]
fn amounts_in_a_template_are_exact_or_refused() {
    // The exact decimal text is kept to the fen.
    let text = document(
        "/benefit/amount",
        r#"{"amount": "12345678901234567.89", "currency": "CNY"}"#,
    );
    let t: Template = serde_json::from_str(&text).unwrap();
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["benefit"]["amount"]["amount"], "12345678901234567.89");
    // A JSON integer is exact too.
    let text = document(
        "/benefit/amount",
        r#"{"amount": 12345678901234567, "currency": "CNY"}"#,
    );
    let t: Template = serde_json::from_str(&text).unwrap();
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["benefit"]["amount"]["amount"], "12345678901234567.00");
    // A float is refused wherever it stands (the path in front is the benefit's to add).
    for raw in ["12345678901234567.89", "20.000000000000001", "10.5"] {
        let text = document(
            "/benefit/amount",
            &format!(r#"{{"amount": {raw}, "currency": "CNY"}}"#),
        );
        let e = serde_json::from_str::<Template>(&text).unwrap_err();
        let m = message(&e);
        assert!(
            m.ends_with("send the amount as a decimal string such as \"12.50\""),
            "{raw}: {e}"
        );
        assert!(e.line() > 1, "{e}");
    }
}

#[test]
fn parts_read_on_their_own_name_their_path() {
    let e = serde_json::from_str::<Limits>(r#"{"total_stock": -5}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "limits.total_stock: expected a non-negative integer, got -5 at line 1 column 18"
    );
    let e = serde_json::from_str::<Validity>(r#"{"kind": "relative", "days": 7, "hours": 1}"#)
        .unwrap_err();
    assert_eq!(
        message(&e),
        "validity: give the span in `days` or in `hours`, not both"
    );
    // Zero in a currency's scale, whatever the JSON says.
    let m: Money = serde_json::from_str(r#"{"amount": "-0.000", "currency": "KWD"}"#).unwrap();
    assert_eq!(m, Money::zero(Currency::KWD));
    assert_eq!(m.to_string(), "0.000 KWD");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_negative_or_fractional_count_is_refused_naming_its_field(
            field in prop::sample::select(&["total_stock", "per_user_claims", "per_user_uses", "per_order"][..]),
            bad in prop_oneof![
                (i64::MIN..0).prop_map(|n| (n.to_string(), n.to_string())),
                (0u32..1000, 1u32..100).prop_map(|(i, f)| {
                    let s = format!("{i}.{f:02}");
                    let shown = format!("the number {}", s.parse::<f64>().unwrap());
                    (s, shown)
                }),
            ],
        ) {
            let (raw, shown) = bad;
            let text = document(&format!("/limits/{field}"), &raw);
            let e = serde_json::from_str::<Template>(&text).unwrap_err();
            prop_assert_eq!(
                message(&e),
                format!("limits.{field}: expected a non-negative integer, got {shown}")
            );
            prop_assert!(e.line() > 1);
        }

        #[test]
        fn decimal_text_amounts_are_read_to_the_last_digit(
            int in "[1-9][0-9]{0,24}",
            frac in "[0-9]{0,2}",
        ) {
            let amount = if frac.is_empty() { int.clone() } else { format!("{int}.{frac}") };
            let text = document(
                "/benefit/amount",
                &format!(r#"{{"amount": "{amount}", "currency": "CNY"}}"#),
            );
            let t: Template = serde_json::from_str(&text).unwrap();
            let got = serde_json::to_value(&t).unwrap()["benefit"]["amount"]["amount"].clone();
            let expected = format!("{int}.{frac:0<2}");
            prop_assert_eq!(got.as_str().unwrap(), expected.as_str());
        }
    }
}

/// (what, cart JSON, exact error).
const CART_CASES: &[(&str, &str, &str)] = &[
    (
        "a client's subtotal",
        r#"{"currency": "CNY", "lines": [], "shipping": {"amount": "0", "currency": "CNY"}, "subtotal": "9"}"#,
        "unknown field `subtotal`, expected one of `currency`, `lines`, `shipping`, `shipping_lines` at line 1 column 91",
    ),
    (
        "an unknown line field",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"},
 "lines": [{"sku": "tea", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": 1, "total": "1"}]}"#,
        "lines[0]: unknown field `total`, expected one of `sku`, `categories`, `shop`, `unit_price`, `quantity`, `on_sale` at line 2 column 98",
    ),
    (
        "a negative quantity",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"}, "lines": [
 {"sku": "tea", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": 1},
 {"sku": "cup", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": -2}]}"#,
        "lines[1].quantity: expected a non-negative integer, got -2 at line 3 column 82",
    ),
    (
        "a float price",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"},
 "lines": [{"sku": "tea", "unit_price": {"amount": 19.99, "currency": "CNY"}, "quantity": 1}]}"#,
        "lines[0].unit_price: the number arrived as the binary float 19.99, which may have lost digits; send the amount as a decimal string such as \"12.50\" at line 2 column 58",
    ),
    (
        "a zero quantity",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"},
 "lines": [{"sku": "tea", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": 0}]}"#,
        "lines[0].quantity: must be at least 1",
    ),
    (
        "a line in another currency",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"},
 "lines": [{"sku": "tea", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": 1},
           {"sku": "cup", "unit_price": {"amount": "1", "currency": "USD"}, "quantity": 1}]}"#,
        "lines[1].unit_price: USD is not the cart's currency CNY",
    ),
    (
        "a negative shipping fee",
        r#"{"currency": "CNY", "shipping": {"amount": "-8", "currency": "CNY"}, "lines": []}"#,
        "shipping: -8.00 CNY is negative",
    ),
    (
        "an empty sku",
        r#"{"currency": "CNY", "shipping": {"amount": "0", "currency": "CNY"},
 "lines": [{"sku": "", "unit_price": {"amount": "1", "currency": "CNY"}, "quantity": 1}]}"#,
        "lines[0].sku: invalid sku \"\": it is empty at line 2 column 23",
    ),
    (
        "shipping per shop",
        r#"{"currency": "CNY", "lines": [], "shipping_lines": [
 {"shop": "6021", "fee": {"amount": "8.00", "currency": "CNY"}},
 {"shop": "7788", "fee": {"amount": "6.00", "currency": "CNY"}}]}"#,
        "ok",
    ),
    (
        "both shipping forms",
        r#"{"currency": "CNY", "lines": [], "shipping": {"amount": "0", "currency": "CNY"},
 "shipping_lines": [{"fee": {"amount": "8.00", "currency": "CNY"}}]}"#,
        "shipping: give `shipping` (one fee) or `shipping_lines`, exactly one of them",
    ),
    (
        "no shipping",
        r#"{"currency": "CNY", "lines": []}"#,
        "shipping: give `shipping` (one fee) or `shipping_lines`, exactly one of them",
    ),
    (
        "a negative parcel fee",
        r#"{"currency": "CNY", "lines": [], "shipping_lines": [
 {"shop": "6021", "fee": {"amount": "8.00", "currency": "CNY"}},
 {"shop": "7788", "fee": {"amount": "-6.00", "currency": "CNY"}}]}"#,
        "shipping_lines[1].fee: -6.00 CNY is negative",
    ),
    (
        "two parcels of one shop",
        r#"{"currency": "CNY", "lines": [], "shipping_lines": [
 {"shop": "6021", "fee": {"amount": "8.00", "currency": "CNY"}},
 {"shop": "6021", "fee": {"amount": "6.00", "currency": "CNY"}}]}"#,
        "shipping_lines[1].shop: a second shipping line for the same shop",
    ),
    (
        "an unknown parcel field",
        r#"{"currency": "CNY", "lines": [], "shipping_lines": [{"fee": {"amount": "8.00", "currency": "CNY"}, "weight": 3}]}"#,
        "shipping_lines[0]: unknown field `weight`, expected `shop` or `fee` at line 1 column 107",
    ),
];

#[test]
fn carts_with_shipping_lines_read_back_as_written() {
    use coupons::cart::ShippingLine;
    let cny = Currency::CNY;
    let one = Cart::new(cny, vec![], Money::from_minor(800, cny)).unwrap();
    let json = serde_json::to_value(&one).unwrap();
    assert!(json.get("shipping_lines").is_none(), "{json}");
    assert_eq!(serde_json::from_value::<Cart>(json).unwrap(), one);
    let two = Cart::with_shipping_lines(
        cny,
        vec![],
        vec![
            ShippingLine::of_shop(ShopId::new("6021").unwrap(), Money::from_minor(800, cny)),
            ShippingLine {
                shop: None,
                fee: Money::from_minor(300, cny),
            },
        ],
    )
    .unwrap();
    let json = serde_json::to_value(&two).unwrap();
    assert!(json.get("shipping").is_none(), "{json}");
    assert_eq!(serde_json::from_value::<Cart>(json).unwrap(), two);
}

#[test]
fn invalid_carts_get_one_exact_error_naming_the_line() {
    let mut wrong = Vec::new();
    for (what, json, expected) in CART_CASES {
        let got = match serde_json::from_str::<Cart>(json) {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        if got != *expected {
            wrong.push(format!(
                "{what}\n  got:      {got:?}\n  expected: {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn cart_errors_show_line_numbers_as_numbers() {
    let cny = Currency::CNY;
    let usd = Currency::USD;
    let sku = Sku::new("tea").unwrap();
    let e = Cart::new(
        cny,
        vec![
            CartLine::new(sku.clone(), Money::from_minor(100, cny), 1),
            CartLine::new(sku.clone(), Money::from_minor(100, usd), 1),
        ],
        Money::zero(cny),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "lines[1].unit_price: USD is not the cart's currency CNY"
    );
    let e = Cart::new(cny, vec![], Money::from_minor(-1, cny)).unwrap_err();
    assert_eq!(e.to_string(), "shipping: -0.01 CNY is negative");
    let e = Cart::new(
        cny,
        vec![CartLine::new(sku, Money::zero(cny), 0)],
        Money::zero(cny),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "lines[0].quantity: must be at least 1");
}
