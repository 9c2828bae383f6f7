//! Every failure as an HTTP status and one JSON body:
//! `{"error": {"kind": "...", "status": 422, "field": "cart.lines[0]", "reason": "..."}}`.
//!
//! `kind` is stable and machine-readable (the engine's error variant in snake case, or one of
//! the service's own kinds below); `field` names the request part at fault (a JSON path into
//! the body, `header.Idempotency-Key`, `path.order`, `query.limit`), when one is; `reason` is a
//! sentence for people.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use coupons::lifecycle::LifecycleError;
use coupons::service::ServiceError;
use serde::Serialize;

/// A request that failed, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// What went wrong, machine-readable (`unknown_offer`, `invalid_body`…).
    pub kind: String,
    /// The HTTP status.
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    /// The request part at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A sentence for people.
    pub reason: String,
}

fn status_code<S: serde::Serializer>(s: &StatusCode, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_u16(s.as_u16())
}

impl ApiError {
    /// An error with no field.
    pub fn new(status: StatusCode, kind: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind: kind.to_owned(),
            field: None,
            reason: reason.into(),
        }
    }

    /// The same error, naming the request part at fault.
    pub fn at(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// A body that is not JSON, or JSON the request type refuses; `field` is the JSON path.
    pub fn body(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
        let inner = e.inner();
        let (kind, status) = if inner.is_syntax() || inner.is_eof() {
            ("malformed_json", StatusCode::BAD_REQUEST)
        } else {
            ("invalid_body", StatusCode::UNPROCESSABLE_ENTITY)
        };
        let path = e.path().to_string();
        let mut err = ApiError::new(status, kind, inner.to_string());
        if path != "." {
            err = err.at(path);
        }
        err
    }

    /// A store failure: logged, and told to the client without its details.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        eprintln!("checkout-service: internal error: {what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed; try again later",
        )
    }
}

/// `OutOfStock { .. }` → `out_of_stock`: the variant's name, from its `Debug` form.
fn variant_kind(debug: &str) -> String {
    let name = debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("error");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn lifecycle_field(e: &LifecycleError) -> Option<&'static str> {
    use LifecycleError as L;
    match e {
        L::KeyReused { .. } => Some("header.Idempotency-Key"),
        L::UnknownCode { .. } => Some("codes"),
        L::InvalidRefund { .. } => Some("units"),
        _ => None,
    }
}

/// The status is the engine's ([`ServiceError::kind`], [`coupons::service::ErrorKind::http_status`]): 404 not
/// found, 409 conflict (with a record's state, or a reused key), 422 refused by a rule, 400
/// invalid, 503 contention or the store unavailable.
impl<E: std::error::Error> From<ServiceError<E>> for ApiError {
    fn from(e: ServiceError<E>) -> ApiError {
        let status = StatusCode::from_u16(e.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, field): (String, Option<&str>) = match &e {
            ServiceError::Lifecycle(LifecycleError::KeyReused { .. }) => (
                "idempotency_key_reused".to_owned(),
                Some("header.Idempotency-Key"),
            ),
            ServiceError::Lifecycle(l) => (variant_kind(&format!("{l:?}")), lifecycle_field(l)),
            ServiceError::Checkout(c) => (variant_kind(&format!("{c:?}")), Some("selection")),
            ServiceError::Repository(r) => {
                eprintln!("checkout-service: store failed: {r}");
                return ApiError::new(status, "unavailable", "the store failed; try again later");
            }
            ServiceError::Guard(_) => ("missing_context".to_owned(), Some("context")),
            ServiceError::Time(_) => ("time_out_of_range".to_owned(), None),
            ServiceError::NotFound { .. } => ("not_found".to_owned(), None),
            ServiceError::Contention { .. } => ("contention".to_owned(), None),
            other => (variant_kind(&format!("{other:?}")), None),
        };
        let mut err = ApiError::new(status, &kind, e.to_string());
        if let Some(f) = field {
            err = err.at(f);
        }
        err
    }
}

/// The JSON body's shape.
#[derive(Serialize)]
struct Body<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(Body { error: &self })).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Contention and store failures are worth retrying (`ServiceError::is_retryable`).
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_kind_is_snake_case_of_the_variant_name() {
        assert_eq!(variant_kind("OutOfStock { stock: 3 }"), "out_of_stock");
        assert_eq!(variant_kind("UnknownOffer(x)"), "unknown_offer");
        assert_eq!(variant_kind("Used"), "used");
    }
}
