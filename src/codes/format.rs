//! The shape of a code: alphabet, prefix and suffix, random characters, grouping, the check
//! character, and the guessing floor it must clear.

use super::alphabet::Alphabet;
use super::error::FormatError;

/// The least randomness a code may carry, in bits (a minimum can only be raised).
pub const MIN_BITS_FLOOR: u32 = 40;
/// The default guessing margin: a batch may hold at most one code in a million of the
/// possible ones.
pub const DEFAULT_MIN_GUESSES_PER_HIT: u64 = 1_000_000;
/// The longest code: the longest [`PromoCode`](crate::rule::PromoCode).
pub const MAX_CODE_LEN: usize = 32;
/// The shortest code: the shortest [`PromoCode`](crate::rule::PromoCode).
pub const MIN_CODE_LEN: usize = 3;

/// How codes look, how many there can be, and how hard they are to guess.
///
/// A format is a *pattern* over an [`Alphabet`]: `#` is a random character, the last `#` is
/// the check character (unless the check is turned off), and anything else — ASCII letters
/// and digits, `-`, `_` — is written as it stands (letters upper-case). The default format
/// is `####-####-####` over [`Alphabet::crockford`]: 11 random characters (55 bits) and a
/// check character.
///
/// A format is checked when built:
/// - its codes have 3 to 32 characters, so every code converts to a
///   [`PromoCode`](crate::rule::PromoCode);
/// - each code carries at least [`min_bits`](CodeFormatBuilder::min_bits) bits of randomness
///   (40 unless raised), counted over the random characters only: the check character and
///   the fixed characters add nothing an attacker does not know.
///
/// ## Guessing resistance
///
/// With `n` symbols and `r` random characters there are `S = nʳ` codes, each drawn with
/// `r·log2(n)` bits of randomness. When `N` of them are issued, a guess that is well formed —
/// right prefix, right check character, which anyone can compute — hits *some* issued code
/// with probability `N / S`, so it takes `S / N` guesses on average
/// ([`expected_guesses`](CodeFormat::expected_guesses)). A batch is refused when `S / N`
/// would fall below the format's margin ([`min_guesses_per_hit`](CodeFormatBuilder::min_guesses_per_hit),
/// one million by default), which also keeps every batch below half of the possible codes.
///
/// | alphabet | random chars | bits | codes possible | capacity at 10⁶ guesses/hit | guesses per hit, 10⁶ issued |
/// | --- | ---: | ---: | ---: | ---: | ---: |
/// | Crockford 32 | 8 | 40 | 1.1 × 10¹² | 1.1 × 10⁶ | 1.1 × 10⁶ |
/// | Crockford 32 | 11 (default) | 55 | 3.6 × 10¹⁶ | 3.6 × 10¹⁰ | 3.6 × 10¹⁰ |
/// | Crockford 32 | 15 | 75 | 3.8 × 10²² | 3.8 × 10¹⁶ | 3.8 × 10¹⁶ |
/// | digits 10 | 13 | 43.2 | 10¹³ | 10⁷ | 10⁷ |
/// | digits 10 | 16 | 53.2 | 10¹⁶ | 10¹⁰ | 10¹⁰ |
/// | letters+digits 36 | 8 | 41.4 | 2.8 × 10¹² | 2.8 × 10⁶ | 2.8 × 10⁶ |
///
/// ```
/// use coupons::codes::{Alphabet, CodeFormat};
/// let f = CodeFormat::from_pattern("SALE-###-###-###")?;
/// assert_eq!(f.random_len(), 8); // the ninth `#` is the check character
/// assert_eq!(f.entropy_bits(), 40.0);
/// assert_eq!(f.space(), 1 << 40);
/// assert_eq!(f.capacity(), (1 << 40) / 1_000_000);
/// assert_eq!(f.expected_guesses(1_000), (1u64 << 40) as f64 / 1_000.0);
///
/// // Seven random characters are 35 bits: refused.
/// assert!(CodeFormat::from_pattern("SALE-####-####").is_err());
///
/// // The builder: 16 digits in groups of four, after a prefix.
/// let gift = CodeFormat::builder()
///     .alphabet(Alphabet::digits())
///     .prefix("GC-")
///     .length(16)
///     .group(4)
///     .build()?;
/// assert_eq!(gift.pattern(), "GC-####-####-####-####");
/// # Ok::<(), coupons::codes::FormatError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "FormatRepr", into = "FormatRepr")
)]
pub struct CodeFormat {
    pub(crate) alphabet: Alphabet,
    /// The canonical pattern: literals upper-case, `#` for every random or check character.
    pub(crate) pattern: String,
    /// The pattern's bytes, zero-padded to 32: the canonical code before its symbols.
    pub(crate) canon: [u8; MAX_CODE_LEN],
    /// The pattern without separators: a literal byte, or [`SLOT`]; `typed_len` of them.
    pub(crate) skeleton: [u8; MAX_CODE_LEN],
    pub(crate) typed_len: usize,
    /// Where each `#` is in the pattern (byte offsets); `slots` of them.
    pub(crate) slot_at: [u8; MAX_CODE_LEN],
    pub(crate) slots: usize,
    pub(crate) check: bool,
    pub(crate) random_len: usize,
    pub(crate) min_bits: u32,
    pub(crate) min_guesses: u64,
    pub(crate) space: u128,
}

/// Marks a random or check character in [`CodeFormat::skeleton`].
pub(crate) const SLOT: u8 = b'#';

impl Default for CodeFormat {
    /// `####-####-####` over [`Alphabet::crockford`] with a check character: 55 bits.
    fn default() -> Self {
        CodeFormat::assemble(
            Alphabet::crockford(),
            "####-####-####".to_owned(),
            true,
            MIN_BITS_FLOOR,
            DEFAULT_MIN_GUESSES_PER_HIT,
        )
    }
}

impl CodeFormat {
    /// A format from a pattern over [`Alphabet::crockford`], with a check character in the
    /// last `#` and the default floors: `CodeFormat::from_pattern("SALE-###-###-###")`.
    ///
    /// # Errors
    /// As [`CodeFormatBuilder::build`].
    pub fn from_pattern(pattern: &str) -> Result<CodeFormat, FormatError> {
        CodeFormat::builder().pattern(pattern).build()
    }

    /// A builder, starting from the default format.
    pub fn builder() -> CodeFormatBuilder {
        CodeFormatBuilder::default()
    }

    /// The alphabet of the random and check characters.
    pub fn alphabet(&self) -> &Alphabet {
        &self.alphabet
    }

    /// The pattern: fixed characters as they appear, `#` for each random or check character.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the last `#` is a check character.
    pub fn has_check(&self) -> bool {
        self.check
    }

    /// The number of random characters (the check character not counted).
    pub fn random_len(&self) -> usize {
        self.random_len
    }

    /// A code's length in characters, separators included.
    pub fn len(&self) -> usize {
        self.pattern.len()
    }

    /// Always false: a code has at least 3 characters.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of letters and digits a buyer types (separators not counted).
    pub fn typed_len(&self) -> usize {
        self.typed_len
    }

    /// Bits of randomness in each code: `random_len · log2(alphabet size)`.
    pub fn entropy_bits(&self) -> f64 {
        self.random_len as f64 * self.alphabet.bits_per_symbol()
    }

    /// How many different codes the format has: `alphabet sizeʳᵃⁿᵈᵒᵐ ˡᵉⁿ`.
    pub fn space(&self) -> u128 {
        self.space
    }

    /// The minimum bits of randomness this format was built to clear.
    pub fn min_bits(&self) -> u32 {
        self.min_bits
    }

    /// The guessing margin: each issued code must take at least this many random well-formed
    /// guesses to hit, on average.
    pub fn min_guesses_per_hit(&self) -> u64 {
        self.min_guesses
    }

    /// The most codes the format allows to be issued in all: `space / min_guesses_per_hit`.
    pub fn capacity(&self) -> u128 {
        self.space / self.min_guesses as u128
    }

    /// The expected number of random well-formed guesses to hit any one of `issued` codes:
    /// `space / issued` (infinite for none).
    pub fn expected_guesses(&self, issued: u64) -> f64 {
        self.space as f64 / issued as f64
    }
}

/// Builds a [`CodeFormat`]; start with [`CodeFormat::builder`].
///
/// Either a body of [`length`](Self::length) characters, optionally in
/// [`group`](Self::group)s joined by `-`, or a [`pattern`](Self::pattern); in both cases
/// between an optional [`prefix`](Self::prefix) and [`suffix`](Self::suffix).
#[derive(Clone, Debug)]
pub struct CodeFormatBuilder {
    alphabet: Alphabet,
    body: Body,
    group: Option<usize>,
    prefix: String,
    suffix: String,
    check: bool,
    min_bits: u32,
    min_guesses: u64,
}

#[derive(Clone, Debug)]
enum Body {
    Length(usize),
    Pattern(String),
}

impl Default for CodeFormatBuilder {
    fn default() -> Self {
        CodeFormatBuilder {
            alphabet: Alphabet::crockford(),
            body: Body::Length(12),
            group: Some(4),
            prefix: String::new(),
            suffix: String::new(),
            check: true,
            min_bits: MIN_BITS_FLOOR,
            min_guesses: DEFAULT_MIN_GUESSES_PER_HIT,
        }
    }
}

impl CodeFormatBuilder {
    /// The alphabet (default [`Alphabet::crockford`]).
    pub fn alphabet(mut self, alphabet: Alphabet) -> Self {
        self.alphabet = alphabet;
        self
    }

    /// Characters in the body, the check character included (default 12). Replaces a
    /// pattern.
    pub fn length(mut self, len: usize) -> Self {
        self.body = Body::Length(len);
        self
    }

    /// Splits a [`length`](Self::length) body into groups of `size` joined by `-` (default
    /// 4); see [`ungrouped`](Self::ungrouped).
    pub fn group(mut self, size: usize) -> Self {
        self.group = Some(size);
        self
    }

    /// A body without separators.
    pub fn ungrouped(mut self) -> Self {
        self.group = None;
        self
    }

    /// The body as a pattern: `#` a random character (the last one the check character),
    /// letters, digits, `-` and `_` as they stand. Replaces a length and its grouping.
    pub fn pattern(mut self, pattern: &str) -> Self {
        self.body = Body::Pattern(pattern.to_owned());
        self
    }

    /// Fixed characters before the body, e.g. `SALE-`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Fixed characters after the body, e.g. `-CN`.
    pub fn suffix(mut self, suffix: &str) -> Self {
        self.suffix = suffix.to_owned();
        self
    }

    /// Whether the last `#` is a check character (default true). Without one, a typo is
    /// found only by a storage read.
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// The least randomness per code, in bits (default and floor 40, at most 127).
    pub fn min_bits(mut self, bits: u32) -> Self {
        self.min_bits = bits;
        self
    }

    /// The guessing margin a batch must keep (default one million; at least 2): at most
    /// `space / margin` codes are issued.
    pub fn min_guesses_per_hit(mut self, margin: u64) -> Self {
        self.min_guesses = margin;
        self
    }

    /// The format.
    ///
    /// # Errors
    /// - [`FormatError::PatternCharacter`] for a character other than ASCII letters, digits,
    ///   `-` and `_` in the prefix or suffix (and `#` in the pattern);
    /// - [`FormatError::GroupSize`] for a group of zero;
    /// - [`FormatError::CodeLength`] unless codes have 3 to 32 characters;
    /// - [`FormatError::MinimumOutOfRange`] for a minimum below 40 or above 127 bits;
    /// - [`FormatError::GuessMarginTooLow`] for a margin below 2;
    /// - [`FormatError::TooManyBits`] for more than 128 bits of randomness;
    /// - [`FormatError::TooFewBits`] for less randomness than the minimum.
    pub fn build(self) -> Result<CodeFormat, FormatError> {
        check_literal("prefix", &self.prefix, false)?;
        check_literal("suffix", &self.suffix, false)?;
        let body = match &self.body {
            Body::Pattern(p) => {
                check_literal("pattern", p, true)?;
                p.clone()
            }
            Body::Length(len) => {
                let mut s = String::with_capacity(len + len / 2);
                match self.group {
                    Some(0) => return Err(FormatError::GroupSize),
                    Some(g) => {
                        for i in 0..*len {
                            if i > 0 && i % g == 0 {
                                s.push('-');
                            }
                            s.push('#');
                        }
                    }
                    None => s.extend(std::iter::repeat_n('#', *len)),
                }
                s
            }
        };
        let pattern = format!("{}{}{}", self.prefix, body, self.suffix).to_ascii_uppercase();
        let len = pattern.chars().count();
        if !(MIN_CODE_LEN..=MAX_CODE_LEN).contains(&len) {
            return Err(FormatError::CodeLength { len });
        }
        if !(MIN_BITS_FLOOR..=127).contains(&self.min_bits) {
            return Err(FormatError::MinimumOutOfRange {
                given: self.min_bits,
                floor: MIN_BITS_FLOOR,
            });
        }
        if self.min_guesses < 2 {
            return Err(FormatError::GuessMarginTooLow {
                given: self.min_guesses,
            });
        }
        let slots = pattern.bytes().filter(|&b| b == SLOT).count();
        let random_len = if self.check {
            slots.saturating_sub(1)
        } else {
            slots
        };
        let n = self.alphabet.len() as u128;
        let bits = random_len as f64 * self.alphabet.bits_per_symbol();
        let mut space: u128 = 1;
        for _ in 0..random_len {
            space = space
                .checked_mul(n)
                .ok_or(FormatError::TooManyBits { bits })?;
        }
        if space < (1u128 << self.min_bits) {
            return Err(FormatError::TooFewBits {
                bits,
                minimum: self.min_bits,
            });
        }
        Ok(CodeFormat::assemble(
            self.alphabet,
            pattern,
            self.check,
            self.min_bits,
            self.min_guesses,
        ))
    }
}

impl CodeFormat {
    /// The format of a pattern that [`CodeFormatBuilder::build`] has checked (or the default).
    fn assemble(
        alphabet: Alphabet,
        pattern: String,
        check: bool,
        min_bits: u32,
        min_guesses: u64,
    ) -> CodeFormat {
        let mut canon = [0u8; MAX_CODE_LEN];
        let mut skeleton = [0u8; MAX_CODE_LEN];
        let mut slot_at = [0u8; MAX_CODE_LEN];
        let (mut typed_len, mut slots) = (0, 0);
        for (i, b) in pattern.bytes().enumerate().take(MAX_CODE_LEN) {
            if let Some(c) = canon.get_mut(i) {
                *c = b;
            }
            if b == SLOT {
                if let Some(s) = slot_at.get_mut(slots) {
                    *s = i as u8;
                }
                slots += 1;
            }
            if b == SLOT || b.is_ascii_alphanumeric() {
                if let Some(s) = skeleton.get_mut(typed_len) {
                    *s = b;
                }
                typed_len += 1;
            }
        }
        let random_len = if check {
            slots.saturating_sub(1)
        } else {
            slots
        };
        let n = alphabet.len() as u128;
        let space = (0..random_len).fold(1u128, |s, _| s.saturating_mul(n));
        CodeFormat {
            alphabet,
            pattern,
            canon,
            skeleton,
            typed_len,
            slot_at,
            slots,
            check,
            random_len,
            min_bits,
            min_guesses,
            space,
        }
    }
}

fn check_literal(field: &'static str, s: &str, slots: bool) -> Result<(), FormatError> {
    for (at, ch) in s.chars().enumerate() {
        let ok = ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || (slots && ch == '#');
        if !ok {
            return Err(FormatError::PatternCharacter { field, ch, at });
        }
    }
    Ok(())
}

/// The JSON shape of a [`CodeFormat`]: converting it runs the builder's checks.
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatRepr {
    pattern: String,
    #[serde(default)]
    alphabet: Alphabet,
    #[serde(default = "yes")]
    check: bool,
    #[serde(default = "floor")]
    min_bits: u32,
    #[serde(default = "margin")]
    min_guesses_per_hit: u64,
}

#[cfg(feature = "serde")]
fn yes() -> bool {
    true
}

#[cfg(feature = "serde")]
fn floor() -> u32 {
    MIN_BITS_FLOOR
}

#[cfg(feature = "serde")]
fn margin() -> u64 {
    DEFAULT_MIN_GUESSES_PER_HIT
}

#[cfg(feature = "serde")]
impl TryFrom<FormatRepr> for CodeFormat {
    type Error = FormatError;
    fn try_from(r: FormatRepr) -> Result<Self, FormatError> {
        CodeFormat::builder()
            .alphabet(r.alphabet)
            .pattern(&r.pattern)
            .check(r.check)
            .min_bits(r.min_bits)
            .min_guesses_per_hit(r.min_guesses_per_hit)
            .build()
    }
}

#[cfg(feature = "serde")]
impl From<CodeFormat> for FormatRepr {
    fn from(f: CodeFormat) -> Self {
        FormatRepr {
            pattern: f.pattern,
            alphabet: f.alphabet,
            check: f.check,
            min_bits: f.min_bits,
            min_guesses_per_hit: f.min_guesses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_format_is_three_groups_of_four_with_55_bits() {
        let f = CodeFormat::default();
        assert_eq!(f, CodeFormat::builder().build().unwrap());
        assert_eq!(f.pattern(), "####-####-####");
        assert_eq!(f.random_len(), 11);
        assert_eq!(f.entropy_bits(), 55.0);
        assert_eq!(f.space(), 1 << 55);
        assert_eq!(f.len(), 14);
        assert_eq!(f.typed_len(), 12);
    }

    #[test]
    fn prefix_suffix_and_groups_make_the_pattern() {
        let f = CodeFormat::builder()
            .prefix("sale-")
            .suffix("-cn")
            .length(10)
            .group(5)
            .build()
            .unwrap();
        assert_eq!(f.pattern(), "SALE-#####-#####-CN");
        assert_eq!(f.random_len(), 9);
        let u = CodeFormat::builder().length(9).ungrouped().build().unwrap();
        assert_eq!(u.pattern(), "#########");
    }

    #[test]
    fn too_little_randomness_is_refused() {
        assert_eq!(
            CodeFormat::from_pattern("SALE-####"),
            Err(FormatError::TooFewBits {
                bits: 15.0,
                minimum: 40
            })
        );
        // Without the check character all eight are random: 40 bits.
        assert!(
            CodeFormat::builder()
                .pattern("########")
                .check(false)
                .build()
                .is_ok()
        );
        assert!(
            CodeFormat::builder()
                .length(12)
                .min_bits(56)
                .build()
                .is_err()
        );
        assert!(
            CodeFormat::builder()
                .length(12)
                .min_bits(55)
                .build()
                .is_ok()
        );
        assert_eq!(
            CodeFormat::builder().min_bits(39).build(),
            Err(FormatError::MinimumOutOfRange {
                given: 39,
                floor: 40
            })
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(
            CodeFormat::from_pattern("SALE ########"),
            Err(FormatError::PatternCharacter {
                field: "pattern",
                ch: ' ',
                at: 4
            })
        );
        assert_eq!(
            CodeFormat::builder().prefix("A#").build(),
            Err(FormatError::PatternCharacter {
                field: "prefix",
                ch: '#',
                at: 1
            })
        );
        assert_eq!(
            CodeFormat::builder().group(0).build(),
            Err(FormatError::GroupSize)
        );
        assert_eq!(
            CodeFormat::builder().length(33).ungrouped().build(),
            Err(FormatError::CodeLength { len: 33 })
        );
        assert!(matches!(
            CodeFormat::builder().length(32).ungrouped().build(),
            Err(FormatError::TooManyBits { .. })
        ));
        assert!(CodeFormat::builder().length(26).ungrouped().build().is_ok());
        assert_eq!(
            CodeFormat::builder().min_guesses_per_hit(1).build(),
            Err(FormatError::GuessMarginTooLow { given: 1 })
        );
    }

    #[test]
    fn capacity_keeps_the_margin() {
        let f = CodeFormat::from_pattern("###-###-###").unwrap();
        assert_eq!(f.capacity(), (1u128 << 40) / 1_000_000);
        let g = CodeFormat::builder()
            .pattern("###-###-###")
            .min_guesses_per_hit(2)
            .build()
            .unwrap();
        assert_eq!(g.capacity(), 1u128 << 39);
        assert_eq!(f.expected_guesses(0), f64::INFINITY);
    }
}
