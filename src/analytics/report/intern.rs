//! Dense integer ids for the values of a report's dimensions, and the packed group key built
//! from them: an event's group is found by hashing six small integers once, never by hashing
//! or comparing its strings against every group's.

use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::NaiveDate;

use super::metrics::GroupKey;
use crate::attributes::AttrValue;
use crate::hash::FastMap;
use crate::id::{CampaignId, Channel, TemplateId};

/// A value that is interned by its text.
pub(super) trait Text: Clone {
    fn text(&self) -> &str;
}

impl Text for TemplateId {
    fn text(&self) -> &str {
        self.as_str()
    }
}
impl Text for CampaignId {
    fn text(&self) -> &str {
        self.as_str()
    }
}
impl Text for Channel {
    fn text(&self) -> &str {
        self.as_str()
    }
}
impl Text for AttrValue {
    fn text(&self) -> &str {
        self.as_str()
    }
}
impl Text for Arc<str> {
    fn text(&self) -> &str {
        self
    }
}

/// The distinct values of one optional dimension: id 0 is "none", id `i + 1` is `values[i]`.
#[derive(Clone, Debug)]
pub(super) struct Dim<T> {
    values: Vec<T>,
    ids: FastMap<Box<str>, u32>,
}

impl<T> Default for Dim<T> {
    fn default() -> Self {
        Dim {
            values: Vec::new(),
            ids: FastMap::default(),
        }
    }
}

/// The next dense id of a table holding `len` entries. Ids are `u32`: a table reaches 2³²
/// entries only far past any memory, so the conversion never saturates in practice.
fn next_id(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl<T: Text> Dim<T> {
    /// The id of `v`, interning it the first time.
    #[inline]
    pub(super) fn id(&mut self, v: Option<&T>) -> u32 {
        match v {
            None => 0,
            Some(v) => match self.ids.get(v.text()) {
                Some(&id) => id,
                None => self.insert(v.clone()),
            },
        }
    }

    /// The id of an owned `v`, interning it (without a clone) the first time.
    #[inline]
    pub(super) fn id_owned(&mut self, v: Option<T>) -> u32 {
        match v {
            None => 0,
            Some(v) => match self.ids.get(v.text()) {
                Some(&id) => id,
                None => self.insert(v),
            },
        }
    }

    #[cold]
    fn insert(&mut self, v: T) -> u32 {
        let id = next_id(self.values.len() + 1);
        self.ids.insert(Box::from(v.text()), id);
        self.values.push(v);
        id
    }

    /// The id of `v` if it was interned (`Some(0)` for none).
    pub(super) fn find(&self, v: Option<&T>) -> Option<u32> {
        match v {
            None => Some(0),
            Some(v) => self.ids.get(v.text()).copied(),
        }
    }

    /// The value of an id (`None` for 0, or an id never given).
    pub(super) fn value(&self, id: u32) -> Option<T> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        self.values.get(i).cloned()
    }
}

/// The distinct days of a report, from id 0.
#[derive(Clone, Debug, Default)]
pub(super) struct Days {
    values: Vec<NaiveDate>,
    ids: FastMap<NaiveDate, u32>,
}

impl Days {
    pub(super) fn id(&mut self, d: NaiveDate) -> u32 {
        if let Some(&id) = self.ids.get(&d) {
            return id;
        }
        let id = next_id(self.values.len());
        self.ids.insert(d, id);
        self.values.push(d);
        id
    }
    pub(super) fn find(&self, d: NaiveDate) -> Option<u32> {
        self.ids.get(&d).copied()
    }
    pub(super) fn value(&self, id: u32) -> Option<NaiveDate> {
        self.values.get(usize::try_from(id).ok()?).copied()
    }
}

/// A group as six dense ids: day, template, campaign, channel, segment, arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot(pub(super) [u32; 6]);

impl Slot {
    /// The day id, and the other five.
    #[inline]
    pub(super) fn split(self) -> (u32, Rest) {
        let [day, t, c, ch, seg, arm] = self.0;
        (day, Rest([t, c, ch, seg, arm]))
    }
}

/// A group within its day: template, campaign, channel, segment and arm ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rest(pub(super) [u32; 5]);

impl Hash for Rest {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        let [a, b, c, d, e] = self.0;
        h.write_u64(u64::from(a) | (u64::from(b) << 32));
        h.write_u64(u64::from(c) | (u64::from(d) << 32));
        h.write_u64(u64::from(e));
    }
}

/// The interned values of every dimension.
#[derive(Clone, Debug, Default)]
pub(super) struct Dims {
    pub(super) days: Days,
    pub(super) templates: Dim<TemplateId>,
    pub(super) campaigns: Dim<CampaignId>,
    pub(super) channels: Dim<Channel>,
    pub(super) segments: Dim<Arc<str>>,
    pub(super) arms: Dim<AttrValue>,
}

impl Dims {
    /// The slot of a key, interning its values.
    pub(super) fn slot(&mut self, k: &GroupKey) -> Slot {
        Slot([
            self.days.id(k.day),
            self.templates.id(k.template.as_ref()),
            self.campaigns.id(k.campaign.as_ref()),
            self.channels.id(k.channel.as_ref()),
            self.segments.id(k.segment.as_ref()),
            self.arms.id(k.arm.as_ref()),
        ])
    }

    /// The slot of a key whose values are all interned.
    pub(super) fn find(&self, k: &GroupKey) -> Option<Slot> {
        Some(Slot([
            self.days.find(k.day)?,
            self.templates.find(k.template.as_ref())?,
            self.campaigns.find(k.campaign.as_ref())?,
            self.channels.find(k.channel.as_ref())?,
            self.segments.find(k.segment.as_ref())?,
            self.arms.find(k.arm.as_ref())?,
        ]))
    }

    /// The key of a slot whose ids were all given by these tables.
    pub(super) fn key(&self, s: Slot) -> Option<GroupKey> {
        let [day, t, c, ch, seg, arm] = s.0;
        Some(GroupKey {
            day: self.days.value(day)?,
            template: self.templates.value(t),
            campaign: self.campaigns.value(c),
            channel: self.channels.value(ch),
            segment: self.segments.value(seg),
            arm: self.arms.value(arm),
        })
    }
}

/// How many entries an address cache holds, as a power of two (in pairs, see
/// [`Dim::id_by_addr`]).
const BY_ADDR_BITS: u32 = 9;

/// The slot of a text's address in an address cache.
#[inline]
fn addr_slot(addr: usize, bits: u32) -> usize {
    ((addr as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

/// Ids of texts borrowed for `'e` (the events of one [`Report::extend`](super::Report::extend)
/// call, or the segments its lookup lends), by the address and length of the text. While
/// they are borrowed, no text can be freed, so an address with a length names one text for
/// the whole call: an event's template, campaign or channel is found by comparing two
/// integers, not by hashing and comparing its text. A miss interns as usual. The cache lives
/// for one call only.
pub(super) struct ByAddr<'e> {
    slots: Vec<(usize, usize, u32)>,
    _texts: PhantomData<&'e str>,
}

impl ByAddr<'_> {
    pub(super) fn new() -> Self {
        ByAddr {
            slots: vec![(0, 0, 0); 1 << BY_ADDR_BITS],
            _texts: PhantomData,
        }
    }
}

/// How many entries a held cache holds, as a power of two.
const HELD_BITS: u32 = 3;

/// Ids of owned values (what the caller's lookup returned), by the address of their text.
/// Each entry holds a clone of its value, which keeps the text alive: no other live text can
/// have its address, so an equal address is the same text.
pub(super) struct Held<T> {
    slots: Vec<Option<(T, u32)>>,
}

impl<T> Held<T> {
    pub(super) fn new() -> Self {
        Held {
            slots: (0..1 << HELD_BITS).map(|_| None).collect(),
        }
    }
}

impl<T: Text> Dim<T> {
    /// The id of `v`, borrowed for the call `cache` serves. The cache is two-way: a text's
    /// address picks a pair of entries (one cache line's half), the one used last first; a
    /// miss moves that one to the second place and takes the first. So two texts whose
    /// addresses pick the same pair (of 256: 50 templates hardly ever do) do not evict each other
    /// on every event, as in a direct-mapped cache.
    #[inline]
    pub(super) fn id_by_addr<'e>(&mut self, cache: &mut ByAddr<'e>, v: Option<&'e T>) -> u32 {
        let Some(v) = v else { return 0 };
        let t = v.text();
        let (addr, len) = (t.as_ptr() as usize, t.len());
        let i = addr_slot(addr, BY_ADDR_BITS - 1) * 2;
        if let Some(&(a, l, id)) = cache.slots.get(i)
            && a == addr
            && l == len
        {
            return id;
        }
        if let Some(&(a, l, id)) = cache.slots.get(i + 1)
            && a == addr
            && l == len
        {
            return id;
        }
        self.id_missed(cache, v, i)
    }

    /// [`Dim::id_by_addr`]'s miss: interns `v` and caches it first in its pair.
    #[cold]
    #[inline(never)]
    fn id_missed<'e>(&mut self, cache: &mut ByAddr<'e>, v: &'e T, i: usize) -> u32 {
        let t = v.text();
        let id = self.id(Some(v));
        if let Some(first) = cache.slots.get(i).copied()
            && let Some(second) = cache.slots.get_mut(i + 1)
        {
            *second = first;
        }
        if let Some(e) = cache.slots.get_mut(i) {
            *e = (t.as_ptr() as usize, t.len(), id);
        }
        id
    }

    /// The id of an owned `v`, through a held cache.
    #[inline]
    pub(super) fn id_held(&mut self, cache: &mut Held<T>, v: Option<T>) -> u32 {
        let Some(v) = v else { return 0 };
        let t = v.text();
        let (addr, len) = (t.as_ptr() as usize, t.len());
        let i = addr_slot(addr, HELD_BITS);
        if let Some(Some((c, id))) = cache.slots.get(i)
            && c.text().as_ptr() as usize == addr
            && c.text().len() == len
        {
            return *id;
        }
        let id = self.id(Some(&v));
        if let Some(e) = cache.slots.get_mut(i) {
            *e = Some((v, id));
        }
        id
    }
}

/// The caches of one [`Report::extend`](super::Report::extend) call.
pub(super) struct Caches<'e> {
    pub(super) templates: ByAddr<'e>,
    pub(super) campaigns: ByAddr<'e>,
    pub(super) channels: ByAddr<'e>,
    pub(super) arms: ByAddr<'e>,
    /// Segments the lookup lent (borrowed for the call, like the events).
    pub(super) lent_segments: ByAddr<'e>,
    pub(super) segments: Held<Arc<str>>,
    pub(super) offer_arms: Held<AttrValue>,
}

impl Caches<'_> {
    pub(super) fn new() -> Self {
        Caches {
            templates: ByAddr::new(),
            campaigns: ByAddr::new(),
            channels: ByAddr::new(),
            arms: ByAddr::new(),
            lent_segments: ByAddr::new(),
            segments: Held::new(),
            offer_arms: Held::new(),
        }
    }
}

/// Another report's ids as this report's, dimension by dimension (for merging).
pub(super) struct Translation {
    days: Vec<u32>,
    dims: [Vec<u32>; 5],
}

impl<T: Text> Dim<T> {
    /// This table's id of every id of `other`'s (interning its values here).
    fn translate(&mut self, other: &Dim<T>) -> Vec<u32> {
        std::iter::once(0)
            .chain(other.values.iter().map(|v| self.id(Some(v))))
            .collect()
    }
}

impl Dims {
    /// How `other`'s ids read here, interning its values.
    pub(super) fn translate(&mut self, other: &Dims) -> Translation {
        Translation {
            days: other.days.values.iter().map(|&d| self.days.id(d)).collect(),
            dims: [
                self.templates.translate(&other.templates),
                self.campaigns.translate(&other.campaigns),
                self.channels.translate(&other.channels),
                self.segments.translate(&other.segments),
                self.arms.translate(&other.arms),
            ],
        }
    }
}

impl Translation {
    /// The slot here of another report's slot (`None` for an id its tables never gave).
    #[inline]
    pub(super) fn slot(&self, day: u32, rest: Rest) -> Option<Slot> {
        let at = |v: &[u32], id: u32| v.get(usize::try_from(id).ok()?).copied();
        let [t, c, ch, seg, arm] = rest.0;
        let [dt, dc, dch, dseg, darm] = &self.dims;
        Some(Slot([
            at(&self.days, day)?,
            at(dt, t)?,
            at(dc, c)?,
            at(dch, ch)?,
            at(dseg, seg)?,
            at(darm, arm)?,
        ]))
    }
}
