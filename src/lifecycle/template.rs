//! A template's approval and activity status (documented on [`TemplateStatus`]).

use std::fmt;
use std::sync::Arc;

use super::LifecycleError;
use crate::id::TemplateId;
use crate::rule::Template;

/// Where a template is in its life.
///
/// ```text
/// Draft ──submit──▶ PendingApproval ──approve──▶ Approved ──activate──▶ Active ◀──resume── Paused
///                          │                         │                   │  └───pause────▶ │
///                          └──reject──▶ Rejected     └──────retire───────┴──▶ Retired ◀───┘
/// ```
///
/// Only an [`Active`](TemplateStatus::Active) template issues coupons. Retiring stops issuing;
/// coupons already issued stay valid until their own validity ends. Rejected and Retired are
/// final.
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

impl TemplateStatus {
    /// A short lower-case name: `draft`, `pending approval`, `approved`, `rejected`, `active`,
    /// `paused`, `retired`.
    pub fn name(&self) -> &'static str {
        match self {
            TemplateStatus::Draft => "draft",
            TemplateStatus::PendingApproval => "pending approval",
            TemplateStatus::Approved => "approved",
            TemplateStatus::Rejected { .. } => "rejected",
            TemplateStatus::Active => "active",
            TemplateStatus::Paused => "paused",
            TemplateStatus::Retired => "retired",
        }
    }
}

/// A change of a template's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum TemplateAction {
    /// Draft → PendingApproval.
    Submit,
    /// PendingApproval → Approved.
    Approve,
    /// PendingApproval → Rejected.
    Reject,
    /// Approved → Active.
    Activate,
    /// Active → Paused.
    Pause,
    /// Paused → Active.
    Resume,
    /// Approved, Active or Paused → Retired.
    Retire,
}

impl fmt::Display for TemplateAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplateAction::Submit => "submit",
            TemplateAction::Approve => "approve",
            TemplateAction::Reject => "reject",
            TemplateAction::Activate => "activate",
            TemplateAction::Pause => "pause",
            TemplateAction::Resume => "resume",
            TemplateAction::Retire => "retire",
        })
    }
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

impl TemplateRecord {
    /// A new template, in [`Draft`](TemplateStatus::Draft).
    pub fn draft(template: Arc<Template>) -> TemplateRecord {
        TemplateRecord {
            template,
            status: TemplateStatus::Draft,
        }
    }

    /// The template's id.
    pub fn id(&self) -> &TemplateId {
        self.template.id()
    }

    /// Whether the template issues coupons now (it is Active).
    pub fn is_issuing(&self) -> bool {
        self.status == TemplateStatus::Active
    }

    /// Checks that the template issues coupons.
    ///
    /// # Errors
    /// [`LifecycleError::NotIssuing`] when it is not Active.
    pub fn check_issuing(&self) -> Result<(), LifecycleError> {
        if self.is_issuing() {
            Ok(())
        } else {
            Err(LifecycleError::NotIssuing {
                template: self.id().clone(),
                status: self.status.clone(),
            })
        }
    }

    /// The status `action` leads to from the current one, if allowed. [`TemplateAction::Reject`]
    /// leads to a rejection with an empty reason; use [`reject`](Self::reject) to give one.
    pub fn next_status(&self, action: TemplateAction) -> Option<TemplateStatus> {
        use TemplateAction as A;
        use TemplateStatus as S;
        match (action, &self.status) {
            (A::Submit, S::Draft) => Some(S::PendingApproval),
            (A::Approve, S::PendingApproval) => Some(S::Approved),
            (A::Reject, S::PendingApproval) => Some(S::Rejected {
                reason: String::new(),
            }),
            (A::Activate, S::Approved) | (A::Resume, S::Paused) => Some(S::Active),
            (A::Pause, S::Active) => Some(S::Paused),
            (A::Retire, S::Approved | S::Active | S::Paused) => Some(S::Retired),
            _ => None,
        }
    }

    /// Applies `action` (a rejection gets an empty reason; see [`reject`](Self::reject)).
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] when the action is not allowed from the
    /// current status.
    pub fn apply(&self, action: TemplateAction) -> Result<TemplateRecord, LifecycleError> {
        match self.next_status(action) {
            Some(status) => Ok(TemplateRecord {
                template: Arc::clone(&self.template),
                status,
            }),
            None => Err(LifecycleError::IllegalTemplateTransition {
                template: self.id().clone(),
                status: self.status.clone(),
                action,
            }),
        }
    }

    /// Draft → PendingApproval: sends the template to finance.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is a Draft.
    pub fn submit(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Submit)
    }

    /// PendingApproval → Approved.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is pending approval.
    pub fn approve(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Approve)
    }

    /// PendingApproval → Rejected, with the reason.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is pending approval.
    pub fn reject(&self, reason: impl Into<String>) -> Result<TemplateRecord, LifecycleError> {
        let mut next = self.apply(TemplateAction::Reject)?;
        next.status = TemplateStatus::Rejected {
            reason: reason.into(),
        };
        Ok(next)
    }

    /// Approved → Active: starts issuing.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is Approved.
    pub fn activate(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Activate)
    }

    /// Active → Paused: suspends issuing.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is Active.
    pub fn pause(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Pause)
    }

    /// Paused → Active: issues again.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] unless it is Paused.
    pub fn resume(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Resume)
    }

    /// Approved, Active or Paused → Retired: stops issuing for good. Issued coupons stay valid.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalTemplateTransition`] from Draft, PendingApproval, Rejected or
    /// Retired.
    pub fn retire(&self) -> Result<TemplateRecord, LifecycleError> {
        self.apply(TemplateAction::Retire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};
    use crate::rule::{Benefit, Span, TemplateSpec, Validity};

    fn draft() -> TemplateRecord {
        let t = TemplateSpec::new(
            TemplateId::new("t").unwrap(),
            "T",
            Currency::CNY,
            Benefit::instant(Money::from_minor(100, Currency::CNY)).unwrap(),
            Validity::relative(Span::Days(1), None).unwrap(),
        )
        .build()
        .unwrap();
        TemplateRecord::draft(Arc::new(t))
    }

    #[test]
    fn happy_path_reaches_active_and_retired() {
        let r = draft().submit().unwrap().approve().unwrap();
        assert!(!r.is_issuing());
        let a = r.activate().unwrap();
        assert!(a.is_issuing());
        let p = a.pause().unwrap();
        assert!(p.check_issuing().is_err());
        let a2 = p.resume().unwrap();
        let ret = a2.retire().unwrap();
        assert_eq!(ret.status, TemplateStatus::Retired);
        assert!(ret.resume().is_err());
    }

    #[test]
    fn draft_cannot_skip_approval() {
        let e = draft().activate().unwrap_err();
        assert_eq!(
            e,
            LifecycleError::IllegalTemplateTransition {
                template: TemplateId::new("t").unwrap(),
                status: TemplateStatus::Draft,
                action: TemplateAction::Activate,
            }
        );
        assert!(draft().approve().is_err());
        assert!(draft().retire().is_err());
    }

    #[test]
    fn rejection_keeps_reason_and_is_final() {
        let r = draft().submit().unwrap().reject("budget").unwrap();
        assert_eq!(
            r.status,
            TemplateStatus::Rejected {
                reason: "budget".into()
            }
        );
        for action in [
            TemplateAction::Submit,
            TemplateAction::Approve,
            TemplateAction::Activate,
            TemplateAction::Retire,
        ] {
            assert!(r.apply(action).is_err());
        }
    }
}
