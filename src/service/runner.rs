//! One runner for every operation: read, plan, commit, interpret a conflict, retry, replay.
//!
//! An operation is split in three:
//! - a **read** of the records it needs (the only part that talks to the store besides the
//!   commit);
//! - a pure **plan**: from what was read, the request and `now`, a [`Plan`] — the batch, what
//!   each op's conflict means ([`On`]) and the answer if it applies — or an answer with no
//!   write ([`Step::Done`]), or a typed error;
//! - a **replay**: the first outcome under the request's idempotency key, read from its
//!   receipt, or a `KeyReused` error when the key was used for a different request.
//!
//! [`Service::run`] wires them: plan, commit, and on a conflict do what the op's [`On`] says —
//! answer from the receipt, give up with a typed refusal, or re-read and plan again, at most
//! [`ServiceConfig::max_attempts`](super::ServiceConfig::max_attempts) times. A plan that fails
//! is first checked against the receipt, so a retried request whose record moved on answers
//! with what it did, not with the later state's error.
//!
//! An async twin of [`Repository`] reuses every plan unchanged: only the read and this loop
//! (a dozen lines) are written again with `.await`.

use chrono::{DateTime, Utc};

use crate::events::{Event, EventKind};
use crate::lifecycle::LifecycleError;
use crate::repository::{Batch, Commit, Op, Repository};

use super::{Res, Service};

/// What a conflict on one op of a batch means.
#[derive(Clone, Debug)]
pub(crate) enum On {
    /// The receipt of this request's key exists: answer from it.
    Replay,
    /// A record changed under us: read again and plan again.
    Retry,
    /// A refusal that another attempt cannot change.
    Refuse(LifecycleError),
    /// A limit reached: plan again (another attempt may choose differently), and report this
    /// if every attempt ends so.
    Limit(LifecycleError),
}

/// A batch with the meaning of each of its ops' conflicts, and the answer if it applies.
#[derive(Debug)]
pub(crate) struct Plan<T> {
    pub(crate) batch: Batch,
    pub(crate) on: Vec<On>,
    pub(crate) answer: T,
}

impl<T> Plan<T> {
    /// An empty plan that answers `answer`.
    pub(crate) fn new(answer: T) -> Plan<T> {
        Plan {
            batch: Batch::new(),
            on: Vec::new(),
            answer,
        }
    }

    /// The same ops with another answer.
    pub(crate) fn answer<U>(self, answer: U) -> Plan<U> {
        Plan {
            batch: self.batch,
            on: self.on,
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
        self.on.push(on);
    }
}

/// What a plan decided.
#[derive(Debug)]
pub(crate) enum Step<T> {
    /// Write this.
    Commit(Plan<T>),
    /// Nothing to write: the record is already where the request leads (another request got
    /// it there). The answer, unless this request's own receipt says otherwise.
    Done(T),
}

impl<R: Repository> Service<R> {
    /// Runs an operation: `plan` (reads, then decides) up to `max_attempts` times; `replay`
    /// answers from the request's receipt.
    pub(crate) fn run<T>(
        &self,
        operation: &'static str,
        replay: impl Fn() -> Res<Option<T>, R>,
        mut plan: impl FnMut() -> Res<Step<T>, R>,
    ) -> Res<T, R> {
        let mut last: Option<LifecycleError> = None;
        for _ in 0..self.attempts() {
            let step = match plan() {
                Ok(step) => step,
                Err(e) => return replay()?.ok_or(e),
            };
            let plan = match step {
                Step::Done(answer) => return Ok(replay()?.unwrap_or(answer)),
                Step::Commit(plan) => plan,
            };
            match self.commit(&plan.batch)? {
                Commit::Applied => return Ok(plan.answer),
                Commit::Conflict { index } => match plan.on.get(index) {
                    Some(On::Replay) => {
                        if let Some(answer) = replay()? {
                            return Ok(answer);
                        }
                    }
                    Some(On::Refuse(e)) => return replay()?.ok_or_else(|| e.clone().into()),
                    Some(On::Limit(e)) => last = Some(e.clone()),
                    Some(On::Retry) | None => {}
                },
            }
        }
        match last {
            Some(e) => Err(e.into()),
            None => self.contention(operation),
        }
    }
}
