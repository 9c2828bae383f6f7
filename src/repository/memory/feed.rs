//! The event feed: entries in chunks, oldest first, numbered by consecutive sequences (an
//! entry's sequence is its position, so none is stored).
//!
//! An `issued` event whose facts are its coupon slot's (what the batch that put the coupon
//! says) is kept as that slot's number, its instant and claim mode: 24 bytes instead of a
//! boxed event of ~180. [`Feed::after`] builds the public [`Event`] when it is read. A later
//! write that changes such a slot's facts turns its entries back into whole events first
//! (`Inner::materialize`), so an entry always reads as it was written.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use crate::events::{Event, Logged, Sequence};
use crate::lifecycle::ClaimMode;

/// Entries per chunk of the feed: appending never moves the entries already stored.
pub(super) const FEED_CHUNK: usize = 4096;

/// One event of the feed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Entry {
    /// An `issued` event of the coupon in `slot`, whose facts it reads from the slot.
    Issued {
        /// When.
        at: DateTime<Utc>,
        /// The coupon's slot.
        slot: u32,
        /// How it was claimed.
        mode: ClaimMode,
    },
    /// Any other event.
    Event(Box<Event>),
}

/// The event feed in chunks of [`FEED_CHUNK`], oldest first.
#[derive(Debug)]
pub(super) struct Feed {
    chunks: VecDeque<Vec<Entry>>,
    /// Entries kept.
    pub(super) len: usize,
    /// The sequence of the next entry appended (the last assigned + 1).
    next: Sequence,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            chunks: VecDeque::new(),
            len: 0,
            next: 1,
        }
    }
}

impl Feed {
    /// Appends an entry; returns its sequence.
    pub(super) fn push(&mut self, e: Entry) -> Sequence {
        match self.chunks.back_mut() {
            Some(c) if c.len() < FEED_CHUNK => c.push(e),
            _ => {
                let mut c = Vec::with_capacity(FEED_CHUNK);
                c.push(e);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
        let seq = self.next;
        self.next = self.next.saturating_add(1);
        seq
    }

    /// The sequence of the oldest entry kept (or of the next one, when none is).
    fn first(&self) -> Sequence {
        self.next.saturating_sub(self.len as u64)
    }

    /// Up to `limit` events with a sequence above `after`, each built by `event`.
    pub(super) fn after(
        &self,
        after: Sequence,
        limit: usize,
        event: impl Fn(&Entry) -> Option<Event>,
    ) -> Vec<Logged> {
        let first = self.first();
        let skip =
            usize::try_from(after.saturating_add(1).saturating_sub(first)).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(self.len.saturating_sub(skip)));
        let mut pos = 0usize;
        for c in &self.chunks {
            if out.len() >= limit {
                break;
            }
            if pos + c.len() <= skip {
                pos += c.len();
                continue;
            }
            let from = skip.saturating_sub(pos);
            for (i, e) in c.iter().enumerate().skip(from) {
                if out.len() >= limit {
                    break;
                }
                if let Some(event) = event(e) {
                    out.push(Logged {
                        seq: first + (pos + i) as u64,
                        event,
                    });
                }
            }
            pos += c.len();
        }
        out
    }

    /// Every entry, oldest first, to rewrite in place.
    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.chunks.iter_mut().flatten()
    }

    /// Drops the events with a sequence at or below `through`; returns how many.
    pub(super) fn trim(&mut self, through: Sequence) -> u64 {
        let first = self.first();
        let want = through.saturating_add(1).saturating_sub(first);
        let mut left = usize::try_from(want).unwrap_or(usize::MAX).min(self.len);
        let n = left as u64;
        while left > 0 {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            if c.len() <= left {
                left -= c.len();
                self.len -= c.len();
                self.chunks.pop_front();
            } else {
                c.drain(..left);
                self.len -= left;
                left = 0;
            }
        }
        n
    }
}
