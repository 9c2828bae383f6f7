//! What a service call can fail with, by layer, and how each failure maps to HTTP.

use crate::checkout::CheckoutError;
use crate::guard::GuardError;
use crate::lifecycle::LifecycleError;
use crate::time::TimeError;

use super::ConfigError;
use crate::plan::Denied;

/// A service call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError<E> {
    /// An illegal transition or a limit reached.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The checkout refused the selection.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// The store failed.
    #[error("storage failed: {0}")]
    Repository(#[source] E),
    /// A guard needs a context field the request lacks.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// The service's configuration breaks a rule.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The request's `now` lies outside the instants records hold (1970 to 9999).
    #[error(transparent)]
    Time(#[from] TimeError),
    /// A record the request names does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of record: `template`, `campaign`, `coupon`, `order`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// Concurrent requests kept changing the records this one read; it gave up after
    /// [`ServiceConfig::max_attempts`](super::ServiceConfig::max_attempts) attempts without writing anything. Retry later.
    #[error("{operation}: gave up after {attempts} attempts that conflicted with other requests")]
    Contention {
        /// The operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
    },
}

impl<E> From<Denied> for ServiceError<E> {
    fn from(d: Denied) -> ServiceError<E> {
        match d {
            Denied::Lifecycle(e) => e.into(),
            Denied::Checkout(e) => e.into(),
            Denied::Guard(e) => e.into(),
            Denied::Inconsistent(operation, attempts) => ServiceError::Contention {
                operation,
                attempts,
            },
        }
    }
}

/// What kind of failure a [`ServiceError`] is, for a caller deciding how to answer: each kind
/// maps to one HTTP status ([`ErrorKind::http_status`]).
///
/// | kind | HTTP | what |
/// |---|---|---|
/// | `NotFound` | 404 | a template, campaign, coupon or order the request names does not exist |
/// | `Conflict` | 409 | the request contradicts the record's state: an illegal transition, an order already settled, a key reused for another request |
/// | `Forbidden` | 403 | the acting party may not do this (a buyer confirming payment, or acting on another buyer's order; see [`Actor::permits`](crate::lifecycle::Actor::permits)) |
/// | `Refused` | 422 | a rule said no: out of stock, a limit or guard reached, a coupon not usable, a campaign not running |
/// | `Invalid` | 400 | the request itself is malformed: an instant out of range, a selection naming an offer twice, a guard's missing context |
/// | `Contention` | 503 | concurrent requests kept conflicting; retrying later may succeed |
/// | `Unavailable` | 503 | the store failed; retrying later may succeed |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ErrorKind {
    /// A record the request names does not exist.
    NotFound,
    /// The request contradicts the state of a record.
    Conflict,
    /// The acting party may not do this.
    Forbidden,
    /// A rule refused the request.
    Refused,
    /// The request is malformed.
    Invalid,
    /// Concurrent requests kept conflicting.
    Contention,
    /// The store failed.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status a web handler answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Forbidden => 403,
            ErrorKind::Refused => 422,
            ErrorKind::Invalid => 400,
            ErrorKind::Contention | ErrorKind::Unavailable => 503,
        }
    }
}

impl<E> ServiceError<E> {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        use LifecycleError as L;
        match self {
            ServiceError::NotFound { .. } => ErrorKind::NotFound,
            ServiceError::Contention { .. } => ErrorKind::Contention,
            ServiceError::Repository(_) => ErrorKind::Unavailable,
            ServiceError::Time(_) | ServiceError::Guard(_) | ServiceError::Config(_) => {
                ErrorKind::Invalid
            }
            ServiceError::Checkout(e) => match e {
                CheckoutError::UnknownOffer { .. } => ErrorKind::NotFound,
                CheckoutError::Duplicate { .. } => ErrorKind::Invalid,
                _ => ErrorKind::Refused,
            },
            ServiceError::Lifecycle(e) => match e {
                L::UnknownCode { .. } => ErrorKind::NotFound,
                L::IllegalTemplateTransition { .. }
                | L::IllegalCouponTransition { .. }
                | L::CodeTaken { .. }
                | L::TemplateExists { .. }
                | L::CampaignExists { .. }
                | L::NotHeldByOrder { .. }
                | L::NotUsedByOrder { .. }
                | L::OrderAlreadyLocked { .. }
                | L::OrderPaid { .. }
                | L::OrderReleased { .. }
                | L::OrderNotPaid { .. }
                | L::OrderAlreadyRefunded { .. }
                | L::KeyReused { .. }
                | L::IllegalOrderTransition { .. }
                | L::ClockBehind { .. } => ErrorKind::Conflict,
                L::NotPermitted { .. } => ErrorKind::Forbidden,
                L::InvalidCampaign { .. } | L::InvalidRefund { .. } => ErrorKind::Invalid,
                _ => ErrorKind::Refused,
            },
        }
    }

    /// The lifecycle refusal, if this is one.
    pub(crate) fn lifecycle(&self) -> Option<&LifecycleError> {
        match self {
            ServiceError::Lifecycle(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the same request may succeed if retried later unchanged: contention and store
    /// failures. Every request is idempotent under its key, so a retry is always safe.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Contention | ErrorKind::Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{IdempotencyKey, TemplateId};

    #[test]
    fn error_kinds_map_to_statuses() {
        type E = ServiceError<std::io::Error>;
        let t = TemplateId::new("t").unwrap();
        let out: E = LifecycleError::OutOfStock {
            template: t.clone(),
            stock: 1,
        }
        .into();
        assert_eq!(
            (out.kind(), out.kind().http_status()),
            (ErrorKind::Refused, 422)
        );
        assert!(!out.is_retryable());
        let reused: E = LifecycleError::KeyReused {
            key: IdempotencyKey::new("k").unwrap(),
            operation: "claim",
        }
        .into();
        assert_eq!(reused.kind().http_status(), 409);
        let missing: E = ServiceError::NotFound {
            what: "coupon",
            id: "c".into(),
        };
        assert_eq!(missing.kind().http_status(), 404);
        let forbidden: E = LifecycleError::NotPermitted {
            actor: crate::lifecycle::Actor::Buyer(crate::id::UserId::new("bob").unwrap()),
            action: crate::lifecycle::OrderAction::Pay,
            record: "o-1".into(),
        }
        .into();
        assert_eq!(
            (forbidden.kind(), forbidden.kind().http_status()),
            (ErrorKind::Forbidden, 403)
        );
        let behind: E = LifecycleError::ClockBehind {
            record: "o-1".into(),
            last: chrono::DateTime::UNIX_EPOCH,
            now: chrono::DateTime::UNIX_EPOCH,
            tolerance_ms: 2000,
        }
        .into();
        assert_eq!(behind.kind().http_status(), 409);
        let busy: E = ServiceError::Contention {
            operation: "claim",
            attempts: 3,
        };
        assert!(busy.is_retryable());
        let down: E = ServiceError::Repository(std::io::Error::other("down"));
        assert_eq!(
            (down.kind(), down.is_retryable()),
            (ErrorKind::Unavailable, true)
        );
    }

    #[test]
    fn service_error_is_send_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<ServiceError<crate::repository::MemoryStoreError>>();
    }
}
