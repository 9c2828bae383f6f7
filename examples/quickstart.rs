//! Quickstart: a coupon lifecycle end to end, on the embedded in-memory store.
//!
//! 1. Rules: templates from JSON and from builders, how each benefit computes, a rejected one.
//! 2. Approval: draft → pending approval → approved → active (finance signs off).
//! 3. A campaign (活动) offering templates, and issuing through two channels.
//! 4. Checkout: a quote with usable and greyed-out coupons, then lock, pay, cancel.
//! 5. Refunds under each rule (one in part, exact to the fen), who may refund, and the expiry
//!    sweep.
//!
//! Run: `cargo run --example quickstart`

use std::error::Error;

use chrono::{DateTime, Duration, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine, CustomerKind};
use coupons::checkout::{Checkout, Quote, StackingPolicy};
use coupons::id::*;
use coupons::lifecycle::{
    Actor, Campaign, ClaimMode, ClaimRequest, Coupon, RefundKind, RefundRequest, RefundUnits,
};
use coupons::money::{Currency, Money};
use coupons::repository::{MemoryStore, Repository};
use coupons::rule::*;
use coupons::service::{LockRequest, Service};

const CNY: Currency = Currency::CNY;

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, CNY)
}

fn key(k: &str) -> Result<IdempotencyKey, IdError> {
    IdempotencyKey::new(k)
}

/// Templates in JSON, as a merchant back office would store them.
const SPRING_JSON: &str = r#"{
  "id": "spring-200-25",
  "name": "满200减25",
  "currency": "CNY",
  "benefit": { "kind": "threshold", "tiers": [
    { "spend": { "amount": "200", "currency": "CNY" }, "save": { "amount": "25", "currency": "CNY" } },
    { "spend": { "amount": "400", "currency": "CNY" }, "save": { "amount": "60", "currency": "CNY" } } ] },
  "validity": { "kind": "relative", "days": 7 },
  "limits": { "total_stock": 1000, "per_user_claims": 2 }
}"#;

const TEA_JSON: &str = r#"{
  "id": "tea-15-percent",
  "name": "茶叶85折",
  "currency": "CNY",
  "benefit": { "kind": "percent", "percent": "15", "max_saving": { "amount": "30", "currency": "CNY" } },
  "scope": { "categories": ["tea"] },
  "stacking": { "group": "category" },
  "refund": { "merchant_refund_returns": true, "buyer_refund_returns": true },
  "validity": { "kind": "relative", "hours": 48 }
}"#;

fn show_quote(title: &str, q: &Quote) {
    println!(
        "  {title}: {} → {} (saving {})",
        q.total_before, q.total_after, q.saving
    );
    for a in &q.applied {
        println!(
            "    ✓ {:<28} −{}",
            format!("{} ({})", a.name, a.kind),
            a.saving.amount()
        );
    }
    for e in q.offers.iter().filter(|e| !e.selected) {
        let why: Vec<String> = e.reasons.iter().map(ToString::to_string).collect();
        let mark = if e.usable { "○" } else { "✗" };
        println!("    {mark} {:<28} {}", e.template.as_str(), why.join("; "));
    }
}

fn state(s: &Service<MemoryStore>, id: &CouponId) -> Result<String, Box<dyn Error>> {
    let c = s.repository().coupon(id)?.ok_or("coupon not found")?.value;
    Ok(c.state.to_string())
}

fn main() -> Result<(), Box<dyn Error>> {
    let started = std::time::Instant::now();
    let now: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 11, 11, 10, 0, 0)
        .single()
        .ok_or("time")?;

    println!("1. Rules");
    let spring: Template = serde_json::from_str(SPRING_JSON)?;
    let tea: Template = serde_json::from_str(TEA_JSON)?;
    let welcome = TemplateSpec::new(
        TemplateId::new("welcome-20")?,
        "新人立减20",
        CNY,
        Benefit::instant(yuan(20))?,
        Validity::relative(Span::Days(30), None)?,
    )
    .conditions(Conditions::try_from(ConditionsSpec {
        audience: AudienceSpec {
            customer: Some(CustomerKind::New),
            ..Default::default()
        },
        ..Default::default()
    })?)
    .stacking(Stacking::in_group(StackingGroup::new("welcome")?))
    .refund(RefundPolicy {
        merchant_refund_returns: false,
        buyer_refund_returns: false,
    })
    .build()?;
    let ship = TemplateSpec::new(
        TemplateId::new("free-shipping")?,
        "包邮券",
        CNY,
        Benefit::shipping(None)?,
        Validity::relative(Span::Hours(1), None)?,
    )
    .stacking(Stacking::in_group(StackingGroup::new("shipping")?))
    .build()?;
    let others = [
        (
            "every 100 save 10, max 30",
            Benefit::every(yuan(100), yuan(10), Some(yuan(30)))?,
        ),
        ("buy 2 get 1", Benefit::buy_get(2, 1, None)?),
        ("any 3 for 99", Benefit::fixed_price(3, yuan(99), None)?),
    ];
    // How each computes on one sample cart: three teas at 45 and a teapot at 168, shipping 12.
    let cart = Cart::new(
        CNY,
        vec![
            CartLine::new(Sku::new("oolong")?, yuan(45), 3).in_category(CategoryId::new("tea")?),
            CartLine::new(Sku::new("teapot")?, yuan(168), 1).in_category(CategoryId::new("ware")?),
        ],
        yuan(12),
    )?;
    println!(
        "  sample cart: items {}, shipping {}",
        cart.items_total(),
        cart.shipping()
    );
    let policy = StackingPolicy::default();
    let first = Buyer {
        kind: CustomerKind::New,
        ..Buyer::new(UserId::new("preview")?, Channel::new("app")?)
    };
    let mut all: Vec<Template> = vec![spring.clone(), tea.clone(), welcome.clone(), ship.clone()];
    for (i, (name, b)) in others.into_iter().enumerate() {
        let v = Validity::relative(Span::Days(7), None)?;
        all.push(
            TemplateSpec::new(TemplateId::new(format!("demo-{i}"))?, name, CNY, b, v).build()?,
        );
    }
    for t in &all {
        let offer = coupons::checkout::Offer::coupon(
            CouponId::new(format!("preview-{}", t.id()))?,
            std::sync::Arc::new(t.clone()),
            now,
            now + Duration::days(1),
        );
        let q = Checkout::new(&cart, &first, now, &policy)
            .offers(std::slice::from_ref(&offer))
            .best()?;
        println!(
            "  {:<16} {:<26} saves {}",
            t.benefit().kind(),
            t.name(),
            q.saving.amount()
        );
    }
    let bad = r#"{"id":"broken","name":"满100减100","currency":"CNY","validity":{"kind":"relative","days":7},
        "benefit":{"kind":"threshold","tiers":[{"spend":{"amount":"100","currency":"CNY"},"save":{"amount":"100","currency":"CNY"}}]}}"#;
    match serde_json::from_str::<Template>(bad) {
        Ok(_) => println!("  unexpectedly accepted"),
        Err(e) => println!("  rejected: {e}"),
    }

    println!("\n2. Approval");
    let service = Service::new(MemoryStore::new());
    for t in [&spring, &tea, &welcome, &ship] {
        service.create_template(t.clone(), now)?;
        service.submit_template(t.id(), now)?;
        service.approve_template(t.id(), now)?;
        let rec = service.activate_template(t.id(), now)?;
        println!("  {:<16} {}", t.id().as_str(), rec.status);
    }
    // Finance turns one down; it can never issue.
    let gift = TemplateSpec::new(
        TemplateId::new("gift-500")?,
        "立减500",
        CNY,
        Benefit::instant(yuan(500))?,
        Validity::relative(Span::Days(7), None)?,
    )
    .build()?;
    service.create_template(gift.clone(), now)?;
    service.submit_template(gift.id(), now)?;
    let rejected = service.reject_template(gift.id(), "face value too high", now)?;
    println!("  {:<16} {}", gift.id().as_str(), rejected.status);

    println!("\n3. Campaign and issuing");
    let double11 = CampaignId::new("double-11")?;
    let campaign = Campaign::new(
        double11.clone(),
        "双11狂欢",
        "每人限领2张，领取后7天内有效",
        now - Duration::hours(10),
        now + Duration::hours(14),
        vec![spring.id().clone(), ship.id().clone()],
    )?;
    service.create_campaign(campaign, now)?;
    let shown = service.set_campaign_online(&double11, true, now)?;
    println!("  campaign {} is {}", double11, shown.state(now));
    let alice = UserId::new("alice")?;
    let bob = UserId::new("bob")?;
    let claim = |t: &TemplateId,
                 user: &UserId,
                 channel: &str,
                 mode,
                 k: &str,
                 campaign: bool|
     -> Result<Coupon, Box<dyn Error>> {
        let mut req = ClaimRequest::new(
            t.clone(),
            user.clone(),
            Channel::new(channel)?,
            mode,
            key(k)?,
        );
        if campaign {
            req = req.in_campaign(double11.clone());
        }
        let c = service.claim(&req, now)?.coupon;
        println!(
            "  {:<6} got {:<34} via {:<12} ({}), valid until {}",
            user.as_str(),
            c.id.as_str(),
            channel,
            mode,
            c.valid_until
        );
        Ok(c)
    };
    let a_spring = claim(
        spring.id(),
        &alice,
        "campaign",
        ClaimMode::Click,
        "a-1",
        true,
    )?;
    let a_spring2 = claim(
        spring.id(),
        &alice,
        "campaign",
        ClaimMode::Click,
        "a-2",
        true,
    )?;
    let a_ship = claim(ship.id(), &alice, "campaign", ClaimMode::Auto, "a-3", true)?;
    let a_tea = claim(tea.id(), &alice, "push", ClaimMode::Auto, "a-4", false)?;
    // Alice is a returning customer: the new-user coupon will be greyed out at her checkout.
    let a_welcome = claim(welcome.id(), &alice, "admin", ClaimMode::Auto, "a-6", false)?;
    let b_welcome = claim(
        welcome.id(),
        &bob,
        "registration",
        ClaimMode::Auto,
        "b-1",
        false,
    )?;
    let b_spring = claim(spring.id(), &bob, "share", ClaimMode::Click, "b-2", true)?;
    // The same request again (a retried HTTP call) changes nothing.
    let again = service.claim(
        &ClaimRequest::new(
            spring.id().clone(),
            alice.clone(),
            Channel::new("campaign")?,
            ClaimMode::Click,
            key("a-1")?,
        )
        .in_campaign(double11.clone()),
        now,
    )?;
    println!(
        "  retried claim a-1: replayed = {}, same coupon = {}",
        again.replayed,
        again.coupon.id == a_spring.id
    );
    match service.claim(
        &ClaimRequest::new(
            spring.id().clone(),
            alice.clone(),
            Channel::new("campaign")?,
            ClaimMode::Click,
            key("a-5")?,
        )
        .in_campaign(double11.clone()),
        now,
    ) {
        Ok(_) => println!("  a third claim was accepted?"),
        Err(e) => println!("  third claim refused: {e}"),
    }

    println!("\n4. Checkout");
    let alice_buyer = Buyer::new(alice.clone(), Channel::new("app")?);
    let quote = service.quote(&cart, &alice_buyer, &[], now)?;
    show_quote("alice's best combination", &quote);
    let order1 = OrderId::new("order-1")?;
    let locked = service.quote_and_lock(
        &LockRequest::new(&order1, &cart, &alice_buyer, &key("lock-1")?),
        now,
    )?;
    println!(
        "  order-1 locked {} coupon(s) until {}",
        locked.coupons.len(),
        locked
            .hold_until
            .map_or_else(|| "—".to_string(), |t| t.to_string())
    );
    let paid = service.pay(
        &order1,
        &Actor::System,
        &key("pay-1")?,
        now + Duration::minutes(3),
    )?;
    println!(
        "  order-1 paid: redeemed {}",
        paid.coupons
            .iter()
            .map(CouponId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let retry = service.pay(
        &order1,
        &Actor::System,
        &key("pay-1")?,
        now + Duration::minutes(4),
    )?;
    println!("  retried pay: replayed = {}", retry.replayed);

    // Bob's first order is cancelled before paying: his coupon comes back.
    let bob_buyer = Buyer {
        kind: CustomerKind::New,
        ..Buyer::new(bob.clone(), Channel::new("mini-program")?)
    };
    let order2 = OrderId::new("order-2")?;
    let l2 = service.quote_and_lock(
        &LockRequest::new(&order2, &cart, &bob_buyer, &key("lock-2")?),
        now,
    )?;
    show_quote("bob's order-2", &l2.quote);
    service.cancel(
        &order2,
        &Actor::System,
        &key("cancel-2")?,
        now + Duration::minutes(5),
    )?;
    println!(
        "  order-2 cancelled: {} is {}",
        b_welcome.id,
        state(&service, &b_welcome.id)?
    );

    println!("\n5. Refunds and expiry");
    // Bob orders again and pays; the merchant refunds before completion. The welcome template's
    // policy keeps its coupon voided; spring's default policy returns it.
    let order3 = OrderId::new("order-3")?;
    service.quote_and_lock(
        &LockRequest::new(&order3, &cart, &bob_buyer, &key("lock-3")?),
        now + Duration::minutes(6),
    )?;
    service.pay(
        &order3,
        &Actor::System,
        &key("pay-3")?,
        now + Duration::minutes(7),
    )?;
    let r3 = service.refund(
        &order3,
        &Actor::Merchant,
        &RefundRequest::whole(RefundKind::Merchant),
        &key("refund-3")?,
        now + Duration::hours(1),
    )?;
    println!(
        "  order-3 merchant refund: returned [{}], voided [{}]",
        r3.returned
            .iter()
            .map(CouponId::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        r3.voided
            .iter()
            .map(CouponId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Alice sends back one of her three oolong packs: she gets back exactly that unit's part
    // of what she paid, and keeps her coupons' discount on what she keeps.
    let part = service.refund(
        &order1,
        &Actor::Buyer(alice.clone()),
        &RefundRequest::units(
            RefundKind::Buyer,
            vec![RefundUnits {
                line: 0,
                quantity: 1,
            }],
        ),
        &key("refund-1a")?,
        now + Duration::hours(2),
    )?;
    println!("  order-1 partial refund: {}", part.refund);
    // Then the rest, for her own reason: by default coupons are not returned; the tea
    // template's policy returns its coupon.
    let r1 = service.refund(
        &order1,
        &Actor::Buyer(alice.clone()),
        &RefundRequest::whole(RefundKind::Buyer),
        &key("refund-1")?,
        now + Duration::hours(3),
    )?;
    println!("  order-1 the rest:       {}", r1.refund);
    println!("  {}", service.order(&order1)?);
    let r1_again = service.refund(
        &order1,
        &Actor::Buyer(alice.clone()),
        &RefundRequest::whole(RefundKind::Buyer),
        &key("refund-1")?,
        now + Duration::hours(3),
    )?;
    println!("  retried refund: replayed = {}", r1_again.replayed);
    // Who may do what is a table (see `Actor::permits`): a buyer never refunds for the
    // merchant's reason, nor acts on another buyer's order.
    if let Err(e) = service.refund(
        &order3,
        &Actor::Buyer(alice.clone()),
        &RefundRequest::whole(RefundKind::Buyer),
        &key("refund-3-by-alice")?,
        now + Duration::hours(3),
    ) {
        println!("  refused: {e}");
    }
    // A week later the sweep expires what was never used.
    let later = now + Duration::days(8);
    let swept = service.sweep(later, 1000)?;
    println!(
        "  sweep at {later}: expired {}",
        swept
            .expired
            .iter()
            .map(CouponId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in [
        &a_spring, &a_spring2, &a_ship, &a_tea, &a_welcome, &b_welcome, &b_spring,
    ] {
        println!("  {:<36} {}", c.id.as_str(), state(&service, &c.id)?);
    }
    // Every change above appended its events in the same commit; the feed reads them in order.
    println!("\n6. The event feed, in commit order");
    let mut after = 0;
    loop {
        let page = service.repository().events(after, 50)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            println!("  {e}");
        }
    }
    println!("\ndone in {} µs", started.elapsed().as_micros());
    Ok(())
}
