//! A template's approval and activity status.

use std::sync::Arc;

use crate::rule::Template;

/// Where a template is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "status", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum TemplateStatus {
    /// Being written.
    Draft,
    /// Waiting for finance approval.
    PendingApproval,
    /// Approved, not yet issuing.
    Approved,
    /// Rejected by finance.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Issuing.
    Active,
    /// Issuing suspended.
    Paused,
    /// No longer issuing; issued coupons stay valid.
    Retired,
}

/// A stored template: the rules and the status.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TemplateRecord {
    /// The rules.
    pub template: Arc<Template>,
    /// The status.
    pub status: TemplateStatus,
}
