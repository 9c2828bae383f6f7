//! The JSON endpoints. Each handler parses its request (every check the engine's types make on
//! deserialising, with the JSON path of a refusal), runs the engine call on the blocking pool
//! and answers with the engine's own result types as JSON.

use coupons::lifecycle::{Actor, RefundRequest, RefundUnits};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use coupons::cart::{Buyer, Cart};
use coupons::checkout::{Evaluation, OfferId, Quote};
use coupons::id::{CampaignId, Channel, IdempotencyKey, OrderId, TemplateId, UserId};
use coupons::lifecycle::{ClaimMode, ClaimRequest, RefundKind};
use coupons::repository::{Logged, Repository};
use coupons::rule::PromoCode;
use coupons::service::LockRequest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::error::ApiError;

/// The header that carries idempotency keys.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// The header that names the acting party of an order transition.
pub const ACTING_PARTY: &str = "Acting-Party";
/// Most events one `GET /api/events` returns.
pub const MAX_EVENTS_PAGE: usize = 1000;

type Shared<R> = State<Arc<App<R>>>;
type Answer = Result<Response, ApiError>;

/// Parses a JSON body, naming the path of what it refuses.
///
/// # Errors
/// `malformed_json` (400), `invalid_body` (422), `body_too_large` (413).
pub fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    parse_bytes(&read(body)?)
}

/// The body's bytes.
///
/// # Errors
/// `body_too_large` (413) past the size limit; `unreadable_body` (400).
pub fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "unreadable_body"
        };
        ApiError::new(status, kind, r.body_text())
    })
}

/// Parses JSON bytes, naming the path of what it refuses.
///
/// # Errors
/// `malformed_json` (400), `invalid_body` (422).
pub fn parse_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut err = ApiError::body(&e);
        if let Some(f) = err.field.as_deref().and_then(|f| refine_cart(bytes, f)) {
            err.field = Some(f);
        }
        err
    })?;
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    Ok(value)
}

/// A cart is checked as a whole (its `Deserialize` runs [`Cart::new`]), so a refusal names the
/// cart; this names the line or the shipping fee whose currency differs, or the line whose
/// quantity is zero.
fn refine_cart(bytes: &[u8], field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut cart = &v;
    for part in field.split('.') {
        cart = cart.get(part)?;
    }
    let currency = cart.get("currency")?.as_str()?;
    let differs = |m: &serde_json::Value| {
        m.get("currency")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|c| c != currency)
    };
    for (i, line) in cart.get("lines")?.as_array()?.iter().enumerate() {
        if line.get("unit_price").is_some_and(differs) {
            return Some(format!("{field}.lines[{i}].unit_price.currency"));
        }
        if line.get("quantity").and_then(serde_json::Value::as_u64) == Some(0) {
            return Some(format!("{field}.lines[{i}].quantity"));
        }
    }
    if cart.get("shipping").is_some_and(differs) {
        return Some(format!("{field}.shipping.currency"));
    }
    None
}

/// The `Idempotency-Key` header.
///
/// # Errors
/// `missing_idempotency_key` (400) or `invalid_id` (400).
pub fn idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    let field = "header.Idempotency-Key";
    let raw = headers.get(IDEMPOTENCY_KEY).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_idempotency_key",
            "this request changes state: send an Idempotency-Key header",
        )
        .at(field)
    })?;
    let s = raw.to_str().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", "not visible ASCII").at(field)
    })?;
    IdempotencyKey::new(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at(field))
}

/// Parses an acting party: `buyer:<user id>`, `merchant` or `system`, exactly (no spaces, lower
/// case).
///
/// # Errors
/// A sentence saying what was expected.
pub fn parse_actor(raw: &str) -> Result<Actor, String> {
    const EXPECTED: &str = "expected `buyer:<user>`, `merchant` or `system`";
    match raw {
        "merchant" => Ok(Actor::Merchant),
        "system" => Ok(Actor::System),
        _ => match raw.strip_prefix("buyer:") {
            Some(user) => UserId::new(user)
                .map(Actor::Buyer)
                .map_err(|e| format!("`{raw}`: the buyer's id is not valid ({e}); {EXPECTED}")),
            None => Err(format!("`{raw}` is not an acting party; {EXPECTED}")),
        },
    }
}

/// The `Acting-Party` header: who performs an order transition. It is required: every default
/// would grant someone's authority to a caller who named no one (`system` or `merchant` may pay
/// and refund anything, and a buyer default has no account to name).
///
/// # Errors
/// `missing_acting_party` (400) or `invalid_acting_party` (400).
pub fn acting_party(headers: &HeaderMap) -> Result<Actor, ApiError> {
    let field = "header.Acting-Party";
    let raw = headers.get(ACTING_PARTY).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_acting_party",
            "this request acts on an order: send an Acting-Party header \
             (`buyer:<user>`, `merchant` or `system`)",
        )
        .at(field)
    })?;
    let s = raw.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_acting_party",
            "not visible ASCII",
        )
        .at(field)
    })?;
    parse_actor(s)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_acting_party", e).at(field))
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::new(raw).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("path.order")
    })
}

/// Runs engine work on the blocking pool (stores do I/O).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    Ok((status, Json(value)).into_response())
}

// ------------------------------------------------------------------------------ claim

/// `POST /api/claims`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// The template to claim.
    pub template: TemplateId,
    /// Who claims it.
    pub user: UserId,
    /// Through which channel.
    pub channel: Channel,
    /// The campaign, if any.
    #[serde(default)]
    pub campaign: Option<CampaignId>,
    /// How (`click` by default).
    #[serde(default = "click")]
    pub mode: ClaimMode,
}

fn click() -> ClaimMode {
    ClaimMode::Click
}

async fn claim<R: Repository + 'static>(
    State(app): Shared<R>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let b: ClaimBody = parse(body)?;
    let claimed = blocking(move || {
        let mut req = ClaimRequest::new(b.template, b.user, b.channel, b.mode, key);
        if let Some(c) = b.campaign {
            req = req.in_campaign(c);
        }
        Ok(app.service.claim(&req, app.now())?)
    })
    .await?;
    let status = if claimed.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json(status, &claimed)
}

// ------------------------------------------------------------------------------ wallet, preview

/// `POST /api/wallet` and `POST /api/preview`: a cart and who buys it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBody {
    /// The buyer.
    pub buyer: Buyer,
    /// The cart.
    pub cart: Cart,
    /// Promo codes the buyer typed.
    #[serde(default)]
    pub codes: Vec<PromoCode>,
    /// The buyer's own choice of offers (`None`: the best combination).
    #[serde(default)]
    pub selection: Option<Vec<OfferId>>,
}

/// The wallet against one cart: the best combination, what can be added, what cannot and why.
#[derive(Debug, Serialize, Deserialize)]
pub struct Wallet {
    /// The best combination's quote.
    pub best: Quote,
    /// Offers in the best combination.
    pub selected: Vec<Entry>,
    /// Usable offers not in it.
    pub usable: Vec<Entry>,
    /// Offers that cannot be used, with their reasons.
    pub greyed: Vec<Entry>,
}

/// One offer in the wallet view.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The engine's evaluation (typed reasons).
    #[serde(flatten)]
    pub evaluation: Evaluation,
    /// Its reasons, as sentences.
    pub reasons_text: Vec<String>,
}

impl Entry {
    fn of(e: &Evaluation) -> Entry {
        Entry {
            evaluation: e.clone(),
            reasons_text: e.reasons.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Splits a quote's evaluations into selected, usable and greyed.
pub fn wallet_of(best: Quote) -> Wallet {
    let pick = |f: &dyn Fn(&Evaluation) -> bool| -> Vec<Entry> {
        best.offers.iter().filter(|e| f(e)).map(Entry::of).collect()
    };
    let selected = pick(&|e| e.selected);
    let usable = pick(&|e| e.usable && !e.selected);
    let greyed = pick(&|e| !e.usable);
    Wallet {
        best,
        selected,
        usable,
        greyed,
    }
}

async fn wallet<R: Repository + 'static>(
    State(app): Shared<R>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let b: PriceBody = parse(body)?;
    let quote =
        blocking(move || Ok(app.service.quote(&b.cart, &b.buyer, &b.codes, app.now())?)).await?;
    json(StatusCode::OK, &wallet_of(quote))
}

async fn preview<R: Repository + 'static>(
    State(app): Shared<R>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let b: PriceBody = parse(body)?;
    let quote = blocking(move || {
        app.preview(
            &b.cart,
            &b.buyer,
            &b.codes,
            b.selection.as_deref(),
            app.now(),
        )
    })
    .await?;
    json(StatusCode::OK, &quote)
}

// ------------------------------------------------------------------------------ orders

async fn lock<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let order = order_id(&order)?;
    let b: PriceBody = parse(body)?;
    let locked = blocking(move || {
        let mut req = LockRequest::new(&order, &b.cart, &b.buyer, &key).codes(&b.codes);
        if let Some(sel) = b.selection.as_deref() {
            req = req.select(sel);
        }
        Ok(app.service.quote_and_lock(&req, app.now())?)
    })
    .await?;
    let status = if locked.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    json(status, &locked)
}

async fn pay<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let by = acting_party(&headers)?;
    let order = order_id(&order)?;
    let s = blocking(move || Ok(app.service.pay(&order, &by, &key, app.now())?)).await?;
    json(StatusCode::OK, &s)
}

async fn complete<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let by = acting_party(&headers)?;
    let order = order_id(&order)?;
    let s = blocking(move || Ok(app.service.complete(&order, &by, &key, app.now())?)).await?;
    json(StatusCode::OK, &s)
}

/// `GET /api/orders/{order}`: the order record (its quote as locked, state, refunds).
async fn get_order<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
) -> Answer {
    let order = order_id(&order)?;
    let o = blocking(move || Ok(app.service.order(&order)?)).await?;
    json(StatusCode::OK, &o)
}

async fn cancel<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let by = acting_party(&headers)?;
    let order = order_id(&order)?;
    let s = blocking(move || Ok(app.service.cancel(&order, &by, &key, app.now())?)).await?;
    json(StatusCode::OK, &s)
}

/// `POST /api/orders/{order}/refund`: some units, or everything not yet refunded.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Whose reason: `merchant` or `buyer` (decides, with each template's policy, whether
    /// coupons come back, and who may ask: see `Actor::permits`).
    pub kind: RefundKind,
    /// The units to refund, `[{"line": 0, "quantity": 1}]`; absent: everything not yet
    /// refunded, the shipping fee included.
    #[serde(default)]
    pub units: Option<Vec<RefundUnits>>,
    /// With `units`, whether to refund the shipping fee too (default no).
    #[serde(default)]
    pub shipping: bool,
}

impl RefundBody {
    /// The engine's request.
    pub fn request(self) -> RefundRequest {
        match self.units {
            None => RefundRequest::whole(self.kind),
            Some(units) => RefundRequest {
                kind: self.kind,
                units: Some(units),
                shipping: self.shipping,
            },
        }
    }
}

async fn refund<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(order): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let key = idempotency_key(&headers)?;
    let by = acting_party(&headers)?;
    let order = order_id(&order)?;
    let req = parse::<RefundBody>(body)?.request();
    let r = blocking(move || Ok(app.service.refund(&order, &by, &req, &key, app.now())?)).await?;
    json(StatusCode::OK, &r)
}

// ------------------------------------------------------------------------------ events

/// `GET /api/events?after=0&limit=100`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// The last sequence already read (0: from the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most [`MAX_EVENTS_PAGE`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One page of the event feed.
#[derive(Debug, Serialize, Deserialize)]
pub struct EventsPage {
    /// The events, in sequence order.
    pub events: Vec<Logged>,
    /// Pass as `after` for the next page.
    pub next: u64,
}

async fn events<R: Repository + 'static>(
    State(app): Shared<R>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Answer {
    let Query(q) = query.map_err(|r| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()).at("query")
    })?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_EVENTS_PAGE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be in 1..={MAX_EVENTS_PAGE}"),
        )
        .at("query.limit"));
    }
    let after = q.after;
    let events = blocking(move || {
        app.service
            .repository()
            .events(after, limit)
            .map_err(ApiError::internal)
    })
    .await?;
    let next = events.last().map_or(after, |e| e.seq);
    json(StatusCode::OK, &EventsPage { events, next })
}

// ------------------------------------------------------------------------------ carts

/// `PUT /api/carts/{user}`: the cart the checkout page shows.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasketBody {
    /// The buyer (its `user` must be the path's).
    pub buyer: Buyer,
    /// The cart.
    pub cart: Cart,
}

async fn put_cart<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(user): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let b: BasketBody = parse(body)?;
    if b.buyer.user.as_str() != user {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user_mismatch",
            format!("the path names {user}, the body {}", b.buyer.user),
        )
        .at("buyer.user"));
    }
    app.set_basket(b.buyer, b.cart);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A route: its method (lower case, as in OpenAPI), its path, its handler.
pub type Route<R> = (&'static str, &'static str, MethodRouter<Arc<App<R>>>);

/// The JSON endpoints.
pub fn routes<R: Repository + 'static>() -> Vec<Route<R>> {
    use axum::routing::{get, post, put};
    vec![
        ("post", "/api/claims", post(claim::<R>)),
        ("post", "/api/wallet", post(wallet::<R>)),
        ("post", "/api/preview", post(preview::<R>)),
        ("get", "/api/orders/{order}", get(get_order::<R>)),
        ("post", "/api/orders/{order}/lock", post(lock::<R>)),
        ("post", "/api/orders/{order}/pay", post(pay::<R>)),
        ("post", "/api/orders/{order}/complete", post(complete::<R>)),
        ("post", "/api/orders/{order}/cancel", post(cancel::<R>)),
        ("post", "/api/orders/{order}/refund", post(refund::<R>)),
        ("get", "/api/events", get(events::<R>)),
        ("put", "/api/carts/{user}", put(put_cart::<R>)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acting_parties_parse_strictly() {
        assert_eq!(parse_actor("merchant"), Ok(Actor::Merchant));
        assert_eq!(parse_actor("system"), Ok(Actor::System));
        let alice = UserId::new("alice").map(Actor::Buyer);
        assert_eq!(parse_actor("buyer:alice").ok(), alice.ok());
        for bad in [
            "",
            "Merchant",
            "SYSTEM",
            "buyer",
            "buyer:",
            "admin",
            "merchant ",
            "system:x",
        ] {
            let e = parse_actor(bad).err().unwrap_or_default();
            assert!(
                e.contains("`buyer:<user>`, `merchant` or `system`"),
                "{bad:?}: {e}"
            );
        }
    }
}
