//! Batches of unique random codes: the random source, unbiased drawing, uniqueness.

use super::code::Code;
use super::error::{GenerateError, RandomError};
use super::format::{CodeFormat, MAX_CODE_LEN};

/// Where random bytes come from: fill the buffer, every byte uniform and independent.
///
/// For real codes use the operating system's source, `OsRandom` (feature `os-rng`), or a
/// cryptographically secure generator of your own. For reproducible tests, any seeded
/// generator will do — a seeded generator's codes are known to whoever knows the seed, so
/// never issue them.
///
/// ```
/// use coupons::codes::{RandomError, RandomSource};
///
/// /// SplitMix64: reproducible, and for tests only.
/// struct SplitMix(u64);
/// impl RandomSource for SplitMix {
///     fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
///         for chunk in dest.chunks_mut(8) {
///             self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
///             let mut z = self.0;
///             z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
///             z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
///             z ^= z >> 31;
///             chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
///         }
///         Ok(())
///     }
/// }
/// # let mut r = SplitMix(1);
/// # let mut b = [0u8; 3];
/// # r.fill(&mut b)?;
/// # Ok::<(), RandomError>(())
/// ```
pub trait RandomSource {
    /// Fills `dest` with random bytes.
    ///
    /// # Errors
    /// [`RandomError`] when the source cannot deliver (generation stops with
    /// [`GenerateError::Random`]).
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError>;
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }
}

/// The operating system's secure random source, through the `getrandom` crate (feature
/// `os-rng`): `getrandom(2)` on Linux, `getentropy` on macOS, `ProcessPrng` on Windows…
///
/// ```
/// # #[cfg(feature = "os-rng")] {
/// use coupons::codes::{CodeFormat, OsRandom};
/// let codes = CodeFormat::default().generate(3, OsRandom)?;
/// assert_eq!(codes.len(), 3);
/// # }
/// # Ok::<(), coupons::codes::GenerateError>(())
/// ```
#[cfg(feature = "os-rng")]
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

#[cfg(feature = "os-rng")]
impl RandomSource for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(dest).map_err(RandomError::new)
    }
}

/// Bytes drawn from the source a buffer at a time.
const BUFFER: usize = 1024;
/// Useless draws in a row (rejected bytes, repeated codes) after which the source is broken.
const MAX_USELESS: u32 = 128;

/// Unique random codes of one format, one at a time; made by [`CodeFormat::stream`].
///
/// Yields exactly the number of codes asked for, then `None`; after an error, `None`.
///
/// **How uniqueness is kept.** Each code's random characters are a number below the format's
/// [`space`](CodeFormat::space); the stream keeps every number it has handed out (and every
/// one [excluded](Self::exclude)) in an open-addressing table, between a quarter and half
/// full, and draws again when a number is already there. Slots are 8 bytes when the space
/// fits in 64 bits (up to 12 random Crockford characters, 19 digits) and 16 bytes above:
/// 16 to 32 bytes per code (16 MiB for a million default codes), whatever the length of the
/// codes; the codes themselves are not kept: write them out as they come. Because a batch may fill at most
/// `1 / min_guesses_per_hit` (at most half) of the possible codes, a fresh code costs at most
/// two draws on average.
///
/// Codes are unique within a stream and against what it excludes; across separate streams a
/// repeat has probability `N₁·N₂ / space`, so exclude earlier batches (or let the store's
/// unique key refuse the rare repeat).
pub struct CodeStream<'f, R> {
    format: &'f CodeFormat,
    rng: R,
    buf: Vec<u8>,
    pos: usize,
    /// Byte → symbol index, or `NONE` for bytes rejected to keep symbols unbiased.
    draw: [u8; 256],
    seen: ValueSet,
    remaining: u64,
    requested: u64,
    excluded: u64,
    done: bool,
}

impl<R> std::fmt::Debug for CodeStream<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeStream")
            .field("format", &self.format.pattern)
            .field("remaining", &self.remaining)
            .field("excluded", &self.excluded)
            .finish()
    }
}

impl CodeFormat {
    /// `count` unique random codes, in random order.
    ///
    /// Memory: the codes (a `String` each, about 56 bytes with the allocator's overhead for
    /// 14-character codes; [`generate_batch`](Self::generate_batch) takes 14) and, while
    /// generating, the uniqueness table of [`CodeStream`] (16 to 32 bytes per code) and the
    /// batch the codes are copied from (14 bytes per code).
    ///
    /// ```
    /// # use coupons::codes::{CodeFormat, RandomError, RandomSource};
    /// # struct SplitMix(u64);
    /// # impl RandomSource for SplitMix {
    /// #     fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
    /// #         for chunk in dest.chunks_mut(8) {
    /// #             self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
    /// #             let mut z = self.0;
    /// #             z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    /// #             z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    /// #             z ^= z >> 31;
    /// #             chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    /// #         }
    /// #         Ok(())
    /// #     }
    /// # }
    /// let format = CodeFormat::from_pattern("SALE-###-###-###")?;
    /// let codes = format.generate(1_000, SplitMix(7))?;
    /// assert_eq!(codes.len(), 1_000);
    /// // Every one reads back as itself, typed in lower case without dashes.
    /// for code in &codes {
    ///     let typed = code.as_str().to_lowercase().replace('-', "");
    ///     assert_eq!(&format.parse(&typed)?, code);
    /// }
    /// // The format allows about 1.1 million codes; more are refused before any is drawn.
    /// assert!(format.generate(2_000_000, SplitMix(7)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// - [`GenerateError::TooMany`] when `count` exceeds the [`capacity`](Self::capacity),
    ///   before anything is drawn;
    /// - [`GenerateError::Random`] when the source fails, [`GenerateError::NotRandom`] when
    ///   it keeps repeating itself;
    /// - [`GenerateError::OutOfMemory`] when the codes or the table cannot be allocated.
    pub fn generate<R: RandomSource>(
        &self,
        count: usize,
        rng: R,
    ) -> Result<Vec<Code>, GenerateError> {
        let batch = self.generate_batch(count, rng)?;
        let mut out = Vec::new();
        out.try_reserve_exact(count)
            .map_err(|_| GenerateError::OutOfMemory {
                codes: count as u64,
            })?;
        out.extend(batch.iter().map(|s| Code::from_checked(s.to_owned())));
        Ok(out)
    }

    /// `count` unique random codes in one compact [`CodeBatch`]: one string holding them all
    /// end to end, `len()` bytes each — a quarter of the memory of `Vec<Code>` and one
    /// allocation instead of one per code, for batches written straight to a file or a
    /// table. The same source gives the same codes as [`generate`](Self::generate).
    ///
    /// # Errors
    /// As [`generate`](Self::generate).
    pub fn generate_batch<R: RandomSource>(
        &self,
        count: usize,
        rng: R,
    ) -> Result<CodeBatch, GenerateError> {
        let mut stream = self.stream(count as u64, rng)?;
        let stride = self.pattern.len();
        let oom = GenerateError::OutOfMemory {
            codes: count as u64,
        };
        let bytes = count.checked_mul(stride).ok_or(oom.clone())?;
        let mut text = Vec::new();
        text.try_reserve_exact(bytes).map_err(|_| oom)?;
        let mut canon = self.canon;
        for _ in 0..count {
            stream.next_into(&mut canon)?;
            text.extend_from_slice(canon.get(..stride).unwrap_or(&[]));
        }
        // Every byte is an ASCII letter, digit, `-` or `_`: this never takes the lossy path.
        let text = String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Ok(CodeBatch {
            text,
            stride,
            count,
        })
    }

    /// A stream of `count` unique random codes, for batches too large to hold at once; see
    /// [`CodeStream`] for how uniqueness is kept.
    ///
    /// # Errors
    /// [`GenerateError::TooMany`] when `count` exceeds the [`capacity`](Self::capacity)
    /// (checked here, before anything is drawn); [`GenerateError::OutOfMemory`] when the
    /// uniqueness table cannot be allocated.
    pub fn stream<R: RandomSource>(
        &self,
        count: u64,
        rng: R,
    ) -> Result<CodeStream<'_, R>, GenerateError> {
        self.fits(count, 0)?;
        let n = self.alphabet.len() as u16;
        // Bytes ≥ limit are rejected, so every symbol is equally likely.
        let limit = 256 - 256 % n;
        let mut draw = [super::alphabet::NONE; 256];
        for (b, slot) in (0u16..).zip(draw.iter_mut()) {
            if b < limit {
                *slot = (b % n) as u8;
            }
        }
        Ok(CodeStream {
            format: self,
            rng,
            buf: vec![0; BUFFER],
            pos: BUFFER,
            draw,
            seen: ValueSet::new(count, self.space)
                .ok_or(GenerateError::OutOfMemory { codes: count })?,
            remaining: count,
            requested: count,
            excluded: 0,
            done: false,
        })
    }

    fn fits(&self, requested: u64, excluded: u64) -> Result<(), GenerateError> {
        let total = requested as u128 + excluded as u128;
        if total > self.capacity() {
            return Err(GenerateError::TooMany {
                requested,
                excluded,
                capacity: self.capacity(),
                margin: self.min_guesses,
            });
        }
        Ok(())
    }

    /// The number the random characters of `symbols` stand for.
    pub(crate) fn value_of(&self, random: &[u8]) -> u128 {
        let n = self.alphabet.len() as u128;
        random
            .iter()
            .fold(0u128, |v, &d| v.wrapping_mul(n).wrapping_add(d as u128))
    }

    /// The canonical code for `symbols` (random characters, then the check character if the
    /// format has one).
    #[cfg(test)]
    pub(crate) fn render(&self, symbols: &[u8]) -> Code {
        let mut canon = self.canon;
        let table = self.alphabet.symbol_table();
        for (&at, &d) in self.slot_at.iter().zip(symbols) {
            canon[at as usize & (MAX_CODE_LEN - 1)] = table[d as usize & 63];
        }
        self.finish(&canon)
    }

    /// The code whose canonical bytes are `canon` (the pattern's length of them).
    #[inline]
    pub(crate) fn finish(&self, canon: &[u8; MAX_CODE_LEN]) -> Code {
        let bytes = canon.get(..self.pattern.len()).unwrap_or(&[]);
        Code::from_checked(std::str::from_utf8(bytes).unwrap_or_default().to_owned())
    }
}

impl<R: RandomSource> CodeStream<'_, R> {
    /// Excludes codes issued before (typed or canonical), so the stream never yields them;
    /// they count against the format's capacity.
    ///
    /// # Errors
    /// [`GenerateError::Exclude`] for a code that is not one of the format (the stream is
    /// unchanged by it); [`GenerateError::TooMany`] when the stream's codes and the excluded
    /// ones exceed the capacity; [`GenerateError::OutOfMemory`].
    pub fn exclude<'c>(
        &mut self,
        codes: impl IntoIterator<Item = &'c str>,
    ) -> Result<(), GenerateError> {
        let random_len = self.format.random_len;
        for typed in codes {
            let symbols =
                self.format
                    .parse_symbols(typed)
                    .map_err(|reason| GenerateError::Exclude {
                        code: typed.chars().take(40).collect(),
                        reason,
                    })?;
            let random = symbols.get(..random_len).unwrap_or(&[]);
            let value = self.format.value_of(random);
            if !self.seen.contains(value) {
                self.format.fits(self.requested, self.excluded + 1)?;
                self.seen.insert(value).ok_or(GenerateError::OutOfMemory {
                    codes: self.seen.len() + 1,
                })?;
                self.excluded += 1;
            }
        }
        Ok(())
    }

    /// Codes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// A random symbol: the next buffered byte through the unbiased table.
    #[inline]
    fn symbol(&mut self) -> Result<u8, GenerateError> {
        if let Some(&b) = self.buf.get(self.pos) {
            self.pos += 1;
            let d = self.draw[b as usize];
            if d != super::alphabet::NONE {
                return Ok(d);
            }
        }
        self.symbol_slow()
    }

    #[cold]
    fn symbol_slow(&mut self) -> Result<u8, GenerateError> {
        for _ in 0..MAX_USELESS {
            if self.pos >= self.buf.len() {
                self.rng.fill(&mut self.buf)?;
                self.pos = 0;
            }
            let b = self.buf.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            let d = self.draw[b as usize];
            if d != super::alphabet::NONE {
                return Ok(d);
            }
        }
        Err(GenerateError::NotRandom { draws: MAX_USELESS })
    }

    /// Draws `r` symbols into `out`, straight from the buffer when it holds enough.
    #[inline]
    fn draw_symbols(&mut self, out: &mut [u8]) -> Result<(), GenerateError> {
        let r = out.len();
        if let Some(bytes) = self.buf.get(self.pos..self.pos + r) {
            let mut rejected = false;
            for (slot, &b) in out.iter_mut().zip(bytes) {
                let d = self.draw[b as usize];
                rejected |= d == super::alphabet::NONE;
                *slot = d;
            }
            if !rejected {
                self.pos += r;
                return Ok(());
            }
        }
        for slot in out.iter_mut() {
            *slot = self.symbol()?;
        }
        Ok(())
    }

    /// The next unique code, written into `canon` (the format's pattern bytes).
    fn next_into(&mut self, canon: &mut [u8; MAX_CODE_LEN]) -> Result<(), GenerateError> {
        let format = self.format;
        let r = format.random_len;
        let n = format.alphabet.len() as u64;
        let narrow = self.seen.is_narrow();
        let mut symbols = [0u8; MAX_CODE_LEN];
        for _ in 0..MAX_USELESS {
            self.draw_symbols(symbols.get_mut(..r).unwrap_or(&mut []))?;
            let random = symbols.get(..r).unwrap_or(&[]);
            let value = if narrow {
                // The space fits in 64 bits: a cheaper accumulator.
                random
                    .iter()
                    .fold(0u64, |v, &d| v.wrapping_mul(n).wrapping_add(d as u64))
                    as u128
            } else {
                format.value_of(random)
            };
            match self.seen.insert(value) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    return Err(GenerateError::OutOfMemory {
                        codes: self.seen.len() + 1,
                    });
                }
            }
            let table = format.alphabet.symbol_table();
            const M: usize = MAX_CODE_LEN - 1;
            for (&at, &d) in format.slot_at.iter().zip(random) {
                canon[at as usize & M] = table[d as usize & 63];
            }
            if format.check {
                let t = format.alphabet.tables();
                let c = t.check_for(t.product(random), r);
                let at = format.slot_at[r & M];
                canon[at as usize & M] = table[c as usize & 63];
            }
            return Ok(());
        }
        Err(GenerateError::NotRandom { draws: MAX_USELESS })
    }

    fn next_code(&mut self) -> Result<Code, GenerateError> {
        let mut canon = self.format.canon;
        self.next_into(&mut canon)?;
        Ok(self.format.finish(&canon))
    }
}

/// Unique codes of one format stored end to end in one string; made by
/// [`CodeFormat::generate_batch`].
///
/// ```
/// # use coupons::codes::{CodeFormat, RandomError, RandomSource};
/// # struct SplitMix(u64);
/// # impl RandomSource for SplitMix {
/// #     fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
/// #         for chunk in dest.chunks_mut(8) {
/// #             self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
/// #             let mut z = self.0;
/// #             z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
/// #             z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
/// #             z ^= z >> 31;
/// #             chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
/// #         }
/// #         Ok(())
/// #     }
/// # }
/// let format = CodeFormat::default();
/// let batch = format.generate_batch(100_000, SplitMix(1))?;
/// assert_eq!(batch.len(), 100_000);
/// assert_eq!(batch.as_str().len(), 100_000 * 14);
/// let first = batch.get(0).unwrap();
/// assert_eq!(format.parse(first)?.as_str(), first);
/// // The same codes as `generate` from the same source.
/// let codes = format.generate(3, SplitMix(1))?;
/// assert!(batch.iter().zip(&codes).all(|(b, c)| b == c.as_str()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeBatch {
    text: String,
    stride: usize,
    count: usize,
}

impl CodeBatch {
    /// The number of codes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Code `i`, canonical, if there are more than `i`.
    pub fn get(&self, i: usize) -> Option<&str> {
        let start = i.checked_mul(self.stride)?;
        self.text.get(start..start.checked_add(self.stride)?)
    }

    /// The codes in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.count).map(move |i| self.get(i).unwrap_or(""))
    }

    /// All codes end to end, each the format's length, no separator between them.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The codes as [`Code`]s (one allocation each).
    pub fn to_codes(&self) -> Vec<Code> {
        self.iter()
            .map(|s| Code::from_checked(s.to_owned()))
            .collect()
    }
}

impl<R: RandomSource> Iterator for CodeStream<'_, R> {
    type Item = Result<Code, GenerateError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.remaining == 0 {
            return None;
        }
        match self.next_code() {
            Ok(code) => {
                self.remaining -= 1;
                Some(Ok(code))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            return (0, Some(0));
        }
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// The random values handed out so far: 8-byte slots when the format's space fits in 64
/// bits, 16-byte slots otherwise.
enum ValueSet {
    Narrow(Table<u64>),
    Wide(Table<u128>),
}

impl ValueSet {
    /// A set sized for `codes` values of a format with `space` values.
    fn new(codes: u64, space: u128) -> Option<ValueSet> {
        if space < u64::MAX as u128 {
            Table::with_codes(codes).map(ValueSet::Narrow)
        } else {
            Table::with_codes(codes).map(ValueSet::Wide)
        }
    }

    fn is_narrow(&self) -> bool {
        matches!(self, ValueSet::Narrow(_))
    }

    fn len(&self) -> u64 {
        match self {
            ValueSet::Narrow(t) => t.len,
            ValueSet::Wide(t) => t.len,
        }
    }

    fn contains(&self, v: u128) -> bool {
        match self {
            ValueSet::Narrow(t) => t.contains(v as u64),
            ValueSet::Wide(t) => t.contains(v),
        }
    }

    /// Adds `v` (below the space): `Some(true)` if it is new, `Some(false)` if it was there,
    /// `None` when the table could not grow.
    #[inline]
    fn insert(&mut self, v: u128) -> Option<bool> {
        match self {
            ValueSet::Narrow(t) => t.insert(v as u64),
            ValueSet::Wide(t) => t.insert(v),
        }
    }
}

/// A slot value of a [`Table`].
trait Key: Copy + Eq {
    /// The empty slot: no value reaches it, as every value is below the format's space, which
    /// is below the type's maximum.
    const EMPTY: Self;
    fn mix(self) -> u64;
}

impl Key for u64 {
    const EMPTY: u64 = u64::MAX;
    #[inline]
    fn mix(self) -> u64 {
        self.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl Key for u128 {
    const EMPTY: u128 = u128::MAX;
    #[inline]
    fn mix(self) -> u64 {
        (self as u64 ^ (self >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// A set of keys, open addressing with linear probing, at most half full.
struct Table<K> {
    slots: Vec<K>,
    len: u64,
    shift: u32,
}

impl<K: Key> Table<K> {
    /// A table sized for `codes` keys, at most 2²² slots to begin with (it grows).
    fn with_codes(codes: u64) -> Option<Table<K>> {
        let want = codes.saturating_mul(2).clamp(16, 1 << 22);
        Table::with_slots(want.next_power_of_two())
    }

    fn with_slots(n: u64) -> Option<Table<K>> {
        let n = usize::try_from(n).ok()?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(n).ok()?;
        slots.resize(n, K::EMPTY);
        Some(Table {
            slots,
            len: 0,
            shift: 64 - n.trailing_zeros(),
        })
    }

    #[inline]
    fn home(&self, v: K) -> usize {
        (v.mix() >> self.shift) as usize
    }

    fn contains(&self, v: K) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = self.home(v);
        loop {
            match self.slots.get(i) {
                Some(&s) if s == v => return true,
                Some(&s) if s == K::EMPTY => return false,
                Some(_) => i = (i + 1) & mask,
                None => return false,
            }
        }
    }

    /// Adds `v`: `Some(true)` if new, `Some(false)` if present, `None` if the table could not
    /// grow.
    #[inline]
    fn insert(&mut self, v: K) -> Option<bool> {
        if (self.len + 1) * 2 > self.slots.len() as u64 {
            self.grow()?;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(v);
        while let Some(s) = self.slots.get_mut(i) {
            if *s == v {
                return Some(false);
            }
            if *s == K::EMPTY {
                *s = v;
                self.len += 1;
                return Some(true);
            }
            i = (i + 1) & mask;
        }
        None
    }

    #[cold]
    fn grow(&mut self) -> Option<()> {
        let mut bigger = Table::with_slots(self.slots.len() as u64 * 2)?;
        for &s in &self.slots {
            if s != K::EMPTY {
                bigger.insert(s)?;
            }
        }
        *self = bigger;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Alphabet;

    /// SplitMix64, for reproducible tests.
    struct SplitMix(u64);
    impl RandomSource for SplitMix {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
            for chunk in dest.chunks_mut(8) {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
            }
            Ok(())
        }
    }

    struct Constant(u8);
    impl RandomSource for Constant {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), RandomError> {
            dest.fill(self.0);
            Ok(())
        }
    }

    struct Broken;
    impl RandomSource for Broken {
        fn fill(&mut self, _: &mut [u8]) -> Result<(), RandomError> {
            Err(RandomError::new("no entropy"))
        }
    }

    #[test]
    fn the_value_set_finds_what_it_holds_and_grows() {
        for space in [1u128 << 60, 1 << 100] {
            let mut s = ValueSet::new(1, space).unwrap();
            assert_eq!(s.is_narrow(), space < 1 << 64);
            for v in 0..10_000u128 {
                assert!(!s.contains(v * 7919));
                assert_eq!(s.insert(v * 7919), Some(true));
                assert!(s.contains(v * 7919));
                assert_eq!(s.insert(v * 7919), Some(false));
            }
            assert_eq!(s.len(), 10_000);
            assert!((0..10_000u128).all(|v| s.contains(v * 7919)));
            assert!(!s.contains(1));
        }
        let t = Table::<u64>::with_codes(10_000).unwrap();
        assert_eq!(t.slots.len(), 32_768);
    }

    #[test]
    fn a_constant_source_is_caught_not_looped_on() {
        let f = CodeFormat::default();
        // Every code would be the same: the second one cannot be drawn.
        let err = f.generate(2, Constant(3)).unwrap_err();
        assert_eq!(err, GenerateError::NotRandom { draws: MAX_USELESS });
        // A byte that is always rejected (36 symbols: 252..=255 are).
        let g = CodeFormat::builder()
            .alphabet(Alphabet::alphanumeric())
            .build()
            .unwrap();
        assert_eq!(
            g.generate(1, Constant(255)).unwrap_err(),
            GenerateError::NotRandom { draws: MAX_USELESS }
        );
    }

    #[test]
    fn a_failing_source_is_an_error() {
        let err = CodeFormat::default().generate(1, Broken).unwrap_err();
        assert_eq!(err, GenerateError::Random(RandomError::new("no entropy")));
        assert_eq!(err.to_string(), "the random source failed: no entropy");
    }

    #[test]
    fn symbols_are_drawn_without_modulo_bias() {
        // With 36 symbols, bytes 252..=255 are rejected and 0..=251 map 7 times to each.
        let f = CodeFormat::builder()
            .alphabet(Alphabet::alphanumeric())
            .build()
            .unwrap();
        let s = f.stream(1, SplitMix(0)).unwrap();
        let mut counts = [0u32; 36];
        for (b, &d) in s.draw.iter().enumerate() {
            if b < 252 {
                counts[d as usize] += 1;
            } else {
                assert_eq!(d, crate::codes::alphabet::NONE);
            }
        }
        assert!(counts.iter().all(|&c| c == 7));
    }

    #[test]
    fn too_many_codes_are_refused_up_front() {
        let f = CodeFormat::from_pattern("###-###-###").unwrap();
        let cap = f.capacity();
        let err = f.stream(cap as u64 + 1, Broken).unwrap_err();
        assert_eq!(
            err,
            GenerateError::TooMany {
                requested: cap as u64 + 1,
                excluded: 0,
                capacity: cap,
                margin: 1_000_000
            }
        );
        assert!(f.stream(cap as u64, SplitMix(0)).is_ok());
    }

    #[test]
    fn excluded_codes_never_come_out() {
        let f = CodeFormat::builder()
            .pattern("#########")
            .min_guesses_per_hit(2)
            .build()
            .unwrap();
        let first = f.generate(100, SplitMix(0)).unwrap();
        let mut again = f.stream(100, SplitMix(0)).unwrap();
        again.exclude(first.iter().map(|c| c.as_str())).unwrap();
        let second: Vec<Code> = again.map(Result::unwrap).collect();
        assert_eq!(second.len(), 100);
        assert!(second.iter().all(|c| !first.contains(c)));
        let mut s = f.stream(1, SplitMix(0)).unwrap();
        assert!(matches!(
            s.exclude(["nope"]),
            Err(GenerateError::Exclude { .. })
        ));
    }
}
