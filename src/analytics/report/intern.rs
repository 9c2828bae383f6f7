//! Dense integer ids for the values of a report's dimensions, and the packed group key built
//! from them: an event's group is found by hashing six small integers once, never by hashing
//! or comparing its strings against every group's.

use std::hash::{Hash, Hasher};
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
