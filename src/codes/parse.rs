//! Reading a code a buyer typed: folding case, width and separators, mapping look-alikes,
//! and verifying the check character — all before any storage read.

use super::code::Code;
use super::error::ParseError;
use super::format::{CodeFormat, MAX_CODE_LEN, SLOT};

/// What one typed character is, once folded.
enum Folded {
    /// A separator: dropped.
    Separator,
    /// An ASCII letter (upper-case) or digit.
    Char(u8),
    /// Anything else.
    Other,
}

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
fn fold(ch: char) -> Folded {
    if ch.is_ascii() {
        let b = ch as u8;
        return match b {
            b'a'..=b'z' => Folded::Char(b - 32),
            b'A'..=b'Z' | b'0'..=b'9' => Folded::Char(b),
            b'-' | b'_' | b' ' | b'\t' | b'\n' | b'\r' => Folded::Separator,
            _ => Folded::Other,
        };
    }
    fold_wide(ch)
}

#[cold]
fn fold_wide(ch: char) -> Folded {
    let c = ch as u32;
    // Full-width forms of ASCII `!`..`~` (ＳＡＬＥ２０２６) sit 0xFEE0 above them.
    if (0xFF01..=0xFF5E).contains(&c) {
        if let Some(narrow) = char::from_u32(c - 0xFEE0) {
            return fold(narrow);
        }
    }
    if ch.is_whitespace() || SEPARATORS.contains(&ch) {
        return Folded::Separator;
    }
    Folded::Other
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
        let mut symbols = [0u8; MAX_CODE_LEN];
        let len = self.parse_into(typed, &mut symbols)?;
        Ok(self.render(symbols.get(..len).unwrap_or(&[])))
    }

    /// Whether `typed` reads as a code of this format (as [`parse`](Self::parse), without
    /// building the canonical string).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn verify(&self, typed: &str) -> Result<(), ParseError> {
        let mut symbols = [0u8; MAX_CODE_LEN];
        self.parse_into(typed, &mut symbols).map(|_| ())
    }

    /// The symbol indices of `typed`'s random and check characters.
    pub(crate) fn parse_symbols(&self, typed: &str) -> Result<Vec<u8>, ParseError> {
        let mut symbols = [0u8; MAX_CODE_LEN];
        let len = self.parse_into(typed, &mut symbols)?;
        Ok(symbols.get(..len).unwrap_or(&[]).to_vec())
    }

    /// Reads `typed` into `symbols`; returns how many there are.
    fn parse_into(
        &self,
        typed: &str,
        symbols: &mut [u8; MAX_CODE_LEN],
    ) -> Result<usize, ParseError> {
        let lookup = self.alphabet.lookup();
        let skeleton = &self.skeleton;
        let mut k = 0; // letters and digits so far
        let mut n = 0; // symbols so far
        for (at, ch) in typed.chars().enumerate() {
            let b = match fold(ch) {
                Folded::Separator => continue,
                Folded::Other => return Err(ParseError::Character { ch, at }),
                Folded::Char(b) => b,
            };
            match skeleton.get(k) {
                Some(&SLOT) => {
                    let d = lookup
                        .get(b as usize)
                        .copied()
                        .unwrap_or(super::alphabet::NONE);
                    if d == super::alphabet::NONE {
                        return Err(ParseError::NotInAlphabet { ch, at });
                    }
                    if let Some(slot) = symbols.get_mut(n) {
                        *slot = d;
                    }
                    n += 1;
                }
                Some(&lit) if b != lit => {
                    return Err(ParseError::Literal {
                        expected: lit as char,
                        found: b as char,
                        at,
                    });
                }
                Some(_) | None => {}
            }
            k += 1;
        }
        if k != skeleton.len() {
            return Err(ParseError::Length {
                expected: skeleton.len(),
                found: k,
            });
        }
        if self.check
            && !self
                .alphabet
                .tables()
                .is_valid(symbols.get(..n).unwrap_or(&[]))
        {
            return Err(ParseError::Check);
        }
        Ok(n)
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
