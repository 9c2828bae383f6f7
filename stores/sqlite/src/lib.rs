//! [`SqliteStore`]: the [`Repository`] trait on SQLite, as one real transactional store.
//!
//! Every record is kept as JSON text (the crate's serde form, which validates on the way back)
//! next to the columns that are queried: a coupon's owner, order, state, validity end, hold
//! deadline and due time (from the crate's own `CouponState::name`, `CouponState::order` and
//! `Coupon::due_at`), and an order record's buyer, state and last transition (`OrderState::name`,
//! `Order::updated_at`), with indexes for the wallet, order and due queries. Instants are Unix
//! seconds plus nanoseconds, compared as row values, so every instant orders exactly. Counters and
//! receipts are keyed by text built from their keys' parts, escaped so that ids containing `/`
//! cannot collide. [`Repository::commit`] is one `BEGIN IMMEDIATE` transaction in which every
//! op is a conditional statement:
//!
//! | op                             | statement                                             | conflict when      |
//! |--------------------------------|-------------------------------------------------------|--------------------|
//! | `Put*` with [`Expect::Absent`] | `INSERT … ON CONFLICT (id) DO NOTHING`                | no row inserted    |
//! | `Put*` with [`Expect::Version`]| `UPDATE … SET version = version + 1 WHERE id = ? AND version = ?` | no row updated |
//! | `Count`                        | `UPDATE counters SET value = value + ? WHERE key = ? AND value BETWEEN ? AND ?`; for a new counter, `INSERT` | no row updated and the key exists, or the new value is out of range |
//! | `InsertReceipt`                | `INSERT … ON CONFLICT (key) DO NOTHING`               | no row inserted    |
//! | `Hold`, `Emit`                 | upsert or delete of the deadline; `INSERT` of the event | never            |
//!
//! The first failed condition rolls the transaction back and returns [`Commit::Conflict`] with
//! its index. The counter condition (`value + delta` within `0..=limit`) is turned in Rust into
//! bounds on the stored `value` (`-delta ..= limit - delta`), so SQL never does arithmetic that
//! could overflow.
//!
//! The database runs in WAL mode (readers never block the writer) with a busy timeout, and
//! with `synchronous = NORMAL`: a committed batch survives an application crash, but the last
//! batches before a power loss may be lost; [`Options`] chooses `FULL` and the checkpoint size.
//!
//! Concurrency: each call checks a connection out of a small pool (opening one when none is
//! idle), so several threads work at once, each on its own connection. SQLite admits one
//! writer at a time; writers of one store first queue on an in-process mutex (which wakes them
//! at once, where SQLite's busy handler would sleep and poll), and `BEGIN IMMEDIATE` with the
//! busy timeout orders writers across stores and processes sharing the file. Correctness does
//! not depend on the mutex: every condition is checked by SQL inside the transaction.
//!
//! Decoded templates are cached by `(id, version)`: a claim reads its template every time, and
//! decoding one re-validates every rule.

use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use coupons::id::{CampaignId, CouponId, OrderId, TemplateId, UserId};
use coupons::lifecycle::{Campaign, Coupon, CouponState, Order, TemplateRecord};
use coupons::repository::{
    Batch, Commit, CounterKey, Expect, Logged, Op, Receipt, ReceiptKey, Repository, Sequence,
    TrimEvents, Version, Versioned,
};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

/// The schema. Tables keyed by text ids; coupons carry the indexed columns of the queries.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS templates (
    id      TEXT    PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version >= 1),
    body    TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS campaigns (
    id      TEXT    PRIMARY KEY,
    version INTEGER NOT NULL CHECK (version >= 1),
    body    TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS coupons (
    id                TEXT    PRIMARY KEY,
    template          TEXT    NOT NULL,
    owner             TEXT    NOT NULL,
    -- The order holding (Locked) or having used (Used) the coupon; NULL otherwise.
    order_id          TEXT,
    -- available | locked | used | expired | voided
    state             TEXT    NOT NULL,
    -- Instants as Unix seconds plus nanoseconds, compared as row values so that every
    -- instant chrono can represent orders exactly.
    valid_until       INTEGER NOT NULL,
    valid_until_nanos INTEGER NOT NULL,
    -- The end of the hold while Locked.
    hold_until        INTEGER,
    hold_until_nanos  INTEGER,
    -- When a time-driven transition is due (`Coupon::due_at`): the validity end while
    -- Available, the hold end while Locked; NULL otherwise.
    due_at            INTEGER,
    due_at_nanos      INTEGER,
    version           INTEGER NOT NULL CHECK (version >= 1),
    body              TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coupons_by_owner ON coupons (owner, id);
CREATE INDEX IF NOT EXISTS coupons_by_order ON coupons (order_id, id) WHERE order_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS coupons_by_due
    ON coupons (due_at, due_at_nanos) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS counters (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL CHECK (value >= 0)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    key  TEXT PRIMARY KEY,
    body TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (
    order_id TEXT    PRIMARY KEY,
    at       INTEGER NOT NULL,
    at_nanos INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holds_by_time ON holds (at, at_nanos, order_id);
-- Order records: the JSON body plus the buyer, state name (`OrderState::name`) and last
-- transition, for looking orders up without decoding them. Created by `open` in a database
-- made before orders were records, like every table here.
CREATE TABLE IF NOT EXISTS orders (
    id               TEXT    PRIMARY KEY,
    version          INTEGER NOT NULL CHECK (version >= 1),
    buyer            TEXT    NOT NULL,
    -- placed | paid | completed | released | refunded
    state            TEXT    NOT NULL,
    updated_at       INTEGER NOT NULL,
    updated_at_nanos INTEGER NOT NULL,
    body             TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS orders_by_buyer ON orders (buyer, id);
-- Guards' windowed counters, one row per bucket; a window sums a range of buckets.
CREATE TABLE IF NOT EXISTS guard_counts (
    guard   TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    bucket  INTEGER NOT NULL,
    value   INTEGER NOT NULL CHECK (value >= 0),
    PRIMARY KEY (guard, subject, bucket)
) WITHOUT ROWID;
-- The event feed. AUTOINCREMENT: a sequence is never reused, even after the newest events
-- are trimmed. Writers are serialised (one IMMEDIATE transaction at a time), so sequences
-- commit in order and a reader never sees a later sequence before an earlier one.
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT    NOT NULL
);
";

/// Orders whose hold ran out by `(?1, ?2)`, at most `?3`, through `holds_by_time`.
const HELD_SQL: &str = "SELECT order_id FROM holds WHERE (at, at_nanos) <= (?1, ?2) \
    ORDER BY at, at_nanos, order_id LIMIT ?3";

/// A user's coupons, through `coupons_by_owner`.
const WALLET_SQL: &str = "SELECT id, version, body FROM coupons WHERE owner = ?1 ORDER BY id";

/// An order's coupons, through `coupons_by_order`.
const ORDER_SQL: &str = "SELECT id, version, body FROM coupons WHERE order_id = ?1 ORDER BY id";

/// Coupons due at `(?1, ?2)`, at most `?3`: the earliest due, as the in-memory store picks
/// them. The inner query walks `coupons_by_due` in time order and stops after `?3` rows, so a
/// sweep costs its limit, not the whole backlog; the ids found are then read in id order
/// through the primary key (a plain `… ORDER BY id LIMIT` tempts the planner into scanning
/// every coupon in id order).
const DUE_SQL: &str = "SELECT id, version, body FROM coupons WHERE id IN ( \
        SELECT id FROM coupons \
        WHERE due_at IS NOT NULL AND (due_at, due_at_nanos) <= (?1, ?2) \
        ORDER BY due_at, due_at_nanos LIMIT ?3) \
    ORDER BY id";

/// Why a [`SqliteStore`] call failed. Conflicts are not errors: they are
/// [`Commit::Conflict`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (I/O, locking past the busy timeout, a full disk…).
    Sqlite(rusqlite::Error),
    /// A record could not be written as JSON, or a stored one could not be read back (or no
    /// longer passes validation).
    Json {
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// The serde error.
        source: serde_json::Error,
    },
    /// A stored number is outside its range (a negative version or counter).
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
    /// The database file could not be prepared (e.g. its directory could not be created).
    Io(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Sqlite(e) => write!(f, "sqlite failed: {e}"),
            StoreError::Json { table, key, source } => {
                write!(
                    f,
                    "record {key:?} in {table} is not valid JSON for its type: {source}"
                )
            }
            StoreError::Corrupt {
                table,
                key,
                column,
                value,
            } => write!(
                f,
                "record {key:?} in {table} holds {value} in {column}, which is out of range"
            ),
            StoreError::Io(e) => write!(f, "could not prepare the database file: {e}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Sqlite(e) => Some(e),
            StoreError::Json { source, .. } => Some(source),
            StoreError::Io(e) => Some(e),
            StoreError::Corrupt { .. } => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// How durable a commit is; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous = NORMAL`: survives an application crash; a power loss may lose the last
    /// commits (never corrupts).
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is on disk before `commit` returns.
    Full,
}

/// Options for [`SqliteStore::open_with`].
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How durable a commit is.
    pub durability: Durability,
    /// How long a call waits for another process's write lock before failing with
    /// `SQLITE_BUSY`.
    pub busy_timeout: Duration,
    /// Pages the write-ahead log grows to before a commit copies it back into the database
    /// (`wal_autocheckpoint`). Each checkpoint syncs the files; a claim writes about ten
    /// pages, so SQLite's default of 1,000 pages would sync every hundred claims.
    pub checkpoint_pages: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(10),
            checkpoint_pages: 10_000,
        }
    }
}

/// A [`Repository`] on one SQLite database file; see the [module docs](self).
///
/// `Send + Sync`: share it between threads (e.g. in an `Arc`); each call uses its own pooled
/// connection.
pub struct SqliteStore {
    path: PathBuf,
    options: Options,
    /// Idle connections.
    pool: Mutex<Vec<Connection>>,
    /// Writers of this store queue here before `BEGIN IMMEDIATE`.
    writer: Mutex<()>,
    /// Decoded templates by id, reused while the stored version is unchanged (decoding a
    /// template validates every rule, and a claim reads its template every time).
    templates: Mutex<HashMap<String, Versioned<Arc<TemplateRecord>>>>,
    /// Delete the database files on drop.
    temporary: bool,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("temporary", &self.temporary)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, ignoring poisoning: every value behind our mutexes stays valid if a holder
/// panics (a pool of idle connections, a cache, nothing).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection checked out of the pool; returned to it on drop.
struct Pooled<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl Deref for Pooled<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Always `Some` until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A connection left inside a transaction (a failed rollback) is closed, not reused.
            if conn.is_autocommit() {
                lock(&self.store.pool).push(conn);
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default [`Options`], and creates
    /// the schema if it is missing.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the file cannot be opened or the schema created.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, Options::default())
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// [`StoreError::Sqlite`] when the file cannot be opened or the schema created.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<SqliteStore, StoreError> {
        let store = SqliteStore {
            path: path.as_ref().to_path_buf(),
            options,
            pool: Mutex::new(Vec::new()),
            writer: Mutex::new(()),
            templates: Mutex::new(HashMap::new()),
            temporary: false,
        };
        {
            let conn = store.conn()?;
            conn.execute_batch(SCHEMA)?;
        }
        Ok(store)
    }

    /// A new, empty database file in the system's temporary directory, deleted when the store
    /// is dropped.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the temporary directory cannot be created;
    /// [`StoreError::Sqlite`] as for [`SqliteStore::open`].
    pub fn temporary() -> Result<SqliteStore, StoreError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir();
        std::fs::create_dir_all(&dir).map_err(StoreError::Io)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "coupons-{}-{nanos}-{}.sqlite3",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut store = SqliteStore::open(dir.join(name))?;
        store.temporary = true;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks a connection out of the pool, opening and configuring one if none is idle.
    fn conn(&self) -> Result<Pooled<'_>, StoreError> {
        let idle = lock(&self.pool).pop();
        let conn = match idle {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(Pooled {
            store: self,
            conn: Some(conn),
        })
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(self.options.busy_timeout)?;
        // Switching to WAL needs a moment of exclusive access: the busy timeout above covers it.
        let synchronous = match self.options.durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA wal_autocheckpoint = {};",
            self.options.checkpoint_pages
        ))?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Close every connection before deleting the files.
        lock(&self.pool).clear();
        if self.temporary {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.path.clone().into_os_string();
                p.push(suffix);
                // Best effort: a file that is already gone is fine.
                let _ = std::fs::remove_file(p);
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

/// One component of a key, with `%` and `/` escaped so that joining components with `/` is
/// unambiguous.
fn part(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['%', '/']) {
        s.replace('%', "%25").replace('/', "%2F").into()
    } else {
        s.into()
    }
}

/// A counter's primary key. Not the key's `Display` form: identifiers may contain `/`, so
/// `user-claims/a/b/c` could be template `a/b` and user `c` or template `a` and user `b/c`.
fn counter_key(key: &CounterKey) -> String {
    match key {
        CounterKey::Issued(t) => format!("issued/{}", part(t.as_str())),
        CounterKey::UserClaims(t, u) => {
            format!("user-claims/{}/{}", part(t.as_str()), part(u.as_str()))
        }
        CounterKey::UserUses(t, u) => {
            format!("user-uses/{}/{}", part(t.as_str()), part(u.as_str()))
        }
        CounterKey::CodeUses(t) => format!("code-uses/{}", part(t.as_str())),
        CounterKey::CodeUserUses(t, u) => {
            format!("code-user-uses/{}/{}", part(t.as_str()), part(u.as_str()))
        }
        CounterKey::Custom(s) => format!("custom/{}", part(s)),
        // Guard buckets live in `guard_counts`; this text only names one in errors.
        CounterKey::Guard {
            guard,
            subject,
            bucket,
        } => format!("guard/{}/{}/{bucket}", part(guard.as_str()), part(subject)),
    }
}

/// A receipt's primary key, escaped like [`counter_key`].
fn receipt_key(key: &ReceiptKey) -> String {
    match key {
        ReceiptKey::Operation(op, k) => format!("op/{}/{}", part(op), part(k.as_str())),
        ReceiptKey::Code(c) => format!("code/{}", part(c.as_str())),
    }
}

/// An instant as (Unix seconds, nanoseconds); ordered as a pair exactly as the instants are.
fn instant(t: DateTime<Utc>) -> (i64, i64) {
    (t.timestamp(), i64::from(t.timestamp_subsec_nanos()))
}

/// The indexed columns of a coupon, derived with the crate's own accessors so that a state
/// added later is classified by the crate.
struct CouponColumns<'a> {
    state: &'static str,
    order: Option<&'a str>,
    valid_until: (i64, i64),
    hold_until: (Option<i64>, Option<i64>),
    due_at: (Option<i64>, Option<i64>),
}

fn coupon_columns(c: &Coupon) -> CouponColumns<'_> {
    let hold_until = match &c.state {
        CouponState::Locked { until, .. } => Some(instant(*until)),
        _ => None,
    };
    CouponColumns {
        state: c.state.name(),
        order: c.state.order().map(OrderId::as_str),
        valid_until: instant(c.valid_until),
        hold_until: hold_until.unzip(),
        due_at: c.due_at().map(instant).unzip(),
    }
}

/// A text column, borrowed from the row.
fn text<'r>(row: &'r Row<'_>, index: usize) -> Result<&'r str, rusqlite::Error> {
    row.get_ref(index)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Reads `(id, version, body)` rows of coupons.
fn coupon_row(row: &Row<'_>) -> Result<Result<Versioned<Coupon>, StoreError>, rusqlite::Error> {
    let id = text(row, 0)?;
    let version: i64 = row.get(1)?;
    let body = text(row, 2)?;
    Ok(version_of("coupons", id, version).and_then(|version| {
        Ok(Versioned {
            value: from_json("coupons", id, body)?,
            version,
        })
    }))
}

fn collect_coupons(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Versioned<Coupon>>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(coupon_row(row)??);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Writes

/// Applies one op inside the transaction; `false` when its condition does not hold.
fn apply(tx: &Transaction<'_>, op: &Op) -> Result<bool, StoreError> {
    match op {
        Op::PutTemplate { record, expect } => {
            let id = record.template.id().as_str();
            let body = to_json("templates", id, record.as_ref())?;
            put_plain(tx, "templates", id, &body, *expect)
        }
        Op::PutCampaign { campaign, expect } => {
            let id = campaign.id.as_str();
            let body = to_json("campaigns", id, campaign)?;
            put_plain(tx, "campaigns", id, &body, *expect)
        }
        Op::PutCoupon { coupon, expect } => put_coupon(tx, coupon, *expect),
        Op::PutOrder { order, expect } => put_order(tx, order, *expect),
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
            guard.as_str(),
            subject,
            *bucket,
            1,
            *delta,
            limit.unwrap_or(u64::MAX),
        ),
        Op::Count { key, delta, limit } => count(tx, key, *delta, *limit),
        Op::CountWindow {
            guard,
            subject,
            bucket,
            span,
            delta,
            limit,
        } => count_window(tx, guard.as_str(), subject, *bucket, *span, *delta, *limit),
        Op::InsertReceipt { key, receipt } => {
            let key = receipt_key(key);
            let body = to_json("receipts", &key, receipt)?;
            let n = tx
                .prepare_cached(
                    "INSERT INTO receipts (key, body) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                )?
                .execute(params![key, body])?;
            Ok(n == 1)
        }
        Op::Hold { order, until } => {
            match until {
                Some(t) => {
                    let (secs, nanos) = instant(*t);
                    tx.prepare_cached(
                        "INSERT INTO holds (order_id, at, at_nanos) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (order_id) DO UPDATE SET at = ?2, at_nanos = ?3",
                    )?
                    .execute(params![order.as_str(), secs, nanos])?;
                }
                None => {
                    tx.prepare_cached("DELETE FROM holds WHERE order_id = ?1")?
                        .execute(params![order.as_str()])?;
                }
            }
            Ok(true)
        }
        Op::Emit { event } => {
            let body = to_json("events", "new", event)?;
            tx.prepare_cached("INSERT INTO events (body) VALUES (?1)")?
                .execute(params![body])?;
            Ok(true)
        }
    }
}

/// Writes a template or campaign row (`table` is one of our constants).
fn put_plain(
    tx: &Transaction<'_>,
    table: &'static str,
    id: &str,
    body: &str,
    expect: Expect,
) -> Result<bool, StoreError> {
    let n = match expect {
        Expect::Absent => tx
            .prepare_cached(&format!(
                "INSERT INTO {table} (id, version, body) VALUES (?1, 1, ?2) \
                 ON CONFLICT (id) DO NOTHING"
            ))?
            .execute(params![id, body])?,
        Expect::Version(v) => {
            let Ok(v) = i64::try_from(v) else {
                return Ok(false); // no stored version is that large
            };
            tx.prepare_cached(&format!(
                "UPDATE {table} SET version = version + 1, body = ?2 WHERE id = ?1 AND version = ?3"
            ))?
            .execute(params![id, body, v])?
        }
    };
    Ok(n == 1)
}

fn put_coupon(tx: &Transaction<'_>, coupon: &Coupon, expect: Expect) -> Result<bool, StoreError> {
    let id = coupon.id.as_str();
    let body = to_json("coupons", id, coupon)?;
    let c = coupon_columns(coupon);
    let n = match expect {
        Expect::Absent => tx
            .prepare_cached(
                "INSERT INTO coupons (id, template, owner, order_id, state, valid_until, \
                 valid_until_nanos, hold_until, hold_until_nanos, due_at, due_at_nanos, \
                 version, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12) \
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                id,
                coupon.template.as_str(),
                coupon.owner.as_str(),
                c.order,
                c.state,
                c.valid_until.0,
                c.valid_until.1,
                c.hold_until.0,
                c.hold_until.1,
                c.due_at.0,
                c.due_at.1,
                body,
            ])?,
        Expect::Version(v) => {
            let Ok(v) = i64::try_from(v) else {
                return Ok(false);
            };
            tx.prepare_cached(
                "UPDATE coupons SET template = ?2, owner = ?3, order_id = ?4, state = ?5, \
                 valid_until = ?6, valid_until_nanos = ?7, hold_until = ?8, \
                 hold_until_nanos = ?9, due_at = ?10, due_at_nanos = ?11, body = ?12, \
                 version = version + 1 \
                 WHERE id = ?1 AND version = ?13",
            )?
            .execute(params![
                id,
                coupon.template.as_str(),
                coupon.owner.as_str(),
                c.order,
                c.state,
                c.valid_until.0,
                c.valid_until.1,
                c.hold_until.0,
                c.hold_until.1,
                c.due_at.0,
                c.due_at.1,
                body,
                v,
            ])?
        }
    };
    Ok(n == 1)
}

fn put_order(tx: &Transaction<'_>, order: &Order, expect: Expect) -> Result<bool, StoreError> {
    let id = order.id.as_str();
    let body = to_json("orders", id, order)?;
    let (buyer, state) = (order.buyer.as_str(), order.state.name());
    let (secs, nanos) = instant(order.updated_at);
    let n = match expect {
        Expect::Absent => tx
            .prepare_cached(
                "INSERT INTO orders (id, version, buyer, state, updated_at, updated_at_nanos, \
                 body) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![id, buyer, state, secs, nanos, body])?,
        Expect::Version(v) => {
            let Ok(v) = i64::try_from(v) else {
                return Ok(false); // no stored version is that large
            };
            tx.prepare_cached(
                "UPDATE orders SET version = version + 1, buyer = ?2, state = ?3, \
                 updated_at = ?4, updated_at_nanos = ?5, body = ?6 \
                 WHERE id = ?1 AND version = ?7",
            )?
            .execute(params![id, buyer, state, secs, nanos, body, v])?
        }
    };
    Ok(n == 1)
}

/// `value + delta` must land in `0..=limit`: as bounds on the stored value,
/// `value ∈ [-delta, limit - delta]` (clamped to the column's range `0..=i64::MAX`).
fn count(
    tx: &Transaction<'_>,
    key: &CounterKey,
    delta: i64,
    limit: Option<u64>,
) -> Result<bool, StoreError> {
    let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let lo = (-i128::from(delta)).max(0);
    let hi = (i128::from(limit) - i128::from(delta)).min(i128::from(i64::MAX));
    let key = counter_key(key);
    if lo <= hi {
        // Both bounds are within 0..=i64::MAX here.
        let (lo, hi) = (lo as i64, hi as i64);
        let n = tx
            .prepare_cached(
                "UPDATE counters SET value = value + ?2 WHERE key = ?1 AND value BETWEEN ?3 AND ?4",
            )?
            .execute(params![key, delta, lo, hi])?;
        if n == 1 {
            return Ok(true);
        }
    }
    // Either the counter is new (its value is zero) or the change would break the limit.
    let exists = tx
        .prepare_cached("SELECT 1 FROM counters WHERE key = ?1")?
        .exists(params![key])?;
    if exists || !(0..=limit).contains(&delta) {
        return Ok(false);
    }
    if delta != 0 {
        tx.prepare_cached("INSERT INTO counters (key, value) VALUES (?1, ?2)")?
            .execute(params![key, delta])?;
    }
    Ok(true)
}

/// Adds `delta` to a guard's bucket if the window's sum stays within `limit` and the bucket
/// stays non-negative; drops the buckets the window no longer sums.
fn count_window(
    tx: &Transaction<'_>,
    guard: &str,
    subject: &str,
    bucket: i64,
    span: u32,
    delta: i64,
    limit: u64,
) -> Result<bool, StoreError> {
    let oldest = coupons::repository::oldest_bucket(bucket, span);
    let (sum, current): (i64, i64) = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(value), 0), COALESCE(SUM(CASE WHEN bucket = ?4 THEN value END), 0) \
             FROM guard_counts WHERE guard = ?1 AND subject = ?2 AND bucket BETWEEN ?3 AND ?4",
        )?
        .query_row(params![guard, subject, oldest, bucket], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let next = i128::from(sum) + i128::from(delta);
    if i128::from(current) + i128::from(delta) < 0 || next > i128::from(limit) {
        return Ok(false);
    }
    // A negative change updates the existing row (checked above to stay non-negative): an
    // insert of a negative value would break the column's CHECK before the upsert applies.
    let sql = if delta < 0 {
        "UPDATE guard_counts SET value = value + ?4 WHERE guard = ?1 AND subject = ?2 AND bucket = ?3"
    } else {
        "INSERT INTO guard_counts (guard, subject, bucket, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (guard, subject, bucket) DO UPDATE SET value = value + ?4"
    };
    tx.prepare_cached(sql)?
        .execute(params![guard, subject, bucket, delta])?;
    tx.prepare_cached(
        "DELETE FROM guard_counts WHERE guard = ?1 AND subject = ?2 AND bucket < ?3",
    )?
    .execute(params![guard, subject, oldest])?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// The trait

impl Repository for SqliteStore {
    type Error = StoreError;

    fn template(
        &self,
        id: &TemplateId,
    ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT version, body FROM templates WHERE id = ?1")?;
        let mut rows = stmt.query(params![id.as_str()])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let version = version_of("templates", id.as_str(), row.get(0)?)?;
        self.cached_template(id.as_str(), version, text(row, 1)?)
            .map(Some)
    }

    fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached("SELECT id, version, body FROM templates ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id = text(row, 0)?;
            let version = version_of("templates", id, row.get(1)?)?;
            out.push(self.cached_template(id, version, text(row, 2)?)?);
        }
        Ok(out)
    }

    fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT version, body FROM campaigns WHERE id = ?1")?;
        let mut rows = stmt.query(params![id.as_str()])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            version: version_of("campaigns", id.as_str(), row.get(0)?)?,
            value: from_json("campaigns", id.as_str(), text(row, 1)?)?,
        }))
    }

    fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, StoreError> {
        let conn = self.conn()?;
        let found = collect_coupons(
            &conn,
            "SELECT id, version, body FROM coupons WHERE id = ?1",
            params![id.as_str()],
        )?;
        Ok(found.into_iter().next())
    }

    fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let conn = self.conn()?;
        collect_coupons(&conn, WALLET_SQL, params![user.as_str()])
    }

    fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let conn = self.conn()?;
        collect_coupons(&conn, ORDER_SQL, params![order.as_str()])
    }

    fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Versioned<Coupon>>, StoreError> {
        let conn = self.conn()?;
        let (secs, nanos) = instant(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        collect_coupons(&conn, DUE_SQL, params![secs, nanos, limit])
    }

    fn held(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<OrderId>, StoreError> {
        let conn = self.conn()?;
        let (secs, nanos) = instant(now);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare_cached(HELD_SQL)?;
        let mut rows = stmt.query(params![secs, nanos, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id = text(row, 0)?;
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
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT version, body FROM orders WHERE id = ?1")?;
        let mut rows = stmt.query(params![id.as_str()])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            version: version_of("orders", id.as_str(), row.get(0)?)?,
            value: from_json("orders", id.as_str(), text(row, 1)?)?,
        }))
    }

    fn counter(&self, key: &CounterKey) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let value: Option<i64> = match key {
            CounterKey::Guard {
                guard,
                subject,
                bucket,
            } => conn
                .prepare_cached(
                    "SELECT value FROM guard_counts WHERE guard = ?1 AND subject = ?2 AND bucket = ?3",
                )?
                .query_row(params![guard.as_str(), subject.as_str(), bucket], |r| r.get(0))
                .optional()?,
            other => conn
                .prepare_cached("SELECT value FROM counters WHERE key = ?1")?
                .query_row(params![counter_key(other)], |r| r.get(0))
                .optional()?,
        };
        let key = counter_key(key);
        let value = value.unwrap_or(0);
        u64::try_from(value).map_err(|_| StoreError::Corrupt {
            table: "counters",
            key,
            column: "value",
            value,
        })
    }

    fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, StoreError> {
        let conn = self.conn()?;
        let key = receipt_key(key);
        let mut stmt = conn.prepare_cached("SELECT body FROM receipts WHERE key = ?1")?;
        let mut rows = stmt.query(params![key])?;
        match rows.next()? {
            None => Ok(None),
            Some(row) => Ok(Some(from_json("receipts", &key, text(row, 0)?)?)),
        }
    }

    fn events(&self, after: Sequence, limit: usize) -> Result<Vec<Logged>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT seq, body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![after, limit])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let key = seq.to_string();
            let event = from_json("events", &key, text(row, 1)?)?;
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
        let mut conn = self.conn()?;
        let _writer = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (index, op) in batch.ops.iter().enumerate() {
            if !apply(&tx, op)? {
                tx.rollback()?;
                return Ok(Commit::Conflict { index });
            }
        }
        tx.commit()?;
        Ok(Commit::Applied)
        // On an error the transaction is rolled back when `tx` drops.
    }
}

impl TrimEvents for SqliteStore {
    fn trim_events(&self, through: Sequence) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let _writer = lock(&self.writer);
        let through = i64::try_from(through).unwrap_or(i64::MAX);
        let n = conn
            .prepare_cached("DELETE FROM events WHERE seq <= ?1")?
            .execute(params![through])?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

impl SqliteStore {
    /// The query plans of the wallet, order and due queries, one line per step (for tests).
    ///
    /// # Errors
    /// [`StoreError::Sqlite`].
    pub fn query_plans(&self) -> Result<Vec<(&'static str, String)>, StoreError> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        for (name, sql) in [
            ("wallet", WALLET_SQL),
            ("order", ORDER_SQL),
            ("due", DUE_SQL),
            ("held", HELD_SQL),
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            // Parameters left unbound are NULL: the plan does not depend on them.
            let mut rows = stmt.raw_query();
            let mut plan = String::new();
            while let Some(row) = rows.next()? {
                plan.push_str(text(row, 3)?);
                plan.push('\n');
            }
            out.push((name, plan));
        }
        Ok(out)
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
}
