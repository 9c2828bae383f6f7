//! One runner for every operation: read, plan, commit, interpret a conflict, retry, replay.
//!
//! The plans, the replays and what a conflict means are pure, in [`crate::plan`] (see its
//! docs: an async twin of [`Repository`] reuses every plan and replay and rewrites only
//! `fetch`, `drive` and this loop). A plan that fails is first checked against the receipt,
//! so a retried request whose record moved on answers with what it did, not with the later
//! state's error.

use crate::lifecycle::LifecycleError;
use crate::plan::read::Reads;
use crate::plan::{Attempt, Meaning, On, Plan, Step};
use crate::repository::{Batch, Commit, Repository};

use super::{Res, Service};

/// How a run ended: the plan committed (its batch, for an answer taken from it), or an answer.
pub(crate) enum Ran<T, A, M> {
    /// This plan's batch was applied.
    Applied(Plan<A, M>),
    /// Answered without this run's write: a replay, or nothing to do.
    Answered(T),
}

impl<R: Repository> Service<R> {
    /// Runs an operation whose plan answers as it commits; see [`run_plan`](Self::run_plan).
    pub(crate) fn run<T, M: Meaning, P: Reads<Out = Option<T>>>(
        &self,
        operation: &'static str,
        replay: impl Fn() -> P,
        plan: impl FnMut(Attempt) -> Res<Step<T, T, M>, R>,
    ) -> Res<T, R> {
        Ok(match self.run_plan(operation, replay, plan)? {
            Ran::Applied(plan) => plan.answer,
            Ran::Answered(answer) => answer,
        })
    }

    /// Runs an operation: `plan` (reads, then decides) up to `max_attempts` times; `replay`
    /// (a read machine) answers from the request's receipt; a conflict does what the plan's
    /// [`Meaning`] says.
    pub(crate) fn run_plan<T, A, M: Meaning, P: Reads<Out = Option<T>>>(
        &self,
        operation: &'static str,
        replay: impl Fn() -> P,
        mut plan: impl FnMut(Attempt) -> Res<Step<T, A, M>, R>,
    ) -> Res<Ran<T, A, M>, R> {
        let replay = || self.drive(replay());
        // Boxed: the common path, which never meets a limit, only checks a pointer.
        let mut last: Option<Box<LifecycleError>> = None;
        let mut attempt = Attempt::default();
        while attempt.number < self.attempts() {
            let step = match plan(attempt) {
                Ok(step) => step,
                Err(e) => return replay()?.map(Ran::Answered).ok_or(e),
            };
            attempt.number += 1;
            let plan = match step {
                Step::Done(answer) => return Ok(Ran::Answered(replay()?.unwrap_or(answer))),
                Step::Commit(plan) => plan,
            };
            let index = match self.commit(&plan.batch)? {
                Commit::Applied => return Ok(Ran::Applied(plan)),
                Commit::Conflict { index } => index,
            };
            match plan.meaning.on(index) {
                On::Replay => {
                    if let Some(answer) = replay()? {
                        return Ok(Ran::Answered(answer));
                    }
                }
                On::Refuse(e) => return replay()?.map(Ran::Answered).ok_or_else(|| e.into()),
                On::Record(e, event) => {
                    if let Some(answer) = replay()? {
                        return Ok(Ran::Answered(answer));
                    }
                    let mut batch = Batch::new();
                    batch.push(crate::repository::Op::Emit { event: *event });
                    let _ignored = self.repo.commit(&batch);
                    return Err(e.into());
                }
                On::Limit(e) => last = Some(Box::new(e)),
                On::Collision => attempt.salt = attempt.salt.saturating_add(1),
                On::Retry => {}
            }
        }
        match last {
            Some(e) => Err((*e).into()),
            None => self.contention(operation),
        }
    }
}
