//! The per-user tables: the crate's fast hasher ([`crate::hash`]; user ids are not
//! attacker-chosen keys in a batch job, but each table still gets its own random seed), and a
//! table sharded for cache-friendly bulk updates.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

pub(crate) use crate::hash::{FastBuild, FastMap};

/// A hash table split into 256 shards by bits of the hash that neither the shard's own bucket
/// index (low bits) nor its control bytes (top bits) use. Adding many rows shard by shard keeps
/// each shard's few thousand entries in cache ([`CycleStats::extend_minor`](super::CycleStats)).
#[derive(Clone, Debug)]
pub(crate) struct Sharded<K, V> {
    build: FastBuild,
    shards: Vec<FastMap<K, V>>,
    len: usize,
}

pub(crate) const SHARDS: usize = 256;

impl<K: Eq + Hash, V> Default for Sharded<K, V> {
    fn default() -> Self {
        let build = FastBuild::default();
        Sharded {
            build,
            shards: (0..SHARDS).map(|_| HashMap::with_hasher(build)).collect(),
            len: 0,
        }
    }
}

impl<K: Eq + Hash, V> Sharded<K, V> {
    #[inline]
    pub(crate) fn shard_of<Q: Hash + ?Sized>(&self, q: &Q) -> usize {
        ((self.build.hash_one(q) >> 40) as usize) & (SHARDS - 1)
    }
    #[inline]
    pub(crate) fn get<Q>(&self, q: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards.get(self.shard_of(q))?.get(q)
    }
    #[inline]
    pub(crate) fn get_mut<Q>(&mut self, q: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let s = self.shard_of(q);
        self.shards.get_mut(s)?.get_mut(q)
    }
    /// The shard `s` itself, for adding rows already grouped by shard.
    #[inline]
    pub(crate) fn shard_mut(&mut self, s: usize) -> Option<(&mut FastMap<K, V>, &mut usize)> {
        let len = &mut self.len;
        self.shards.get_mut(s).map(|m| (m, len))
    }
    #[inline]
    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        let s = self.shard_of(&k);
        let old = self.shards.get_mut(s)?.insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|m| m.iter())
    }
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|m| m.keys())
    }
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|m| m.values())
    }
    pub(crate) fn into_iter(self) -> impl Iterator<Item = (K, V)> {
        self.shards.into_iter().flat_map(|m| m.into_iter())
    }
}

impl<K: Eq + Hash, V: PartialEq> PartialEq for Sharded<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<'a, K: Eq + Hash, V> IntoIterator for &'a Sharded<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}
