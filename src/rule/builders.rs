//! Builders for the rule parts that are otherwise struct literals: [`Stacking`], [`Limits`]
//! and [`Conditions`]. Each `build` runs the same checks as JSON.
//!
//! ```
//! use coupons::id::{Channel, StackingGroup};
//! use coupons::money::{Currency, Money};
//! use coupons::rule::{Conditions, Limits, Stacking};
//! let stacking = Stacking::in_group(StackingGroup::new("shop:tea")?).priority(10).exclusive();
//! let limits = Limits::builder().total_stock(1_000).per_user_claims(1).build()?;
//! let conditions = Conditions::builder()
//!     .min_subtotal(Money::from_minor(10_000, Currency::CNY))
//!     .channels([Channel::new("app")?])
//!     .build()?;
//! assert!(stacking.exclusive && stacking.priority == 10);
//! assert_eq!(limits.total_stock(), Some(1_000));
//! assert_eq!(conditions.min_subtotal(), Some(Money::from_minor(10_000, Currency::CNY)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::{AudienceSpec, Conditions, ConditionsSpec, Limits, LimitsSpec, RuleError, Stacking};
use crate::id::Channel;
use crate::money::Money;

impl Stacking {
    /// The same rules with another priority (higher applies first within a phase).
    pub fn priority(mut self, priority: i32) -> Stacking {
        self.priority = priority;
        self
    }

    /// The same rules, exclusive: the coupon is used alone.
    pub fn exclusive(mut self) -> Stacking {
        self.exclusive = true;
        self
    }

    /// The same rules, never with automatic promotions.
    pub fn without_promotions(mut self) -> Stacking {
        self.with_promotions = false;
        self
    }
}

impl Limits {
    /// A builder: no limits until set.
    pub fn builder() -> LimitsSpec {
        LimitsSpec::default()
    }
}

impl LimitsSpec {
    /// Total stock.
    pub fn total_stock(mut self, stock: u64) -> LimitsSpec {
        self.total_stock = Some(stock);
        self
    }

    /// Claims per user.
    pub fn per_user_claims(mut self, n: u32) -> LimitsSpec {
        self.per_user_claims = Some(n);
        self
    }

    /// Redemptions per user.
    pub fn per_user_uses(mut self, n: u32) -> LimitsSpec {
        self.per_user_uses = Some(n);
        self
    }

    /// Coupons of the template in one order.
    pub fn per_order(mut self, n: u32) -> LimitsSpec {
        self.per_order = Some(n);
        self
    }

    /// The limits, checked.
    ///
    /// # Errors
    /// [`RuleError`] for a zero limit.
    pub fn build(self) -> Result<Limits, RuleError> {
        Limits::try_from(self)
    }
}

impl Conditions {
    /// A builder: no conditions until set.
    pub fn builder() -> ConditionsSpec {
        ConditionsSpec::default()
    }
}

impl ConditionsSpec {
    /// The eligible subtotal must reach `amount`.
    pub fn min_subtotal(mut self, amount: Money) -> ConditionsSpec {
        self.min_subtotal = Some(amount);
        self
    }

    /// The eligible quantity must reach `n`.
    pub fn min_quantity(mut self, n: u32) -> ConditionsSpec {
        self.min_quantity = Some(n);
        self
    }

    /// Who may use it.
    pub fn audience(mut self, audience: AudienceSpec) -> ConditionsSpec {
        self.audience = audience;
        self
    }

    /// Only on these channels.
    pub fn channels(mut self, channels: impl IntoIterator<Item = Channel>) -> ConditionsSpec {
        self.channels = Some(channels.into_iter().collect());
        self
    }

    /// The conditions, checked.
    ///
    /// # Errors
    /// [`RuleError`] as for JSON (a negative amount, an empty channel list, a bad schedule…).
    pub fn build(self) -> Result<Conditions, RuleError> {
        Conditions::try_from(self)
    }
}
