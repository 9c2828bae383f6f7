//! A bounded loopback load test: a fixed number of requests from a few keep-alive clients,
//! reporting requests/s and latency percentiles. Figures are printed, never asserted (run with
//! `--nocapture` to see them; `--release` for meaningful numbers).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, start};
use coupons::repository::{MemoryStore, Repository};
use serde_json::json;

const CLIENTS: usize = 4;
const WALLET_REQUESTS: usize = 250; // per client
const ORDERS: usize = 25; // per client: claim, lock, pay

fn cart() -> serde_json::Value {
    json!({
        "currency": "CNY",
        "lines": [
            {"sku": "oolong", "categories": ["tea"], "unit_price": {"amount": "45", "currency": "CNY"}, "quantity": 3},
            {"sku": "teapot", "categories": ["ware"], "unit_price": {"amount": "168", "currency": "CNY"}, "quantity": 1}
        ],
        "shipping": {"amount": "12", "currency": "CNY"}
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(label: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    println!(
        "load {label}: {} requests in {:.2?} = {:.0} requests/s; p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        lat.len(),
        wall,
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or_default(),
    );
}

/// Runs `work` on `CLIENTS` threads, each with its own connection; returns every latency.
fn run(
    addr: SocketAddr,
    work: fn(&mut Client, usize, &mut Vec<Duration>),
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut lat = Vec::new();
                work(&mut c, t, &mut lat);
                lat
            })
        })
        .collect();
    let lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    (lat, started.elapsed())
}

fn wallets(c: &mut Client, _t: usize, lat: &mut Vec<Duration>) {
    let body = json!({"buyer": {"user": "alice", "channel": "web"}, "cart": cart()});
    for _ in 0..WALLET_REQUESTS {
        let t = Instant::now();
        let r = c.post("/api/wallet", None, &body);
        lat.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fn orders(c: &mut Client, t: usize, lat: &mut Vec<Duration>) {
    let user = format!("load-{t}");
    let buyer = json!({"user": user, "channel": "web"});
    for i in 0..ORDERS {
        let steps: [(String, Option<serde_json::Value>); 3] = [
            (
                "/api/claims".to_owned(),
                Some(json!({"template": "spend-100-save-10", "user": user, "channel": "web"})),
            ),
            (
                format!("/api/orders/{user}-{i}/lock"),
                Some(json!({"buyer": buyer, "cart": cart()})),
            ),
            (format!("/api/orders/{user}-{i}/pay"), None),
        ];
        for (n, (path, body)) in steps.iter().enumerate() {
            let key = format!("{user}-{i}-{n}");
            let start = Instant::now();
            let r = match body {
                Some(b) => c.post(path, Some(&key), b),
                None => c.post_as(path, &key, "system", &serde_json::Value::Null),
            };
            lat.push(start.elapsed());
            assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text());
        }
    }
}

fn load<R: Repository + 'static>(store_name: &str, store: R) {
    let (addr, _app) = start(store, true);
    let (lat, wall) = run(addr, wallets);
    report(
        &format!("{store_name} wallet quotes, {CLIENTS} clients"),
        lat,
        wall,
    );
    let (lat, wall) = run(addr, orders);
    report(
        &format!("{store_name} claim+lock+pay, {CLIENTS} clients"),
        lat,
        wall,
    );
}

#[test]
fn bounded_loopback_load_reports_throughput_and_p99() {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("load: {build} build, loopback, {CLIENTS} keep-alive clients");
    load("memory", MemoryStore::new());
    load(
        "sqlite",
        coupons_sqlite::SqliteStore::temporary().expect("sqlite"),
    );
}
