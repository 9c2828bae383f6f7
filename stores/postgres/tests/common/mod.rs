//! Shared by the PostgreSQL suites: the connection string, or a note that the suite is skipped.

#![allow(dead_code)]

use std::io::Write;

/// The environment variable naming the test database.
pub const URL_VAR: &str = "COUPONS_POSTGRES_URL";

/// The connection string from [`URL_VAR`], or `None` after printing that `test` is skipped.
pub fn url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Straight to the process's stderr, past the test harness's capture, so that the
            // skip shows in `cargo test`'s output.
            // One write, so that parallel tests' lines do not interleave.
            let line = format!(
                "{test}: skipped, {URL_VAR} is not set (e.g. host=127.0.0.1 user=postgres dbname=test)\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}
