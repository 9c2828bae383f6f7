//! The types of the common flow — rules, a cart, the checkout, the lifecycle service on the
//! in-memory store — in one import, with the `chrono` and `rust_decimal` types the API uses.
//!
//! ```
//! use coupons::prelude::*;
//!
//! let now = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
//! let service = Service::new(MemoryStore::new());
//! let spec = TemplateSpec::new(
//!     TemplateId::new("ten-off")?, "10 off", Currency::CNY,
//!     Benefit::instant(Money::from_minor(1000, Currency::CNY))?,
//!     Validity::relative(Span::Days(7), None)?,
//! );
//! let id = spec.id.clone();
//! service.create_template(spec.build()?, now)?;
//! service.submit_template(&id, now)?;
//! service.approve_template(&id, now)?;
//! service.activate_template(&id, now)?;
//! let claim = ClaimRequest::new(id, UserId::new("ann")?, Channel::new("app")?,
//!     ClaimMode::Click, IdempotencyKey::new("claim-1")?);
//! let coupon = service.claim(&claim, now)?.coupon;
//! assert_eq!(coupon.state.to_string(), "available");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::attributes::{AttrKey, AttrValue, Attributes};
pub use crate::cart::{Buyer, Cart, CartLine, CustomerKind};
pub use crate::checkout::{
    Checkout, Evaluation, Ineligible, Offer, OfferId, Quote, StackingPolicy,
};
pub use crate::events::{Event, EventKind, Logged};
pub use crate::guard::{Action, Context, Guard, Subject, Window};
pub use crate::id::{
    CampaignId, CategoryId, Channel, CouponId, DeviceId, GuardName, IdempotencyKey, OrderId,
    PaymentAccount, SegmentId, ShopId, Sku, StackingGroup, TemplateId, UserId,
};
pub use crate::lifecycle::{
    Campaign, ClaimMode, ClaimRequest, Coupon, CouponState, LifecycleError, RefundKind,
    TemplateStatus,
};
pub use crate::money::{Currency, Money, Rounding};
pub use crate::repository::{MemoryStore, Repository, TrimEvents};
pub use crate::rule::{Benefit, Limits, Span, Stacking, Template, TemplateSpec, Validity};
pub use crate::service::{ErrorKind, LockRequest, Service, ServiceConfig, ServiceError};
pub use chrono::{DateTime, Duration, TimeZone, Utc};
pub use rust_decimal::Decimal;
