//! Choosing the combination: stacking rules, evaluation of a set, and an exact branch-and-bound
//! search for the best one.
//!
//! ## Why the search is exact
//! A set's saving is computed by applying its offers one after another in the canonical order
//! ([`Prepared::apply_cmp`]), each to what the earlier ones left. Every benefit's saving is
//! non-decreasing in what is left of the lines it applies to, and what is left never exceeds the
//! original amounts, so an offer never saves more inside a set than alone on the whole cart:
//! `saving(S) ≤ Σ_{s ∈ S} alone(s)`. The search walks the offers best-alone first, choosing to
//! take or skip each, and cuts a branch only when even the most it could reach — the savings
//! alone of what it holds plus the best savings alone still available, at most `limit` per
//! stacking group and at most the coupon cap, and never more than the order's total — is
//! *below* the best valid set found. Branches that could tie are explored, so the tie-break is
//! exact too. The stacking rules only ever forbid more as a set grows, so a set that breaks
//! one is cut with all its supersets, and a branch in which no remaining offer can join stops.
//! A set in which some offer saves nothing is not valid, but it is not cut: another offer
//! applied before it can change which units or lines it reaches, so a superset may be valid
//! (only supersets adding offers that apply after all of its members stay invalid, since those
//! leave the members' savings as they were). Extending an evaluated set by an offer that
//! applies after all of its members costs one application, not a new evaluation.

use std::cmp::Ordering;

use super::StackingPolicy;
use super::engine::{CartCtx, Prepared, State, apply};
use super::reason::Ineligible;

/// The first stacking rule `c` would break by joining a set (indices point into the set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    ExclusiveNeedsAlone,
    ExclusiveSelected(usize),
    RefusesPromotions(usize),
    RefusedBy(usize),
    MaxCoupons,
    GroupFull,
    PerOrderLimit,
}

/// Whether `c` may join `chosen` under the stacking rules: `None`, or the first rule broken.
/// Allocation-free, for the search.
pub(crate) fn conflict(
    policy: &StackingPolicy,
    chosen: &[&Prepared],
    c: &Prepared,
) -> Option<Conflict> {
    if c.exclusive && !chosen.is_empty() {
        return Some(Conflict::ExclusiveNeedsAlone);
    }
    if let Some(i) = chosen.iter().position(|x| x.exclusive) {
        return Some(Conflict::ExclusiveSelected(i));
    }
    for (i, x) in chosen.iter().enumerate() {
        if x.is_promotion && !c.with_promotions {
            return Some(Conflict::RefusesPromotions(i));
        }
        if c.is_promotion && !x.with_promotions {
            return Some(Conflict::RefusedBy(i));
        }
    }
    if !c.is_promotion {
        let coupons = chosen.iter().filter(|x| !x.is_promotion).count();
        if coupons >= policy.max_coupons as usize {
            return Some(Conflict::MaxCoupons);
        }
    }
    let in_group = chosen.iter().filter(|x| x.group == c.group).count();
    if in_group >= policy.group_limit(&c.group) as usize {
        return Some(Conflict::GroupFull);
    }
    let same_template = chosen.iter().filter(|x| x.template == c.template).count();
    if same_template >= c.per_order as usize {
        return Some(Conflict::PerOrderLimit);
    }
    None
}

/// Whether `c` may join `chosen` under the stacking rules; the first rule broken otherwise, as
/// a reason for people.
pub(crate) fn compatible(
    policy: &StackingPolicy,
    chosen: &[&Prepared],
    c: &Prepared,
) -> Result<(), Ineligible> {
    let Some(k) = conflict(policy, chosen, c) else {
        return Ok(());
    };
    let id = |i: usize| chosen[i].named();
    Err(match k {
        Conflict::ExclusiveNeedsAlone => Ineligible::ExclusiveNeedsAlone,
        Conflict::ExclusiveSelected(i) => Ineligible::ExclusiveSelected { with: id(i) },
        Conflict::RefusesPromotions(i) => Ineligible::RefusesPromotions { promotion: id(i) },
        Conflict::RefusedBy(i) => Ineligible::RefusedBy { offer: id(i) },
        Conflict::MaxCoupons => Ineligible::MaxCoupons {
            max: policy.max_coupons,
        },
        Conflict::GroupFull => Ineligible::GroupFull {
            group: c.group.clone(),
            with: chosen
                .iter()
                .filter(|x| x.group == c.group)
                .map(|x| x.named())
                .collect(),
        },
        Conflict::PerOrderLimit => Ineligible::PerOrderLimit {
            template: c.template.clone(),
            max: c.per_order,
        },
    })
}

/// The saving of a set applied in canonical order, or `None` when some member saves nothing.
pub(crate) fn evaluate(
    members: &[&Prepared],
    ctx: &CartCtx,
    policy: &StackingPolicy,
) -> Option<i64> {
    evaluate_state(members, ctx, policy).map(|(_, saving)| saving)
}

/// Like [`evaluate`], keeping the state left after the set, to extend it.
fn evaluate_state(
    members: &[&Prepared],
    ctx: &CartCtx,
    policy: &StackingPolicy,
) -> Option<(State, i64)> {
    let mut order: Vec<&Prepared> = members.to_vec();
    order.sort_unstable_by_key(|p| p.rank);
    let mut state = ctx.fresh();
    let mut total = 0i64;
    for p in order {
        total += apply(p, ctx, &mut state, policy, None).ok()?;
    }
    Some((state, total))
}

/// What the search knows of a chosen set: its members' highest rank, and, once evaluated,
/// whether it is valid with the state it leaves.
enum Known {
    /// Not evaluated.
    Unknown,
    /// Some member saves nothing.
    Invalid,
    /// Every member saves something; what is left and the total saving.
    Valid(State, i64),
}

struct Node {
    max_rank: Option<u32>,
    known: Known,
}

/// The tie-break between two sets of equal saving: the one whose coupons expire soonest
/// (sorted expiry instants compared in order, no expiry last), then the smaller sorted ids.
pub(crate) fn tie_break(a: &[&Prepared], b: &[&Prepared]) -> Ordering {
    let expiries = |s: &[&Prepared]| {
        let mut v: Vec<_> = s
            .iter()
            .map(|p| (p.valid_until.is_none(), p.valid_until))
            .collect();
        v.sort_unstable();
        v
    };
    fn ids<'a>(s: &[&'a Prepared]) -> Vec<&'a super::OfferId> {
        let mut v: Vec<_> = s.iter().map(|p| &p.id).collect();
        v.sort_unstable();
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

/// Drops offers that can never be in the unique best set. Offers of one behaviour class
/// (same signature, order and group: they behave identically and apply next to each other) are
/// interchangeable in any set, so only the members a best set could use are kept: taken by
/// expiry, then id, at most the group's limit of them and at most each template's per-order
/// limit. The kept members form the greedy basis of that (laminar) matroid, which dominates
/// every other choice of as many members element by element, so the tie-break prefers them.
pub(crate) fn dedup(policy: &StackingPolicy, mut cands: Vec<Prepared>) -> Vec<Prepared> {
    cands.sort_unstable_by(|a, b| {
        a.class
            .cmp(&b.class)
            .then(
                (a.valid_until.is_none(), a.valid_until)
                    .cmp(&(b.valid_until.is_none(), b.valid_until)),
            )
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out: Vec<Prepared> = Vec::with_capacity(cands.len());
    let mut class_start = 0usize;
    for c in cands {
        if out
            .get(class_start)
            .is_none_or(|first| first.class != c.class)
        {
            class_start = out.len();
        }
        let class = &out[class_start..];
        let taken = class.len() as u32;
        let of_template = class.iter().filter(|x| x.template == c.template).count() as u32;
        if taken < policy.group_limit(&c.group) && of_template < c.per_order {
            out.push(c);
        }
    }
    out
}

/// Positions (ascending) of some candidates with prefix sums of their savings alone: the sum
/// of the first `c` of them at or after a position, in `O(log n)`.
struct Run {
    pos: Vec<usize>,
    prefix: Vec<i64>,
}

impl Run {
    fn new<'p>(members: impl Iterator<Item = (usize, &'p Prepared)>) -> Run {
        let mut pos = Vec::new();
        let mut prefix = vec![0i64];
        for (k, p) in members {
            pos.push(k);
            let last = prefix.last().copied().unwrap_or(0);
            prefix.push(last.saturating_add(p.alone));
        }
        Run { pos, prefix }
    }

    fn top(&self, k: usize, c: u32) -> i64 {
        let i = self.pos.partition_point(|&p| p < k);
        let j = (i + c as usize).min(self.pos.len());
        self.prefix[j] - self.prefix[i]
    }
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
    order.sort_unstable_by(|&a, &b| {
        forced[b]
            .cmp(&forced[a])
            .then(cands[b].alone.cmp(&cands[a].alone))
            .then(cands[a].rank.cmp(&cands[b].rank))
    });
    let sorted: Vec<&Prepared> = order.iter().map(|&i| &cands[i]).collect();
    // Intern groups for the bound.
    let mut groups: Vec<&crate::id::StackingGroup> = Vec::new();
    let gid: Vec<usize> = sorted
        .iter()
        .map(|p| match groups.iter().position(|x| **x == p.group) {
            Some(g) => g,
            None => {
                groups.push(&p.group);
                groups.len() - 1
            }
        })
        .collect();
    let caps: Vec<u32> = groups.iter().map(|g| policy.group_limit(g)).collect();
    let gid_ref = &gid;
    let sorted_ref = &sorted;
    let in_group = |g: usize, promo_only: bool| {
        Run::new(
            sorted_ref
                .iter()
                .copied()
                .enumerate()
                .filter(move |(k, p)| gid_ref[*k] == g && (!promo_only || p.is_promotion)),
        )
    };
    let all_runs: Vec<Run> = (0..groups.len()).map(|g| in_group(g, false)).collect();
    let promo_runs: Vec<Run> = (0..groups.len()).map(|g| in_group(g, true)).collect();
    let coupon_run = Run::new(
        sorted
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, p)| !p.is_promotion),
    );
    let total_payable = ctx.totals.iter().sum::<i64>() + ctx.shipping;
    let mut s = Search {
        sorted: &sorted,
        forced: order.iter().map(|&i| forced[i]).collect(),
        gid: &gid,
        caps: &caps,
        all_runs: &all_runs,
        promo_runs: &promo_runs,
        coupon_run: &coupon_run,
        used: vec![0; groups.len()],
        coupons_used: 0,
        ctx,
        policy,
        total_payable,
        best: None,
        chosen: Vec::new(),
        chosen_pos: Vec::new(),
        nodes: vec![Node {
            max_rank: None,
            known: Known::Valid(ctx.fresh(), 0),
        }],
    };
    let n_forced = forced.iter().filter(|f| **f).count();
    if n_forced == 0 {
        s.consider(0);
    }
    s.dfs(0, 0, n_forced);
    s.best
        .map(|(set, saving)| (set.into_iter().map(|k| order[k]).collect(), saving))
}

struct Search<'a> {
    /// Candidates in search order.
    sorted: &'a [&'a Prepared],
    forced: Vec<bool>,
    gid: &'a [usize],
    caps: &'a [u32],
    all_runs: &'a [Run],
    promo_runs: &'a [Run],
    coupon_run: &'a Run,
    used: Vec<u32>,
    coupons_used: u32,
    ctx: &'a CartCtx,
    policy: &'a StackingPolicy,
    total_payable: i64,
    /// Best set so far, as positions in search order, and its saving.
    best: Option<(Vec<usize>, i64)>,
    chosen: Vec<&'a Prepared>,
    chosen_pos: Vec<usize>,
    /// One node per chosen prefix (the root first).
    nodes: Vec<Node>,
}

impl<'a> Search<'a> {
    /// The most that candidates at positions `k..` can add to the chosen set: each offer saves
    /// at most its saving alone, at most `limit` per group count, and at most the coupon cap of
    /// coupons. Zero when none of them can join at all.
    fn room(&self, k: usize) -> i64 {
        let mut by_groups = 0i64;
        let mut promos = 0i64;
        for g in 0..self.caps.len() {
            let left = self.caps[g].saturating_sub(self.used[g]);
            if left > 0 {
                by_groups = by_groups.saturating_add(self.all_runs[g].top(k, left));
                promos = promos.saturating_add(self.promo_runs[g].top(k, left));
            }
        }
        let coupons_left = self.policy.max_coupons.saturating_sub(self.coupons_used);
        let by_count = promos.saturating_add(self.coupon_run.top(k, coupons_left));
        by_groups.min(by_count)
    }

    /// Pushes the node of the chosen set that just gained `c`. Appending an offer that applies
    /// after every member leaves the members' savings as they were, so an invalid parent makes
    /// an invalid child without evaluating.
    fn push_node(&mut self, c: &Prepared) {
        let parent = self.nodes.last();
        let after_all = parent.is_none_or(|n| n.max_rank.is_none_or(|r| c.rank > r));
        let known = match parent {
            Some(Node {
                known: Known::Invalid,
                ..
            }) if after_all => Known::Invalid,
            _ => Known::Unknown,
        };
        let max_rank = parent
            .and_then(|n| n.max_rank)
            .map_or(c.rank, |r| r.max(c.rank));
        self.nodes.push(Node {
            max_rank: Some(max_rank),
            known,
        });
    }

    /// The saving of the chosen set (whose last member is `c`), or `None` when it is invalid:
    /// one application on the parent's state when `c` applies after every other member,
    /// otherwise the whole set again. Remembered for the set's extensions.
    fn evaluate_top(&mut self, c: &Prepared) -> Option<i64> {
        let n = self.nodes.len();
        let known = match &self.nodes[n - 1].known {
            Known::Invalid => return None,
            Known::Valid(_, s) => return Some(*s),
            Known::Unknown => {
                let parent = &self.nodes[n - 2];
                let after_all = parent.max_rank.is_none_or(|r| c.rank > r);
                match &parent.known {
                    Known::Valid(state, saving) if after_all => {
                        let mut state = state.clone();
                        match apply(c, self.ctx, &mut state, self.policy, None) {
                            Ok(s) => Known::Valid(state, saving + s),
                            Err(_) => Known::Invalid,
                        }
                    }
                    _ => match evaluate_state(&self.chosen, self.ctx, self.policy) {
                        Some((state, s)) => Known::Valid(state, s),
                        None => Known::Invalid,
                    },
                }
            }
        };
        let out = match &known {
            Known::Valid(_, s) => Some(*s),
            _ => None,
        };
        self.nodes[n - 1].known = known;
        out
    }

    fn consider(&mut self, saving: i64) {
        let replace = match &self.best {
            None => true,
            Some((b, bs)) => {
                let theirs: Vec<&Prepared> = b.iter().map(|&k| self.sorted[k]).collect();
                better(&self.chosen, saving, &theirs, *bs) == Ordering::Less
            }
        };
        if replace {
            self.best = Some((self.chosen_pos.clone(), saving));
        }
    }

    /// `k`: next position; `held`: the chosen offers' savings alone; `forced_left`: forced
    /// offers not yet placed (they come first).
    fn dfs(&mut self, k: usize, held: i64, forced_left: usize) {
        if k == self.sorted.len() {
            return;
        }
        if forced_left == 0 {
            let room = self.room(k);
            if room == 0 {
                // Nothing left can join; this set was considered when it was formed.
                return;
            }
            // No order saves more than its total.
            let bound = held.saturating_add(room).min(self.total_payable);
            if self.best.as_ref().is_some_and(|(_, b)| bound < *b) {
                return;
            }
        }
        let c: &'a Prepared = self.sorted[k];
        if conflict(self.policy, &self.chosen, c).is_none() {
            self.chosen.push(c);
            self.chosen_pos.push(k);
            self.used[self.gid[k]] += 1;
            self.coupons_used += u32::from(!c.is_promotion);
            let left = forced_left.saturating_sub(usize::from(self.forced[k]));
            let held = held.saturating_add(c.alone);
            self.push_node(c);
            // The set saves at most `held`: evaluate it only if that could reach the best.
            let reachable = self.best.as_ref().is_none_or(|(_, b)| held >= *b);
            if left == 0 && reachable {
                if let Some(s) = self.evaluate_top(c) {
                    self.consider(s);
                }
            }
            self.dfs(k + 1, held, left);
            self.nodes.pop();
            self.coupons_used -= u32::from(!c.is_promotion);
            self.used[self.gid[k]] -= 1;
            self.chosen_pos.pop();
            self.chosen.pop();
        }
        if !self.forced[k] {
            self.dfs(k + 1, held, forced_left);
        }
    }
}
