//! Coupon rules as validated data: a [`Template`] is what a merchant defines, and every coupon
//! issued from it follows its rules.
//!
//! A template is made of one concept per module: its [`Benefit`] (what it gives), [`Scope`]
//! (what it applies to), [`Conditions`] (who, where, when, minimum cart), [`Validity`] (how long
//! an issued coupon lasts), [`Limits`] (stock, per user, per order), [`Stacking`] (how it
//! combines) and [`Distribution`] (private coupons, a shared promo code, or an automatic
//! promotion).
//!
//! Every type here is valid by construction: constructors and `TryFrom` conversions check every
//! invariant, and deserialising runs the same checks. A [`TemplateSpec`] is the plain, unchecked
//! data; [`Template::try_from`] (or [`TemplateSpec::build`]) turns it into a [`Template`] or a
//! [`RuleError`] naming the field and the rule broken.
//!
//! ```
//! use coupons::rule::{Benefit, TemplateSpec, Tier, Validity, Span, RuleError};
//! use coupons::id::TemplateId;
//! use coupons::money::{Currency, Money};
//!
//! let cny = Currency::CNY;
//! let yuan = |n: i64| Money::from_minor(n * 100, cny);
//! let template = TemplateSpec::new(
//!     TemplateId::new("spend-100-save-10")?,
//!     "Spend 100, save 10",
//!     cny,
//!     Benefit::tiered(vec![
//!         Tier { spend: yuan(100), save: yuan(10) },
//!         Tier { spend: yuan(200), save: yuan(25) },
//!     ])?,
//!     Validity::relative(Span::Days(7), None)?,
//! )
//! .build()?;
//! assert_eq!(template.benefit().kind(), "threshold");
//!
//! // Saving 100 on spend 100 is refused, naming the field:
//! let err = Benefit::threshold(yuan(100), yuan(100)).unwrap_err();
//! assert!(matches!(err, RuleError::SavingNotBelowThreshold { field: "benefit.tiers", .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod benefit;
mod builders;
mod conditions;
mod distribution;
mod error;
mod limits;
mod scope;
mod stacking;
mod validity;

pub use benefit::{Benefit, Percent, PercentTier, QuantityTier, Reward, Tier, UnitOff, UnitPick};
pub use conditions::{
    AudienceMiss, AudienceSpec, Conditions, ConditionsSpec, Requirement, Schedule, ScheduleSpec,
    TimeWindow,
};
pub use distribution::{Distribution, PromoCode, RefundPolicy};
pub use error::RuleError;
pub use limits::{Limits, LimitsSpec};
pub use scope::{Scope, ScopeSpec};
pub use stacking::Stacking;
pub use validity::{Span, Validity};

use error::same_currency;

#[cfg(feature = "serde")]
pub(crate) use conditions::parse_offset;

use std::fmt;
use std::sync::Arc;

use crate::id::TemplateId;
use crate::money::Currency;

#[cfg(feature = "serde")]
crate::de::field_paths! {
    fn id_at -> TemplateId = "id";
    fn name_at -> String = "name";
    fn description_at -> String = "description";
    fn terms_at -> String = "terms";
    fn currency_at -> Currency = "currency";
    fn scope_at -> nested Scope = "scope";
    fn conditions_at -> nested Conditions = "conditions";
}

#[cfg(feature = "serde")]
fn benefit_at<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Benefit, D::Error> {
    crate::de::nested_tagged("benefit", "benefit.kind", d)
}

/// The plain data of a [`Template`], with public fields; [`TemplateSpec::build`] checks it.
/// Also the JSON shape of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct TemplateSpec {
    /// The template's id.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "id_at"))]
    pub id: TemplateId,
    /// The name buyers see, 1 to 200 characters.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "name_at"))]
    pub name: String,
    /// A longer description, at most 2,000 characters.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "description_at"))]
    pub description: String,
    /// The terms of use, at most 10,000 characters.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "terms_at"))]
    pub terms: String,
    /// The currency of every amount in the template.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "currency_at"))]
    pub currency: Currency,
    /// What it gives.
    #[cfg_attr(feature = "serde", serde(deserialize_with = "benefit_at"))]
    pub benefit: Benefit,
    /// What it applies to. Default: everything.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "scope_at"))]
    pub scope: Scope,
    /// Who, where, when, minimum cart. Default: none.
    #[cfg_attr(feature = "serde", serde(default, deserialize_with = "conditions_at"))]
    pub conditions: Conditions,
    /// How long an issued coupon lasts.
    pub validity: Validity,
    /// Stock, per-user and per-order limits. Default: unlimited, one per order.
    #[cfg_attr(feature = "serde", serde(default))]
    pub limits: Limits,
    /// How it combines. Default: group `platform`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub stacking: Stacking,
    /// Private coupons, promo code, or automatic. Default: private.
    #[cfg_attr(feature = "serde", serde(default))]
    pub distribution: Distribution,
    /// What a refund does to a redeemed coupon. Default: the usual rule (see [`RefundPolicy`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub refund: RefundPolicy,
}

impl TemplateSpec {
    /// The required parts; everything else takes its default.
    pub fn new(
        id: TemplateId,
        name: impl Into<String>,
        currency: Currency,
        benefit: Benefit,
        validity: Validity,
    ) -> TemplateSpec {
        TemplateSpec {
            id,
            name: name.into(),
            description: String::new(),
            terms: String::new(),
            currency,
            benefit,
            scope: Scope::everything(),
            conditions: Conditions::none(),
            validity,
            limits: Limits::unlimited(),
            stacking: Stacking::platform(),
            distribution: Distribution::Private,
            refund: RefundPolicy::default(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the terms text.
    pub fn terms(mut self, text: impl Into<String>) -> Self {
        self.terms = text.into();
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the conditions.
    pub fn conditions(mut self, conditions: Conditions) -> Self {
        self.conditions = conditions;
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the stacking rules.
    pub fn stacking(mut self, stacking: Stacking) -> Self {
        self.stacking = stacking;
        self
    }

    /// Sets the distribution.
    pub fn distribution(mut self, distribution: Distribution) -> Self {
        self.distribution = distribution;
        self
    }

    /// Sets the refund policy.
    pub fn refund(mut self, refund: RefundPolicy) -> Self {
        self.refund = refund;
        self
    }

    /// Checks the whole template.
    ///
    /// # Errors
    /// [`RuleError::Empty`] for an empty name, [`RuleError::TooLong`] for over-long texts, and
    /// [`RuleError::CurrencyMismatch`] for any amount not in the template's currency.
    pub fn build(self) -> Result<Template, RuleError> {
        Template::try_from(self)
    }
}

/// A coupon template: the rules every coupon issued from it follows. Valid by construction; see
/// the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "TemplateSpec", into = "TemplateSpec")
)]
pub struct Template(TemplateSpec, Arc<str>);

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The spec alone: the shared name is a copy of its `name`.
        f.debug_tuple("Template").field(&self.0).finish()
    }
}

fn text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), RuleError> {
    let n = s.chars().count();
    if n < min {
        return Err(RuleError::Empty { field });
    }
    if n > max {
        return Err(RuleError::TooLong { field, max });
    }
    Ok(())
}

impl TryFrom<TemplateSpec> for Template {
    type Error = RuleError;
    fn try_from(s: TemplateSpec) -> Result<Self, RuleError> {
        text("name", s.name.trim(), 1, 200)?;
        text("description", &s.description, 0, 2_000)?;
        text("terms", &s.terms, 0, 10_000)?;
        for (field, m) in s.benefit.amounts() {
            same_currency(field, m, s.currency)?;
        }
        if let Some(m) = s.conditions.min_subtotal() {
            same_currency("conditions.min_subtotal", m, s.currency)?;
        }
        if let Some(m) = s.conditions.max_subtotal() {
            same_currency("conditions.max_subtotal", m, s.currency)?;
        }
        let name = Arc::from(s.name.as_str());
        Ok(Template(s, name))
    }
}

impl From<Template> for TemplateSpec {
    fn from(t: Template) -> Self {
        t.0
    }
}

impl Template {
    /// The plain data.
    pub fn spec(&self) -> &TemplateSpec {
        &self.0
    }
    /// The id.
    pub fn id(&self) -> &TemplateId {
        &self.0.id
    }
    /// The name.
    pub fn name(&self) -> &str {
        &self.1
    }
    /// The name, shared: quotes carry it without copying it.
    pub(crate) fn shared_name(&self) -> &Arc<str> {
        &self.1
    }
    /// The description.
    pub fn description(&self) -> &str {
        &self.0.description
    }
    /// The terms of use.
    pub fn terms(&self) -> &str {
        &self.0.terms
    }
    /// The currency.
    pub fn currency(&self) -> Currency {
        self.0.currency
    }
    /// What it gives.
    pub fn benefit(&self) -> &Benefit {
        &self.0.benefit
    }
    /// What it applies to.
    pub fn scope(&self) -> &Scope {
        &self.0.scope
    }
    /// When it may be used.
    pub fn conditions(&self) -> &Conditions {
        &self.0.conditions
    }
    /// How long an issued coupon lasts.
    pub fn validity(&self) -> &Validity {
        &self.0.validity
    }
    /// Stock and limits.
    pub fn limits(&self) -> &Limits {
        &self.0.limits
    }
    /// How it combines.
    pub fn stacking(&self) -> &Stacking {
        &self.0.stacking
    }
    /// How it reaches buyers.
    pub fn distribution(&self) -> &Distribution {
        &self.0.distribution
    }
    /// What a refund does to a redeemed coupon.
    pub fn refund(&self) -> &RefundPolicy {
        &self.0.refund
    }
    /// Whether it is an automatic promotion.
    pub fn is_automatic(&self) -> bool {
        matches!(self.0.distribution, Distribution::Automatic)
    }
}
