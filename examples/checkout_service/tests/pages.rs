//! The server-rendered pages: over plain HTTP, and in headless Chromium through chromedriver
//! (the WebDriver protocol, spoken with the tests' own small HTTP client).
//!
//! The browser test runs when `chromium` and `chromedriver` are on the `PATH`. Without them it
//! prints why and passes — unless `COUPONS_BROWSER_TEST=1`, when it fails (CI sets it, after
//! `apt-get install -y chromium chromium-driver`).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, start};
use coupons::repository::MemoryStore;
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

#[test]
fn campaign_page_counts_the_feed() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let html = c.get("/merchant/campaign").text();
    assert!(html.contains("<table id=\"counts\">"), "{html}");
    // Five templates, one coupon each issued to alice.
    let row = html
        .split("<tr>")
        .find(|r| r.contains("<td>tea-15-percent</td>"))
        .expect("row");
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(2)
        .map(|c| c.split('<').next().unwrap_or(""))
        .collect();
    assert_eq!(cells[1], "1", "issued: {row}");
    let filtered = c.get("/merchant/campaign?campaign=none").text();
    assert!(!filtered.contains("<td>tea-15-percent</td>"));
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
fn checkout_page_in_headless_chromium() {
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
}

#[test]
fn placing_the_order_from_the_page_locks_then_pays_it() {
    let (addr, _app) = start(MemoryStore::new(), true);
    let mut c = Client::new(addr);
    let html = c.get("/checkout/alice").text();
    // The page names the coupon in the way by its name.
    assert!(
        html.contains("cannot combine with “Spend 200, save 25”"),
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
    // The coupons are used now: the page greys them.
    let after = c.get("/checkout/alice").text();
    assert!(after.contains("already used"), "{after}");
}
