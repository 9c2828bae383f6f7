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
//! Dropping offers can make two slots of near-equal offers adjacent; the pruning runs again
//! until nothing changes (each round removes only offers that are never in the unique best set
//! of what is left, so the best set is the same throughout).

use super::StackingPolicy;
use super::engine::Prepared;
use super::select::dedup;

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
        let mut slot = 0u32;
        for k in 0..cands.len() {
            if k > 0 && !near_equal(&cands[k - 1], &cands[k]) {
                slot += 1;
            }
            cands[k].class = slot;
        }
        cands = dedup(policy, cands);
        if cands.len() == before {
            return cands;
        }
    }
}
