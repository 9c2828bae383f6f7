//! Experiment assignment: pinned to an independent implementation, exact in its mapping,
//! converging to the weights, stable under re-weighting in the documented ways.

use coupons::analytics::experiment::{Arm, ArmTag, Experiment, ExperimentId, Role};
use coupons::analytics::siphash::{REFERENCE_KEY, siphash24};
use coupons::attributes::Attributes;
use coupons::id::UserId;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn experiment(id: &str, salt: &str, weights: &[u64]) -> Experiment {
    let arms = weights.iter().enumerate().map(|(i, &w)| {
        let role = if i == 0 {
            Role::Control
        } else {
            Role::Treatment
        };
        Arm::new(format!("arm-{i}"), role, Decimal::from(w)).unwrap()
    });
    Experiment::new(ExperimentId::new(id).unwrap(), arms)
        .unwrap()
        .with_salt(salt)
        .unwrap()
}

/// (experiment, salt, user, weights, hash, bucket, arm), computed by a separate, pure-Python
/// SipHash-2-4 (checked against the 64 reference vectors first) over the message documented in
/// `coupons::analytics::experiment`: for each of experiment, salt, user, the UTF-8 length as
/// 8 little-endian bytes and the bytes; key 00..0f; bucket = (hash * total) >> 64.
/// If one of these changes, every running experiment reshuffles its users: never update
/// these values to make a test pass.
type Vector = (
    &'static str,
    &'static str,
    &'static str,
    &'static [u64],
    u64,
    u64,
    usize,
);

const STABILITY: &[Vector] = &[
    (
        "spend-200-face-value",
        "",
        "alice",
        &[10, 45, 45],
        0x8ee0aec6193e25ad,
        55,
        2,
    ),
    (
        "spend-200-face-value",
        "",
        "bob",
        &[10, 45, 45],
        0x1aa091136140c530,
        10,
        1,
    ),
    (
        "spend-200-face-value",
        "",
        "carol",
        &[10, 45, 45],
        0x3d321ef52bdc1057,
        23,
        1,
    ),
    (
        "spend-200-face-value",
        "",
        "u-000001",
        &[10, 45, 45],
        0x1bb1da3a579f1413,
        10,
        1,
    ),
    (
        "spend-200-face-value",
        "",
        "u-999999",
        &[10, 45, 45],
        0xee2aa72ade13fbd4,
        93,
        2,
    ),
    (
        "spend-200-face-value",
        "",
        "用户-42",
        &[10, 45, 45],
        0x42a1c719c5da568c,
        26,
        1,
    ),
    (
        "spend-200-face-value",
        "",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[10, 45, 45],
        0x86721f813b31e493,
        52,
        1,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "alice",
        &[10, 45, 45],
        0x66f3f4c63ba23aae,
        40,
        1,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "bob",
        &[10, 45, 45],
        0x713fbe1a1fa25d7d,
        44,
        1,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "carol",
        &[10, 45, 45],
        0x8ba6692dd1850eec,
        54,
        1,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "u-000001",
        &[10, 45, 45],
        0x9e795b57f443fd37,
        61,
        2,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "u-999999",
        &[10, 45, 45],
        0xe0d619642c955982,
        87,
        2,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "用户-42",
        &[10, 45, 45],
        0xf59b012f8326c0e4,
        95,
        2,
    ),
    (
        "spend-200-face-value",
        "2026-05",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[10, 45, 45],
        0x180f92f87b6ea79c,
        9,
        0,
    ),
    ("welcome", "", "alice", &[1, 1], 0x7edb64815e4763c8, 0, 0),
    ("welcome", "", "bob", &[1, 1], 0x16170a1429d974c2, 0, 0),
    ("welcome", "", "carol", &[1, 1], 0xbc04ca26f87373ed, 1, 1),
    ("welcome", "", "u-000001", &[1, 1], 0xa0973aac843b7a5e, 1, 1),
    ("welcome", "", "u-999999", &[1, 1], 0x17bd084296f1246b, 0, 0),
    ("welcome", "", "用户-42", &[1, 1], 0xda8c4c462d8695b4, 1, 1),
    (
        "welcome",
        "",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[1, 1],
        0xe5e40b711d774a06,
        1,
        1,
    ),
    (
        "新客礼包",
        "",
        "alice",
        &[1, 1, 1],
        0xfae136bf018429fe,
        2,
        2,
    ),
    ("新客礼包", "", "bob", &[1, 1, 1], 0xa05c1361bb85dd8c, 1, 1),
    (
        "新客礼包",
        "",
        "carol",
        &[1, 1, 1],
        0x589fdb1e4d004d86,
        1,
        1,
    ),
    (
        "新客礼包",
        "",
        "u-000001",
        &[1, 1, 1],
        0x2b42b399522299d5,
        0,
        0,
    ),
    (
        "新客礼包",
        "",
        "u-999999",
        &[1, 1, 1],
        0x94f317458dfc6549,
        1,
        1,
    ),
    (
        "新客礼包",
        "",
        "用户-42",
        &[1, 1, 1],
        0x9044ebeef23f3d0f,
        1,
        1,
    ),
    (
        "新客礼包",
        "",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[1, 1, 1],
        0xe853d2c2229633e8,
        2,
        2,
    ),
    ("e", "s", "alice", &[3, 7], 0x44236614a988d605, 2, 0),
    ("e", "s", "bob", &[3, 7], 0x37d15598e68d98f3, 2, 0),
    ("e", "s", "carol", &[3, 7], 0x68de2fe9006b2ff6, 4, 1),
    ("e", "s", "u-000001", &[3, 7], 0xac2b39071184108f, 6, 1),
    ("e", "s", "u-999999", &[3, 7], 0xa9827513b4a15f24, 6, 1),
    ("e", "s", "用户-42", &[3, 7], 0x4dabb168bd88235a, 3, 1),
    (
        "e",
        "s",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        &[3, 7],
        0x3aaae94e155a6d3f,
        2,
        0,
    ),
];

#[test]
fn assignments_match_the_pinned_vectors() {
    for &(id, salt, user, weights, hash, bucket, arm) in STABILITY {
        let e = experiment(id, salt, weights);
        assert_eq!(e.hash(user), hash, "{id}/{salt}/{user}");
        assert_eq!(e.bucket(user), bucket, "{id}/{salt}/{user}");
        assert_eq!(e.assign_unit(user).index(), arm, "{id}/{salt}/{user}");
        let u = UserId::new(user).unwrap();
        assert_eq!(e.assign(&u).index(), arm);
    }
}

#[test]
fn siphash_matches_the_papers_example() {
    // SipHash paper, Appendix A: key 00..0f, message 00..0e.
    let msg: Vec<u8> = (0u8..15).collect();
    assert_eq!(siphash24(REFERENCE_KEY, &msg), 0xa129ca6149be45e5);
}

#[test]
fn hash_boundaries_fall_exactly_where_documented() {
    // Arm i owns the hashes h with ceil(W_{i-1} 2^64 / T) <= h < ceil(W_i 2^64 / T).
    for weights in [
        &[1u64, 1][..],
        &[1, 1, 1],
        &[10, 45, 45],
        &[1, 999_999],
        &[7, 3, 5, 11],
    ] {
        let e = experiment("bounds", "", weights);
        let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
        let mut cumulative = 0u128;
        for (i, &w) in weights.iter().enumerate().take(weights.len() - 1) {
            cumulative += u128::from(w);
            let first_of_next = (cumulative << 64).div_ceil(total);
            let h = u64::try_from(first_of_next).unwrap();
            assert_eq!(e.assign_hash(h).index(), i + 1, "{weights:?}");
            assert_eq!(e.assign_hash(h - 1).index(), i, "{weights:?}");
            // |count - share| < 1 hash value out of 2^64.
            let start = if i == 0 {
                0
            } else {
                let prev = cumulative - u128::from(w);
                (prev << 64).div_ceil(total)
            };
            let count = first_of_next - start;
            let exact_times_total = u128::from(w) << 64; // count * total should be within total
            let diff = (count * total).abs_diff(exact_times_total);
            assert!(diff < total, "{weights:?} arm {i}");
        }
        assert_eq!(e.assign_hash(0).index(), 0);
        assert_eq!(e.assign_hash(u64::MAX).index(), weights.len() - 1);
    }
}

#[test]
fn a_holdout_is_the_baseline_and_gets_no_coupon() {
    let e = Experiment::new(
        ExperimentId::new("holdout").unwrap(),
        [
            Arm::treatment("save-20", 45).unwrap(),
            Arm::holdout("holdout", 10).unwrap(),
            Arm::treatment("save-25", 45).unwrap(),
        ],
    )
    .unwrap()
    .with_total(100)
    .unwrap();
    assert_eq!(e.baseline().0, 1);
    assert_eq!(e.baseline().1.role(), Role::Holdout);
    let mut holdout = 0;
    for i in 0..20_000 {
        let a = e.assign_unit(&format!("u{i}"));
        assert_eq!(a.issues_coupon(), a.role() != Role::Holdout);
        holdout += usize::from(a.role() == Role::Holdout);
    }
    // 10 % of 20,000: sd = sqrt(20000 * 0.1 * 0.9) ≈ 42.
    assert!((2000i64 - holdout as i64).abs() < 5 * 42, "{holdout}");
}

#[test]
fn the_recorded_arm_reads_back_from_the_coupon() {
    let e = experiment("record", "", &[1, 1, 1]);
    for i in 0..100 {
        let a = e.assign_unit(&format!("u{i}"));
        let mut attrs = Attributes::new();
        a.record(&mut attrs).unwrap();
        let tag = ArmTag::read(&attrs).unwrap().unwrap();
        assert_eq!(tag.experiment.as_str(), "record");
        assert_eq!(e.arm_index(tag.arm.as_str()), Some(a.index()));
    }
}

#[test]
fn a_serialised_experiment_assigns_alike() {
    let e = experiment("json", "salt", &[2, 3, 5]);
    let back: Experiment = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    for i in 0..1000 {
        let u = format!("u{i}");
        assert_eq!(e.assign_unit(&u).index(), back.assign_unit(&u).index());
    }
}

fn weights_strategy() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(1u64..1000, 2..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Each arm's share of 20,000 users is within 5 standard deviations of its weight's share.
    #[test]
    fn shares_converge_to_the_weights(weights in weights_strategy(), salt in "[a-z0-9]{0,8}") {
        let e = experiment("converge", &salt, &weights);
        let n = 20_000u32;
        let mut counts = vec![0u32; weights.len()];
        for i in 0..n {
            counts[e.assign_unit(&format!("user-{i}")).index()] += 1;
        }
        let total: u64 = weights.iter().sum();
        for (c, w) in counts.iter().zip(&weights) {
            let p = *w as f64 / total as f64;
            let sd = (f64::from(n) * p * (1.0 - p)).sqrt();
            let dev = (f64::from(*c) - f64::from(n) * p).abs();
            prop_assert!(dev <= 5.0 * sd + 1.0, "weights {:?} counts {:?}", weights, counts);
        }
    }

    /// Scaling every weight by the same factor, or writing them as decimals, changes nobody.
    #[test]
    fn only_the_proportions_of_the_weights_matter(
        weights in weights_strategy(),
        factor in 1u64..1000,
        users in proptest::collection::vec("[a-z0-9-]{1,20}", 50),
    ) {
        let a = experiment("scale", "", &weights);
        let scaled: Vec<u64> = weights.iter().map(|w| w * factor).collect();
        let b = experiment("scale", "", &scaled);
        let decimal_arms = weights.iter().enumerate().map(|(i, &w)| {
            let role = if i == 0 { Role::Control } else { Role::Treatment };
            // w / 1000 as a decimal: 0.001 .. 0.999
            Arm::new(format!("arm-{i}"), role, Decimal::new(w as i64, 3)).unwrap()
        });
        let c = Experiment::new(ExperimentId::new("scale").unwrap(), decimal_arms).unwrap();
        for u in &users {
            let i = a.assign_unit(u).index();
            prop_assert_eq!(i, b.assign_unit(u).index());
            prop_assert_eq!(i, c.assign_unit(u).index());
        }
    }

    /// Ramping up the last arm moves users into it, never out of it, and moves no one between
    /// the other arms unless their range shrank.
    #[test]
    fn ramping_up_the_last_arm_only_moves_users_into_it(
        control in 1u64..1000,
        before in 1u64..1000,
        extra in 1u64..1000,
        users in proptest::collection::vec("[a-z0-9-]{1,20}", 200),
    ) {
        let small = experiment("ramp", "", &[control, before]);
        let large = experiment("ramp", "", &[control, before + extra]);
        for u in &users {
            let (s, l) = (small.assign_unit(u).index(), large.assign_unit(u).index());
            if s == 1 {
                prop_assert_eq!(l, 1, "{} left the growing arm", u);
            }
        }
    }

    /// A new salt re-randomises: the arms under two salts are independent (a 2×2 chi-square
    /// test of independence over 4,000 users does not reject at 10⁻⁴).
    #[test]
    fn salts_are_independent(s1 in "[a-z]{1,6}", s2 in "[A-Z]{1,6}") {
        let a = experiment("salted", &s1, &[1, 1]);
        let b = experiment("salted", &s2, &[1, 1]);
        let mut table = [[0f64; 2]; 2];
        let n = 4000;
        for i in 0..n {
            let u = format!("u{i}");
            table[a.assign_unit(&u).index()][b.assign_unit(&u).index()] += 1.0;
        }
        let rows = [table[0][0] + table[0][1], table[1][0] + table[1][1]];
        let cols = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
        let mut chi2 = 0.0;
        for r in 0..2 {
            for c in 0..2 {
                let e = rows[r] * cols[c] / f64::from(n);
                chi2 += (table[r][c] - e).powi(2) / e;
            }
        }
        // chi-square with 1 df: P(X > 15.14) = 1e-4.
        prop_assert!(chi2 < 15.14, "chi2 {} table {:?}", chi2, table);
    }

    /// The same inputs give the same arm, whether the experiment is cloned, rebuilt or
    /// reached through assign / assign_unit / assign_hash.
    #[test]
    fn assignment_is_a_pure_function(weights in weights_strategy(), user in "[^\\p{C}]{1,40}") {
        prop_assume!(user.trim() == user);
        let a = experiment("pure", "x", &weights);
        let b = experiment("pure", "x", &weights);
        let i = a.assign_unit(&user).index();
        prop_assert_eq!(i, b.clone().assign_unit(&user).index());
        prop_assert_eq!(i, a.assign_hash(a.hash(&user)).index());
        prop_assert_eq!(i, a.assign(&UserId::new(&user).unwrap()).index());
    }
}
