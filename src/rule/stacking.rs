//! How a coupon combines with others in one order.

use crate::id::StackingGroup;

/// A coupon's stacking rules. The checkout's
/// [`StackingPolicy`](crate::checkout::StackingPolicy) says how many coupons of one group an
/// order may hold (one by default) and in which order stacked coupons apply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct Stacking {
    /// The stacking group: `platform` (the default), `shop:<id>`, `shipping`…
    pub group: StackingGroup,
    /// An exclusive coupon is used alone: no other coupon nor automatic promotion in the order.
    pub exclusive: bool,
    /// Whether it may be used in an order that also gets automatic promotions. Default true.
    pub with_promotions: bool,
    /// Among coupons of one phase, higher priority applies first. Default 0.
    pub priority: i32,
}

impl Stacking {
    /// The `platform` group, not exclusive, combinable with promotions, priority 0.
    pub fn platform() -> Stacking {
        Stacking::in_group(StackingGroup::trusted("platform"))
    }

    /// A group, not exclusive, combinable with promotions, priority 0.
    pub fn in_group(group: StackingGroup) -> Stacking {
        Stacking {
            group,
            exclusive: false,
            with_promotions: true,
            priority: 0,
        }
    }
}

impl Default for Stacking {
    fn default() -> Self {
        Stacking::platform()
    }
}
