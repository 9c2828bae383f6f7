//! Guards: counters over who is asking — user, device, IP address or subnet, payment account,
//! channel — with a limit and a time window, counted in the same atomic batch as the claim or
//! lock they guard.
//!
//! A claim or lock request carries a [`Context`] (device id, IP address, payment account; all
//! optional, validated). The service's [`ServiceConfig::guards`](crate::service::ServiceConfig)
//! lists the [`Guard`]s; every guard that applies to a request adds one windowed count to the
//! request's batch ([`Op::CountWindow`]), so the limit holds exactly under any number of threads,
//! processes and app servers sharing the store, and a refusal names the guard
//! ([`LifecycleError::GuardHeld`](crate::lifecycle::LifecycleError::GuardHeld), and a `refused`
//! event). Abuse rules (claims per device, first-order coupons per payment account, failed code
//! attempts per IP subnet — [`presets`]) and automated-issuing frequency caps are guards.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use coupons::guard::{Action, Guard, Subject, Window};
//! use coupons::id::GuardName;
//! // At most 3 claims a day from one device, days starting at midnight in Beijing.
//! let g = Guard::new(
//!     GuardName::new("claims-per-device")?,
//!     Action::Claim,
//!     vec![Subject::Device],
//!     3,
//!     Window::calendar_day(8 * 60)?,
//! )?;
//! let at = Utc.with_ymd_and_hms(2026, 11, 10, 16, 30, 0).unwrap(); // 00:30 on the 11th in Beijing
//! assert_eq!(g.window().describe(), "calendar day (UTC+08:00)");
//! assert_eq!(g.window().bucket(at).1, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Windows
//!
//! | window | counts | bucket |
//! |---|---|---|
//! | [`Window::Forever`] | every request ever | one |
//! | [`Window::Minute`], [`Window::Hour`], [`Window::Day`] | requests in the current UTC minute, hour or day | the minute, hour or day |
//! | [`Window::CalendarDay`] | requests since midnight in a UTC offset | the local day |
//! | [`Window::RollingDays`] | requests in the last *N* days | one per local day; the sum of the current day and the *N − 1* before it |
//!
//! A rolling window is approximated by day buckets: at any instant it covers the current
//! partial day plus the *N − 1* whole days before it — between *N − 1* and *N* days. A request
//! is therefore never refused for one older than *N* days, and one from up to *N* days ago may
//! still count. Exact sliding windows would need one record per request; buckets keep the state
//! at *N* counters per subject.
//!
//! ## Missing context
//!
//! A guard over a field the request does not carry (no device id, say) is skipped by default:
//! the context comes from the app server, which knows what it can fill in. With
//! [`Guard::require_context`] such a request is refused instead
//! ([`GuardError::MissingContext`]).

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::id::{Channel, DeviceId, GuardName, PaymentAccount, TemplateId, UserId};
use crate::repository::Op;

mod address;
mod subject;
pub use address::network;
use address::{push_ip, push_network};
use subject::KeyWriter;
pub use subject::SubjectKey;

/// A guard, window or context that breaks a rule, or a request a guard cannot count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A guard without subjects, or with one twice.
    #[error("guard {guard}: {reason}")]
    Subjects {
        /// The guard.
        guard: GuardName,
        /// What is wrong.
        reason: &'static str,
    },
    /// A limit of zero would refuse everything: pause the template instead.
    #[error("guard {guard}: the limit must be at least 1")]
    ZeroLimit {
        /// The guard.
        guard: GuardName,
    },
    /// A window out of range.
    #[error("window: {reason}")]
    Window {
        /// What is wrong.
        reason: &'static str,
    },
    /// An IP prefix longer than the address.
    #[error("ip prefix /{v4} (IPv4) or /{v6} (IPv6) is longer than the address")]
    Prefix {
        /// The IPv4 prefix length.
        v4: u8,
        /// The IPv6 prefix length.
        v6: u8,
    },
    /// A first-order preset without the templates it is for: it would count every claim.
    #[error("guard {guard}: name the first-order templates it counts")]
    NoTemplates {
        /// The guard.
        guard: GuardName,
    },
    /// A guard that requires a context field the request lacks.
    #[error("guard {guard} needs the request's {field}")]
    MissingContext {
        /// The guard.
        guard: GuardName,
        /// The field: `device`, `ip`, `payment account`.
        field: &'static str,
    },
}

/// Who is asking, beyond the account: filled in by the app server from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Context {
    /// The device.
    #[cfg_attr(feature = "serde", serde(default))]
    pub device: Option<DeviceId>,
    /// The IP address.
    #[cfg_attr(feature = "serde", serde(default))]
    pub ip: Option<IpAddr>,
    /// The payment account.
    #[cfg_attr(feature = "serde", serde(default))]
    pub payment: Option<PaymentAccount>,
}

impl Context {
    /// No context.
    pub fn new() -> Context {
        Context::default()
    }

    /// With a device.
    pub fn device(mut self, device: DeviceId) -> Context {
        self.device = Some(device);
        self
    }

    /// With an IP address.
    pub fn ip(mut self, ip: IpAddr) -> Context {
        self.ip = Some(ip);
        self
    }

    /// With a payment account.
    pub fn payment(mut self, payment: PaymentAccount) -> Context {
        self.payment = Some(payment);
        self
    }
}

/// What a guard counts by; a guard over several counts each combination apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "by", rename_all = "snake_case")
)]
pub enum Subject {
    /// The account.
    User,
    /// The device.
    Device,
    /// The exact IP address.
    Ip,
    /// The IP address's network: the first `v4` bits of an IPv4 address (24 for a /24), the
    /// first `v6` of an IPv6 one (64 for a /64).
    IpPrefix {
        /// IPv4 prefix length, 0 to 32.
        v4: u8,
        /// IPv6 prefix length, 0 to 128.
        v6: u8,
    },
    /// The payment account.
    Payment,
    /// The channel.
    Channel,
    /// The template claimed (for a claim) — with [`Subject::User`], a per-user limit per
    /// template.
    Template,
}

impl Subject {
    /// The usual subnets: /24 for IPv4, /64 for IPv6.
    pub const SUBNET: Subject = Subject::IpPrefix { v4: 24, v6: 64 };

    fn check(self) -> Result<Subject, GuardError> {
        match self {
            Subject::IpPrefix { v4, v6 } if v4 > 32 || v6 > 128 => {
                Err(GuardError::Prefix { v4, v6 })
            }
            s => Ok(s),
        }
    }
}

/// When a guard's count starts again. See the [module docs](self) for each window's buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(tag = "window", rename_all = "snake_case")
)]
pub enum Window {
    /// Never.
    Forever,
    /// Every UTC minute.
    Minute,
    /// Every UTC hour.
    Hour,
    /// Every UTC day.
    Day,
    /// Every day at midnight in a UTC offset.
    CalendarDay {
        /// The offset east of UTC in minutes (480 for UTC+8), within ±18 hours.
        offset_minutes: i32,
    },
    /// The last `days` days, by local day buckets (see the module docs).
    RollingDays {
        /// The number of days, 1 to 366.
        days: u16,
        /// The offset east of UTC in minutes at which days start.
        offset_minutes: i32,
    },
}

const MAX_OFFSET: i32 = 18 * 60;

impl Window {
    /// Calendar days in a UTC offset.
    ///
    /// # Errors
    /// [`GuardError::Window`] for an offset beyond ±18 hours.
    pub fn calendar_day(offset_minutes: i32) -> Result<Window, GuardError> {
        Window::CalendarDay { offset_minutes }.check()
    }

    /// The last `days` days, days starting at midnight in a UTC offset.
    ///
    /// # Errors
    /// [`GuardError::Window`] for 0 or more than 366 days, or an offset beyond ±18 hours.
    pub fn rolling_days(days: u16, offset_minutes: i32) -> Result<Window, GuardError> {
        Window::RollingDays {
            days,
            offset_minutes,
        }
        .check()
    }

    fn check(self) -> Result<Window, GuardError> {
        match self {
            Window::CalendarDay { offset_minutes } | Window::RollingDays { offset_minutes, .. }
                if offset_minutes.abs() > MAX_OFFSET =>
            {
                Err(GuardError::Window {
                    reason: "the UTC offset must be within ±18 hours",
                })
            }
            Window::RollingDays { days, .. } if days == 0 || days > 366 => {
                Err(GuardError::Window {
                    reason: "a rolling window spans 1 to 366 days",
                })
            }
            w => Ok(w),
        }
    }

    /// The bucket `at` falls in and how many buckets the window sums (the current one and the
    /// `span − 1` before it).
    pub fn bucket(&self, at: DateTime<Utc>) -> (i64, u32) {
        self.bucket_of(at.timestamp())
    }

    /// [`bucket`](Self::bucket) of an instant given as seconds since the epoch.
    fn bucket_of(&self, secs: i64) -> (i64, u32) {
        let day = |offset: i32| (secs + i64::from(offset) * 60).div_euclid(86_400);
        match *self {
            Window::Forever => (0, 1),
            Window::Minute => (secs.div_euclid(60), 1),
            Window::Hour => (secs.div_euclid(3_600), 1),
            Window::Day => (secs.div_euclid(86_400), 1),
            Window::CalendarDay { offset_minutes } => (day(offset_minutes), 1),
            Window::RollingDays {
                days,
                offset_minutes,
            } => (day(offset_minutes), u32::from(days)),
        }
    }

    /// Words for the window, as refusals print it: `day (UTC)`, `last 7 days (UTC+08:00)`.
    pub fn describe(&self) -> String {
        let offset = |m: i32| {
            let sign = if m < 0 { '-' } else { '+' };
            format!("UTC{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
        };
        match *self {
            Window::Forever => "all time".to_string(),
            Window::Minute => "minute (UTC)".to_string(),
            Window::Hour => "hour (UTC)".to_string(),
            Window::Day => "day (UTC)".to_string(),
            Window::CalendarDay { offset_minutes } => {
                format!("calendar day ({})", offset(offset_minutes))
            }
            Window::RollingDays {
                days,
                offset_minutes,
            } => format!("last {days} days ({})", offset(offset_minutes)),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What a guard counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Action {
    /// Coupons claimed.
    Claim,
    /// Orders locking at least one coupon or promo code.
    Lock,
    /// Failed attempts at redeeming a typed code (unknown, already taken, or mistyped). The
    /// service counts one when an attempt fails, and refuses further attempts once the
    /// window holds the limit, before the code is looked up
    /// ([`Service::redeem_code`](crate::service::Service::redeem_code)).
    CodeAttempt,
}

/// A counter over who is asking, with a limit and a window. Valid by construction.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "GuardSpec", into = "GuardSpec")
)]
pub struct Guard {
    name: GuardName,
    action: Action,
    subjects: Vec<Subject>,
    limit: u64,
    window: Window,
    templates: Vec<TemplateId>,
    channels: Vec<Channel>,
    channel_prefix: Option<String>,
    require_context: bool,
}

/// The JSON form of a [`Guard`]: checked by [`Guard::try_from`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct GuardSpec {
    /// The name refusals carry.
    pub name: GuardName,
    /// What it counts.
    pub action: Action,
    /// What it counts by.
    pub subjects: Vec<Subject>,
    /// The most requests allowed in the window.
    pub limit: u64,
    /// The window.
    pub window: Window,
    /// Only requests for these templates (all when empty).
    #[cfg_attr(feature = "serde", serde(default))]
    pub templates: Vec<TemplateId>,
    /// Only requests through these channels (all when empty).
    #[cfg_attr(feature = "serde", serde(default))]
    pub channels: Vec<Channel>,
    /// Only requests through channels starting with this text (`auto:` for automated issuing).
    #[cfg_attr(feature = "serde", serde(default))]
    pub channel_prefix: Option<String>,
    /// Refuse requests lacking a context field the guard counts by (else they skip it).
    #[cfg_attr(feature = "serde", serde(default))]
    pub require_context: bool,
}

impl TryFrom<GuardSpec> for Guard {
    type Error = GuardError;
    fn try_from(s: GuardSpec) -> Result<Guard, GuardError> {
        let mut g = Guard::new(s.name, s.action, s.subjects, s.limit, s.window)?;
        g.templates = s.templates;
        g.channels = s.channels;
        g.channel_prefix = s.channel_prefix;
        g.require_context = s.require_context;
        Ok(g)
    }
}

impl From<Guard> for GuardSpec {
    fn from(g: Guard) -> GuardSpec {
        GuardSpec {
            name: g.name,
            action: g.action,
            subjects: g.subjects,
            limit: g.limit,
            window: g.window,
            templates: g.templates,
            channels: g.channels,
            channel_prefix: g.channel_prefix,
            require_context: g.require_context,
        }
    }
}

/// What a guard reads from one request.
#[derive(Clone, Copy, Debug)]
pub struct Asking<'a> {
    /// The account.
    pub user: &'a UserId,
    /// The channel.
    pub channel: &'a Channel,
    /// The template claimed, or the templates an order locks.
    pub templates: &'a [TemplateId],
    /// The context.
    pub context: &'a Context,
}

/// One guard's count in a request's batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Counted {
    /// The guard.
    pub guard: GuardName,
    /// Its limit.
    pub limit: u64,
    /// Its window.
    pub window: Window,
    /// The op to add to the batch.
    pub op: Op,
}

impl Guard {
    /// A guard counting `action`s by `subjects`, at most `limit` per `window`.
    ///
    /// # Errors
    /// [`GuardError::Subjects`] for no subjects or a repeated one; [`GuardError::ZeroLimit`];
    /// [`GuardError::Prefix`] and [`GuardError::Window`] for a subject or window out of range.
    pub fn new(
        name: GuardName,
        action: Action,
        subjects: Vec<Subject>,
        limit: u64,
        window: Window,
    ) -> Result<Guard, GuardError> {
        if subjects.is_empty() {
            return Err(GuardError::Subjects {
                guard: name,
                reason: "a guard counts by at least one subject",
            });
        }
        let mut seen = subjects.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != subjects.len() {
            return Err(GuardError::Subjects {
                guard: name,
                reason: "a subject is listed twice",
            });
        }
        for s in &subjects {
            s.check()?;
        }
        if limit == 0 {
            return Err(GuardError::ZeroLimit { guard: name });
        }
        Ok(Guard {
            name,
            action,
            subjects,
            limit,
            window: window.check()?,
            templates: Vec::new(),
            channels: Vec::new(),
            channel_prefix: None,
            require_context: false,
        })
    }

    /// Only requests for these templates.
    pub fn only_templates(mut self, templates: Vec<TemplateId>) -> Guard {
        self.templates = templates;
        self
    }

    /// Only requests through these channels.
    pub fn only_channels(mut self, channels: Vec<Channel>) -> Guard {
        self.channels = channels;
        self
    }

    /// Only requests through channels starting with `prefix` (`auto:` for every automated
    /// issuing rule).
    pub fn only_channel_prefix(mut self, prefix: impl Into<String>) -> Guard {
        self.channel_prefix = Some(prefix.into());
        self
    }

    /// Refuse requests lacking a context field this guard counts by.
    pub fn require_context(mut self) -> Guard {
        self.require_context = true;
        self
    }

    /// Its name.
    pub fn name(&self) -> &GuardName {
        &self.name
    }

    /// What it counts.
    pub fn action(&self) -> Action {
        self.action
    }

    /// Its limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Its window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// What it counts by.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    fn applies(&self, action: Action, asking: &Asking<'_>) -> bool {
        action == self.action
            && (self.templates.is_empty()
                || asking.templates.iter().any(|t| self.templates.contains(t)))
            && (self.channels.is_empty() || self.channels.contains(asking.channel))
            && self
                .channel_prefix
                .as_deref()
                .is_none_or(|p| asking.channel.as_str().starts_with(p))
    }

    /// The first context field this guard counts by that the request lacks, if any.
    #[inline(always)]
    fn missing(&self, asking: &Asking<'_>) -> Option<&'static str> {
        let ctx = asking.context;
        // A plain loop: it inlines into the caller (a `find_map` closure did not).
        for s in &self.subjects {
            match s {
                Subject::Device if ctx.device.is_none() => return Some("device"),
                Subject::Payment if ctx.payment.is_none() => return Some("payment account"),
                Subject::Ip | Subject::IpPrefix { .. } if ctx.ip.is_none() => return Some("ip"),
                _ => {}
            }
        }
        None
    }

    /// Whether this guard counts the request: it applies to `action` and `asking`, and the
    /// request carries every field it counts by.
    ///
    /// # Errors
    /// [`GuardError::MissingContext`] when a field is missing and the guard requires it.
    #[inline(always)]
    fn counts_request(&self, action: Action, asking: &Asking<'_>) -> Result<bool, GuardError> {
        if !self.applies(action, asking) {
            return Ok(false);
        }
        match self.missing(asking) {
            None => Ok(true),
            Some(field) if self.require_context => Err(GuardError::MissingContext {
                guard: self.name.clone(),
                field,
            }),
            Some(_) => Ok(false),
        }
    }

    /// The count this guard adds for a request it counts ([`counts_request`](Self::counts_request)),
    /// at the instant `secs` (seconds since the epoch).
    fn op(&self, asking: &Asking<'_>, secs: i64) -> Op {
        let (bucket, span) = self.window.bucket_of(secs);
        Op::CountWindow {
            guard: self.name.clone(),
            subject: self.subject_key(asking),
            bucket,
            span,
            delta: 1,
            limit: self.limit,
        }
    }

    /// The subject key of a request: the values of the guard's subjects, joined with `|`.
    /// Only for a request carrying every field the guard counts by (a missing one is left
    /// out). Written into one string: a guard is counted on every claim it applies to.
    ///
    /// Values are escaped where the key joins several (`|`, `=` and `,` would make it
    /// ambiguous): a guard of one subject other than templates writes its value as it is —
    /// `device=` and anything after it can only be the device id.
    #[inline(always)]
    fn subject_key(&self, asking: &Asking<'_>) -> SubjectKey {
        let mut key = KeyWriter::new();
        let one = matches!(self.subjects.as_slice(), [s] if *s != Subject::Template);
        let value = |key: &mut KeyWriter, s: &str| {
            if one {
                key.push_str(s);
            } else {
                escape_into(key, s);
            }
        };
        for (i, s) in self.subjects.iter().enumerate() {
            if i > 0 {
                key.push_ascii(b'|');
            }
            match s {
                Subject::User => {
                    key.push_str("user=");
                    value(&mut key, asking.user.as_str());
                }
                Subject::Channel => {
                    key.push_str("channel=");
                    value(&mut key, asking.channel.as_str());
                }
                Subject::Template => {
                    let mut t: Vec<&TemplateId> = asking.templates.iter().collect();
                    t.sort();
                    key.push_str("template=");
                    for (j, t) in t.iter().enumerate() {
                        if j > 0 {
                            key.push_ascii(b',');
                        }
                        escape_into(&mut key, t.as_str());
                    }
                }
                Subject::Device => {
                    if let Some(d) = &asking.context.device {
                        key.push_str("device=");
                        value(&mut key, d.as_str());
                    }
                }
                Subject::Payment => {
                    if let Some(p) = &asking.context.payment {
                        key.push_str("payment=");
                        value(&mut key, p.as_str());
                    }
                }
                Subject::Ip => {
                    if let Some(ip) = asking.context.ip {
                        key.push_str("ip=");
                        push_ip(&mut key, ip);
                    }
                }
                Subject::IpPrefix { v4, v6 } => {
                    if let Some(ip) = asking.context.ip {
                        key.push_str("net=");
                        push_network(&mut key, ip, *v4, *v6);
                    }
                }
            }
        }
        key.finish()
    }
}

/// Whether `s` holds a byte a subject key escapes (`%`, `|`, `=`, `,`): sixteen bytes at a
/// time, compared without branches (the compiler turns each block into a few vector compares),
/// the last block overlapping the one before it, a text shorter than a block padded with zeros.
fn needs_escape(s: &[u8]) -> bool {
    #[inline(always)]
    fn any(block: &[u8; 16]) -> bool {
        block.iter().fold(false, |a, &b| {
            a | (b == b'%') | (b == b'|') | (b == b'=') | (b == b',')
        })
    }
    let block = |t: &[u8]| <&[u8; 16]>::try_from(t).ok().is_some_and(any);
    if s.len() < 16 {
        let mut padded = [0u8; 16];
        if let Some(p) = padded.get_mut(..s.len()) {
            p.copy_from_slice(s);
        }
        return any(&padded);
    }
    let mut blocks = s.chunks_exact(16);
    if blocks.any(block) {
        return true;
    }
    !blocks.remainder().is_empty() && s.get(s.len() - 16..).is_some_and(block)
}

/// Appends `s` with `%`, `|`, `=` and `,` escaped.
#[inline]
fn escape_into(out: &mut KeyWriter, s: &str) {
    if needs_escape(s.as_bytes()) {
        escape_slow(out, s);
    } else {
        out.push_str(s);
    }
}

/// [`escape_into`] for a text that holds a byte to escape.
#[cold]
fn escape_slow(out: &mut KeyWriter, s: &str) {
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            '=' => out.push_str("%3D"),
            ',' => out.push_str("%2C"),
            c => out.push_str(c.encode_utf8(&mut [0u8; 4])),
        }
    }
}

/// The counts `guards` add to a request's batch: one [`Op::CountWindow`] per guard that applies
/// to `action` and `asking`, in the guards' order.
///
/// # Errors
/// [`GuardError::MissingContext`] from a guard that requires a field the request lacks.
pub fn counts(
    guards: &[Guard],
    action: Action,
    asking: &Asking<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Counted>, GuardError> {
    let mut out = Vec::with_capacity(guards.len());
    // The instant's seconds once for every guard (chrono derives them from the date).
    let secs = now.timestamp();
    for g in guards {
        if g.counts_request(action, asking)? {
            out.push(Counted {
                guard: g.name.clone(),
                limit: g.limit,
                window: g.window,
                op: g.op(asking, secs),
            });
        }
    }
    Ok(out)
}

/// [`counts`]' ops, pushed onto `ops` (a batch's, built in place: no [`Counted`] list);
/// returns how many. What a conflict on the `i`-th means is [`counting`]'s `i`-th guard.
///
/// # Errors
/// [`GuardError::MissingContext`] from a guard that requires a field the request lacks
/// (`ops` may then hold the ops of the guards before it).
pub(crate) fn push_counts(
    guards: &[Guard],
    action: Action,
    asking: &Asking<'_>,
    now: DateTime<Utc>,
    ops: &mut Vec<Op>,
) -> Result<usize, GuardError> {
    let secs = now.timestamp();
    let mut n = 0;
    for g in guards {
        if g.counts_request(action, asking)? {
            // Built in place in the batch's ops (an op is large: no copy through the stack).
            let subject = g.subject_key(asking);
            let (bucket, span) = g.window.bucket_of(secs);
            ops.push(Op::CountWindow {
                guard: g.name.clone(),
                subject,
                bucket,
                span,
                delta: 1,
                limit: g.limit,
            });
            n += 1;
        }
    }
    Ok(n)
}

/// The guards that count a request, in order: those whose ops [`counts`] and
/// [`push_counts`] add (for a request they did not refuse).
pub(crate) fn counting<'g>(
    guards: &'g [Guard],
    action: Action,
    asking: &Asking<'_>,
) -> impl Iterator<Item = &'g Guard> {
    guards
        .iter()
        .filter(move |g| g.counts_request(action, asking).unwrap_or(false))
}

/// Ready-made abuse guards: claim and use limits, code-guessing velocity and new-account
/// farming, each by user, device, IP address, /24 or /64 subnet, or payment account.
///
/// Every preset is an ordinary [`Guard`] named after what it counts (`claims-per-device`,
/// `code-attempts-per-ip`, `first-order-claims-per-payment`), so a refusal
/// ([`LifecycleError::GuardHeld`](crate::lifecycle::LifecycleError::GuardHeld) and a
/// `refused` event) names its reason; adjust one with the [`Guard`] builders.
///
/// ```
/// use coupons::guard::presets::{self, By};
/// use coupons::guard::Window;
/// use coupons::id::TemplateId;
/// let welcome = TemplateId::new("welcome-20")?;
/// let guards = vec![
///     presets::claims(By::Device, 20, Window::Day)?,
///     presets::code_attempts(By::Ip, 10, Window::Hour)?,
///     presets::first_order_claims(By::Payment, vec![welcome], 1, Window::Forever)?,
/// ];
/// assert_eq!(guards[1].name().as_str(), "code-attempts-per-ip");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub mod presets {
    use super::{Action, Guard, GuardError, Subject, Window};
    use crate::id::{GuardName, TemplateId};

    /// Who a preset counts by.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum By {
        /// The account.
        User,
        /// The device.
        Device,
        /// The exact IP address.
        Ip,
        /// The IP address's network: /24 for IPv4, /64 for IPv6 ([`Subject::SUBNET`]).
        Subnet,
        /// The payment account.
        Payment,
    }

    impl By {
        /// The guard subject.
        pub fn subject(self) -> Subject {
            match self {
                By::User => Subject::User,
                By::Device => Subject::Device,
                By::Ip => Subject::Ip,
                By::Subnet => Subject::SUBNET,
                By::Payment => Subject::Payment,
            }
        }

        /// The word in guard names: `user`, `device`, `ip`, `subnet`, `payment`.
        pub fn as_str(self) -> &'static str {
            match self {
                By::User => "user",
                By::Device => "device",
                By::Ip => "ip",
                By::Subnet => "subnet",
                By::Payment => "payment",
            }
        }
    }

    fn named(
        what: &str,
        by: By,
        action: Action,
        limit: u64,
        window: Window,
    ) -> Result<Guard, GuardError> {
        let name = GuardName::trusted(&format!("{what}-per-{}", by.as_str()));
        Guard::new(name, action, vec![by.subject()], limit, window)
    }

    /// At most `limit` coupons claimed per `window` by one user, device, IP, subnet or
    /// payment account (guard `claims-per-<by>`).
    ///
    /// # Errors
    /// [`GuardError::ZeroLimit`]; [`GuardError::Window`].
    pub fn claims(by: By, limit: u64, window: Window) -> Result<Guard, GuardError> {
        named("claims", by, Action::Claim, limit, window)
    }

    /// At most `limit` orders per `window` locking coupons or promo codes, by one user,
    /// device, IP, subnet or payment account (guard `uses-per-<by>`).
    ///
    /// # Errors
    /// [`GuardError::ZeroLimit`]; [`GuardError::Window`].
    pub fn uses(by: By, limit: u64, window: Window) -> Result<Guard, GuardError> {
        named("uses", by, Action::Lock, limit, window)
    }

    /// At most `limit` failed code redemptions per `window` from one device, IP, subnet,
    /// user or payment account; further attempts are refused before the code is looked up
    /// (guard `code-attempts-per-<by>`). With 10 an hour per IP, an attacker guessing codes
    /// of the default format (55 bits, 10⁶ issued) expects to need 4 × 10⁵ years per IP.
    ///
    /// # Errors
    /// [`GuardError::ZeroLimit`]; [`GuardError::Window`].
    pub fn code_attempts(by: By, limit: u64, window: Window) -> Result<Guard, GuardError> {
        named("code-attempts", by, Action::CodeAttempt, limit, window)
    }

    /// At most `limit` claims of the first-order (new-customer) `templates` per `window` by
    /// one device or payment account, however many new accounts ask (guard
    /// `first-order-claims-per-<by>`).
    ///
    /// # Errors
    /// [`GuardError::NoTemplates`] for an empty list; [`GuardError::ZeroLimit`];
    /// [`GuardError::Window`].
    pub fn first_order_claims(
        by: By,
        templates: Vec<TemplateId>,
        limit: u64,
        window: Window,
    ) -> Result<Guard, GuardError> {
        let g = named("first-order-claims", by, Action::Claim, limit, window)?;
        if templates.is_empty() {
            return Err(GuardError::NoTemplates {
                guard: g.name().clone(),
            });
        }
        Ok(g.only_templates(templates))
    }

    /// A starting set: 20 claims a day per device and 200 an hour per subnet; 10 failed
    /// code attempts an hour per device and per IP, 50 per subnet; the first-order
    /// `templates` claimed at most twice per device in 30 days and once per payment account
    /// ever (none when `first_order` is empty).
    ///
    /// # Errors
    /// None in practice (the figures are valid); typed for symmetry with the builders.
    pub fn standard(first_order: &[TemplateId]) -> Result<Vec<Guard>, GuardError> {
        let mut out = vec![
            claims(By::Device, 20, Window::Day)?,
            claims(By::Subnet, 200, Window::Hour)?,
            code_attempts(By::Device, 10, Window::Hour)?,
            code_attempts(By::Ip, 10, Window::Hour)?,
            code_attempts(By::Subnet, 50, Window::Hour)?,
        ];
        if !first_order.is_empty() {
            out.push(first_order_claims(
                By::Device,
                first_order.to_vec(),
                2,
                Window::rolling_days(30, 0)?,
            )?);
            out.push(first_order_claims(
                By::Payment,
                first_order.to_vec(),
                1,
                Window::Forever,
            )?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn name(s: &str) -> GuardName {
        GuardName::new(s).unwrap()
    }

    #[test]
    fn guards_are_valid_by_construction() {
        let w = Window::Day;
        assert!(Guard::new(name("g"), Action::Claim, vec![], 1, w).is_err());
        assert!(
            Guard::new(
                name("g"),
                Action::Claim,
                vec![Subject::Device, Subject::Device],
                1,
                w
            )
            .is_err()
        );
        assert!(Guard::new(name("g"), Action::Claim, vec![Subject::Device], 0, w).is_err());
        assert!(
            Guard::new(
                name("g"),
                Action::Claim,
                vec![Subject::IpPrefix { v4: 33, v6: 64 }],
                1,
                w
            )
            .is_err()
        );
        assert!(Window::rolling_days(0, 0).is_err());
        assert!(Window::rolling_days(7, 19 * 60).is_err());
        assert!(Window::calendar_day(-18 * 60).is_ok());
    }

    #[test]
    fn windows_bucket_by_their_period() {
        let at = Utc.with_ymd_and_hms(2026, 11, 10, 16, 30, 0).unwrap();
        let utc_day = Window::Day.bucket(at).0;
        let beijing = Window::calendar_day(480).unwrap().bucket(at).0;
        assert_eq!(
            beijing,
            utc_day + 1,
            "00:30 in Beijing is the next local day"
        );
        let before = Utc.with_ymd_and_hms(2026, 11, 10, 15, 59, 59).unwrap();
        assert_eq!(Window::calendar_day(480).unwrap().bucket(before).0, utc_day);
        assert_eq!(Window::rolling_days(7, 0).unwrap().bucket(at), (utc_day, 7));
        assert_eq!(Window::Forever.bucket(at), (0, 1));
        let early = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(Window::calendar_day(-60).unwrap().bucket(early).0, -1);
    }

    #[test]
    fn keys_are_written_as_display_writes_them() {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..5_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ip = if i % 4 == 0 {
                IpAddr::V6(std::net::Ipv6Addr::from(
                    u128::from(x) << 64 | u128::from(x >> 3),
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::from((x >> 16) as u32))
            };
            let mut s = KeyWriter::new();
            push_ip(&mut s, ip);
            assert_eq!(s.finish(), ip.to_string());
            let (v4, v6) = ((x % 33) as u8, ((x >> 8) % 129) as u8);
            let mut n = KeyWriter::new();
            push_network(&mut n, ip, v4, v6);
            assert_eq!(n.finish(), network(ip, v4, v6));
        }
        // IPv6 addresses made of zero, small and full groups (runs of zeros of every length
        // and place, ties between runs, IPv4-mapped ones), and every IPv6 prefix length.
        let mut y = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..20_000u32 {
            y ^= y << 13;
            y ^= y >> 7;
            y ^= y << 17;
            let mut seg = [0u16; 8];
            for (k, g) in seg.iter_mut().enumerate() {
                *g = match (y >> (2 * k)) & 3 {
                    0 | 1 => 0,
                    2 => ((y >> (16 + 4 * k)) & 0x1f) as u16,
                    _ => (y >> (8 * k)) as u16 | 0x1000,
                };
            }
            if i % 16 == 0 {
                seg = [0, 0, 0, 0, 0, 0xffff, (y >> 8) as u16, y as u16];
            }
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(seg));
            let mut s = KeyWriter::new();
            push_ip(&mut s, ip);
            assert_eq!(s.finish(), ip.to_string());
            let v6 = (i % 130) as u8;
            let mut n = KeyWriter::new();
            push_network(&mut n, ip, 24, v6);
            assert_eq!(n.finish(), network(ip, 24, v6), "{ip} /{v6}");
        }
        // Every octet value in every position, and every IPv4 prefix length.
        for o in 0..=255u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(o, 255 - o, o / 2, o % 10));
            let mut s = KeyWriter::new();
            push_ip(&mut s, ip);
            assert_eq!(s.finish(), ip.to_string());
            for v4 in 0..=33u8 {
                let mut n = KeyWriter::new();
                push_network(&mut n, ip, v4, 64);
                assert_eq!(n.finish(), network(ip, v4, 64));
            }
        }
        let mut e = KeyWriter::new();
        escape_into(&mut e, "a%b|c=d,e");
        assert_eq!(e.finish(), "a%25b%7Cc%3Dd%2Ce");
        // Every special byte at every position of texts up to 40 bytes (blocks, the last one
        // overlapping, the padded short text), beside every other byte: the block-at-a-time
        // check agrees with a byte-by-byte one.
        for len in 0..40usize {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut t = vec![b'a'; len];
                    if let Some(x) = t.get_mut(at) {
                        *x = b;
                    }
                    let slow = t.iter().any(|b| matches!(b, b'%' | b'|' | b'=' | b','));
                    assert_eq!(needs_escape(&t), slow, "{t:?}");
                }
            }
        }
    }

    #[test]
    fn subnets_mask_the_host_bits() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(network(v4, 24, 64), "203.0.113.0/24");
        assert_eq!(network(v4, 0, 64), "0.0.0.0/0");
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(network(v6, 24, 64), "2001:db8:abcd:12::/64");
    }

    #[test]
    fn distinct_values_get_distinct_keys_escaped_or_not() {
        // Every value of up to three characters over the bytes a key escapes, and some that
        // spell a join, as a user and a device: a guard of one subject (written as it is) and
        // one of both (escaped) never give two requests the same key.
        let alphabet = ['a', '|', '=', '%', ','];
        let mut values = Vec::new();
        for n in 1..=3u32 {
            for i in 0..5usize.pow(n) {
                let v: String = (0..n).map(|k| alphabet[i / 5usize.pow(k) % 5]).collect();
                values.push(v);
            }
        }
        // Values holding what joins two subjects: unescaped, `a|device=b` and `c` would read
        // as `a` and `b|device=c`.
        values.extend(["a|device=b", "b|device=c", "c", "x=1,y"].map(String::from));
        let ch = Channel::new("app").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let guard = |subjects| Guard::new(name("g"), Action::Claim, subjects, 1, Window::Day);
        let one = [guard(vec![Subject::Device]).unwrap()];
        let both = [guard(vec![Subject::User, Subject::Device]).unwrap()];
        let key = |guards: &[Guard], user: &str, device: &str| {
            let user = UserId::new(user).unwrap();
            let ctx = Context::new().device(DeviceId::new(device).unwrap());
            let asking = Asking {
                user: &user,
                channel: &ch,
                templates: &[],
                context: &ctx,
            };
            match counts(guards, Action::Claim, &asking, now)
                .unwrap()
                .remove(0)
                .op
            {
                Op::CountWindow { subject, .. } => subject.to_string(),
                other => panic!("{other:?}"),
            }
        };
        let mut seen = std::collections::HashMap::new();
        for d in &values {
            assert_eq!(seen.insert(key(&one, "u", d), d.clone()), None, "{d}");
        }
        let mut seen = std::collections::HashMap::new();
        for u in &values {
            for d in &values {
                let pair = (u.clone(), d.clone());
                assert_eq!(seen.insert(key(&both, u, d), pair), None, "{u} {d}");
            }
        }
    }

    #[test]
    fn counts_apply_by_action_filter_and_context() {
        let user = UserId::new("u").unwrap();
        let ch = Channel::new("auto:birthday").unwrap();
        let t = [TemplateId::new("t").unwrap()];
        let ctx = Context::new().device(DeviceId::new("d|1").unwrap());
        let asking = Asking {
            user: &user,
            channel: &ch,
            templates: &t,
            context: &ctx,
        };
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let guards = vec![
            Guard::new(
                name("dev"),
                Action::Claim,
                vec![Subject::Device],
                3,
                Window::Day,
            )
            .unwrap(),
            Guard::new(
                name("lock"),
                Action::Lock,
                vec![Subject::User],
                3,
                Window::Day,
            )
            .unwrap(),
            Guard::new(name("ip"), Action::Claim, vec![Subject::Ip], 3, Window::Day).unwrap(),
            Guard::new(
                name("push"),
                Action::Claim,
                vec![Subject::User],
                2,
                Window::Day,
            )
            .unwrap()
            .only_channel_prefix("auto:"),
            Guard::new(
                name("web"),
                Action::Claim,
                vec![Subject::User],
                2,
                Window::Day,
            )
            .unwrap()
            .only_channel_prefix("web"),
        ];
        let c = counts(&guards, Action::Claim, &asking, now).unwrap();
        let names: Vec<&str> = c.iter().map(|c| c.guard.as_str()).collect();
        assert_eq!(
            names,
            ["dev", "push"],
            "no ip: skipped; lock and web do not apply"
        );
        // One subject: its value as it is. Several: each escaped, so `|` only joins them.
        match &c[0].op {
            Op::CountWindow { subject, .. } => assert_eq!(subject, "device=d|1"),
            other => panic!("{other:?}"),
        }
        let both = [Guard::new(
            name("both"),
            Action::Claim,
            vec![Subject::User, Subject::Device],
            1,
            Window::Day,
        )
        .unwrap()];
        match &counts(&both, Action::Claim, &asking, now).unwrap()[0].op {
            Op::CountWindow { subject, .. } => assert_eq!(subject, "user=u|device=d%7C1"),
            other => panic!("{other:?}"),
        }
        let strict = [
            Guard::new(name("ip"), Action::Claim, vec![Subject::Ip], 3, Window::Day)
                .unwrap()
                .require_context(),
        ];
        assert!(matches!(
            counts(&strict, Action::Claim, &asking, now),
            Err(GuardError::MissingContext { field: "ip", .. })
        ));
    }
}
