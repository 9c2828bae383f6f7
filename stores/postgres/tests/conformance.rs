//! The crate's repository conformance suite on PostgreSQL: every op and condition, then the
//! concurrent claims, guards, locks, pay/cancel races and retries through the service, with
//! 8 threads sharing one store (each call on its own pooled connection). Each check gets a
//! fresh schema, so the suite may run beside others on one database.

mod common;

use coupons_postgres::PgStore;

#[test]
fn conformance_suite_passes_on_postgres() {
    let Some(url) = common::url("conformance_suite_passes_on_postgres") else {
        return;
    };
    let started = std::time::Instant::now();
    if let Err(failure) = coupons::testkit::run_all(|| PgStore::scratch(&url, 8).unwrap()) {
        panic!("{failure}");
    }
    eprintln!("conformance suite on PostgreSQL: {:?}", started.elapsed());
}
