//! The event feed: every state change of the lifecycle, as typed values, in commit order.
//!
//! Every batch that changes a template, campaign, coupon or order also appends the events that
//! describe the change ([`Op::Emit`](crate::repository::Op::Emit)), in the same atomic commit:
//! an event is never written for a change that did not commit, and a change never commits
//! without its events. The store gives each event the next number of one increasing
//! [`Sequence`]; [`Repository::events`](crate::repository::Repository::events) pages through the
//! feed after a saved position. Analytics folds this feed, and a relay can forward it to a
//! message broker or webhooks (read after the last forwarded sequence, forward, save the
//! position: at-least-once delivery, with the sequence as the consumer's de-duplication key).
//!
//! Refusals worth counting — out of stock, a limit reached, a guard that held — are events too
//! ([`EventKind::Refused`]); they are committed on their own and change no state.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coupons::events::{Event, EventKind};
//! use coupons::id::{TemplateId, UserId};
//! let at = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
//! let e = Event::new(at, EventKind::Offered {
//!     template: TemplateId::new("spend-200-save-25")?,
//!     user: UserId::new("alice")?,
//!     channel: coupons::id::Channel::new("app")?,
//!     campaign: None,
//!     attributes: Default::default(),
//! });
//! assert_eq!(e.to_string(), "2026-11-11 20:00:00 UTC offered spend-200-save-25 to alice via app");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use chrono::{DateTime, Utc};

use crate::attributes::Attributes;
use crate::id::{CampaignId, Channel, CouponId, OrderId, TemplateId, UserId};
use crate::lifecycle::{ClaimMode, Coupon, TemplateStatus};
use crate::money::Money;

/// An event's position in the feed: 1 for the first event a store appends, then +1 for each.
pub type Sequence = u64;

/// One state change (or a counted refusal), as written in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// When it happened (the operation's `now`).
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// An event at `at`.
    pub fn new(at: DateTime<Utc>, kind: EventKind) -> Event {
        Event { at, kind }
    }
}

/// An event as stored: with its position in the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Logged {
    /// Its position, assigned by the store at commit.
    pub seq: Sequence,
    /// The event.
    pub event: Event,
}

/// What every coupon event says about its coupon: enough to group it by template, campaign,
/// channel, owner and attributes (an experiment arm) and to time it from its claim, without
/// reading the coupon back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CouponFacts {
    /// The coupon.
    pub id: CouponId,
    /// Its template.
    pub template: TemplateId,
    /// Its owner.
    pub user: UserId,
    /// The channel it was issued through.
    pub channel: Channel,
    /// The campaign it was issued in, if any.
    pub campaign: Option<CampaignId>,
    /// When it was issued.
    pub claimed_at: DateTime<Utc>,
    /// Its attributes.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Attributes::is_empty")
    )]
    pub attributes: Attributes,
}

impl CouponFacts {
    /// The facts of a coupon record.
    pub fn of(coupon: &Coupon) -> CouponFacts {
        CouponFacts {
            id: coupon.id.clone(),
            template: coupon.template.clone(),
            user: coupon.owner.clone(),
            channel: coupon.channel.clone(),
            campaign: coupon.campaign.clone(),
            claimed_at: coupon.claimed_at,
            attributes: coupon.attributes.clone(),
        }
    }
}

/// A coupon an order holds and what it saved in the order's quote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OrderCoupon {
    /// The coupon.
    pub coupon: CouponFacts,
    /// What it saved in the order, as locked.
    pub saving: Money,
}

/// Why a claim or lock was refused, when the refusal is counted in the feed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "reason", rename_all = "snake_case")
)]
pub enum Refusal {
    /// The template's stock is exhausted.
    OutOfStock,
    /// The user reached the template's per-user claim limit.
    ClaimLimit,
    /// A promo code reached its total or per-user use limit.
    CodeLimit,
    /// A guard held: its name.
    Guard {
        /// The guard's name.
        guard: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::OutOfStock => f.write_str("out of stock"),
            Refusal::ClaimLimit => f.write_str("claim limit reached"),
            Refusal::CodeLimit => f.write_str("code use limit reached"),
            Refusal::Guard { guard } => write!(f, "guard {guard} held"),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "type", rename_all = "snake_case")
)]
pub enum EventKind {
    /// A template was created or moved to another status (submitted, approved, active…).
    TemplateChanged {
        /// The template.
        template: TemplateId,
        /// Its new status.
        status: TemplateStatus,
    },
    /// A campaign was created or switched on or off.
    CampaignChanged {
        /// The campaign.
        campaign: CampaignId,
        /// Whether it is switched on.
        online: bool,
    },
    /// A coupon was shown to a user, who may claim it (the denominator of the claim rate).
    Offered {
        /// The template offered.
        template: TemplateId,
        /// The user it was shown to.
        user: UserId,
        /// Where it was shown.
        channel: Channel,
        /// The campaign, if any.
        campaign: Option<CampaignId>,
        /// What the offer is recorded with, as a coupon claimed from it would be: e.g. the
        /// experiment and arm of the user (`experiment`, `arm`), so that offers count per arm.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Attributes::is_empty")
        )]
        attributes: Attributes,
    },
    /// A coupon was issued into a wallet.
    Issued {
        /// The coupon.
        coupon: CouponFacts,
        /// How it was claimed.
        mode: ClaimMode,
    },
    /// An order locked a coupon.
    Locked {
        /// The coupon.
        coupon: CouponFacts,
        /// The order.
        order: OrderId,
        /// What the coupon saves in the order as locked.
        saving: Money,
    },
    /// A paid order redeemed a coupon.
    Redeemed {
        /// The coupon.
        coupon: CouponFacts,
        /// The order.
        order: OrderId,
        /// What the coupon saved.
        saving: Money,
    },
    /// A coupon held by an unpaid order went back to the wallet.
    Released {
        /// The coupon.
        coupon: CouponFacts,
        /// The order that held it.
        order: OrderId,
    },
    /// A coupon's validity ran out unused.
    Expired {
        /// The coupon.
        coupon: CouponFacts,
    },
    /// A refunded order's coupon was returned to the wallet or voided.
    Refunded {
        /// The coupon.
        coupon: CouponFacts,
        /// The order.
        order: OrderId,
        /// Whether the coupon went back to the wallet (else it was voided).
        returned: bool,
        /// What the coupon had saved in the order (its `Redeemed` saving), given back with
        /// the refund; `None` in events written before it was recorded.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        saving: Option<Money>,
    },
    /// A coupon was voided by an administrator.
    Voided {
        /// The coupon.
        coupon: CouponFacts,
    },
    /// An order locked its discounts (coupons, codes and promotions).
    OrderPlaced {
        /// The order.
        order: OrderId,
        /// The buyer.
        user: UserId,
        /// The goods and shipping before discounts.
        gross: Money,
        /// Everything the discounts take off.
        discount: Money,
        /// How many coupons it holds.
        coupons: u32,
    },
    /// An order was paid.
    OrderPaid {
        /// The order.
        order: OrderId,
        /// The buyer.
        user: UserId,
        /// The goods and shipping before discounts.
        gross: Money,
        /// Everything the discounts took off.
        discount: Money,
        /// How many coupons it redeemed.
        coupons: u32,
    },
    /// An unpaid order was cancelled or its hold ran out.
    OrderReleased {
        /// The order.
        order: OrderId,
        /// The buyer.
        user: UserId,
    },
    /// A paid order was refunded.
    OrderRefunded {
        /// The order.
        order: OrderId,
        /// The buyer.
        user: UserId,
        /// Whether the merchant refunded (else the buyer asked for it).
        by_merchant: bool,
        /// What was paid back.
        amount: Money,
        /// The discount given back with it (the refunded units' shares).
        discount: Money,
        /// Whether nothing of the order is left to refund.
        whole: bool,
        /// The order's coupons and what each saved in it (all of them, whichever this refund
        /// returns; empty for an order without coupons): a report counts the refund where it
        /// counted the order's sales.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Vec::is_empty")
        )]
        coupons: Vec<OrderCoupon>,
    },
    /// A claim or lock was refused; no state changed.
    Refused {
        /// The user.
        user: UserId,
        /// The template concerned.
        template: TemplateId,
        /// Why.
        refusal: Refusal,
    },
}

impl EventKind {
    /// The short name of the kind (`issued`, `redeemed`…), as in its JSON `type`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::TemplateChanged { .. } => "template_changed",
            EventKind::CampaignChanged { .. } => "campaign_changed",
            EventKind::Offered { .. } => "offered",
            EventKind::Issued { .. } => "issued",
            EventKind::Locked { .. } => "locked",
            EventKind::Redeemed { .. } => "redeemed",
            EventKind::Released { .. } => "released",
            EventKind::Expired { .. } => "expired",
            EventKind::Refunded { .. } => "refunded",
            EventKind::Voided { .. } => "voided",
            EventKind::OrderPlaced { .. } => "order_placed",
            EventKind::OrderPaid { .. } => "order_paid",
            EventKind::OrderReleased { .. } => "order_released",
            EventKind::OrderRefunded { .. } => "order_refunded",
            EventKind::Refused { .. } => "refused",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::TemplateChanged { template, status } => {
                write!(f, "template {template} is {status}")
            }
            EventKind::CampaignChanged { campaign, online } => {
                let s = if *online { "online" } else { "offline" };
                write!(f, "campaign {campaign} is {s}")
            }
            EventKind::Offered {
                template,
                user,
                channel,
                ..
            } => write!(f, "offered {template} to {user} via {channel}"),
            EventKind::Issued { coupon, .. } => write!(
                f,
                "issued {} to {} via {}",
                coupon.id, coupon.user, coupon.channel
            ),
            EventKind::Locked {
                coupon,
                order,
                saving,
                ..
            } => write!(f, "locked {} in order {order} (saves {saving})", coupon.id),
            EventKind::Redeemed {
                coupon,
                order,
                saving,
                ..
            } => write!(
                f,
                "redeemed {} in order {order} (saved {saving})",
                coupon.id
            ),
            EventKind::Released { coupon, order } => {
                write!(f, "released {} from order {order}", coupon.id)
            }
            EventKind::Expired { coupon } => write!(f, "{} expired", coupon.id),
            EventKind::Refunded {
                coupon,
                order,
                returned,
                ..
            } => {
                let what = if *returned { "returned" } else { "voided" };
                write!(f, "order {order} refunded: {} {what}", coupon.id)
            }
            EventKind::Voided { coupon } => write!(f, "{} voided", coupon.id),
            EventKind::OrderPlaced {
                order,
                user,
                gross,
                discount,
                ..
            } => write!(f, "order {order} placed by {user}: {gross} less {discount}"),
            EventKind::OrderPaid {
                order,
                gross,
                discount,
                ..
            } => write!(f, "order {order} paid: {gross} less {discount}"),
            EventKind::OrderReleased { order, .. } => write!(f, "order {order} released unpaid"),
            EventKind::OrderRefunded {
                order,
                by_merchant,
                amount,
                whole,
                ..
            } => {
                let by = if *by_merchant { "merchant" } else { "buyer" };
                let part = if *whole { "" } else { " in part" };
                write!(f, "order {order} refunded{part} ({by}): {amount} paid back")
            }
            EventKind::Refused {
                user,
                template,
                refusal,
            } => write!(f, "refused {template} to {user}: {refusal}"),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.kind
        )
    }
}

impl fmt::Display for Logged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {}", self.seq, self.event)
    }
}
