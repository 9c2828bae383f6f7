//! What the handlers call: the engine's [`Service`] plus the little the HTTP layer adds (the
//! buyers' carts for the checkout page, the campaign report kept up to date for the campaign
//! page). Everything here is synchronous; handlers run it on Tokio's blocking pool.
//!
//! Idempotency is the engine's alone: its receipts keep a fingerprint of each request, so a
//! key reused for another request is refused with `KeyReused` (409) durably and across
//! servers; the service adds no check of its own.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, FixedOffset, Offset, Utc};
use coupons::analytics::experiment::Experiment;
use coupons::analytics::report::{Lookup, NoLookup, Report, ReportConfig};
use coupons::attributes::AttrValue;
use coupons::cart::{Buyer, Cart};
use coupons::checkout::{OfferId, Quote};
use coupons::events::Sequence;
use coupons::id::{TemplateId, UserId};
use coupons::money::Currency;
use coupons::repository::Repository;
use coupons::rule::PromoCode;
use coupons::service::Service;

use crate::error::ApiError;

/// The clock handlers read (the engine never does): the wall clock, or a fixed one in tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The shared state of one service.
pub struct App<R> {
    /// The engine.
    pub service: Service<R>,
    /// What time it is.
    pub clock: Clock,
    /// The campaign report, advanced from the feed on every campaign page.
    reporting: Mutex<Reporting>,
    /// Each buyer's cart and profile, for the checkout page.
    baskets: Mutex<HashMap<UserId, (Buyer, Cart)>>,
}

/// Most events one campaign page reads from the feed; the next page carries on from there.
pub const MAX_REPORT_EVENTS: usize = 200_000;

/// The report behind the campaign page: folded from the event feed by the library's
/// [`Report`], and advanced from where it stopped (never re-read from the start).
#[derive(Debug)]
pub struct Reporting {
    /// The report.
    pub report: Report,
    /// The last sequence read (counted or skipped).
    pub position: Sequence,
    /// Events the report refused to count: amounts in another currency than the report's.
    pub skipped: u64,
    /// The first refusal's reason, for the page.
    pub first_skip: Option<String>,
    /// The experiment whose arms offers are counted in, if any.
    pub arms: Option<OfferArms>,
}

/// The arm of an offer, for the report: offers carry no coupon (so no `arm` attribute), so an
/// offer of one of `templates` is counted in the arm `experiment` assigns its user — the same
/// deterministic assignment that chose which coupon the user was shown.
#[derive(Clone, Debug)]
pub struct OfferArms {
    /// The experiment.
    pub experiment: Experiment,
    /// The templates it offers (offers of other templates are in no arm).
    pub templates: BTreeSet<TemplateId>,
}

impl Lookup for OfferArms {
    fn offer_arm(&self, template: &TemplateId, user: &UserId) -> Option<AttrValue> {
        if !self.templates.contains(template) {
            return None;
        }
        AttrValue::new(self.experiment.assign(user).name().as_str()).ok()
    }
}

impl Reporting {
    /// A report that has read nothing yet.
    pub fn new(config: ReportConfig) -> Reporting {
        Reporting {
            report: Report::new(config),
            position: 0,
            skipped: 0,
            first_skip: None,
            arms: None,
        }
    }

    /// Reads the store's feed after [`Reporting::position`], at most `max` events, and counts
    /// them; an event the report refuses (an amount in another currency) is skipped and
    /// counted in [`Reporting::skipped`]. Returns how many events were read.
    ///
    /// # Errors
    /// The store's failure (what was read before it stays counted).
    pub fn advance<R: Repository>(&mut self, repo: &R, max: usize) -> Result<usize, R::Error> {
        let mut read = 0;
        while read < max {
            let page = repo.events(self.position, 1000.min(max - read).max(1))?;
            if page.is_empty() {
                break;
            }
            let after = self.position;
            for e in page.iter().filter(|e| e.seq > after) {
                let counted = match &self.arms {
                    Some(arms) => self.report.apply(e, arms),
                    None => self.report.apply(e, &NoLookup),
                };
                if let Err(err) = counted {
                    self.skipped += 1;
                    self.first_skip.get_or_insert_with(|| err.to_string());
                }
                self.position = e.seq;
                read += 1;
            }
        }
        Ok(read)
    }
}

/// The campaign report's default settings: amounts in CNY, days in UTC+08:00 (the demo
/// shop's); see [`App::with_report`].
pub fn default_report_config() -> ReportConfig {
    // 8 hours is within ±24: `east_opt` answers; UTC is the (unreached) fallback.
    let east8 = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    ReportConfig::new(Currency::CNY, east8)
}

impl<R: Repository> App<R> {
    /// A service over `service`, reading `clock`.
    pub fn new(service: Service<R>, clock: Clock) -> App<R> {
        App {
            service,
            clock,
            reporting: Mutex::new(Reporting::new(default_report_config())),
            baskets: Mutex::new(HashMap::new()),
        }
    }

    /// The same service, reporting in `config`'s currency and offset (the default:
    /// [`default_report_config`]).
    pub fn with_report(self, config: ReportConfig) -> App<R> {
        App {
            reporting: Mutex::new(Reporting::new(config)),
            ..self
        }
    }

    /// The same service, counting offers of `arms.templates` in the arm `arms.experiment`
    /// assigns their user (coupons carry their arm themselves, in the `arm` attribute).
    pub fn with_offer_arms(mut self, arms: OfferArms) -> App<R> {
        self.reporting
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .arms = Some(arms);
        self
    }

    /// The campaign report, advanced with the events since the last call (at most
    /// [`MAX_REPORT_EVENTS`]): held locked while the caller renders it.
    ///
    /// # Errors
    /// `unavailable` (503) when the store fails to read the feed.
    pub fn report(&self) -> Result<MutexGuard<'_, Reporting>, ApiError> {
        let mut r = self
            .reporting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        r.advance(self.service.repository(), MAX_REPORT_EVENTS)
            .map_err(ApiError::internal)?;
        Ok(r)
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
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
