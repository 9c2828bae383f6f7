//! The service's settings, checked.

use chrono::Duration;

use crate::checkout::StackingPolicy;
use crate::guard::Guard;
use crate::id::GuardName;

/// A [`ServiceConfig`] that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A hold must be positive (and at most a year).
    #[error("hold: {hold} is not a positive duration of at most 366 days")]
    Hold {
        /// The hold given.
        hold: Duration,
    },
    /// At least one attempt.
    #[error("max_attempts: at least 1 attempt is needed, got 0")]
    Attempts,
    /// The tolerated clock skew must lie between zero and one minute.
    #[error("clock_skew: {skew} is not between zero and one minute")]
    ClockSkew {
        /// The skew given.
        skew: Duration,
    },
    /// Two guards with one name would share counters.
    #[error("guards: the name {name} is used twice")]
    DuplicateGuard {
        /// The name.
        name: GuardName,
    },
}

/// Settings of a [`Service`](super::Service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    /// How long [`quote_and_lock`](super::Service::quote_and_lock) holds coupons for an unpaid order.
    /// Default 15 minutes.
    pub hold: Duration,
    /// Attempts of one call when its batch conflicts with concurrent requests. Default 16.
    pub max_attempts: u32,
    /// How offers combine at checkout.
    pub policy: StackingPolicy,
    /// Guards counted with every claim and lock they apply to ([`crate::guard`]).
    pub guards: Vec<Guard>,
    /// How far a request's `now` may lie before the last transition of the record it changes
    /// (an order, a coupon) and still be accepted, recorded at that transition's instant.
    /// Default 2 seconds: app servers synchronised by NTP agree within milliseconds, and a
    /// request that waited on a lock or a retry can carry a `now` a little older than a
    /// concurrent request's; anything further back is a clock that is wrong, refused with
    /// [`LifecycleError::ClockBehind`](crate::lifecycle::LifecycleError::ClockBehind) so that no record's history runs backwards (a coupon
    /// used before it was claimed). At most one minute.
    pub clock_skew: Duration,
}

impl ServiceConfig {
    /// Checks the settings: a positive hold of at most 366 days, at least one attempt, guards
    /// with distinct names. [`Service::with_config`](super::Service::with_config) calls it.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hold <= Duration::zero() || self.hold > Duration::days(366) {
            return Err(ConfigError::Hold { hold: self.hold });
        }
        if self.max_attempts == 0 {
            return Err(ConfigError::Attempts);
        }
        if self.clock_skew < Duration::zero() || self.clock_skew > Duration::minutes(1) {
            return Err(ConfigError::ClockSkew {
                skew: self.clock_skew,
            });
        }
        let mut names: Vec<&GuardName> = self.guards.iter().map(Guard::name).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
            if let Some(name) = w.first() {
                return Err(ConfigError::DuplicateGuard {
                    name: (*name).clone(),
                });
            }
        }
        Ok(())
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            hold: Duration::minutes(15),
            max_attempts: 16,
            policy: StackingPolicy::default(),
            guards: Vec::new(),
            clock_skew: Duration::seconds(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::{self, Action};
    use crate::service::Service;

    #[test]
    fn configs_are_checked() {
        let bad =
            |c: ServiceConfig| Service::with_config(crate::repository::MemoryStore::new(), c).err();
        assert!(
            bad(ServiceConfig {
                clock_skew: Duration::seconds(-1),
                ..ServiceConfig::default()
            })
            .is_some()
        );
        assert!(
            bad(ServiceConfig {
                clock_skew: Duration::minutes(2),
                ..ServiceConfig::default()
            })
            .is_some()
        );
        let hold = |h| ServiceConfig {
            hold: h,
            ..Default::default()
        };
        assert!(matches!(
            bad(hold(Duration::minutes(-5))),
            Some(ConfigError::Hold { .. })
        ));
        assert!(matches!(
            bad(hold(Duration::zero())),
            Some(ConfigError::Hold { .. })
        ));
        assert!(bad(hold(Duration::minutes(30))).is_none());
        let none = ServiceConfig {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(bad(none), Some(ConfigError::Attempts));
        let g = Guard::new(
            GuardName::new("g").unwrap(),
            Action::Claim,
            vec![guard::Subject::User],
            1,
            guard::Window::Day,
        )
        .unwrap();
        let twice = ServiceConfig {
            guards: vec![g.clone(), g],
            ..Default::default()
        };
        assert!(matches!(
            bad(twice),
            Some(ConfigError::DuplicateGuard { .. })
        ));
    }
}
