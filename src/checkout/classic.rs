//! The best-first search: offers by saving alone, best first, take or skip each, cut by the
//! savings alone still available. Suited to wallets of many distinct rules, where the
//! canonical-order search of [`select`](super::select) would apply every remaining rule at
//! every node; see the argument in [`select`](super::select#why-the-search-is-exact).

use std::cmp::Ordering;

use super::StackingPolicy;
use super::engine::{CartCtx, Prepared, State, apply};
use super::select::{Outcome, better, conflict, evaluate_state};

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

/// Branch and bound over `cands`. `forced[i]` offers must be in the result; `budget` caps the
/// work units (one per branch visited and one per application of an offer).
pub(crate) fn best(
    cands: &[Prepared],
    forced: &[bool],
    ctx: &CartCtx,
    policy: &StackingPolicy,
    budget: u64,
) -> Outcome {
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
        budget,
        spent: 0,
        exhausted: false,
        open_bound: 0,
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
    let exhausted = s.exhausted;
    let found = s
        .best
        .map(|(set, saving)| (set.into_iter().map(|k| order[k]).collect(), saving));
    let saving = found.as_ref().map_or(0, |f: &(Vec<usize>, i64)| f.1);
    Outcome {
        found,
        proven_optimal: !exhausted,
        bound: if exhausted {
            s.open_bound.min(total_payable).max(saving)
        } else {
            saving
        },
    }
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
    budget: u64,
    spent: u64,
    exhausted: bool,
    /// When exhausted: the largest bound of a branch left unexplored.
    open_bound: i64,
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
                        self.spent = self.spent.saturating_add(1);
                        let mut state = state.clone();
                        match apply(c, self.ctx, &mut state, self.policy, None) {
                            Ok(s) => Known::Valid(state, saving + s),
                            Err(_) => Known::Invalid,
                        }
                    }
                    _ => {
                        self.spent = self.spent.saturating_add(self.chosen.len() as u64);
                        match evaluate_state(&self.chosen, self.ctx, self.policy) {
                            Some((state, s)) => Known::Valid(state, s),
                            None => Known::Invalid,
                        }
                    }
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
        self.spent = self.spent.saturating_add(1);
        if self.exhausted || self.spent > self.budget {
            // Everything from here on is unexplored: bounded by what is held plus the most
            // the rest could add.
            self.exhausted = true;
            let bound = held.saturating_add(self.room(k)).min(self.total_payable);
            self.open_bound = self.open_bound.max(bound);
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
