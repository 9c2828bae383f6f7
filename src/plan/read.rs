//! Reads as data: a pure read machine says what to read next ([`Read`]) from what it was
//! given ([`Got`]), until it is [`Ready`](Next::Ready). The service keeps one `fetch` (a
//! [`Read`] against the store) and one loop that drives a machine; an async twin of the
//! repository rewrites only those two.

use std::sync::Arc;

use super::Denied;
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
    Err(Denied::Inconsistent(what))
}
