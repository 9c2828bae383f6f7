//! The server-rendered pages: over plain HTTP, and in headless Chromium through chromedriver
//! (the WebDriver protocol, spoken with the tests' own small HTTP client).
//!
//! The browser test runs when `chromium` and `chromedriver` are on the `PATH`. Without them it
//! prints why and passes — unless `COUPONS_BROWSER_TEST=1`, when it fails (CI sets it, after
//! `apt-get install -y chromium chromium-driver`).

mod common;

use coupons::lifecycle::Actor;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use checkout_service::{App, Clock};
use chrono::{DateTime, Duration as Days, FixedOffset, TimeZone, Utc};
use common::{Client, start};
use coupons::cart::{Buyer, Cart, CartLine};
use coupons::id::{CampaignId, Channel, IdempotencyKey, OrderId, Sku, TemplateId, UserId};
use coupons::lifecycle::{Campaign, ClaimMode, ClaimRequest};
use coupons::money::{Currency, Money};
use coupons::repository::MemoryStore;
use coupons::rule::Template;
use coupons::service::{LockRequest, Service};
use rust_decimal::Decimal;
use serde_json::{Value, json};

#[test]
fn checkout_page_preselects_the_best_and_greys_the_rest_with_reasons() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let page = c.get("/checkout/alice");
    assert_eq!(page.status, 200);
    let html = page.text();
    // Greyed, disabled, with their reasons.
    for (template, reason) in [
        ("spend-500-save-60", "spend 197"),
        ("usd-5-off", "for USD orders"),
    ] {
        let li = html
            .split("<li ")
            .find(|li| li.contains(&format!("data-template=\"{template}\"")))
            .unwrap_or_else(|| panic!("{template} missing"));
        assert!(li.starts_with("class=\"greyed\""), "{li}");
        assert!(li.contains("disabled"), "{li}");
        assert!(li.contains(reason), "{reason} not in {li}");
    }
    let tea = html
        .split("<li ")
        .find(|li| li.contains("data-template=\"tea-15-percent\""))
        .expect("tea");
    assert!(
        tea.contains(" checked"),
        "best combination preselected: {tea}"
    );
    let total = |h: &str| {
        h.split("<span id=\"total\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .expect("total")
            .to_owned()
    };
    let best = total(&html);
    // Choosing nothing: the total is the undiscounted one.
    let none = c.get("/checkout/alice?chosen=1").text();
    assert_eq!(total(&none), "315.00 CNY");
    assert_ne!(best, total(&none));
    // An unknown cart.
    assert_eq!(c.get("/checkout/nobody").status, 404);
}

// ---------------------------------------------------------------------------- the campaign page

/// One bar of an inline SVG chart, as the page wrote it.
#[derive(Debug, Clone)]
struct Bar {
    series: String,
    category: String,
    value: String,
    limit: Option<String>,
    width: f64,
    height: f64,
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The `<svg id="{id}">` element of a page.
fn chart<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no chart {id}"));
    let start = html[..at].rfind("<svg").expect("<svg");
    let end = html[at..].find("</svg>").expect("</svg>") + at + 6;
    &html[start..end]
}

/// The bars of a chart: every `<rect>` with a `data-series`.
fn bars(svg: &str) -> Vec<Bar> {
    svg.split("<rect ")
        .skip(1)
        .filter_map(|r| {
            let tag = &r[..r.find('>')?];
            Some(Bar {
                series: attr(tag, "data-series")?,
                category: attr(tag, "data-category")?,
                value: attr(tag, "data-value")?,
                limit: attr(tag, "data-limit"),
                width: attr(tag, "width")?.parse().ok()?,
                height: attr(tag, "height")?.parse().ok()?,
            })
        })
        .collect()
}

/// `series → category → value` of a chart.
fn figures(svg: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for b in bars(svg) {
        out.entry(b.series).or_default().insert(b.category, b.value);
    }
    out
}

/// Bars are drawn to scale: every height is the same multiple of its value, and the visible
/// label above each bar is its value.
fn assert_to_scale(svg: &str) {
    let bars = bars(svg);
    assert!(!bars.is_empty(), "no bars in {svg}");
    let value = |b: &Bar| b.value.parse::<f64>().expect("numeric value");
    let tallest = bars
        .iter()
        .max_by(|a, b| value(a).total_cmp(&value(b)))
        .expect("a bar");
    let per_unit = if value(tallest) > 0.0 {
        tallest.height / value(tallest)
    } else {
        0.0
    };
    for b in &bars {
        assert!(
            (b.height - per_unit * value(b)).abs() <= 0.011,
            "{b:?} not to scale ({per_unit} per unit)"
        );
        assert!(
            svg.contains(&format!("class=\"value\">{}<", b.value)),
            "no label {}",
            b.value
        );
    }
}

fn text_of<'a>(html: &'a str, marker: &str) -> &'a str {
    html.split(marker)
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("{marker} not on the page"))
}

fn yuan(n: i64) -> Money {
    Money::from_minor(n * 100, Currency::CNY)
}

/// A shop whose history the test wrote itself, at known times, so that every figure on the
/// campaign page is known: two templates (one with a stock of 10, offered in campaign `c1`),
/// offers, claims, three paid coupon orders, and a plain order.
#[test]
fn campaign_page_charts_the_numbers_of_the_feed() {
    // 12:00 on 2026-06-10 in UTC+08:00, the report's offset.
    let now = Utc.with_ymd_and_hms(2026, 6, 10, 4, 0, 0).unwrap();
    let clock: Clock = Arc::new(move || now);
    let app = Arc::new(App::new(Service::new(MemoryStore::new()), clock));
    let s = &app.service;
    let start = now - Days::days(5);
    for json in [
        r#"{"id": "t-200", "name": "Spend 200, save 25", "currency": "CNY",
            "benefit": {"kind": "threshold", "tiers": [
              {"spend": {"amount": "200", "currency": "CNY"}, "save": {"amount": "25", "currency": "CNY"}}]},
            "limits": {"total_stock": 10},
            "validity": {"kind": "relative", "days": 7}}"#,
        r#"{"id": "t-100", "name": "Spend 100, save 10", "currency": "CNY",
            "benefit": {"kind": "threshold", "tiers": [
              {"spend": {"amount": "100", "currency": "CNY"}, "save": {"amount": "10", "currency": "CNY"}}]},
            "validity": {"kind": "relative", "days": 7}}"#,
    ] {
        let t: Template = serde_json::from_str(json).expect("template");
        let id = t.id().clone();
        s.create_template(t, start).expect("create");
        s.submit_template(&id, start).expect("submit");
        s.approve_template(&id, start).expect("approve");
        s.activate_template(&id, start).expect("activate");
    }
    let (t200, t100) = (
        TemplateId::new("t-200").unwrap(),
        TemplateId::new("t-100").unwrap(),
    );
    let c1 = CampaignId::new("c1").unwrap();
    let campaign = Campaign::builder(c1.clone(), "Summer")
        .window(start, now + Days::days(5))
        .offering(t200.clone())
        .build()
        .expect("campaign");
    s.create_campaign(campaign, start).expect("create campaign");
    s.set_campaign_online(&c1, true, start).expect("online");
    let web = Channel::new("web").unwrap();
    let user = |u: &str| UserId::new(u).unwrap();
    let offer = |t: &TemplateId, u: &str, c: Option<&CampaignId>, at| {
        s.record_offer(t, &user(u), &web, c, at).expect("offer");
    };
    let claim = |t: &TemplateId, u: &str, c: Option<&CampaignId>, at| {
        let mut req = ClaimRequest::new(
            t.clone(),
            user(u),
            web.clone(),
            ClaimMode::Click,
            IdempotencyKey::new(format!("claim-{u}-{t}")).unwrap(),
        );
        if let Some(c) = c {
            req = req.in_campaign(c.clone());
        }
        s.claim(&req, at).expect("claim");
    };
    let order = |u: &str, n: &str, lines: Vec<CartLine>, at| {
        let cart = Cart::new(Currency::CNY, lines, yuan(0)).expect("cart");
        let buyer = Buyer::new(user(u), web.clone());
        let id = OrderId::new(n).unwrap();
        let key = IdempotencyKey::new(format!("lock-{n}")).unwrap();
        s.quote_and_lock(&LockRequest::new(&id, &cart, &buyer, &key), at)
            .expect("lock");
        s.pay(
            &id,
            &Actor::System,
            &IdempotencyKey::new(format!("pay-{n}")).unwrap(),
            at,
        )
        .expect("pay");
    };
    let teapot = |n: u32| CartLine::new(Sku::new("teapot").unwrap(), yuan(100), n);
    let day_a = now - Days::days(2); // 2026-06-08, local
    let day_b = now - Days::days(1); // 2026-06-09
    // Day A: t-200 offered to four in c1, claimed by three; u1 pays 300 with it (saves 25).
    for u in ["u1", "u2", "u3", "u4"] {
        offer(&t200, u, Some(&c1), day_a);
    }
    for u in ["u1", "u2", "u3"] {
        claim(&t200, u, Some(&c1), day_a);
    }
    order("u1", "o-1", vec![teapot(3)], day_a + Days::hours(1));
    // Day B: t-100 offered to two, claimed by u5, who pays 200 with it (saves 10; t-200 is
    // not theirs); u2 pays 200 with t-200 (saves 25); a plain order of 100.
    offer(&t100, "u5", None, day_b);
    offer(&t100, "u6", None, day_b);
    claim(&t100, "u5", None, day_b);
    order("u5", "o-2", vec![teapot(2)], day_b + Days::hours(1));
    order("u2", "o-3", vec![teapot(2)], day_b + Days::hours(2));
    order("u7", "o-4", vec![teapot(1)], day_b + Days::hours(3));

    let addr = common::serve(Arc::clone(&app));
    let mut c = Client::new(addr);
    let page = c.get("/merchant/campaign");
    assert_eq!(page.status, 200);
    let html = page.text();

    // Claimed and used per day: from the first day with events to today, zeros included.
    let per_day = chart(&html, "chart-claimed-used");
    assert_to_scale(per_day);
    let f = figures(per_day);
    let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    assert_eq!(
        f["claimed"],
        expect(&[
            ("2026-06-08", "3"),
            ("2026-06-09", "1"),
            ("2026-06-10", "0")
        ])
    );
    assert_eq!(
        f["used"],
        expect(&[
            ("2026-06-08", "1"),
            ("2026-06-09", "2"),
            ("2026-06-10", "0")
        ])
    );
    // Discount and coupon-driven sales per day, exact to the fen.
    let money = chart(&html, "chart-money");
    assert_to_scale(money);
    let f = figures(money);
    assert_eq!(
        f["discount"],
        expect(&[
            ("2026-06-08", "25.00"),
            ("2026-06-09", "35.00"),
            ("2026-06-10", "0.00")
        ])
    );
    assert_eq!(
        f["coupon sales"],
        expect(&[
            ("2026-06-08", "275.00"),
            ("2026-06-09", "365.00"),
            ("2026-06-10", "0.00")
        ])
    );
    // The funnel per template, with its rates under the counts.
    let funnel = chart(&html, "chart-funnel");
    assert_to_scale(funnel);
    let f = figures(funnel);
    let names = |a: &str, b: &str| expect(&[("Spend 100, save 10", a), ("Spend 200, save 25", b)]);
    assert_eq!(f["offered"], names("2", "4"));
    assert_eq!(f["claimed"], names("1", "3"));
    assert_eq!(f["used"], names("1", "2"));
    for rate in ["50.0%", "75.0%", "100.0%", "66.7%"] {
        assert!(
            funnel.contains(&format!("class=\"note\">{rate}<")),
            "{rate}"
        );
    }
    // No experiment, no coupon with an arm: no chart by arm.
    assert!(!html.contains("chart-funnel-arm"));
    // Stock: t-200 issued 3 of 10; t-100 has none.
    let stock = bars(chart(&html, "chart-stock"));
    assert_eq!(stock.len(), 1, "{stock:?}");
    let (b, track) = (&stock[0], 300.0);
    assert_eq!(
        (b.category.as_str(), b.value.as_str()),
        ("Spend 200, save 25", "3")
    );
    assert_eq!(b.limit.as_deref(), Some("10"));
    assert!((b.width - track * 0.3).abs() < 0.01, "{b:?}");
    assert!(html.contains(">3 / 10 (30.0%)<"));
    assert!(text_of(&html, "<p id=\"unlimited\">").contains("Spend 100, save 10"));
    // The totals.
    for (metric, value) in [
        ("offered", "6"),
        ("claimed", "4"),
        ("claim_rate", "66.7%"),
        ("used", "3"),
        ("usage_rate", "75.0%"),
        ("discount", "60.00 CNY"),
        ("coupon_sales", "640.00 CNY"),
        ("coupon_orders", "3"),
        ("roi", "10.67"),      // 640 ÷ 60 = 10.666…
        ("aov", "213.33 CNY"), // 640 ÷ 3 = 213.333…
        ("refunded", "0"),
    ] {
        assert_eq!(
            text_of(&html, &format!("data-metric=\"{metric}\">")),
            value,
            "{metric}"
        );
    }
    // The table's row for t-200.
    let row = html
        .split("<tr data-template=\"t-200\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .expect("t-200 row");
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap_or(""))
        .collect();
    assert_eq!(
        &cells[..10],
        &[
            "Spend 200, save 25",
            "4",
            "3",
            "75.0%",
            "2",
            "66.7%",
            "50.00",
            "450.00",
            "2",
            "9.00"
        ]
    );

    // One campaign: only its groups (t-200's, claimed in c1).
    let only = c.get("/merchant/campaign?campaign=c1").text();
    assert!(only.contains("<h1>Campaign Summer (c1)</h1>"), "{only}");
    let f = figures(chart(&only, "chart-funnel"));
    assert_eq!(f["offered"], expect(&[("Spend 200, save 25", "4")]));
    assert_eq!(f["used"], expect(&[("Spend 200, save 25", "2")]));
    let f = figures(chart(&only, "chart-claimed-used"));
    assert_eq!(f["used"]["2026-06-09"], "1");
    assert_eq!(text_of(&only, "data-metric=\"discount\">"), "50.00 CNY");
    let none = c.get("/merchant/campaign?campaign=nothing").text();
    assert_eq!(text_of(&none, "data-metric=\"claimed\">"), "0");

    // Advanced, not re-read: a newer claim shows on the next page, counted once.
    claim(&t100, "u6", None, now);
    let later = c.get("/merchant/campaign").text();
    assert_eq!(
        figures(chart(&later, "chart-claimed-used"))["claimed"]["2026-06-10"],
        "1"
    );
    assert_eq!(text_of(&later, "data-metric=\"claimed\">"), "5");
    let again = c.get("/merchant/campaign").text();
    assert_eq!(text_of(&again, "data-metric=\"claimed\">"), "5");
}

/// The demo's week, charted: each figure equals a count of the JSON event feed.
#[test]
fn campaign_page_on_the_demo_agrees_with_the_event_feed() {
    let (addr, app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let html = c.get("/merchant/campaign").text();
    // The feed, counted by the test: claims and uses per local day, savings per day, and the
    // funnel per template.
    let east8 = FixedOffset::east_opt(8 * 3600).unwrap();
    let mut claimed: BTreeMap<String, u64> = BTreeMap::new();
    let mut used: BTreeMap<String, u64> = BTreeMap::new();
    let mut saved: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut funnel: BTreeMap<(String, &str), u64> = BTreeMap::new();
    // Per arm: offers in the arm the experiment assigns the shopper, coupons in the arm they
    // record.
    let experiment = checkout_service::demo::experiment().expect("experiment");
    let mut arms: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = c
            .get(&format!("/api/events?after={after}&limit=1000"))
            .json();
        let events = page["events"].as_array().expect("events").clone();
        if events.is_empty() {
            break;
        }
        after = page["next"].as_u64().expect("next");
        for e in &events {
            let at: DateTime<Utc> = e["event"]["at"]
                .as_str()
                .expect("at")
                .parse()
                .expect("time");
            let day = at.with_timezone(&east8).date_naive().to_string();
            let k = &e["event"]["kind"];
            match k["type"].as_str().expect("type") {
                "offered" => {
                    let user = UserId::new(k["user"].as_str().expect("user")).unwrap();
                    let arm = experiment.assign(&user).name().as_str().to_owned();
                    *arms.entry((arm, "offered")).or_default() += 1;
                    *funnel
                        .entry((k["template"].as_str().expect("t").to_owned(), "offered"))
                        .or_default() += 1;
                }
                "issued" => {
                    if let Some(arm) = k["coupon"]["attributes"]["arm"].as_str() {
                        *arms.entry((arm.to_owned(), "claimed")).or_default() += 1;
                    }
                    *claimed.entry(day).or_default() += 1;
                    *funnel
                        .entry((
                            k["coupon"]["template"].as_str().expect("t").to_owned(),
                            "claimed",
                        ))
                        .or_default() += 1;
                }
                "redeemed" => {
                    if let Some(arm) = k["coupon"]["attributes"]["arm"].as_str() {
                        *arms.entry((arm.to_owned(), "used")).or_default() += 1;
                    }
                    *used.entry(day.clone()).or_default() += 1;
                    *saved.entry(day).or_default() +=
                        Decimal::from_str(k["saving"]["amount"].as_str().expect("saving"))
                            .expect("decimal");
                    *funnel
                        .entry((
                            k["coupon"]["template"].as_str().expect("t").to_owned(),
                            "used",
                        ))
                        .or_default() += 1;
                }
                _ => {}
            }
        }
    }
    assert!(claimed.len() >= 7, "a week of claims: {claimed:?}");
    let per_day = figures(chart(&html, "chart-claimed-used"));
    for (day, n) in &claimed {
        assert_eq!(per_day["claimed"][day], n.to_string(), "claimed on {day}");
    }
    for (day, n) in &used {
        assert_eq!(per_day["used"][day], n.to_string(), "used on {day}");
    }
    let drawn_days: u64 = per_day["claimed"]
        .values()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(drawn_days, claimed.values().sum::<u64>());
    let money = figures(chart(&html, "chart-money"));
    for (day, d) in &saved {
        assert_eq!(
            Decimal::from_str(&money["discount"][day]).unwrap(),
            *d,
            "discount on {day}"
        );
    }
    let names = checkout_service::pages::names(&app).expect("names");
    let drawn = figures(chart(&html, "chart-funnel"));
    for ((template, step), n) in &funnel {
        let name = &names[&TemplateId::new(template).unwrap()];
        assert_eq!(drawn[*step][name], n.to_string(), "{template} {step}");
    }
    // Stock used is the store's counter: every coupon issued of the template.
    let stock = bars(chart(&html, "chart-stock"));
    let s200 = stock
        .iter()
        .find(|b| b.category == "Spend 200, save 25")
        .expect("stock bar");
    assert_eq!(
        s200.value,
        funnel[&("spend-200-save-25".to_owned(), "claimed")].to_string()
    );
    assert_eq!(s200.limit.as_deref(), Some("100"));
    // The experiment's arms: all offers of the campaign's two templates, and the coupons
    // claimed in it, counted in their arm.
    let drawn = figures(chart(&html, "chart-funnel-arm"));
    assert_eq!(drawn["offered"].len(), 2, "{drawn:?}");
    for ((arm, step), n) in &arms {
        assert_eq!(drawn[*step][arm], n.to_string(), "arm {arm} {step}");
    }
    let offers = |m: &BTreeMap<(String, &str), u64>| -> u64 {
        m.iter()
            .filter(|((_, step), _)| *step == "offered")
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(offers(&arms), offers(&funnel));
    // The demo campaign's link, and its page.
    assert!(html.contains("href=\"/merchant/campaign?campaign=autumn-tea\""));
    let one = c.get("/merchant/campaign?campaign=autumn-tea").text();
    assert!(one.contains("Autumn tea festival"), "{one}");
    let f = figures(chart(&one, "chart-funnel"));
    assert_eq!(f["offered"].len(), 2, "the campaign's two templates: {f:?}");
}

// ---------------------------------------------------------------------------- the browser

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

struct Driver {
    child: Child,
    client: Client,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self
            .client
            .send("DELETE", &format!("/session/{}", self.session), &[], b"");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(chromedriver: &PathBuf, chromium: &PathBuf) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut client = Client::new(addr);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=900,1100"]
            }
        }}});
        let r = client.post("/session", None, &caps);
        let v = r.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Driver {
            child,
            client,
            session,
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let r = match body {
            Some(b) => self.client.post(&path, None, &b),
            None => self.client.send(method, &path, &[], b""),
        };
        let v = r.json();
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn goto(&mut self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    fn find(&mut self, css: &str) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let r = self
            .client
            .post(&path, None, &json!({"using": "css selector", "value": css}));
        if r.status != 200 {
            return None;
        }
        r.json()["value"][ELEMENT].as_str().map(str::to_owned)
    }

    fn text(&mut self, css: &str) -> Option<String> {
        let id = self.find(css)?;
        let path = format!("/session/{}/element/{id}/text", self.session);
        let r = self.client.get(&path);
        (r.status == 200).then(|| r.json()["value"].as_str().unwrap_or("").to_owned())
    }

    fn element_flag(&mut self, css: &str, what: &str) -> bool {
        let id = self.find(css).unwrap_or_else(|| panic!("{css} not found"));
        self.call("GET", &format!("/element/{id}/{what}"), None)
            .as_bool()
            .expect("bool")
    }

    fn click(&mut self, css: &str) {
        let id = self.find(css).unwrap_or_else(|| panic!("{css} not found"));
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Waits until `#total` reads something other than `before`.
    fn total_after_change(&mut self, before: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(t) = self.text("#total") {
                if t != before {
                    return t;
                }
            }
            assert!(Instant::now() < deadline, "the total stayed {before}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` in the page and returns its value.
    fn script(&mut self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    fn screenshot(&mut self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None);
        base64(v.as_str().expect("base64"))
    }
}

fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn checkout_and_campaign_pages_in_headless_chromium() {
    let required = std::env::var("COUPONS_BROWSER_TEST").is_ok_and(|v| v == "1");
    let found = (
        on_path(&["chromedriver"]),
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
    );
    let (Some(driver), Some(browser)) = found else {
        assert!(
            !required,
            "COUPONS_BROWSER_TEST=1 but chromium or chromedriver is not on PATH \
             (apt-get install -y chromium chromium-driver)"
        );
        println!(
            "skipped: chromium and chromedriver not found (apt-get install -y chromium \
             chromium-driver; COUPONS_BROWSER_TEST=1 makes this a failure)"
        );
        return;
    };
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut d = Driver::start(&driver, &browser);
    d.goto(&format!("http://{addr}/checkout/alice"));
    let tea = "li[data-template=\"tea-15-percent\"] input";
    let Some(best) = d.text("#total") else {
        let src = d.call("GET", "/source", None);
        panic!("no #total on the page: {src}");
    };
    assert!(
        d.element_flag(tea, "selected"),
        "best combination preselected"
    );
    // Untick the tea coupon: the total goes up by its saving.
    d.click(tea);
    let without = d.total_after_change(&best);
    assert!(!d.element_flag(tea, "selected"));
    assert!(d.element_flag(tea, "enabled"), "still selectable");
    // Tick it again: back to the best total.
    d.click(tea);
    let again = d.total_after_change(&without);
    assert_eq!(again, best);
    // A greyed coupon shows why, and cannot be ticked.
    let greyed = "li[data-template=\"spend-500-save-60\"]";
    let reason = d.text(&format!("{greyed} .reason")).expect("greyed reason");
    assert!(reason.contains("spend 197"), "{reason}");
    assert!(!d.element_flag(&format!("{greyed} input"), "enabled"));
    let png = d.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("checkout-page.png");
    std::fs::write(&out, &png).expect("write screenshot");
    println!(
        "browser: best {best}, without tea {without}; greyed reason {reason:?}; screenshot {}",
        out.display()
    );

    // The campaign page: the browser lays the inline SVG charts out as graphics (each has a
    // size, and its bars are drawn in proportion to the figures they carry).
    d.goto(&format!("http://{addr}/merchant/campaign"));
    let charts = d.script(
        "return Array.from(document.querySelectorAll('svg.chart')).map(function (s) {\
           var r = s.getBoundingClientRect();\
           var bars = Array.from(s.querySelectorAll('rect[data-series]')).map(function (b) {\
             return [b.getAttribute('data-series'), b.getAttribute('data-category'),\
                     b.getAttribute('data-value'), b.getBBox().height, b.getBBox().width];\
           });\
           return {id: s.id, width: r.width, height: r.height, bars: bars};\
         });",
    );
    let charts = charts.as_array().expect("charts");
    let ids: Vec<&str> = charts
        .iter()
        .map(|c| c["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        [
            "chart-claimed-used",
            "chart-money",
            "chart-funnel",
            "chart-stock",
            "chart-funnel-arm"
        ]
    );
    for c in charts {
        let (w, h) = (
            c["width"].as_f64().unwrap_or(0.0),
            c["height"].as_f64().unwrap_or(0.0),
        );
        assert!(w > 300.0 && h > 50.0, "{} laid out at {w}×{h}", c["id"]);
    }
    // Claims per day as the browser drew them: heights in proportion to the values.
    let per_day = &charts[0]["bars"];
    let claimed: Vec<(f64, f64)> = per_day
        .as_array()
        .expect("bars")
        .iter()
        .filter(|b| b[0] == "claimed")
        .map(|b| {
            let v: f64 = b[2].as_str().and_then(|v| v.parse().ok()).expect("value");
            (v, b[3].as_f64().expect("height"))
        })
        .collect();
    assert!(claimed.len() >= 7, "{claimed:?}");
    let (top, top_h) = claimed
        .iter()
        .copied()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .expect("a bar");
    assert!(top > 0.0 && top_h > 0.0);
    for (v, h) in &claimed {
        assert!(
            (h - top_h * v / top).abs() < 0.05,
            "{v} drawn {h} high, {top} drawn {top_h}"
        );
    }
    let stock = d.text("#chart-stock .value").expect("stock label");
    assert!(stock.contains(" / 100 ("), "{stock}");
    // The whole page in one picture.
    d.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 900, "height": 2700})),
    );
    let png = d.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("campaign-page.png");
    std::fs::write(&out, &png).expect("write screenshot");
    println!(
        "browser: campaign page charts {ids:?}, stock {stock:?}; screenshot {}",
        out.display()
    );
}

#[test]
fn placing_the_order_from_the_page_locks_then_pays_it() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let html = c.get("/checkout/alice").text();
    // The page names the coupon in the way by its name.
    assert!(
        html.contains("cannot combine with &quot;Spend 200, save 25&quot;"),
        "{html}"
    );
    let form = html.split("<form id=\"place\"").nth(1).expect("order form");
    let mut fields = Vec::new();
    for input in form.split("<input ").skip(1) {
        let attr = |a: &str| {
            input
                .split(&format!("{a}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("attribute")
                .to_owned()
        };
        fields.push(format!(
            "{}={}",
            attr("name"),
            attr("value").replace(':', "%3A")
        ));
    }
    let body = fields.join("&");
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let placed = c.send("POST", "/checkout/alice/order", &form_type, body.as_bytes());
    assert_eq!(placed.status, 200, "{}", placed.text());
    let placed = placed.text();
    assert!(placed.contains("271.42 CNY"), "{placed}");
    // Submitting the same form again repeats the first outcome.
    let again = c.send("POST", "/checkout/alice/order", &form_type, body.as_bytes());
    assert_eq!(again.status, 200, "{}", again.text());
    let pay_action = placed
        .split("action=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("pay form")
        .to_owned();
    let pay_key = placed
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("pay key")
        .to_owned();
    let paid = c.send(
        "POST",
        &pay_action,
        &form_type,
        format!("key={pay_key}").as_bytes(),
    );
    assert_eq!(paid.status, 200, "{}", paid.text());
    assert!(paid.text().contains("2 coupon(s) used"), "{}", paid.text());
    // The coupons are used now: the wallet lists live coupons only, so they are gone.
    let after = c.get("/checkout/alice").text();
    assert!(
        !after.contains("demo-alice-spend-200-save-25")
            && !after.contains("demo-alice-tea-15-percent"),
        "{after}"
    );

    // The order page: its lines, no refunds yet, a form to refund units as the buyer.
    let paid = paid.text();
    let link = paid
        .split("id=\"order-link\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("order link")
        .to_owned();
    let page = c.get(&link);
    assert_eq!(page.status, 200, "{}", page.text());
    let page = page.text();
    assert!(page.contains("id=\"no-refunds\""), "{page}");
    // Another buyer's path to the same order: as if it did not exist.
    let other = link.replacen("/checkout/alice/", "/checkout/bob/", 1);
    assert_eq!(c.get(&other).status, 404);
    let refund = |c: &mut Client, page: &str, pick: &dyn Fn(usize, u32) -> u32, ship: bool| {
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("refund form")
            .to_owned();
        let key = page
            .split("name=\"key\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("refund key")
            .to_owned();
        let mut body = format!("key={key}");
        for (i, input) in page.split("type=\"number\" name=\"q").skip(1).enumerate() {
            let max: u32 = input
                .split("max=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse().ok())
                .expect("max");
            body.push_str(&format!("&q{i}={}", pick(i, max)));
        }
        if ship {
            body.push_str("&shipping=1");
        }
        let r = c.send("POST", &action, &form_type, body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    };
    // One unit of the first line, then everything left with the shipping fee.
    let after_one = refund(&mut c, &page, &|i, _| u32::from(i == 0), false);
    assert!(after_one.contains("id=\"refunded\""), "{after_one}");
    assert_eq!(text_of(&after_one, "id=\"state\">"), "paid");
    let done = refund(&mut c, &after_one, &|_, max| max, true);
    assert_eq!(text_of(&done, "id=\"state\">"), "refunded");
    let paid_total =
        Decimal::from_str(text_of(&done, "id=\"paid-total\">").trim_end_matches(" CNY"))
            .expect("paid total");
    let refunded: Decimal = done
        .split("<td class=\"amount\">")
        .skip(1)
        .map(|s| Decimal::from_str(s.split('<').next().expect("amount")).expect("decimal"))
        .sum();
    assert_eq!(done.matches("<td class=\"amount\">").count(), 2, "{done}");
    assert_eq!(refunded, paid_total);
}
