//! What the handlers call: the engine's [`Service`] plus the little the HTTP layer adds (the
//! idempotency fingerprints at the edge, the buyers' carts for the pages). Everything here is synchronous; handlers run it on Tokio's blocking pool.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use coupons::cart::{Buyer, Cart};
use coupons::checkout::{OfferId, Quote};
use coupons::id::{IdempotencyKey, UserId};
use coupons::repository::Repository;
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
    /// The engine's receipts refuse a reused key durably (they keep a fingerprint of each
    /// request); this is the same check at the edge, before the engine is asked, within this
    /// process.
    ///
    /// # Errors
    /// `idempotency_key_reused` (409, as the engine's).
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
                axum::http::StatusCode::CONFLICT,
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
    /// combination, as [`Service::quote`]), through [`Service::preview`].
    ///
    /// # Errors
    /// The engine's errors: an unknown code, a selection that cannot be used.
    pub fn preview(
        &self,
        cart: &Cart,
        buyer: &Buyer,
        codes: &[PromoCode],
        selection: Option<&[OfferId]>,
        now: DateTime<Utc>,
    ) -> Result<Quote, ApiError> {
        Ok(match selection {
            None => self.service.quote(cart, buyer, codes, now)?,
            Some(sel) => self.service.preview(cart, buyer, sel, codes, now)?,
        })
    }
}
