//! Pure plans: what each operation of the [`Service`](crate::service::Service) writes, and
//! what each write's conflict means.
//!
//! Every operation is split in three:
//! - a **read** of the records it needs — a pure read machine ([`read::Reads`]: it says what
//!   to read next from what it was given) wherever the reads depend on each other, so the
//!   only code that talks to a store besides the commit is the service's one `fetch`;
//! - a pure **plan** here: from what was read, the request and `now`, a [`Plan`] — the
//!   [`Batch`], what a conflict on each of its ops means ([`On`], or any [`Meaning`]) and the
//!   answer if it applies — or an answer with no write ([`Step::Done`]), or a typed error;
//! - a **replay**, also a read machine: the request's receipt, checked against the request's
//!   fingerprint, then the record it names, as the first outcome
//!   ([`claim::claim_replay`], [`lock::lock_replay`], [`order::step_replay`],
//!   [`order::void_replay`]; [`read::no_replay`] for operations without a key).
//!
//! One runner (`Service::run` in `src/service/runner.rs`) wires them for every operation:
//! plan, commit, and on a conflict do what the op's [`On`] says — answer from the receipt,
//! refuse (recording the refusal in the feed when [`On::Record`] says so), plan again with the
//! next coupon id ([`On::Collision`]) or read again and plan again — at most
//! [`ServiceConfig::max_attempts`](crate::service::ServiceConfig::max_attempts) times.
//!
//! No function here reads a store or the clock: each takes the records read, the request and
//! `now`, and returns values. That is what makes a later **async twin** of
//! [`Repository`](crate::repository::Repository) cheap: an `AsyncService` reuses every plan,
//! read machine and replay here unchanged (same inputs, same [`Plan`], same [`Meaning`]) and
//! rewrites only the service's `fetch` (one [`read::Read`] against the store), `drive` (the
//! loop that feeds a machine) and the runner's loop — a few dozen lines — with `.await` on
//! each read and on `commit`.
//!
//! One file per operation: [`claim`] (claims and one-time codes), [`lock`] (pricing and
//! holding an order, its fingerprint), [`order`] (pay, cancel, complete, refund, release,
//! void), [`template`] (template and campaign transitions), [`text`] (the fixed text form of
//! requests that fingerprints hash) and [`ids`] (the coupon-id scheme, FNV-1a).

pub(crate) mod claim;
pub(crate) mod ids;
pub(crate) mod lock;
pub(crate) mod order;
pub(crate) mod read;
pub(crate) mod template;
pub(crate) mod text;

use chrono::{DateTime, Utc};

use crate::checkout::CheckoutError;
use crate::events::{Event, EventKind};
use crate::guard::GuardError;
use crate::id::IdempotencyKey;
use crate::lifecycle::LifecycleError;
use crate::repository::{Batch, Op, ReceiptKey};

/// What a conflict on one op of a batch means.
#[derive(Clone, Debug)]
pub(crate) enum On {
    /// The receipt of this request's key exists: answer from it (or plan again if it is gone).
    Replay,
    /// A record changed under us: read again and plan again.
    Retry,
    /// A refusal that another attempt cannot change.
    Refuse(LifecycleError),
    /// A refusal that another attempt cannot change, recorded in the feed: the event is
    /// committed on its own, and a store failure while writing it is not reported (the
    /// request changed nothing, so nothing is lost but the count).
    Record(LifecycleError, Box<Event>),
    /// A limit reached: plan again (another attempt may choose differently), and report this
    /// if every attempt ends so.
    Limit(LifecycleError),
    /// The id the plan chose for a new record is taken: plan again with the next salt
    /// ([`Attempt::salt`]).
    Collision,
}

/// What a conflict on each op of a plan's batch means: a list ([`Vec<On>`], one per op) or a
/// rule computed only when a conflict happens (the claim's hot path allocates nothing for it).
pub(crate) trait Meaning {
    /// What a conflict on op `index` means.
    fn on(&self, index: usize) -> On;
}

impl Meaning for Vec<On> {
    fn on(&self, index: usize) -> On {
        self.get(index).cloned().unwrap_or(On::Retry)
    }
}

/// Which attempt a plan is made for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attempt {
    /// 0 for the first attempt.
    pub(crate) number: u32,
    /// How many ids chosen so far were taken ([`On::Collision`]).
    pub(crate) salt: u32,
}

impl Attempt {
    /// What `read` finds, after a conflict; `None` on the first attempt, which a creation
    /// makes blind (its batch inserts only if absent).
    ///
    /// # Errors
    /// `read`'s.
    pub(crate) fn retried<T, E>(self, read: impl FnOnce() -> Result<T, E>) -> Result<Option<T>, E> {
        match self.number {
            0 => Ok(None),
            _ => read().map(Some),
        }
    }
}

/// A batch with the meaning of each of its ops' conflicts, and the answer if it applies.
#[derive(Debug)]
pub(crate) struct Plan<T, M = Vec<On>> {
    pub(crate) batch: Batch,
    pub(crate) meaning: M,
    pub(crate) answer: T,
}

impl<T> Plan<T> {
    /// An empty plan that answers `answer`.
    pub(crate) fn new(answer: T) -> Plan<T> {
        Plan {
            batch: Batch::new(),
            meaning: Vec::new(),
            answer,
        }
    }

    /// The same ops with another answer.
    pub(crate) fn answer<U>(self, answer: U) -> Plan<U> {
        Plan {
            batch: self.batch,
            meaning: self.meaning,
            answer,
        }
    }

    /// Appends an event (it never conflicts).
    pub(crate) fn emit(&mut self, at: DateTime<Utc>, kind: EventKind) {
        self.push(
            Op::Emit {
                event: Event { at, kind },
            },
            On::Retry,
        );
    }

    /// Adds an op and what its conflict means.
    pub(crate) fn push(&mut self, op: Op, on: On) {
        self.batch.push(op);
        self.meaning.push(on);
    }
}

/// What a plan decided.
#[derive(Debug)]
pub(crate) enum Step<T, A = T, M = Vec<On>> {
    /// Write this.
    Commit(Plan<A, M>),
    /// Nothing to write: the record is already where the request leads (another request got
    /// it there). The answer, unless this request's own receipt says otherwise.
    Done(T),
}

/// Why a plan refused, by layer; the service turns it into its
/// [`ServiceError`](crate::service::ServiceError).
#[derive(Debug)]
pub(crate) enum Denied {
    /// A transition or a limit.
    Lifecycle(LifecycleError),
    /// The checkout refused the selection.
    Checkout(CheckoutError),
    /// A guard needs context the request lacks.
    Guard(GuardError),
    /// What was read did not hang together (a record changed between two reads) on this many
    /// reads: the operation, and the reads made.
    Inconsistent(&'static str, u32),
}

impl Denied {
    /// What was read on one attempt does not hang together.
    pub(crate) fn inconsistent(operation: &'static str) -> Denied {
        Denied::Inconsistent(operation, 1)
    }
}

impl From<LifecycleError> for Denied {
    fn from(e: LifecycleError) -> Denied {
        Denied::Lifecycle(e)
    }
}

impl From<CheckoutError> for Denied {
    fn from(e: CheckoutError) -> Denied {
        Denied::Checkout(e)
    }
}

impl From<GuardError> for Denied {
    fn from(e: GuardError) -> Denied {
        Denied::Guard(e)
    }
}

/// Appends an event to a batch: it commits with the change or not at all.
pub(crate) fn emit(batch: &mut Batch, at: DateTime<Utc>, kind: EventKind) {
    batch.push(Op::Emit {
        event: Event::new(at, kind),
    });
}

/// The receipt key of an operation under a caller's idempotency key.
pub(crate) fn op_key(op: &'static str, key: &IdempotencyKey) -> ReceiptKey {
    ReceiptKey::Operation(op, key.clone())
}

/// The `KeyReused` refusal.
pub(crate) fn key_reused(key: &IdempotencyKey, operation: &'static str) -> LifecycleError {
    LifecycleError::KeyReused {
        key: key.clone(),
        operation,
    }
}

/// The receipt operations.
pub(crate) const OP_CLAIM: &str = "claim";
/// A lock.
pub(crate) const OP_LOCK: &str = "lock";
/// A payment.
pub(crate) const OP_PAY: &str = "pay";
/// A cancel.
pub(crate) const OP_CANCEL: &str = "cancel";
/// A completion.
pub(crate) const OP_COMPLETE: &str = "complete";
/// A refund.
pub(crate) const OP_REFUND: &str = "refund";
/// A void.
pub(crate) const OP_VOID: &str = "void";
