//! What can happen to a user, what a rule listens for, and the timers of delayed triggers.
//!
//! An [`Occurrence`] is a fact the shop reports ("alice's cart changed", "bob's birthday");
//! a rule's [`Trigger`] says which occurrences it listens for, with its parameters (how long a
//! cart must stay idle, which spend level, which probability threshold).
//!
//! ## Delayed triggers are timers
//!
//! The engine keeps no clock. When a cart changes ([`Occurrence::CartChanged`]) or a product
//! page opens ([`Occurrence::ViewStarted`]), the decision returns one [`Timer`] per distinct
//! delay the rules ask for (30 minutes by default for carts, 3 for views). The caller schedules
//! each under its user and [`TimerKey`] — scheduling a key again **replaces** the earlier timer,
//! so a cart changed twice is abandoned 30 minutes after its last change — and at
//! [`Timer::due`] feeds [`Timer::then`] back as an ordinary occurrence. A closed page
//! ([`Occurrence::ViewEnded`]) returns the keys to cancel. An order placed meanwhile needs no
//! cancelling: an abandoned-cart occurrence whose cart changed before the user's last order is
//! held back by [`Guard::OrderedSince`](super::Guard::OrderedSince).

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};

use super::{CartId, IssuingError, Occasion, invalid, local};
use crate::id::{MembershipLevel, OrderId, ShopId, Sku, UserId};
use crate::money::Money;

/// Something that happened to one user, as the shop reports it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Occurrence {
    /// The account was created.
    Registration,
    /// The first order was paid.
    FirstPurchase {
        /// The order.
        order: OrderId,
    },
    /// An order was paid; `cumulative` is the user's total spend including it.
    OrderPaid {
        /// The order.
        order: OrderId,
        /// The order's amount.
        amount: Money,
        /// Total spend so far, this order included.
        cumulative: Money,
    },
    /// The membership level changed.
    MembershipChanged {
        /// The level before, if any.
        from: Option<MembershipLevel>,
        /// The level now.
        to: MembershipLevel,
    },
    /// The cart changed: schedules the abandoned-cart timers.
    CartChanged {
        /// The cart.
        cart: CartId,
    },
    /// A cart-idle timer came due: no order since the cart last changed `after_minutes` ago.
    CartAbandoned {
        /// The cart.
        cart: CartId,
        /// When the cart last changed.
        changed_at: DateTime<Utc>,
        /// The delay of the timer that fired.
        after_minutes: u32,
    },
    /// A product page opened: schedules the viewing timers.
    ViewStarted {
        /// The product.
        product: Sku,
    },
    /// The product page closed: cancels the viewing timers.
    ViewEnded {
        /// The product.
        product: Sku,
    },
    /// A viewing timer came due: the page has been open `minutes` minutes.
    ProductViewed {
        /// The product.
        product: Sku,
        /// When the page opened.
        started_at: DateTime<Utc>,
        /// The delay of the timer that fired.
        minutes: u32,
    },
    /// It is the user's birthday (reported once on the day by the shop's daily job).
    Birthday,
    /// A holiday or campaign date.
    Occasion {
        /// Which.
        name: Occasion,
    },
    /// The anniversary of the user's first order in a shop, or of the shop itself.
    ShopAnniversary {
        /// The shop.
        shop: ShopId,
        /// Which anniversary (1 for the first).
        years: u32,
    },
    /// Someone the user invited signed up.
    InvitationAccepted {
        /// The new account.
        invitee: UserId,
    },
    /// Someone clicked a link the user shared.
    ShareClicked {
        /// Who clicked.
        clicker: UserId,
    },
    /// Targeting found the user dormant (the `dormant` lifecycle segment).
    DormancyDetected {
        /// The user's last order, which starts this dormant spell.
        since: DateTime<Utc>,
    },
    /// The churn model's probability that the user is still a customer was re-estimated.
    AliveDropped {
        /// P(alive), in `[0, 1]`.
        p_alive: f64,
    },
    /// A paid order was refunded (a transactional apology coupon, typically).
    OrderRefunded {
        /// The order.
        order: OrderId,
    },
}

/// The kind of occurrence a rule listens for (timer-control occurrences have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
#[allow(missing_docs)] // Each is the occurrence of the same name.
pub enum TriggerKind {
    Registration,
    FirstPurchase,
    SpendReached,
    MembershipChanged,
    CartAbandoned,
    ProductViewed,
    Birthday,
    Occasion,
    ShopAnniversary,
    InvitationAccepted,
    ShareClicked,
    Dormancy,
    AliveBelow,
    OrderRefunded,
}

impl TriggerKind {
    /// Every kind.
    pub const ALL: [TriggerKind; 14] = [
        TriggerKind::Registration,
        TriggerKind::FirstPurchase,
        TriggerKind::SpendReached,
        TriggerKind::MembershipChanged,
        TriggerKind::CartAbandoned,
        TriggerKind::ProductViewed,
        TriggerKind::Birthday,
        TriggerKind::Occasion,
        TriggerKind::ShopAnniversary,
        TriggerKind::InvitationAccepted,
        TriggerKind::ShareClicked,
        TriggerKind::Dormancy,
        TriggerKind::AliveBelow,
        TriggerKind::OrderRefunded,
    ];

    /// Its position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }

    /// `registration`, `first-purchase`, … as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Registration => "registration",
            TriggerKind::FirstPurchase => "first-purchase",
            TriggerKind::SpendReached => "spend-reached",
            TriggerKind::MembershipChanged => "membership-changed",
            TriggerKind::CartAbandoned => "cart-abandoned",
            TriggerKind::ProductViewed => "product-viewed",
            TriggerKind::Birthday => "birthday",
            TriggerKind::Occasion => "occasion",
            TriggerKind::ShopAnniversary => "shop-anniversary",
            TriggerKind::InvitationAccepted => "invitation-accepted",
            TriggerKind::ShareClicked => "share-clicked",
            TriggerKind::Dormancy => "dormancy",
            TriggerKind::AliveBelow => "alive-below",
            TriggerKind::OrderRefunded => "order-refunded",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default idle time before a cart counts as abandoned.
pub const DEFAULT_CART_MINUTES: u32 = 30;
/// The default viewing time of [`Trigger::ProductViewed`].
pub const DEFAULT_VIEW_MINUTES: u32 = 3;
/// The longest delay of a delayed trigger: 7 days.
pub const MAX_DELAY_MINUTES: u32 = 7 * 24 * 60;

/// What a rule listens for, with its parameters.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)
)]
#[non_exhaustive]
pub enum Trigger {
    /// [`Occurrence::Registration`].
    Registration,
    /// [`Occurrence::FirstPurchase`].
    FirstPurchase,
    /// An [`Occurrence::OrderPaid`] whose order takes the cumulative spend from below `level`
    /// to `level` or more.
    SpendReached {
        /// The spend level, above zero.
        level: Money,
    },
    /// [`Occurrence::MembershipChanged`] to `to` (any level when `None`).
    MembershipChanged {
        /// The new level, if only one counts.
        #[cfg_attr(feature = "serde", serde(default))]
        to: Option<MembershipLevel>,
    },
    /// A cart idle for `after_minutes` (1 to [`MAX_DELAY_MINUTES`], default 30) with no order.
    CartAbandoned {
        /// The idle time.
        #[cfg_attr(feature = "serde", serde(default = "default_cart"))]
        after_minutes: u32,
    },
    /// A product page open for `minutes` (1 to [`MAX_DELAY_MINUTES`], default 3).
    ProductViewed {
        /// The viewing time.
        #[cfg_attr(feature = "serde", serde(default = "default_view"))]
        minutes: u32,
    },
    /// [`Occurrence::Birthday`].
    Birthday,
    /// [`Occurrence::Occasion`] named `name`.
    Occasion {
        /// The occasion.
        name: Occasion,
    },
    /// [`Occurrence::ShopAnniversary`].
    ShopAnniversary,
    /// [`Occurrence::InvitationAccepted`].
    InvitationAccepted,
    /// [`Occurrence::ShareClicked`].
    ShareClicked,
    /// [`Occurrence::DormancyDetected`].
    Dormancy,
    /// [`Occurrence::AliveDropped`] to strictly below `threshold` (in `(0, 1]`).
    AliveBelow {
        /// The threshold.
        threshold: f64,
    },
    /// [`Occurrence::OrderRefunded`].
    OrderRefunded,
}

#[cfg(feature = "serde")]
fn default_cart() -> u32 {
    DEFAULT_CART_MINUTES
}

#[cfg(feature = "serde")]
fn default_view() -> u32 {
    DEFAULT_VIEW_MINUTES
}

impl Trigger {
    /// An abandoned cart after the default 30 minutes.
    pub fn cart_abandoned() -> Trigger {
        Trigger::CartAbandoned {
            after_minutes: DEFAULT_CART_MINUTES,
        }
    }

    /// A product viewed for the default 3 minutes.
    pub fn product_viewed() -> Trigger {
        Trigger::ProductViewed {
            minutes: DEFAULT_VIEW_MINUTES,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> TriggerKind {
        match self {
            Trigger::Registration => TriggerKind::Registration,
            Trigger::FirstPurchase => TriggerKind::FirstPurchase,
            Trigger::SpendReached { .. } => TriggerKind::SpendReached,
            Trigger::MembershipChanged { .. } => TriggerKind::MembershipChanged,
            Trigger::CartAbandoned { .. } => TriggerKind::CartAbandoned,
            Trigger::ProductViewed { .. } => TriggerKind::ProductViewed,
            Trigger::Birthday => TriggerKind::Birthday,
            Trigger::Occasion { .. } => TriggerKind::Occasion,
            Trigger::ShopAnniversary => TriggerKind::ShopAnniversary,
            Trigger::InvitationAccepted => TriggerKind::InvitationAccepted,
            Trigger::ShareClicked => TriggerKind::ShareClicked,
            Trigger::Dormancy => TriggerKind::Dormancy,
            Trigger::AliveBelow { .. } => TriggerKind::AliveBelow,
            Trigger::OrderRefunded => TriggerKind::OrderRefunded,
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`IssuingError::Invalid`] naming the field: a spend level of zero or less, a delay
    /// outside 1 to [`MAX_DELAY_MINUTES`], a threshold outside `(0, 1]`.
    pub fn validate(&self) -> Result<(), IssuingError> {
        match self {
            Trigger::SpendReached { level } if !level.is_positive() => Err(invalid(
                "rule.trigger.level",
                level,
                "a spend level is above zero",
            )),
            Trigger::CartAbandoned { after_minutes: m } if *m == 0 || *m > MAX_DELAY_MINUTES => {
                Err(invalid(
                    "rule.trigger.after_minutes",
                    m,
                    "a cart idles 1 to 10080 minutes",
                ))
            }
            Trigger::ProductViewed { minutes: m } if *m == 0 || *m > MAX_DELAY_MINUTES => {
                Err(invalid(
                    "rule.trigger.minutes",
                    m,
                    "a product is viewed 1 to 10080 minutes",
                ))
            }
            Trigger::AliveBelow { threshold: t } if !(*t > 0.0 && *t <= 1.0) => Err(invalid(
                "rule.trigger.threshold",
                t,
                "a probability threshold is in (0, 1]",
            )),
            _ => Ok(()),
        }
    }

    /// Whether this trigger fires on `occurrence`.
    pub fn matches(&self, occurrence: &Occurrence) -> bool {
        match (self, occurrence) {
            (Trigger::Registration, Occurrence::Registration)
            | (Trigger::FirstPurchase, Occurrence::FirstPurchase { .. })
            | (Trigger::Birthday, Occurrence::Birthday)
            | (Trigger::ShopAnniversary, Occurrence::ShopAnniversary { .. })
            | (Trigger::InvitationAccepted, Occurrence::InvitationAccepted { .. })
            | (Trigger::ShareClicked, Occurrence::ShareClicked { .. })
            | (Trigger::Dormancy, Occurrence::DormancyDetected { .. })
            | (Trigger::OrderRefunded, Occurrence::OrderRefunded { .. }) => true,
            (
                Trigger::SpendReached { level },
                Occurrence::OrderPaid {
                    amount, cumulative, ..
                },
            ) => {
                level.currency() == cumulative.currency()
                    && cumulative >= level
                    && cumulative
                        .checked_sub(amount)
                        .is_ok_and(|before| before < *level)
            }
            (Trigger::MembershipChanged { to }, Occurrence::MembershipChanged { to: now, .. }) => {
                to.as_ref().is_none_or(|t| t == now)
            }
            (
                Trigger::CartAbandoned { after_minutes },
                Occurrence::CartAbandoned {
                    after_minutes: m, ..
                },
            ) => after_minutes == m,
            (Trigger::ProductViewed { minutes }, Occurrence::ProductViewed { minutes: m, .. }) => {
                minutes == m
            }
            (Trigger::Occasion { name }, Occurrence::Occasion { name: n }) => name == n,
            (Trigger::AliveBelow { threshold }, Occurrence::AliveDropped { p_alive }) => {
                *p_alive < *threshold
            }
            _ => false,
        }
    }
}

impl Occurrence {
    /// The kind of trigger it can fire, or `None` for the timer controls
    /// ([`CartChanged`](Self::CartChanged), [`ViewStarted`](Self::ViewStarted),
    /// [`ViewEnded`](Self::ViewEnded)).
    pub fn kind(&self) -> Option<TriggerKind> {
        Some(match self {
            Occurrence::Registration => TriggerKind::Registration,
            Occurrence::FirstPurchase { .. } => TriggerKind::FirstPurchase,
            Occurrence::OrderPaid { .. } => TriggerKind::SpendReached,
            Occurrence::MembershipChanged { .. } => TriggerKind::MembershipChanged,
            Occurrence::CartAbandoned { .. } => TriggerKind::CartAbandoned,
            Occurrence::ProductViewed { .. } => TriggerKind::ProductViewed,
            Occurrence::Birthday => TriggerKind::Birthday,
            Occurrence::Occasion { .. } => TriggerKind::Occasion,
            Occurrence::ShopAnniversary { .. } => TriggerKind::ShopAnniversary,
            Occurrence::InvitationAccepted { .. } => TriggerKind::InvitationAccepted,
            Occurrence::ShareClicked { .. } => TriggerKind::ShareClicked,
            Occurrence::DormancyDetected { .. } => TriggerKind::Dormancy,
            Occurrence::AliveDropped { .. } => TriggerKind::AliveBelow,
            Occurrence::OrderRefunded { .. } => TriggerKind::OrderRefunded,
            Occurrence::CartChanged { .. }
            | Occurrence::ViewStarted { .. }
            | Occurrence::ViewEnded { .. } => return None,
        })
    }

    /// What makes an issue for this occurrence the same as an earlier one: a rule issues at
    /// most once per user and key. Dates are the user's local dates (`offset`) at `now`.
    ///
    /// | occurrence | key | so a rule issues at most |
    /// |---|---|---|
    /// | registration, first purchase, spend reached | once | once per user |
    /// | membership changed | the new level and the local date | once a day per level |
    /// | cart abandoned | the cart | once per cart |
    /// | product viewed | the product and the local date | once a day per product |
    /// | birthday | the local year | once a year |
    /// | occasion | the occasion and the local year | once a year per occasion |
    /// | shop anniversary | the shop and the years | once per anniversary |
    /// | invitation accepted, share clicked | the invitee, the clicker | once per friend |
    /// | dormancy detected | the last order | once per dormant spell |
    /// | P(alive) dropped | the local date | once a day (use a cooldown for less) |
    /// | order refunded | the order | once per order |
    pub fn dedup_key(&self, offset: FixedOffset, now: DateTime<Utc>) -> DedupKey {
        let date = || local(now, offset).date();
        match self {
            Occurrence::Registration
            | Occurrence::FirstPurchase { .. }
            | Occurrence::OrderPaid { .. }
            | Occurrence::CartChanged { .. }
            | Occurrence::ViewStarted { .. }
            | Occurrence::ViewEnded { .. } => DedupKey::Once,
            Occurrence::MembershipChanged { to, .. } => DedupKey::Level {
                level: to.clone(),
                date: date(),
            },
            Occurrence::CartAbandoned { cart, .. } => DedupKey::Cart(cart.clone()),
            Occurrence::ProductViewed { product, .. } => DedupKey::Product {
                product: product.clone(),
                date: date(),
            },
            Occurrence::Birthday => DedupKey::Year(date().year()),
            Occurrence::Occasion { name } => DedupKey::Occasion {
                name: name.clone(),
                year: date().year(),
            },
            Occurrence::ShopAnniversary { shop, years } => DedupKey::Shop {
                shop: shop.clone(),
                years: *years,
            },
            Occurrence::InvitationAccepted { invitee } => DedupKey::Friend(invitee.clone()),
            Occurrence::ShareClicked { clicker } => DedupKey::Friend(clicker.clone()),
            Occurrence::DormancyDetected { since } => DedupKey::Since(*since),
            Occurrence::AliveDropped { .. } => DedupKey::Day(date()),
            Occurrence::OrderRefunded { order } => DedupKey::Order(order.clone()),
        }
    }
}

/// What makes two issues of one rule to one user the same (see [`Occurrence::dedup_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
#[non_exhaustive]
pub enum DedupKey {
    /// Once per user.
    Once,
    /// A membership level on a local date.
    Level {
        /// The level.
        level: MembershipLevel,
        /// The local date.
        date: NaiveDate,
    },
    /// A cart.
    Cart(CartId),
    /// A product on a local date.
    Product {
        /// The product.
        product: Sku,
        /// The local date.
        date: NaiveDate,
    },
    /// A local year.
    Year(i32),
    /// An occasion in a local year.
    Occasion {
        /// The occasion.
        name: Occasion,
        /// The local year.
        year: i32,
    },
    /// A shop's anniversary.
    Shop {
        /// The shop.
        shop: ShopId,
        /// Which anniversary.
        years: u32,
    },
    /// An invited friend, or a friend who clicked a share.
    Friend(UserId),
    /// A dormant spell, by the last order that starts it.
    Since(DateTime<Utc>),
    /// A local date.
    Day(NaiveDate),
    /// An order.
    Order(OrderId),
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DedupKey::Once => f.write_str("once"),
            DedupKey::Level { level, date } => write!(f, "level {level} on {date}"),
            DedupKey::Cart(c) => write!(f, "cart {c}"),
            DedupKey::Product { product, date } => write!(f, "product {product} on {date}"),
            DedupKey::Year(y) => write!(f, "year {y}"),
            DedupKey::Occasion { name, year } => write!(f, "{name} {year}"),
            DedupKey::Shop { shop, years } => write!(f, "shop {shop} anniversary {years}"),
            DedupKey::Friend(u) => write!(f, "friend {u}"),
            DedupKey::Since(t) => write!(f, "dormant since {}", t.to_rfc3339()),
            DedupKey::Day(d) => write!(f, "day {d}"),
            DedupKey::Order(o) => write!(f, "order {o}"),
        }
    }
}

/// What a scheduled timer is, per user: scheduling the same key again replaces the timer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum TimerKey {
    /// A cart idle for `after_minutes`.
    CartIdle {
        /// The cart.
        cart: CartId,
        /// The delay.
        after_minutes: u32,
    },
    /// A product page open for `minutes`.
    Viewing {
        /// The product.
        product: Sku,
        /// The delay.
        minutes: u32,
    },
}

impl fmt::Display for TimerKey {
    /// `cart-idle/<cart>/<minutes>m` or `viewing/<sku>/<minutes>m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerKey::CartIdle {
                cart,
                after_minutes,
            } => write!(f, "cart-idle/{cart}/{after_minutes}m"),
            TimerKey::Viewing { product, minutes } => write!(f, "viewing/{product}/{minutes}m"),
        }
    }
}

/// A timer for the caller to schedule under the user and [`key`](Self::key), replacing any
/// with the same key; at [`due`](Self::due), feed [`then`](Self::then) back to the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct Timer {
    /// When it fires.
    pub due: DateTime<Utc>,
    /// What it is, per user.
    pub key: TimerKey,
    /// The occurrence to feed back when it fires.
    pub then: Occurrence,
}

/// One occurrence in a stream: when, and to whom.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Event {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// The user.
    pub user: UserId,
    /// What happened.
    pub occurrence: Occurrence,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use chrono::TimeZone;

    #[test]
    fn spend_reached_fires_only_when_crossing() {
        let y = |n: i64| Money::from_minor(n * 100, Currency::CNY);
        let t = Trigger::SpendReached { level: y(500) };
        let paid = |amount, cumulative| Occurrence::OrderPaid {
            order: OrderId::new("o").unwrap(),
            amount: y(amount),
            cumulative: y(cumulative),
        };
        assert!(t.matches(&paid(100, 500)));
        assert!(t.matches(&paid(600, 600)));
        assert!(!t.matches(&paid(100, 499)));
        assert!(!t.matches(&paid(100, 601)));
    }

    #[test]
    fn birthday_key_is_the_local_year() {
        let t = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
        let east = FixedOffset::east_opt(8 * 3600).unwrap();
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            Occurrence::Birthday.dedup_key(east, t),
            DedupKey::Year(2027)
        );
        assert_eq!(Occurrence::Birthday.dedup_key(utc, t), DedupKey::Year(2026));
    }

    #[test]
    fn trigger_parameters_are_checked() {
        assert!(
            Trigger::CartAbandoned { after_minutes: 0 }
                .validate()
                .is_err()
        );
        assert!(Trigger::AliveBelow { threshold: 0.0 }.validate().is_err());
        assert!(
            Trigger::AliveBelow {
                threshold: f64::NAN
            }
            .validate()
            .is_err()
        );
        assert!(Trigger::AliveBelow { threshold: 0.3 }.validate().is_ok());
        assert!(Trigger::cart_abandoned().validate().is_ok());
    }
}
