//! An HTTP checkout service over the `coupons` engine, with axum and Tokio.
//!
//! * JSON endpoints ([`api`]): claim, the wallet against a cart (usable offers, and greyed ones
//!   with typed reasons), a preview of the buyer's own selection, lock, pay, cancel, refund and
//!   the event feed. Described in `openapi.json`, served at `/openapi.json`.
//! * Server-rendered pages ([`pages`]): the buyer's checkout page and the merchant's campaign
//!   page ([`campaign`]): the library's campaign report drawn as inline SVG charts
//!   ([`charts`]) — claimed and used per day, the funnel per template, discount and sales per
//!   day, stock used, the funnel per experiment arm.
//! * Errors ([`error`]): one JSON body, `{"error": {"kind", "status", "field", "reason"}}`.
//! * Storage chosen at start ([`StoreChoice`]): in memory or SQLite; any other
//!   [`Repository`] plugs in through [`router`].
//!
//! `cargo run -p checkout-service -- --store sqlite:/tmp/shop.db --demo` serves the demo shop
//! at <http://127.0.0.1:8080/checkout/alice>.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod app;
pub mod campaign;
pub mod charts;
pub mod demo;
pub mod error;
pub mod pages;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use coupons::repository::{MemoryStore, Repository};
use coupons::service::Service;

pub use app::{App, Clock, OfferArms};
pub use error::ApiError;

/// Largest request body accepted, in bytes (a cart of a few hundred lines fits easily).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The OpenAPI description of the JSON endpoints.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The whole service for one store: JSON endpoints, pages, `/openapi.json`, a JSON 404, and the
/// body size limit.
pub fn router<R: Repository + 'static>(app: Arc<App<R>>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in route_table::<R>() {
        router = router.route(path, handler);
    }
    router
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                format!("no endpoint at {}", uri.path()),
            )
            .into_response()
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{} does not answer {method}", uri.path()),
                )
                .into_response()
            },
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}

/// Every route the service serves, as `(method, path, handler)`: the router is built from this
/// table, and the OpenAPI test compares it with `openapi.json`.
pub fn route_table<R: Repository + 'static>() -> Vec<api::Route<R>> {
    let mut all = api::routes::<R>();
    all.extend(pages::routes::<R>());
    all.push((
        "get",
        "/openapi.json",
        axum::routing::get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
    ));
    all
}

/// Where the service keeps its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// `memory`: [`MemoryStore`], gone when the process ends.
    Memory,
    /// `sqlite` (a temporary database) or `sqlite:PATH`.
    Sqlite(Option<PathBuf>),
    /// `postgres:URL` — not built in yet: see [`StoreChoice::open_and_serve`].
    Postgres(String),
}

/// A `--store` value that names no store.
#[derive(Debug, thiserror::Error)]
#[error("--store {0:?}: expected memory, sqlite, sqlite:PATH or postgres:URL")]
pub struct UnknownStore(String);

impl FromStr for StoreChoice {
    type Err = UnknownStore;
    fn from_str(s: &str) -> Result<StoreChoice, UnknownStore> {
        match s {
            "memory" => Ok(StoreChoice::Memory),
            "sqlite" => Ok(StoreChoice::Sqlite(None)),
            _ => {
                if let Some(p) = s.strip_prefix("sqlite:") {
                    Ok(StoreChoice::Sqlite(Some(PathBuf::from(p))))
                } else if s.starts_with("postgres:") || s.starts_with("postgresql:") {
                    Ok(StoreChoice::Postgres(s.to_owned()))
                } else {
                    Err(UnknownStore(s.to_owned()))
                }
            }
        }
    }
}

/// How to run the service.
#[derive(Clone, Debug)]
pub struct Options {
    /// The store.
    pub store: StoreChoice,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Seed the demo shop (templates, alice's wallet and cart).
    pub demo: bool,
}

impl StoreChoice {
    /// Opens the store and serves until Ctrl-C.
    ///
    /// Adding a store is one arm here: open it, then [`serve`] it. The PostgreSQL arm is the
    /// place for the `stores/postgres` crate (open the pool, apply its migrations, serve).
    ///
    /// # Errors
    /// The store failing to open, the address failing to bind, or a store not built in.
    pub async fn open_and_serve(options: Options) -> Result<(), Box<dyn std::error::Error>> {
        match &options.store {
            StoreChoice::Memory => serve(MemoryStore::new(), &options).await,
            StoreChoice::Sqlite(path) => {
                let store = match path {
                    Some(p) => coupons_sqlite::SqliteStore::open(p)?,
                    None => coupons_sqlite::SqliteStore::temporary()?,
                };
                serve(store, &options).await
            }
            StoreChoice::Postgres(url) => Err(format!(
                "--store {url}: PostgreSQL is not built into this example yet; \
                 add a StoreChoice::Postgres arm that opens the PostgreSQL store and calls serve"
            )
            .into()),
        }
    }
}

/// Serves `store` on `options.listen` until Ctrl-C.
///
/// # Errors
/// Seeding the demo, binding, or the server failing.
pub async fn serve<R: Repository + 'static>(
    store: R,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut app = App::new(Service::new(store), wall_clock());
    if options.demo {
        app = app
            .with_offer_arms(demo::offer_arms().map_err(|e| -> Box<dyn std::error::Error> { e })?);
    }
    let app = Arc::new(app);
    if options.demo {
        let a = Arc::clone(&app);
        tokio::task::spawn_blocking(move || demo::seed(&a, a.now()))
            .await?
            .map_err(|e| -> Box<dyn std::error::Error> { e })?;
    }
    tokio::spawn(sweep_forever(Arc::clone(&app)));
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    eprintln!(
        "checkout-service on http://{} ({:?})",
        listener.local_addr()?,
        options.store
    );
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// How often [`serve`] sweeps: expires coupons past their validity and releases unpaid orders
/// whose hold ran out.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Sweeps every [`SWEEP_EVERY`], up to 1000 records a round, until the process ends.
async fn sweep_forever<R: Repository + 'static>(app: Arc<App<R>>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        let a = Arc::clone(&app);
        match tokio::task::spawn_blocking(move || a.service.sweep(a.now(), 1000)).await {
            Ok(Ok(swept)) if !swept.is_empty() => eprintln!(
                "checkout-service: swept {} expired coupons, {} released orders",
                swept.expired.len(),
                swept.released.len()
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("checkout-service: sweep failed: {e}"),
            Err(e) => eprintln!("checkout-service: sweep failed: {e}"),
        }
    }
}

/// The wall clock.
pub fn wall_clock() -> Clock {
    Arc::new(chrono::Utc::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_flags_parse() {
        assert_eq!(
            "memory".parse::<StoreChoice>().ok(),
            Some(StoreChoice::Memory)
        );
        assert_eq!(
            "sqlite".parse::<StoreChoice>().ok(),
            Some(StoreChoice::Sqlite(None))
        );
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreChoice>().ok(),
            Some(StoreChoice::Sqlite(Some(PathBuf::from("/tmp/x.db"))))
        );
        assert!(matches!(
            "postgres://localhost/test".parse::<StoreChoice>(),
            Ok(StoreChoice::Postgres(_))
        ));
        assert!("mysql".parse::<StoreChoice>().is_err());
    }
}
