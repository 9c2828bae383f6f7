//! Server-rendered HTML: the buyer's checkout page, and the shared pieces of the merchant's
//! campaign page ([`campaign`](crate::campaign)). Plain forms; the only script submits the
//! form when a box is ticked.

use coupons::lifecycle::{Actor, Order, RefundKind, RefundRequest, RefundUnits};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use coupons::checkout::{Evaluation, Ineligible, OfferId, Quote};
use coupons::id::{CouponId, IdempotencyKey, OrderId, TemplateId, UserId};
use coupons::repository::Repository;
use coupons::rule::PromoCode;
use coupons::service::LockRequest;

use crate::app::App;
use crate::error::ApiError;

type Shared<R> = State<Arc<App<R>>>;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An offer as a form value: `coupon:ID`, `code:CODE`, `promotion:TEMPLATE`.
pub fn token(id: &OfferId) -> String {
    match id {
        OfferId::Coupon(c) => format!("coupon:{c}"),
        OfferId::Code(c) => format!("code:{c}"),
        OfferId::Promotion(t) => format!("promotion:{t}"),
    }
}

/// The offer a form value names.
pub fn parse_token(s: &str) -> Option<OfferId> {
    let (kind, id) = s.split_once(':')?;
    match kind {
        "coupon" => CouponId::new(id).ok().map(OfferId::Coupon),
        "code" => PromoCode::new(id).ok().map(OfferId::Code),
        "promotion" => TemplateId::new(id).ok().map(OfferId::Promotion),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` pairs (query strings and form bodies).
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| (b as char).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(h), Some(l)) => {
                            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A whole HTML page around `body` (already HTML), with the shared style.
pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto}}\
li{{list-style:none;margin:.4rem 0}}.greyed{{color:#999}}.reason{{font-size:.9em;margin-left:.5rem}}\
.error{{color:#b00}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}}\
td:first-child,th:first-child{{text-align:left}}svg.chart{{display:block;max-width:100%;height:auto;margin:1rem 0}}</style></head><body>{}</body></html>\n",
        esc(title),
        body
    ))
}

/// An error as an HTML page, with the error's status.
pub fn error_page(e: &ApiError) -> Response {
    let body = format!(
        "<h1>Something went wrong</h1><p class=\"error\" id=\"error\">{} ({})</p>",
        esc(&e.reason),
        esc(&e.kind)
    );
    (e.status, page("Error", &body)).into_response()
}

static FORM_KEYS: AtomicU64 = AtomicU64::new(1);

/// A fresh idempotency key for a form (a resubmitted form repeats it).
fn form_key(app_now: chrono::DateTime<chrono::Utc>) -> String {
    let n = FORM_KEYS.fetch_add(1, Ordering::Relaxed);
    format!("form-{}-{n}", app_now.timestamp_micros())
}

/// Template names by id, for labels.
pub type Names = std::collections::HashMap<TemplateId, String>;

/// Every template's name, by id.
///
/// # Errors
/// `unavailable` (503) when the store fails.
pub fn names<R: Repository>(app: &App<R>) -> Result<Names, ApiError> {
    Ok(app
        .service
        .repository()
        .templates()
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|r| (r.value.id().clone(), r.value.template.name().to_owned()))
        .collect())
}

fn offer_label(e: &Evaluation, names: &Names) -> String {
    let name = names
        .get(&e.template)
        .cloned()
        .unwrap_or_else(|| e.template.to_string());
    match &e.saving_alone {
        Some(s) if !e.selected => format!("{name} (saves {} alone)", s.amount()),
        _ => name,
    }
}

/// A reason in the page's words: the engine's own sentence, which names other offers by their
/// templates' names.
fn reason_text(r: &Ineligible, _q: &Quote, _names: &Names) -> String {
    r.to_string()
}

/// Renders the checkout page for a quote.
fn render_checkout(
    user: &UserId,
    q: &Quote,
    names: &Names,
    banner: Option<&str>,
    key: &str,
) -> String {
    let mut b = String::new();
    let _ = write!(b, "<h1>Checkout</h1><p>Buyer: {}</p>", esc(user.as_str()));
    if let Some(msg) = banner {
        let _ = write!(b, "<p class=\"error\" id=\"error\">{}</p>", esc(msg));
    }
    b.push_str(
        "<table id=\"lines\"><tr><th>Item</th><th>Qty</th><th>Price</th><th>You pay</th></tr>",
    );
    for l in &q.lines {
        let _ = write!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(l.sku.as_str()),
            l.quantity,
            l.original.amount(),
            l.final_amount.amount()
        );
    }
    let _ = write!(
        b,
        "<tr><td>Shipping</td><td></td><td>{}</td><td>{}</td></tr></table>",
        q.shipping.original.amount(),
        q.shipping.final_amount.amount()
    );
    let path = format!("/checkout/{}", esc(user.as_str()));
    let _ = write!(
        b,
        "<form id=\"offers\" method=\"get\" action=\"{path}\"><input type=\"hidden\" name=\"chosen\" value=\"1\"><h2>Coupons</h2><ul>"
    );
    for (i, e) in q.offers.iter().enumerate() {
        let t = esc(&token(&e.offer));
        let label = esc(&offer_label(e, names));
        let tid = esc(e.template.as_str());
        let reasons: Vec<String> = e.reasons.iter().map(|r| reason_text(r, q, names)).collect();
        let reason = if reasons.is_empty() {
            String::new()
        } else {
            format!(
                "<span class=\"reason\" id=\"reason-{i}\">{}</span>",
                esc(&reasons.join("; "))
            )
        };
        if e.usable {
            let checked = if e.selected { " checked" } else { "" };
            let _ = write!(
                b,
                "<li class=\"usable\" data-template=\"{tid}\"><label><input type=\"checkbox\" name=\"offer\" value=\"{t}\" id=\"offer-{i}\" data-offer=\"{t}\"{checked} onchange=\"this.form.submit()\"> {label}</label>{reason}</li>"
            );
        } else {
            let _ = write!(
                b,
                "<li class=\"greyed\" data-template=\"{tid}\" data-offer=\"{t}\"><label><input type=\"checkbox\" id=\"offer-{i}\" disabled> {label}</label>{reason}</li>"
            );
        }
    }
    b.push_str("</ul><noscript><button type=\"submit\">Update</button></noscript></form>");
    let _ = write!(
        b,
        "<p>Items {} · shipping {} · saving <span id=\"saving\">{}</span></p>\
<p><strong>Total <span id=\"total\">{}</span></strong></p>\
<p><a href=\"{path}\" id=\"best\">Best combination</a></p>",
        q.items_before.amount(),
        q.shipping.original.amount(),
        q.saving.amount(),
        q.total_after,
    );
    let _ = write!(
        b,
        "<form id=\"place\" method=\"post\" action=\"{path}/order\"><input type=\"hidden\" name=\"key\" value=\"{}\">",
        esc(key)
    );
    for a in &q.applied {
        let _ = write!(
            b,
            "<input type=\"hidden\" name=\"offer\" value=\"{}\">",
            esc(&token(&a.offer))
        );
    }
    b.push_str("<button type=\"submit\" id=\"place-order\">Place order</button></form>");
    b
}

fn selection_of(raw: &str) -> (bool, Vec<OfferId>, Option<String>) {
    let mut chosen = false;
    let mut sel = Vec::new();
    let mut key = None;
    for (k, v) in pairs(raw) {
        match k.as_str() {
            "chosen" => chosen = true,
            "offer" => sel.extend(parse_token(&v)),
            "key" => key = Some(v),
            _ => {}
        }
    }
    (chosen, sel, key)
}

async fn checkout_page<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let user = UserId::new(&user).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("path.user")
        })?;
        let (buyer, cart) = app.basket(&user).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_cart",
                format!("no cart for {user}: PUT /api/carts/{user} first"),
            )
        })?;
        let now = app.now();
        let (chosen, sel, _) = selection_of(query.as_deref().unwrap_or(""));
        let key = form_key(now);
        let names = names(&app)?;
        if chosen {
            match app.preview(&cart, &buyer, &[], Some(&sel), now) {
                Ok(q) => return Ok(render_checkout(&user, &q, &names, None, &key)),
                Err(e) if e.field.as_deref() == Some("selection") => {
                    let q = app.preview(&cart, &buyer, &[], None, now)?;
                    let msg = format!("{} — showing the best combination instead", e.reason);
                    return Ok(render_checkout(&user, &q, &names, Some(&msg), &key));
                }
                Err(e) => return Err(e),
            }
        }
        let q = app.preview(&cart, &buyer, &[], None, now)?;
        Ok(render_checkout(&user, &q, &names, None, &key))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Checkout", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}

async fn place_order<R: Repository + 'static>(
    State(app): Shared<R>,
    Path(user): Path<String>,
    body: String,
) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let user = UserId::new(&user).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("path.user")
        })?;
        let (buyer, cart) = app.basket(&user).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "no_cart", format!("no cart for {user}"))
        })?;
        let (_, sel, key) = selection_of(&body);
        let bad = |e: coupons::id::IdError| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("key")
        };
        let key = key.ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "missing_idempotency_key", "no key").at("key")
        })?;
        let order = OrderId::new(format!("web-{key}")).map_err(bad)?;
        let key = IdempotencyKey::new(&key).map_err(bad)?;
        let req = LockRequest::new(&order, &cart, &buyer, &key).select(&sel);
        let locked = app.service.quote_and_lock(&req, app.now())?;
        let pay_key = esc(&format!("pay-{key}"));
        Ok(format!(
            "<h1>Order {}</h1><p>Total <span id=\"total\">{}</span>, saving {}; coupons held until {}.</p>\
<form method=\"post\" action=\"/checkout/{}/order/{}/pay\"><input type=\"hidden\" name=\"key\" value=\"{pay_key}\">\
<button type=\"submit\" id=\"pay\">Pay</button></form>",
            esc(order.as_str()),
            locked.quote.total_after,
            locked.quote.saving.amount(),
            locked
                .hold_until
                .map_or_else(|| "—".to_owned(), |t| t.to_string()),
            esc(user.as_str()),
            esc(order.as_str()),
        ))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Order", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}

async fn pay_order<R: Repository + 'static>(
    State(app): Shared<R>,
    Path((user, order)): Path<(String, String)>,
    body: String,
) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let bad = |e: coupons::id::IdError| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string())
        };
        let order = OrderId::new(&order).map_err(bad)?;
        let (_, _, key) = selection_of(&body);
        let key = IdempotencyKey::new(key.unwrap_or_default()).map_err(bad)?;
        // The demo's stand-in for the payment provider's confirmation: the system pays (a
        // buyer may not mark their own order paid).
        let s = app.service.pay(&order, &Actor::System, &key, app.now())?;
        Ok(format!(
            "<h1>Paid</h1><p id=\"paid\">Order {} is paid; {} coupon(s) used.</p>\
<p><a id=\"order-link\" href=\"/checkout/{}/order/{}\">The order, and refunds</a></p>",
            esc(s.order.as_str()),
            s.coupons.len(),
            esc(&user),
            esc(s.order.as_str()),
        ))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Paid", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}

/// The buyer's order and the page's acting party: the path's user stands in for the
/// session's account, so the page acts as that buyer and shows only their own orders.
fn buyer_order<R: Repository>(
    app: &App<R>,
    user: &str,
    order: &str,
) -> Result<(UserId, Order), ApiError> {
    let user = UserId::new(user).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("path.user")
    })?;
    let id = OrderId::new(order).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("path.order")
    })?;
    let order = app.service.order(&id)?;
    if order.buyer != user {
        // Not theirs: answered as if it did not exist.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{user} has no order {id}"),
        ));
    }
    Ok((user, order))
}

/// An order's lines (with what is refunded of each), its refunds, and a form to refund units.
fn render_order(user: &UserId, o: &Order, note: &str, key: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<h1>Order {}</h1>{note}<p>State <span id=\"state\">{}</span>; paid \
<span id=\"paid-total\">{}</span>.</p>",
        esc(o.id.as_str()),
        esc(o.state.name()),
        o.quote.total_after,
    );
    let open = matches!(o.state.name(), "paid" | "completed");
    let _ = write!(
        h,
        "<form method=\"post\" action=\"/checkout/{}/order/{}/refund\">\
<input type=\"hidden\" name=\"key\" value=\"{}\"><table id=\"lines\">\
<tr><th>item</th><th>units</th><th>price</th><th>paid</th><th>refunded</th>{}</tr>",
        esc(user.as_str()),
        esc(o.id.as_str()),
        esc(key),
        if open { "<th>refund</th>" } else { "" },
    );
    for (i, l) in o.quote.lines.iter().enumerate() {
        let refunded = o.refunded_units.get(i).copied().unwrap_or(0);
        let left = l.quantity.saturating_sub(refunded);
        let _ = write!(
            h,
            "<tr data-line=\"{i}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
<td class=\"refunded\">{refunded}</td>",
            esc(l.sku.as_str()),
            l.quantity,
            l.original.amount(),
            l.final_amount.amount(),
        );
        if open {
            let _ = write!(
                h,
                "<td><input type=\"number\" name=\"q{i}\" id=\"q{i}\" min=\"0\" \
max=\"{left}\" value=\"0\"></td>"
            );
        }
        h.push_str("</tr>");
    }
    let _ = write!(
        h,
        "<tr><td>shipping</td><td></td><td>{}</td><td>{}</td><td>{}</td>",
        o.quote.shipping.original.amount(),
        o.quote.shipping.final_amount.amount(),
        if o.shipping_refunded { "yes" } else { "no" },
    );
    if open {
        if o.shipping_refunded {
            h.push_str("<td></td>");
        } else {
            h.push_str(
                "<td><input type=\"checkbox\" name=\"shipping\" id=\"shipping\" value=\"1\"></td>",
            );
        }
    }
    h.push_str("</tr></table>");
    if open {
        h.push_str("<button type=\"submit\" id=\"refund\">Refund these</button>");
    }
    h.push_str("</form><h2>Refunds</h2>");
    if o.refunds.is_empty() {
        h.push_str("<p id=\"no-refunds\">None.</p>");
    } else {
        h.push_str(
            "<table id=\"refunds\"><tr><th>when</th><th>by</th><th>units</th><th>shipping</th>\
<th>amount</th><th>discount given back</th></tr>",
        );
        for r in &o.refunds {
            let units: Vec<String> = r
                .lines
                .iter()
                .map(|l| format!("{} × line {}", l.quantity, l.line))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"amount\">{}</td><td>{}</td></tr>",
                r.at,
                esc(&r.by.to_string()),
                esc(&units.join(", ")),
                r.shipping.amount(),
                r.amount.amount(),
                r.discount.amount(),
            );
        }
        h.push_str("</table>");
    }
    h
}

async fn order_page<R: Repository + 'static>(
    State(app): Shared<R>,
    Path((user, order)): Path<(String, String)>,
) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let (user, o) = buyer_order(&app, &user, &order)?;
        Ok(render_order(&user, &o, "", &form_key(app.now())))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Order", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}

/// The refund form: `q<line>=<units>` for each line, `shipping=1`, `key`; the buyer refunds
/// for their own reason.
fn refund_form(body: &str) -> Result<(RefundRequest, String), ApiError> {
    let mut units = Vec::new();
    let mut shipping = false;
    let mut key = None;
    for (k, v) in pairs(body) {
        if k == "key" {
            key = Some(v);
        } else if k == "shipping" {
            shipping = true;
        } else if let Some(line) = k.strip_prefix('q') {
            let bad = || {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_form",
                    format!("{k}={v}: not a line and a number of units"),
                )
                .at(k.clone())
            };
            let line: usize = line.parse().map_err(|_| bad())?;
            let quantity: u32 = v.trim().parse().map_err(|_| bad())?;
            if quantity > 0 {
                units.push(RefundUnits { line, quantity });
            }
        }
    }
    let key = key.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "missing_idempotency_key", "no key").at("key")
    })?;
    let mut req = RefundRequest::units(RefundKind::Buyer, units);
    req.shipping = shipping;
    Ok((req, key))
}

async fn refund_order<R: Repository + 'static>(
    State(app): Shared<R>,
    Path((user, order)): Path<(String, String)>,
    body: String,
) -> Response {
    let result = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let (user, o) = buyer_order(&app, &user, &order)?;
        let (req, key) = refund_form(&body)?;
        let key = IdempotencyKey::new(&key).map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()).at("key")
        })?;
        let by = Actor::Buyer(user.clone());
        let r = app.service.refund(&o.id, &by, &req, &key, app.now())?;
        let o = app.service.order(&o.id)?;
        let note = format!(
            "<p id=\"refunded\">Refunded <span id=\"refund-amount\">{}</span>{}.</p>",
            r.refund.amount.amount(),
            if r.replayed { " (already done)" } else { "" },
        );
        Ok(render_order(&user, &o, &note, &form_key(app.now())))
    })
    .await;
    match result {
        Ok(Ok(body)) => page("Order", &body).into_response(),
        Ok(Err(e)) => error_page(&e),
        Err(e) => error_page(&ApiError::internal(e)),
    }
}

/// The HTML routes.
pub fn routes<R: Repository + 'static>() -> Vec<crate::api::Route<R>> {
    use axum::routing::{get, post};
    vec![
        ("get", "/checkout/{user}", get(checkout_page::<R>)),
        ("post", "/checkout/{user}/order", post(place_order::<R>)),
        (
            "post",
            "/checkout/{user}/order/{order}/pay",
            post(pay_order::<R>),
        ),
        (
            "get",
            "/checkout/{user}/order/{order}",
            get(order_page::<R>),
        ),
        (
            "post",
            "/checkout/{user}/order/{order}/refund",
            post(refund_order::<R>),
        ),
        (
            "get",
            "/merchant/campaign",
            get(crate::campaign::campaign_page::<R>),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_decode_percent_and_plus() {
        assert_eq!(
            pairs("offer=coupon%3Aabc&x=a+b&chosen"),
            vec![
                ("offer".to_owned(), "coupon:abc".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
                ("chosen".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn offer_tokens_round_trip() {
        for id in [
            OfferId::Coupon(CouponId::new("c-1").unwrap()),
            OfferId::Promotion(TemplateId::new("p").unwrap()),
        ] {
            assert_eq!(parse_token(&token(&id)), Some(id));
        }
        assert_eq!(parse_token("nonsense"), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
