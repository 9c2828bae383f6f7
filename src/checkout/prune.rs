//! Offers that can never change the outcome, dropped before the search.
//!
//! ## Interchangeable slots
//! Two offers *near-equal* when they differ only in priority, template and id: same phase,
//! source and kind rank, same behaviour signature (benefit, scope lines, conditions,
//! exclusivity) and the same stacking group. A *slot* is a maximal run of near-equal offers
//! that are consecutive in the canonical order: no other candidate applies between any two of
//! them.
//!
//! Within a slot, offers are interchangeable in every set. Replace a member `a` of a set by a
//! slot-mate `b` not in it: every other member not in the slot applied before `a` applies
//! before `b` and every one after `a` after `b` (nothing else sits between them), so the order
//! of the others is unchanged; members in the slot are near-equal to `b`, so applying them in
//! any order among themselves applies the same function the same number of times. Every
//! member's saving, hence the total and the validity (every member saves something), is the
//! same. The stacking rules see the same group, source, exclusivity and promotion flags; only
//! the per-order limit of a template tells slot-mates apart. So a slot is, for the search,
//! exactly what a behaviour class is to [`dedup`]: its members form a
//! laminar matroid (at most the group's limit of them, at most `per_order` of each template)
//! whose greedy basis by the tie-break (soonest expiry, then smallest id) dominates every other
//! choice of as many members element by element, and the tie-break prefers it. The offers left
//! out of that basis are never in the unique best set: they are dropped.
//!
//! ## Slots in a group of one
//! In a stacking group whose limit is one, no set holds two of its offers. So near-equal
//! offers `a` and `b` of such a group are interchangeable as soon as every candidate between
//! them in the canonical order is of their group: a set holding `a` holds no other offer of
//! the group, hence none between `a` and `b`, and the argument above goes through word for
//! word. The relation is transitive (between the first and the last of three such offers lie
//! only offers of the group), so within each maximal run of consecutive candidates of one
//! group of limit one, the slots are the classes of near-equal offers, consecutive or not
//! (free-shipping promotions of one scope whose priorities interleave with other scopes'
//! promotions of the same group, say). With an open order a group's members apply together,
//! so the member in the group's place is `a` or `b` and nothing else changes either.
//!
//! Dropping offers can make two slots of near-equal offers adjacent; the pruning runs again
//! until nothing changes (each round removes only offers that are never in the unique best set
//! of what is left, so the best set is the same throughout).

use super::StackingPolicy;
use super::engine::Prepared;
use super::select::dedup;
use crate::hash::FastMap;

/// Whether `a` and `b` are near-equal (see the module docs).
fn near_equal(a: &Prepared, b: &Prepared) -> bool {
    // `order` is (group position, phase, source, priority, kind rank): every part but the
    // priority must agree.
    let (ga, pa, sa, _, ka) = a.order;
    let (gb, pb, sb, _, kb) = b.order;
    (ga, pa, sa, ka) == (gb, pb, sb, kb)
        && a.is_promotion == b.is_promotion
        && a.group == b.group
        && (std::sync::Arc::ptr_eq(&a.shared, &b.shared) || a.sig == b.sig)
}

/// Keeps, of every slot of interchangeable offers, only those the unique best set could use.
pub(crate) fn prune(policy: &StackingPolicy, cands: Vec<Prepared>) -> Vec<Prepared> {
    let mut cands = dedup(policy, cands);
    loop {
        let before = cands.len();
        cands.sort_unstable_by_key(|p| p.rank);
        let slots = slots(policy, &cands);
        for (c, slot) in cands.iter_mut().zip(slots) {
            c.class = slot;
        }
        cands = dedup(policy, cands);
        if cands.len() == before {
            return cands;
        }
    }
}

/// The slot of each candidate (sorted in canonical order), numbered from zero: near-equal
/// neighbours share one, and so do near-equal offers of one run of a group of limit one (see
/// the module docs).
fn slots(policy: &StackingPolicy, cands: &[Prepared]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::with_capacity(cands.len());
    let mut next = 0u32;
    // The current run's slots by what near-equality compares besides the group (the run's):
    // group position, phase, source, kind rank, promotion, signature.
    type Key<'a> = (u32, u8, u8, u8, bool, &'a [i64]);
    let mut run: FastMap<Key<'_>, u32> = FastMap::default();
    let mut run_of_one = false;
    for (k, c) in cands.iter().enumerate() {
        if k == 0 || cands[k - 1].group != c.group {
            run.clear();
            run_of_one = policy.group_limit(&c.group) == 1;
        }
        let slot = if run_of_one {
            let (g, phase, source, _, kind) = c.order;
            *run.entry((g, phase, source, kind, c.is_promotion, c.sig.as_slice()))
                .or_insert_with(|| {
                    next += 1;
                    next - 1
                })
        } else if k > 0 && near_equal(&cands[k - 1], c) {
            out[k - 1]
        } else {
            next += 1;
            next - 1
        };
        out.push(slot);
    }
    out
}
