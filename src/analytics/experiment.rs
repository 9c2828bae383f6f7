//! Experiments (A/B tests): which arm a user is in, decided by a hash of the user and the
//! experiment, so every process, machine and release of this crate agrees without storing
//! anything.
//!
//! An [`Experiment`] has an id, an optional salt and two or more weighted [`Arm`]s, exactly one
//! of which is the baseline the others are compared with: a [`Role::Control`] (users get the
//! current coupon) or a [`Role::Holdout`] (users get no coupon at all, which measures what the
//! coupon itself adds). Every other arm is a [`Role::Treatment`].
//!
//! ```
//! use coupons::analytics::experiment::{Arm, Experiment, ExperimentId, Role};
//! use coupons::attributes::Attributes;
//! use coupons::id::UserId;
//!
//! let exp = Experiment::new(ExperimentId::new("spend-200-face-value")?, [
//!     Arm::holdout("holdout", 10)?,   // 10 %: no coupon
//!     Arm::treatment("save-20", 45)?, // 45 %: spend 200, save 20
//!     Arm::treatment("save-25", 45)?, // 45 %: spend 200, save 25
//! ])?
//! .with_total(100)?; // the weights must add up to 100, as written
//!
//! let alice = UserId::new("alice")?;
//! let a = exp.assign(&alice);
//! assert_eq!(a.name().as_str(), "save-25");
//! assert_eq!(exp.assign(&alice).index(), a.index()); // the same answer, every time, anywhere
//!
//! // The coupon issued to Alice carries its arm, for the reports.
//! let mut attrs = Attributes::new();
//! a.record(&mut attrs)?;
//! assert_eq!(attrs.get("experiment").map(|v| v.as_str()), Some("spend-200-face-value"));
//! assert_eq!(attrs.get("arm").map(|v| v.as_str()), Some("save-25"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How a user is assigned
//!
//! The assignment is a pure function of the experiment id, its salt, the arm weights in their
//! order, and the user id — nothing else (no clock, no process state, no table):
//!
//! 1. The message is the experiment id, the salt and the user id, each as its UTF-8 byte
//!    length (8 bytes, little-endian) followed by its bytes.
//! 2. `h` is [SipHash-2-4](super::siphash) of the message under the key `00 01 02 … 0f`
//!    ([`REFERENCE_KEY`]).
//! 3. The weights, exact decimals, are scaled by a common power of ten to integers
//!    `w₁ … wₖ` with total `T`; arm `i` owns the buckets `[w₁+…+wᵢ₋₁, w₁+…+wᵢ)`.
//! 4. The user's bucket is `⌊h · T / 2⁶⁴⌋` (a 128-bit product; no modulo).
//!
//! Step 4 maps the 2⁶⁴ hash values onto the arms with no modulo bias beyond rounding: arm `i`
//! receives exactly `⌈Wᵢ·2⁶⁴/T⌉ − ⌈Wᵢ₋₁·2⁶⁴/T⌉` hash values (`Wᵢ` the cumulative weight), which
//! differs from its share `wᵢ/T · 2⁶⁴` by less than one. So with a uniform hash, an arm's
//! probability differs from its weight's share by less than 2⁻⁶⁴ (≈ 5.4·10⁻²⁰), whatever the
//! weights. Two consequences worth knowing:
//!
//! - Only proportions matter: weights `1, 1`, `50, 50` and `0.5, 0.5` assign every user alike.
//! - Arms hold consecutive ranges of the hash space, in order. Growing the *last* arm's share
//!   (a ramp from 10 % to 50 %, say) moves users into it and never out of it; users of the
//!   other arms move only when the range they sit in changes hands. Changing the salt
//!   re-randomises everyone.
//!
//! The salt is public data, not a secret: a user who can choose their own id could search for
//! one that lands in a favourable arm. Keep the salt private if that matters.

use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::siphash::{REFERENCE_KEY, Sip24};
use crate::attributes::{AttrError, AttrKey, AttrValue, Attributes};
use crate::id::UserId;

/// The attribute key under which a coupon records its experiment's id.
pub const EXPERIMENT_ATTRIBUTE: &str = "experiment";
/// The attribute key under which a coupon records its arm's name.
pub const ARM_ATTRIBUTE: &str = "arm";
/// The most arms an experiment has.
pub const MAX_ARMS: usize = 64;
/// The longest salt, in characters.
pub const MAX_SALT_LEN: usize = 128;

/// An experiment or arm definition, or an arm recorded on a coupon, broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// An experiment id, arm name or salt that is empty, too long or holds a character it may
    /// not.
    #[error("invalid {kind} {value:?}: {reason}")]
    Name {
        /// What it names: `"experiment id"`, `"arm name"` or `"salt"`.
        kind: &'static str,
        /// The text as given (cut to 140 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An arm weight of 0 or less.
    #[error("arm {arm}: weight {weight} is not positive")]
    WeightNotPositive {
        /// The arm.
        arm: String,
        /// The weight as given.
        weight: Decimal,
    },
    /// Weights whose common scale makes their integer total pass `u64::MAX` (e.g. one weight
    /// of `1e15` beside one of `0.0001`).
    #[error("experiment {experiment}: the weights, scaled to integers, add up past 2^64")]
    WeightsTooFine {
        /// The experiment.
        experiment: String,
    },
    /// Weights that do not add up to the total they were declared to add up to.
    #[error("experiment {experiment}: the weights add up to {sum}, not {total}")]
    TotalMismatch {
        /// The experiment.
        experiment: String,
        /// What the weights add up to.
        sum: Decimal,
        /// The declared total.
        total: Decimal,
    },
    /// Two arms with one name.
    #[error("experiment {experiment}: arm {arm} appears more than once")]
    DuplicateArm {
        /// The experiment.
        experiment: String,
        /// The repeated name.
        arm: String,
    },
    /// Fewer than two arms or more than [`MAX_ARMS`].
    #[error("experiment {experiment}: {got} arms; an experiment has 2 to {max}")]
    ArmCount {
        /// The experiment.
        experiment: String,
        /// How many arms were given.
        got: usize,
        /// [`MAX_ARMS`].
        max: usize,
    },
    /// Not exactly one baseline arm ([`Role::Control`] or [`Role::Holdout`]).
    #[error(
        "experiment {experiment}: {got} baseline arms (control or holdout); exactly one is needed"
    )]
    Baseline {
        /// The experiment.
        experiment: String,
        /// How many baseline arms were given.
        got: usize,
    },
    /// A coupon already recorded in another experiment, or in another arm of this one.
    #[error("the coupon is already in experiment {existing}, arm {arm}")]
    AlreadyRecorded {
        /// The experiment recorded on the coupon.
        existing: String,
        /// The arm recorded on the coupon.
        arm: String,
    },
    /// Attributes that name an experiment without an arm, or an arm without an experiment.
    #[error("the attributes have {present:?} without {missing:?}")]
    IncompleteRecord {
        /// The key that is present.
        present: &'static str,
        /// The key that is missing.
        missing: &'static str,
    },
    /// The attributes could not take the two entries.
    #[error(transparent)]
    Attributes(#[from] AttrError),
}

fn check_name(
    kind: &'static str,
    s: &str,
    max: usize,
    empty_ok: bool,
) -> Result<(), ExperimentError> {
    if s.is_empty() && empty_ok {
        return Ok(());
    }
    match crate::id::text_fault(s, max, "it is too long") {
        None => Ok(()),
        Some(reason) => Err(ExperimentError::Name {
            kind,
            value: s.chars().take(140).collect(),
            reason,
        }),
    }
}

macro_rules! name {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        crate::id::text_type!($(#[$doc])* $name, ExperimentError);

        impl $name {
            #[doc = concat!("Validates a ", $kind, ".")]
            ///
            /// # Errors
            #[doc = concat!("[`ExperimentError::Name`] when it is empty, longer than ", stringify!($max),
                " characters, contains a control character, or starts or ends with white space.")]
            pub fn new(s: impl AsRef<str>) -> Result<Self, ExperimentError> {
                let s = s.as_ref();
                check_name($kind, s, $max, false)?;
                Ok($name(Arc::from(s)))
            }
        }
    };
}

name!(
    /// An experiment's id, e.g. `spend-200-face-value`: 1 to 128 characters, no control
    /// characters, no leading or trailing white space.
    ExperimentId,
    "experiment id",
    128
);
name!(
    /// An arm's name, e.g. `control` or `save-25`: 1 to 64 characters, no control characters,
    /// no leading or trailing white space.
    ArmName,
    "arm name",
    64
);

/// What an arm is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Role {
    /// The baseline that receives the current coupon (or the current experience); treatments
    /// are compared with it.
    Control,
    /// The baseline that receives no coupon at all: comparing with it measures what a coupon
    /// adds. Its users are assigned and counted like any other arm's, but nothing is issued.
    Holdout,
    /// An arm under test.
    Treatment,
}

impl Role {
    /// Whether this is the baseline ([`Role::Control`] or [`Role::Holdout`]).
    pub fn is_baseline(self) -> bool {
        matches!(self, Role::Control | Role::Holdout)
    }

    /// Whether users in an arm of this role receive a coupon (everything but a holdout).
    pub fn issues_coupon(self) -> bool {
        !matches!(self, Role::Holdout)
    }
}

/// One arm: its name, role and weight. The weight is an exact positive decimal; an arm's share
/// of users is its weight divided by the sum of all the experiment's weights.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ArmRepr", into = "ArmRepr")
)]
pub struct Arm {
    name: ArmName,
    role: Role,
    weight: Decimal,
}

impl Arm {
    /// An arm.
    ///
    /// # Errors
    /// [`ExperimentError::Name`] for an invalid name; [`ExperimentError::WeightNotPositive`]
    /// for a weight of 0 or less.
    pub fn new(
        name: impl AsRef<str>,
        role: Role,
        weight: impl Into<Decimal>,
    ) -> Result<Arm, ExperimentError> {
        let name = ArmName::new(name)?;
        let weight = weight.into();
        if weight <= Decimal::ZERO {
            return Err(ExperimentError::WeightNotPositive {
                arm: name.to_string(),
                weight,
            });
        }
        Ok(Arm { name, role, weight })
    }

    /// A [`Role::Control`] arm.
    ///
    /// # Errors
    /// As [`Arm::new`].
    pub fn control(
        name: impl AsRef<str>,
        weight: impl Into<Decimal>,
    ) -> Result<Arm, ExperimentError> {
        Arm::new(name, Role::Control, weight)
    }

    /// A [`Role::Holdout`] arm: assigned and counted, but issued nothing.
    ///
    /// # Errors
    /// As [`Arm::new`].
    pub fn holdout(
        name: impl AsRef<str>,
        weight: impl Into<Decimal>,
    ) -> Result<Arm, ExperimentError> {
        Arm::new(name, Role::Holdout, weight)
    }

    /// A [`Role::Treatment`] arm.
    ///
    /// # Errors
    /// As [`Arm::new`].
    pub fn treatment(
        name: impl AsRef<str>,
        weight: impl Into<Decimal>,
    ) -> Result<Arm, ExperimentError> {
        Arm::new(name, Role::Treatment, weight)
    }

    /// The name.
    pub fn name(&self) -> &ArmName {
        &self.name
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The weight, as given.
    pub fn weight(&self) -> Decimal {
        self.weight
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ArmRepr {
    name: ArmName,
    role: Role,
    weight: Decimal,
}

#[cfg(feature = "serde")]
impl TryFrom<ArmRepr> for Arm {
    type Error = ExperimentError;
    fn try_from(r: ArmRepr) -> Result<Arm, ExperimentError> {
        Arm::new(r.name, r.role, r.weight)
    }
}

#[cfg(feature = "serde")]
impl From<Arm> for ArmRepr {
    fn from(a: Arm) -> ArmRepr {
        ArmRepr {
            name: a.name,
            role: a.role,
            weight: a.weight,
        }
    }
}

/// An experiment: its id, salt and arms, ready to assign users.
///
/// Valid by construction: 2 to [`MAX_ARMS`] arms with distinct names and positive weights, and
/// exactly one baseline. Deserialising runs the same checks.
#[derive(Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "ExperimentRepr", into = "ExperimentRepr")
)]
pub struct Experiment {
    id: ExperimentId,
    salt: Arc<str>,
    arms: Vec<Arm>,
    /// A copy of the first arm, so that a look-up by an index known to be in range needs no
    /// panicking path.
    first: Arm,
    /// `bounds[i]`: the cumulative scaled weight of arms `0..=i`; the last is `total`.
    bounds: Vec<u64>,
    total: u64,
    baseline: usize,
    /// SipHash state after absorbing the experiment id and the salt.
    prefix: Sip24,
}

fn scaled_weights(id: &ExperimentId, arms: &[Arm]) -> Result<(Vec<u64>, u64), ExperimentError> {
    let too_fine = || ExperimentError::WeightsTooFine {
        experiment: id.to_string(),
    };
    let weights: Vec<Decimal> = arms.iter().map(|a| a.weight.normalize()).collect();
    let scale = weights.iter().map(Decimal::scale).max().unwrap_or(0);
    let mut bounds = Vec::with_capacity(weights.len());
    let mut total: u64 = 0;
    for w in weights {
        let mantissa = u128::try_from(w.mantissa()).map_err(|_| too_fine())?;
        let factor = 10u128.checked_pow(scale - w.scale()).ok_or_else(too_fine)?;
        let scaled = mantissa.checked_mul(factor).ok_or_else(too_fine)?;
        let scaled = u64::try_from(scaled).map_err(|_| too_fine())?;
        total = total.checked_add(scaled).ok_or_else(too_fine)?;
        bounds.push(total);
    }
    Ok((bounds, total))
}

fn prefix_state(id: &ExperimentId, salt: &str) -> Sip24 {
    let mut h = Sip24::new(REFERENCE_KEY);
    for part in [id.as_str(), salt] {
        h.write(&(part.len() as u64).to_le_bytes());
        h.write(part.as_bytes());
    }
    h
}

impl Experiment {
    /// An experiment with these arms, in this order, and an empty salt.
    ///
    /// # Errors
    /// - [`ExperimentError::ArmCount`] for fewer than 2 arms or more than [`MAX_ARMS`];
    /// - [`ExperimentError::DuplicateArm`] when two arms share a name;
    /// - [`ExperimentError::Baseline`] unless exactly one arm is a control or a holdout;
    /// - [`ExperimentError::WeightsTooFine`] when the weights, scaled to integers by a common
    ///   power of ten, add up past `u64::MAX`.
    pub fn new(
        id: ExperimentId,
        arms: impl IntoIterator<Item = Arm>,
    ) -> Result<Experiment, ExperimentError> {
        let arms: Vec<Arm> = arms.into_iter().collect();
        let (first, rest) = match arms.split_first() {
            Some((first, rest)) if !rest.is_empty() && arms.len() <= MAX_ARMS => {
                (first.clone(), rest)
            }
            _ => {
                return Err(ExperimentError::ArmCount {
                    experiment: id.to_string(),
                    got: arms.len(),
                    max: MAX_ARMS,
                });
            }
        };
        for (i, a) in rest.iter().enumerate() {
            if arms.iter().take(i + 1).any(|b| b.name == a.name) {
                return Err(ExperimentError::DuplicateArm {
                    experiment: id.to_string(),
                    arm: a.name.to_string(),
                });
            }
        }
        let baselines = arms.iter().filter(|a| a.role.is_baseline()).count();
        let baseline = match arms.iter().position(|a| a.role.is_baseline()) {
            Some(i) if baselines == 1 => i,
            _ => {
                return Err(ExperimentError::Baseline {
                    experiment: id.to_string(),
                    got: baselines,
                });
            }
        };
        let (bounds, total) = scaled_weights(&id, &arms)?;
        let prefix = prefix_state(&id, "");
        Ok(Experiment {
            id,
            salt: Arc::from(""),
            arms,
            first,
            bounds,
            total,
            baseline,
            prefix,
        })
    }

    /// The same experiment with another salt: changing the salt re-randomises every user.
    ///
    /// ```
    /// use coupons::analytics::experiment::{Arm, Experiment, ExperimentId};
    /// let arms = [Arm::control("control", 1)?, Arm::treatment("b", 1)?];
    /// let exp = Experiment::new(ExperimentId::new("welcome-coupon")?, arms)?;
    /// let rerun = exp.clone().with_salt("second-run")?;
    /// let moved = (0..1000)
    ///     .filter(|i| exp.assign_unit(&format!("user-{i}")).index()
    ///         != rerun.assign_unit(&format!("user-{i}")).index())
    ///     .count();
    /// assert!((400..600).contains(&moved)); // about half move, independently of before
    /// # Ok::<(), coupons::analytics::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// [`ExperimentError::Name`] when the salt is longer than [`MAX_SALT_LEN`] characters,
    /// contains a control character, or starts or ends with white space.
    pub fn with_salt(mut self, salt: impl AsRef<str>) -> Result<Experiment, ExperimentError> {
        let salt = salt.as_ref();
        check_name("salt", salt, MAX_SALT_LEN, true)?;
        self.prefix = prefix_state(&self.id, salt);
        self.salt = Arc::from(salt);
        Ok(self)
    }

    /// Checks that the weights add up to exactly `total` (100 for percentages, 1 for
    /// fractions), catching a typo such as `33, 33, 33`.
    ///
    /// # Errors
    /// [`ExperimentError::TotalMismatch`] when they do not.
    pub fn with_total(self, total: impl Into<Decimal>) -> Result<Experiment, ExperimentError> {
        let total = total.into();
        let sum = self.total_weight();
        if sum != Some(total) {
            return Err(ExperimentError::TotalMismatch {
                experiment: self.id.to_string(),
                sum: sum.unwrap_or(Decimal::MAX),
                total,
            });
        }
        Ok(self)
    }

    /// The id.
    pub fn id(&self) -> &ExperimentId {
        &self.id
    }

    /// The salt (empty unless set).
    pub fn salt(&self) -> &str {
        &self.salt
    }

    /// The arms, in order.
    pub fn arms(&self) -> &[Arm] {
        &self.arms
    }

    /// The arm at `index`, if there is one.
    pub fn arm(&self, index: usize) -> Option<&Arm> {
        self.arms.get(index)
    }

    /// The index of the arm called `name`.
    pub fn arm_index(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name.as_str() == name)
    }

    /// The baseline arm's index and the arm (the control or holdout).
    pub fn baseline(&self) -> (usize, &Arm) {
        (self.baseline, self.arm_or_first(self.baseline))
    }

    /// The sum of the weights as given, or `None` if it overflows a `Decimal`.
    pub fn total_weight(&self) -> Option<Decimal> {
        self.arms
            .iter()
            .try_fold(Decimal::ZERO, |s, a| s.checked_add(a.weight))
    }

    /// Each arm's weight as an integer after scaling by a common power of ten, and their
    /// total: arm `i`'s exact share of users is `scaled[i] / total`.
    pub fn scaled_weights(&self) -> (Vec<u64>, u64) {
        let mut prev = 0;
        let scaled = self
            .bounds
            .iter()
            .map(|&b| {
                let w = b - prev;
                prev = b;
                w
            })
            .collect();
        (scaled, self.total)
    }

    fn arm_or_first(&self, index: usize) -> &Arm {
        self.arms.get(index).unwrap_or(&self.first)
    }

    /// The 64-bit assignment hash of a unit (a user id, or a device or session id when that is
    /// what is randomised): SipHash-2-4 of the length-prefixed experiment id, salt and unit.
    /// Published so the assignment can be reproduced in another language.
    pub fn hash(&self, unit: &str) -> u64 {
        let mut h = self.prefix.clone();
        h.write(&(unit.len() as u64).to_le_bytes());
        h.write(unit.as_bytes());
        h.finish()
    }

    /// The bucket of a unit, in `0..T` where `T` is the scaled total weight:
    /// `⌊hash · T / 2⁶⁴⌋`.
    pub fn bucket(&self, unit: &str) -> u64 {
        ((u128::from(self.hash(unit)) * u128::from(self.total)) >> 64) as u64
    }

    /// The arm of a user.
    pub fn assign(&self, user: &UserId) -> Assignment<'_> {
        self.assign_unit(user.as_str())
    }

    /// The arm of any randomisation unit given as text (a device id, a session id, an
    /// anonymous cookie). Users are [`Experiment::assign`]ed by their id's text, so
    /// `assign_unit(user.as_str())` is the same as `assign(&user)`.
    pub fn assign_unit(&self, unit: &str) -> Assignment<'_> {
        self.assign_hash(self.hash(unit))
    }

    /// The arm that an assignment hash maps to (steps 3 and 4 of the module docs): for
    /// auditing the mapping, or assigning by a hash computed elsewhere.
    pub fn assign_hash(&self, hash: u64) -> Assignment<'_> {
        let bucket = ((u128::from(hash) * u128::from(self.total)) >> 64) as u64;
        let index = self.bounds.partition_point(|&b| b <= bucket);
        Assignment {
            experiment: self,
            arm: self.arm_or_first(index),
            index,
        }
    }
}

impl PartialEq for Experiment {
    fn eq(&self, other: &Experiment) -> bool {
        self.id == other.id && self.salt == other.salt && self.arms == other.arms
    }
}

impl Eq for Experiment {}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("id", &self.id)
            .field("salt", &&*self.salt)
            .field("arms", &self.arms)
            .finish()
    }
}

#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
struct ExperimentRepr {
    id: ExperimentId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    salt: String,
    arms: Vec<Arm>,
}

#[cfg(feature = "serde")]
impl TryFrom<ExperimentRepr> for Experiment {
    type Error = ExperimentError;
    fn try_from(r: ExperimentRepr) -> Result<Experiment, ExperimentError> {
        Experiment::new(r.id, r.arms)?.with_salt(r.salt)
    }
}

#[cfg(feature = "serde")]
impl From<Experiment> for ExperimentRepr {
    fn from(e: Experiment) -> ExperimentRepr {
        ExperimentRepr {
            id: e.id,
            salt: e.salt.to_string(),
            arms: e.arms,
        }
    }
}

/// Where a unit landed: the experiment and the arm.
#[derive(Clone, Copy, Debug)]
pub struct Assignment<'e> {
    experiment: &'e Experiment,
    arm: &'e Arm,
    index: usize,
}

impl<'e> Assignment<'e> {
    /// The experiment.
    pub fn experiment(&self) -> &'e Experiment {
        self.experiment
    }

    /// The arm.
    pub fn arm(&self) -> &'e Arm {
        self.arm
    }

    /// The arm's name.
    pub fn name(&self) -> &'e ArmName {
        &self.arm.name
    }

    /// The arm's role.
    pub fn role(&self) -> Role {
        self.arm.role
    }

    /// The arm's position in [`Experiment::arms`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the user receives a coupon (false in a holdout).
    pub fn issues_coupon(&self) -> bool {
        self.arm.role.issues_coupon()
    }

    /// The experiment and arm, owned, as a coupon records them.
    pub fn tag(&self) -> ArmTag {
        ArmTag {
            experiment: self.experiment.id.clone(),
            arm: self.arm.name.clone(),
        }
    }

    /// Records the experiment and arm on a coupon's attributes, under
    /// [`EXPERIMENT_ATTRIBUTE`] and [`ARM_ATTRIBUTE`]. See [`ArmTag::write`].
    ///
    /// # Errors
    /// As [`ArmTag::write`].
    pub fn record(&self, attributes: &mut Attributes) -> Result<(), ExperimentError> {
        self.tag().write(attributes)
    }
}

/// An experiment and arm as recorded on a coupon (its attributes `experiment` and `arm`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ArmTag {
    /// The experiment.
    pub experiment: ExperimentId,
    /// The arm.
    pub arm: ArmName,
}

impl ArmTag {
    /// Writes `experiment = <id>` and `arm = <name>` into `attributes`, both or neither. Writing
    /// the same tag again changes nothing.
    ///
    /// # Errors
    /// - [`ExperimentError::AlreadyRecorded`] when the attributes already name another
    ///   experiment or another arm (a coupon is in one experiment, in one arm);
    /// - [`ExperimentError::Attributes`] when the map has no room for the two entries.
    pub fn write(&self, attributes: &mut Attributes) -> Result<(), ExperimentError> {
        let existing = (
            attributes.get(EXPERIMENT_ATTRIBUTE),
            attributes.get(ARM_ATTRIBUTE),
        );
        if existing.0.is_some() || existing.1.is_some() {
            let same = existing.0.map(AttrValue::as_str) == Some(self.experiment.as_str())
                && existing.1.map(AttrValue::as_str) == Some(self.arm.as_str());
            if same {
                return Ok(());
            }
            return Err(ExperimentError::AlreadyRecorded {
                existing: existing.0.map(|v| v.to_string()).unwrap_or_default(),
                arm: existing.1.map(|v| v.to_string()).unwrap_or_default(),
            });
        }
        let mut next = attributes.clone();
        next.insert(
            AttrKey::new(EXPERIMENT_ATTRIBUTE)?,
            AttrValue::new(self.experiment.as_str())?,
        )?;
        next.insert(
            AttrKey::new(ARM_ATTRIBUTE)?,
            AttrValue::new(self.arm.as_str())?,
        )?;
        *attributes = next;
        Ok(())
    }

    /// Reads the tag back from a coupon's attributes: `None` when the coupon is in no
    /// experiment.
    ///
    /// ```
    /// use coupons::analytics::experiment::{ArmTag, ArmName, ExperimentId};
    /// use coupons::attributes::Attributes;
    /// let tag = ArmTag { experiment: ExperimentId::new("e1")?, arm: ArmName::new("b")? };
    /// let mut attrs = Attributes::new();
    /// assert_eq!(ArmTag::read(&attrs)?, None);
    /// tag.write(&mut attrs)?;
    /// assert_eq!(ArmTag::read(&attrs)?, Some(tag));
    /// # Ok::<(), coupons::analytics::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// [`ExperimentError::IncompleteRecord`] when only one of the two keys is present;
    /// [`ExperimentError::Name`] when a value is not a valid id or name.
    pub fn read(attributes: &Attributes) -> Result<Option<ArmTag>, ExperimentError> {
        match (
            attributes.get(EXPERIMENT_ATTRIBUTE),
            attributes.get(ARM_ATTRIBUTE),
        ) {
            (None, None) => Ok(None),
            (Some(e), Some(a)) => Ok(Some(ArmTag {
                experiment: ExperimentId::new(e.as_str())?,
                arm: ArmName::new(a.as_str())?,
            })),
            (Some(_), None) => Err(ExperimentError::IncompleteRecord {
                present: EXPERIMENT_ATTRIBUTE,
                missing: ARM_ATTRIBUTE,
            }),
            (None, Some(_)) => Err(ExperimentError::IncompleteRecord {
                present: ARM_ATTRIBUTE,
                missing: EXPERIMENT_ATTRIBUTE,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::siphash::siphash24;
    use super::*;

    fn exp(arms: Vec<Arm>) -> Experiment {
        Experiment::new(ExperimentId::new("e").unwrap(), arms).unwrap()
    }

    fn ab() -> Experiment {
        exp(vec![
            Arm::control("control", 1).unwrap(),
            Arm::treatment("b", 1).unwrap(),
        ])
    }

    #[test]
    fn the_hash_is_siphash_of_the_documented_message() {
        let e = ab().with_salt("s1").unwrap();
        let mut msg = Vec::new();
        for part in ["e", "s1", "alice"] {
            msg.extend_from_slice(&(part.len() as u64).to_le_bytes());
            msg.extend_from_slice(part.as_bytes());
        }
        assert_eq!(e.hash("alice"), siphash24(REFERENCE_KEY, &msg));
    }

    #[test]
    fn bucket_is_the_high_half_of_the_product() {
        let e = exp(vec![
            Arm::control("a", 3).unwrap(),
            Arm::treatment("b", 7).unwrap(),
        ]);
        for u in ["alice", "bob", "carol", "dave"] {
            let h = e.hash(u);
            let want = ((u128::from(h) * 10) >> 64) as u64;
            assert_eq!(e.bucket(u), want);
            assert_eq!(e.assign_unit(u).index(), usize::from(want >= 3));
        }
    }

    #[test]
    fn definitions_are_checked() {
        let id = || ExperimentId::new("e").unwrap();
        assert!(matches!(
            Experiment::new(id(), [Arm::control("a", 1).unwrap()]),
            Err(ExperimentError::ArmCount { got: 1, .. })
        ));
        assert!(matches!(
            Experiment::new(
                id(),
                [
                    Arm::control("a", 1).unwrap(),
                    Arm::treatment("a", 1).unwrap()
                ]
            ),
            Err(ExperimentError::DuplicateArm { .. })
        ));
        assert!(matches!(
            Experiment::new(
                id(),
                [
                    Arm::treatment("a", 1).unwrap(),
                    Arm::treatment("b", 1).unwrap()
                ]
            ),
            Err(ExperimentError::Baseline { got: 0, .. })
        ));
        assert!(matches!(
            Experiment::new(
                id(),
                [Arm::control("a", 1).unwrap(), Arm::holdout("b", 1).unwrap()]
            ),
            Err(ExperimentError::Baseline { got: 2, .. })
        ));
        assert!(matches!(
            Arm::control("a", 0),
            Err(ExperimentError::WeightNotPositive { .. })
        ));
        assert!(Arm::control("a", -1).is_err());
        assert!(Arm::control("", 1).is_err());
        assert!(Arm::control(" a", 1).is_err());
        assert!(Arm::control("a".repeat(65), 1).is_err());
        let too_fine = Experiment::new(
            id(),
            [
                Arm::control("a", Decimal::new(1, 20)).unwrap(),
                Arm::treatment("b", 1).unwrap(),
            ],
        );
        assert!(matches!(
            too_fine,
            Err(ExperimentError::WeightsTooFine { .. })
        ));
        assert!(ab().with_total(2).is_ok());
        assert!(matches!(
            ab().with_total(100),
            Err(ExperimentError::TotalMismatch { .. })
        ));
        assert!(ab().with_salt("a\nb").is_err());
        assert!(ab().with_salt("x".repeat(129)).is_err());
        let many: Vec<Arm> = (0..=MAX_ARMS)
            .map(|i| {
                Arm::new(
                    format!("a{i}"),
                    if i == 0 {
                        Role::Control
                    } else {
                        Role::Treatment
                    },
                    1,
                )
                .unwrap()
            })
            .collect();
        assert!(matches!(
            Experiment::new(id(), many),
            Err(ExperimentError::ArmCount { .. })
        ));
    }

    #[test]
    fn decimal_weights_scale_to_integers() {
        let e = exp(vec![
            Arm::control("a", Decimal::new(25, 2)).unwrap(), // 0.25
            Arm::treatment("b", Decimal::new(5, 1)).unwrap(), // 0.5
            Arm::treatment("c", Decimal::new(2500, 4)).unwrap(), // 0.2500
        ]);
        assert_eq!(e.scaled_weights(), (vec![25, 50, 25], 100));
        assert_eq!(e.total_weight(), Some(Decimal::ONE));
        assert!(e.clone().with_total(1).is_ok());
    }

    #[test]
    fn only_proportions_matter() {
        let a = exp(vec![
            Arm::control("x", 1).unwrap(),
            Arm::treatment("y", 3).unwrap(),
        ]);
        let b = exp(vec![
            Arm::control("x", Decimal::new(25, 2)).unwrap(),
            Arm::treatment("y", Decimal::new(75, 2)).unwrap(),
        ]);
        for i in 0..2000 {
            let u = format!("u{i}");
            assert_eq!(a.assign_unit(&u).index(), b.assign_unit(&u).index());
        }
    }

    #[test]
    fn recording_writes_both_keys_or_refuses() {
        let e = ab();
        let a = e.assign_unit("alice");
        let mut attrs = Attributes::new();
        a.record(&mut attrs).unwrap();
        a.record(&mut attrs).unwrap(); // idempotent
        assert_eq!(ArmTag::read(&attrs).unwrap(), Some(a.tag()));
        let other = Experiment::new(
            ExperimentId::new("other").unwrap(),
            [
                Arm::control("control", 1).unwrap(),
                Arm::treatment("b", 1).unwrap(),
            ],
        )
        .unwrap();
        assert!(matches!(
            other.assign_unit("alice").record(&mut attrs),
            Err(ExperimentError::AlreadyRecorded { .. })
        ));
        let mut half = Attributes::new();
        half.insert(
            AttrKey::new(ARM_ATTRIBUTE).unwrap(),
            AttrValue::new("b").unwrap(),
        )
        .unwrap();
        assert!(matches!(
            ArmTag::read(&half),
            Err(ExperimentError::IncompleteRecord { .. })
        ));
        // A full map takes neither key.
        let mut full = Attributes::new();
        for i in 0..crate::attributes::MAX_ATTRIBUTES - 1 {
            full.insert(
                AttrKey::new(format!("k{i}")).unwrap(),
                AttrValue::new("v").unwrap(),
            )
            .unwrap();
        }
        let before = full.clone();
        assert!(matches!(
            a.record(&mut full),
            Err(ExperimentError::Attributes(_))
        ));
        assert_eq!(full, before);
    }

    #[test]
    fn holdout_issues_nothing() {
        let e = exp(vec![
            Arm::holdout("h", 1).unwrap(),
            Arm::treatment("t", 1).unwrap(),
        ]);
        assert_eq!(e.baseline().0, 0);
        let (h, t): (Vec<_>, Vec<_>) = (0..200)
            .map(|i| e.assign_unit(&format!("u{i}")))
            .partition(|a| a.role() == Role::Holdout);
        assert!(h.iter().all(|a| !a.issues_coupon()));
        assert!(t.iter().all(|a| a.issues_coupon()));
        assert!(!h.is_empty() && !t.is_empty());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_goes_through_the_checks() {
        let e = ab().with_salt("s").unwrap();
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"id":"e","salt":"s","arms":[{"name":"control","role":"control","weight":"1"},{"name":"b","role":"treatment","weight":"1"}]}"#
        );
        let back: Experiment = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.hash("alice"), e.hash("alice"));
        let bad = r#"{"id":"e","arms":[{"name":"a","role":"treatment","weight":"1"},{"name":"b","role":"treatment","weight":"1"}]}"#;
        assert!(serde_json::from_str::<Experiment>(bad).is_err());
        let zero = r#"{"id":"e","arms":[{"name":"a","role":"control","weight":"0"},{"name":"b","role":"treatment","weight":"1"}]}"#;
        assert!(serde_json::from_str::<Experiment>(zero).is_err());
    }
}
