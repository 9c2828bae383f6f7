//! The check character: a Verhoeff-style check over a group of the alphabet's order.
//!
//! A code's symbols `d₀ d₁ … d_r` (the last one the check character) are read as elements of a
//! group `G` with `|G| = n`, the alphabet's size, and the code is valid when
//!
//! ```text
//! φ⁰(d₀) · φ¹(d₁) · … · φʳ(d_r) = e
//! ```
//!
//! where `φ` is a permutation of `G` that is **anti-symmetric**: `x · φ(y) ≠ y · φ(x)` for all
//! `x ≠ y`. Then
//!
//! - a single wrong character is always detected (in a group, `a·u·b = a·u'·b` forces `u = u'`,
//!   and every `φʲ` is a bijection), and
//! - a swap of two different neighbours `d_j d_{j+1}` is always detected (with `x = φʲ(d_j)`,
//!   `y = φʲ(d_{j+1})` the two products differ exactly when `x · φ(y) ≠ y · φ(x)`).
//!
//! The check character is the one symbol `c = φ⁻ʳ((φ⁰(d₀) ⋯ φʳ⁻¹(d_{r-1}))⁻¹)`.
//!
//! Groups and mappings by the alphabet's size `n` (Gallian & Mullin, *Groups with
//! antisymmetric mappings*, 1995, show which groups admit one):
//!
//! | `n` | group | `φ` |
//! | --- | --- | --- |
//! | odd | `Z_n` | `x ↦ 2x` |
//! | `2^k · m`, `k ≥ 2`, `m` odd | `GF(2^k)⁺ × Z_m` | `(a, b) ↦ (α·a, 2b)`, `α` a root of the field's polynomial |
//! | `2m`, `m ≥ 3` odd | dihedral `D_m` | rotations `ρᵢ ↦ ρ₋ᵢ`, reflections `τᵢ ↦ τᵢ₊₁` |
//! | 2 | none exists | refused |
//!
//! For the default base-32 alphabet the check is a parity symbol over `GF(32)`:
//! `Σ αʲ·d_j = 0` with `α` a root of `x⁵ + x² + 1`, which also catches every swap of two
//! characters at any distance below 31 and every twin error (`aa → bb`).

/// The largest alphabet (the 36 letters and digits).
pub(crate) const MAX_SYMBOLS: usize = 36;
/// Code positions the tables cover: a code has at most 32 characters.
pub(crate) const MAX_POSITIONS: usize = 32;
/// Table rows are this wide, so that an index masked with `W - 1` is always in bounds.
const W: usize = 64;

/// Why an alphabet size has no check scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoScheme {
    /// Fewer than three or more than 36 symbols.
    Size,
}

/// The tables of one alphabet size: the group's multiplication and inverses, and `φʲ` and its
/// inverse for every position.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CheckTables {
    n: u8,
    /// The group is `GF(2^k)⁺`: the product is XOR (the same as `mul`, one load fewer).
    xor: bool,
    mul: [[u8; W]; W],
    inv: [u8; W],
    perm: [[u8; W]; MAX_POSITIONS],
    perm_inv: [[u8; W]; MAX_POSITIONS],
}

impl std::fmt::Debug for CheckTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckTables").field("n", &self.n).finish()
    }
}

/// The group of order `n` and its anti-symmetric mapping, as functions on `0..n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// `Z_n` for odd `n`, `φ(x) = 2x`.
    Cyclic { n: u8 },
    /// `GF(2^k)⁺ × Z_m`: element `z = a·m + b`; `poly` is the field's reduction polynomial.
    FieldTimesCyclic { k: u8, poly: u8, m: u8 },
    /// The dihedral group `D_m` of order `2m`, `m` odd: `0..m` rotations, `m..2m` reflections.
    Dihedral { m: u8 },
}

impl Group {
    /// The group used for an alphabet of `n` symbols.
    pub(crate) fn for_size(n: usize) -> Result<Group, NoScheme> {
        if !(3..=MAX_SYMBOLS).contains(&n) {
            return Err(NoScheme::Size);
        }
        let n8 = n as u8;
        if n % 2 == 1 {
            return Ok(Group::Cyclic { n: n8 });
        }
        let k = n.trailing_zeros() as u8;
        let m = (n >> k) as u8;
        if k == 1 {
            return Ok(Group::Dihedral { m });
        }
        // Irreducible polynomials of degree 2..=5 (n ≤ 36 means 2^k ≤ 32).
        let poly = match k {
            2 => 0b111,
            3 => 0b1011,
            4 => 0b1_0011,
            _ => 0b10_0101,
        };
        Ok(Group::FieldTimesCyclic { k, poly, m })
    }

    pub(crate) fn order(self) -> usize {
        match self {
            Group::Cyclic { n } => n as usize,
            Group::FieldTimesCyclic { k, m, .. } => (1usize << k) * m as usize,
            Group::Dihedral { m } => 2 * m as usize,
        }
    }

    /// `x · y`.
    pub(crate) fn mul(self, x: u8, y: u8) -> u8 {
        match self {
            Group::Cyclic { n } => ((x as u16 + y as u16) % n as u16) as u8,
            Group::FieldTimesCyclic { m, .. } => {
                let (xa, xb) = (x / m, x % m);
                let (ya, yb) = (y / m, y % m);
                (xa ^ ya) * m + (xb + yb) % m
            }
            Group::Dihedral { m } => {
                // ρᵢ: z ↦ z + i, τᵢ: z ↦ i − z; the product is composition, x after y.
                let (xr, xi) = (x < m, x % m);
                let (yr, yi) = (y < m, y % m);
                let add = |a: u8, b: u8| (a + b) % m;
                let sub = |a: u8, b: u8| (a + m - b) % m;
                match (xr, yr) {
                    (true, true) => add(xi, yi),
                    (true, false) => m + add(xi, yi),
                    (false, true) => m + sub(xi, yi),
                    (false, false) => sub(xi, yi),
                }
            }
        }
    }

    /// `φ(x)`.
    pub(crate) fn phi(self, x: u8) -> u8 {
        match self {
            Group::Cyclic { n } => ((2 * x as u16) % n as u16) as u8,
            Group::FieldTimesCyclic { k, poly, m } => {
                let (a, b) = (x / m, x % m);
                let mut a2 = a << 1;
                if a2 >> k != 0 {
                    a2 ^= poly;
                }
                a2 * m + (2 * b) % m
            }
            Group::Dihedral { m } => {
                if x < m {
                    (m - x) % m
                } else {
                    m + (x - m + 1) % m
                }
            }
        }
    }
}

impl CheckTables {
    /// The tables for an alphabet of `n` symbols.
    pub(crate) fn new(n: usize) -> Result<CheckTables, NoScheme> {
        Ok(CheckTables::from_group(Group::for_size(n)?))
    }

    /// The tables of a group (of order at most 36).
    pub(crate) fn from_group(g: Group) -> CheckTables {
        let n = g.order().min(MAX_SYMBOLS);
        let n8 = n as u8;
        let mut t = CheckTables {
            n: n8,
            xor: matches!(g, Group::FieldTimesCyclic { m: 1, .. }),
            mul: [[0; W]; W],
            inv: [0; W],
            perm: [[0; W]; MAX_POSITIONS],
            perm_inv: [[0; W]; MAX_POSITIONS],
        };
        for (x, row) in (0..n8).zip(t.mul.iter_mut()) {
            for (y, cell) in (0..n8).zip(row.iter_mut()) {
                *cell = g.mul(x, y);
                if *cell == 0 {
                    if let Some(slot) = t.inv.get_mut(x as usize) {
                        *slot = y;
                    }
                }
            }
        }
        // perm[j] = φʲ; perm_inv[j] its inverse.
        let mut current: [u8; W] = [0; W];
        for (x, c) in (0..n8).zip(current.iter_mut()) {
            *c = x;
        }
        for (p, pi) in t.perm.iter_mut().zip(t.perm_inv.iter_mut()) {
            *p = current;
            for x in 0..n8 {
                let y = current.get(x as usize).copied().unwrap_or(0);
                if let Some(slot) = pi.get_mut(y as usize) {
                    *slot = x;
                }
            }
            for c in current.iter_mut().take(n) {
                *c = g.phi(*c);
            }
        }
        t
    }

    /// The running product after symbol `d` at position `j`, from product `p`. Indices
    /// are masked to the tables' width (every argument is in range anyway), so nothing here
    /// can panic.
    #[inline]
    pub(crate) fn step(&self, p: u8, j: usize, d: u8) -> u8 {
        let u = self.perm[j & (MAX_POSITIONS - 1)][d as usize & (W - 1)];
        if self.xor {
            p ^ u
        } else {
            self.mul[p as usize & (W - 1)][u as usize & (W - 1)]
        }
    }

    /// The product of `symbols` (each `< n`), position 0 first.
    #[inline]
    pub(crate) fn product(&self, symbols: &[u8]) -> u8 {
        let mut p = 0;
        for (j, &d) in symbols.iter().enumerate() {
            p = self.step(p, j, d);
        }
        p
    }

    /// The check character for a code whose other symbols multiply to `p` and whose check
    /// character sits at position `j`.
    #[inline]
    pub(crate) fn check_for(&self, p: u8, j: usize) -> u8 {
        let want = self.inv[p as usize & (W - 1)];
        self.perm_inv[j & (MAX_POSITIONS - 1)][want as usize & (W - 1)]
    }

    /// Whether `symbols`, the last one the check character, form a valid code.
    #[inline]
    pub(crate) fn is_valid(&self, symbols: &[u8]) -> bool {
        self.product(symbols) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(g: Group) -> std::ops::Range<u8> {
        0..g.order() as u8
    }

    #[test]
    fn every_size_from_3_to_36_has_a_group_with_an_anti_symmetric_mapping() {
        for n in 3..=MAX_SYMBOLS {
            let g = Group::for_size(n).unwrap();
            assert_eq!(g.order(), n);
            // Closure, identity 0, inverses, associativity: a group.
            for x in elements(g) {
                assert_eq!(g.mul(0, x), x, "n={n}");
                assert_eq!(g.mul(x, 0), x, "n={n}");
                assert!(elements(g).any(|y| g.mul(x, y) == 0), "n={n}");
                for y in elements(g) {
                    assert!(g.mul(x, y) < n as u8);
                    for z in elements(g) {
                        assert_eq!(g.mul(g.mul(x, y), z), g.mul(x, g.mul(y, z)), "n={n}");
                    }
                }
            }
            // φ is a permutation …
            let mut seen = vec![false; n];
            for x in elements(g) {
                seen[g.phi(x) as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "n={n}: φ is not a permutation");
            // … and anti-symmetric.
            for x in elements(g) {
                for y in elements(g) {
                    if x != y {
                        assert_ne!(g.mul(x, g.phi(y)), g.mul(y, g.phi(x)), "n={n} x={x} y={y}");
                    }
                }
            }
        }
    }

    #[test]
    fn sizes_outside_3_to_36_are_refused() {
        for n in [0, 1, 2, 37, 64] {
            assert_eq!(Group::for_size(n), Err(NoScheme::Size));
            assert!(CheckTables::new(n).is_err());
        }
    }

    #[test]
    fn a_group_of_order_2_has_no_anti_symmetric_mapping() {
        // Z_2 is the only group of order 2; try both permutations of it.
        for phi in [[0u8, 1], [1, 0]] {
            let mul = |x: u8, y: u8| x ^ y;
            let anti = (0..2u8).all(|x| {
                (0..2u8).all(|y| x == y || mul(x, phi[y as usize]) != mul(y, phi[x as usize]))
            });
            assert!(!anti);
        }
    }

    #[test]
    fn the_check_character_makes_the_product_the_identity() {
        for n in 3..=MAX_SYMBOLS {
            let t = CheckTables::new(n).unwrap();
            for len in 0..MAX_POSITIONS {
                let body: Vec<u8> = (0..len).map(|i| ((i * 7 + 3) % n) as u8).collect();
                let c = t.check_for(t.product(&body), len);
                let mut code = body.clone();
                code.push(c);
                assert!(t.is_valid(&code), "n={n} len={len}");
            }
        }
    }

    #[test]
    fn the_xor_shortcut_is_the_group_product() {
        for n in [4, 8, 16, 32] {
            let t = CheckTables::new(n).unwrap();
            assert!(t.xor);
            for x in 0..n as u8 {
                for y in 0..n as u8 {
                    assert_eq!(t.mul[x as usize][y as usize], x ^ y);
                }
            }
        }
        assert!(!CheckTables::new(36).unwrap().xor);
        assert!(!CheckTables::new(12).unwrap().xor);
    }

    #[test]
    fn perm_rows_are_powers_of_phi() {
        for n in [5, 10, 32, 36] {
            let g = Group::for_size(n).unwrap();
            let t = CheckTables::new(n).unwrap();
            for x in elements(g) {
                let mut y = x;
                for j in 0..MAX_POSITIONS {
                    assert_eq!(t.perm[j][x as usize], y);
                    assert_eq!(t.perm_inv[j][y as usize], x);
                    y = g.phi(y);
                }
            }
        }
    }
}
