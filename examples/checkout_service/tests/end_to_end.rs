//! The service on a loopback port, driven over HTTP: a checkout end to end on each store, the
//! bad requests and their error bodies, and the OpenAPI description against the routes.

mod common;

use std::collections::BTreeSet;
use std::str::FromStr;

use common::{Client, start};
use coupons::repository::{MemoryStore, Repository};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn money(v: &Value) -> Decimal {
    Decimal::from_str(v["amount"].as_str().expect("amount")).expect("decimal")
}

fn cart() -> Value {
    json!({
        "currency": "CNY",
        "lines": [
            {"sku": "oolong", "categories": ["tea"], "unit_price": {"amount": "45", "currency": "CNY"}, "quantity": 3},
            {"sku": "teapot", "categories": ["ware"], "unit_price": {"amount": "168", "currency": "CNY"}, "quantity": 1}
        ],
        "shipping": {"amount": "12", "currency": "CNY"}
    })
}

fn buyer(user: &str) -> Value {
    json!({"user": user, "channel": "web"})
}

fn claim(c: &mut Client, user: &str, template: &str, key: &str) -> common::Resp {
    c.post(
        "/api/claims",
        Some(key),
        &json!({"template": template, "user": user, "channel": "web"}),
    )
}

fn entry<'a>(list: &'a Value, template: &str) -> &'a Value {
    list.as_array()
        .expect("list")
        .iter()
        .find(|e| e["template"] == template)
        .unwrap_or_else(|| panic!("{template} not in {list}"))
}

/// Claim, wallet, preview, lock, pay, refund, cancel and the feed, for a fresh user.
fn checkout_end_to_end<R: Repository + 'static>(store: R) {
    let (addr, _app) = start(store, true);
    let mut c = Client::new(addr);
    let user = "bob";

    // Claim, and the same claim again.
    let first = claim(&mut c, user, "spend-200-save-25", "bob-claim-1");
    assert_eq!(first.status, 201, "{}", first.text());
    let spend200 = first.json()["coupon"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let again = claim(&mut c, user, "spend-200-save-25", "bob-claim-1");
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["replayed"], true);
    assert_eq!(again.json()["coupon"]["id"], spend200.as_str());
    // The same key for another claim: refused by the engine's receipt.
    claim(&mut c, user, "tea-15-percent", "bob-claim-1").assert_error(
        409,
        "idempotency_key_reused",
        Some("header.Idempotency-Key"),
    );
    for (t, k) in [
        ("tea-15-percent", "bob-claim-2"),
        ("spend-500-save-60", "bob-claim-3"),
        ("usd-5-off", "bob-claim-4"),
        ("spend-100-save-10", "bob-claim-5"),
    ] {
        assert_eq!(claim(&mut c, user, t, k).status, 201);
    }
    claim(&mut c, user, "no-such-template", "bob-claim-6").assert_error(404, "not_found", None);

    // The wallet against the cart: best combination, usable, greyed with typed reasons.
    let price = json!({"buyer": buyer(user), "cart": cart()});
    let w = c.post("/api/wallet", None, &price);
    assert_eq!(w.status, 200, "{}", w.text());
    let w = w.json();
    let best_total = money(&w["best"]["total_after"]);
    assert_eq!(money(&w["best"]["total_before"]), Decimal::from(315));
    assert!(best_total < Decimal::from(315));
    let selected: BTreeSet<&str> = w["selected"]
        .as_array()
        .expect("selected")
        .iter()
        .map(|e| e["template"].as_str().expect("template"))
        .collect();
    assert!(selected.contains("tea-15-percent"), "{selected:?}");
    let big = entry(&w["greyed"], "spend-500-save-60");
    assert_eq!(big["reasons"][0]["reason"], "spend_more");
    assert!(
        big["reasons_text"][0]
            .as_str()
            .expect("text")
            .contains("more")
    );
    let usd = entry(&w["greyed"], "usd-5-off");
    assert_eq!(usd["reasons"][0]["reason"], "currency_mismatch");

    // Preview the buyer's own choice: the 200-25 coupon alone.
    let only = json!({"buyer": buyer(user), "cart": cart(),
        "selection": [{"kind": "coupon", "id": spend200}]});
    let p = c.post("/api/preview", None, &only);
    assert_eq!(p.status, 200, "{}", p.text());
    let p = p.json();
    assert_eq!(money(&p["total_after"]), Decimal::from(290));
    assert_eq!(p["applied"].as_array().expect("applied").len(), 1);
    // Previewing held nothing: the wallet is unchanged.
    let w2 = c.post("/api/wallet", None, &price).json();
    assert_eq!(money(&w2["best"]["total_after"]), best_total);
    // Unknown coupon in a selection.
    let unknown = json!({"buyer": buyer(user), "cart": cart(),
        "selection": [{"kind": "coupon", "id": "no-such-coupon"}]});
    c.post("/api/preview", None, &unknown)
        .assert_error(404, "unknown_offer", Some("selection"));
    // A greyed coupon cannot be chosen.
    let greyed_id = big["offer"]["id"].as_str().expect("id");
    let g = json!({"buyer": buyer(user), "cart": cart(),
        "selection": [{"kind": "coupon", "id": greyed_id}]});
    c.post("/api/preview", None, &g)
        .assert_error(422, "not_usable", Some("selection"));

    // A typed promo code joins the offers; chosen alone, it takes 5 off.
    let coded = json!({"buyer": buyer(user), "cart": cart(), "codes": ["SAVE5"]});
    let wc = c.post("/api/wallet", None, &coded).json();
    assert!(
        wc["selected"]
            .as_array()
            .expect("selected")
            .iter()
            .any(|e| e["offer"]["kind"] == "code"),
        "{wc}"
    );
    // It adds a saving, at most its 5 (the percent coupon applies after the fixed amounts).
    let with_code = money(&wc["best"]["total_after"]);
    assert!(
        with_code < best_total && with_code >= best_total - Decimal::from(5),
        "{with_code}"
    );
    let code_only = json!({"buyer": buyer(user), "cart": cart(), "codes": ["SAVE5"],
        "selection": [{"kind": "code", "id": "SAVE5"}]});
    let pc = c.post("/api/preview", None, &code_only);
    assert_eq!(pc.status, 200, "{}", pc.text());
    assert_eq!(money(&pc.json()["total_after"]), Decimal::from(310));

    // Lock the best combination, replay it, reuse its key for another cart.
    let l = c.post("/api/orders/o-1/lock", Some("bob-lock-1"), &price);
    assert_eq!(l.status, 201, "{}", l.text());
    let l = l.json();
    assert_eq!(money(&l["quote"]["total_after"]), best_total);
    assert!(l["hold_until"].is_string());
    let held: Vec<String> = l["coupons"]
        .as_array()
        .expect("coupons")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(!held.is_empty());
    let replay = c.post("/api/orders/o-1/lock", Some("bob-lock-1"), &price);
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["replayed"], true);
    let mut other = cart();
    other["lines"][0]["quantity"] = json!(5);
    c.post(
        "/api/orders/o-1/lock",
        Some("bob-lock-1"),
        &json!({"buyer": buyer(user), "cart": other}),
    )
    .assert_error(
        409,
        "idempotency_key_reused",
        Some("header.Idempotency-Key"),
    );
    // The held coupons are greyed now ("held by another unpaid order").
    let w3 = c.post("/api/wallet", None, &price).json();
    let held_entry = w3["greyed"]
        .as_array()
        .expect("greyed")
        .iter()
        .find(|e| e["offer"]["id"] == held[0].as_str())
        .expect("held coupon greyed");
    assert_eq!(held_entry["reasons"][0]["reason"], "unavailable");

    // Pay, pay again (replay), refund whole.
    let pay = c.post_as("/api/orders/o-1/pay", "bob-pay-1", "system", &Value::Null);
    assert_eq!(pay.status, 200, "{}", pay.text());
    assert_eq!(
        pay.json()["coupons"].as_array().expect("coupons").len(),
        held.len()
    );
    assert_eq!(
        c.post_as("/api/orders/o-1/pay", "bob-pay-1", "system", &Value::Null)
            .json()["replayed"],
        true
    );
    c.post_as(
        "/api/orders/o-1/refund",
        "bob-refund-1",
        "merchant",
        &json!({"kind": "sideways"}),
    )
    .assert_error(422, "invalid_body", Some("kind"));
    let r = c.post_as(
        "/api/orders/o-1/refund",
        "bob-refund-1",
        "merchant",
        &json!({"kind": "merchant"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    c.post_as(
        "/api/orders/o-1/refund",
        "bob-refund-2",
        "merchant",
        &json!({"kind": "merchant"}),
    )
    .assert_error(409, "order_already_refunded", None);

    // Another order: lock, cancel, then paying it is refused.
    let l2 = c.post("/api/orders/o-2/lock", Some("bob-lock-2"), &price);
    assert_eq!(l2.status, 201, "{}", l2.text());
    let cancel = c.post_as(
        "/api/orders/o-2/cancel",
        "bob-cancel-2",
        "buyer:bob",
        &Value::Null,
    );
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    c.post_as("/api/orders/o-2/pay", "bob-pay-2", "system", &Value::Null)
        .assert_error(409, "order_released", None);

    // Keys reused for another request, refused by the engine's receipts (the service keeps no
    // record of keys of its own): a pay key for another order, a refund key with another
    // kind, a cancel key for another order.
    let reused = |r: common::Resp| {
        r.assert_error(
            409,
            "idempotency_key_reused",
            Some("header.Idempotency-Key"),
        );
    };
    reused(c.post_as("/api/orders/o-2/pay", "bob-pay-1", "system", &Value::Null));
    reused(c.post_as(
        "/api/orders/o-1/refund",
        "bob-refund-1",
        "merchant",
        &json!({"kind": "buyer"}),
    ));
    let l3 = c.post("/api/orders/o-3/lock", Some("bob-lock-3"), &price);
    assert_eq!(l3.status, 201, "{}", l3.text());
    reused(c.post_as(
        "/api/orders/o-3/cancel",
        "bob-cancel-2",
        "buyer:bob",
        &Value::Null,
    ));
    let cancel3 = c.post_as(
        "/api/orders/o-3/cancel",
        "bob-cancel-3",
        "buyer:bob",
        &Value::Null,
    );
    assert_eq!(cancel3.status, 200, "{}", cancel3.text());
    c.post_as("/api/orders/never/pay", "bob-pay-3", "system", &Value::Null)
        .assert_error(404, "not_found", None);

    // The feed: every step, in order, paged.
    let all = c.get("/api/events?after=0&limit=1000").json();
    let events = all["events"].as_array().expect("events");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let types: BTreeSet<&str> = events
        .iter()
        .map(|e| e["event"]["kind"]["type"].as_str().expect("type"))
        .collect();
    for t in [
        "issued",
        "locked",
        "redeemed",
        "refunded",
        "released",
        "order_paid",
    ] {
        assert!(types.contains(t), "{t} missing from {types:?}");
    }
    let first_page = c.get("/api/events?after=0&limit=2").json();
    assert_eq!(first_page["events"].as_array().expect("page").len(), 2);
    let next = first_page["next"].as_u64().expect("next");
    let second = c.get(&format!("/api/events?after={next}&limit=2")).json();
    assert_eq!(second["events"][0]["seq"].as_u64(), Some(next + 1));
    c.get("/api/events?limit=0")
        .assert_error(400, "invalid_query", Some("query.limit"));
    c.get("/api/events?after=minus-one")
        .assert_error(400, "invalid_query", Some("query"));
}

#[test]
fn checkout_end_to_end_in_memory() {
    checkout_end_to_end(MemoryStore::new());
}

#[test]
fn checkout_end_to_end_on_sqlite() {
    checkout_end_to_end(coupons_sqlite::SqliteStore::temporary().expect("sqlite"));
}

#[test]
fn bad_requests_get_4xx_with_a_clear_body() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    // Malformed JSON.
    c.post_raw("/api/claims", Some("k-1"), b"{\"template\": ")
        .assert_error(400, "malformed_json", None);
    c.post_raw("/api/wallet", None, b"not json")
        .assert_error(400, "malformed_json", None);
    // Wrong currency: a USD price in a CNY cart, named to the field.
    let mut bad = cart();
    bad["lines"][1]["unit_price"]["currency"] = json!("USD");
    let v = c
        .post(
            "/api/wallet",
            None,
            &json!({"buyer": buyer("alice"), "cart": bad}),
        )
        .assert_error(
            422,
            "invalid_body",
            Some("cart.lines[1].unit_price.currency"),
        );
    assert!(
        v["error"]["reason"]
            .as_str()
            .expect("reason")
            .contains("USD")
    );
    // A field of the wrong type, named by its path.
    let mut bad = cart();
    bad["lines"][0]["quantity"] = json!("three");
    c.post(
        "/api/wallet",
        None,
        &json!({"buyer": buyer("alice"), "cart": bad}),
    )
    .assert_error(422, "invalid_body", Some("cart.lines[0].quantity"));
    // Unknown fields are refused, not ignored.
    c.post(
        "/api/claims",
        Some("k-2"),
        &json!({"template": "t", "user": "u", "channel": "web", "colour": 1}),
    )
    .assert_error(422, "invalid_body", None);
    // No idempotency key on a request that changes state.
    c.post(
        "/api/claims",
        None,
        &json!({"template": "spend-200-save-25", "user": "u", "channel": "web"}),
    )
    .assert_error(
        400,
        "missing_idempotency_key",
        Some("header.Idempotency-Key"),
    );
    c.post(
        "/api/claims",
        Some(""),
        &json!({"template": "spend-200-save-25", "user": "u", "channel": "web"}),
    )
    .assert_error(400, "invalid_id", Some("header.Idempotency-Key"));
    // Unknown promo code.
    c.post(
        "/api/wallet",
        None,
        &json!({"buyer": buyer("alice"), "cart": cart(), "codes": ["NOPE"]}),
    )
    .assert_error(404, "unknown_code", Some("codes"));
    // A body over the limit.
    let huge = vec![b' '; checkout_service::BODY_LIMIT + 1];
    c.post_raw("/api/wallet", None, &huge)
        .assert_error(413, "body_too_large", None);
    // No such endpoint.
    c.get("/api/nothing-here")
        .assert_error(404, "no_route", None);
}

#[test]
fn openapi_describes_exactly_the_routes_served() {
    let (addr, _app) = start(MemoryStore::new(), false);
    let mut c = Client::new(addr);
    let doc = c.get("/openapi.json");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    let doc = doc.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = checkout_service::route_table::<MemoryStore>()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(documented, served);
    // Every documented route answers on its method (not the JSON 404, not 405).
    for (method, path) in &documented {
        let concrete = path.replace("{order}", "probe").replace("{user}", "probe");
        let r = c.send(&method.to_uppercase(), &concrete, &[], b"");
        assert_ne!(r.status, 405, "{method} {path}");
        assert!(!r.text().contains("\"no_route\""), "{method} {path}");
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/").skip(1) {
        let target = part.split('"').next().expect("ref");
        let mut node = &doc;
        for seg in target.split('/') {
            node = &node[seg];
        }
        assert!(!node.is_null(), "unresolved $ref {target}");
    }
}

#[test]
fn a_reused_key_is_refused_by_the_store_across_restarts() {
    let path = std::env::temp_dir().join(format!("checkout-service-{}.db", std::process::id()));
    let body = |t: &str| json!({"template": t, "user": "carol", "channel": "web"});
    {
        let (addr, _app) = start(
            coupons_sqlite::SqliteStore::open(&path).expect("open"),
            true,
        );
        let mut c = Client::new(addr);
        let r = c.post("/api/claims", Some("carol-1"), &body("tea-15-percent"));
        assert_eq!(r.status, 201, "{}", r.text());
        let price = json!({"buyer": buyer("carol"), "cart": cart()});
        let r = c.post("/api/orders/carol-o/lock", Some("carol-lock"), &price);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    // A second service over the same database has no fingerprints in memory: the engine's
    // receipt refuses the key all the same.
    let (addr, _app) = start(
        coupons_sqlite::SqliteStore::open(&path).expect("open"),
        true,
    );
    let mut c = Client::new(addr);
    let replay = c.post("/api/claims", Some("carol-1"), &body("tea-15-percent"));
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["replayed"], true);
    c.post("/api/claims", Some("carol-1"), &body("spend-200-save-25"))
        .assert_error(
            409,
            "idempotency_key_reused",
            Some("header.Idempotency-Key"),
        );
    // The same for a lock key reused with another cart: the lock's receipt keeps a fingerprint.
    let mut other = cart();
    other["lines"][0]["quantity"] = json!(7);
    c.post(
        "/api/orders/carol-o/lock",
        Some("carol-lock"),
        &json!({"buyer": buyer("carol"), "cart": other}),
    )
    .assert_error(
        409,
        "idempotency_key_reused",
        Some("header.Idempotency-Key"),
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[test]
fn the_binary_refuses_unknown_stores_and_names_the_postgres_extension_point() {
    let bin = env!("CARGO_BIN_EXE_checkout-service");
    let run = |store: &str| {
        std::process::Command::new(bin)
            .args(["--store", store, "--listen", "127.0.0.1:0"])
            .output()
            .expect("run")
    };
    let out = run("nonsense");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected memory, sqlite"));
    let out = run("postgres://127.0.0.1/test");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL is not built into"));
}

#[test]
fn concurrent_locks_of_one_order_hold_its_coupons_once() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let price = json!({"buyer": buyer("alice"), "cart": cart()});
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let price = price.clone();
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let r = c.post("/api/orders/race/lock", Some(&format!("race-{i}")), &price);
                (r.status, r.json())
            })
        })
        .collect();
    let mut statuses: Vec<u16> = Vec::new();
    for t in threads {
        let (status, body) = t.join().expect("thread");
        if status == 409 {
            assert_eq!(body["error"]["kind"], "order_already_locked", "{body}");
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409]);
}

/// Partial refunds and acting parties over HTTP: one unit, then the rest, sum exactly to what
/// was paid; a buyer acts only on their own orders and only for their own reasons; the
/// `Acting-Party` header is parsed strictly; a refund key is bound to its units.
#[test]
fn partial_refunds_sum_to_what_was_paid_and_actors_are_checked() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let user = "carol";
    for (t, k) in [
        ("tea-15-percent", "carol-claim-1"),
        ("spend-200-save-25", "carol-claim-2"),
    ] {
        assert_eq!(claim(&mut c, user, t, k).status, 201);
    }
    let price = json!({"buyer": buyer(user), "cart": cart()});
    let locked = c.post("/api/orders/p-1/lock", Some("carol-lock-1"), &price);
    assert_eq!(locked.status, 201, "{}", locked.text());
    let paid_total = money(&locked.json()["quote"]["total_after"]);
    assert!(paid_total < Decimal::from(315));

    // The acting party is required and parsed strictly.
    c.post_raw("/api/orders/p-1/pay", Some("carol-pay-1"), b"")
        .assert_error(400, "missing_acting_party", Some("header.Acting-Party"));
    for bad in ["admin", "Merchant", "buyer:", "buyer", "system:x"] {
        let r = c.post_as("/api/orders/p-1/pay", "carol-pay-1", bad, &Value::Null);
        let body = r.assert_error(400, "invalid_acting_party", Some("header.Acting-Party"));
        assert!(
            body["error"]["reason"]
                .as_str()
                .expect("reason")
                .contains("merchant"),
            "{bad}: {body}"
        );
    }
    // A buyer never confirms their own payment.
    c.post_as(
        "/api/orders/p-1/pay",
        "carol-pay-1",
        "buyer:carol",
        &Value::Null,
    )
    .assert_error(403, "not_permitted", None);
    let pay = c.post_as("/api/orders/p-1/pay", "carol-pay-2", "system", &Value::Null);
    assert_eq!(pay.status, 200, "{}", pay.text());

    // The order record.
    let o = c.get("/api/orders/p-1");
    assert_eq!(o.status, 200, "{}", o.text());
    let o = o.json();
    assert_eq!(o["state"]["state"], "paid");
    assert_eq!(o["buyer"], user);
    assert_eq!(money(&o["quote"]["total_after"]), paid_total);
    c.get("/api/orders/nobody-placed-this")
        .assert_error(404, "not_found", None);

    let refund = "/api/orders/p-1/refund";
    let one = json!({"kind": "buyer", "units": [{"line": 0, "quantity": 1}]});
    // Another buyer, or the buyer for the merchant's reason: forbidden.
    c.post_as(refund, "carol-refund-1", "buyer:dave", &one)
        .assert_error(403, "not_permitted", None);
    c.post_as(
        refund,
        "carol-refund-1",
        "buyer:carol",
        &json!({"kind": "merchant", "units": [{"line": 0, "quantity": 1}]}),
    )
    .assert_error(403, "not_permitted", None);
    // Units that are not in the order.
    let r = c.post_as(
        refund,
        "carol-refund-x",
        "buyer:carol",
        &json!({"kind": "buyer", "units": [{"line": 0, "quantity": 4}]}),
    );
    r.assert_error(400, "invalid_refund", Some("units"));
    c.post_as(
        refund,
        "carol-refund-y",
        "buyer:carol",
        &json!({"kind": "buyer", "units": [{"line": 0, "quantity": 1}], "extra": 1}),
    )
    .assert_error(422, "invalid_body", None);

    // One oolong back.
    let r1 = c.post_as(refund, "carol-refund-1", "buyer:carol", &one);
    assert_eq!(r1.status, 200, "{}", r1.text());
    let r1 = r1.json();
    assert_eq!(r1["replayed"], false);
    assert_eq!(r1["state"]["state"], "paid");
    assert_eq!(r1["refund"]["lines"][0]["quantity"], 1);
    assert_eq!(money(&r1["refund"]["shipping"]), Decimal::ZERO);
    let first = money(&r1["refund"]["amount"]);
    assert!(first > Decimal::ZERO && first < paid_total, "{first}");
    // The same key again: the same refund, replayed; with other units: refused.
    let again = c
        .post_as(refund, "carol-refund-1", "buyer:carol", &one)
        .json();
    assert_eq!(again["replayed"], true);
    assert_eq!(money(&again["refund"]["amount"]), first);
    c.post_as(
        refund,
        "carol-refund-1",
        "buyer:carol",
        &json!({"kind": "buyer", "units": [{"line": 0, "quantity": 2}]}),
    )
    .assert_error(
        409,
        "idempotency_key_reused",
        Some("header.Idempotency-Key"),
    );

    // The same key and body from another party: a different request, refused too.
    c.post_as(refund, "carol-refund-1", "merchant", &one)
        .assert_error(
            409,
            "idempotency_key_reused",
            Some("header.Idempotency-Key"),
        );

    // The rest, by the merchant for the buyer's reason: the two sum to what was paid.
    let r2 = c.post_as(
        refund,
        "carol-refund-2",
        "merchant",
        &json!({"kind": "buyer"}),
    );
    assert_eq!(r2.status, 200, "{}", r2.text());
    let r2 = r2.json();
    assert_eq!(r2["state"]["state"], "refunded");
    let rest = money(&r2["refund"]["amount"]);
    assert_eq!(first + rest, paid_total);
    assert_eq!(money(&r2["refund"]["shipping"]), Decimal::from(12));
    let o = c.get("/api/orders/p-1").json();
    assert_eq!(o["refunds"].as_array().expect("refunds").len(), 2);
    assert_eq!(o["refunded_units"], json!([3, 1]));
    assert_eq!(o["shipping_refunded"], true);
    c.post_as(
        refund,
        "carol-refund-3",
        "merchant",
        &json!({"kind": "buyer"}),
    )
    .assert_error(409, "order_already_refunded", None);

    // Complete: the order's buyer may, another may not.
    let l2 = c.post("/api/orders/p-2/lock", Some("carol-lock-2"), &price);
    assert_eq!(l2.status, 201, "{}", l2.text());
    let p2 = c.post_as(
        "/api/orders/p-2/pay",
        "carol-pay-3",
        "merchant",
        &Value::Null,
    );
    assert_eq!(p2.status, 200, "{}", p2.text());
    c.post_as(
        "/api/orders/p-2/complete",
        "carol-done-1",
        "buyer:dave",
        &Value::Null,
    )
    .assert_error(403, "not_permitted", None);
    let done = c.post_as(
        "/api/orders/p-2/complete",
        "carol-done-2",
        "buyer:carol",
        &Value::Null,
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        c.get("/api/orders/p-2").json()["state"]["state"],
        "completed"
    );
    // A partial refund with the shipping fee, after completion, by the merchant.
    let r3 = c.post_as(
        "/api/orders/p-2/refund",
        "carol-refund-4",
        "merchant",
        &json!({"kind": "merchant", "units": [{"line": 1, "quantity": 1}], "shipping": true}),
    );
    assert_eq!(r3.status, 200, "{}", r3.text());
    let r3 = r3.json();
    assert_eq!(money(&r3["refund"]["shipping"]), Decimal::from(12));
    assert_eq!(r3["state"]["state"], "completed");
}
