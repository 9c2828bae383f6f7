//! The demo shop: five templates and a promo code (`SAVE5`), alice's wallet holding one coupon of each, and her cart
//! (three teas and a teapot, shipping 12 CNY), so that the checkout page shows a best
//! combination, a usable coupon left out, and greyed coupons with different reasons.
//!
//! For the campaign page, a week of history ([`history`]): the campaign `autumn-tea` offers
//! "Spend 100, save 10" or "Spend 200, save 25" (a stock of 100) to a few shoppers a day, as
//! an A/B [`experiment`] decides; some claim, some of those pay an order with the coupon, one
//! order is refunded, and a regular customer buys without a coupon every day.

use chrono::{DateTime, Duration, Utc};
use coupons::analytics::experiment::{Arm, Experiment, ExperimentError, ExperimentId};
use coupons::attributes::Attributes;
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{
    CampaignId, CategoryId, Channel, IdempotencyKey, OrderId, Sku, TemplateId, UserId,
};
use coupons::lifecycle::{Actor, RefundRequest};
use coupons::lifecycle::{Campaign, ClaimMode, ClaimRequest, RefundKind};
use coupons::money::{Currency, Money};
use coupons::repository::Repository;
use coupons::rule::Template;
use coupons::service::LockRequest;

use crate::app::{App, OfferArms};

/// The demo's templates, as a back office would store them.
pub const TEMPLATES: &[&str] = &[
    r#"{"id": "spend-200-save-25", "name": "Spend 200, save 25", "currency": "CNY",
        "benefit": {"kind": "threshold", "tiers": [
          {"spend": {"amount": "200", "currency": "CNY"}, "save": {"amount": "25", "currency": "CNY"}}]},
        "limits": {"total_stock": 100},
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
/// for alice (idempotently) and sets her cart; on a store without the demo campaign, writes
/// its week of [`history`] first.
///
/// # Errors
/// The engine's or the store's failure.
pub fn seed<R: Repository>(
    app: &App<R>,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let s = &app.service;
    let (buyer, cart) = basket()?;
    let start = now - Duration::days(HISTORY_DAYS + 1);
    for json in TEMPLATES.iter().chain([&CODE_TEMPLATE]) {
        let t: Template = serde_json::from_str(json)?;
        let id = t.id().clone();
        if s.repository().template(&id)?.is_none() {
            s.create_template(t, start)?;
            s.submit_template(&id, start)?;
            s.approve_template(&id, start)?;
            s.activate_template(&id, start)?;
        }
    }
    let campaign = CampaignId::new(CAMPAIGN)?;
    if s.repository().campaign(&campaign)?.is_none() {
        history(app, now)?;
    }
    for json in TEMPLATES {
        let t: Template = serde_json::from_str(json)?;
        claim(app, t.id(), &buyer.user, None, Attributes::new(), now)?;
    }
    app.set_basket(buyer, cart);
    Ok(())
}

/// The demo campaign.
pub const CAMPAIGN: &str = "autumn-tea";

/// The campaign's cheaper coupon: the experiment's control arm.
pub const SAVE_10: &str = "spend-100-save-10";
/// The campaign's dearer coupon: the experiment's treatment arm.
pub const SAVE_25: &str = "spend-200-save-25";

/// The demo campaign's experiment: half the shoppers are shown "Spend 100, save 10" (the
/// control), half "Spend 200, save 25"; each arm is named after its template, and recorded on
/// the coupons claimed (attributes `experiment` and `arm`).
///
/// # Errors
/// Never for these constants; the experiment's errors otherwise.
pub fn experiment() -> Result<Experiment, ExperimentError> {
    Experiment::new(
        ExperimentId::new("autumn-tea-face-value")?,
        [Arm::control(SAVE_10, 50)?, Arm::treatment(SAVE_25, 50)?],
    )
}

/// How the campaign page counts the demo's offers in arms: offers of the two templates, in the
/// arm the experiment assigns the shopper.
///
/// # Errors
/// Never for these constants.
pub fn offer_arms() -> Result<OfferArms, Box<dyn std::error::Error + Send + Sync>> {
    Ok(OfferArms {
        experiment: experiment()?,
        templates: [TemplateId::new(SAVE_10)?, TemplateId::new(SAVE_25)?]
            .into_iter()
            .collect(),
    })
}

/// Days of history before today.
pub const HISTORY_DAYS: i64 = 6;

/// A small deterministic generator (SplitMix64): the same history on every run.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The demo campaign and its week: every day a few shoppers are shown one of its two
/// templates (`record_offer`), some claim it, some of those pay an order with it half an hour
/// later, and a regular customer pays an order without a coupon; one coupon order is refunded
/// by the merchant. Every write goes through the service at its own time in the past.
///
/// # Errors
/// The engine's or the store's failure.
pub fn history<R: Repository>(
    app: &App<R>,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let s = &app.service;
    let start = now - Duration::days(HISTORY_DAYS + 1);
    let id = CampaignId::new(CAMPAIGN)?;
    let exp = experiment()?;
    let offered = offer_arms()?.templates;
    let campaign = Campaign::builder(id.clone(), "Autumn tea festival")
        .rules("One coupon per shopper; spend 100 save 10, or spend 200 save 25")
        .window(start, now + Duration::days(7))
        .offering(TemplateId::new(SAVE_10)?)
        .offering(TemplateId::new(SAVE_25)?)
        .build()?;
    s.create_campaign(campaign, start)?;
    s.set_campaign_online(&id, true, start)?;
    let web = Channel::new("web")?;
    let mut mix = Mix(2026);
    let mut refunded = false;
    for ago in (0..=HISTORY_DAYS).rev() {
        let day = now - Duration::days(ago) - Duration::hours(3);
        let shoppers = 4 + mix.next() % 5;
        for k in 0..shoppers {
            let at = day + Duration::minutes(7 * k as i64);
            let user = UserId::new(format!("shopper-{ago}-{k}"))?;
            // The experiment decides which of the two coupons the shopper is shown.
            let arm = exp.assign(&user);
            let template = TemplateId::new(arm.name().as_str())?;
            debug_assert!(offered.contains(&template));
            s.record_offer(&template, &user, &web, Some(&id), at)?;
            if !mix.chance(70) {
                continue;
            }
            let mut attributes = Attributes::new();
            arm.record(&mut attributes)?;
            claim(app, &template, &user, Some(&id), attributes, at)?;
            if ago == 0 || !mix.chance(60) {
                continue;
            }
            // The order: enough for the coupon's threshold, sometimes a little more.
            let teas = if template.as_str() == SAVE_10 { 1 } else { 3 } + (mix.next() % 2) as u32;
            let cart = Cart::new(
                Currency::CNY,
                vec![
                    CartLine::new(Sku::new("oolong")?, cny(45), teas)
                        .in_category(CategoryId::new("tea")?),
                    CartLine::new(Sku::new("teapot")?, cny(68), 1)
                        .in_category(CategoryId::new("ware")?),
                ],
                cny(0),
            )?;
            let buyer = Buyer::new(user.clone(), web.clone());
            let paid_at = at + Duration::minutes(30);
            let order = OrderId::new(format!("demo-order-{ago}-{k}"))?;
            let key = IdempotencyKey::new(format!("demo-lock-{ago}-{k}"))?;
            s.quote_and_lock(&LockRequest::new(&order, &cart, &buyer, &key), paid_at)?;
            let key = IdempotencyKey::new(format!("demo-pay-{ago}-{k}"))?;
            s.pay(&order, &Actor::System, &key, paid_at)?;
            if !refunded && ago == 2 {
                let key = IdempotencyKey::new(format!("demo-refund-{ago}-{k}"))?;
                s.refund(
                    &order,
                    &Actor::Merchant,
                    &RefundRequest::whole(RefundKind::Buyer),
                    &key,
                    paid_at + Duration::hours(1),
                )?;
                refunded = true;
            }
        }
        // A regular customer, without a coupon.
        let regular = Buyer::new(UserId::new("regular")?, web.clone());
        let cart = Cart::new(
            Currency::CNY,
            vec![
                CartLine::new(Sku::new("oolong")?, cny(45), 2).in_category(CategoryId::new("tea")?),
            ],
            cny(0),
        )?;
        let at = day + Duration::hours(1);
        let order = OrderId::new(format!("demo-plain-{ago}"))?;
        let key = IdempotencyKey::new(format!("demo-plain-lock-{ago}"))?;
        s.quote_and_lock(
            &LockRequest::new(&order, &cart, &regular, &key).select(&[]),
            at,
        )?;
        let key = IdempotencyKey::new(format!("demo-plain-pay-{ago}"))?;
        s.pay(&order, &Actor::System, &key, at)?;
    }
    Ok(())
}

fn claim<R: Repository>(
    app: &App<R>,
    template: &TemplateId,
    user: &UserId,
    campaign: Option<&CampaignId>,
    attributes: Attributes,
    now: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let key = IdempotencyKey::new(format!("demo-{user}-{template}"))?;
    let mut req = ClaimRequest::new(
        template.clone(),
        user.clone(),
        Channel::new("web")?,
        ClaimMode::Click,
        key,
    )
    .with_attributes(attributes);
    if let Some(c) = campaign {
        req = req.in_campaign(c.clone());
    }
    app.service.claim(&req, now)?;
    Ok(())
}
