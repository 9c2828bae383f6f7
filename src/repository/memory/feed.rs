//! The event feed: events in chunks, oldest first, numbered by consecutive sequences.

use std::collections::VecDeque;

use crate::events::{Logged, Sequence};

/// Events per chunk of the feed: appending never moves the events already stored.
pub(super) const FEED_CHUNK: usize = 4096;

/// The event feed in chunks of [`FEED_CHUNK`], oldest first; sequences are consecutive.
#[derive(Debug, Default)]
pub(super) struct Feed {
    pub(super) chunks: VecDeque<Vec<Logged>>,
    pub(super) len: usize,
}

impl Feed {
    pub(super) fn push(&mut self, e: Logged) {
        match self.chunks.back_mut() {
            Some(c) if c.len() < FEED_CHUNK => c.push(e),
            _ => {
                let mut c = Vec::with_capacity(FEED_CHUNK);
                c.push(e);
                self.chunks.push_back(c);
            }
        }
        self.len += 1;
    }

    pub(super) fn first_seq(&self) -> Option<Sequence> {
        self.chunks.front().and_then(|c| c.first()).map(|e| e.seq)
    }

    /// Up to `limit` events with a sequence above `after`.
    pub(super) fn after(&self, after: Sequence, limit: usize) -> Vec<Logged> {
        let Some(first) = self.first_seq() else {
            return Vec::new();
        };
        // Sequences are consecutive: the wanted event's position is its distance from the
        // first one.
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
            let take = limit - out.len();
            out.extend(c.iter().skip(from).take(take).cloned());
            pos += c.len();
        }
        out
    }

    /// Drops the events with a sequence at or below `through`.
    pub(super) fn trim(&mut self, through: Sequence) -> u64 {
        let mut n = 0u64;
        while let Some(c) = self.chunks.front_mut() {
            if c.last().is_some_and(|e| e.seq <= through) {
                n += c.len() as u64;
                self.len -= c.len();
                self.chunks.pop_front();
                continue;
            }
            let cut = c.iter().take_while(|e| e.seq <= through).count();
            c.drain(..cut);
            n += cut as u64;
            self.len -= cut;
            break;
        }
        n
    }
}
