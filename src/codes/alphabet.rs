//! The symbols a code's random characters are drawn from, and the look-alikes read as them.

use std::sync::{Arc, OnceLock};

use super::check::{CheckTables, Group, MAX_POSITIONS, MAX_SYMBOLS};
use super::error::{FormatError, ParseError};

/// Marks an ASCII character that is no symbol in [`Alphabet::lookup`].
pub(crate) const NONE: u8 = 0xFF;

/// Look-alike rules, tried in order: a typed `from` reads as `to` when the alphabet lacks
/// `from` and has `to` (the first rule that applies to a character wins).
const LOOKALIKES: [(u8, u8); 8] = [
    (b'O', b'0'),
    (b'I', b'1'),
    (b'L', b'1'),
    (b'U', b'V'),
    (b'0', b'O'),
    (b'1', b'I'),
    (b'1', b'L'),
    (b'V', b'U'),
];

/// The symbols a code's random characters and check character are drawn from: 3 to 36
/// distinct ASCII letters and digits, letters upper-case.
///
/// The default, [`Alphabet::crockford`], is Crockford's base 32: the digits and the letters
/// without `I`, `L`, `O` and `U` —
/// `0123456789ABCDEFGHJKMNPQRSTVWXYZ`. Typed codes are read case-blind, and a letter or digit
/// the alphabet leaves out is read as its look-alike when the alphabet has one: `O` as `0`,
/// `I` and `L` as `1`, `U` as `V` (and, for alphabets without digits, `0` as `O`, `1` as `I`
/// or `L`, `V` as `U`).
///
/// Every alphabet of 3 to 36 symbols has a check character that catches every single wrong
/// character and every swap of two neighbours (see [`CodeFormat`](super::CodeFormat)); with 2
/// symbols none can exist, which is why smaller alphabets are refused.
///
/// ```
/// use coupons::codes::Alphabet;
/// let a = Alphabet::crockford();
/// assert_eq!(a.symbols(), "0123456789ABCDEFGHJKMNPQRSTVWXYZ");
/// assert_eq!(a.len(), 32);
/// assert_eq!(a.bits_per_symbol(), 5.0);
/// assert_eq!(a.read('o'), Some('0'));
/// assert_eq!(a.read('L'), Some('1'));
///
/// let digits = Alphabet::new("0123456789")?;
/// assert_eq!(digits.read('O'), Some('0'));
/// assert!(Alphabet::new("AB").is_err());
/// # Ok::<(), coupons::codes::FormatError>(())
/// ```
#[derive(Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "String", into = "String")
)]
pub struct Alphabet {
    inner: Arc<Inner>,
}

struct Inner {
    /// The symbols, then zeros: 64 wide so that a masked index is always in bounds.
    symbols: [u8; 64],
    len: u8,
    /// ASCII character (either case) → symbol index, or [`NONE`].
    lookup: [u8; 128],
    lookalikes: Vec<(char, char)>,
    tables: CheckTables,
}

impl Alphabet {
    /// Crockford's base 32 without look-alikes: `0123456789ABCDEFGHJKMNPQRSTVWXYZ`, 5 bits a
    /// character; `O` reads as `0`, `I` and `L` as `1`, `U` as `V`. Built once per process
    /// and shared, like the other built-in alphabets.
    pub fn crockford() -> Alphabet {
        static CROCKFORD: OnceLock<Alphabet> = OnceLock::new();
        CROCKFORD
            .get_or_init(|| {
                Alphabet::build(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ")
                    .unwrap_or_else(|_| Alphabet::fallback())
            })
            .clone()
    }

    /// The ten digits, about 3.32 bits a character; `O` reads as `0`, `I` and `L` as `1`.
    pub fn digits() -> Alphabet {
        static DIGITS: OnceLock<Alphabet> = OnceLock::new();
        DIGITS
            .get_or_init(|| Alphabet::build(b"0123456789").unwrap_or_else(|_| Alphabet::fallback()))
            .clone()
    }

    /// All 36 digits and letters, about 5.17 bits a character. `0`/`O` and `1`/`I`/`L` are
    /// all distinct symbols here, so buyers mistake them; prefer [`Alphabet::crockford`].
    pub fn alphanumeric() -> Alphabet {
        static ALPHANUMERIC: OnceLock<Alphabet> = OnceLock::new();
        ALPHANUMERIC
            .get_or_init(|| {
                Alphabet::build(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
                    .unwrap_or_else(|_| Alphabet::fallback())
            })
            .clone()
    }

    /// An alphabet of the given symbols, in this order (the order decides which symbol a
    /// random value becomes, so keep it fixed for reproducible batches). Building one
    /// computes its check tables (some tens of microseconds): build a format once and keep
    /// it.
    ///
    /// # Errors
    /// - [`FormatError::AlphabetSize`] unless there are 3 to 36 symbols;
    /// - [`FormatError::AlphabetSymbol`] for a character other than an ASCII letter or digit;
    /// - [`FormatError::AlphabetDuplicate`] for a symbol given twice (`a` and `A` are one).
    pub fn new(symbols: &str) -> Result<Alphabet, FormatError> {
        for (at, ch) in symbols.chars().enumerate() {
            if !ch.is_ascii_alphanumeric() {
                return Err(FormatError::AlphabetSymbol { ch, at });
            }
        }
        let upper = symbols.to_ascii_uppercase();
        Alphabet::build(upper.as_bytes())
    }

    fn build(symbols: &[u8]) -> Result<Alphabet, FormatError> {
        let len = symbols.len();
        if !(3..=MAX_SYMBOLS).contains(&len) {
            return Err(FormatError::AlphabetSize { len });
        }
        let tables = CheckTables::new(len).map_err(|_| FormatError::AlphabetSize { len })?;
        let mut inner = Inner {
            symbols: [0; 64],
            len: len as u8,
            lookup: [NONE; 128],
            lookalikes: Vec::new(),
            tables,
        };
        for (i, (&s, slot)) in symbols.iter().zip(inner.symbols.iter_mut()).enumerate() {
            let s = s.to_ascii_uppercase();
            if !s.is_ascii_alphanumeric() {
                return Err(FormatError::AlphabetSymbol {
                    ch: s as char,
                    at: i,
                });
            }
            if lookup_get(&inner.lookup, s) != NONE {
                return Err(FormatError::AlphabetDuplicate { ch: s as char });
            }
            *slot = s;
            set_both_cases(&mut inner.lookup, s, i as u8);
        }
        let own = inner.lookup;
        for (from, to) in LOOKALIKES {
            let target = lookup_get(&own, to);
            if lookup_get(&own, from) == NONE
                && target != NONE
                && lookup_get(&inner.lookup, from) == NONE
            {
                set_both_cases(&mut inner.lookup, from, target);
                inner.lookalikes.push((from as char, to as char));
            }
        }
        Ok(Alphabet {
            inner: Arc::new(inner),
        })
    }

    /// Never used: the built-in alphabets are valid. Keeps their constructors free of panics.
    fn fallback() -> Alphabet {
        let mut lookup = [NONE; 128];
        let mut symbols = [0; 64];
        for (i, s) in (b'0'..=b'9').chain(b'A'..=b'Z').enumerate() {
            if let Some(slot) = symbols.get_mut(i) {
                *slot = s;
            }
            set_both_cases(&mut lookup, s, i as u8);
        }
        let group = Group::FieldTimesCyclic {
            k: 2,
            poly: 0b111,
            m: 9,
        };
        Alphabet {
            inner: Arc::new(Inner {
                symbols,
                len: MAX_SYMBOLS as u8,
                lookup,
                lookalikes: Vec::new(),
                tables: CheckTables::from_group(group),
            }),
        }
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.inner.len as usize
    }

    /// Always false: an alphabet has at least 3 symbols.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The symbols, in order.
    pub fn symbols(&self) -> &str {
        let s = self.inner.symbols.get(..self.len()).unwrap_or(&[]);
        std::str::from_utf8(s).unwrap_or("")
    }

    /// Bits of randomness in one random character: `log2(len)`.
    pub fn bits_per_symbol(&self) -> f64 {
        (self.len() as f64).log2()
    }

    /// The look-alikes this alphabet reads, `(typed, read as)`, e.g. `('O', '0')`.
    pub fn lookalikes(&self) -> &[(char, char)] {
        &self.inner.lookalikes
    }

    /// The symbol a typed character stands for: itself (in either case), its look-alike, or
    /// `None`.
    pub fn read(&self, ch: char) -> Option<char> {
        let i = self.index(ch)?;
        self.inner.symbols.get(i as usize).map(|&b| b as char)
    }

    /// The check character for `body`, a string of this alphabet's symbols (either case,
    /// look-alikes read as their symbols, nothing else), at most 31 of them: the character
    /// that [`CodeFormat`](super::CodeFormat) appends. For codes made elsewhere, or to
    /// print a check character by hand.
    ///
    /// ```
    /// use coupons::codes::Alphabet;
    /// let a = Alphabet::crockford();
    /// assert_eq!(a.check_character("7K2Q9M4X")?, '2');
    /// assert!(a.passes_check("7K2Q9M4X2")?);
    /// assert!(!a.passes_check("K72Q9M4X2")?); // neighbours swapped
    /// # Ok::<(), coupons::codes::ParseError>(())
    /// ```
    ///
    /// # Errors
    /// [`ParseError::NotInAlphabet`] for a character that is not a symbol;
    /// [`ParseError::Length`] for more than 31 symbols.
    pub fn check_character(&self, body: &str) -> Result<char, ParseError> {
        let mut symbols = [0u8; MAX_POSITIONS];
        let len = self.read_symbols(body, MAX_POSITIONS - 1, &mut symbols)?;
        let t = self.tables();
        let p = t.product(symbols.get(..len).unwrap_or(&[]));
        Ok(self.symbol(t.check_for(p, len)) as char)
    }

    /// Whether `code`, symbols of this alphabet ending in their check character (at most 32,
    /// read as [`check_character`](Self::check_character) reads them), passes the check.
    ///
    /// # Errors
    /// [`ParseError::NotInAlphabet`] for a character that is not a symbol;
    /// [`ParseError::Length`] for an empty code or more than 32 symbols.
    pub fn passes_check(&self, code: &str) -> Result<bool, ParseError> {
        let mut symbols = [0u8; MAX_POSITIONS];
        let len = self.read_symbols(code, MAX_POSITIONS, &mut symbols)?;
        if len == 0 {
            return Err(ParseError::Length {
                expected: 1,
                found: 0,
            });
        }
        Ok(self.tables().is_valid(symbols.get(..len).unwrap_or(&[])))
    }

    fn read_symbols(
        &self,
        s: &str,
        max: usize,
        out: &mut [u8; MAX_POSITIONS],
    ) -> Result<usize, ParseError> {
        let mut len = 0;
        for (at, ch) in s.chars().enumerate() {
            let i = self.index(ch).ok_or(ParseError::NotInAlphabet { ch, at })?;
            if len >= max {
                return Err(ParseError::Length {
                    expected: max,
                    found: s.chars().count(),
                });
            }
            if let Some(slot) = out.get_mut(len) {
                *slot = i;
            }
            len += 1;
        }
        Ok(len)
    }

    /// The symbol index a typed character stands for.
    #[inline]
    pub(crate) fn index(&self, ch: char) -> Option<u8> {
        let b = u8::try_from(ch).ok()?;
        match self.inner.lookup.get(b as usize) {
            Some(&i) if i != NONE => Some(i),
            _ => None,
        }
    }

    /// ASCII byte → symbol index or [`NONE`] (both cases, look-alikes included).
    #[inline]
    pub(crate) fn lookup(&self) -> &[u8; 128] {
        &self.inner.lookup
    }

    /// Symbol index → ASCII byte, for indices masked to `0..64`.
    #[inline]
    pub(crate) fn symbol_table(&self) -> &[u8; 64] {
        &self.inner.symbols
    }

    /// Symbol index → ASCII byte.
    #[inline]
    pub(crate) fn symbol(&self, i: u8) -> u8 {
        self.inner.symbols.get(i as usize).copied().unwrap_or(b'?')
    }

    /// The check tables for this alphabet's size.
    #[inline]
    pub(crate) fn tables(&self) -> &CheckTables {
        &self.inner.tables
    }
}

fn lookup_get(lookup: &[u8; 128], b: u8) -> u8 {
    lookup.get(b as usize).copied().unwrap_or(NONE)
}

fn set_both_cases(lookup: &mut [u8; 128], b: u8, i: u8) {
    for c in [b.to_ascii_uppercase(), b.to_ascii_lowercase()] {
        if let Some(slot) = lookup.get_mut(c as usize) {
            *slot = i;
        }
    }
}

impl Default for Alphabet {
    /// [`Alphabet::crockford`].
    fn default() -> Self {
        Alphabet::crockford()
    }
}

impl PartialEq for Alphabet {
    fn eq(&self, other: &Self) -> bool {
        self.symbols() == other.symbols()
    }
}

impl Eq for Alphabet {}

impl std::hash::Hash for Alphabet {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.symbols().hash(state);
    }
}

impl std::fmt::Debug for Alphabet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Alphabet").field(&self.symbols()).finish()
    }
}

impl std::fmt::Display for Alphabet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.symbols())
    }
}

impl TryFrom<String> for Alphabet {
    type Error = FormatError;
    fn try_from(s: String) -> Result<Self, FormatError> {
        Alphabet::new(&s)
    }
}

impl From<Alphabet> for String {
    fn from(a: Alphabet) -> String {
        a.symbols().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crockford_has_32_symbols_without_i_l_o_u() {
        let a = Alphabet::crockford();
        assert_eq!(a.len(), 32);
        for c in ['I', 'L', 'O', 'U'] {
            assert!(!a.symbols().contains(c));
        }
        assert_eq!(
            a.lookalikes(),
            &[('O', '0'), ('I', '1'), ('L', '1'), ('U', 'V')]
        );
        assert_eq!(a.read('i'), Some('1'));
        assert_eq!(a.read('u'), Some('V'));
        assert_eq!(a.read('z'), Some('Z'));
        assert_eq!(a.read('-'), None);
        assert_eq!(a.read('é'), None);
    }

    #[test]
    fn letters_only_alphabets_read_digits_as_letters() {
        let a = Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ").unwrap();
        assert_eq!(a.read('0'), Some('O'));
        assert_eq!(a.read('1'), Some('I'));
        let b = Alphabet::new("ABCDEFGHJKLMNPQRSTUVWXYZ").unwrap(); // no I, no O
        assert_eq!(b.read('1'), Some('L'));
        assert_eq!(b.read('0'), None);
    }

    #[test]
    fn bad_alphabets_are_refused() {
        assert_eq!(
            Alphabet::new("AB"),
            Err(FormatError::AlphabetSize { len: 2 })
        );
        assert_eq!(
            Alphabet::new("ABa"),
            Err(FormatError::AlphabetDuplicate { ch: 'A' })
        );
        assert_eq!(
            Alphabet::new("AB-"),
            Err(FormatError::AlphabetSymbol { ch: '-', at: 2 })
        );
        assert_eq!(
            Alphabet::new("ABÉ"),
            Err(FormatError::AlphabetSymbol { ch: 'É', at: 2 })
        );
        let long = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        assert!(Alphabet::new(long).is_ok());
        assert!(Alphabet::fallback() == Alphabet::alphanumeric());
        assert!(Alphabet::fallback().tables() == Alphabet::alphanumeric().tables());
    }

    #[test]
    fn check_characters_match_an_independent_model() {
        // Computed outside the crate: Σ αʲ·dⱼ over GF(32) mod x⁵ + x² + 1.
        let a = Alphabet::crockford();
        assert_eq!(a.check_character("7K2Q9M4X"), Ok('2'));
        assert_eq!(a.check_character("K72Q9M4X"), Ok('H'));
        assert_eq!(a.check_character(""), Ok('0'));
        assert_eq!(a.passes_check("7k2q9m4x2"), Ok(true));
        assert_eq!(a.passes_check("7K2Q9M4XZ"), Ok(false));
        assert_eq!(
            a.passes_check("7K2-"),
            Err(ParseError::NotInAlphabet { ch: '-', at: 3 })
        );
        assert_eq!(
            a.passes_check(""),
            Err(ParseError::Length {
                expected: 1,
                found: 0
            })
        );
        let long = "0".repeat(32);
        assert!(a.check_character(&long).is_err());
        assert!(a.check_character(&long[..31]).is_ok());
        assert!(a.passes_check(&long).is_ok());
    }

    #[test]
    fn lower_case_symbols_are_upper_cased() {
        let a = Alphabet::new("abc").unwrap();
        assert_eq!(a.symbols(), "ABC");
        assert_eq!(a.to_string(), "ABC");
    }
}
