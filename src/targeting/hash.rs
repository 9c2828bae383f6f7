//! A fast hasher for the per-user tables (user ids are not attacker-chosen keys in a batch
//! job, but each table still gets its own random seed from the standard library).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// Seeds a [`FastHasher`]; each table draws its seed from `std`'s random state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastBuild(u64);

impl Default for FastBuild {
    fn default() -> Self {
        FastBuild(std::collections::hash_map::RandomState::new().hash_one(0x9e37_79b9_u64) | 1)
    }
}

impl BuildHasher for FastBuild {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// A multiply-rotate hasher (in the manner of FxHash) with a final avalanche.
pub(crate) struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (h >> 29)
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, FastBuild>;

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
