//! An issued coupon and its state machine.

use chrono::{DateTime, Utc};

use crate::id::{CampaignId, Channel, CouponId, OrderId, TemplateId, UserId};

/// Where a coupon is in its life.
///
/// ```text
/// Available ──lock──▶ Locked ──redeem──▶ Used ──refund (policy)──▶ Available | Voided
///     │  ▲              │
///     │  └──release─────┘ (cancel, or hold ran out; Expired if validity passed)
///     ├──expire──▶ Expired
///     └──void────▶ Voided
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "state", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum CouponState {
    /// In the wallet, usable within its validity.
    Available,
    /// Held by an unpaid order until `until`.
    Locked {
        /// The order holding it.
        order: OrderId,
        /// When the hold runs out.
        until: DateTime<Utc>,
    },
    /// Redeemed (核销) by a paid order.
    Used {
        /// The order.
        order: OrderId,
        /// When it was paid.
        at: DateTime<Utc>,
    },
    /// Validity passed before it was used.
    Expired {
        /// When it was marked expired.
        at: DateTime<Utc>,
    },
    /// Voided (作废) by an admin or by a refund that does not return it.
    Voided {
        /// When.
        at: DateTime<Utc>,
    },
}

/// One coupon issued from a template into one account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Coupon {
    /// Its id.
    pub id: CouponId,
    /// The template it follows.
    pub template: TemplateId,
    /// The account it is in.
    pub owner: UserId,
    /// The channel it was issued through (`registration`, `campaign`, `push`…).
    pub channel: Channel,
    /// The campaign it was issued in, if any.
    pub campaign: Option<CampaignId>,
    /// When it was issued.
    pub claimed_at: DateTime<Utc>,
    /// Usable from (inclusive).
    pub valid_from: DateTime<Utc>,
    /// Usable until (exclusive).
    pub valid_until: DateTime<Utc>,
    /// Its state.
    pub state: CouponState,
}
