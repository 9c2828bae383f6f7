//! Campaigns (活动): a page offering templates during a time window.

use chrono::{DateTime, Utc};

use crate::id::{CampaignId, TemplateId};

/// A campaign's shown state, derived from its switch and the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum CampaignState {
    /// Online, before its window.
    NotStarted,
    /// Online, inside its window.
    Ongoing,
    /// Online, after its window.
    Ended,
    /// Switched off.
    Offline,
}

/// A campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Campaign {
    /// Its id.
    pub id: CampaignId,
    /// Its name.
    pub name: String,
    /// The rules text shown on the page.
    pub rules: String,
    /// Start, inclusive.
    pub from: DateTime<Utc>,
    /// End, exclusive.
    pub until: DateTime<Utc>,
    /// The manual online/offline switch.
    pub online: bool,
    /// The templates it offers.
    pub templates: Vec<TemplateId>,
}
