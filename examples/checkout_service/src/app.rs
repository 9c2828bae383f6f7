//! What the handlers call: the engine's [`Service`] plus the little the HTTP layer adds (the
//! preview of a buyer's own selection, the idempotency fingerprints, the buyers' carts for the
//! pages). Everything here is synchronous; handlers run it on Tokio's blocking pool.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use coupons::cart::{Buyer, Cart};
use coupons::checkout::{Checkout, Ineligible, Offer, OfferId, PromotionIndex, Quote};
use coupons::id::{IdempotencyKey, UserId};
use coupons::repository::{Receipt, ReceiptKey, Repository};
use coupons::rule::PromoCode;
use coupons::service::Service;

use crate::error::ApiError;

/// How many idempotency fingerprints the service remembers (oldest forgotten first).
pub const FINGERPRINTS: usize = 100_000;

/// The clock handlers read (the engine never does): the wall clock, or a fixed one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The shared state of one service.
pub struct App<R> {
    /// The engine.
    pub service: Service<R>,
    /// What time it is.
    pub clock: Clock,
    /// Which body each idempotency key was first used with, per operation.
    fingerprints: Mutex<Fingerprints>,
    /// Each buyer's cart and profile, for the checkout page.
    baskets: Mutex<HashMap<UserId, (Buyer, Cart)>>,
}

#[derive(Default)]
struct Fingerprints {
    seen: HashMap<(&'static str, IdempotencyKey), u64>,
    order: std::collections::VecDeque<(&'static str, IdempotencyKey)>,
}

impl<R: Repository> App<R> {
    /// A service over `service`, reading `clock`.
    pub fn new(service: Service<R>, clock: Clock) -> App<R> {
        App {
            service,
            clock,
            fingerprints: Mutex::new(Fingerprints::default()),
            baskets: Mutex::new(HashMap::new()),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Remembers that `key` was used for `operation` with this request (`parts`: the path and
    /// the body), and refuses the key when it was used before with another request.
    ///
    /// The engine's receipts already refuse a key reused for another order, template or user,
    /// durably; this catches the rest (the same order with another cart) within this process.
    ///
    /// # Errors
    /// `idempotency_key_reused` (422).
    pub fn fingerprint(
        &self,
        operation: &'static str,
        key: &IdempotencyKey,
        parts: &[&[u8]],
    ) -> Result<(), ApiError> {
        let mut h = DefaultHasher::new();
        for p in parts {
            p.hash(&mut h);
        }
        let print = h.finish();
        let mut f = self
            .fingerprints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let k = (operation, key.clone());
        match f.seen.get(&k) {
            Some(&p) if p == print => Ok(()),
            Some(_) => Err(ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!("idempotency key {key} was already used for another {operation} request"),
            )
            .at("header.Idempotency-Key")),
            None => {
                if f.order.len() >= FINGERPRINTS {
                    if let Some(old) = f.order.pop_front() {
                        f.seen.remove(&old);
                    }
                }
                f.seen.insert(k.clone(), print);
                f.order.push_back(k);
                Ok(())
            }
        }
    }

    /// Sets a buyer's cart (shown on the checkout page).
    pub fn set_basket(&self, buyer: Buyer, cart: Cart) {
        self.baskets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(buyer.user.clone(), (buyer, cart));
    }

    /// A buyer's cart, if one was set.
    pub fn basket(&self, user: &UserId) -> Option<(Buyer, Cart)> {
        self.baskets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .cloned()
    }

    /// Prices the buyer's own `selection` without holding anything (`None`: the best
    /// combination, as [`Service::quote`]).
    ///
    /// The engine has no service call for this yet, so it is built here from public parts:
    /// [`Service::quote`] evaluates every offer (which wallet coupons and codes are blocked,
    /// and why), then the same offers, with the same blocks, go through
    /// [`Checkout::with_selection`] with the active automatic promotions. The lock
    /// ([`Service::quote_and_lock`]) re-checks everything against the store.
    ///
    /// # Errors
    /// The engine's errors: an unknown code, a selection that cannot be used (422).
    pub fn preview(
        &self,
        cart: &Cart,
        buyer: &Buyer,
        codes: &[PromoCode],
        selection: Option<&[OfferId]>,
        now: DateTime<Utc>,
    ) -> Result<Quote, ApiError> {
        let base = self.service.quote(cart, buyer, codes, now)?;
        let Some(selection) = selection else {
            return Ok(base);
        };
        let repo = self.service.repository();
        let blocked = |id: &OfferId| {
            base.evaluation(id).and_then(|e| {
                e.reasons.iter().find_map(|r| match r {
                    Ineligible::Unavailable { blocked } => Some(blocked.clone()),
                    _ => None,
                })
            })
        };
        let mut offers = Vec::new();
        for c in repo.wallet(&buyer.user).map_err(ApiError::internal)? {
            let id = OfferId::Coupon(c.value.id.clone());
            if base.evaluation(&id).is_none() {
                continue; // not an offer the engine considers (its template is gone)
            }
            let Some(t) = repo
                .template(&c.value.template)
                .map_err(ApiError::internal)?
            else {
                continue;
            };
            let mut offer = Offer::coupon(
                c.value.id.clone(),
                Arc::clone(&t.value.template),
                c.value.valid_from,
                c.value.valid_until,
            );
            offer.blocked = blocked(&id);
            offers.push(offer);
        }
        for code in codes {
            let id = OfferId::Code(code.clone());
            if offers.iter().any(|o| o.id == id) {
                continue;
            }
            let template = match repo
                .receipt(&ReceiptKey::Code(code.clone()))
                .map_err(ApiError::internal)?
            {
                Some(Receipt::Code { template }) => template,
                _ => continue, // `quote` above already refused unknown codes
            };
            let Some(t) = repo.template(&template).map_err(ApiError::internal)? else {
                continue;
            };
            let mut offer = Offer::code(code.clone(), Arc::clone(&t.value.template));
            offer.blocked = blocked(&id);
            offers.push(offer);
        }
        let promotions = PromotionIndex::new(
            repo.templates()
                .map_err(ApiError::internal)?
                .into_iter()
                .filter(|r| r.value.is_issuing() && r.value.template.is_automatic())
                .map(|r| Arc::clone(&r.value.template)),
        );
        Ok(
            Checkout::new(cart, buyer, now, &self.service.config().policy)
                .offers(&offers)
                .promotions(&promotions)
                .with_selection(selection)?,
        )
    }
}
