//! `gen_orders N_ORDERS N_USERS OUT.csv`: a large orders file for the end-to-end benchmark,
//! shaped like the in-memory benchmark's workload (three months from 1 January 2026; every
//! user orders once, the rest skewed toward a few heavy buyers; a handful of price points, so
//! amounts tie; a third of the orders discounted). Deterministic; never committed.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(users), Some(path)) = (
        args.get(1).and_then(|s| s.parse::<u64>().ok()),
        args.get(2).and_then(|s| s.parse::<u64>().ok()),
        args.get(3),
    ) else {
        eprintln!("usage: gen_orders N_ORDERS N_USERS OUT.csv");
        std::process::exit(2);
    };
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "user_id,ordered_at,gross,discount,paid,coupon_used")?;
    let mut state = 42u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    let start = 1_767_225_600i64; // 2026-01-01T00:00:00Z
    let span = 90 * 86_400i64;
    for i in 0..n {
        let user = if i < users {
            (i * 7_919) % users
        } else {
            let u = (next() % (1 << 20)) as f64 / (1u64 << 20) as f64;
            ((u * u) * users as f64) as u64
        };
        let at = start + (i as i64) * span / n as i64;
        let gross = [1990i64, 2990, 4990, 9900, 12800, 19900][(next() % 6) as usize]
            * (1 + (next() % 3) as i64);
        let discount = if next() % 3 == 0 {
            [500i64, 1000, 2000][(next() % 3) as usize].min(gross / 2)
        } else {
            0
        };
        let t = chrono::DateTime::from_timestamp(at, 0).unwrap_or_default();
        let paid = gross - discount;
        writeln!(
            w,
            "{user},{},{}.{:02},{}.{:02},{}.{:02},{}",
            t.format("%Y-%m-%dT%H:%M:%SZ"),
            gross / 100,
            gross % 100,
            discount / 100,
            discount % 100,
            paid / 100,
            paid % 100,
            discount > 0
        )?;
    }
    w.flush()
}
