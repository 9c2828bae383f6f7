//! Codes: check characters proved by exhaustion, normalisation, unique reproducible batches.

use std::collections::HashSet;

use coupons::codes::{
    Alphabet, Code, CodeFormat, FormatError, GenerateError, OsRandom, ParseError, RandomError,
    RandomSource, SEPARATORS,
};
use coupons::rule::PromoCode;
use proptest::prelude::*;

const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// SplitMix64: a reproducible source for tests.
#[derive(Clone)]
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

/// The alphabet of the first `n` letters and digits.
fn alphabet(n: usize) -> Alphabet {
    Alphabet::new(&ALNUM[..n]).unwrap()
}

/// Every string of `len` symbols of `a`.
fn all_bodies(a: &Alphabet, len: u32) -> impl Iterator<Item = Vec<char>> + '_ {
    let n = a.len();
    let symbols: Vec<char> = a.symbols().chars().collect();
    (0..n.pow(len)).map(move |mut i| {
        let mut body = vec!['?'; len as usize];
        for slot in body.iter_mut().rev() {
            *slot = symbols[i % n];
            i /= n;
        }
        body
    })
}

/// Every code that a single wrong symbol or a swap of two different neighbours makes of `code`.
fn one_error_away(code: &[char], symbols: &[char]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..code.len() {
        for &s in symbols {
            if s != code[i] {
                let mut c = code.to_vec();
                c[i] = s;
                out.push(c.into_iter().collect());
            }
        }
        if i + 1 < code.len() && code[i] != code[i + 1] {
            let mut c = code.to_vec();
            c.swap(i, i + 1);
            out.push(c.into_iter().collect());
        }
    }
    out
}

/// How many bodies to enumerate for an alphabet of `n`: all of length up to this.
fn exhaustive_len(n: usize) -> u32 {
    match n {
        3..=6 => 4,
        7..=14 => 3,
        _ => 2,
    }
}

#[test]
fn every_single_error_and_adjacent_swap_is_caught_for_every_alphabet_size() {
    for n in 3..=36 {
        let a = alphabet(n);
        let symbols: Vec<char> = a.symbols().chars().collect();
        for len in 0..=exhaustive_len(n) {
            for body in all_bodies(&a, len) {
                let body_s: String = body.iter().collect();
                let mut code = body.clone();
                code.push(a.check_character(&body_s).unwrap());
                let code_s: String = code.iter().collect();
                assert_eq!(a.passes_check(&code_s), Ok(true), "n={n} {code_s}");
                for bad in one_error_away(&code, &symbols) {
                    assert_eq!(a.passes_check(&bad), Ok(false), "n={n} {code_s} → {bad}");
                }
            }
        }
    }
}

#[test]
fn crockford_codes_of_three_random_characters_catch_every_error_exhaustively() {
    let a = Alphabet::crockford();
    let symbols: Vec<char> = a.symbols().chars().collect();
    for body in all_bodies(&a, 3) {
        let body_s: String = body.iter().collect();
        let mut code = body.clone();
        code.push(a.check_character(&body_s).unwrap());
        for bad in one_error_away(&code, &symbols) {
            assert_eq!(a.passes_check(&bad), Ok(false), "{body_s} → {bad}");
        }
        // Over GF(32) every swap at any distance and every twin error is caught too.
        for i in 0..code.len() {
            for j in i + 1..code.len() {
                if code[i] != code[j] {
                    let mut c = code.clone();
                    c.swap(i, j);
                    let c: String = c.into_iter().collect();
                    assert_eq!(a.passes_check(&c), Ok(false), "{body_s} swap {i} {j}");
                }
            }
            if i + 1 < code.len() && code[i] == code[i + 1] {
                for &s in &symbols {
                    if s != code[i] {
                        let mut c = code.clone();
                        c[i] = s;
                        c[i + 1] = s;
                        let c: String = c.into_iter().collect();
                        assert_eq!(a.passes_check(&c), Ok(false), "{body_s} twin {i}");
                    }
                }
            }
        }
    }
}

#[test]
fn no_check_character_over_two_symbols_catches_every_error() {
    // Over {0, 1} a check character for two symbols is one of 16 functions f(a, b); every one
    // misses a single error or a swap of neighbours. That is why 2-symbol alphabets are refused.
    for f in 0u8..16 {
        let check = |a: u8, b: u8| (f >> (a * 2 + b)) & 1;
        let valid = |c: [u8; 3]| check(c[0], c[1]) == c[2];
        let codes: Vec<[u8; 3]> = (0..4u8)
            .map(|i| [i >> 1, i & 1, check(i >> 1, i & 1)])
            .collect();
        let misses = codes.iter().any(|&c| {
            let single = (0..3).any(|i| {
                let mut d = c;
                d[i] ^= 1;
                valid(d)
            });
            let swap = (0..2).any(|i| {
                let mut d = c;
                d.swap(i, i + 1);
                d != c && valid(d)
            });
            single || swap
        });
        assert!(misses, "f = {f:04b} would catch everything");
    }
    assert_eq!(
        Alphabet::new("01").unwrap_err(),
        FormatError::AlphabetSize { len: 2 }
    );
}

/// Reference models written from the definitions, independent of the crate's tables.
fn reference_check(n: usize, body: &[usize]) -> usize {
    let r = body.len();
    if n == 32 {
        // Σ αʲ·dⱼ = 0 over GF(32), α a root of x⁵ + x² + 1.
        let times_alpha = |mut a: usize, j: usize| {
            for _ in 0..j {
                a <<= 1;
                if a & 32 != 0 {
                    a ^= 0b100101;
                }
            }
            a
        };
        let s = body
            .iter()
            .enumerate()
            .fold(0, |s, (j, &d)| s ^ times_alpha(d, j));
        (0..32).find(|&c| times_alpha(c, r) == s).unwrap()
    } else {
        // Odd n: Σ 2ʲ·dⱼ ≡ 0 (mod n).
        assert!(n % 2 == 1);
        let pow2 = |j: usize| (0..j).fold(1, |p, _| p * 2 % n);
        let s = body
            .iter()
            .enumerate()
            .fold(0, |s, (j, &d)| (s + pow2(j) * d) % n);
        (0..n).find(|&c| (s + pow2(r) * c) % n == 0).unwrap()
    }
}

fn symbols_of(a: &Alphabet, body: &[usize]) -> String {
    let s: Vec<char> = a.symbols().chars().collect();
    body.iter().map(|&d| s[d]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn check_characters_match_the_reference_models(
        n in prop::sample::select(vec![3usize, 5, 9, 15, 25, 31, 32, 35]),
        raw in prop::collection::vec(0usize..1000, 0..31),
    ) {
        let a = if n == 32 { Alphabet::crockford() } else { alphabet(n) };
        let body: Vec<usize> = raw.iter().map(|d| d % n).collect();
        let want = a.symbols().chars().nth(reference_check(n, &body)).unwrap();
        prop_assert_eq!(a.check_character(&symbols_of(&a, &body)), Ok(want));
    }

    #[test]
    fn every_single_error_and_adjacent_swap_is_caught_in_long_codes(
        n in 3usize..=36,
        raw in prop::collection::vec(0usize..1000, 1..31),
    ) {
        let a = alphabet(n);
        let body: Vec<usize> = raw.iter().map(|d| d % n).collect();
        let body_s = symbols_of(&a, &body);
        let mut code: Vec<char> = body_s.chars().collect();
        code.push(a.check_character(&body_s).unwrap());
        let symbols: Vec<char> = a.symbols().chars().collect();
        for bad in one_error_away(&code, &symbols) {
            prop_assert_eq!(a.passes_check(&bad), Ok(false));
        }
    }
}

/// A format of random shape: alphabet, prefix, suffix, length, grouping or a pattern, check.
fn any_format() -> impl Strategy<Value = CodeFormat> {
    (
        prop::sample::select(vec![10usize, 12, 16, 20, 23, 26, 31, 34, 36]),
        prop::sample::select(vec!["", "SALE-", "x9", "CN_"]),
        prop::sample::select(vec!["", "-2026", "_z"]),
        0usize..6,
        prop::option::of(1usize..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_filter_map(
            "a valid format",
            |(n, prefix, suffix, extra, group, check, crockford)| {
                let a = if crockford && n == 32 {
                    Alphabet::crockford()
                } else {
                    Alphabet::new(&ALNUM[..n]).ok()?
                };
                // Enough random characters for 40 bits, plus a few.
                let need = (40.0 / a.bits_per_symbol()).ceil() as usize + usize::from(check);
                let mut b = CodeFormat::builder()
                    .alphabet(a)
                    .prefix(prefix)
                    .suffix(suffix)
                    .length(need + extra)
                    .check(check);
                b = match group {
                    Some(g) => b.group(g),
                    None => b.ungrouped(),
                };
                b.build().ok()
            },
        )
}

/// Checks that `code` has the format's shape: its length, its fixed characters, symbols of the
/// alphabet in its `#`s.
fn matches_pattern(f: &CodeFormat, code: &Code) -> bool {
    code.as_str().len() == f.pattern().len()
        && code
            .as_str()
            .chars()
            .zip(f.pattern().chars())
            .all(|(c, p)| {
                if p == '#' {
                    f.alphabet().symbols().contains(c)
                } else {
                    c == p
                }
            })
}

/// The code as a buyer might type it: random case, full width, separators anywhere, look-alikes.
fn messed_up(f: &CodeFormat, code: &Code, choices: &[u8]) -> String {
    let lookalikes = f.alphabet().lookalikes();
    let mut out = String::new();
    let mut k = 0;
    let mut pick = || {
        k += 1;
        choices[k % choices.len()]
    };
    for (c, p) in code.as_str().chars().zip(f.pattern().chars()) {
        let choice = pick();
        if choice % 5 == 0 {
            out.push(SEPARATORS[pick() as usize % SEPARATORS.len()]);
        }
        if choice % 7 == 0 {
            out.push(['\u{3000}', ' ', '\t'][pick() as usize % 3]);
        }
        if c == '-' || c == '_' {
            // Separators may be dropped, doubled or replaced.
            match pick() % 3 {
                0 => {}
                1 => out.push_str("——"),
                _ => out.push('－'),
            }
            continue;
        }
        let mut c = c;
        if p == '#' && pick() % 2 == 0 {
            if let Some(&(from, _)) = lookalikes.iter().find(|(_, to)| *to == c) {
                c = from;
            }
        }
        if pick() % 2 == 0 {
            c = c.to_ascii_lowercase();
        }
        if pick() % 3 == 0 {
            c = char::from_u32(c as u32 + 0xFEE0).unwrap();
        }
        out.push(c);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn generated_batches_are_unique_match_the_pattern_and_read_back(
        f in any_format(),
        seed in any::<u64>(),
        count in 1usize..300,
    ) {
        let codes = f.generate(count, SplitMix(seed)).unwrap();
        prop_assert_eq!(codes.len(), count);
        let distinct: HashSet<&Code> = codes.iter().collect();
        prop_assert_eq!(distinct.len(), count);
        for code in &codes {
            prop_assert!(matches_pattern(&f, code), "{} vs {}", code, f.pattern());
            prop_assert_eq!(&f.parse(code.as_str()).unwrap(), code);
            let promo = PromoCode::try_from(code).unwrap();
            prop_assert_eq!(promo.as_str(), code.as_str());
        }
    }

    #[test]
    fn seeded_generation_is_reproducible(f in any_format(), seed in any::<u64>()) {
        let a = f.generate(50, SplitMix(seed)).unwrap();
        let b = f.generate(50, SplitMix(seed)).unwrap();
        prop_assert_eq!(&a, &b);
        let streamed: Vec<Code> = f.stream(50, SplitMix(seed)).unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(&a, &streamed);
        let batch = f.generate_batch(50, SplitMix(seed)).unwrap();
        prop_assert_eq!(batch.len(), 50);
        prop_assert!(batch.iter().eq(a.iter().map(Code::as_str)));
        prop_assert_eq!(&batch.to_codes(), &a);
        let c = f.generate(50, SplitMix(seed ^ 1)).unwrap();
        prop_assert_ne!(a, c);
    }

    #[test]
    fn normalisation_inverts_formatting(
        f in any_format(),
        seed in any::<u64>(),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let code = f.generate(1, SplitMix(seed)).unwrap().remove(0);
        let typed = messed_up(&f, &code, &choices);
        prop_assert_eq!(f.parse(&typed), Ok(code.clone()), "typed {:?}", typed);
    }

    #[test]
    fn normalisation_is_idempotent(
        f in any_format(),
        seed in any::<u64>(),
        choices in prop::collection::vec(any::<u8>(), 1..64),
        noise in "[-a-zA-Z0-9 ＡＢ０１－　—_]{0,40}",
    ) {
        let code = f.generate(1, SplitMix(seed)).unwrap().remove(0);
        for typed in [messed_up(&f, &code, &choices), noise, code.to_string()] {
            if let Ok(once) = f.parse(&typed) {
                prop_assert_eq!(f.parse(once.as_str()), Ok(once.clone()));
            }
        }
    }

    #[test]
    fn every_typo_in_a_generated_code_is_refused(f in any_format(), seed in any::<u64>()) {
        if !f.has_check() {
            return Ok(());
        }
        let code = f.generate(1, SplitMix(seed)).unwrap().remove(0);
        // The letters and digits as typed, separators left out.
        let typed: Vec<char> = code.as_str().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let mut others: Vec<char> = ALNUM.chars().collect();
        others.extend(f.alphabet().symbols().chars());
        for bad in one_error_away(&typed, &others) {
            // A look-alike of the same symbol is no typo.
            let same = bad.chars().zip(&typed).all(|(b, &t)| {
                b == t || f.alphabet().read(b) == Some(t)
            });
            if same {
                continue;
            }
            prop_assert!(f.parse(&bad).is_err(), "{} → {} accepted", code, bad);
        }
    }
}

#[test]
fn a_million_codes_are_unique() {
    let f = CodeFormat::default();
    let codes = f.generate(1_000_000, SplitMix(42)).unwrap();
    assert_eq!(codes.len(), 1_000_000);
    let distinct: HashSet<&str> = codes.iter().map(Code::as_str).collect();
    assert_eq!(distinct.len(), 1_000_000);
}

#[test]
fn a_batch_beyond_the_capacity_is_refused_up_front() {
    let f = CodeFormat::builder()
        .alphabet(Alphabet::digits())
        .length(14)
        .build()
        .unwrap();
    // 13 random digits: 10¹³ codes, capacity 10⁷ at the default margin.
    assert_eq!(f.capacity(), 10_000_000);
    let err = f.stream(10_000_001, SplitMix(1)).unwrap_err();
    assert_eq!(
        err,
        GenerateError::TooMany {
            requested: 10_000_001,
            excluded: 0,
            capacity: 10_000_000,
            margin: 1_000_000
        }
    );
}

#[test]
fn the_operating_systems_source_gives_unique_codes() {
    let f = CodeFormat::from_pattern("SALE-###-###-###").unwrap();
    let codes = f.generate(10_000, OsRandom).unwrap();
    let distinct: HashSet<&Code> = codes.iter().collect();
    assert_eq!(distinct.len(), 10_000);
    assert!(codes.iter().all(|c| matches_pattern(&f, c)));
    // Two batches from the OS differ.
    assert_ne!(codes, f.generate(10_000, OsRandom).unwrap());
}

#[test]
fn formats_below_the_entropy_floor_are_refused_and_the_table_holds() {
    // The entropy table of the docs.
    let rows = [
        (Alphabet::crockford(), 9, 40.0),
        (Alphabet::crockford(), 12, 55.0),
        (Alphabet::crockford(), 16, 75.0),
    ];
    for (a, len, bits) in rows {
        let f = CodeFormat::builder()
            .alphabet(a)
            .length(len)
            .build()
            .unwrap();
        assert_eq!(f.entropy_bits(), bits);
    }
    let digits = CodeFormat::builder()
        .alphabet(Alphabet::digits())
        .length(14)
        .build()
        .unwrap();
    assert!((digits.entropy_bits() - 43.18).abs() < 0.01);
    assert!(matches!(
        CodeFormat::builder()
            .alphabet(Alphabet::digits())
            .length(13)
            .build(),
        Err(FormatError::TooFewBits { minimum: 40, .. })
    ));
    assert!(matches!(
        CodeFormat::builder().length(12).min_bits(60).build(),
        Err(FormatError::TooFewBits { minimum: 60, .. })
    ));
}

#[test]
fn typed_rejections_do_not_depend_on_which_codes_exist() {
    // A parse error is a function of the typed text and the public format alone.
    let f = CodeFormat::default();
    let a = f.generate(1_000, SplitMix(1)).unwrap();
    let b = f.generate(1_000, SplitMix(2)).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let mut bad = x.to_string();
        bad.push('Z');
        let mut bad2 = y.to_string();
        bad2.push('Z');
        assert_eq!(f.parse(&bad), f.parse(&bad2));
    }
    assert_eq!(
        f.parse("ＳＡＬＥ－２０２６"),
        Err(ParseError::Length {
            expected: 12,
            found: 8
        })
    );
}

#[test]
fn formats_round_trip_through_json_and_json_is_checked() {
    let f = CodeFormat::builder()
        .alphabet(Alphabet::digits())
        .prefix("GC-")
        .length(16)
        .group(4)
        .min_bits(45)
        .build()
        .unwrap();
    let json = serde_json::to_value(&f).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "pattern": "GC-####-####-####-####",
            "alphabet": "0123456789",
            "check": true,
            "min_bits": 45,
            "min_guesses_per_hit": 1_000_000
        })
    );
    let back: CodeFormat = serde_json::from_value(json).unwrap();
    assert_eq!(back, f);
    // Defaults fill in; the same checks as the builder refuse what it refuses.
    let short: CodeFormat =
        serde_json::from_value(serde_json::json!({"pattern": "SALE-###-###-###"})).unwrap();
    assert_eq!(short, CodeFormat::from_pattern("SALE-###-###-###").unwrap());
    for bad in [
        serde_json::json!({"pattern": "SALE-####"}),
        serde_json::json!({"pattern": "########", "alphabet": "01"}),
        serde_json::json!({"pattern": "##########", "min_bits": 30}),
        serde_json::json!({"pattern": "##########", "colour": "red"}),
    ] {
        assert!(
            serde_json::from_value::<CodeFormat>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
