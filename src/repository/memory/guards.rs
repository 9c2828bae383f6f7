//! Guards' windowed counters ([`Op::CountWindow`](crate::repository::Op::CountWindow)):
//! (guard, subject) pairs interned once in one table, each with its buckets inline.
//!
//! A pair is found by one hash of its subject's text mixed with the guard's interned number,
//! in an open-addressing index of pair numbers; subjects' texts are appended to an arena of
//! large chunks (no allocation per pair), a fixed window's single live bucket is kept inline (a rolling window with several live
//! buckets keeps them in a sorted vector).

use super::tables::{FxHasher, NONE, SlotIndex, Table, add};
use crate::id::GuardName;
use std::hash::Hasher;

/// Where a subject's text is in the [`Arena`]: its chunk, offset and length.
#[derive(Debug, Clone, Copy)]
struct Text {
    chunk: u32,
    start: u32,
    len: u32,
}

/// Subjects' texts, appended into chunks that never move: no allocation per subject,
/// whatever its length (a device UUID or a card token with its label is 40-odd bytes).
#[derive(Debug, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
}

/// An arena chunk's capacity (a longer subject gets a chunk of its own length).
const ARENA_CHUNK: usize = 1 << 16;

impl Arena {
    fn push(&mut self, s: &[u8]) -> Option<Text> {
        let room = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= s.len());
        if !room {
            self.chunks
                .push(Vec::with_capacity(ARENA_CHUNK.max(s.len())));
        }
        let chunk = self.chunks.len().checked_sub(1)?;
        let c = self.chunks.get_mut(chunk)?;
        let start = u32::try_from(c.len()).ok()?;
        c.extend_from_slice(s);
        Some(Text {
            chunk: u32::try_from(chunk).ok()?,
            start,
            len: u32::try_from(s.len()).ok()?,
        })
    }

    fn get(&self, t: Text) -> &[u8] {
        let (start, len) = (t.start as usize, t.len as usize);
        self.chunks
            .get(t.chunk as usize)
            .and_then(|c| c.get(start..start + len))
            .unwrap_or(&[])
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

/// Where a pair is: found, or absent with its hash and its guard's number (to insert it
/// without looking either up again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PairAt {
    /// The pair's number.
    Found(u32),
    /// Absent: its hash and its guard's number ([`NONE`] for a guard never seen), and where
    /// its probe ended (the vacant index entry, and the index's size then).
    Absent {
        /// The pair's hash.
        hash: u32,
        /// The guard's number.
        guard: u32,
        /// The vacant index entry the probe ended at ([`NONE`]: none).
        vacant: u32,
        /// The index's size at the probe.
        size: u32,
    },
}

/// Pairs per chunk: adding one never moves those stored.
const PAIR_CHUNK_BITS: u32 = 10;
const PAIR_CHUNK: usize = 1 << PAIR_CHUNK_BITS;

/// Pairs in fixed-size chunks.
#[derive(Debug, Default)]
struct Pairs {
    chunks: Vec<Vec<Pair>>,
    len: usize,
}

impl Pairs {
    fn get(&self, i: u32) -> Option<&Pair> {
        self.chunks
            .get((i >> PAIR_CHUNK_BITS) as usize)?
            .get(i as usize & (PAIR_CHUNK - 1))
    }

    fn get_mut(&mut self, i: u32) -> Option<&mut Pair> {
        self.chunks
            .get_mut((i >> PAIR_CHUNK_BITS) as usize)?
            .get_mut(i as usize & (PAIR_CHUNK - 1))
    }

    fn push(&mut self, p: Pair) -> Option<u32> {
        let i = u32::try_from(self.len).ok()?;
        match self.chunks.last_mut() {
            Some(c) if c.len() < PAIR_CHUNK => c.push(p),
            _ => {
                let mut c = Vec::with_capacity(PAIR_CHUNK);
                c.push(p);
                self.chunks.push(c);
            }
        }
        self.len += 1;
        Some(i)
    }
}

/// Every guard's pairs.
#[derive(Debug)]
pub(super) struct Guards {
    names: Table<GuardName, ()>,
    pairs: Pairs,
    texts: Arena,
    index: SlotIndex,
}

impl Default for Guards {
    fn default() -> Guards {
        Guards {
            names: Table::default(),
            pairs: Pairs::default(),
            texts: Arena::default(),
            index: SlotIndex::sparse(),
        }
    }
}

/// Up to this many guards are found by their name's address before any hashing.
const BY_ADDRESS: usize = 16;

impl Guards {
    #[inline]
    fn hash(guard: u32, subject: &[u8]) -> u32 {
        let mut h = FxHasher::default();
        h.write_u32(guard);
        h.write(subject);
        (h.finish() >> 32) as u32
    }

    /// A guard's number. A caller passes the same shared name with every request (its
    /// guard's), and the table keeps the first one it saw: comparing addresses finds it
    /// without hashing (the table's copy keeps that address from being reused).
    #[inline]
    fn number(&self, guard: &GuardName) -> Option<u32> {
        let text = guard.as_str();
        if self.names.names.len() <= BY_ADDRESS {
            let same = |n: &GuardName| {
                let n = n.as_str();
                n.as_ptr() == text.as_ptr() && n.len() == text.len()
            };
            if let Some(i) = self.names.names.iter().position(same) {
                return u32::try_from(i).ok();
            }
        }
        self.names.get(guard)
    }

    /// Finds a pair.
    #[inline]
    pub(super) fn locate(&self, guard: &GuardName, subject: &[u8]) -> PairAt {
        match self.number(guard) {
            Some(g) => self.locate_in(g, subject),
            None => PairAt::Absent {
                hash: 0,
                guard: NONE,
                vacant: NONE,
                size: 0,
            },
        }
    }

    #[inline]
    fn locate_in(&self, g: u32, subject: &[u8]) -> PairAt {
        let hash = Self::hash(g, subject);
        let found = self.index.find_or_vacant(hash, |ix| {
            self.pairs
                .get(ix)
                .is_some_and(|p| p.guard == g && self.texts.get(p.subject) == subject)
        });
        match found {
            Ok(ix) => PairAt::Found(ix),
            Err((vacant, size)) => PairAt::Absent {
                hash,
                guard: g,
                vacant,
                size,
            },
        }
    }

    /// A pair's buckets, if it exists (read path).
    pub(super) fn buckets(&self, guard: &GuardName, subject: &[u8]) -> Option<&Buckets> {
        self.at(self.locate(guard, subject))
    }

    /// The buckets of a pair found by [`locate`](Self::locate).
    pub(super) fn at(&self, at: PairAt) -> Option<&Buckets> {
        match at {
            PairAt::Found(ix) => self.pairs.get(ix).map(|p| &p.buckets),
            PairAt::Absent { .. } => None,
        }
    }

    /// Adds `delta` to bucket `bucket` of a pair (added when absent) and drops its buckets
    /// before `oldest` ([`Buckets::add`]). `at` is what [`locate`](Self::locate) said before
    /// this batch wrote anything; `fresh` says no pair with its hash was added since, so an
    /// absent pair is still absent. A new pair is stored with its one bucket.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn count(
        &mut self,
        guard: &GuardName,
        subject: &[u8],
        at: PairAt,
        fresh: bool,
        bucket: i64,
        delta: i64,
        oldest: i64,
    ) {
        let at = match at {
            PairAt::Absent { guard: g, .. } if !fresh || g == NONE => {
                let g = match self.number(guard) {
                    Some(g) => g,
                    None => self.names.intern(guard),
                };
                self.locate_in(g, subject)
            }
            at => at,
        };
        match at {
            PairAt::Found(ix) => {
                if let Some(p) = self.pairs.get_mut(ix) {
                    p.buckets.add(bucket, delta, oldest);
                }
            }
            PairAt::Absent {
                hash,
                guard,
                vacant,
                size,
            } => {
                // What `Buckets::add` makes of an empty pair.
                let buckets = Buckets::One(bucket, add(0, delta));
                let Some(subject) = self.texts.push(subject) else {
                    return;
                };
                let pair = Pair {
                    guard,
                    subject,
                    buckets,
                };
                if let Some(ix) = self.pairs.push(pair) {
                    self.index.insert_at(vacant, size, hash, ix);
                }
            }
        }
    }

    /// Pairs stored.
    pub(super) fn len(&self) -> usize {
        self.pairs.len
    }
}
