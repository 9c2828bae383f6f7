//! The life of templates, campaigns and coupons as pure state machines.
//!
//! Every transition is a function of the current record, the request and `now`, returning the
//! new record or a [`LifecycleError`]; the [`service`](crate::service) stores what it decides.
//! Nothing here reads the clock or touches storage.
//!
//! - [`TemplateRecord`]: Draft → PendingApproval → Approved | Rejected; Approved → Active ⇄
//!   Paused → Retired. Only an Active template issues.
//! - [`Campaign`]: a window `[from, until)` with a manual online switch; its
//!   [`state`](Campaign::state) is derived from both.
//! - [`Coupon`]: issued by [`Coupon::issue`], then Available → Locked → Used, with release,
//!   refund, expiry and void (see [`CouponState`]).
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{Duration, TimeZone, Utc};
//! use coupons::id::{Channel, CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
//! use coupons::lifecycle::{ClaimMode, ClaimRequest, Coupon, CouponState, TemplateRecord};
//! use coupons::money::{Currency, Money};
//! use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
//!
//! let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
//! let template = TemplateSpec::new(
//!     TemplateId::new("ten-off")?,
//!     "10 off",
//!     Currency::CNY,
//!     Benefit::instant(Money::from_minor(1000, Currency::CNY))?,
//!     Validity::relative(Span::Days(7), None)?,
//! )
//! .build()?;
//! let record = TemplateRecord::draft(Arc::new(template))
//!     .submit()?
//!     .approve()?
//!     .activate()?;
//! let alice = UserId::new("alice")?;
//! let request = ClaimRequest::new(
//!     record.id().clone(),
//!     alice.clone(),
//!     Channel::new("app")?,
//!     ClaimMode::Click,
//!     IdempotencyKey::new("claim-1")?,
//! );
//! let coupon = Coupon::issue(&record, None, &request, CouponId::new("c-1")?, now)?;
//! assert_eq!(coupon.valid_until, now + Duration::days(7));
//!
//! let order = OrderId::new("o-1")?;
//! let locked = coupon.lock(&alice, &order, now + Duration::minutes(15), now)?;
//! let used = locked.redeem(&order, now + Duration::minutes(1))?;
//! assert!(matches!(used.state, CouponState::Used { .. }));
//! // A used coupon cannot be locked again:
//! assert!(used.lock(&alice, &order, now, now).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod campaign;
mod coupon;
mod order;
mod template;

use std::fmt;

use chrono::{DateTime, Utc};

pub use campaign::{Campaign, CampaignState};
pub use coupon::{ClaimMode, ClaimRequest, Coupon, CouponAction, CouponState, RefundKind};
pub(crate) use order::clock;
pub use order::{
    Actor, Order, OrderAction, OrderRefund, OrderState, RefundRequest, RefundUnits, RefundedLine,
    ReleaseCause,
};
pub use template::{TemplateAction, TemplateRecord, TemplateStatus};

use crate::id::{CampaignId, CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::rule::PromoCode;

/// An illegal transition or a broken limit. Each variant carries what a caller needs to act:
/// the record, its current state, the attempted action, the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// A template action not allowed from the template's current status.
    #[error("template {template}: cannot {action} a template that is {status}")]
    IllegalTemplateTransition {
        /// The template.
        template: TemplateId,
        /// Its current status.
        status: TemplateStatus,
        /// What was attempted.
        action: TemplateAction,
    },
    /// Issuing from a template that is not Active.
    #[error("template {template} is {status}, not active: it does not issue coupons")]
    NotIssuing {
        /// The template.
        template: TemplateId,
        /// Its current status.
        status: TemplateStatus,
    },
    /// Claiming from a template whose coupons do not go into wallets (an automatic promotion
    /// or a promo code).
    #[error("template {template} is {distribution}: it is not claimed into wallets")]
    NotClaimable {
        /// The template.
        template: TemplateId,
        /// Its distribution: `automatic` or `promo_code`.
        distribution: &'static str,
    },
    /// The template's validity has no window left for a coupon claimed now.
    #[error("template {template}: claimed too late, validity has ended at {at}")]
    ClaimedTooLate {
        /// The template.
        template: TemplateId,
        /// The time of the claim.
        at: DateTime<Utc>,
    },
    /// Every coupon of the template has been issued.
    #[error("template {template} is out of stock: all {stock} coupons are issued")]
    OutOfStock {
        /// The template.
        template: TemplateId,
        /// Its total stock.
        stock: u64,
    },
    /// The user already claimed as many coupons of the template as allowed.
    #[error("user {user} already claimed {limit} coupons of template {template}")]
    ClaimLimitReached {
        /// The template.
        template: TemplateId,
        /// The user.
        user: UserId,
        /// The per-user claim limit.
        limit: u32,
    },
    /// A guard's window already holds its limit ([`crate::guard`]).
    #[error("guard {guard} held: {limit} per {window} already reached")]
    GuardHeld {
        /// The guard.
        guard: crate::id::GuardName,
        /// Its limit.
        limit: u64,
        /// Its window.
        window: crate::guard::Window,
    },
    /// The user already uses (or used) as many coupons of the template as allowed.
    #[error("user {user} already uses {limit} coupons of template {template}")]
    UseLimitReached {
        /// The template.
        template: TemplateId,
        /// The user.
        user: UserId,
        /// The per-user use limit.
        limit: u32,
    },
    /// A promo code no template owns.
    #[error("promo code {code} does not exist")]
    UnknownCode {
        /// The code.
        code: PromoCode,
    },
    /// A promo code used by as many orders as allowed.
    #[error("promo code {code} is used up: {limit} orders used it")]
    CodeExhausted {
        /// The code.
        code: PromoCode,
        /// Its redemption limit.
        limit: u64,
    },
    /// A promo code used by this user on as many orders as allowed.
    #[error("user {user} already used promo code {code} on {limit} orders")]
    CodeUserLimitReached {
        /// The code.
        code: PromoCode,
        /// The user.
        user: UserId,
        /// The per-user limit.
        limit: u32,
    },
    /// A promo code already reserved by another template (codes are unique).
    #[error("promo code {code} already belongs to template {template}")]
    CodeTaken {
        /// The code.
        code: PromoCode,
        /// The template that owns it.
        template: TemplateId,
    },
    /// A template with this id exists, with other rules.
    #[error("template {template} already exists")]
    TemplateExists {
        /// The template.
        template: TemplateId,
    },
    /// A campaign with this id exists.
    #[error("campaign {campaign} already exists")]
    CampaignExists {
        /// The campaign.
        campaign: CampaignId,
    },
    /// A campaign that cannot be built as given.
    #[error("campaign {campaign}: {reason}")]
    InvalidCampaign {
        /// The campaign.
        campaign: CampaignId,
        /// What is wrong.
        reason: &'static str,
    },
    /// Issuing in a campaign that is not ongoing.
    #[error("campaign {campaign} is {state}, not ongoing")]
    CampaignNotOngoing {
        /// The campaign.
        campaign: CampaignId,
        /// Its state at the time of the request.
        state: CampaignState,
    },
    /// Issuing a template a campaign does not offer.
    #[error("campaign {campaign} does not offer template {template}")]
    NotOffered {
        /// The campaign.
        campaign: CampaignId,
        /// The template.
        template: TemplateId,
    },
    /// A coupon action not allowed from the coupon's current state.
    #[error("coupon {coupon}: cannot {action} a coupon that is {}", state.name())]
    IllegalCouponTransition {
        /// The coupon.
        coupon: CouponId,
        /// Its current state.
        state: CouponState,
        /// What was attempted.
        action: CouponAction,
    },
    /// A coupon used by someone other than its owner.
    #[error("coupon {coupon} belongs to {owner}, not to {user}")]
    NotOwner {
        /// The coupon.
        coupon: CouponId,
        /// Its owner.
        owner: UserId,
        /// Who tried to use it.
        user: UserId,
    },
    /// A coupon used before its validity starts.
    #[error("coupon {coupon} is not valid before {valid_from}")]
    NotYetValid {
        /// The coupon.
        coupon: CouponId,
        /// When it becomes valid.
        valid_from: DateTime<Utc>,
    },
    /// A coupon used at or after the end of its validity.
    #[error("coupon {coupon} expired at {valid_until}")]
    ValidityEnded {
        /// The coupon.
        coupon: CouponId,
        /// When its validity ended.
        valid_until: DateTime<Utc>,
    },
    /// A coupon that is not locked by the order acting on it.
    #[error("coupon {coupon} is not held by order {order}")]
    NotHeldByOrder {
        /// The coupon.
        coupon: CouponId,
        /// The order that tried to pay or release it.
        order: OrderId,
        /// The coupon's state.
        state: CouponState,
    },
    /// Paying after both the hold and the coupon's validity ran out.
    #[error(
        "coupon {coupon}: the hold of order {order} ran out at {hold_until} and the coupon \
         expired at {valid_until}"
    )]
    HoldRanOut {
        /// The coupon.
        coupon: CouponId,
        /// The order paying.
        order: OrderId,
        /// When the hold ran out.
        hold_until: DateTime<Utc>,
        /// When the coupon's validity ended.
        valid_until: DateTime<Utc>,
    },
    /// Expiring a coupon still inside its validity.
    #[error("coupon {coupon} is valid until {valid_until}: it cannot expire yet")]
    NotYetExpired {
        /// The coupon.
        coupon: CouponId,
        /// When its validity ends.
        valid_until: DateTime<Utc>,
    },
    /// A coupon that was not redeemed by the order being refunded.
    #[error("coupon {coupon} was not used by order {order}")]
    NotUsedByOrder {
        /// The coupon.
        coupon: CouponId,
        /// The order being refunded.
        order: OrderId,
        /// The coupon's state.
        state: CouponState,
    },
    /// An order that already locked its coupons (an order locks once).
    #[error("order {order} already locked its coupons")]
    OrderAlreadyLocked {
        /// The order.
        order: OrderId,
    },
    /// Cancelling or releasing an order that was paid.
    #[error("order {order} is paid: its coupons are used")]
    OrderPaid {
        /// The order.
        order: OrderId,
    },
    /// Paying an order whose coupons were released (cancelled, or its hold ran out and was
    /// swept).
    #[error("order {order} was released: its coupons are no longer held")]
    OrderReleased {
        /// The order.
        order: OrderId,
    },
    /// Refunding an order that was not paid.
    #[error("order {order} is not paid")]
    OrderNotPaid {
        /// The order.
        order: OrderId,
    },
    /// Refunding an order that was already refunded in another way.
    #[error("order {order} was already refunded")]
    OrderAlreadyRefunded {
        /// The order.
        order: OrderId,
    },
    /// An actor acting beyond its authority (see [`Actor::permits`]).
    #[error("{actor} may not {action} {record}")]
    NotPermitted {
        /// Who tried.
        actor: Actor,
        /// What.
        action: OrderAction,
        /// The order or coupon.
        record: String,
    },
    /// A transition stamped earlier than the record's last one by more than the tolerated
    /// clock skew.
    #[error(
        "{record} last changed at {last}; a change at {now} is further back than the {tolerance_ms} ms of clock skew tolerated"
    )]
    ClockBehind {
        /// The order or coupon.
        record: String,
        /// Its last transition.
        last: DateTime<Utc>,
        /// The request's `now`.
        now: DateTime<Utc>,
        /// The tolerance, in milliseconds.
        tolerance_ms: i64,
    },
    /// An order action not allowed from the order's state.
    #[error("order {order} is {state}: cannot {action} it")]
    IllegalOrderTransition {
        /// The order.
        order: OrderId,
        /// Its state's name.
        state: &'static str,
        /// What was attempted.
        action: OrderAction,
    },
    /// A refund that names no line of the order, more units than are left, or nothing.
    #[error("order {order}: invalid refund: {why}")]
    InvalidRefund {
        /// The order.
        order: OrderId,
        /// What is wrong.
        why: String,
    },
    /// An idempotency key reused for a different request.
    #[error("idempotency key {key} was already used for another {operation} request")]
    KeyReused {
        /// The key.
        key: IdempotencyKey,
        /// The operation.
        operation: &'static str,
    },
}

impl fmt::Display for TemplateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CampaignState::NotStarted => "not started",
            CampaignState::Ongoing => "ongoing",
            CampaignState::Ended => "ended",
            CampaignState::Offline => "offline",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn lifecycle_error_is_send_sync_static() {
        assert_send_sync::<LifecycleError>();
    }
}
