//! Promo codes: generation in bulk, check characters, and reading what buyers type.
//!
//! A [`CodeFormat`] says how codes look — an [`Alphabet`], a prefix and suffix, random
//! characters in groups (`SALE-7K2-Q9M-4X2`) or a pattern (`SALE-###-###-###`), and a check
//! character — and how hard they are to guess: it refuses formats with less than 40 bits of
//! randomness per code, and batches that would make a random guess likely to hit.
//!
//! - [`CodeFormat::generate`] draws any number of unique codes (millions in well under a
//!   second) from a [`RandomSource`]: the operating system's (`OsRandom`, feature
//!   `os-rng`) or your own seeded one for reproducible tests. Symbols are drawn without
//!   modulo bias; [`CodeFormat::stream`] yields them one at a time for batches too large to
//!   hold.
//! - [`CodeFormat::parse`] reads a code as typed — any case, spaces and dashes anywhere,
//!   full-width characters from Chinese keyboards, look-alikes (`O` for `0`) — and verifies
//!   the check character, so typos never reach the store.
//! - A [`Code`] converts to the crate's [`PromoCode`](crate::rule::PromoCode) with
//!   `PromoCode::try_from(&code)`.
//!
//! ```
//! use coupons::codes::{CodeFormat, ParseError, RandomError, RandomSource};
//! use coupons::rule::PromoCode;
//! # struct SplitMix(u64);
//! # impl RandomSource for SplitMix {
//! #     fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
//! #         for chunk in dest.chunks_mut(8) {
//! #             self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
//! #             let mut z = self.0;
//! #             z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
//! #             z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
//! #             z ^= z >> 31;
//! #             chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
//! #         }
//! #         Ok(())
//! #     }
//! # }
//!
//! let format = CodeFormat::builder().prefix("SALE-").length(9).group(3).build()?;
//! assert_eq!(format.pattern(), "SALE-###-###-###");
//! assert_eq!(format.entropy_bits(), 40.0); // 8 random characters; the 9th is the check
//!
//! // With the feature `os-rng`: `format.generate(10_000, coupons::codes::OsRandom)?`.
//! let codes = format.generate(10_000, SplitMix(2026))?;
//! let first = &codes[0];
//!
//! // A buyer types it on a phone, in lower case, with spaces…
//! let typed = first.as_str().to_lowercase().replace('-', " ");
//! assert_eq!(&format.parse(&typed)?, first);
//! // … or swaps two characters: refused before any lookup.
//! let mut swapped: Vec<char> = first.as_str().chars().collect();
//! swapped.swap(5, 6);
//! let swapped: String = swapped.into_iter().collect();
//! if swapped != first.as_str() {
//!     assert_eq!(format.parse(&swapped), Err(ParseError::Check));
//! }
//!
//! let promo = PromoCode::try_from(first)?;
//! assert_eq!(promo.as_str(), first.as_str());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The check character
//!
//! The last random position holds a check character computed over the random characters
//! (fixed characters are matched as they stand). It is a Verhoeff-style check over a group
//! of the alphabet's order with an anti-symmetric mapping `φ`: a code `d₀ … d_r` is valid
//! when `φ⁰(d₀)·φ¹(d₁)·…·φʳ(d_r)` is the identity. That rejects **every single wrong
//! character and every swap of two different neighbours**, for every alphabet of 3 to 36
//! symbols:
//!
//! | alphabet size | group | `φ` |
//! | --- | --- | --- |
//! | odd (3, 5, …, 35) | `Z_n` | `x ↦ 2x` |
//! | multiple of 4 (4, 8, 12, … 32, 36) | `GF(2^k)⁺ × Z_m` (`n = 2^k·m`) | `(a, b) ↦ (α·a, 2b)` |
//! | twice an odd number (6, 10, … 34) | dihedral `D_m` | `ρᵢ ↦ ρ₋ᵢ`, `τᵢ ↦ τᵢ₊₁` |
//!
//! For Crockford's 32 symbols it is a parity symbol over `GF(32)` (`Σ αʲ·d_j = 0`, `α` a
//! root of `x⁵ + x² + 1`), which also rejects every swap of two characters at any distance
//! and every twin error (`33 → 44`). No check character can do this over 2 symbols, so
//! alphabets of fewer than 3 are refused. The claims are proved by exhaustive tests on short
//! codes for every alphabet size, and the group laws and anti-symmetry by exhaustive tests of
//! the tables.
//!
//! ## Guessing resistance
//!
//! Each code carries `random characters × log2(alphabet size)` bits of randomness
//! ([`CodeFormat::entropy_bits`]). With `N` codes issued out of `S` possible
//! ([`CodeFormat::space`]), a well-formed random guess hits one with probability `N/S`:
//! `S/N` guesses on average ([`CodeFormat::expected_guesses`]). Formats below 40 bits (or a
//! higher minimum you set) are refused with [`FormatError::TooFewBits`], and batches that
//! would bring `S/N` below a million (or your margin) with [`GenerateError::TooMany`]. See
//! [`CodeFormat`] for a table.

mod alphabet;
mod check;
mod code;
mod error;
mod format;
mod generate;
mod parse;

pub use alphabet::Alphabet;
pub use code::Code;
pub use error::{FormatError, GenerateError, ParseError, RandomError};
pub use format::{
    CodeFormat, CodeFormatBuilder, DEFAULT_MIN_GUESSES_PER_HIT, MAX_CODE_LEN, MIN_BITS_FLOOR,
    MIN_CODE_LEN,
};
#[cfg(feature = "os-rng")]
pub use generate::OsRandom;
pub use generate::{CodeBatch, CodeStream, RandomSource};
pub use parse::SEPARATORS;
