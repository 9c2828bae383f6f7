//! Choosing the combination: stacking rules, evaluation of a set, and an exact branch-and-bound
//! search for the best one.
//!
//! ## Why the search is exact
//! A set's saving is computed by applying its offers one after another in the canonical order
//! ([`Prepared::apply_cmp`]). Every benefit's saving is non-decreasing in what is left of the
//! lines it applies to, so an offer never saves more inside a set than alone on the whole cart,
//! and adding offers never raises the saving of the others. Hence for sets `S ⊆ T`:
//! `saving(T) ≤ saving(S) + Σ_{t ∈ T∖S} alone(t)` — the bound used to prune, refined by the
//! group limits (at most `limit` offers of a group count) and by what is left to pay. A set in
//! which some offer saves nothing is not valid, and no superset of it is valid either (the offer
//! still saves nothing), so such branches are cut too. Only branches whose bound is *below*
//! the best found are pruned; branches that could tie are explored, so the tie-break is exact.

use std::cmp::Ordering;

use super::StackingPolicy;
use super::engine::{CartCtx, Prepared, apply};
use super::reason::Ineligible;

/// Whether `c` may join `chosen` under the stacking rules; the first rule broken otherwise.
pub(crate) fn compatible(
    policy: &StackingPolicy,
    chosen: &[&Prepared],
    c: &Prepared,
) -> Result<(), Ineligible> {
    if c.exclusive && !chosen.is_empty() {
        return Err(Ineligible::ExclusiveNeedsAlone);
    }
    if let Some(x) = chosen.iter().find(|x| x.exclusive) {
        return Err(Ineligible::ExclusiveSelected { with: x.id.clone() });
    }
    for x in chosen {
        if x.is_promotion && !c.with_promotions {
            return Err(Ineligible::RefusesPromotions {
                promotion: x.id.clone(),
            });
        }
        if c.is_promotion && !x.with_promotions {
            return Err(Ineligible::RefusedBy { offer: x.id.clone() });
        }
    }
    if !c.is_promotion {
        let coupons = chosen.iter().filter(|x| !x.is_promotion).count();
        if coupons >= policy.max_coupons as usize {
            return Err(Ineligible::MaxCoupons {
                max: policy.max_coupons,
            });
        }
    }
    let limit = policy.group_limit(&c.group);
    let same: Vec<_> = chosen.iter().filter(|x| x.group == c.group).collect();
    if same.len() >= limit as usize {
        return Err(Ineligible::GroupFull {
            group: c.group.clone(),
            with: same.iter().map(|x| x.id.clone()).collect(),
        });
    }
    let same_template = chosen.iter().filter(|x| x.template == c.template).count();
    if same_template >= c.per_order as usize {
        return Err(Ineligible::PerOrderLimit {
            template: c.template.clone(),
            max: c.per_order,
        });
    }
    Ok(())
}

/// The saving of a set applied in canonical order, or `None` when some member saves nothing.
pub(crate) fn evaluate(
    members: &[&Prepared],
    ctx: &CartCtx,
    policy: &StackingPolicy,
) -> Option<i64> {
    let mut order: Vec<&Prepared> = members.to_vec();
    order.sort_by(|a, b| a.apply_cmp(b));
    let mut state = ctx.fresh();
    let mut total = 0i64;
    for p in order {
        total += apply(p, ctx, &mut state, policy, None).ok()?;
    }
    Some(total)
}

/// The tie-break between two sets of equal saving: the one whose coupons expire soonest
/// (sorted expiry instants compared in order, no expiry last), then the smaller sorted ids.
pub(crate) fn tie_break(a: &[&Prepared], b: &[&Prepared]) -> Ordering {
    let expiries = |s: &[&Prepared]| {
        let mut v: Vec<_> = s
            .iter()
            .map(|p| (p.valid_until.is_none(), p.valid_until))
            .collect();
        v.sort();
        v
    };
    fn ids<'a>(s: &[&'a Prepared]) -> Vec<&'a super::OfferId> {
        let mut v: Vec<_> = s.iter().map(|p| &p.id).collect();
        v.sort();
        v
    }
    expiries(a)
        .cmp(&expiries(b))
        .then_with(|| ids(a).cmp(&ids(b)))
}

/// `Less` when `(a, sa)` is the better choice than `(b, sb)`.
pub(crate) fn better(a: &[&Prepared], sa: i64, b: &[&Prepared], sb: i64) -> Ordering {
    sb.cmp(&sa).then_with(|| tie_break(a, b))
}

/// Drops offers that can never be in the unique best set: beyond the first `k` coupons of one
/// template (ordered by expiry, then id), where `k` is how many of that template one order can
/// hold. Copies of a template behave identically and apply next to each other, so swapping a
/// later copy for an earlier unused one keeps the saving and wins the tie-break.
pub(crate) fn dedup(policy: &StackingPolicy, mut cands: Vec<Prepared>) -> Vec<Prepared> {
    cands.sort_by(|a, b| {
        a.template
            .cmp(&b.template)
            .then(a.is_promotion.cmp(&b.is_promotion))
            .then((a.valid_until.is_none(), a.valid_until).cmp(&(b.valid_until.is_none(), b.valid_until)))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out: Vec<Prepared> = Vec::with_capacity(cands.len());
    let mut run = 0u32;
    for c in cands {
        let same = out
            .last()
            .is_some_and(|l| l.template == c.template && l.is_promotion == c.is_promotion);
        run = if same { run + 1 } else { 1 };
        let keep = c.per_order.min(policy.group_limit(&c.group)).max(1);
        if run <= keep {
            out.push(c);
        }
    }
    out
}

/// Branch and bound over `cands`. `forced[i]` offers must be in the result. Returns the best
/// set's indices into `cands` and its saving; `None` when the forced set itself is invalid.
pub(crate) fn best(
    cands: &[Prepared],
    forced: &[bool],
    ctx: &CartCtx,
    policy: &StackingPolicy,
) -> Option<(Vec<usize>, i64)> {
    // Search order: forced first, then by saving alone, best first.
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_by(|&a, &b| {
        forced[b]
            .cmp(&forced[a])
            .then(cands[b].alone.cmp(&cands[a].alone))
            .then_with(|| cands[a].apply_cmp(&cands[b]))
    });
    // Intern groups for the bound.
    let mut groups: Vec<&crate::id::StackingGroup> = Vec::new();
    let gid: Vec<usize> = order
        .iter()
        .map(|&i| {
            let g = &cands[i].group;
            match groups.iter().position(|x| *x == g) {
                Some(p) => p,
                None => {
                    groups.push(g);
                    groups.len() - 1
                }
            }
        })
        .collect();
    let caps: Vec<u32> = groups.iter().map(|g| policy.group_limit(g)).collect();
    let mut suffix = vec![0i64; order.len() + 1];
    for k in (0..order.len()).rev() {
        suffix[k] = suffix[k + 1].saturating_add(cands[order[k]].alone);
    }
    let total_payable = ctx.totals.iter().sum::<i64>() + ctx.shipping;
    let mut s = Search {
        cands,
        order: &order,
        forced,
        gid: &gid,
        caps: &caps,
        suffix: &suffix,
        ctx,
        policy,
        total_payable,
        best: None,
        chosen: Vec::new(),
    };
    let n_forced = forced.iter().filter(|f| **f).count();
    if n_forced == 0 {
        s.consider(0);
    }
    s.dfs(0, 0, n_forced);
    s.best
}

struct Search<'a> {
    cands: &'a [Prepared],
    order: &'a [usize],
    forced: &'a [bool],
    gid: &'a [usize],
    caps: &'a [u32],
    suffix: &'a [i64],
    ctx: &'a CartCtx,
    policy: &'a StackingPolicy,
    total_payable: i64,
    best: Option<(Vec<usize>, i64)>,
    /// Positions in `order` of the chosen offers.
    chosen: Vec<usize>,
}

impl Search<'_> {
    fn members(&self, positions: &[usize]) -> Vec<&Prepared> {
        positions
            .iter()
            .map(|&k| &self.cands[self.order[k]])
            .collect()
    }

    fn bound(&self, k: usize, saving: i64) -> i64 {
        let quick = saving.saturating_add(self.suffix[k]);
        let best = self.best.as_ref().map_or(i64::MIN, |b| b.1);
        if quick < best {
            return quick;
        }
        let mut left: Vec<u32> = self.caps.to_vec();
        for &c in &self.chosen {
            let g = self.gid[c];
            left[g] = left[g].saturating_sub(1);
        }
        let mut extra = 0i64;
        for j in k..self.order.len() {
            let g = self.gid[j];
            if left[g] > 0 {
                left[g] -= 1;
                extra = extra.saturating_add(self.cands[self.order[j]].alone);
            }
        }
        saving.saturating_add(extra.min(self.total_payable - saving))
    }

    fn consider(&mut self, saving: i64) {
        let replace = match &self.best {
            None => true,
            Some((b, bs)) => {
                let mine = self.members(&self.chosen);
                let theirs: Vec<&Prepared> = b.iter().map(|&i| &self.cands[i]).collect();
                better(&mine, saving, &theirs, *bs) == Ordering::Less
            }
        };
        if replace {
            let set = self.chosen.iter().map(|&k| self.order[k]).collect();
            self.best = Some((set, saving));
        }
    }

    /// `k`: next position; `forced_left`: forced offers not yet placed (they come first).
    fn dfs(&mut self, k: usize, saving: i64, forced_left: usize) {
        if k == self.order.len() {
            return;
        }
        if forced_left == 0 {
            if let Some((_, b)) = &self.best {
                if self.bound(k, saving) < *b {
                    return;
                }
            }
        }
        let i = self.order[k];
        let c = &self.cands[i];
        let fits = {
            let chosen = self.members(&self.chosen);
            compatible(self.policy, &chosen, c).is_ok()
        };
        if fits {
            self.chosen.push(k);
            let members = self.members(&self.chosen);
            if let Some(s) = evaluate(&members, self.ctx, self.policy) {
                let left = forced_left.saturating_sub(usize::from(self.forced[i]));
                if left == 0 {
                    self.consider(s);
                }
                self.dfs(k + 1, s, left);
            }
            self.chosen.pop();
        }
        if !self.forced[i] {
            self.dfs(k + 1, saving, forced_left);
        }
    }
}
