//! An issued coupon and its state machine (documented on [`Coupon`]).

use std::fmt;

use chrono::{DateTime, Utc};

use super::{Campaign, LifecycleError, TemplateRecord};
use crate::attributes::Attributes;
use crate::guard::Context;
use crate::id::{CampaignId, Channel, CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use crate::rule::{Distribution, RefundPolicy};

/// Where a coupon is in its life.
///
/// ```text
/// Available ──lock──▶ Locked ──redeem──▶ Used ──refund (policy)──▶ Available | Voided
///     │  ▲              │
///     │  └──release─────┘ (cancel, or hold ran out; Expired if validity passed)
///     ├──expire──▶ Expired
///     └──void────▶ Voided
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "state", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum CouponState {
    /// In the wallet, usable within its validity.
    Available,
    /// Held by an unpaid order until `until`.
    Locked {
        /// The order holding it.
        order: OrderId,
        /// When the hold runs out.
        until: DateTime<Utc>,
    },
    /// Redeemed (核销) by a paid order.
    Used {
        /// The order.
        order: OrderId,
        /// When it was paid.
        at: DateTime<Utc>,
    },
    /// Validity passed before it was used.
    Expired {
        /// When it was marked expired.
        at: DateTime<Utc>,
    },
    /// Voided (作废) by an admin or by a refund that does not return it.
    Voided {
        /// When.
        at: DateTime<Utc>,
    },
}

impl CouponState {
    /// A short lower-case name: `available`, `locked`, `used`, `expired`, `voided`.
    pub fn name(&self) -> &'static str {
        match self {
            CouponState::Available => "available",
            CouponState::Locked { .. } => "locked",
            CouponState::Used { .. } => "used",
            CouponState::Expired { .. } => "expired",
            CouponState::Voided { .. } => "voided",
        }
    }

    /// The order holding (Locked) or having used (Used) the coupon.
    pub fn order(&self) -> Option<&OrderId> {
        match self {
            CouponState::Locked { order, .. } | CouponState::Used { order, .. } => Some(order),
            _ => None,
        }
    }

    /// Whether no transition leaves this state except a refund (Used) — Expired and Voided are
    /// final.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            CouponState::Expired { .. } | CouponState::Voided { .. }
        )
    }
}

impl fmt::Display for CouponState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a coupon reached the account: it matters for metrics (claim rate of click-to-claim
/// campaigns versus auto-issued gifts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ClaimMode {
    /// 自动领取 — issued straight into the account (registration gift, push, compensation).
    Auto,
    /// 点击领取 — the buyer clicked "claim".
    #[default]
    Click,
}

impl fmt::Display for ClaimMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimMode::Auto => "auto-claimed",
            ClaimMode::Click => "clicked to claim",
        })
    }
}

/// A coupon action, named in [`LifecycleError::IllegalCouponTransition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum CouponAction {
    /// Hold for an unpaid order.
    Lock,
    /// Mark used when the order is paid.
    Redeem,
    /// Give back from an unpaid order.
    Release,
    /// Apply a refund of the paid order.
    Refund,
    /// Mark expired.
    Expire,
    /// Void by an admin.
    Void,
}

impl fmt::Display for CouponAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CouponAction::Lock => "lock",
            CouponAction::Redeem => "redeem",
            CouponAction::Release => "release",
            CouponAction::Refund => "refund",
            CouponAction::Expire => "expire",
            CouponAction::Void => "void",
        })
    }
}

/// Who refunds a paid order; the template's [`RefundPolicy`] says what each does to its
/// coupons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum RefundKind {
    /// The merchant refunds before the order completes (out of stock, cannot ship…). By
    /// default the coupon returns to the wallet.
    Merchant,
    /// The buyer asks for a refund after paying. By default the coupon is voided.
    Buyer,
}

impl RefundKind {
    /// Whether a coupon returns to the wallet under `policy`.
    pub fn returns_coupon(self, policy: &RefundPolicy) -> bool {
        match self {
            RefundKind::Merchant => policy.merchant_refund_returns,
            RefundKind::Buyer => policy.buyer_refund_returns,
        }
    }
}

/// A request to issue one coupon into one account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClaimRequest {
    /// The template to issue from.
    pub template: TemplateId,
    /// The account.
    pub user: UserId,
    /// The channel it is issued through.
    pub channel: Channel,
    /// Auto-claim or click-to-claim.
    pub mode: ClaimMode,
    /// The campaign it is claimed in, if any.
    pub campaign: Option<CampaignId>,
    /// The idempotency key: repeating the request with it returns the first coupon.
    pub key: IdempotencyKey,
    /// Attributes the coupon carries (experiment arm, trigger rule, per-user terms).
    #[cfg_attr(feature = "serde", serde(default))]
    pub attributes: Attributes,
    /// Who is asking beyond the account (device, IP, payment account), for guards.
    #[cfg_attr(feature = "serde", serde(default))]
    pub context: Context,
}

impl ClaimRequest {
    /// A claim outside any campaign.
    pub fn new(
        template: TemplateId,
        user: UserId,
        channel: Channel,
        mode: ClaimMode,
        key: IdempotencyKey,
    ) -> ClaimRequest {
        ClaimRequest {
            template,
            user,
            channel,
            mode,
            campaign: None,
            key,
            attributes: Attributes::new(),
            context: Context::new(),
        }
    }

    /// The same claim, in a campaign.
    pub fn in_campaign(mut self, campaign: CampaignId) -> ClaimRequest {
        self.campaign = Some(campaign);
        self
    }

    /// The same claim, from `context` (device, IP, payment account) for guards.
    pub fn with_context(mut self, context: Context) -> ClaimRequest {
        self.context = context;
        self
    }

    /// The same claim, the coupon carrying `attributes`.
    pub fn with_attributes(mut self, attributes: Attributes) -> ClaimRequest {
        self.attributes = attributes;
        self
    }
}

/// One coupon issued from a template into one account.
///
/// Every transition is a method taking the current coupon, the request and `now`, returning the
/// next coupon or a [`LifecycleError`]; none reads the clock or touches storage.
///
/// | from | action | to | when |
/// |---|---|---|---|
/// | — | [`issue`](Coupon::issue) | Available | template Active, campaign Ongoing and offering it, validity not over |
/// | Available | [`lock`](Coupon::lock) | Locked | owned by the buyer, inside validity |
/// | Locked | [`redeem`](Coupon::redeem) | Used | by the holding order, within the hold or else within validity |
/// | Locked | [`release`](Coupon::release) | Available, or Expired past validity | by the holding order (cancel, or hold ran out) |
/// | Used | [`refund`](Coupon::refund) | Available (Expired past validity) or Voided | by the order that used it, per the template's [`RefundPolicy`] |
/// | Available | [`expire`](Coupon::expire) | Expired | validity over |
/// | Available | [`void`](Coupon::void) | Voided | admin |
///
/// **Paying after the hold ran out.** A hold is a promise to the buyer for its duration: paying
/// within the hold always redeems the coupon, even if its validity ended meanwhile. Once the
/// hold has run out, a coupon that no sweep has released yet is still redeemed by its order if
/// the coupon is still inside its validity (nobody else could have used it), and refused with
/// [`LifecycleError::HoldRanOut`] once the validity is over too.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Coupon {
    /// Its id.
    pub id: CouponId,
    /// The template it follows.
    pub template: TemplateId,
    /// The account it is in.
    pub owner: UserId,
    /// The channel it was issued through (`registration`, `campaign`, `push`…).
    pub channel: Channel,
    /// The campaign it was issued in, if any.
    pub campaign: Option<CampaignId>,
    /// How it was claimed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub mode: ClaimMode,
    /// When it was issued.
    pub claimed_at: DateTime<Utc>,
    /// Usable from (inclusive).
    pub valid_from: DateTime<Utc>,
    /// Usable until (exclusive).
    pub valid_until: DateTime<Utc>,
    /// Its state.
    pub state: CouponState,
    /// Its attributes, set when it was issued (experiment arm, trigger rule…).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Attributes::is_empty")
    )]
    pub attributes: Attributes,
}

impl Coupon {
    /// Issues a coupon from `record` for `request.user`, through `request.channel`, in
    /// `campaign` if given (the caller loads the campaign `request.campaign` names; the
    /// template and campaign recorded are those of the records passed). Its validity is fixed
    /// now: `template.validity().window_for(now)`.
    ///
    /// # Errors
    /// [`LifecycleError::NotClaimable`] for automatic promotions and promo codes;
    /// [`LifecycleError::NotIssuing`] unless the template is Active;
    /// [`LifecycleError::CampaignNotOngoing`] and [`LifecycleError::NotOffered`] from the
    /// campaign; [`LifecycleError::ClaimedTooLate`] when the validity has no window left.
    /// Stock and per-user limits are checked by the store's counters, not here.
    pub fn issue(
        record: &TemplateRecord,
        campaign: Option<&Campaign>,
        request: &ClaimRequest,
        id: CouponId,
        now: DateTime<Utc>,
    ) -> Result<Coupon, LifecycleError> {
        let template = &record.template;
        match template.distribution() {
            Distribution::Automatic => {
                return Err(LifecycleError::NotClaimable {
                    template: template.id().clone(),
                    distribution: "automatic",
                });
            }
            Distribution::PromoCode { .. } => {
                return Err(LifecycleError::NotClaimable {
                    template: template.id().clone(),
                    distribution: "promo_code",
                });
            }
            _ => {}
        }
        record.check_issuing()?;
        if let Some(c) = campaign {
            c.check_issue(template.id(), now)?;
        }
        let (valid_from, valid_until) =
            template
                .validity()
                .window_for(now)
                .ok_or_else(|| LifecycleError::ClaimedTooLate {
                    template: template.id().clone(),
                    at: now,
                })?;
        Ok(Coupon {
            id,
            template: template.id().clone(),
            owner: request.user.clone(),
            channel: request.channel.clone(),
            campaign: campaign.map(|c| c.id.clone()),
            mode: request.mode,
            claimed_at: now,
            valid_from,
            valid_until,
            state: CouponState::Available,
            attributes: request.attributes.clone(),
        })
    }

    /// Whether it can be locked at `now`: Available and inside `[valid_from, valid_until)`.
    pub fn is_usable(&self, now: DateTime<Utc>) -> bool {
        self.state == CouponState::Available && self.valid_from <= now && now < self.valid_until
    }

    /// When it needs a time-driven transition: the end of its validity when Available, the end
    /// of its hold when Locked, never otherwise.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        match &self.state {
            CouponState::Available => Some(self.valid_until),
            CouponState::Locked { until, .. } => Some(*until),
            _ => None,
        }
    }

    fn with_state(&self, state: CouponState) -> Coupon {
        Coupon {
            state,
            ..self.clone()
        }
    }

    fn illegal(&self, action: CouponAction) -> LifecycleError {
        LifecycleError::IllegalCouponTransition {
            coupon: self.id.clone(),
            state: self.state.clone(),
            action,
        }
    }

    /// Available or Expired, whichever a coupon given back at `now` becomes.
    fn given_back(&self, now: DateTime<Utc>) -> Coupon {
        if now >= self.valid_until {
            self.with_state(CouponState::Expired { at: now })
        } else {
            self.with_state(CouponState::Available)
        }
    }

    /// Available → Locked: holds the coupon for `buyer`'s unpaid `order` until `hold_until`.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalCouponTransition`] unless Available;
    /// [`LifecycleError::NotOwner`] when `buyer` does not own it;
    /// [`LifecycleError::NotYetValid`] / [`LifecycleError::ValidityEnded`] outside its
    /// validity.
    pub fn lock(
        &self,
        buyer: &UserId,
        order: &OrderId,
        hold_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Coupon, LifecycleError> {
        if self.state != CouponState::Available {
            return Err(self.illegal(CouponAction::Lock));
        }
        if &self.owner != buyer {
            return Err(LifecycleError::NotOwner {
                coupon: self.id.clone(),
                owner: self.owner.clone(),
                user: buyer.clone(),
            });
        }
        if now < self.valid_from {
            return Err(LifecycleError::NotYetValid {
                coupon: self.id.clone(),
                valid_from: self.valid_from,
            });
        }
        if now >= self.valid_until {
            return Err(LifecycleError::ValidityEnded {
                coupon: self.id.clone(),
                valid_until: self.valid_until,
            });
        }
        Ok(self.with_state(CouponState::Locked {
            order: order.clone(),
            until: hold_until,
        }))
    }

    /// Locked → Used: the holding `order` was paid. Within the hold this always succeeds; after
    /// the hold ran out (and before a sweep released it) only while still inside validity —
    /// see [`Coupon`].
    ///
    /// # Errors
    /// [`LifecycleError::NotHeldByOrder`] unless Locked by `order`;
    /// [`LifecycleError::HoldRanOut`] when both the hold and the validity are over.
    pub fn redeem(&self, order: &OrderId, now: DateTime<Utc>) -> Result<Coupon, LifecycleError> {
        match &self.state {
            CouponState::Locked { order: o, until } if o == order => {
                if now >= *until && now >= self.valid_until {
                    return Err(LifecycleError::HoldRanOut {
                        coupon: self.id.clone(),
                        order: order.clone(),
                        hold_until: *until,
                        valid_until: self.valid_until,
                    });
                }
                Ok(self.with_state(CouponState::Used {
                    order: order.clone(),
                    at: now,
                }))
            }
            state => Err(LifecycleError::NotHeldByOrder {
                coupon: self.id.clone(),
                order: order.clone(),
                state: state.clone(),
            }),
        }
    }

    /// Locked → Available (or Expired when its validity has passed): the holding `order` was
    /// cancelled unpaid, or its hold ran out.
    ///
    /// # Errors
    /// [`LifecycleError::NotHeldByOrder`] unless Locked by `order`.
    pub fn release(&self, order: &OrderId, now: DateTime<Utc>) -> Result<Coupon, LifecycleError> {
        match &self.state {
            CouponState::Locked { order: o, .. } if o == order => Ok(self.given_back(now)),
            state => Err(LifecycleError::NotHeldByOrder {
                coupon: self.id.clone(),
                order: order.clone(),
                state: state.clone(),
            }),
        }
    }

    /// Used → Available (Expired when past validity) or Voided: `order`, which used it, is
    /// refunded. Whether it returns is `kind`'s entry of `policy` (the template's
    /// [`refund`](crate::rule::Template::refund) policy): by default a merchant refund before
    /// completion returns it and a buyer refund after payment voids it.
    ///
    /// # Errors
    /// [`LifecycleError::NotUsedByOrder`] unless Used by `order`.
    pub fn refund(
        &self,
        order: &OrderId,
        kind: RefundKind,
        policy: &RefundPolicy,
        now: DateTime<Utc>,
    ) -> Result<Coupon, LifecycleError> {
        match &self.state {
            CouponState::Used { order: o, .. } if o == order => {
                if kind.returns_coupon(policy) {
                    Ok(self.given_back(now))
                } else {
                    Ok(self.with_state(CouponState::Voided { at: now }))
                }
            }
            state => Err(LifecycleError::NotUsedByOrder {
                coupon: self.id.clone(),
                order: order.clone(),
                state: state.clone(),
            }),
        }
    }

    /// Available → Expired, once its validity is over.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalCouponTransition`] unless Available;
    /// [`LifecycleError::NotYetExpired`] while still inside validity.
    pub fn expire(&self, now: DateTime<Utc>) -> Result<Coupon, LifecycleError> {
        if self.state != CouponState::Available {
            return Err(self.illegal(CouponAction::Expire));
        }
        if now < self.valid_until {
            return Err(LifecycleError::NotYetExpired {
                coupon: self.id.clone(),
                valid_until: self.valid_until,
            });
        }
        Ok(self.with_state(CouponState::Expired { at: now }))
    }

    /// Available → Voided, by an admin. A locked coupon is voided only after its order is
    /// released; a used one through a refund.
    ///
    /// # Errors
    /// [`LifecycleError::IllegalCouponTransition`] unless Available.
    pub fn void(&self, now: DateTime<Utc>) -> Result<Coupon, LifecycleError> {
        if self.state != CouponState::Available {
            return Err(self.illegal(CouponAction::Void));
        }
        Ok(self.with_state(CouponState::Voided { at: now }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap()
    }

    fn coupon() -> Coupon {
        Coupon {
            id: CouponId::new("c").unwrap(),
            template: TemplateId::new("t").unwrap(),
            owner: UserId::new("alice").unwrap(),
            channel: Channel::new("app").unwrap(),
            campaign: None,
            mode: ClaimMode::Click,
            claimed_at: t0(),
            valid_from: t0(),
            valid_until: t0() + Duration::days(1),
            state: CouponState::Available,
            attributes: Attributes::new(),
        }
    }

    fn alice() -> UserId {
        UserId::new("alice").unwrap()
    }

    fn order(s: &str) -> OrderId {
        OrderId::new(s).unwrap()
    }

    #[test]
    fn lock_needs_owner_and_validity() {
        let c = coupon();
        let o = order("o");
        let hold = t0() + Duration::minutes(15);
        assert!(matches!(
            c.lock(&UserId::new("bob").unwrap(), &o, hold, t0()),
            Err(LifecycleError::NotOwner { .. })
        ));
        assert!(matches!(
            c.lock(&alice(), &o, hold, t0() - Duration::seconds(1)),
            Err(LifecycleError::NotYetValid { .. })
        ));
        assert!(matches!(
            c.lock(&alice(), &o, hold, c.valid_until),
            Err(LifecycleError::ValidityEnded { .. })
        ));
        let l = c.lock(&alice(), &o, hold, t0()).unwrap();
        assert!(matches!(
            l.lock(&alice(), &o, hold, t0()),
            Err(LifecycleError::IllegalCouponTransition {
                action: CouponAction::Lock,
                ..
            })
        ));
    }

    #[test]
    fn redeem_only_by_holding_order() {
        let o = order("o");
        let l = coupon()
            .lock(&alice(), &o, t0() + Duration::minutes(15), t0())
            .unwrap();
        assert!(matches!(
            l.redeem(&order("other"), t0()),
            Err(LifecycleError::NotHeldByOrder { .. })
        ));
        let u = l.redeem(&o, t0()).unwrap();
        assert_eq!(u.state, CouponState::Used { order: o, at: t0() });
    }

    #[test]
    fn paying_after_hold_needs_validity() {
        let o = order("o");
        let end = coupon().valid_until;
        // Locked a minute before the end: paying within the hold works after the end.
        let l = coupon()
            .lock(
                &alice(),
                &o,
                end + Duration::minutes(14),
                end - Duration::minutes(1),
            )
            .unwrap();
        assert!(l.redeem(&o, end + Duration::minutes(5)).is_ok());
        // Hold over, validity over: refused.
        assert!(matches!(
            l.redeem(&o, end + Duration::minutes(20)),
            Err(LifecycleError::HoldRanOut { .. })
        ));
        // Hold over, validity not over: allowed.
        let l2 = coupon()
            .lock(&alice(), &o, t0() + Duration::minutes(15), t0())
            .unwrap();
        assert!(l2.redeem(&o, t0() + Duration::hours(1)).is_ok());
    }

    #[test]
    fn release_returns_or_expires() {
        let o = order("o");
        let l = coupon()
            .lock(&alice(), &o, t0() + Duration::minutes(15), t0())
            .unwrap();
        assert_eq!(l.release(&o, t0()).unwrap().state, CouponState::Available);
        let end = l.valid_until;
        assert_eq!(
            l.release(&o, end).unwrap().state,
            CouponState::Expired { at: end }
        );
        assert!(coupon().release(&o, t0()).is_err());
    }

    #[test]
    fn refund_follows_policy() {
        let o = order("o");
        let u = coupon()
            .lock(&alice(), &o, t0() + Duration::minutes(15), t0())
            .unwrap()
            .redeem(&o, t0())
            .unwrap();
        let p = RefundPolicy::default();
        assert_eq!(
            u.refund(&o, RefundKind::Merchant, &p, t0()).unwrap().state,
            CouponState::Available
        );
        assert_eq!(
            u.refund(&o, RefundKind::Buyer, &p, t0()).unwrap().state,
            CouponState::Voided { at: t0() }
        );
        let generous = RefundPolicy {
            merchant_refund_returns: true,
            buyer_refund_returns: true,
        };
        let late = u.valid_until + Duration::hours(1);
        assert_eq!(
            u.refund(&o, RefundKind::Buyer, &generous, late)
                .unwrap()
                .state,
            CouponState::Expired { at: late }
        );
        let returned = u.refund(&o, RefundKind::Merchant, &p, t0()).unwrap();
        assert!(matches!(
            returned.refund(&o, RefundKind::Merchant, &p, t0()),
            Err(LifecycleError::NotUsedByOrder { .. })
        ));
    }

    #[test]
    fn expire_and_void() {
        let c = coupon();
        assert!(matches!(
            c.expire(t0()),
            Err(LifecycleError::NotYetExpired { .. })
        ));
        let e = c.expire(c.valid_until).unwrap();
        assert!(e.state.is_final());
        assert!(e.void(t0()).is_err());
        assert_eq!(
            c.void(t0()).unwrap().state,
            CouponState::Voided { at: t0() }
        );
    }
}
