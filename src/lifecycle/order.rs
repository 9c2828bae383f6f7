//! Orders as records (see [`Order`]).

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use super::{LifecycleError, RefundKind};
use crate::cart::Buyer;
use crate::checkout::{OfferId, Quote, Share};
use crate::id::{Channel, CouponId, OrderId, TemplateId, UserId};
use crate::money::{Money, MoneyError};
use crate::rule::PromoCode;

/// Who acts on an order or coupon.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "kind", content = "user", rename_all = "snake_case")
)]
pub enum Actor {
    /// A buyer, by account: acts only on their own orders.
    Buyer(UserId),
    /// The merchant (back office, customer service).
    Merchant,
    /// The platform itself: the payment system, a scheduled job, the hold's expiry.
    System,
}

/// What an actor does, for [`Actor::permits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OrderAction {
    /// Confirm payment.
    Pay,
    /// Cancel an unpaid order (its coupons return).
    Cancel,
    /// Mark a paid order completed (delivered, accepted).
    Complete,
    /// Refund, for the given reason.
    Refund(RefundKind),
    /// Void a coupon.
    Void,
}

impl fmt::Display for OrderAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderAction::Pay => "pay",
            OrderAction::Cancel => "cancel",
            OrderAction::Complete => "complete",
            OrderAction::Refund(RefundKind::Buyer) => "refund (the buyer's reason)",
            OrderAction::Refund(RefundKind::Merchant) => "refund (the merchant's reason)",
            OrderAction::Void => "void",
        })
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Buyer(u) => write!(f, "buyer {u}"),
            Actor::Merchant => f.write_str("the merchant"),
            Actor::System => f.write_str("the system"),
        }
    }
}

impl Actor {
    /// Whether this actor may do `action` on a record belonging to `owner` (the table in the
    /// [`Order`] docs).
    pub fn permits(&self, action: OrderAction, owner: &UserId) -> bool {
        use OrderAction as A;
        match self {
            Actor::Buyer(u) => {
                u == owner
                    && matches!(
                        action,
                        A::Cancel | A::Complete | A::Refund(RefundKind::Buyer)
                    )
            }
            Actor::Merchant => true,
            Actor::System => !matches!(action, A::Refund(RefundKind::Buyer)),
        }
    }

    /// `Ok` when [`permits`](Self::permits), else [`LifecycleError::NotPermitted`].
    ///
    /// # Errors
    /// [`LifecycleError::NotPermitted`].
    pub fn check(
        &self,
        action: OrderAction,
        owner: &UserId,
        record: &str,
    ) -> Result<(), LifecycleError> {
        if self.permits(action, owner) {
            Ok(())
        } else {
            Err(LifecycleError::NotPermitted {
                actor: self.clone(),
                action,
                record: record.to_owned(),
            })
        }
    }
}

/// Why an unpaid order was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ReleaseCause {
    /// Cancelled by the buyer, the merchant or the system.
    Cancelled,
    /// Its hold ran out before it was paid (found by a sweep).
    HoldRanOut,
}

/// Where an order is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "state", rename_all = "snake_case")
)]
pub enum OrderState {
    /// Placed: its coupons and promo-code uses are held until the hold runs out.
    Placed,
    /// Paid: its coupons are used.
    Paid {
        /// When.
        at: DateTime<Utc>,
    },
    /// Completed (delivered, accepted).
    Completed {
        /// When.
        at: DateTime<Utc>,
    },
    /// Released unpaid: its coupons and uses were given back.
    Released {
        /// When.
        at: DateTime<Utc>,
        /// Why.
        cause: ReleaseCause,
    },
    /// Every line and the shipping fee refunded.
    Refunded {
        /// When the last refund was made.
        at: DateTime<Utc>,
    },
}

impl OrderState {
    /// A short lower-case name: `placed`, `paid`, `completed`, `released`, `refunded`.
    pub fn name(&self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Paid { .. } => "paid",
            OrderState::Completed { .. } => "completed",
            OrderState::Released { .. } => "released",
            OrderState::Refunded { .. } => "refunded",
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Units of one line to refund.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RefundUnits {
    /// The line, by its position in the order (from 0).
    pub line: usize,
    /// How many of its units.
    pub quantity: u32,
}

/// What to refund, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RefundRequest {
    /// Whose reason: decides, with each template's policy, whether coupons come back.
    pub kind: RefundKind,
    /// The units, or `None` for everything not yet refunded (the shipping fee included).
    pub units: Option<Vec<RefundUnits>>,
    /// Whether to refund the shipping fee too (ignored when `units` is `None`: a whole refund
    /// always includes it).
    pub shipping: bool,
}

impl RefundRequest {
    /// Everything not yet refunded.
    pub fn whole(kind: RefundKind) -> RefundRequest {
        RefundRequest {
            kind,
            units: None,
            shipping: true,
        }
    }

    /// Some units of some lines, without the shipping fee.
    pub fn units(kind: RefundKind, units: Vec<RefundUnits>) -> RefundRequest {
        RefundRequest {
            kind,
            units: Some(units),
            shipping: false,
        }
    }

    /// Also refund the shipping fee.
    pub fn with_shipping(mut self) -> RefundRequest {
        self.shipping = true;
        self
    }
}

/// One line's part of a refund.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RefundedLine {
    /// The line's position.
    pub line: usize,
    /// Units refunded.
    pub quantity: u32,
    /// What the buyer gets back for them: their part of the line's final amount.
    pub amount: Money,
    /// Each offer's share given back with them.
    pub shares: Vec<Share>,
}

/// One refund of an order, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OrderRefund {
    /// When.
    pub at: DateTime<Utc>,
    /// Who refunded.
    pub by: Actor,
    /// Whose reason.
    pub kind: RefundKind,
    /// The lines' parts.
    pub lines: Vec<RefundedLine>,
    /// The shipping fee paid back (zero when not refunded now).
    pub shipping: Money,
    /// Everything paid back: the lines' amounts and the shipping fee.
    pub amount: Money,
    /// The discount given back with it: every share of the refunded units and fee.
    pub discount: Money,
    /// Coupons this refund settled that return to the wallet.
    pub returned: Vec<CouponId>,
    /// Coupons this refund settled that are voided.
    pub voided: Vec<CouponId>,
}

/// Orders as records: placed with its coupons held, then paid, completed, released or
/// refunded in part or in whole.
///
/// An [`Order`] keeps the quote exactly as it was locked — every line's original and final
/// amount and every offer's share of it — so a retry, a payment or a refund never re-prices.
/// Its transitions are pure: each takes the acting party, the request and `now`, and returns
/// the next record or a typed [`LifecycleError`].
///
/// ```text
///            pay                 complete
///   Placed ───────▶ Paid ──────────────────▶ Completed
///     │               │ refund (part)          │ refund (part)
///     │ cancel /      ▼                        ▼
///     │ hold ran out  Paid, partly refunded    Completed, partly refunded
///     ▼               │ … the last unit        │ … the last unit
///   Released          ▼                        ▼
///                   Refunded ◀──────────────────┘
/// ```
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use coupons::cart::{Buyer, Cart, CartLine};
/// use coupons::checkout::{Checkout, StackingPolicy};
/// use coupons::id::{Channel, OrderId, Sku, UserId};
/// use coupons::lifecycle::{Actor, Order, RefundKind, RefundRequest, RefundUnits};
/// use coupons::money::{Currency, Money};
///
/// let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
/// let cny = Currency::CNY;
/// let cart = Cart::new(cny, vec![CartLine::new(Sku::new("tea")?, Money::from_minor(3333, cny), 3)],
///     Money::zero(cny))?;
/// let alice = Buyer::new(UserId::new("alice")?, Channel::new("app")?);
/// let quote = Checkout::new(&cart, &alice, now, &StackingPolicy::default()).best()?;
/// let order = Order::place(OrderId::new("o-1")?, &alice, quote, vec![], vec![], None, now);
/// let skew = Duration::seconds(2);
/// // A buyer never confirms their own payment.
/// assert!(order.pay(&Actor::Buyer(alice.user.clone()), now, skew).is_err());
/// let paid = order.pay(&Actor::System, now, skew)?;
/// // One unit of three back: ⌊99.99 × 1/3⌋ = 33.33.
/// let one = RefundRequest::units(RefundKind::Buyer, vec![RefundUnits { line: 0, quantity: 1 }]);
/// let (paid, refund) = paid.refund(&Actor::Buyer(alice.user.clone()), &one, now, skew, &|_| false)?;
/// assert_eq!(refund.amount, Money::from_minor(3333, cny));
/// // The rest: 66.66, so that the two sum to 99.99 exactly.
/// let (done, rest) = paid.refund(&Actor::Merchant, &RefundRequest::whole(RefundKind::Buyer),
///     now + Duration::minutes(1), skew, &|_| false)?;
/// assert_eq!(rest.amount, Money::from_minor(6666, cny));
/// assert_eq!(done.state.name(), "refunded");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ## Who may do what
/// Every transition names its [`Actor`]. [`Actor::permits`] is the whole table:
///
/// | action | the order's buyer | another buyer | the merchant | the system |
/// |---|---|---|---|---|
/// | pay | no | no | yes | yes |
/// | cancel (unpaid) | yes | no | yes | yes |
/// | complete | yes | no | yes | yes |
/// | refund, buyer's reason | yes | no | yes | no |
/// | refund, merchant's reason | no | no | yes | yes |
/// | void a coupon | no | no | yes | yes |
///
/// A buyer never marks an order paid: payment is confirmed by the merchant or the payment
/// system, or a buyer could take the goods without paying. A buyer may ask for a refund for
/// their own reasons, but only the merchant (or the system, e.g. when an order cannot ship)
/// refunds for the merchant's reasons, since that reason decides whether coupons come back.
///
/// ## Refunds and coupons
/// A refund names lines and quantities ([`RefundRequest`]). What goes back is exact: for `q` of
/// a line's `n` units the buyer gets back `⌊final · k / n⌋ − ⌊final · j / n⌋` minor units, where
/// `j` units were refunded before and `k = j + q` after — and likewise each offer's share — so
/// successive partial refunds sum to the line's amounts exactly. A coupon is settled by the
/// refund that refunds the last unit of every line it discounted (the shipping fee too, for a
/// shipping coupon; the whole order for a coupon that saved nothing): then it returns to the
/// wallet or is voided as its template's [`RefundPolicy`](crate::rule::RefundPolicy) says for
/// that refund's [`RefundKind`]. Until then it stays Used: the buyer keeps the discount on what
/// they keep. Promo-code uses are given back only when an unpaid order is released.
///
/// ## Clocks
/// Several app servers stamp transitions with their own clocks. A transition whose `now` is
/// earlier than the record's last transition by more than the tolerance is refused
/// ([`LifecycleError::ClockBehind`]); within the tolerance it is recorded at the last
/// transition's instant, so a record's history never runs backwards.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// The buyer's account.
    pub buyer: UserId,
    /// The channel it was placed through.
    pub channel: Channel,
    /// The quote as locked: lines with original and final amounts and every offer's share.
    pub quote: Quote,
    /// The coupons it holds (or used).
    pub coupons: Vec<CouponId>,
    /// The promo codes whose uses it counted.
    pub codes: Vec<PromoCode>,
    /// The templates of those codes, in the same order.
    pub code_templates: Vec<TemplateId>,
    /// When the hold runs out, if it holds coupons or promo-code uses.
    pub hold_until: Option<DateTime<Utc>>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Its last transition.
    pub updated_at: DateTime<Utc>,
    /// Where it is.
    pub state: OrderState,
    /// Units refunded so far, per line.
    pub refunded_units: Vec<u32>,
    /// Whether the shipping fee was refunded.
    pub shipping_refunded: bool,
    /// Every refund, in order.
    pub refunds: Vec<OrderRefund>,
}

/// `⌊a · k / n⌋` for `a ≥ 0` and `0 ≤ k ≤ n`, computed without overflow.
fn part_of(total: i128, k: u32, n: u32) -> i128 {
    if n == 0 {
        return 0;
    }
    let (k, n) = (i128::from(k), i128::from(n));
    // total = q·n + r with |r| < n, so total·k/n = q·k + r·k/n; r·k fits easily.
    let q = total / n;
    let r = total % n;
    q * k + (r * k) / n
}

/// The part of `amount` that `j → k` of `n` units carry: `⌊a·k/n⌋ − ⌊a·j/n⌋` minor units.
fn slice(amount: &Money, j: u32, k: u32, n: u32) -> Result<Money, MoneyError> {
    let minor = amount.to_minor_i128();
    Money::from_minor_i128(
        part_of(minor, k, n) - part_of(minor, j, n),
        amount.currency(),
    )
}

impl Order {
    /// A new order, placed at `now` with the quote as locked.
    pub fn place(
        id: OrderId,
        buyer: &Buyer,
        quote: Quote,
        coupons: Vec<CouponId>,
        codes: Vec<(PromoCode, TemplateId)>,
        hold_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Order {
        let lines = quote.lines.len();
        let (codes, code_templates) = codes.into_iter().unzip();
        Order {
            id,
            buyer: buyer.user.clone(),
            channel: buyer.channel.clone(),
            quote,
            coupons,
            codes,
            code_templates,
            hold_until,
            placed_at: now,
            updated_at: now,
            state: OrderState::Placed,
            refunded_units: vec![0; lines],
            shipping_refunded: false,
            refunds: Vec::new(),
        }
    }

    /// Whether it is paid or completed, refunded in part or not at all.
    pub fn is_paid(&self) -> bool {
        matches!(
            self.state,
            OrderState::Paid { .. } | OrderState::Completed { .. }
        )
    }

    /// What was paid back so far.
    pub fn refunded_amount(&self) -> Money {
        let mut sum = Money::zero(self.quote.currency);
        for r in &self.refunds {
            sum = sum.checked_add(&r.amount).unwrap_or(sum);
        }
        sum
    }

    /// The instant a transition at `now` is recorded at: `now`, or the last transition's when
    /// `now` is earlier by at most `tolerance`.
    ///
    /// # Errors
    /// [`LifecycleError::ClockBehind`] when `now` is earlier by more than `tolerance`.
    pub fn clock(
        &self,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<DateTime<Utc>, LifecycleError> {
        clock(self.id.as_str(), self.updated_at, now, tolerance)
    }

    fn illegal(&self, action: OrderAction) -> LifecycleError {
        match (&self.state, action) {
            (OrderState::Released { .. }, OrderAction::Pay | OrderAction::Complete) => {
                LifecycleError::OrderReleased {
                    order: self.id.clone(),
                }
            }
            (OrderState::Placed | OrderState::Released { .. }, OrderAction::Refund(_)) => {
                LifecycleError::OrderNotPaid {
                    order: self.id.clone(),
                }
            }
            (OrderState::Refunded { .. }, OrderAction::Refund(_)) => {
                LifecycleError::OrderAlreadyRefunded {
                    order: self.id.clone(),
                }
            }
            (
                OrderState::Paid { .. }
                | OrderState::Completed { .. }
                | OrderState::Refunded { .. },
                OrderAction::Cancel,
            ) => LifecycleError::OrderPaid {
                order: self.id.clone(),
            },
            (state, action) => LifecycleError::IllegalOrderTransition {
                order: self.id.clone(),
                state: state.name(),
                action,
            },
        }
    }

    fn with(&self, state: OrderState, at: DateTime<Utc>) -> Order {
        Order {
            state,
            updated_at: at,
            ..self.clone()
        }
    }

    /// Placed → Paid.
    ///
    /// # Errors
    /// [`LifecycleError::NotPermitted`], [`LifecycleError::ClockBehind`],
    /// [`LifecycleError::OrderReleased`], [`LifecycleError::IllegalOrderTransition`].
    pub fn pay(
        &self,
        by: &Actor,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<Order, LifecycleError> {
        by.check(OrderAction::Pay, &self.buyer, self.id.as_str())?;
        let at = self.clock(now, tolerance)?;
        match self.state {
            OrderState::Placed => Ok(self.with(OrderState::Paid { at }, at)),
            _ => Err(self.illegal(OrderAction::Pay)),
        }
    }

    /// Placed → Released.
    ///
    /// # Errors
    /// [`LifecycleError::NotPermitted`], [`LifecycleError::ClockBehind`],
    /// [`LifecycleError::OrderPaid`], [`LifecycleError::IllegalOrderTransition`].
    pub fn release(
        &self,
        by: &Actor,
        cause: ReleaseCause,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<Order, LifecycleError> {
        by.check(OrderAction::Cancel, &self.buyer, self.id.as_str())?;
        let at = self.clock(now, tolerance)?;
        match self.state {
            OrderState::Placed => Ok(self.with(OrderState::Released { at, cause }, at)),
            _ => Err(self.illegal(OrderAction::Cancel)),
        }
    }

    /// Paid → Completed (a partly refunded order too).
    ///
    /// # Errors
    /// [`LifecycleError::NotPermitted`], [`LifecycleError::ClockBehind`],
    /// [`LifecycleError::IllegalOrderTransition`].
    pub fn complete(
        &self,
        by: &Actor,
        now: DateTime<Utc>,
        tolerance: Duration,
    ) -> Result<Order, LifecycleError> {
        by.check(OrderAction::Complete, &self.buyer, self.id.as_str())?;
        let at = self.clock(now, tolerance)?;
        match self.state {
            OrderState::Paid { .. } => Ok(self.with(OrderState::Completed { at }, at)),
            _ => Err(self.illegal(OrderAction::Complete)),
        }
    }

    /// Refunds what `request` names: the next record and the refund as recorded in it. Each
    /// coupon the refund settles goes to `returned` when `returns` says so (its template's
    /// policy for the request's kind), else to `voided`.
    ///
    /// # Errors
    /// [`LifecycleError::NotPermitted`], [`LifecycleError::ClockBehind`],
    /// [`LifecycleError::OrderNotPaid`], [`LifecycleError::OrderAlreadyRefunded`] when nothing
    /// is left, [`LifecycleError::InvalidRefund`] for an unknown line, more units than are left,
    /// a zero quantity, a line named twice or a refund of nothing.
    pub fn refund(
        &self,
        by: &Actor,
        request: &RefundRequest,
        now: DateTime<Utc>,
        tolerance: Duration,
        returns: &dyn Fn(&CouponId) -> bool,
    ) -> Result<(Order, OrderRefund), LifecycleError> {
        let action = OrderAction::Refund(request.kind);
        by.check(action, &self.buyer, self.id.as_str())?;
        let at = self.clock(now, tolerance)?;
        if !self.is_paid() {
            return Err(self.illegal(action));
        }
        let invalid = |why: String| LifecycleError::InvalidRefund {
            order: self.id.clone(),
            why,
        };
        let left = |i: usize| {
            let n = self.quote.lines.get(i).map_or(0, |l| l.quantity);
            n - self.refunded_units.get(i).copied().unwrap_or(0).min(n)
        };
        // The units asked for, per line, checked.
        let mut asked = vec![0u32; self.quote.lines.len()];
        let shipping;
        match &request.units {
            None => {
                for (i, a) in asked.iter_mut().enumerate() {
                    *a = left(i);
                }
                shipping = !self.shipping_refunded;
            }
            Some(units) => {
                for u in units {
                    let Some(slot) = asked.get_mut(u.line) else {
                        return Err(invalid(format!(
                            "line {} does not exist (the order has {} lines)",
                            u.line,
                            self.quote.lines.len()
                        )));
                    };
                    if u.quantity == 0 {
                        return Err(invalid(format!("line {}: a quantity of zero", u.line)));
                    }
                    if *slot != 0 {
                        return Err(invalid(format!("line {} is named twice", u.line)));
                    }
                    if u.quantity > left(u.line) {
                        return Err(invalid(format!(
                            "line {}: {} units asked, {} left to refund",
                            u.line,
                            u.quantity,
                            left(u.line)
                        )));
                    }
                    *slot = u.quantity;
                }
                if request.shipping && self.shipping_refunded {
                    return Err(invalid("the shipping fee was already refunded".into()));
                }
                shipping = request.shipping;
            }
        }
        let shipping = shipping && self.quote.shipping.original.is_positive();
        if asked.iter().all(|&a| a == 0) && !shipping {
            return Err(if request.units.is_none() {
                LifecycleError::OrderAlreadyRefunded {
                    order: self.id.clone(),
                }
            } else {
                invalid("nothing to refund".into())
            });
        }
        let cur = self.quote.currency;
        let money = |e: MoneyError| invalid(e.to_string());
        let mut next = self.clone();
        let mut lines = Vec::new();
        let mut amount = Money::zero(cur);
        let mut discount = Money::zero(cur);
        for (i, (line, &q)) in self.quote.lines.iter().zip(&asked).enumerate() {
            if q == 0 {
                continue;
            }
            let j = self.refunded_units.get(i).copied().unwrap_or(0);
            let (k, n) = (j + q, line.quantity);
            let paid = slice(&line.final_amount, j, k, n).map_err(money)?;
            let mut shares = Vec::new();
            for s in &line.shares {
                let part = slice(&s.amount, j, k, n).map_err(money)?;
                discount = discount.checked_add(&part).map_err(money)?;
                if !part.is_zero() {
                    shares.push(Share {
                        offer: s.offer.clone(),
                        amount: part,
                    });
                }
            }
            amount = amount.checked_add(&paid).map_err(money)?;
            if let Some(r) = next.refunded_units.get_mut(i) {
                *r = k;
            }
            lines.push(RefundedLine {
                line: i,
                quantity: q,
                amount: paid,
                shares,
            });
        }
        let shipping_back = if shipping {
            next.shipping_refunded = true;
            for s in &self.quote.shipping.shares {
                discount = discount.checked_add(&s.amount).map_err(money)?;
            }
            self.quote.shipping.final_amount
        } else {
            Money::zero(cur)
        };
        amount = amount.checked_add(&shipping_back).map_err(money)?;
        let (returned, voided): (Vec<CouponId>, Vec<CouponId>) = self
            .coupons
            .iter()
            .filter(|c| !self.covered(c, self) && self.covered(c, &next))
            .cloned()
            .partition(|c| returns(c));
        let whole = next.is_wholly_refunded();
        next.updated_at = at;
        if whole {
            next.state = OrderState::Refunded { at };
        }
        let refund = OrderRefund {
            at,
            by: by.clone(),
            kind: request.kind,
            lines,
            shipping: shipping_back,
            amount,
            discount,
            returned,
            voided,
        };
        next.refunds.push(refund.clone());
        Ok((next, refund))
    }

    /// Whether every line and the shipping fee are refunded.
    pub fn is_wholly_refunded(&self) -> bool {
        self.quote
            .lines
            .iter()
            .zip(&self.refunded_units)
            .all(|(l, &r)| r >= l.quantity)
            && (self.shipping_refunded || !self.quote.shipping.original.is_positive())
    }

    /// Whether every part of the order `coupon` discounted is refunded in `state` (the whole
    /// order, for a coupon that discounted nothing).
    fn covered(&self, coupon: &CouponId, state: &Order) -> bool {
        let id = OfferId::Coupon(coupon.clone());
        let mut touched = false;
        for (line, &r) in self.quote.lines.iter().zip(&state.refunded_units) {
            if line.shares.iter().any(|s| s.offer == id) {
                touched = true;
                if r < line.quantity {
                    return false;
                }
            }
        }
        if self.quote.shipping.shares.iter().any(|s| s.offer == id) {
            touched = true;
            if !state.shipping_refunded {
                return false;
            }
        }
        touched || state.is_wholly_refunded()
    }
}

/// The instant a transition of record `record`, last changed at `last`, is recorded at.
pub(crate) fn clock(
    record: &str,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<DateTime<Utc>, LifecycleError> {
    if now >= last {
        return Ok(now);
    }
    if last.signed_duration_since(now) <= tolerance {
        return Ok(last);
    }
    Err(LifecycleError::ClockBehind {
        record: record.to_owned(),
        last,
        now,
        tolerance_ms: tolerance.num_milliseconds(),
    })
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "order {} of {} ({}): {} → {}",
            self.id, self.buyer, self.state, self.quote.total_before, self.quote.total_after
        )?;
        if !self.refunds.is_empty() {
            write!(
                f,
                ", {} refunded in {} refund(s)",
                self.refunded_amount(),
                self.refunds.len()
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for OrderRefund {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refunded by {}", self.amount, self.by)?;
        let units: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{}×line {}", l.quantity, l.line))
            .collect();
        if !units.is_empty() {
            write!(f, " for {}", units.join(", "))?;
        }
        if self.shipping.is_positive() {
            write!(f, " and shipping {}", self.shipping)?;
        }
        write!(f, "; discount given back {}", self.discount)?;
        for (what, ids) in [("returned", &self.returned), ("voided", &self.voided)] {
            if !ids.is_empty() {
                let c: Vec<&str> = ids.iter().map(|c| c.as_str()).collect();
                write!(f, "; coupons {what}: {}", c.join(", "))?;
            }
        }
        Ok(())
    }
}
