//! What can go wrong with codes: building an alphabet or a format, generating a batch, and
//! reading a code a buyer typed.

/// An alphabet or a code format that cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// An alphabet needs 3 to 36 symbols: below 3 no check character can catch every
    /// single error and every swap of neighbours (none exists for 2 symbols), above 36 there
    /// are no more letters and digits.
    #[error("alphabet: {len} symbols; an alphabet has 3 to 36")]
    AlphabetSize {
        /// The number of symbols given.
        len: usize,
    },
    /// An alphabet symbol that is not an ASCII letter or digit.
    #[error("alphabet: {ch:?} at {at} is not an ASCII letter or digit")]
    AlphabetSymbol {
        /// The symbol.
        ch: char,
        /// Its position in the alphabet (0-based).
        at: usize,
    },
    /// A symbol given twice (letters count once whatever their case).
    #[error("alphabet: {ch:?} appears twice")]
    AlphabetDuplicate {
        /// The symbol, upper-case.
        ch: char,
    },
    /// A look-alike whose target is not in the alphabet or whose source is.
    #[error(
        "alphabet: look-alike {from:?} → {to:?} needs {to:?} in the alphabet and {from:?} not in it"
    )]
    LookAlike {
        /// The character typed.
        from: char,
        /// The symbol it should read as.
        to: char,
    },
    /// A character a code cannot hold in a pattern, prefix or suffix.
    #[error(
        "{field}: {ch:?} at {at}; use ASCII letters and digits, `-` or `_` (and `#` in a pattern)"
    )]
    PatternCharacter {
        /// `"pattern"`, `"prefix"` or `"suffix"`.
        field: &'static str,
        /// The character.
        ch: char,
        /// Its position (0-based, in characters).
        at: usize,
    },
    /// A code must have 3 to 32 characters to be a promo code.
    #[error("pattern: codes would have {len} characters; a promo code has 3 to 32")]
    CodeLength {
        /// The length codes would have, separators included.
        len: usize,
    },
    /// A group size of zero.
    #[error("group: a group has at least one character")]
    GroupSize,
    /// Codes with less randomness than the minimum.
    #[error(
        "codes would carry {bits:.1} bits of randomness, below the minimum of {minimum}; \
         add random characters"
    )]
    TooFewBits {
        /// Bits of randomness per code.
        bits: f64,
        /// The minimum asked for.
        minimum: u32,
    },
    /// A minimum below the floor of 40 bits (or above 127).
    #[error("min_bits: {given} is outside {floor}..=127")]
    MinimumOutOfRange {
        /// The minimum asked for.
        given: u32,
        /// The lowest minimum allowed.
        floor: u32,
    },
    /// More random values than 128 bits count.
    #[error("codes would carry {bits:.1} bits of randomness; at most 128 are supported")]
    TooManyBits {
        /// Bits of randomness per code.
        bits: f64,
    },
    /// A guessing margin below 2 (a batch may fill at most half of the possible codes).
    #[error("min_guesses_per_hit: {given} is below 2")]
    GuessMarginTooLow {
        /// The margin asked for.
        given: u64,
    },
}

/// A batch that cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// More codes than the format allows with its guessing margin.
    #[error(
        "{requested} codes (with {excluded} already taken) exceed the {capacity} this format \
         allows: each would be hit by fewer than {margin} random guesses; use longer codes"
    )]
    TooMany {
        /// Codes asked for.
        requested: u64,
        /// Codes excluded from the batch (issued before).
        excluded: u64,
        /// The most codes the format allows in all.
        capacity: u128,
        /// The format's guessing margin.
        margin: u64,
    },
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The random source kept producing values already drawn or out of range: it is broken
    /// (a healthy source does so 128 times in a row with probability below 2⁻¹²⁸).
    #[error("the random source repeated itself {draws} times in a row; it is not random")]
    NotRandom {
        /// Consecutive useless draws.
        draws: u32,
    },
    /// The uniqueness table could not grow.
    #[error("no memory for the uniqueness table of {codes} codes")]
    OutOfMemory {
        /// Codes the table was to hold.
        codes: u64,
    },
    /// A code to exclude that does not belong to this format.
    #[error("excluded code {code:?}: {reason}")]
    Exclude {
        /// The code (its first 40 characters).
        code: String,
        /// Why it does not read.
        reason: ParseError,
    },
}

/// A random source that could not deliver bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the random source failed: {reason}")]
pub struct RandomError {
    /// What the source said.
    pub reason: String,
}

impl RandomError {
    /// An error with the source's own description.
    pub fn new(reason: impl std::fmt::Display) -> RandomError {
        RandomError {
            reason: reason.to_string(),
        }
    }
}

/// A typed code that is not a code of the format. Found before any storage read; none of the
/// variants depends on which codes exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A character that is neither part of a code nor a separator (space, dash).
    #[error("{ch:?} at {at} cannot be part of a code")]
    Character {
        /// The character as typed.
        ch: char,
        /// Its position in the input (0-based, in characters).
        at: usize,
    },
    /// A letter or digit that the code's alphabet does not use and that looks like none of
    /// its symbols.
    #[error("{ch:?} at {at} is not used in these codes")]
    NotInAlphabet {
        /// The character as typed.
        ch: char,
        /// Its position in the input (0-based, in characters).
        at: usize,
    },
    /// A character where the format has a fixed one (its prefix, suffix or another literal).
    #[error("{found:?} at {at}: the code has {expected:?} there")]
    Literal {
        /// The character the format has.
        expected: char,
        /// The character as typed (after case and width folding).
        found: char,
        /// Its position in the input (0-based, in characters).
        at: usize,
    },
    /// Too few or too many letters and digits.
    #[error("{found} letters and digits; the code has {expected}")]
    Length {
        /// Letters and digits in a code, separators not counted.
        expected: usize,
        /// Letters and digits typed.
        found: usize,
    },
    /// The check character does not match: a character is mistyped or two are swapped.
    #[error("the code is mistyped: check the characters and their order")]
    Check,
}
