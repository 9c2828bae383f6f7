//! Template and campaign transitions: create, submit, approve, reject, activate, pause,
//! resume, retire; create a campaign, switch it online or offline.
//!
//! A creation is tried blind first (nothing read: the batch inserts only if absent); after a
//! conflict the plan is made again from the record (and, for a promo-code template, the code's
//! owner) as read.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::read::{Got, Next, Read, Reads, Steps, unexpected};
use super::{Denied, On, Plan, Step};
use crate::attributes::Attributes;
use crate::events::EventKind;
use crate::id::{CampaignId, Channel, TemplateId, UserId};
use crate::lifecycle::{Campaign, LifecycleError, TemplateRecord, TemplateStatus};
use crate::repository::{Expect, Op, Receipt, ReceiptKey, Versioned};
use crate::rule::{Distribution, PromoCode, Template};

/// A promo-code template's code, total limit and per-user limit.
pub(crate) fn code_of(template: &Template) -> Option<(&PromoCode, Option<u64>, Option<u32>)> {
    match template.distribution() {
        Distribution::PromoCode {
            code,
            max_redemptions,
            per_user,
        } => Some((
            code,
            max_redemptions.map(|n| n.get()),
            per_user.map(|n| n.get()),
        )),
        _ => None,
    }
}

/// What a template's creation read after a conflict: the record under its id, and the
/// receipt of its code.
#[derive(Debug)]
pub(crate) struct Existing {
    pub(crate) record: Option<Arc<TemplateRecord>>,
    pub(crate) code: Option<Receipt>,
}

/// A template creation's reads after a conflict ([`Existing`]): the record under its id, then
/// (for a promo-code template) its code's receipt.
pub(crate) fn existing_read(template: &Template) -> impl Reads<Out = Existing> + '_ {
    let mut code = code_of(template).map(|(c, _, _)| ReceiptKey::Code(c.clone()));
    let mut record = None;
    Steps::new(Read::TemplateIfAny(template.id().clone()), move |got| {
        Ok(match got {
            Got::TemplateIfAny(_, r) => {
                record = r.map(|r| r.value);
                match code.take() {
                    Some(key) => Next::Read(Read::Receipt(key)),
                    None => Next::Ready(Existing {
                        record: record.take(),
                        code: None,
                    }),
                }
            }
            Got::Receipt(_, code) => Next::Ready(Existing {
                record: record.take(),
                code,
            }),
            _ => return unexpected("read template"),
        })
    })
}

/// Pure: store `template` as a Draft (and reserve its code), or answer the record already
/// there. `existing` is `None` on the first, blind attempt.
///
/// # Errors
/// [`LifecycleError::TemplateExists`] when the id holds other rules;
/// [`LifecycleError::CodeTaken`] when another template owns the code.
pub(crate) fn plan_create_template(
    template: &Arc<Template>,
    existing: Option<Existing>,
    now: DateTime<Utc>,
) -> Result<Step<Arc<TemplateRecord>>, Denied> {
    let id = template.id();
    let code = code_of(template).map(|(c, _, _)| c);
    if let Some(existing) = existing {
        if let Some(record) = existing.record {
            if record.template == *template {
                return Ok(Step::Done(record));
            }
            return Err(LifecycleError::TemplateExists {
                template: id.clone(),
            }
            .into());
        }
        match (code, existing.code) {
            (_, None) => {}
            (Some(c), Some(Receipt::Code { template } | Receipt::OneTimeCode { template })) => {
                return Err(LifecycleError::CodeTaken {
                    code: c.clone(),
                    template,
                }
                .into());
            }
            _ => return Err(Denied::inconsistent("create template")),
        }
    }
    let record = Arc::new(TemplateRecord::draft(Arc::clone(template)));
    let mut plan = Plan::new(Arc::clone(&record));
    plan.push(
        Op::PutTemplate {
            record: Arc::clone(&record),
            expect: Expect::Absent,
        },
        On::Retry,
    );
    if let Some(code) = code {
        plan.push(
            Op::InsertReceipt {
                key: ReceiptKey::Code(code.clone()),
                receipt: Receipt::Code {
                    template: id.clone(),
                },
            },
            On::Retry,
        );
    }
    plan.emit(
        now,
        EventKind::TemplateChanged {
            template: id.clone(),
            status: record.status.clone(),
        },
    );
    Ok(Step::Commit(plan))
}

/// A template transition: one row of the table behind the service's seven
/// `*_template` calls.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Move<'a> {
    /// Draft → PendingApproval.
    Submit,
    /// PendingApproval → Approved.
    Approve,
    /// PendingApproval → Rejected with a reason.
    Reject(&'a str),
    /// Approved → Active.
    Activate,
    /// Active → Paused.
    Pause,
    /// Paused → Active.
    Resume,
    /// Approved, Active or Paused → Retired.
    Retire,
}

impl Move<'_> {
    /// The operation's name (in [`Contention`](crate::service::ServiceError::Contention)).
    pub(crate) fn operation(self) -> &'static str {
        match self {
            Move::Submit => "submit template",
            Move::Approve => "approve template",
            Move::Reject(_) => "reject template",
            Move::Activate => "activate template",
            Move::Pause => "pause template",
            Move::Resume => "resume template",
            Move::Retire => "retire template",
        }
    }

    /// Whether a template in `status` is already where this move leads.
    fn done(self, status: &TemplateStatus) -> bool {
        match self {
            Move::Submit => *status == TemplateStatus::PendingApproval,
            Move::Approve => *status == TemplateStatus::Approved,
            Move::Reject(reason) => {
                matches!(status, TemplateStatus::Rejected { reason: r } if r == reason)
            }
            Move::Activate | Move::Resume => *status == TemplateStatus::Active,
            Move::Pause => *status == TemplateStatus::Paused,
            Move::Retire => *status == TemplateStatus::Retired,
        }
    }

    /// The record after the move.
    fn apply(self, record: &TemplateRecord) -> Result<TemplateRecord, LifecycleError> {
        match self {
            Move::Submit => record.submit(),
            Move::Approve => record.approve(),
            Move::Reject(reason) => record.reject(reason),
            Move::Activate => record.activate(),
            Move::Pause => record.pause(),
            Move::Resume => record.resume(),
            Move::Retire => record.retire(),
        }
    }
}

/// Pure: make `step` on the template read, or answer it when it is already where `step`
/// leads.
///
/// # Errors
/// The record's refusal ([`LifecycleError::IllegalTemplateTransition`]).
pub(crate) fn plan_transition(
    current: &Versioned<Arc<TemplateRecord>>,
    step: Move<'_>,
    now: DateTime<Utc>,
) -> Result<Step<Arc<TemplateRecord>>, LifecycleError> {
    if step.done(&current.value.status) {
        return Ok(Step::Done(Arc::clone(&current.value)));
    }
    let next = Arc::new(step.apply(&current.value)?);
    let mut plan = Plan::new(Arc::clone(&next));
    plan.push(
        Op::PutTemplate {
            record: Arc::clone(&next),
            expect: Expect::Version(current.version),
        },
        On::Retry,
    );
    plan.emit(
        now,
        EventKind::TemplateChanged {
            template: next.id().clone(),
            status: next.status.clone(),
        },
    );
    Ok(Step::Commit(plan))
}

/// Pure: store `campaign`, or answer the one already there. `existing` is `None` on the
/// first, blind attempt, then the campaign read under its id.
///
/// # Errors
/// [`LifecycleError::CampaignExists`] when the id holds another campaign.
pub(crate) fn plan_create_campaign(
    campaign: &Campaign,
    existing: Option<Option<Versioned<Campaign>>>,
    now: DateTime<Utc>,
) -> Result<Step<Campaign>, LifecycleError> {
    match existing {
        Some(Some(existing)) if existing.value == *campaign => {
            return Ok(Step::Done(existing.value));
        }
        Some(Some(_)) => {
            return Err(LifecycleError::CampaignExists {
                campaign: campaign.id.clone(),
            });
        }
        Some(None) | None => {}
    }
    let mut plan = Plan::new(campaign.clone());
    plan.push(
        Op::PutCampaign {
            campaign: campaign.clone(),
            expect: Expect::Absent,
        },
        On::Retry,
    );
    plan.emit(
        now,
        EventKind::CampaignChanged {
            campaign: campaign.id.clone(),
            online: campaign.online,
        },
    );
    Ok(Step::Commit(plan))
}

/// Pure: switch the campaign read online or offline (nothing to do when it already is).
pub(crate) fn plan_switch(
    current: &Versioned<Campaign>,
    online: bool,
    now: DateTime<Utc>,
) -> Step<Campaign> {
    if current.value.online == online {
        return Step::Done(current.value.clone());
    }
    let next = current.value.switch(online);
    let mut plan = Plan::new(next.clone());
    plan.push(
        Op::PutCampaign {
            campaign: next,
            expect: Expect::Version(current.version),
        },
        On::Retry,
    );
    plan.emit(
        now,
        EventKind::CampaignChanged {
            campaign: current.value.id.clone(),
            online,
        },
    );
    Step::Commit(plan)
}

/// Pure: a template's refusal to take one-time codes unless it is private.
///
/// # Errors
/// [`LifecycleError::NotClaimable`] for a promo-code or automatic template.
pub(crate) fn registrable(template: &Template) -> Result<(), LifecycleError> {
    let distribution = match template.distribution() {
        Distribution::Private => return Ok(()),
        Distribution::PromoCode { .. } => "promo_code",
        Distribution::Automatic => "automatic",
    };
    Err(LifecycleError::NotClaimable {
        template: template.id().clone(),
        distribution,
    })
}

/// Pure: an [`EventKind::Offered`] event on its own (it changes no state): the template
/// shown, to whom, on which channel, from which campaign, with which attributes.
pub(crate) fn plan_offer(
    (template, user, channel, campaign, attributes): (
        &TemplateId,
        &UserId,
        &Channel,
        Option<&CampaignId>,
        &Attributes,
    ),
    now: DateTime<Utc>,
) -> Step<()> {
    let mut plan = Plan::new(());
    let offer = EventKind::Offered {
        template: template.clone(),
        user: user.clone(),
        channel: channel.clone(),
        campaign: campaign.cloned(),
        attributes: attributes.clone(),
    };
    plan.emit(now, offer);
    Step::Commit(plan)
}
