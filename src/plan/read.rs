//! Reads as data: a pure read machine says what to read next ([`Read`]) from what it was
//! given ([`Got`]), until it is [`Ready`](Next::Ready). The service keeps one `fetch` (a
//! [`Read`] against the store) and one loop that drives a machine; an async twin of the
//! repository rewrites only those two.

use std::sync::Arc;

use super::Denied;
use super::claim::{Claimed, Found, RedeemRequest, Redeemed, found, lookup_keys};
use crate::id::{CouponId, OrderId, TemplateId, UserId};
use crate::lifecycle::{Coupon, Order, TemplateRecord};
use crate::repository::{CounterKey, Receipt, ReceiptKey, Versioned};

/// One read a machine asks for. Every record read is found or `NotFound`.
#[derive(Clone, Debug)]
pub(crate) enum Read {
    /// An order record.
    Order(OrderId),
    /// Coupon records, each found, in the order asked.
    Coupons(Vec<CouponId>),
    /// A template record.
    Template(TemplateId),
    /// A template record that may be missing.
    TemplateIfAny(TemplateId),
    /// A buyer's live coupons.
    LiveCoupons(UserId),
    /// A receipt, if any.
    Receipt(ReceiptKey),
    /// A counter's value.
    Counter(CounterKey),
}

/// What a [`Read`] found.
#[derive(Debug)]
pub(crate) enum Got {
    /// For [`Read::Order`] (boxed: an order is much larger than the other answers).
    Order(Box<Versioned<Order>>),
    /// For [`Read::Coupons`] and [`Read::LiveCoupons`].
    Coupons(Vec<Versioned<Coupon>>),
    /// For [`Read::Template`].
    Template(Versioned<Arc<TemplateRecord>>),
    /// For [`Read::TemplateIfAny`], with the id asked.
    TemplateIfAny(TemplateId, Option<Versioned<Arc<TemplateRecord>>>),
    /// For [`Read::Receipt`], with the key asked.
    Receipt(ReceiptKey, Option<Receipt>),
    /// For [`Read::Counter`], with the key asked.
    Count(CounterKey, u64),
}

/// A machine's next move: a read, or what it read.
#[derive(Debug)]
pub(crate) enum Next<T> {
    /// Read this and hand the answer back.
    Read(Read),
    /// Done reading.
    Ready(T),
}

/// A pure read sequence: `next(None)` first, then `next(Some(got))` with each read's answer.
pub(crate) trait Reads {
    /// What the reads make.
    type Out;
    /// The next read, or the result; [`Denied::Inconsistent`] when the reads do not settle.
    fn next(&mut self, got: Option<Got>) -> Result<Next<Self::Out>, Denied>;
}

/// An answer of a kind the machine did not ask for (the fetch answers each read in kind).
pub(crate) fn unexpected<T>(what: &'static str) -> Result<T, Denied> {
    Err(Denied::inconsistent(what))
}

/// What a typed code's lookup ([`CodeRead`]) ends with.
pub(crate) enum Looked {
    /// Answered without a write: this account's coupon (replayed), or a shared promo code.
    Answer(Redeemed),
    /// A one-time code nobody redeemed yet: its template, to redeem it.
    Free(TemplateId, Arc<TemplateRecord>),
}

/// A typed code's lookup as a read machine: the receipt of its redemption and of its
/// registration (always both, so every failure costs the same two reads, see [`found`]), then
/// the coupon this account redeemed it for or the template of a free code.
pub(crate) struct CodeRead<'a> {
    request: &'a RedeemRequest,
    receipts: Vec<Option<Receipt>>,
    free: Option<TemplateId>,
}

impl CodeRead<'_> {
    /// Looks up `request`'s code.
    pub(crate) fn new(request: &RedeemRequest) -> CodeRead<'_> {
        let (receipts, free) = (Vec::with_capacity(2), None);
        CodeRead {
            request,
            receipts,
            free,
        }
    }
}

impl Reads for CodeRead<'_> {
    type Out = Looked;

    fn next(&mut self, got: Option<Got>) -> Result<Next<Looked>, Denied> {
        match (got, self.free.take()) {
            (None, _) => {}
            (Some(Got::Receipt(_, receipt)), _) => self.receipts.push(receipt),
            (Some(Got::Coupons(mut coupons)), _) => match coupons.pop() {
                Some(c) => {
                    let (coupon, replayed) = (c.value, true);
                    let claimed = Claimed { coupon, replayed };
                    return Ok(Next::Ready(Looked::Answer(Redeemed::Coupon(claimed))));
                }
                None => return unexpected("read code"),
            },
            (Some(Got::Template(r)), Some(t)) => return Ok(Next::Ready(Looked::Free(t, r.value))),
            _ => return unexpected("read code"),
        }
        if let Some(key) = lookup_keys(&self.request.code)
            .into_iter()
            .nth(self.receipts.len())
        {
            return Ok(Next::Read(Read::Receipt(key)));
        }
        let registered = self.receipts.pop().flatten();
        let redeemed = self.receipts.pop().flatten();
        Ok(match found(self.request, redeemed, registered)? {
            Found::Mine(coupon) => Next::Read(Read::Coupons(vec![coupon])),
            Found::Shared(template) => {
                let code = self.request.code.clone();
                Next::Ready(Looked::Answer(Redeemed::PromoCode { code, template }))
            }
            Found::Free(template) => {
                self.free = Some(template.clone());
                Next::Read(Read::Template(template))
            }
        })
    }
}

/// A read machine from a first read and a step that takes each answer: the shape of a replay
/// (the request's receipt, then the record it names).
pub(crate) struct Steps<F> {
    first: Option<Read>,
    step: F,
}

impl<T, F: FnMut(Got) -> Result<Next<T>, Denied>> Steps<F> {
    /// Reads `first`, then hands every answer to `step`.
    pub(crate) fn new(first: Read, step: F) -> Steps<F> {
        Steps {
            first: Some(first),
            step,
        }
    }
}

impl<T, F: FnMut(Got) -> Result<Next<T>, Denied>> Reads for Steps<F> {
    type Out = T;

    fn next(&mut self, got: Option<Got>) -> Result<Next<T>, Denied> {
        match (got, self.first.take()) {
            (None, Some(first)) => Ok(Next::Read(first)),
            (Some(got), None) => (self.step)(got),
            _ => unexpected("read steps"),
        }
    }
}

/// The machine of an operation with no replay: it answers `None` without a read.
pub(crate) struct NoReplay<T>(std::marker::PhantomData<T>);

/// No replay (see [`NoReplay`]).
pub(crate) fn no_replay<T>() -> NoReplay<T> {
    NoReplay(std::marker::PhantomData)
}

impl<T> Reads for NoReplay<T> {
    type Out = Option<T>;

    fn next(&mut self, _: Option<Got>) -> Result<Next<Option<T>>, Denied> {
        Ok(Next::Ready(None))
    }
}
