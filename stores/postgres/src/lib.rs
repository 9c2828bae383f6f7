//! [`PgStore`]: the [`Repository`] trait on PostgreSQL, for many app servers sharing one
//! database.
//!
//! Every record is kept as `jsonb` (the crate's serde form, which validates on the way back)
//! next to the columns that are queried: a coupon's owner, order, state, validity end, hold end
//! and due time (from the crate's own `CouponState::name`, `CouponState::order` and
//! `Coupon::due_at`), and an order record's buyer, state and last transition, with indexes for
//! the wallet, order and due queries. Instants are `timestamptz`, which holds the microseconds
//! the crate passes exactly; the queried ones (due times, hold deadlines) keep any nanoseconds
//! below that in a column beside them, so every instant compares exactly. Text keys use the `"C"` collation, so `ORDER BY id` is byte order
//! whatever the database's locale. The schema ships as SQL files applied by [`migrate`], which
//! the application calls (idempotent; concurrent callers queue on an advisory lock).
//!
//! ```no_run
//! use coupons::service::Service;
//! use coupons_postgres::{Options, PgStore};
//!
//! let store = PgStore::connect("host=127.0.0.1 user=postgres dbname=shop", Options::default())?;
//! store.migrate()?; // once at start-up: applies the migrations the database lacks
//! let service = Service::new(store);
//! # Ok::<(), coupons_postgres::StoreError>(())
//! ```
//!
//! [`Repository::commit`] is one `READ COMMITTED` transaction in which every op is one
//! conditional statement:
//!
//! | op                              | statement                                                        | conflict when |
//! |---------------------------------|------------------------------------------------------------------|---------------|
//! | `Put*` with [`Expect::Absent`]  | `INSERT … ON CONFLICT (id) DO NOTHING`                            | no row inserted |
//! | `Put*` with [`Expect::Version`] | `UPDATE … SET version = version + 1 WHERE id = $1 AND version = $n` | no row updated |
//! | `Count`                         | `INSERT … ON CONFLICT (key) DO UPDATE SET value = value + $2 WHERE value BETWEEN $3 AND $4` | no row written |
//! | `CountWindow`                   | `pg_advisory_xact_lock` on the guard and subject, then one statement that sums the window and adds to the bucket only if the sum stays within the limit | the sum would pass the limit |
//! | `InsertReceipt`                 | `INSERT … ON CONFLICT (key) DO NOTHING`                           | no row inserted |
//! | `Hold`                          | upsert or delete of the order's deadline                          | never |
//! | `Emit`                          | collected, then appended by one statement sent with the `COMMIT` | never |
//!
//! Counter ops run after the batch's other ops (in their own order), just before the events
//! and the commit: a counter such as a template's stock is the row every concurrent batch
//! waits for, and a row is locked from its write to the commit. The first failed condition (in
//! the batch's order: after a record's conflict the counters before it are still checked)
//! rolls the transaction back and returns [`Commit::Conflict`] with its index. A counter's
//! condition (`value + delta` within `0..=limit`) is turned in Rust into bounds on the stored
//! value, so SQL never does arithmetic that could overflow.
//!
//! # Why `READ COMMITTED` is enough
//!
//! Every condition is checked by the statement that writes, on the row it writes. Under
//! `READ COMMITTED` an `UPDATE … WHERE version = $n` that meets a row being changed by another
//! transaction waits for it, then evaluates its `WHERE` again on the row's newest committed
//! version; `INSERT … ON CONFLICT` waits for a concurrent inserter of the same key and then sees
//! its row. So each condition is decided against the latest committed state and holds, under the
//! row lock, until the batch commits: two batches that read the same version cannot both
//! write it, and a counter can never pass its limit. The one condition over several rows, a
//! guard's window (a sum of buckets), is serialised per guard and subject by a transaction-scoped
//! advisory lock taken before the sum is read (the sum's statement starts after the lock is
//! granted, so it sees every earlier holder's commit). `SERIALIZABLE` would add predicate
//! tracking and retries for no condition that needs it. Deadlocks between batches that lock
//! rows in different orders are detected by PostgreSQL; the batch is then rolled back whole
//! and tried again (up to [`Options::retries`] times).
//!
//! # Event sequences
//!
//! [`Op::Emit`] events are appended by the batch's last statement, which takes the next numbers
//! from the single row of `event_sequence` (`UPDATE … SET last = last + n RETURNING last`).
//! That row stays locked until the batch commits, so the next batch to append waits for the
//! commit before it draws its numbers: sequences become visible in increasing order, a reader
//! never sees a later sequence before an earlier one, and a batch that rolls back gives its
//! numbers back (no gap). Conditions are all checked before the row is locked, and the append
//! travels with the `COMMIT` in one round trip, so the lock is held for little more than the
//! commit's own flush. This orders every event-writing batch behind the previous one's commit
//! (about one such commit per WAL flush): the price of a gapless feed in commit order.
//!
//! # Connections
//!
//! Each call checks a connection out of a small pool of its own (a mutex over idle clients and
//! a condition variable bounding how many are open, [`Options::max_connections`]); each pooled
//! connection keeps its prepared statements. A connection that broke is dropped, not returned.
//! Decoded templates are cached by `(id, version)`: a claim reads its template every time, and
//! decoding one re-validates every rule.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use coupons::id::{CampaignId, CouponId, OrderId, TemplateId, UserId};
use coupons::lifecycle::{Campaign, Coupon, CouponState, Order, TemplateRecord};
use coupons::repository::{
    Batch, Commit, CounterKey, Expect, Logged, Op, Receipt, ReceiptKey, Repository, Sequence,
    TrimEvents, Version, Versioned,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

/// The schema migrations, in order: `(version, name, SQL)`.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "schema", include_str!("../migrations/0001_schema.sql")),
    (2, "orders", include_str!("../migrations/0002_orders.sql")),
];

/// The advisory lock key class of this crate (`pg_advisory_xact_lock(class, key)`).
const LOCK_CLASS: i32 = 0x636f_7570; // "coup"
/// The advisory lock key of [`migrate`] within [`LOCK_CLASS`].
const MIGRATION_LOCK: i32 = 0;

/// Why a [`PgStore`] call failed. Conflicts are not errors: they are [`Commit::Conflict`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// PostgreSQL failed (connection, I/O, a statement's error…).
    #[error("postgres failed: {0}")]
    Postgres(#[from] postgres::Error),
    /// A record could not be written as JSON, or a stored one could not be read back (or no
    /// longer passes validation).
    #[error("record {key:?} in {table} is not valid JSON for its type: {source}")]
    Json {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A stored number is outside its range (a negative version or counter).
    #[error("record {key:?} in {table} holds {value} in {column}, which is out of range")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The column.
        column: &'static str,
        /// The stored value.
        value: i64,
    },
    /// The connection string could not be parsed.
    #[error("the connection string is not valid: {0}")]
    Config(postgres::Error),
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// Its name.
        name: &'static str,
        /// PostgreSQL's error.
        source: postgres::Error,
    },
    /// The database holds a migration this build does not know (a newer build migrated it).
    #[error("the database is at migration {found}, newer than this build's {known}")]
    NewerSchema {
        /// The newest migration recorded in the database.
        found: u32,
        /// The newest migration this build ships.
        known: u32,
    },
}

/// Options for [`PgStore::connect`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The schema the store's tables live in (`search_path` of every connection); `None` keeps
    /// the connection's default.
    pub schema: Option<String>,
    /// The most connections open at once; a call waits for an idle one beyond that.
    pub max_connections: usize,
    /// How many times a batch rolled back by a deadlock or serialisation failure is tried again.
    pub retries: u32,
    /// Session settings for every new connection, as `(name, value)` for `set_config`: e.g.
    /// `("application_name", "checkout")`, `("statement_timeout", "5s")`, or (for superusers)
    /// `("deadlock_timeout", "50ms")`.
    pub settings: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schema: None,
            max_connections: 16,
            retries: 8,
            settings: Vec::new(),
        }
    }
}

/// Applies every migration of [`MIGRATIONS`] not yet recorded in the `coupons_migrations` table
/// of the connection's current schema, each in its own transaction, and returns the versions
/// applied (empty when the schema is current). Concurrent callers (several app servers starting
/// at once) queue on an advisory lock, so each migration runs once.
///
/// # Errors
/// [`StoreError::Migration`] naming the migration that failed (it is rolled back whole);
/// [`StoreError::NewerSchema`] when the database was migrated by a newer build;
/// [`StoreError::Postgres`] when the bookkeeping fails.
pub fn migrate(client: &mut Client) -> Result<Vec<u32>, StoreError> {
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    let mut applied = Vec::new();
    let mut tx = client.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &MIGRATION_LOCK],
    )?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS coupons_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )?;
    let found: Option<i32> = tx
        .query_one("SELECT max(version) FROM coupons_migrations", &[])?
        .get(0);
    let found = u32::try_from(found.unwrap_or(0)).unwrap_or(0);
    if found > known {
        return Err(StoreError::NewerSchema { found, known });
    }
    for &(version, name, sql) in MIGRATIONS {
        if version <= found {
            continue;
        }
        let migration = |source| StoreError::Migration {
            version,
            name,
            source,
        };
        let mut step = tx.transaction().map_err(migration)?;
        step.batch_execute(sql).map_err(migration)?;
        let v = i32::try_from(version).unwrap_or(i32::MAX);
        step.execute(
            "INSERT INTO coupons_migrations (version, name) VALUES ($1, $2)",
            &[&v, &name],
        )
        .map_err(migration)?;
        step.commit().map_err(migration)?;
        applied.push(version);
    }
    tx.commit()?;
    Ok(applied)
}

/// Quotes an SQL identifier.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A pooled connection: the client and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

/// The prepared statement for `sql`, preparing it on first use on this connection.
fn prepared(
    statements: &mut HashMap<&'static str, Statement>,
    client: &mut impl GenericClient,
    sql: &'static str,
) -> Result<Statement, postgres::Error> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = client.prepare(sql)?;
    statements.insert(sql, s.clone());
    Ok(s)
}

impl Conn {
    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let stmt = prepared(&mut self.statements, &mut self.client, sql)?;
        self.client.query(&stmt, params)
    }
}

struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// A [`Repository`] on one PostgreSQL database (one schema of it); see the
/// [crate docs](crate).
///
/// `Send + Sync`: share it between threads (e.g. in an `Arc`); each call uses its own pooled
/// connection. Several processes, each with its own `PgStore`, may share one database.
pub struct PgStore {
    config: Config,
    options: Options,
    pool: Mutex<Pool>,
    /// Signalled when a connection goes back to the pool or closes.
    returned: Condvar,
    /// Decoded templates by id, reused while the stored version is unchanged.
    templates: Mutex<HashMap<String, Versioned<Arc<TemplateRecord>>>>,
    /// Drop the schema when the store is dropped ([`PgStore::scratch`]).
    scratch: bool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("options", &self.options)
            .field("scratch", &self.scratch)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: every value behind our mutexes stays valid if a holder
/// panics (a pool of idle connections, a cache).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection checked out of the pool; returned to it on drop.
struct Pooled<'a> {
    store: &'a PgStore,
    conn: Option<Conn>,
}

impl Pooled<'_> {
    fn get(&mut self) -> &mut Conn {
        // Always `Some` until drop.
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut pool = lock(&self.store.pool);
            if conn.client.is_closed() {
                pool.open = pool.open.saturating_sub(1);
            } else {
                pool.idle.push(conn);
            }
            drop(pool);
            self.store.returned.notify_one();
        }
    }
}

impl PgStore {
    /// A store on the database named by `params` (`host=… user=… dbname=…` or a
    /// `postgresql://` URL). Opens no connection until the first call; run [`migrate`] (or
    /// [`PgStore::migrate`]) once before using it.
    ///
    /// # Errors
    /// [`StoreError::Config`] when `params` cannot be parsed.
    pub fn connect(params: &str, options: Options) -> Result<PgStore, StoreError> {
        let config: Config = params.parse().map_err(StoreError::Config)?;
        Ok(PgStore {
            config,
            options: Options {
                max_connections: options.max_connections.max(1),
                ..options
            },
            pool: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
            templates: Mutex::new(HashMap::new()),
            scratch: false,
        })
    }

    /// A store in a new, empty schema of the database named by `params`, migrated, and dropped
    /// (with everything in it) when the store is dropped: for tests, several of which may run
    /// at once on one database.
    ///
    /// # Errors
    /// As for [`PgStore::connect`] and [`migrate`]; [`StoreError::Postgres`] when the schema
    /// cannot be created.
    pub fn scratch(params: &str, max_connections: usize) -> Result<PgStore, StoreError> {
        PgStore::scratch_with(
            params,
            Options {
                max_connections,
                ..Options::default()
            },
        )
    }

    /// As [`PgStore::scratch`], with `options` (whose `schema` is replaced by the new one).
    ///
    /// # Errors
    /// As for [`PgStore::scratch`].
    pub fn scratch_with(params: &str, options: Options) -> Result<PgStore, StoreError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let schema = format!(
            "coupons_t_{}_{nanos}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut store = PgStore::connect(
            params,
            Options {
                schema: Some(schema.clone()),
                ..options
            },
        )?;
        {
            let mut client = store.config.connect(NoTls)?;
            client.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(&schema)))?;
        }
        store.scratch = true;
        store.migrate()?;
        Ok(store)
    }

    /// Runs [`migrate`] on one of the store's connections (in its schema).
    ///
    /// # Errors
    /// As for [`migrate`].
    pub fn migrate(&self) -> Result<Vec<u32>, StoreError> {
        let mut conn = self.conn()?;
        migrate(&mut conn.get().client)
    }

    /// The schema the store works in, if one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.options.schema.as_deref()
    }

    /// Checks a connection out of the pool, opening one when none is idle and fewer than
    /// [`Options::max_connections`] are open, else waiting for one.
    fn conn(&self) -> Result<Pooled<'_>, StoreError> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(conn) = pool.idle.pop() {
                if conn.client.is_closed() {
                    pool.open = pool.open.saturating_sub(1);
                    continue;
                }
                return Ok(Pooled {
                    store: self,
                    conn: Some(conn),
                });
            }
            if pool.open < self.options.max_connections {
                pool.open += 1;
                drop(pool);
                return match self.open_connection() {
                    Ok(conn) => Ok(Pooled {
                        store: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        let mut pool = lock(&self.pool);
                        pool.open = pool.open.saturating_sub(1);
                        drop(pool);
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            pool = self
                .returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open_connection(&self) -> Result<Conn, StoreError> {
        let mut client = self.config.connect(NoTls)?;
        if let Some(schema) = &self.options.schema {
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))?;
        }
        for (name, value) in &self.options.settings {
            client.execute("SELECT set_config($1, $2, false)", &[name, value])?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// The decoded template for `(id, version)`, from the cache or from `body`.
    fn cached_template(
        &self,
        id: &str,
        version: Version,
        body: &str,
    ) -> Result<Versioned<Arc<TemplateRecord>>, StoreError> {
        if let Some(hit) = lock(&self.templates)
            .get(id)
            .filter(|h| h.version == version)
        {
            return Ok(hit.clone());
        }
        let record: TemplateRecord = from_json("templates", id, body)?;
        let fresh = Versioned {
            value: Arc::new(record),
            version,
        };
        let mut cache = lock(&self.templates);
        // Keep the newest version when racing with another reader.
        match cache.get(id) {
            Some(old) if old.version >= version => {}
            _ => {
                cache.insert(id.to_owned(), fresh.clone());
            }
        }
        Ok(fresh)
    }

    fn template_rows(
        &self,
        rows: Vec<Row>,
    ) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: &str = row.try_get(0)?;
            let version = version_of("templates", id, row.try_get(1)?)?;
            out.push(self.cached_template(id, version, row.try_get(2)?)?);
        }
        Ok(out)
    }

    /// One attempt at a batch, in one transaction: `BEGIN`, one statement per op, then the
    /// events and `COMMIT` sent together (one round trip, so that the `event_sequence` row is
    /// locked for no longer than the commit itself).
    fn try_commit(&self, conn: &mut Conn, batch: &Batch) -> Result<Commit, StoreError> {
        let Conn { client, statements } = conn;
        client.batch_execute("BEGIN")?;
        let mut events = Vec::new();
        // Counters are written last (see the crate docs): they are the rows other batches wait
        // for, so each is locked for as short a time as the batch allows.
        let (records, counters): (Vec<_>, Vec<_>) = batch
            .ops
            .iter()
            .enumerate()
            .partition(|(_, op)| !matches!(op, Op::Count { .. }));
        let mut outcome = run_ops(client, statements, &records, usize::MAX, &mut events);
        // After a record's conflict at `index`, the counters before it are still checked, so
        // that the conflict reported is the first in the batch's order.
        let before = match outcome {
            Ok(Commit::Applied) => Some(usize::MAX),
            Ok(Commit::Conflict { index }) => Some(index),
            Err(_) => None,
        };
        if let Some(before) = before {
            match run_ops(client, statements, &counters, before, &mut events) {
                Ok(Commit::Applied) => {}
                other => outcome = other,
            }
        }
        let end = match outcome {
            Ok(Commit::Applied) if events.is_empty() => client.batch_execute("COMMIT"),
            Ok(Commit::Applied) => client.batch_execute(&append_and_commit(&events)),
            _ => client.batch_execute("ROLLBACK"),
        };
        if let Err(e) = end {
            // A failed append leaves the transaction aborted: end it (nothing was applied).
            let _ = client.batch_execute("ROLLBACK");
            return Err(e.into());
        }
        outcome
    }
}

/// Applies `ops` (with their indexes in the batch) in order, up to the first whose index is at
/// or past `before`; stops at the first whose condition fails.
fn run_ops(
    client: &mut Client,
    statements: &mut HashMap<&'static str, Statement>,
    ops: &[(usize, &Op)],
    before: usize,
    events: &mut Vec<String>,
) -> Result<Commit, StoreError> {
    for &(index, op) in ops {
        if index >= before {
            break;
        }
        if !apply(client, statements, op, events)? {
            return Ok(Commit::Conflict { index });
        }
    }
    Ok(Commit::Applied)
}

/// The batch's events appended under the next sequences, then `COMMIT`, as one simple query
/// (whose statements cannot take parameters: the JSON texts are written as escaped string
/// literals, `E'…'` with `\` and `'` doubled, which PostgreSQL reads back exactly whatever
/// `standard_conforming_strings` says). The `event_sequence` row stays locked until the
/// commit; see the crate docs.
fn append_and_commit(events: &[String]) -> String {
    let mut sql = format!(
        "WITH s AS (UPDATE event_sequence SET last = last + {n} RETURNING last) \
         INSERT INTO events (seq, body) SELECT s.last - {n} + e.i, e.body::jsonb FROM s, (VALUES ",
        n = events.len()
    );
    for (i, body) in events.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({}, E'", i + 1));
        for c in body.chars() {
            match c {
                '\\' => sql.push_str("\\\\"),
                '\'' => sql.push_str("''"),
                c => sql.push(c),
            }
        }
        sql.push_str("')");
    }
    sql.push_str(") AS e(i, body); COMMIT");
    sql
}

/// Whether PostgreSQL rolled the transaction back for a deadlock or a serialisation failure,
/// so that trying the batch again may succeed.
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Postgres(e) => e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }),
        _ => false,
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut lock(&self.pool).idle);
        drop(idle);
        if self.scratch {
            if let Some(schema) = &self.options.schema {
                // Best effort: a schema left behind is only clutter.
                if let Ok(mut client) = self.config.connect(NoTls) {
                    let _ = client.batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE",
                        quote_ident(schema)
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn to_json<T: serde::Serialize>(
    table: &'static str,
    key: &str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Json {
        table,
        key: key.to_owned(),
        source,
    })
}

fn from_json<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Json {
        table,
        key: key.to_owned(),
        source,
    })
}

fn version_of(table: &'static str, key: &str, stored: i64) -> Result<Version, StoreError> {
    Version::try_from(stored).map_err(|_| StoreError::Corrupt {
        table,
        key: key.to_owned(),
        column: "version",
        value: stored,
    })
}

/// A stored key's text: [`CounterKey`]'s and [`ReceiptKey`]'s own `Display` forms, whose parts
/// are escaped so that ids containing `/` cannot collide.
fn key_text(key: &impl fmt::Display) -> String {
    key.to_string()
}

/// The indexed columns of a coupon, derived with the crate's own accessors so that a state
/// added later is classified by the crate.
struct CouponColumns<'a> {
    state: &'static str,
    order: Option<&'a str>,
    valid_until: DateTime<Utc>,
    hold_until: Option<DateTime<Utc>>,
    due_at: (Option<DateTime<Utc>>, Option<i16>),
}

fn coupon_columns(c: &Coupon) -> CouponColumns<'_> {
    let hold_until = match &c.state {
        CouponState::Locked { until, .. } => Some(*until),
        _ => None,
    };
    CouponColumns {
        state: c.state.name(),
        order: c.state.order().map(OrderId::as_str),
        valid_until: instant(c.valid_until).0,
        hold_until: hold_until.map(|t| instant(t).0),
        due_at: c.due_at().map(instant).unzip(),
    }
}

/// Reads `(id, version, body)` rows of coupons.
fn coupon_rows(rows: Vec<Row>) -> Result<Vec<Versioned<Coupon>>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: &str = row.try_get(0)?;
        out.push(Versioned {
            version: version_of("coupons", id, row.try_get(1)?)?,
            value: from_json("coupons", id, row.try_get(2)?)?,
        });
    }
    Ok(out)
}

/// An instant as its microsecond (which `timestamptz` holds exactly) and the nanoseconds
/// below it (`0..=999`); ordered as a pair exactly as the instants are.
fn instant(t: DateTime<Utc>) -> (DateTime<Utc>, i16) {
    let below = t.timestamp_subsec_nanos() % 1_000;
    let micro = t - chrono::Duration::nanoseconds(i64::from(below));
    (micro, i16::try_from(below).unwrap_or(0))
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Statements

const TEMPLATE_SQL: &str = "SELECT id, version, body::text FROM templates WHERE id = $1";
const TEMPLATES_SQL: &str = "SELECT id, version, body::text FROM templates ORDER BY id";
const CAMPAIGN_SQL: &str = "SELECT version, body::text FROM campaigns WHERE id = $1";
const ORDER_RECORD_SQL: &str = "SELECT version, body::text FROM orders WHERE id = $1";
const COUPON_SQL: &str = "SELECT id, version, body::text FROM coupons WHERE id = $1";
/// A user's coupons, through `coupons_by_owner`.
const WALLET_SQL: &str = "SELECT id, version, body::text FROM coupons WHERE owner = $1 ORDER BY id";
/// An order's coupons, through `coupons_by_order`.
const ORDER_SQL: &str =
    "SELECT id, version, body::text FROM coupons WHERE order_id = $1 ORDER BY id";
/// Coupons due at `$1`, at most `$2`: the earliest due. The inner query walks `coupons_by_due`
/// in time order and stops after `$2` rows; the ids found are then read in id order.
const DUE_SQL: &str = "SELECT id, version, body::text FROM coupons WHERE id IN ( \
        SELECT id FROM coupons WHERE due_at IS NOT NULL AND (due_at, due_at_nanos) <= ($1, $2) \
        ORDER BY due_at, due_at_nanos LIMIT $3) \
    ORDER BY id";
/// Orders whose hold ran out by `$1`, at most `$2`, through `holds_by_time`.
const HELD_SQL: &str = "SELECT order_id FROM holds WHERE (at, at_nanos) <= ($1, $2) \
    ORDER BY at, at_nanos, order_id LIMIT $3";
const COUNTER_SQL: &str = "SELECT value FROM counters WHERE key = $1";
const GUARD_BUCKET_SQL: &str =
    "SELECT value FROM guard_counts WHERE guard = $1 AND subject = $2 AND bucket = $3";
const RECEIPT_SQL: &str = "SELECT body::text FROM receipts WHERE key = $1";
const EVENTS_SQL: &str = "SELECT seq, body::text FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
const TRIM_SQL: &str = "DELETE FROM events WHERE seq <= $1";

const INSERT_TEMPLATE_SQL: &str = "INSERT INTO templates (id, version, body) \
    VALUES ($1, 1, $2::text::jsonb) ON CONFLICT (id) DO NOTHING";
const UPDATE_TEMPLATE_SQL: &str = "UPDATE templates SET version = version + 1, \
    body = $2::text::jsonb WHERE id = $1 AND version = $3";
const INSERT_CAMPAIGN_SQL: &str = "INSERT INTO campaigns (id, version, body) \
    VALUES ($1, 1, $2::text::jsonb) ON CONFLICT (id) DO NOTHING";
const UPDATE_CAMPAIGN_SQL: &str = "UPDATE campaigns SET version = version + 1, \
    body = $2::text::jsonb WHERE id = $1 AND version = $3";
const INSERT_COUPON_SQL: &str = "INSERT INTO coupons (id, template, owner, order_id, state, \
    valid_until, hold_until, due_at, due_at_nanos, version, body) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10::text::jsonb) ON CONFLICT (id) DO NOTHING";
const UPDATE_COUPON_SQL: &str = "UPDATE coupons SET template = $2, owner = $3, order_id = $4, \
    state = $5, valid_until = $6, hold_until = $7, due_at = $8, due_at_nanos = $9, \
    body = $10::text::jsonb, version = version + 1 WHERE id = $1 AND version = $11";
const INSERT_ORDER_SQL: &str = "INSERT INTO orders (id, version, buyer, state, updated_at, body) \
    VALUES ($1, 1, $2, $3, $4, $5::text::jsonb) ON CONFLICT (id) DO NOTHING";
const UPDATE_ORDER_SQL: &str = "UPDATE orders SET version = version + 1, buyer = $2, state = $3, \
    updated_at = $4, body = $5::text::jsonb WHERE id = $1 AND version = $6";
/// A counter change that may create the counter (`delta` within `0..=limit`).
const COUNT_UPSERT_SQL: &str = "INSERT INTO counters (key, value) VALUES ($1, $2) \
    ON CONFLICT (key) DO UPDATE SET value = counters.value + EXCLUDED.value \
    WHERE counters.value BETWEEN $3 AND $4";
/// A counter change that needs the counter to exist already.
const COUNT_UPDATE_SQL: &str =
    "UPDATE counters SET value = value + $2 WHERE key = $1 AND value BETWEEN $3 AND $4";
const INSERT_RECEIPT_SQL: &str = "INSERT INTO receipts (key, body) VALUES ($1, $2::text::jsonb) \
    ON CONFLICT (key) DO NOTHING";
const HOLD_SQL: &str = "INSERT INTO holds (order_id, at, at_nanos) VALUES ($1, $2, $3) \
    ON CONFLICT (order_id) DO UPDATE SET at = EXCLUDED.at, at_nanos = EXCLUDED.at_nanos";
const UNHOLD_SQL: &str = "DELETE FROM holds WHERE order_id = $1";
const GUARD_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1, $2)";
/// The window `$4 ..= $3` of guard `$1` for subject `$2` takes `$5 >= 0` if its sum stays at
/// most `$6`; buckets before the window are dropped. Returns whether it took it.
const GUARD_ADD_SQL: &str = "WITH w AS ( \
        SELECT COALESCE(SUM(value), 0) AS total \
        FROM guard_counts WHERE guard = $1 AND subject = $2 \
        AND bucket BETWEEN $4::bigint AND $3::bigint), \
    ok AS (SELECT 1 FROM w WHERE w.total + $5::bigint <= $6::bigint), \
    up AS (INSERT INTO guard_counts (guard, subject, bucket, value) \
        SELECT $1, $2, $3::bigint, $5::bigint FROM ok \
        ON CONFLICT (guard, subject, bucket) \
        DO UPDATE SET value = guard_counts.value + EXCLUDED.value), \
    gone AS (DELETE FROM guard_counts WHERE guard = $1 AND subject = $2 \
        AND bucket < $4::bigint AND EXISTS (SELECT 1 FROM ok)) \
    SELECT EXISTS (SELECT 1 FROM ok)";
/// As [`GUARD_ADD_SQL`] for `$5 < 0`: the current bucket must exist and stay at or above zero
/// (an insert of a negative value would break the column's check).
const GUARD_TAKE_SQL: &str = "WITH w AS ( \
        SELECT COALESCE(SUM(value), 0) AS total, \
        COALESCE(SUM(value) FILTER (WHERE bucket = $3::bigint), 0) AS current \
        FROM guard_counts WHERE guard = $1 AND subject = $2 \
        AND bucket BETWEEN $4::bigint AND $3::bigint), \
    ok AS (SELECT 1 FROM w WHERE w.current + $5::bigint >= 0 \
        AND w.total + $5::bigint <= $6::bigint), \
    up AS (UPDATE guard_counts SET value = value + $5::bigint \
        WHERE guard = $1 AND subject = $2 AND bucket = $3::bigint \
        AND EXISTS (SELECT 1 FROM ok)), \
    gone AS (DELETE FROM guard_counts WHERE guard = $1 AND subject = $2 \
        AND bucket < $4::bigint AND EXISTS (SELECT 1 FROM ok)) \
    SELECT EXISTS (SELECT 1 FROM ok)";

// ---------------------------------------------------------------------------------------------
// Writes

/// Runs one conditional write; `true` when it wrote one row.
fn write(
    tx: &mut Client,
    statements: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    let stmt = prepared(statements, tx, sql)?;
    Ok(tx.execute(&stmt, params)? == 1)
}

/// Applies one op inside the transaction; `false` when its condition does not hold. Events
/// are collected into `events` (as JSON) and appended after every condition has held.
fn apply(
    tx: &mut Client,
    st: &mut HashMap<&'static str, Statement>,
    op: &Op,
    events: &mut Vec<String>,
) -> Result<bool, StoreError> {
    match op {
        Op::PutTemplate { record, expect } => {
            let id = record.template.id().as_str();
            let body = to_json("templates", id, record.as_ref())?;
            match *expect {
                Expect::Absent => write(tx, st, INSERT_TEMPLATE_SQL, &[&id, &body]),
                Expect::Version(v) => match i64::try_from(v) {
                    Ok(v) => write(tx, st, UPDATE_TEMPLATE_SQL, &[&id, &body, &v]),
                    Err(_) => Ok(false), // no stored version is that large
                },
            }
        }
        Op::PutCampaign { campaign, expect } => {
            let id = campaign.id.as_str();
            let body = to_json("campaigns", id, campaign)?;
            match *expect {
                Expect::Absent => write(tx, st, INSERT_CAMPAIGN_SQL, &[&id, &body]),
                Expect::Version(v) => match i64::try_from(v) {
                    Ok(v) => write(tx, st, UPDATE_CAMPAIGN_SQL, &[&id, &body, &v]),
                    Err(_) => Ok(false),
                },
            }
        }
        Op::PutCoupon { coupon, expect } => {
            let id = coupon.id.as_str();
            let body = to_json("coupons", id, coupon)?;
            let c = coupon_columns(coupon);
            let (template, owner) = (coupon.template.as_str(), coupon.owner.as_str());
            match *expect {
                Expect::Absent => write(
                    tx,
                    st,
                    INSERT_COUPON_SQL,
                    &[
                        &id,
                        &template,
                        &owner,
                        &c.order,
                        &c.state,
                        &c.valid_until,
                        &c.hold_until,
                        &c.due_at.0,
                        &c.due_at.1,
                        &body,
                    ],
                ),
                Expect::Version(v) => match i64::try_from(v) {
                    Ok(v) => write(
                        tx,
                        st,
                        UPDATE_COUPON_SQL,
                        &[
                            &id,
                            &template,
                            &owner,
                            &c.order,
                            &c.state,
                            &c.valid_until,
                            &c.hold_until,
                            &c.due_at.0,
                            &c.due_at.1,
                            &body,
                            &v,
                        ],
                    ),
                    Err(_) => Ok(false),
                },
            }
        }
        Op::PutOrder { order, expect } => {
            let id = order.id.as_str();
            let body = to_json("orders", id, order)?;
            let (buyer, state) = (order.buyer.as_str(), order.state.name());
            let updated_at = instant(order.updated_at).0;
            match *expect {
                Expect::Absent => write(
                    tx,
                    st,
                    INSERT_ORDER_SQL,
                    &[&id, &buyer, &state, &updated_at, &body],
                ),
                Expect::Version(v) => match i64::try_from(v) {
                    Ok(v) => write(
                        tx,
                        st,
                        UPDATE_ORDER_SQL,
                        &[&id, &buyer, &state, &updated_at, &body, &v],
                    ),
                    Err(_) => Ok(false),
                },
            }
        }
        Op::Count {
            key:
                CounterKey::Guard {
                    guard,
                    subject,
                    bucket,
                },
            delta,
            limit,
        } => count_window(
            tx,
            st,
            guard.as_str(),
            subject,
            *bucket,
            1,
            *delta,
            limit.unwrap_or(u64::MAX),
        ),
        Op::Count { key, delta, limit } => count(tx, st, &key_text(key), *delta, *limit),
        Op::CountWindow {
            guard,
            subject,
            bucket,
            span,
            delta,
            limit,
        } => count_window(
            tx,
            st,
            guard.as_str(),
            subject,
            *bucket,
            *span,
            *delta,
            *limit,
        ),
        Op::InsertReceipt { key, receipt } => {
            let key = key_text(key);
            let body = to_json("receipts", &key, receipt)?;
            write(tx, st, INSERT_RECEIPT_SQL, &[&key, &body])
        }
        Op::Hold { order, until } => {
            let order = order.as_str();
            match until {
                Some(t) => {
                    let (micro, below) = instant(*t);
                    write(tx, st, HOLD_SQL, &[&order, &micro, &below])?
                }
                None => write(tx, st, UNHOLD_SQL, &[&order])?,
            };
            Ok(true)
        }
        Op::Emit { event } => {
            events.push(to_json("events", "new", event)?);
            Ok(true)
        }
    }
}

/// `value + delta` must land in `0..=limit`: as bounds on the stored value,
/// `value ∈ [-delta, limit - delta]` (clamped to the column's range `0..=i64::MAX`). A new
/// counter is zero, so it may be created only when `delta` itself is within `0..=limit`.
fn count(
    tx: &mut Client,
    st: &mut HashMap<&'static str, Statement>,
    key: &str,
    delta: i64,
    limit: Option<u64>,
) -> Result<bool, StoreError> {
    let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let lo = (-i128::from(delta)).max(0);
    let hi = (i128::from(limit) - i128::from(delta)).min(i128::from(i64::MAX));
    if lo > hi {
        return Ok(false);
    }
    // Both bounds are within 0..=i64::MAX here.
    let (lo, hi) = (
        i64::try_from(lo).unwrap_or(i64::MAX),
        i64::try_from(hi).unwrap_or(i64::MAX),
    );
    let sql = if (0..=limit).contains(&delta) {
        COUNT_UPSERT_SQL
    } else {
        COUNT_UPDATE_SQL
    };
    write(tx, st, sql, &[&key, &delta, &lo, &hi])
}

/// A 32-bit key for the advisory lock of a guard's subject (FNV-1a). Two subjects sharing a
/// key only queue behind each other.
fn guard_lock_key(guard: &str, subject: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in guard.bytes().chain([0xff]).chain(subject.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// Adds `delta` to a guard's bucket if the window's sum stays within `limit` and the bucket
/// stays non-negative; drops the buckets the window no longer sums.
#[allow(clippy::too_many_arguments)]
fn count_window(
    tx: &mut Client,
    st: &mut HashMap<&'static str, Statement>,
    guard: &str,
    subject: &str,
    bucket: i64,
    span: u32,
    delta: i64,
    limit: u64,
) -> Result<bool, StoreError> {
    let oldest = coupons::repository::oldest_bucket(bucket, span);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let lock_stmt = prepared(st, tx, GUARD_LOCK_SQL)?;
    tx.execute(&lock_stmt, &[&LOCK_CLASS, &guard_lock_key(guard, subject)])?;
    let sql = if delta < 0 {
        GUARD_TAKE_SQL
    } else {
        GUARD_ADD_SQL
    };
    let stmt = prepared(st, tx, sql)?;
    let row = tx.query_one(&stmt, &[&guard, &subject, &bucket, &oldest, &delta, &limit])?;
    Ok(row.try_get(0)?)
}

// ---------------------------------------------------------------------------------------------
// The trait

impl Repository for PgStore {
    type Error = StoreError;

    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, StoreError> {
        let rows = self.conn()?.get().query(TEMPLATE_SQL, &[&id.as_str()])?;
        Ok(self.template_rows(rows)?.into_iter().next())
    }

    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, StoreError> {
        let rows = self.conn()?.get().query(TEMPLATES_SQL, &[])?;
        self.template_rows(rows)
    }

    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, StoreError> {
        let rows = self.conn()?.get().query(CAMPAIGN_SQL, &[&id.as_str()])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            version: version_of("campaigns", id.as_str(), row.try_get(0)?)?,
            value: from_json("campaigns", id.as_str(), row.try_get(1)?)?,
        }))
    }

    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, StoreError> {
        let rows = self.conn()?.get().query(COUPON_SQL, &[&id.as_str()])?;
        Ok(coupon_rows(rows)?.into_iter().next())
    }

    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let rows = self.conn()?.get().query(WALLET_SQL, &[&user.as_str()])?;
        coupon_rows(rows)
    }

    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let rows = self.conn()?.get().query(ORDER_SQL, &[&order.as_str()])?;
        coupon_rows(rows)
    }

    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let (micro, below) = instant(now);
        let rows = self
            .conn()?
            .get()
            .query(DUE_SQL, &[&micro, &below, &limit_param(limit)])?;
        coupon_rows(rows)
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        let (micro, below) = instant(now);
        let rows = self
            .conn()?
            .get()
            .query(HELD_SQL, &[&micro, &below, &limit_param(limit)])?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: &str = row.try_get(0)?;
            // Through serde, which runs the id's checks, so a bad row is a `Json` error.
            let order = serde_json::from_value(serde_json::Value::String(id.to_owned())).map_err(
                |source| StoreError::Json {
                    table: "holds",
                    key: id.to_owned(),
                    source,
                },
            )?;
            out.push(order);
        }
        Ok(out)
    }

    fn order(&self, id: &OrderId) -> Result<Option<Versioned<Order>>, StoreError> {
        let rows = self
            .conn()?
            .get()
            .query(ORDER_RECORD_SQL, &[&id.as_str()])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            version: version_of("orders", id.as_str(), row.try_get(0)?)?,
            value: from_json("orders", id.as_str(), row.try_get(1)?)?,
        }))
    }

    fn counter(&self, key: &CounterKey) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        let rows = match key {
            CounterKey::Guard {
                guard,
                subject,
                bucket,
            } => conn.get().query(
                GUARD_BUCKET_SQL,
                &[&guard.as_str(), &subject.as_str(), bucket],
            )?,
            other => conn.get().query(COUNTER_SQL, &[&key_text(other)])?,
        };
        let value: i64 = match rows.first() {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        u64::try_from(value).map_err(|_| StoreError::Corrupt {
            table: "counters",
            key: key_text(key),
            column: "value",
            value,
        })
    }

    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, StoreError> {
        let key = key_text(key);
        let rows = self.conn()?.get().query(RECEIPT_SQL, &[&key])?;
        match rows.first() {
            None => Ok(None),
            Some(row) => Ok(Some(from_json("receipts", &key, row.try_get(0)?)?)),
        }
    }

    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = self
            .conn()?
            .get()
            .query(EVENTS_SQL, &[&after, &limit_param(limit)])?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get(0)?;
            let event = from_json("events", &seq.to_string(), row.try_get(1)?)?;
            out.push(Logged {
                seq: u64::try_from(seq).unwrap_or(0),
                event,
            });
        }
        Ok(out)
    }

    fn commit(&self, batch: &Batch) -> Result<Commit, StoreError> {
        if batch.ops.is_empty() {
            return Ok(Commit::Applied);
        }
        let mut pooled = self.conn()?;
        let conn = pooled.get();
        let mut attempt: u32 = 0;
        loop {
            match self.try_commit(conn, batch) {
                Err(e) if retryable(&e) && attempt < self.options.retries => {
                    attempt += 1;
                    // Two transactions that deadlocked would often deadlock again if both
                    // retried at once: wait a little, longer each time and differently per
                    // thread (up to ~2 ms, then ~16 ms), so one goes first.
                    let spread = u64::from(std::process::id())
                        ^ (std::ptr::from_ref(conn) as usize as u64)
                        ^ u64::from(attempt).wrapping_mul(0x9e37_79b9);
                    let micros = (200u64 << attempt.min(6)) + spread % 500;
                    std::thread::sleep(std::time::Duration::from_micros(micros));
                }
                done => return done,
            }
        }
    }
}

impl TrimEvents for PgStore {
    fn trim_events(&self, through: Sequence) -> Result<u64, StoreError> {
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let mut conn = self.conn()?;
        let conn = conn.get();
        let stmt = prepared(&mut conn.statements, &mut conn.client, TRIM_SQL)?;
        Ok(conn.client.execute(&stmt, &[&through])?)
    }
}

impl PgStore {
    /// The query plans (`EXPLAIN`) of the wallet, order, due and held queries (for tests).
    ///
    /// # Errors
    /// [`StoreError::Postgres`].
    pub fn query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let mut conn = self.conn()?;
        let client = &mut conn.get().client;
        let mut out = Vec::new();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let limit = 10_i64;
        let plans: [(&str, &str, Vec<&(dyn ToSql + Sync)>); 4] = [
            ("wallet", WALLET_SQL, vec![&"u"]),
            ("order", ORDER_SQL, vec![&"o"]),
            ("due", DUE_SQL, vec![&now, &0_i16, &limit]),
            ("held", HELD_SQL, vec![&now, &0_i16, &limit]),
        ];
        for (name, sql, params) in plans {
            let rows = client.query(&format!("EXPLAIN {sql}"), &params)?;
            let mut plan = String::new();
            for row in rows {
                let line: &str = row.try_get(0)?;
                plan.push_str(line);
                plan.push('\n');
            }
            out.push((name, plan));
        }
        Ok(out)
    }
}
