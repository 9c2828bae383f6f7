//! Campaigns (活动), documented on [`Campaign`].

use chrono::{DateTime, Utc};

use super::LifecycleError;
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

/// A campaign (活动): a page offering templates during a time window.
///
/// A campaign's [`state`](Campaign::state) is derived, never stored: Offline while switched
/// off, else NotStarted, Ongoing or Ended by its window `[from, until)`. Coupons are issued in a
/// campaign only while it is Ongoing and only from templates it offers; a coupon issued in a
/// campaign stays usable until its own validity ends, even after the campaign has ended.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use coupons::id::{CampaignId, TemplateId};
/// use coupons::lifecycle::{Campaign, CampaignState};
///
/// let from = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
/// let c = Campaign::new(
///     CampaignId::new("double-11")?,
///     "Double 11",
///     "One coupon per person.",
///     from,
///     from + Duration::days(1),
///     vec![TemplateId::new("ten-off")?],
/// )?;
/// assert_eq!(c.state(from), CampaignState::Offline); // new campaigns start offline
/// let c = c.switch(true);
/// assert_eq!(c.state(from - Duration::seconds(1)), CampaignState::NotStarted);
/// assert_eq!(c.state(from), CampaignState::Ongoing);
/// assert_eq!(c.state(from + Duration::days(1)), CampaignState::Ended);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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

impl Campaign {
    /// A checked campaign, switched **off** until [`switch`](Self::switch)ed on.
    ///
    /// # Errors
    /// [`LifecycleError::InvalidCampaign`] when the name is blank, when `until <= from`, or when
    /// no template is offered.
    pub fn new(
        id: CampaignId,
        name: impl Into<String>,
        rules: impl Into<String>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        templates: Vec<TemplateId>,
    ) -> Result<Campaign, LifecycleError> {
        let c = Campaign {
            id,
            name: name.into(),
            rules: rules.into(),
            from,
            until,
            online: false,
            templates,
        };
        c.validate()?;
        Ok(c)
    }

    /// A builder: `Campaign::builder(id, name).window(from, until).offering(t).build()`.
    ///
    /// ```
    /// use chrono::{Duration, TimeZone, Utc};
    /// use coupons::id::{CampaignId, TemplateId};
    /// use coupons::lifecycle::Campaign;
    /// let from = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
    /// let c = Campaign::builder(CampaignId::new("double-11")?, "Double 11")
    ///     .rules("One coupon per customer")
    ///     .window(from, from + Duration::days(1))
    ///     .offering(TemplateId::new("spend-200-save-25")?)
    ///     .build()?;
    /// assert_eq!(c.templates.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder(id: CampaignId, name: impl Into<String>) -> CampaignBuilder {
        CampaignBuilder {
            id,
            name: name.into(),
            rules: String::new(),
            window: None,
            templates: Vec::new(),
            online: false,
        }
    }

    /// Checks the invariants [`new`](Self::new) checks (for campaigns built field by field or
    /// deserialised).
    ///
    /// # Errors
    /// [`LifecycleError::InvalidCampaign`] when the name is blank, when `until <= from`, or when
    /// no template is offered.
    pub fn validate(&self) -> Result<(), LifecycleError> {
        let bad = |reason| {
            Err(LifecycleError::InvalidCampaign {
                campaign: self.id.clone(),
                reason,
            })
        };
        if self.name.trim().is_empty() {
            return bad("the name is blank");
        }
        if self.until <= self.from {
            return bad("the window ends at or before it starts");
        }
        if self.templates.is_empty() {
            return bad("it offers no template");
        }
        Ok(())
    }

    /// Its state at `now`: Offline when switched off, else by the window `[from, until)`.
    pub fn state(&self, now: DateTime<Utc>) -> CampaignState {
        if !self.online {
            CampaignState::Offline
        } else if now < self.from {
            CampaignState::NotStarted
        } else if now < self.until {
            CampaignState::Ongoing
        } else {
            CampaignState::Ended
        }
    }

    /// Whether it offers the template.
    pub fn offers(&self, template: &TemplateId) -> bool {
        self.templates.contains(template)
    }

    /// The same campaign with the switch set.
    pub fn switch(&self, online: bool) -> Campaign {
        Campaign {
            online,
            ..self.clone()
        }
    }

    /// Checks that the template may be issued in this campaign at `now`.
    ///
    /// # Errors
    /// [`LifecycleError::CampaignNotOngoing`] unless the campaign is Ongoing;
    /// [`LifecycleError::NotOffered`] when it does not offer the template.
    pub fn check_issue(
        &self,
        template: &TemplateId,
        now: DateTime<Utc>,
    ) -> Result<(), LifecycleError> {
        let state = self.state(now);
        if state != CampaignState::Ongoing {
            return Err(LifecycleError::CampaignNotOngoing {
                campaign: self.id.clone(),
                state,
            });
        }
        if !self.offers(template) {
            return Err(LifecycleError::NotOffered {
                campaign: self.id.clone(),
                template: template.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn window_must_not_be_empty() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let id = CampaignId::new("c").unwrap();
        let tpl = vec![TemplateId::new("t").unwrap()];
        assert!(Campaign::new(id.clone(), "C", "", t, t, tpl.clone()).is_err());
        assert!(Campaign::new(id.clone(), " ", "", t, t + Duration::hours(1), tpl).is_err());
        assert!(Campaign::new(id, "C", "", t, t + Duration::hours(1), vec![]).is_err());
    }

    #[test]
    fn issuing_needs_ongoing_and_offered() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let tpl = TemplateId::new("t").unwrap();
        let c = Campaign::new(
            CampaignId::new("c").unwrap(),
            "C",
            "",
            t,
            t + Duration::hours(1),
            vec![tpl.clone()],
        )
        .unwrap();
        assert!(matches!(
            c.check_issue(&tpl, t),
            Err(LifecycleError::CampaignNotOngoing {
                state: CampaignState::Offline,
                ..
            })
        ));
        let c = c.switch(true);
        assert!(c.check_issue(&tpl, t).is_ok());
        assert!(matches!(
            c.check_issue(&TemplateId::new("u").unwrap(), t),
            Err(LifecycleError::NotOffered { .. })
        ));
        assert!(matches!(
            c.check_issue(&tpl, t + Duration::hours(1)),
            Err(LifecycleError::CampaignNotOngoing {
                state: CampaignState::Ended,
                ..
            })
        ));
    }
}

/// Builds a [`Campaign`] ([`Campaign::builder`]).
#[derive(Clone, Debug)]
#[must_use]
pub struct CampaignBuilder {
    id: CampaignId,
    name: String,
    rules: String,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    templates: Vec<TemplateId>,
    online: bool,
}

impl CampaignBuilder {
    /// The rules text shown on the page.
    pub fn rules(mut self, rules: impl Into<String>) -> CampaignBuilder {
        self.rules = rules.into();
        self
    }

    /// The window `[from, until)`.
    pub fn window(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> CampaignBuilder {
        self.window = Some((from, until));
        self
    }

    /// Offers a template.
    pub fn offering(mut self, template: TemplateId) -> CampaignBuilder {
        self.templates.push(template);
        self
    }

    /// Starts switched on (campaigns start offline by default).
    pub fn online(mut self) -> CampaignBuilder {
        self.online = true;
        self
    }

    /// The campaign, checked as by [`Campaign::new`].
    ///
    /// # Errors
    /// [`LifecycleError::InvalidCampaign`] without a window, with a blank name, an empty or
    /// backwards window, or no template.
    pub fn build(self) -> Result<Campaign, LifecycleError> {
        let Some((from, until)) = self.window else {
            return Err(LifecycleError::InvalidCampaign {
                campaign: self.id,
                reason: "a campaign needs a window",
            });
        };
        let mut c = Campaign::new(self.id, self.name, self.rules, from, until, self.templates)?;
        c.online = self.online;
        Ok(c)
    }
}
