//! # coupons
//!
//! An embeddable coupon engine for Rust commerce backends: coupon rules as validated data,
//! exact money, a checkout that finds the provably best combination of coupons and says why
//! the others do not apply, and a coupon lifecycle — approval, campaigns, claiming, locking,
//! redemption, refunds, expiry — that never loses or double-spends a coupon, behind a storage
//! trait you implement for your own database.
//!
//! The core is pure: rules, eligibility, selection, state transitions and the arithmetic are
//! functions of their inputs, the current time included (`now` is always a parameter; nothing
//! here reads the clock). Storage lives behind [`repository::Repository`], one small trait of
//! versioned reads and one atomic conditional batch write; [`repository::MemoryStore`] is the
//! embedded default. [`service::Service`] is the thin shell a web handler calls.
//!
//! ## A first checkout
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, TimeZone, Utc};
//! use coupons::cart::{Buyer, Cart, CartLine};
//! use coupons::checkout::{Checkout, Offer, StackingPolicy};
//! use coupons::id::{Channel, CouponId, Sku, TemplateId, UserId};
//! use coupons::money::{Currency, Money};
//! use coupons::rule::{Benefit, Percent, Span, TemplateSpec, Validity};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let now = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
//!
//! // 满200减25: spend 200, save 25. Rules are data, checked when built.
//! let spend_200 = TemplateSpec::new(
//!     TemplateId::new("spend-200-save-25")?, "Spend 200, save 25", cny,
//!     Benefit::threshold(yuan(200), yuan(25))?,
//!     Validity::relative(Span::Days(7), None)?,
//! ).build()?;
//! let wallet = [Offer::coupon(CouponId::new("c-1")?, Arc::new(spend_200), now, now + Duration::days(7))];
//!
//! let cart = Cart::new(cny, vec![CartLine::new(Sku::new("tea")?, yuan(120), 2)], yuan(0))?;
//! let buyer = Buyer::new(UserId::new("alice")?, Channel::new("app")?);
//! let policy = StackingPolicy::default();
//! let quote = Checkout::new(&cart, &buyer, now, &policy).offers(&wallet).best()?;
//!
//! assert_eq!(quote.saving, yuan(25));
//! assert_eq!(quote.total_after, yuan(215));
//! // Each line knows its share of every discount, to the fen.
//! assert_eq!(quote.lines[0].shares[0].amount, yuan(25));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The parts
//!
//! - [`money`] — [`Currency`](money::Currency) with its minor unit, [`Money`](money::Money),
//!   explicit [`Rounding`](money::Rounding), and [`apportion`](money::apportion), which splits
//!   an amount over weighted parts summing exactly to it.
//! - [`id`] — one newtype per identifier (`Sku`, `UserId`, `Channel`, `StackingGroup`…).
//! - [`rule`] — the coupon [`Template`](rule::Template): its [`Benefit`](rule::Benefit)
//!   (instant, threshold with tiers, every-threshold, percent, shipping, buy-N-get-M, fixed
//!   price), scope, conditions (audience, segments, channels, schedule), validity, limits,
//!   stacking and distribution (private coupons, promo codes, automatic promotions). Valid by
//!   construction; JSON goes through the same checks.
//! - [`cart`] — the [`Cart`](cart::Cart) and the [`Buyer`](cart::Buyer) at checkout.
//! - [`checkout`] — evaluation with reasons, the exact best combination under a documented
//!   [`StackingPolicy`](checkout::StackingPolicy), the buyer's own choice, and the
//!   [`Quote`](checkout::Quote) with per-line shares; a
//!   [`PromotionIndex`](checkout::PromotionIndex) for tens of thousands of automatic
//!   promotions.
//! - [`lifecycle`] — template approval, campaigns and the coupon state machine as pure
//!   transitions.
//! - [`prelude`] — the types of the common flow, in one `use coupons::prelude::*;`.
//! - [`events`] — the event feed every state change appends to, in the same commit.
//! - [`guard`] — windowed counters over user, device, IP, subnet and payment account, counted
//!   in the claim's or lock's own batch: abuse rules and frequency caps.
//! - [`issuing`] — automated issuing: triggers, rules, guards, explained decisions, dry runs.
//! - [`repository`] — the storage trait and the in-memory store.
//! - [`service`] — one call per step a web handler makes: claim, quote and lock, pay, cancel,
//!   refund, sweep — every one idempotent under a caller's key.
//! - `testkit` (feature `testkit`) — the conformance suite for your own repository.
//!
//! ## Features
//!
//! - `serde` (default): `Serialize`/`Deserialize` for rules, quotes and records; deserialising
//!   validates.
//! - `testkit`: the repository conformance suite.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The `chrono` crate, whose instants and durations appear in the API: use it as
/// `coupons::chrono` and no version-matched direct dependency is needed.
pub use chrono;
/// The `rust_decimal` crate, whose `Decimal` is inside every [`money::Money`].
pub use rust_decimal;

pub mod analytics;
pub mod attributes;
pub mod budget;
pub mod cart;
pub mod checkout;
pub mod codes;
#[cfg(feature = "serde")]
mod de;
pub mod events;
pub mod guard;
mod hash;
pub mod id;
pub mod issuing;
pub mod lifecycle;
pub mod money;
mod plan;
pub mod prelude;
pub mod repository;
pub mod rule;
pub mod service;
pub mod targeting;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;

/// The README's code, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
