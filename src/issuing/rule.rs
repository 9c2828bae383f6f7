//! An issuing rule: trigger → audience → offer → delivery and message.
//!
//! Rules are validated data: [`RuleSpec::build`] and JSON go through the same checks, and a
//! bad rule is an [`IssuingError`] naming the field.
//!
//! ```
//! use coupons::issuing::{Rule, RuleSpec, RuleId, Trigger, Offer, Choice, Message, Delivery};
//! use coupons::id::TemplateId;
//! use coupons::money::{Currency, Money};
//! use coupons::targeting::Lifecycle;
//!
//! let cny = Currency::CNY;
//! let choice = |t: &str, fen| Choice::new(TemplateId::new(t).unwrap(), Money::from_minor(fen, cny));
//! // Abandoned carts: new users a first-order coupon, dormant ones a win-back, VIPs their own.
//! let rule = RuleSpec::new(RuleId::new("cart-rescue")?, Trigger::cart_abandoned(),
//!     Offer::by_segment(vec![
//!         (Lifecycle::New, choice("first-order-15", 1500)),
//!         (Lifecycle::Dormant, choice("win-back-20", 2000)),
//!         (Lifecycle::HighValue, choice("vip-30", 3000)),
//!     ], None))
//!     .delivery(Delivery::NotifyToClaim)
//!     .message(Message::Push)
//!     .cooldown_minutes(7 * 24 * 60)
//!     .build()?;
//! let json = serde_json::to_string(&rule)?;
//! assert_eq!(serde_json::from_str::<Rule>(&json)?, rule);
//! // The same checks on the way in:
//! let bad = json.replace("\"after_minutes\":30", "\"after_minutes\":0");
//! let e = serde_json::from_str::<Rule>(&bad).unwrap_err().to_string();
//! assert!(e.starts_with("rule.trigger.after_minutes: 0 is invalid"), "{e}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;

use chrono::Duration;

use super::engine::Profile;
use super::trigger::Trigger;
use super::{BudgetId, IssuingError, RuleId, invalid};
use crate::cart::CustomerKind;
use crate::id::{CampaignId, MembershipLevel, SegmentId, TemplateId};
use crate::money::Money;
use crate::targeting::{Lifecycle, RfmSegment};

/// How an issued coupon reaches the user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Delivery {
    /// Claimed straight into the wallet (自动领取).
    #[default]
    AutoClaim,
    /// The user is told and claims it with a click (点击领取).
    NotifyToClaim,
}

/// How the user is told (a hint for the messaging layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Message {
    /// A push notification.
    Push,
    /// A text message.
    Sms,
    /// A message inside the app, seen when the user opens it.
    InApp,
}

impl Message {
    /// `push`, `SMS`, `in-app`, for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Message::Push => "push",
            Message::Sms => "SMS",
            Message::InApp => "in-app",
        }
    }

    /// Whether it interrupts the user (push and SMS), so quiet hours defer it.
    pub fn interrupts(self) -> bool {
        matches!(self, Message::Push | Message::Sms)
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template to issue and its expected cost per coupon issued (face value × expected
/// redemption rate, say: what budgets are charged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The template.
    pub template: TemplateId,
    /// The expected cost of one issue, zero or more.
    pub cost: Money,
}

impl Choice {
    /// A template and its expected cost (checked when the rule is built).
    pub fn new(template: TemplateId, cost: Money) -> Choice {
        Choice { template, cost }
    }
}

/// What a rule issues: one template, or a choice by the user's lifecycle segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Always this template.
    Template(Choice),
    /// The first choice whose segment is the user's; `otherwise` for everyone else (or
    /// nothing, [`Guard::NoChoice`](super::Guard::NoChoice)).
    BySegment {
        /// Segment → template, in order.
        choices: Vec<(Lifecycle, Choice)>,
        /// For users in none of them.
        otherwise: Option<Choice>,
    },
}

impl Offer {
    /// Always `template`, at `cost` per issue.
    pub fn template(template: TemplateId, cost: Money) -> Offer {
        Offer::Template(Choice::new(template, cost))
    }

    /// A choice by lifecycle segment.
    pub fn by_segment(choices: Vec<(Lifecycle, Choice)>, otherwise: Option<Choice>) -> Offer {
        Offer::BySegment { choices, otherwise }
    }

    /// The choice for a user in `segment`.
    pub fn choose(&self, segment: Option<Lifecycle>) -> Option<&Choice> {
        match self {
            Offer::Template(c) => Some(c),
            Offer::BySegment { choices, otherwise } => choices
                .iter()
                .find(|(s, _)| Some(*s) == segment)
                .map(|(_, c)| c)
                .or(otherwise.as_ref()),
        }
    }

    /// Every choice.
    pub fn choices(&self) -> impl Iterator<Item = &Choice> {
        let (list, other): (&[(Lifecycle, Choice)], Option<&Choice>) = match self {
            Offer::Template(c) => (&[], Some(c)),
            Offer::BySegment { choices, otherwise } => (choices, otherwise.as_ref()),
        };
        list.iter().map(|(_, c)| c).chain(other)
    }

    fn validate(&self) -> Result<(), IssuingError> {
        if let Offer::BySegment { choices, otherwise } = self {
            if choices.is_empty() && otherwise.is_none() {
                return Err(invalid(
                    "rule.offer.choices",
                    "[]",
                    "a choice by segment offers at least one template",
                ));
            }
            let mut seen = BTreeSet::new();
            for (s, _) in choices {
                if !seen.insert(*s) {
                    return Err(IssuingError::Duplicate {
                        field: "rule.offer.choices",
                        value: s.to_string(),
                    });
                }
            }
        }
        let mut currency = None;
        for c in self.choices() {
            if c.cost.is_negative() {
                return Err(invalid(
                    "rule.offer.cost",
                    c.cost,
                    "an expected cost is zero or more",
                ));
            }
            match currency {
                None => currency = Some(c.cost.currency()),
                Some(cur) if cur != c.cost.currency() => {
                    return Err(IssuingError::Currency {
                        field: "rule.offer.cost",
                        expected: cur,
                        found: c.cost.currency(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Who a rule is for. Every field left empty (or `None`) admits everyone; the fields that are
/// set must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Audience {
    /// New or returning users only.
    pub kind: Option<CustomerKind>,
    /// Users at one of these membership levels.
    pub levels: BTreeSet<MembershipLevel>,
    /// Users in at least one of these segments.
    pub segments: BTreeSet<SegmentId>,
    /// Users in none of these segments.
    pub excluded: BTreeSet<SegmentId>,
    /// Users in one of these lifecycle segments.
    pub lifecycle: BTreeSet<Lifecycle>,
    /// Users in one of these RFM segments.
    pub rfm: BTreeSet<RfmSegment>,
}

/// Why a user is not in a rule's audience.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudienceMiss {
    /// For new (or returning) users only.
    Kind {
        /// Who the rule is for.
        wanted: CustomerKind,
    },
    /// Not at one of the levels.
    Level {
        /// The user's level.
        was: Option<MembershipLevel>,
    },
    /// In none of the segments.
    Segment,
    /// In an excluded segment.
    Excluded(SegmentId),
    /// Not in one of the lifecycle segments.
    Lifecycle {
        /// The user's.
        was: Option<Lifecycle>,
    },
    /// Not in one of the RFM segments.
    Rfm {
        /// The user's.
        was: Option<RfmSegment>,
    },
}

impl fmt::Display for AudienceMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_none = |o: Option<&dyn fmt::Display>| o.map_or("none".to_owned(), |x| x.to_string());
        match self {
            AudienceMiss::Kind { wanted } => match wanted {
                CustomerKind::New => f.write_str("for new users only"),
                CustomerKind::Returning => f.write_str("for returning users only"),
            },
            AudienceMiss::Level { was } => write!(
                f,
                "not for membership level {}",
                or_none(was.as_ref().map(|x| x as &dyn fmt::Display))
            ),
            AudienceMiss::Segment => f.write_str("in none of the rule's segments"),
            AudienceMiss::Excluded(s) => write!(f, "in excluded segment {s}"),
            AudienceMiss::Lifecycle { was } => write!(
                f,
                "not for lifecycle segment {}",
                or_none(was.as_ref().map(|x| x as &dyn fmt::Display))
            ),
            AudienceMiss::Rfm { was } => write!(
                f,
                "not for RFM segment {}",
                or_none(was.as_ref().map(|x| x as &dyn fmt::Display))
            ),
        }
    }
}

impl Audience {
    /// Everyone.
    pub fn everyone() -> Audience {
        Audience::default()
    }

    /// Whether `profile` is in the audience, or the first reason it is not (checked in field
    /// order).
    ///
    /// # Errors
    /// The [`AudienceMiss`].
    pub fn admits(&self, profile: &Profile) -> Result<(), AudienceMiss> {
        if let Some(k) = self.kind {
            if profile.kind != k {
                return Err(AudienceMiss::Kind { wanted: k });
            }
        }
        if !self.levels.is_empty()
            && !profile
                .level
                .as_ref()
                .is_some_and(|l| self.levels.contains(l))
        {
            return Err(AudienceMiss::Level {
                was: profile.level.clone(),
            });
        }
        if !self.segments.is_empty() && !self.segments.iter().any(|s| profile.segments.contains(s))
        {
            return Err(AudienceMiss::Segment);
        }
        if let Some(s) = self.excluded.iter().find(|s| profile.segments.contains(*s)) {
            return Err(AudienceMiss::Excluded(s.clone()));
        }
        if !self.lifecycle.is_empty()
            && !profile
                .lifecycle
                .is_some_and(|l| self.lifecycle.contains(&l))
        {
            return Err(AudienceMiss::Lifecycle {
                was: profile.lifecycle,
            });
        }
        if !self.rfm.is_empty() && !profile.rfm.is_some_and(|r| self.rfm.contains(&r)) {
            return Err(AudienceMiss::Rfm { was: profile.rfm });
        }
        Ok(())
    }
}

/// The longest cooldown: 366 days, in minutes.
pub const MAX_COOLDOWN_MINUTES: u32 = 366 * 24 * 60;

/// An issuing rule, valid by construction: [`RuleSpec::new`], its setters, then
/// [`RuleSpec::build`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "RuleSpec", into = "RuleSpec")
)]
pub struct Rule {
    spec: RuleSpec,
}

/// The parts of a [`Rule`], before the checks; also its JSON form.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct RuleSpec {
    /// The rule's id.
    pub id: RuleId,
    /// What it listens for.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "json::trigger_at"))]
    pub trigger: Trigger,
    /// Who it is for.
    #[cfg_attr(
        feature = "serde",
        serde(default, deserialize_with = "json::audience_at")
    )]
    pub audience: Audience,
    /// What it issues.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "json::offer_at"))]
    pub offer: Offer,
    /// Auto-claim (default) or notify-to-claim.
    #[cfg_attr(feature = "serde", serde(default))]
    pub delivery: Delivery,
    /// The message hint; `None` issues silently.
    #[cfg_attr(feature = "serde", serde(default))]
    pub message: Option<Message>,
    /// At least this long between two issues of this rule to one user.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cooldown_minutes: Option<u32>,
    /// A transactional rule (a refund apology, an order-problem compensation) is exempt from
    /// the policy's frequency caps; de-duplication, cooldown, budgets and quiet hours still
    /// apply.
    #[cfg_attr(feature = "serde", serde(default))]
    pub transactional: bool,
    /// The campaign budget its issues are charged to.
    #[cfg_attr(feature = "serde", serde(default))]
    pub budget: Option<BudgetId>,
    /// The campaign its claims are made in.
    #[cfg_attr(feature = "serde", serde(default))]
    pub campaign: Option<CampaignId>,
}

impl Rule {
    /// Its id.
    pub fn id(&self) -> &RuleId {
        &self.spec.id
    }
    /// What it listens for.
    pub fn trigger(&self) -> &Trigger {
        &self.spec.trigger
    }
    /// Who it is for.
    pub fn audience(&self) -> &Audience {
        &self.spec.audience
    }
    /// What it issues.
    pub fn offer(&self) -> &Offer {
        &self.spec.offer
    }
    /// How coupons reach the user.
    pub fn delivery(&self) -> Delivery {
        self.spec.delivery
    }
    /// The message hint.
    pub fn message(&self) -> Option<Message> {
        self.spec.message
    }
    /// The cooldown, if any.
    pub fn cooldown(&self) -> Option<Duration> {
        self.spec
            .cooldown_minutes
            .map(|m| Duration::minutes(i64::from(m)))
    }
    /// Whether it is exempt from frequency caps.
    pub fn transactional(&self) -> bool {
        self.spec.transactional
    }
    /// Its budget.
    pub fn budget(&self) -> Option<&BudgetId> {
        self.spec.budget.as_ref()
    }
    /// Its campaign.
    pub fn campaign(&self) -> Option<&CampaignId> {
        self.spec.campaign.as_ref()
    }
    /// Its parts.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }
}

impl RuleSpec {
    /// A rule for everyone, auto-claimed, silent, no cooldown, not transactional, no budget.
    /// Set the rest with the setters and [`build`](RuleSpec::build) it.
    pub fn new(id: RuleId, trigger: Trigger, offer: Offer) -> RuleSpec {
        RuleSpec {
            id,
            trigger,
            audience: Audience::default(),
            offer,
            delivery: Delivery::AutoClaim,
            message: None,
            cooldown_minutes: None,
            transactional: false,
            budget: None,
            campaign: None,
        }
    }

    /// Who it is for.
    pub fn audience(mut self, audience: Audience) -> RuleSpec {
        self.audience = audience;
        self
    }
    /// Auto-claim or notify-to-claim.
    pub fn delivery(mut self, delivery: Delivery) -> RuleSpec {
        self.delivery = delivery;
        self
    }
    /// The message hint.
    pub fn message(mut self, message: Message) -> RuleSpec {
        self.message = Some(message);
        self
    }
    /// At least `minutes` between two issues to one user.
    pub fn cooldown_minutes(mut self, minutes: u32) -> RuleSpec {
        self.cooldown_minutes = Some(minutes);
        self
    }
    /// Exempt from frequency caps.
    pub fn transactional(mut self) -> RuleSpec {
        self.transactional = true;
        self
    }
    /// Charged to `budget`.
    pub fn budget(mut self, budget: BudgetId) -> RuleSpec {
        self.budget = Some(budget);
        self
    }
    /// Claimed in `campaign`.
    pub fn campaign(mut self, campaign: CampaignId) -> RuleSpec {
        self.campaign = Some(campaign);
        self
    }

    /// The rule, checked.
    ///
    /// # Errors
    /// [`IssuingError::Invalid`] for the trigger's parameters (see [`Trigger::validate`]), a
    /// choice by segment with no template (`rule.offer.choices`), a negative cost
    /// (`rule.offer.cost`), a cooldown of zero or above [`MAX_COOLDOWN_MINUTES`]
    /// (`rule.cooldown_minutes`); [`IssuingError::Duplicate`] for a segment chosen twice;
    /// [`IssuingError::Currency`] for costs in different currencies.
    pub fn build(self) -> Result<Rule, IssuingError> {
        self.trigger.validate()?;
        self.offer.validate()?;
        if let Some(m) = self.cooldown_minutes {
            if m == 0 || m > MAX_COOLDOWN_MINUTES {
                return Err(invalid(
                    "rule.cooldown_minutes",
                    m,
                    "a cooldown lasts 1 minute to 366 days",
                ));
            }
        }
        Ok(Rule { spec: self })
    }
}

impl TryFrom<RuleSpec> for Rule {
    type Error = IssuingError;
    fn try_from(spec: RuleSpec) -> Result<Rule, IssuingError> {
        spec.build()
    }
}

impl From<Rule> for RuleSpec {
    fn from(rule: Rule) -> RuleSpec {
        rule.spec
    }
}

#[cfg(feature = "serde")]
mod json {
    //! The offer's JSON, and the paths of nested errors.
    use super::{Choice, Lifecycle, Offer};
    use crate::id::TemplateId;
    use crate::money::Money;
    use serde::{Deserialize, Serialize};

    crate::de::field_paths! {
        pub(super) fn trigger_at -> nested super::Trigger = "rule.trigger";
        pub(super) fn audience_at -> nested super::Audience = "rule.audience";
        pub(super) fn offer_at -> nested Offer = "rule.offer";
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ChoiceRepr {
        template: TemplateId,
        cost: Money,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SegmentChoice {
        segment: Lifecycle,
        template: TemplateId,
        cost: Money,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
    enum OfferRepr {
        Template {
            template: TemplateId,
            cost: Money,
        },
        BySegment {
            choices: Vec<SegmentChoice>,
            #[serde(default)]
            otherwise: Option<ChoiceRepr>,
        },
    }

    impl Serialize for Offer {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let repr = match self {
                Offer::Template(c) => OfferRepr::Template {
                    template: c.template.clone(),
                    cost: c.cost,
                },
                Offer::BySegment { choices, otherwise } => OfferRepr::BySegment {
                    choices: choices
                        .iter()
                        .map(|(segment, c)| SegmentChoice {
                            segment: *segment,
                            template: c.template.clone(),
                            cost: c.cost,
                        })
                        .collect(),
                    otherwise: otherwise.as_ref().map(|c| ChoiceRepr {
                        template: c.template.clone(),
                        cost: c.cost,
                    }),
                },
            };
            repr.serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Offer {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Offer, D::Error> {
            Ok(match OfferRepr::deserialize(d)? {
                OfferRepr::Template { template, cost } => {
                    Offer::Template(Choice { template, cost })
                }
                OfferRepr::BySegment { choices, otherwise } => Offer::BySegment {
                    choices: choices
                        .into_iter()
                        .map(|c| {
                            (
                                c.segment,
                                Choice {
                                    template: c.template,
                                    cost: c.cost,
                                },
                            )
                        })
                        .collect(),
                    otherwise: otherwise.map(|c| Choice {
                        template: c.template,
                        cost: c.cost,
                    }),
                },
            })
        }
    }
}
