//! The demo shop: five templates and a promo code (`SAVE5`), alice's wallet holding one coupon of each, and her cart
//! (three teas and a teapot, shipping 12 CNY), so that the checkout page shows a best
//! combination, a usable coupon left out, and greyed coupons with different reasons.

use chrono::{DateTime, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{CategoryId, Channel, IdempotencyKey, Sku, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest};
use coupons::money::{Currency, Money};
use coupons::repository::Repository;
use coupons::rule::{Distribution, Template};

use crate::app::App;

/// The demo's templates, as a back office would store them.
pub const TEMPLATES: &[&str] = &[
    r#"{"id": "spend-200-save-25", "name": "Spend 200, save 25", "currency": "CNY",
        "benefit": {"kind": "threshold", "tiers": [
          {"spend": {"amount": "200", "currency": "CNY"}, "save": {"amount": "25", "currency": "CNY"}}]},
        "validity": {"kind": "relative", "days": 7}}"#,
    r#"{"id": "spend-100-save-10", "name": "Spend 100, save 10", "currency": "CNY",
        "benefit": {"kind": "threshold", "tiers": [
          {"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "10", "currency": "CNY"}}]},
        "validity": {"kind": "relative", "days": 7}}"#,
    r#"{"id": "tea-15-percent", "name": "15% off tea", "currency": "CNY",
        "benefit": {"kind": "percent", "percent": "15", "max_saving": {"amount": "30", "currency": "CNY"}},
        "scope": {"categories": ["tea"]}, "stacking": {"group": "category"},
        "validity": {"kind": "relative", "days": 2}}"#,
    r#"{"id": "spend-500-save-60", "name": "Spend 500, save 60", "currency": "CNY",
        "benefit": {"kind": "threshold", "tiers": [
          {"spend": {"amount": "500", "currency": "CNY"}, "save": {"amount": "60", "currency": "CNY"}}]},
        "validity": {"kind": "relative", "days": 7}}"#,
    r#"{"id": "usd-5-off", "name": "5 USD off", "currency": "USD",
        "benefit": {"kind": "instant", "amount": {"amount": "5", "currency": "USD"}},
        "stacking": {"group": "usd"},
        "validity": {"kind": "relative", "days": 7}}"#,
];

/// A promo code anyone may type, once per buyer (not claimed into wallets).
pub const CODE_TEMPLATE: &str = r#"{"id": "code-save-5", "name": "Code SAVE5: 5 off", "currency": "CNY",
    "benefit": {"kind": "instant", "amount": {"amount": "5", "currency": "CNY"}},
    "distribution": {"kind": "promo_code", "code": "SAVE5", "per_user": 1},
    "stacking": {"group": "code"},
    "validity": {"kind": "relative", "days": 30}}"#;

/// The demo buyer.
pub const USER: &str = "alice";

fn cny(yuan: i64) -> Money {
    Money::from_minor(yuan * 100, Currency::CNY)
}

/// The demo buyer and cart.
///
/// # Errors
/// Never for these constants; typed id and cart errors otherwise.
pub fn basket() -> Result<(Buyer, Cart), Box<dyn std::error::Error + Send + Sync>> {
    let buyer = Buyer::new(UserId::new(USER)?, Channel::new("web")?);
    let cart = Cart::new(
        Currency::CNY,
        vec![
            CartLine::new(Sku::new("oolong")?, cny(45), 3).in_category(CategoryId::new("tea")?),
            CartLine::new(Sku::new("teapot")?, cny(168), 1).in_category(CategoryId::new("ware")?),
        ],
        cny(12),
    )?;
    Ok((buyer, cart))
}

/// Creates and activates the templates (skipping ones that exist), claims one coupon of each
/// for alice (idempotently) and sets her cart.
///
/// # Errors
/// The engine's or the store's failure.
pub fn seed<R: Repository>(
    app: &App<R>,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let s = &app.service;
    let (buyer, cart) = basket()?;
    for json in TEMPLATES.iter().chain([&CODE_TEMPLATE]) {
        let t: Template = serde_json::from_str(json)?;
        let id = t.id().clone();
        let claimable = !matches!(t.distribution(), Distribution::PromoCode { .. });
        if s.repository().template(&id)?.is_none() {
            s.create_template(t, now)?;
            s.submit_template(&id, now)?;
            s.approve_template(&id, now)?;
            s.activate_template(&id, now)?;
        }
        if claimable {
            claim(app, &id, &buyer.user, now)?;
        }
    }
    app.set_basket(buyer, cart);
    Ok(())
}

fn claim<R: Repository>(
    app: &App<R>,
    template: &TemplateId,
    user: &UserId,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let key = IdempotencyKey::new(format!("demo-{user}-{template}"))?;
    let req = ClaimRequest::new(
        template.clone(),
        user.clone(),
        Channel::new("web")?,
        ClaimMode::Click,
        key,
    );
    app.service.claim(&req, now)?;
    Ok(())
}
