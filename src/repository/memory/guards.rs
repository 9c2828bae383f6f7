//! Guards' windowed counters ([`Op::CountWindow`](crate::repository::Op::CountWindow)):
//! (guard, subject) pairs interned once in one table, each with its buckets inline.
//!
//! A pair is found by one hash of its subject's text mixed with the guard's interned number,
//! in an open-addressing index of pair numbers; a subject up to 23 bytes is kept inline (no
//! allocation), a fixed window's single live bucket too (a rolling window with several live
//! buckets keeps them in a sorted vector).

use super::tables::{FxHasher, SlotIndex, Table, add};
use crate::id::GuardName;
use std::hash::Hasher;

/// A subject's text: inline when short, else on the heap.
#[derive(Debug)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

/// Subjects this long or shorter are kept inline.
const INLINE: usize = 23;

impl Text {
    fn new(s: &str) -> Text {
        let mut bytes = [0u8; INLINE];
        match (bytes.get_mut(..s.len()), u8::try_from(s.len())) {
            (Some(b), Ok(len)) => {
                b.copy_from_slice(s.as_bytes());
                Text::Inline { len, bytes }
            }
            _ => Text::Heap(s.into()),
        }
    }

    fn is(&self, s: &str) -> bool {
        match self {
            Text::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .is_some_and(|b| b == s.as_bytes()),
            Text::Heap(h) => &**h == s,
        }
    }
}

/// A pair's buckets: none, one (every fixed window, and a rolling one within its first
/// bucket), or several ordered by bucket.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) enum Buckets {
    /// No bucket.
    #[default]
    Empty,
    /// One bucket and its value.
    One(i64, u64),
    /// Several buckets, ordered.
    Many(Vec<(i64, u64)>),
}

impl Buckets {
    /// The value of bucket `at` and the sum of the buckets `from..=at`.
    pub(super) fn sums(&self, from: i64, at: i64) -> (u64, u64) {
        let one = |b: i64, n: u64| {
            if (from..=at).contains(&b) {
                (if b == at { n } else { 0 }, n)
            } else {
                (0, 0)
            }
        };
        match self {
            Buckets::Empty => (0, 0),
            Buckets::One(b, n) => one(*b, *n),
            Buckets::Many(v) => v.iter().fold((0, 0), |(current, sum), &(b, n)| {
                let (c, s) = one(b, n);
                (current.max(c), sum.saturating_add(s))
            }),
        }
    }

    /// Adds `delta` to bucket `at` (created at zero), then drops the buckets before `oldest`.
    pub(super) fn add(&mut self, at: i64, delta: i64, oldest: i64) {
        match self {
            Buckets::Empty => *self = Buckets::One(at, add(0, delta)),
            Buckets::One(b, n) if *b == at => *n = add(*n, delta),
            Buckets::One(b, _) if *b < oldest => *self = Buckets::One(at, add(0, delta)),
            Buckets::One(b, n) => {
                let mut v = vec![(*b, *n)];
                insert(&mut v, at, delta);
                *self = Buckets::Many(v);
            }
            Buckets::Many(v) => insert(v, at, delta),
        }
        if let Buckets::Many(v) = self {
            let keep = v.partition_point(|&(b, _)| b < oldest);
            if keep > 0 {
                v.drain(..keep);
            }
            match v.as_slice() {
                [] => *self = Buckets::Empty,
                [(b, n)] => *self = Buckets::One(*b, *n),
                _ => {}
            }
        }
    }
}

fn insert(v: &mut Vec<(i64, u64)>, at: i64, delta: i64) {
    match v.binary_search_by_key(&at, |&(b, _)| b) {
        Ok(i) => {
            if let Some((_, n)) = v.get_mut(i) {
                *n = add(*n, delta);
            }
        }
        Err(i) => v.insert(i, (at, add(0, delta))),
    }
}

/// One (guard, subject) pair.
#[derive(Debug)]
struct Pair {
    guard: u32,
    subject: Text,
    buckets: Buckets,
}

/// Where a pair is: found, or absent with its hash (to insert it without hashing again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairAt {
    /// The pair's number.
    Found(u32),
    /// Absent; its hash.
    Absent(u32),
}

/// Every guard's pairs.
#[derive(Debug, Default)]
pub(super) struct Guards {
    names: Table<GuardName, ()>,
    pairs: Vec<Pair>,
    index: SlotIndex,
}

impl Guards {
    /// Clears the name memo (it points at the last batch's names).
    pub(super) fn forget(&mut self) {
        self.names.forget();
    }

    fn hash(guard: u32, subject: &str) -> u32 {
        let mut h = FxHasher::default();
        h.write_u32(guard);
        h.write(subject.as_bytes());
        (h.finish() >> 32) as u32
    }

    /// Finds a pair (commit path: remembers the guard's name for the next look-up).
    pub(super) fn locate(&mut self, guard: &GuardName, subject: &str) -> PairAt {
        match self.names.find(guard) {
            Some(g) => self.locate_in(g, subject),
            // A guard never seen: no pair, and its number is not known yet.
            None => PairAt::Absent(NEW_GUARD),
        }
    }

    fn locate_in(&self, g: u32, subject: &str) -> PairAt {
        let hash = Self::hash(g, subject);
        let found = self.index.find(hash, |ix| {
            self.pairs
                .get(ix as usize)
                .is_some_and(|p| p.guard == g && p.subject.is(subject))
        });
        found.map_or(PairAt::Absent(hash), PairAt::Found)
    }

    /// A pair's buckets, if it exists (read path).
    pub(super) fn buckets(&self, guard: &GuardName, subject: &str) -> Option<&Buckets> {
        let g = self.names.get(guard)?;
        match self.locate_in(g, subject) {
            PairAt::Found(ix) => self.pairs.get(ix as usize).map(|p| &p.buckets),
            PairAt::Absent(_) => None,
        }
    }

    /// The buckets of a pair found by [`locate`](Self::locate).
    pub(super) fn at(&self, at: PairAt) -> Option<&Buckets> {
        match at {
            PairAt::Found(ix) => self.pairs.get(ix as usize).map(|p| &p.buckets),
            PairAt::Absent(_) => None,
        }
    }

    /// The buckets of a pair, added empty when absent. `at` is what [`locate`](Self::locate)
    /// said before this batch wrote anything; `fresh` says no pair was added since, so an
    /// absent pair is still absent and its hash still right.
    pub(super) fn entry(
        &mut self,
        guard: &GuardName,
        subject: &str,
        at: PairAt,
        fresh: bool,
    ) -> Option<&mut Buckets> {
        let at = match at {
            PairAt::Found(ix) => PairAt::Found(ix),
            PairAt::Absent(hash) if fresh && hash != NEW_GUARD => PairAt::Absent(hash),
            PairAt::Absent(_) => {
                let g = self.names.intern(guard);
                self.locate_in(g, subject)
            }
        };
        let ix = match at {
            PairAt::Found(ix) => ix,
            PairAt::Absent(hash) => {
                let g = self.names.intern(guard);
                let ix = u32::try_from(self.pairs.len()).ok()?;
                self.pairs.push(Pair {
                    guard: g,
                    subject: Text::new(subject),
                    buckets: Buckets::Empty,
                });
                self.index.insert(hash, ix);
                ix
            }
        };
        self.pairs.get_mut(ix as usize).map(|p| &mut p.buckets)
    }

    /// Pairs stored.
    pub(super) fn len(&self) -> usize {
        self.pairs.len()
    }
}

/// [`PairAt::Absent`]'s hash when the guard itself is new (the hash needs its number).
const NEW_GUARD: u32 = u32::MAX;
