//! The life of templates, campaigns and coupons as pure state machines.
//!
//! Every transition is a function of the current record, the request and `now`, returning the
//! new record or a [`LifecycleError`]; the [`service`](crate::service) stores what it decides.

mod campaign;
mod coupon;
mod template;

pub use campaign::{Campaign, CampaignState};
pub use coupon::{Coupon, CouponState};
pub use template::{TemplateRecord, TemplateStatus};

/// An illegal transition or a broken limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// Placeholder until the lifecycle lands.
    #[error("illegal transition")]
    Illegal,
}
