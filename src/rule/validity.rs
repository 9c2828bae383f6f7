//! When an issued coupon may be used: a fixed window, or a span from the moment it is claimed.

use chrono::{DateTime, Duration, Utc};

use super::error::RuleError;
use crate::time;

/// How long a coupon is valid once claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Span {
    /// Whole days of 24 hours.
    Days(u32),
    /// Hours.
    Hours(u32),
}

impl Span {
    fn duration(self) -> Duration {
        match self {
            Span::Days(d) => Duration::days(i64::from(d)),
            Span::Hours(h) => Duration::hours(i64::from(h)),
        }
    }
}

/// The validity rule of a template. All instants are UTC (`DateTime<Utc>`) at microsecond
/// precision between the years 1970 and 9999 (see [`crate::time`]); JSON accepts any RFC 3339
/// offset and stores UTC, so no instant is ever ambiguous.
///
/// - `Fixed { from, until }`: usable in `[from, until)` whenever it was claimed.
/// - `Relative { span, not_after }`: usable from the claim for `span`, but never at or after
///   `not_after` if set ("7 days from claiming, and at the latest on 31 December").
///
/// ```
/// use coupons::rule::{Span, Validity};
/// use chrono::{TimeZone, Utc};
/// let claimed = Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap();
/// let end = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap();
/// let v = Validity::relative(Span::Days(7), Some(end))?;
/// let (from, until) = v.window_for(claimed).unwrap();
/// assert_eq!((from, until), (claimed, end)); // capped by not_after
/// # Ok::<(), coupons::rule::RuleError>(())
/// ```
///
/// In JSON, `{"kind": "fixed", "from": "2026-11-11T00:00:00+08:00", "until": "…"}` or
/// `{"kind": "relative", "days": 7}` (or `"hours"`, never both) with an optional
/// `"not_after"`. Errors name the field:
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use coupons::rule::Validity;
/// let e = serde_json::from_str::<Validity>(r#"{"kind": "relative", "days": 7, "hours": 2}"#)
///     .unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "validity: give the span in `days` or in `hours`, not both at line 1 column 43"
/// );
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(into = "ValidityRepr")
)]
pub enum Validity {
    /// A fixed window `[from, until)`.
    #[non_exhaustive]
    Fixed {
        /// Start, inclusive.
        from: DateTime<Utc>,
        /// End, exclusive.
        until: DateTime<Utc>,
    },
    /// From the moment of claiming, for `span`, capped by `not_after`.
    #[non_exhaustive]
    Relative {
        /// How long.
        span: Span,
        /// The latest end, if any.
        not_after: Option<DateTime<Utc>>,
    },
}

impl Validity {
    /// A fixed window `[from, until)`. Both instants are kept at microsecond precision
    /// (truncated toward the past), as every record holds them.
    ///
    /// # Errors
    /// [`RuleError::Time`] when an instant is outside 1970-01-01 to 9999-12-31 UTC (naming
    /// `validity.from` or `validity.until`); [`RuleError::WindowEndsBeforeStart`] when
    /// `until <= from` (after truncation).
    pub fn fixed(from: DateTime<Utc>, until: DateTime<Utc>) -> Result<Validity, RuleError> {
        let from = time::check("validity.from", from)?;
        let until = time::check("validity.until", until)?;
        if until <= from {
            return Err(RuleError::WindowEndsBeforeStart {
                field: "validity",
                from,
                until,
            });
        }
        Ok(Validity::Fixed { from, until })
    }

    /// `span` from the claim, never at or after `not_after` (kept at microsecond precision).
    ///
    /// # Errors
    /// [`RuleError::Zero`] for a zero span (naming `validity.days` or `validity.hours`);
    /// [`RuleError::Time`] when `not_after` is outside 1970-01-01 to 9999-12-31 UTC.
    pub fn relative(span: Span, not_after: Option<DateTime<Utc>>) -> Result<Validity, RuleError> {
        match span {
            Span::Days(0) => {
                return Err(RuleError::Zero {
                    field: "validity.days",
                });
            }
            Span::Hours(0) => {
                return Err(RuleError::Zero {
                    field: "validity.hours",
                });
            }
            _ => {}
        }
        let not_after = not_after
            .map(|t| time::check("validity.not_after", t))
            .transpose()?;
        Ok(Validity::Relative { span, not_after })
    }

    /// The window `[from, until)` of a coupon claimed at `claimed_at`, or `None` when it would
    /// be empty (claimed at or after the end). A span running past the year 9999 ends at
    /// [`time::LATEST`].
    pub fn window_for(&self, claimed_at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (from, until) = match *self {
            Validity::Fixed { from, until } => (from, until),
            Validity::Relative { span, not_after } => {
                let end = time::add_saturating(claimed_at, span.duration());
                (claimed_at, not_after.map_or(end, |n| end.min(n)))
            }
        };
        (claimed_at < until && from < until).then_some((from, until))
    }
}

/// The JSON shape of a [`Validity`], for writing.
#[cfg(feature = "serde")]
#[derive(serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ValidityRepr {
    Fixed {
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    },
    Relative {
        #[serde(flatten)]
        span: Span,
        #[serde(skip_serializing_if = "Option::is_none")]
        not_after: Option<DateTime<Utc>>,
    },
}

#[cfg(feature = "serde")]
impl From<Validity> for ValidityRepr {
    fn from(v: Validity) -> Self {
        match v {
            Validity::Fixed { from, until } => ValidityRepr::Fixed { from, until },
            Validity::Relative { span, not_after } => ValidityRepr::Relative { span, not_after },
        }
    }
}

#[cfg(feature = "serde")]
mod json {
    use std::num::NonZeroU32;

    use chrono::{DateTime, Utc};
    use serde::de::{Deserializer, MapAccess};

    use super::{Span, Validity};
    use crate::de::{FromObject, Keys, Path, Read, object, text_then};

    const FIELDS: &[&str] = &["kind", "from", "until", "days", "hours", "not_after"];
    const PATH: Path = Path::new("validity");

    impl<'de> serde::Deserialize<'de> for Validity {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Validity, D::Error> {
            object(PATH, d)
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Kind {
        Fixed,
        Relative,
    }

    /// The `kind`, checked where it stands.
    struct KindSeed;
    impl<'de> serde::de::DeserializeSeed<'de> for KindSeed {
        type Value = Kind;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kind, D::Error> {
            text_then(KIND, "`fixed` or `relative`", d, |s| match s {
                "fixed" => Ok(Kind::Fixed),
                "relative" => Ok(Kind::Relative),
                other => {
                    let cut: String = other.chars().take(60).collect();
                    Err(format!(
                        "{KIND}: expected `fixed` or `relative`, got the text {cut:?}"
                    ))
                }
            })
        }
    }

    /// One entry per field, as read.
    #[derive(Default)]
    struct Entries {
        kind: Option<Kind>,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        days: Option<NonZeroU32>,
        hours: Option<NonZeroU32>,
        not_after: Option<DateTime<Utc>>,
    }

    impl<'de> FromObject<'de> for Validity {
        const WHAT: &'static str =
            "a validity object such as {\"kind\": \"relative\", \"days\": 7}";

        fn from_object<A: MapAccess<'de>>(path: Path, mut map: A) -> Result<Self, A::Error> {
            let mut keys = Keys::new(Some(path), FIELDS);
            let mut e = Entries::default();
            while let Some(i) = keys.next(&mut map)? {
                match i {
                    0 => e.kind = Some(map.next_value_seed(KindSeed)?),
                    1 => e.from = Some(map.next_value_seed(Read::at(FROM))?),
                    2 => e.until = Some(map.next_value_seed(Read::at(UNTIL))?),
                    3 => e.days = Some(map.next_value_seed(Read::at(DAYS))?),
                    4 => e.hours = Some(map.next_value_seed(Read::at(HOURS))?),
                    _ => e.not_after = map.next_value_seed(Read::at(NOT_AFTER))?,
                }
                // A conflict is told as soon as its second half comes, where it stands.
                if let Some(reason) = e.conflict() {
                    return Err(path.error(reason));
                }
            }
            let validity = match e.kind {
                None => return Err(keys.missing("kind")),
                Some(Kind::Fixed) => {
                    let from = e.from.ok_or_else(|| keys.missing("from"))?;
                    let until = e.until.ok_or_else(|| keys.missing("until"))?;
                    Validity::fixed(from, until)
                }
                Some(Kind::Relative) => {
                    let span = match (e.days, e.hours) {
                        (Some(d), _) => Span::Days(d.get()),
                        (None, Some(h)) => Span::Hours(h.get()),
                        (None, None) => {
                            return Err(path.error("a relative validity needs `days` or `hours`"));
                        }
                    };
                    Validity::relative(span, e.not_after)
                }
            };
            validity.map_err(serde::de::Error::custom)
        }
    }

    impl Entries {
        /// The first contradiction among the fields read so far.
        fn conflict(&self) -> Option<&'static str> {
            if self.days.is_some() && self.hours.is_some() {
                return Some("give the span in `days` or in `hours`, not both");
            }
            match self.kind? {
                Kind::Fixed if self.days.is_some() => Some(
                    "`days` belongs to a relative validity; a fixed one has `from` and `until`",
                ),
                Kind::Fixed if self.hours.is_some() => Some(
                    "`hours` belongs to a relative validity; a fixed one has `from` and `until`",
                ),
                Kind::Fixed if self.not_after.is_some() => Some(
                    "`not_after` belongs to a relative validity; a fixed one has `from` and \
                     `until`",
                ),
                Kind::Relative if self.from.is_some() => Some(
                    "`from` belongs to a fixed validity; a relative one has `days` or `hours`, \
                     and an optional `not_after`",
                ),
                Kind::Relative if self.until.is_some() => Some(
                    "`until` belongs to a fixed validity; a relative one has `days` or `hours`, \
                     and an optional `not_after`",
                ),
                _ => None,
            }
        }
    }

    const KIND: Path = Path::new("validity.kind");
    const FROM: Path = Path::new("validity.from");
    const UNTIL: Path = Path::new("validity.until");
    const DAYS: Path = Path::new("validity.days");
    const HOURS: Path = Path::new("validity.hours");
    const NOT_AFTER: Path = Path::new("validity.not_after");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn fixed_window_must_not_end_before_it_starts() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(Validity::fixed(t, t).is_err());
        assert!(Validity::fixed(t, t - Duration::seconds(1)).is_err());
        assert!(Validity::relative(Span::Hours(0), None).is_err());
    }

    #[test]
    fn claiming_after_the_end_gives_no_window() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let v = Validity::relative(Span::Hours(48), Some(t)).unwrap();
        assert_eq!(v.window_for(t), None);
        let f = Validity::fixed(t, t + Duration::days(1)).unwrap();
        assert_eq!(
            f.window_for(t - Duration::days(3)),
            Some((t, t + Duration::days(1)))
        );
        assert_eq!(f.window_for(t + Duration::days(1)), None);
    }

    #[test]
    fn instants_are_kept_at_microseconds_within_1970_to_9999() {
        let t = Utc.timestamp_opt(1_800_000_000, 123_456_789).unwrap();
        let Validity::Fixed { from, .. } = Validity::fixed(t, t + Duration::days(1)).unwrap()
        else {
            panic!("fixed")
        };
        assert_eq!(from.timestamp_subsec_nanos(), 123_456_000);
        // 100 ns apart, in the same microsecond: the window is empty.
        assert!(matches!(
            Validity::fixed(t, t + Duration::nanoseconds(100)),
            Err(RuleError::WindowEndsBeforeStart { .. })
        ));
        let early = Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(
            Validity::fixed(early, t).unwrap_err().to_string(),
            "validity.from: 1969-12-31 00:00:00 UTC is outside the instants a record holds \
             (1970-01-01 to 9999-12-31 UTC)"
        );
        assert!(matches!(
            Validity::relative(Span::Days(1), Some(DateTime::<Utc>::MAX_UTC)),
            Err(RuleError::Time(crate::time::TimeError {
                field: "validity.not_after",
                ..
            }))
        ));
        let v = Validity::relative(Span::Days(u32::MAX), None).unwrap();
        assert_eq!(v.window_for(t), Some((t, time::LATEST)));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_errors_name_the_field_and_the_conflict() {
        let err = |json: &str| {
            let e = serde_json::from_str::<Validity>(json).unwrap_err();
            (e.to_string(), e.line())
        };
        let cases = [
            (
                r#"{"kind": "relative", "days": 7, "hours": 2}"#,
                "validity: give the span in `days` or in `hours`, not both at line 1 column 43",
            ),
            (
                r#"{"kind": "fixed", "days": 7, "from": "2026-01-01T00:00:00Z"}"#,
                "validity: `days` belongs to a relative validity; a fixed one has `from` and \
                 `until` at line 1 column 27",
            ),
            (
                r#"{"kind": "relative", "from": "2026-01-01T00:00:00Z", "days": 1}"#,
                "validity: `from` belongs to a fixed validity; a relative one has `days` or \
                 `hours`, and an optional `not_after` at line 1 column 51",
            ),
            (
                r#"{"days": 7}"#,
                "validity: missing field `kind` at line 1 column 11",
            ),
            (
                r#"{"kind": "relative"}"#,
                "validity: a relative validity needs `days` or `hours` at line 1 column 20",
            ),
            (
                r#"{"kind": "rolling", "days": 7}"#,
                "validity.kind: expected `fixed` or `relative`, got the text \"rolling\" at line 1 column 18",
            ),
            (
                r#"{"kind": "relative", "days": -1}"#,
                "validity.days: expected a non-negative integer, got -1 at line 1 column 31",
            ),
            (
                r#"{"kind": "relative", "hours": 0}"#,
                "validity.hours: must be at least 1 at line 1 column 31",
            ),
            (
                r#"{"kind": "fixed", "from": "yesterday", "until": "2026-01-01T00:00:00Z"}"#,
                "validity.from: expected an RFC 3339 instant such as \"2026-11-11T00:00:00+08:00\", \
                 got \"yesterday\" (input contains invalid characters) at line 1 column 37",
            ),
            (
                r#"{"kind": "fixed", "from": "1969-12-31T23:59:59Z", "until": "2026-01-01T00:00:00Z"}"#,
                "validity.from: 1969-12-31 23:59:59 UTC is outside the instants a record holds \
                 (1970-01-01 to 9999-12-31 UTC) at line 1 column 48",
            ),
            (
                r#"{"kind": "relative", "days": 7, "until_x": 1}"#,
                "validity: unknown field `until_x`, expected one of `kind`, `from`, `until`, \
                 `days`, `hours`, `not_after` at line 1 column 41",
            ),
            (
                r#""7 days""#,
                "validity: expected a validity object such as {\"kind\": \"relative\", \"days\": 7}, \
                 got the text \"7 days\" at line 1 column 8",
            ),
        ];
        let mut wrong = Vec::new();
        for (json, expected) in cases {
            let (got, line) = err(json);
            assert_eq!(line, 1);
            if got != expected {
                wrong.push(format!("{json}\n  got:      {got}\n  expected: {expected}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let v: Validity = serde_json::from_str(
            r#"{"kind": "fixed", "from": "2026-01-01T08:00:00.1234567+08:00", "until": "2026-01-02T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"kind":"fixed","from":"2026-01-01T00:00:00.123456Z","until":"2026-01-02T00:00:00Z"}"#
        );
    }
}
