//! Reading a code a buyer typed: folding case, width and separators, mapping look-alikes,
//! and verifying the check character — all before any storage read.

use super::alphabet::NONE;
use super::code::Code;
use super::error::ParseError;
use super::format::{CodeFormat, MAX_CODE_LEN, SLOT};

/// A folded character: not part of a code.
const OTHER: u8 = 0;
/// A folded character: a separator, dropped.
const SEP: u8 = 1;

/// ASCII byte → `OTHER`, `SEP`, or the letter (upper-case) or digit.
const ASCII_FOLD: [u8; 128] = {
    let mut t = [OTHER; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' => c - 32,
            b'A'..=b'Z' | b'0'..=b'9' => c,
            b'-' | b'_' | b' ' | b'\t' | b'\n' | b'\r' => SEP,
            _ => OTHER,
        };
        b += 1;
    }
    t
};

/// Characters read as separators and dropped, besides ASCII space, tab, `-` and `_` and
/// every Unicode white space (the ideographic space U+3000 among them).
pub const SEPARATORS: &[char] = &[
    '\u{00AD}', // soft hyphen
    '\u{200B}', // zero width space
    '\u{200C}', // zero width non-joiner
    '\u{200D}', // zero width joiner
    '\u{2060}', // word joiner
    '\u{FEFF}', // zero width no-break space (byte order mark)
    '\u{2010}', // hyphen
    '\u{2011}', // non-breaking hyphen
    '\u{2012}', // figure dash
    '\u{2013}', // en dash
    '\u{2014}', // em dash (Chinese keyboards type —— for shift-minus)
    '\u{2015}', // horizontal bar
    '\u{2043}', // hyphen bullet
    '\u{2212}', // minus sign
    '\u{2500}', // box drawings light horizontal
    '\u{2501}', // box drawings heavy horizontal
    '\u{2E3A}', // two-em dash
    '\u{2E3B}', // three-em dash
    '\u{30FC}', // katakana-hiragana prolonged sound mark ー
    '\u{FE58}', // small em dash
    '\u{FE63}', // small hyphen-minus
    '\u{FF0D}', // fullwidth hyphen-minus －
    '\u{FF3F}', // fullwidth low line ＿
    '\u{FF70}', // halfwidth prolonged sound mark ｰ
];

#[inline]
fn fold_byte(b: u8) -> u8 {
    ASCII_FOLD.get(b as usize).copied().unwrap_or(OTHER)
}

/// A character as the ASCII byte it reads as: full-width forms as their ASCII originals,
/// other separators as a space, anything else as NUL (which folds to `OTHER`).
#[inline]
fn fold_wide(ch: char) -> u8 {
    let c = ch as u32;
    if c < 128 {
        return c as u8;
    }
    // Full-width forms of ASCII `!`..`~` (ＳＡＬＥ２０２６) sit 0xFEE0 above them.
    if (0xFF01..=0xFF5E).contains(&c) {
        return (c - 0xFEE0) as u8;
    }
    if ch.is_whitespace() || SEPARATORS.contains(&ch) {
        return b' ';
    }
    0
}

impl CodeFormat {
    /// Reads a code as a buyer typed it, and returns it in its canonical form.
    ///
    /// - Case does not matter; full-width letters and digits (ＳＡＬＥ２０２６) read as
    ///   ASCII.
    /// - Separators are dropped wherever they are: spaces (the ideographic space U+3000 and
    ///   all other Unicode white space), `-`, `_`, the full-width `－` and `＿`, dashes
    ///   (`‐ ‑ ‒ – — ― −`, `ー`, `─` and the others in [`SEPARATORS`]) and zero-width
    ///   characters. The canonical form puts the format's own separators back.
    /// - A random character the alphabet leaves out reads as its look-alike
    ///   ([`Alphabet::lookalikes`](super::Alphabet::lookalikes)): `O` as `0`, `I` and `L`
    ///   as `1`, `U` as `V` for Crockford's alphabet. The format's fixed characters (a
    ///   prefix `SALE`) are matched as they stand.
    /// - The check character is verified, so a mistyped character or a swap of two
    ///   neighbours is refused here, without a storage read.
    ///
    /// Reading is idempotent: `parse(parse(x)?.as_str()) == parse(x)`.
    ///
    /// ```
    /// use coupons::codes::{CodeFormat, ParseError};
    /// let f = CodeFormat::from_pattern("SALE-###-###-###")?;
    /// let code = f.parse("SALE-7K2-Q9M-4X2")?;
    /// assert_eq!(f.parse("ｓａｌｅ　７ｋ２－ｑ９ｍ－４ｘ２")?, code); // typed on a Chinese keyboard
    /// assert_eq!(f.parse(" sale 7k2q9m4x2 ")?, code);
    /// assert_eq!(f.parse("SALE—7K2—Q9M—4X2")?, code);
    /// // Two neighbours swapped: caught by the check character.
    /// assert_eq!(f.parse("SALE-K72-Q9M-4X2"), Err(ParseError::Check));
    /// assert_eq!(f.parse("SALE-7K2-Q9M-4X"), Err(ParseError::Length { expected: 13, found: 12 }));
    /// assert_eq!(f.parse("SALE-7K2-Q9M-4X?"), Err(ParseError::Character { ch: '?', at: 15 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`ParseError::Character`] for a character that is no letter, digit or separator;
    /// - [`ParseError::NotInAlphabet`] for a letter or digit the alphabet neither has nor
    ///   reads as a look-alike;
    /// - [`ParseError::Literal`] where a fixed character of the format is typed otherwise;
    /// - [`ParseError::Length`] for too few or too many letters and digits;
    /// - [`ParseError::Check`] when the check character does not match.
    pub fn parse(&self, typed: &str) -> Result<Code, ParseError> {
        let mut canon = self.canon;
        self.parse_into(typed, &mut canon)?;
        Ok(self.finish(&canon))
    }

    /// Whether `typed` reads as a code of this format (as [`parse`](Self::parse), without
    /// building the canonical string).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn verify(&self, typed: &str) -> Result<(), ParseError> {
        let mut canon = self.canon;
        self.parse_into(typed, &mut canon)
    }

    /// The symbol indices of `typed`'s random and check characters.
    pub(crate) fn parse_symbols(&self, typed: &str) -> Result<Vec<u8>, ParseError> {
        let mut canon = self.canon;
        self.parse_into(typed, &mut canon)?;
        let lookup = self.alphabet.lookup();
        let slots = self.slot_at.get(..self.slots).unwrap_or(&[]);
        Ok(slots
            .iter()
            .map(|&at| lookup[canon[at as usize & (MAX_CODE_LEN - 1)] as usize & 127])
            .collect())
    }

    /// Reads `typed`, writing its symbols into `canon` (the pattern's bytes).
    fn parse_into(&self, typed: &str, canon: &mut [u8; MAX_CODE_LEN]) -> Result<(), ParseError> {
        let read = if typed.is_ascii() {
            self.read(typed.bytes(), canon)
        } else {
            self.read(typed.chars().map(fold_wide), canon)
        };
        read.map_err(|e| e.into_error(typed))
    }

    /// Matches ASCII bytes (full-width forms folded, other separators as spaces, anything
    /// else as NUL) against the format, writing symbols into `canon`.
    #[inline]
    fn read(
        &self,
        bytes: impl Iterator<Item = u8>,
        canon: &mut [u8; MAX_CODE_LEN],
    ) -> Result<(), Refusal> {
        // Every index below is masked to the bounds it already respects: `k` and `n` stay
        // below the format's 32 characters, bytes are ASCII and symbols below 64.
        const M: usize = MAX_CODE_LEN - 1;
        let lookup = self.alphabet.lookup();
        let table = self.alphabet.symbol_table();
        let tables = self.alphabet.tables();
        let skeleton = &self.skeleton;
        let typed_len = self.typed_len;
        let mut k = 0; // letters and digits so far
        let mut n = 0; // symbols so far
        let mut p = 0; // the check product so far
        for (at, b) in bytes.enumerate() {
            let b = b & 127;
            if k < typed_len && skeleton[k & M] == SLOT {
                let d = lookup[b as usize];
                if d != NONE {
                    canon[self.slot_at[n & M] as usize & M] = table[d as usize & 63];
                    p = tables.step(p, n, d);
                    n += 1;
                    k += 1;
                    continue;
                }
            }
            let f = fold_byte(b);
            if f == SEP {
                continue;
            }
            if f == OTHER {
                return Err(Refusal::Character { at });
            }
            if k < typed_len {
                let lit = skeleton[k & M];
                if lit == SLOT {
                    return Err(Refusal::NotInAlphabet { at });
                }
                if f != lit {
                    return Err(Refusal::Literal {
                        expected: lit as char,
                        found: f as char,
                        at,
                    });
                }
            }
            k += 1;
        }
        if k != typed_len {
            return Err(Refusal::Length {
                expected: typed_len,
                found: k,
            });
        }
        if self.check && p != 0 {
            return Err(Refusal::Check);
        }
        Ok(())
    }
}

/// A [`ParseError`] before the character it names is looked up (kept off the fast path).
enum Refusal {
    Character {
        at: usize,
    },
    NotInAlphabet {
        at: usize,
    },
    Literal {
        expected: char,
        found: char,
        at: usize,
    },
    Length {
        expected: usize,
        found: usize,
    },
    Check,
}

impl Refusal {
    #[cold]
    fn into_error(self, typed: &str) -> ParseError {
        let ch = |at: usize| typed.chars().nth(at).unwrap_or('\u{FFFD}');
        match self {
            Refusal::Character { at } => ParseError::Character { ch: ch(at), at },
            Refusal::NotInAlphabet { at } => ParseError::NotInAlphabet { ch: ch(at), at },
            Refusal::Literal {
                expected,
                found,
                at,
            } => ParseError::Literal {
                expected,
                found,
                at,
            },
            Refusal::Length { expected, found } => ParseError::Length { expected, found },
            Refusal::Check => ParseError::Check,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format() -> CodeFormat {
        CodeFormat::from_pattern("SALE-###-###-###").unwrap()
    }

    fn a_code(f: &CodeFormat) -> String {
        // The check character for 7K2Q9M4X, computed by the tables.
        let t = f.alphabet.tables();
        let body: Vec<u8> = "7K2Q9M4X"
            .chars()
            .map(|c| f.alphabet.index(c).unwrap())
            .collect();
        let c = t.check_for(t.product(&body), body.len());
        let mut all = body.clone();
        all.push(c);
        f.render(&all).into_string()
    }

    #[test]
    fn a_code_reads_back_as_itself() {
        let f = format();
        let code = a_code(&f);
        assert_eq!(f.parse(&code).unwrap().as_str(), code);
        assert!(f.verify(&code).is_ok());
    }

    #[test]
    fn full_width_and_dashes_fold() {
        let f = format();
        let code = a_code(&f);
        let wide: String = code
            .chars()
            .map(|c| match c {
                '-' => '－',
                c => char::from_u32(c as u32 + 0xFEE0).unwrap(),
            })
            .collect();
        assert_eq!(f.parse(&wide).unwrap().as_str(), code);
        let spaced = code.replace('-', "\u{3000}");
        assert_eq!(f.parse(&spaced).unwrap().as_str(), code);
        let dashed = code.replace('-', "——");
        assert_eq!(f.parse(&dashed).unwrap().as_str(), code);
        let zw = code.replace('-', "\u{200B}");
        assert_eq!(f.parse(&zw).unwrap().as_str(), code);
    }

    #[test]
    fn look_alikes_map_only_in_random_characters() {
        let f = CodeFormat::from_pattern("SOL-##########").unwrap();
        let t = f.alphabet.tables();
        let body = [0u8, 1, 0, 1, 2, 3, 4, 5, 6];
        let mut all = body.to_vec();
        all.push(t.check_for(t.product(&body), body.len()));
        let code = f.render(&all).into_string();
        assert!(code.starts_with("SOL-0101"));
        assert_eq!(
            f.parse(&code.replace("0101", "oIOl")).unwrap().as_str(),
            code
        );
        // The prefix's O is an O, not a zero.
        assert_eq!(
            f.parse(&code.replacen("SOL", "S0L", 1)),
            Err(ParseError::Literal {
                expected: 'O',
                found: '0',
                at: 1
            })
        );
    }

    #[test]
    fn other_characters_are_refused_with_their_position() {
        let f = format();
        assert_eq!(
            f.parse("SALE-7K2-Q9M-4X*"),
            Err(ParseError::Character { ch: '*', at: 15 })
        );
        assert_eq!(
            f.parse("SALE-7K2-Q9M-4Xé"),
            Err(ParseError::Character { ch: 'é', at: 15 })
        );
        assert_eq!(
            f.parse("SALX"),
            Err(ParseError::Literal {
                expected: 'E',
                found: 'X',
                at: 3
            })
        );
        assert_eq!(
            f.parse(""),
            Err(ParseError::Length {
                expected: 13,
                found: 0
            })
        );
        let code = a_code(&f);
        assert_eq!(
            f.parse(&format!("{code}A")),
            Err(ParseError::Length {
                expected: 13,
                found: 14
            })
        );
        let digits = CodeFormat::builder()
            .alphabet(super::super::Alphabet::digits())
            .length(14)
            .build()
            .unwrap();
        assert_eq!(
            digits.parse("1234-5678-9012-A4"),
            Err(ParseError::NotInAlphabet { ch: 'A', at: 15 })
        );
    }
}
