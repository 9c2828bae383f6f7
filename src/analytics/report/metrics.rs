//! One group's counters, and the key that names the group.

use std::sync::Arc;

use chrono::NaiveDate;

use super::durations::Durations;
use crate::analytics::Rate;
use crate::attributes::AttrValue;
use crate::id::{CampaignId, Channel, TemplateId};

/// The finest group a report counts in: every coupon event lands in exactly one. Coarser
/// views ([`Report::by`](super::Report::by)) add groups up.
///
/// A field is `None` where the event does not say (an order without a coupon has no
/// template; a coupon without the `arm` attribute is in no arm; a user the segment lookup
/// does not know is in no segment).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GroupKey {
    /// The day, in the report's UTC offset, of the event.
    pub day: NaiveDate,
    /// The coupon's template.
    pub template: Option<TemplateId>,
    /// The coupon's campaign.
    pub campaign: Option<CampaignId>,
    /// The channel the coupon was issued (or offered) through.
    pub channel: Option<Channel>,
    /// The user's segment, from the caller's lookup.
    pub segment: Option<Arc<str>>,
    /// The experiment arm recorded on the coupon (attribute `arm`).
    pub arm: Option<AttrValue>,
}

/// The counters of one group (or of several added up). Money is in whole minor units of the
/// report's currency, exactly; rates are kept as their two counts.
///
/// What each counter counts, and from which event:
///
/// | counter | event |
/// |---|---|
/// | `offered` | `Offered` |
/// | `claimed`, `claimed_new`, `claimed_known` | `Issued` (new: the caller's predicate said the owner was new at the claim; known: it said either way) |
/// | `used`, `discount_minor`, `time_to_use` | `Redeemed` (its saving; its time since the coupon's claim) |
/// | `coupon_orders`, `coupon_sales_minor` | `OrderPaid` with coupons, joined to its `Redeemed` coupons and counted once, in the group of the coupon that saved the most (ties: the smallest coupon id); sales are gross − discount |
/// | `plain_orders`, `plain_sales_minor` | `OrderPaid` without coupons (no template, campaign, channel or arm) |
/// | `expired`, `voided` | `Expired`, `Voided` (by an administrator) |
/// | `expired_value_minor`, `expired_valued`, `voided_value_minor`, `voided_valued` | the same events: the face value of the coupon's template, from the caller's [`Lookup::face_value`](super::Lookup::face_value), and how many coupons it valued |
/// | `refunded`, `refunded_returned` | `Refunded` (the coupon of a refunded order; returned to the wallet or voided) |
/// | `refunded_saving_minor`, `refunded_valued` | `Refunded`: what the coupon had saved in the order (the event's `saving`), and how many events carried it |
/// | `coupon_refunds`, `coupon_refunded_minor`, `plain_refunds`, `plain_refunded_minor` | `OrderRefunded` (each partial or whole refund; what it paid back): of an order with coupons in the group of its lead coupon (the event lists the order's coupons and savings), else with the orders without a coupon |
/// | `released` | `Released` (an unpaid order let go of the coupon) |
/// | `refused` | `Refused` (out of stock, a limit, a guard) |
/// | `repurchased`, `not_repurchased` | the next paid order of a coupon order's buyer came within the report's window, or later |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Metrics {
    /// Coupons shown to users.
    pub offered: u64,
    /// Coupons issued.
    pub claimed: u64,
    /// Coupons issued to users who were new.
    pub claimed_new: u64,
    /// Coupons issued to users whose newness the caller knew.
    pub claimed_known: u64,
    /// Coupons redeemed by a paid order.
    pub used: u64,
    /// The savings of redeemed coupons, in minor units.
    pub discount_minor: i128,
    /// Paid orders that used a coupon (counted in the group of their main coupon).
    pub coupon_orders: u64,
    /// What those orders paid (gross − discount), in minor units.
    pub coupon_sales_minor: i128,
    /// Paid orders without a coupon.
    pub plain_orders: u64,
    /// What those orders paid, in minor units.
    pub plain_sales_minor: i128,
    /// Coupons that expired unused.
    pub expired: u64,
    /// Coupons voided by an administrator.
    pub voided: u64,
    /// The face value of the expired coupons the lookup valued, in minor units.
    #[cfg_attr(feature = "serde", serde(default))]
    pub expired_value_minor: i128,
    /// How many expired coupons the lookup valued.
    #[cfg_attr(feature = "serde", serde(default))]
    pub expired_valued: u64,
    /// The face value of the voided coupons the lookup valued, in minor units.
    #[cfg_attr(feature = "serde", serde(default))]
    pub voided_value_minor: i128,
    /// How many voided coupons the lookup valued.
    #[cfg_attr(feature = "serde", serde(default))]
    pub voided_valued: u64,
    /// Coupons of refunded orders.
    pub refunded: u64,
    /// Of those, the ones returned to the wallet (the rest were voided).
    pub refunded_returned: u64,
    /// What the refunded coupons had saved in their orders, in minor units (given back with
    /// the refunds).
    #[cfg_attr(feature = "serde", serde(default))]
    pub refunded_saving_minor: i128,
    /// How many refunded coupons' events carried their saving.
    #[cfg_attr(feature = "serde", serde(default))]
    pub refunded_valued: u64,
    /// Refunds (each partial or whole refund once) of orders that used a coupon, counted on
    /// the refund's day where the order's sales were: in the group of its lead coupon.
    #[cfg_attr(feature = "serde", serde(default))]
    pub coupon_refunds: u64,
    /// What those refunds paid back, in minor units.
    #[cfg_attr(feature = "serde", serde(default))]
    pub coupon_refunded_minor: i128,
    /// Refunds of orders without a coupon.
    #[cfg_attr(feature = "serde", serde(default))]
    pub plain_refunds: u64,
    /// What those refunds paid back, in minor units.
    #[cfg_attr(feature = "serde", serde(default))]
    pub plain_refunded_minor: i128,
    /// Coupons released by unpaid orders.
    pub released: u64,
    /// Claims or locks refused.
    pub refused: u64,
    /// Coupon orders whose buyer paid again within the window.
    pub repurchased: u64,
    /// Coupon orders whose buyer's next paid order came after the window.
    pub not_repurchased: u64,
    /// Time from claim to use.
    pub time_to_use: Durations,
}

/// `a + b` for counters: saturating (a count past `u64::MAX` is not reachable by events).
fn add(a: &mut u64, b: u64) {
    *a = a.saturating_add(b);
}

impl Metrics {
    /// Adds another group's counters: the same as counting its events here.
    pub fn merge(&mut self, o: &Metrics) {
        add(&mut self.offered, o.offered);
        add(&mut self.claimed, o.claimed);
        add(&mut self.claimed_new, o.claimed_new);
        add(&mut self.claimed_known, o.claimed_known);
        add(&mut self.used, o.used);
        self.discount_minor = self.discount_minor.saturating_add(o.discount_minor);
        add(&mut self.coupon_orders, o.coupon_orders);
        self.coupon_sales_minor = self.coupon_sales_minor.saturating_add(o.coupon_sales_minor);
        add(&mut self.plain_orders, o.plain_orders);
        self.plain_sales_minor = self.plain_sales_minor.saturating_add(o.plain_sales_minor);
        add(&mut self.expired, o.expired);
        add(&mut self.voided, o.voided);
        self.expired_value_minor = self
            .expired_value_minor
            .saturating_add(o.expired_value_minor);
        add(&mut self.expired_valued, o.expired_valued);
        self.voided_value_minor = self.voided_value_minor.saturating_add(o.voided_value_minor);
        add(&mut self.voided_valued, o.voided_valued);
        add(&mut self.refunded, o.refunded);
        add(&mut self.refunded_returned, o.refunded_returned);
        self.refunded_saving_minor = self
            .refunded_saving_minor
            .saturating_add(o.refunded_saving_minor);
        add(&mut self.refunded_valued, o.refunded_valued);
        add(&mut self.coupon_refunds, o.coupon_refunds);
        self.coupon_refunded_minor = self
            .coupon_refunded_minor
            .saturating_add(o.coupon_refunded_minor);
        add(&mut self.plain_refunds, o.plain_refunds);
        self.plain_refunded_minor = self
            .plain_refunded_minor
            .saturating_add(o.plain_refunded_minor);
        add(&mut self.released, o.released);
        add(&mut self.refused, o.refused);
        add(&mut self.repurchased, o.repurchased);
        add(&mut self.not_repurchased, o.not_repurchased);
        self.time_to_use.merge(&o.time_to_use);
    }

    /// Claimed of offered, or `None` when more coupons were claimed than offered (coupons
    /// issued without an offer, e.g. automatically, or offers not recorded).
    pub fn claim_rate(&self) -> Option<Rate> {
        Rate::new(self.claimed, self.offered).ok()
    }

    /// Used of claimed, or `None` when more were used than claimed in this group (a day's
    /// uses of coupons claimed on earlier days).
    pub fn usage_rate(&self) -> Option<Rate> {
        Rate::new(self.used, self.claimed).ok()
    }

    /// New claimers of the claims whose owner's newness is known.
    pub fn new_user_rate(&self) -> Option<Rate> {
        Rate::new(self.claimed_new, self.claimed_known).ok()
    }

    /// Coupon orders whose buyer bought again within the window, of those decided.
    pub fn repurchase_rate(&self) -> Option<Rate> {
        Rate::new(
            self.repurchased,
            self.repurchased.saturating_add(self.not_repurchased),
        )
        .ok()
    }
}
