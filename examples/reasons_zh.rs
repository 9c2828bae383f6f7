//! Rendering checkout reasons in Chinese (zh-CN) from their fields.
//!
//! Every [`Ineligible`] is a typed value with public fields; its `Display` is English. An app
//! that speaks another language renders its own words from the fields, as here:
//!
//! ```text
//! cargo run --example reasons_zh
//! ```

use std::sync::Arc;

use chrono::{Duration, FixedOffset, TimeZone, Utc};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::checkout::{
    Blocked, Checkout, Excluded, ExcludedBy, Ineligible, Named, Offer, StackingPolicy,
};
use coupons::id::{CategoryId, Channel, CouponId, Sku, StackingGroup, TemplateId, UserId};
use coupons::money::{Currency, Money};
use coupons::rule::{
    AudienceMiss, Benefit, Conditions, ConditionsSpec, Percent, Scope, ScopeSpec, Span, Stacking,
    TemplateSpec, Validity,
};

/// 「name」 for another offer.
fn offer(n: &Named) -> String {
    format!("「{}」", n.name)
}

fn excluded(e: &Excluded) -> String {
    let sku = &e.sku;
    match &e.by {
        ExcludedBy::Sku => format!("{sku} 不参与活动"),
        ExcludedBy::Category { category } => format!("{sku} 属于不参与的类目 {category}"),
        ExcludedBy::Shop => format!("{sku} 不是本店商品"),
        ExcludedBy::SaleItem => format!("{sku} 已在促销中"),
        ExcludedBy::NotIncluded => format!("{sku} 不在可用商品范围内"),
        _ => e.to_string(),
    }
}

fn yuan(m: &Money) -> String {
    format!("¥{}", m.amount())
}

/// One reason in Chinese, from its fields; a reason this app does not know yet falls back to
/// the English text.
fn zh(r: &Ineligible) -> String {
    match r {
        Ineligible::Unavailable { blocked } => match blocked {
            Blocked::Locked => "已被其他未支付订单占用".into(),
            Blocked::Used => "已使用".into(),
            Blocked::Expired => "已过期".into(),
            Blocked::Voided => "已作废".into(),
            Blocked::UseLimitReached => "已达到使用次数上限".into(),
            Blocked::UsesHeld => "同款券已被未支付订单占用，订单取消后可再用".into(),
            Blocked::CodeExhausted => "优惠码已被领完".into(),
            Blocked::Inactive => "活动未开始或已结束".into(),
            _ => r.to_string(),
        },
        Ineligible::NotYetValid { from } => {
            format!("{} 起可用", from.format("%Y年%m月%d日 %H:%M"))
        }
        Ineligible::Expired { at } => format!("已于 {} 过期", at.format("%Y年%m月%d日 %H:%M")),
        Ineligible::CurrencyMismatch { coupon, .. } => format!("仅限 {coupon} 订单使用"),
        Ineligible::Audience { miss } => match miss {
            AudienceMiss::NewUsersOnly => "仅限新用户".into(),
            AudienceMiss::ReturningUsersOnly => "仅限老用户".into(),
            AudienceMiss::MembershipLevel => "仅限指定会员等级".into(),
            AudienceMiss::Segment => "仅限指定人群".into(),
            AudienceMiss::NamedUsers => "此券不属于当前账号".into(),
            _ => r.to_string(),
        },
        Ineligible::Channel { channel } => format!("不支持在 {channel} 渠道使用"),
        Ineligible::OutsideSchedule => "当前时段不可用".into(),
        Ineligible::NoItemInScope { excluded: list } if list.is_empty() => {
            "购物车中没有可用商品".into()
        }
        Ineligible::NoItemInScope { excluded: list } => {
            let parts: Vec<String> = list.iter().map(excluded).collect();
            format!("购物车商品均不可用：{}", parts.join("；"))
        }
        Ineligible::SpendMore { missing } => format!("还差 {} 可用", yuan(missing)),
        Ineligible::MoreItems { missing } => format!("再买 {missing} 件可用"),
        Ineligible::AboveMaxSubtotal { max, .. } => {
            format!("仅限可用商品金额不超过 {} 的订单", yuan(max))
        }
        Ineligible::RequiresItems { missing, .. } => format!("还需加购 {missing} 件指定商品"),
        Ineligible::NoShippingFee => "订单无运费可减".into(),
        Ineligible::NothingToSave => "此订单无可优惠金额".into(),
        Ineligible::GroupFull { with, .. } => {
            let names: Vec<String> = with.iter().map(offer).collect();
            format!("不可与已选的{}同时使用", names.join("、"))
        }
        Ineligible::ExclusiveSelected { with } => format!("不可与已选的{}同时使用", offer(with)),
        Ineligible::ExclusiveNeedsAlone => "仅限单独使用".into(),
        Ineligible::RefusesPromotions { promotion } => {
            format!("不可与进行中的活动{}同享", offer(promotion))
        }
        Ineligible::RefusedBy { offer: o } => format!("已选的{}不可与活动同享", offer(o)),
        Ineligible::MaxCoupons { max } => format!("每单最多使用 {max} 张券"),
        Ineligible::PerOrderLimit { max, .. } => format!("每单最多使用 {max} 张此券"),
        Ineligible::NoExtraSaving => "叠加后不能带来更多优惠".into(),
        Ineligible::LosesThreshold {
            offer: o,
            shipping,
            missing,
        } => {
            let what = if *shipping { "包邮券" } else { "优惠" };
            format!(
                "使用后将失去{what}{}（门槛还差 {}）",
                offer(o),
                yuan(missing)
            )
        }
        _ => r.to_string(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cny = Currency::CNY;
    let fen = |n: i64| Money::from_minor(n, cny);
    let now = Utc
        .with_ymd_and_hms(2026, 11, 11, 4, 0, 0)
        .single()
        .ok_or("instant")?;
    let week = Validity::relative(Span::Days(7), None)?;
    let template =
        |id: &str, name: &str, b: Benefit| -> Result<TemplateSpec, Box<dyn std::error::Error>> {
            Ok(TemplateSpec::new(TemplateId::new(id)?, name, cny, b, week))
        };
    let coupon =
        |id: &str, t: TemplateSpec, until: i64| -> Result<Offer, Box<dyn std::error::Error>> {
            Ok(Offer::coupon(
                CouponId::new(id)?,
                Arc::new(t.build()?),
                now - Duration::days(1),
                now + Duration::hours(until),
            ))
        };

    let liquor = CategoryId::new("liquor")?;
    let no_liquor = template(
        "no-liquor",
        "全场8折（酒类除外）",
        Benefit::percent(Percent::new(20.into())?, None)?,
    )?
    .scope(Scope::try_from(ScopeSpec {
        exclude_categories: [liquor.clone()].into(),
        ..ScopeSpec::default()
    })?);
    let ship = template("ship-99", "满99包邮", Benefit::shipping(None)?)?
        .conditions(Conditions::try_from(ConditionsSpec {
            min_subtotal: Some(fen(9900)),
            ..ConditionsSpec::default()
        })?)
        .stacking(Stacking::in_group(StackingGroup::new("shipping")?));
    let ten = template("ten-off", "立减10元", Benefit::instant(fen(1000))?)?;
    let twenty = template("twenty-off", "店铺立减20元", Benefit::instant(fen(2000))?)?;
    let big = template(
        "300-50",
        "满300减50",
        Benefit::threshold(fen(30000), fen(5000))?,
    )?
    .stacking(Stacking::in_group(StackingGroup::new("shop")?));

    let wallet = vec![
        coupon("c-liquor", no_liquor, 48)?,
        coupon("c-ship", ship, 48)?,
        coupon("c-ten", ten, 48)?,
        coupon("c-twenty", twenty, 48)?.with_blocked(Blocked::Used),
        coupon("c-big", big, -2)?,
    ];
    let cart = Cart::new(
        cny,
        vec![CartLine::new(Sku::new("baijiu-500ml")?, fen(10000), 1).in_category(liquor)],
        fen(800),
    )?;
    let buyer = Buyer::new(UserId::new("u-1")?, Channel::new("app")?)
        .in_offset(FixedOffset::east_opt(8 * 3600).ok_or("offset")?);
    let policy = StackingPolicy::default();
    let checkout = Checkout::new(&cart, &buyer, now, &policy).offers(&wallet);
    let ship_id = wallet[1].id.clone();
    let quote = checkout.with_selection(std::slice::from_ref(&ship_id))?;

    println!("{:<12} {:<44} English", "优惠券", "中文");
    for e in &quote.offers {
        let state = if e.selected { "已选" } else { "" };
        for r in e.reasons.iter() {
            println!("{:<12} {:<40} {r}", e.offer.to_string(), zh(r));
        }
        if e.reasons.is_empty() {
            println!("{:<12} {state}", e.offer.to_string());
        }
    }
    Ok(())
}
