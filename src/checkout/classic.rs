//! The best-first search: offers by saving alone, best first, take or skip each, cut by the
//! savings alone still available. Suited to wallets of many distinct rules, where the
//! canonical-order search of [`select`](super::select) would apply every remaining rule at
//! every node; see the argument in [`select`](super::select#why-the-search-is-exact).

use std::cmp::Ordering;

use super::StackingPolicy;
use super::engine::{CartCtx, Prepared, State, apply};
use super::select::{FxMap, Outcome, better, count_in, evaluate_state};

/// What the search knows of a chosen set: its members' highest rank, and, once evaluated,
/// whether it is valid with the state it leaves.
#[derive(Clone, Copy)]
enum Known {
    /// Not evaluated.
    Unknown,
    /// Some member saves nothing.
    Invalid,
    /// Every member saves something; what is left (its number in [`Applied`]) and the total
    /// saving.
    Valid(u32, i64),
}

struct Node {
    max_rank: Option<u32>,
    known: Known,
}

/// Positions (ascending) of some candidates with prefix sums of their savings alone: the sum
/// of the first `c` of them at or after a position, in `O(1)` with the table of where each
/// position falls (`O(log n)` without it, when the table would be large).
struct Run {
    pos: Vec<usize>,
    prefix: Vec<i64>,
    /// `at[k]`: how many of the positions are below `k` (empty: found by binary search).
    at: Vec<u32>,
}

impl Run {
    fn new<'p>(
        members: impl Iterator<Item = (usize, &'p Prepared)> + Clone,
        n: usize,
        table: bool,
    ) -> Run {
        // Counted first: an empty run (a group without promotions, say) allocates nothing,
        // and the others once each.
        let len = members.clone().count();
        if len == 0 {
            return Run {
                pos: Vec::new(),
                prefix: Vec::new(),
                at: Vec::new(),
            };
        }
        let mut pos = Vec::with_capacity(len);
        let mut prefix = Vec::with_capacity(len + 1);
        prefix.push(0i64);
        for (k, p) in members {
            pos.push(k);
            let last = prefix.last().copied().unwrap_or(0);
            prefix.push(last.saturating_add(p.alone));
        }
        let mut at = Vec::new();
        if table && !pos.is_empty() {
            at.reserve(n + 1);
            let mut i = 0usize;
            for k in 0..=n {
                while i < pos.len() && pos[i] < k {
                    i += 1;
                }
                at.push(i as u32);
            }
        }
        Run { pos, prefix, at }
    }

    fn top(&self, k: usize, c: u32) -> i64 {
        if self.pos.is_empty() {
            return 0;
        }
        let i = match self.at.get(k) {
            Some(&i) => i as usize,
            None => self.pos.partition_point(|&p| p < k),
        };
        let j = (i + c as usize).min(self.pos.len());
        self.prefix[j] - self.prefix[i]
    }
}

/// At most this many table entries for the bound's runs (4 MB of `u32`).
const RUN_TABLES: usize = 1 << 20;

/// Applications remembered, so that one behaviour applied to one state is computed once.
///
/// Offers with equal signatures apply identically to any state (the premise of the
/// behaviour classes, see [`select::best`](super::select::best)): what one of them saves on a
/// state, and the state it leaves, is a function of the state and the signature alone. The
/// search evaluates many sets whose members of one behaviour meet the same states (the
/// canonical order puts unit offers first, so a set's first members often leave a state an
/// earlier set left too), and looks those applications up instead of repeating them. The
/// answers are the applications' own, so nothing about the search changes but its cost.
struct Applied {
    /// Distinct states met, numbered in order of first meeting, and (when looking up) their
    /// numbers by state.
    states: Vec<State>,
    ids: FxMap<State, u32>,
    /// `(state, behaviour)` → the saving and the state left, `None` when it saves nothing.
    done: FxMap<(u32, u32), Option<(i64, u32)>>,
    /// Whether to look up at all: below [`REMEMBER_FROM`] candidates, the hashing costs more
    /// than the few repeated applications save (each state is then only numbered).
    remember: bool,
}

/// Candidates from which [`Applied`] looks applications up.
const REMEMBER_FROM: usize = 128;

#[cfg(test)]
thread_local! {
    /// Tests only: look applications up (or not) whatever the number of candidates, so that
    /// small inputs, which brute force can check, run the look-ups too.
    static REMEMBER: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether a search over `n` candidates looks its applications up.
fn remembers(n: usize) -> bool {
    #[cfg(test)]
    if let Some(on) = REMEMBER.with(std::cell::Cell::get) {
        return on;
    }
    n >= REMEMBER_FROM
}

impl Applied {
    fn intern(&mut self, state: State) -> u32 {
        let id = self.states.len() as u32;
        if !self.remember {
            self.states.push(state);
            return id;
        }
        if let Some(&id) = self.ids.get(&state) {
            return id;
        }
        self.states.push(state.clone());
        self.ids.insert(state, id);
        id
    }

    /// Drops the state of a node the search leaves, when nothing looks it up: states are then
    /// made and left in stack order, so the memory of one is reused by the next.
    fn leave(&mut self, known: Known) {
        if let Known::Valid(sid, _) = known {
            if !self.remember && sid as usize + 1 == self.states.len() && sid > 0 {
                self.states.pop();
            }
        }
    }

    /// `p` (of behaviour `beh`) applied to state `sid`.
    fn apply(
        &mut self,
        sid: u32,
        beh: u32,
        p: &Prepared,
        ctx: &CartCtx,
        policy: &StackingPolicy,
    ) -> Option<(i64, u32)> {
        if let Some(&out) = self.remember.then(|| self.done.get(&(sid, beh))).flatten() {
            return out;
        }
        let mut state = self.states[sid as usize].clone();
        let out = match apply(p, ctx, &mut state, policy, None) {
            Ok(s) => Some((s, self.intern(state))),
            Err(_) => None,
        };
        if self.remember {
            self.done.insert((sid, beh), out);
        }
        out
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
    let n = sorted.len();
    let remember = remembers(n);
    // Tables pay for themselves on long searches only (the sizes [`Applied`] remembers at).
    let table = remember && (2 * groups.len() + 1).saturating_mul(n + 1) <= RUN_TABLES;
    let in_group = |g: usize, promo_only: bool| {
        Run::new(
            sorted_ref
                .iter()
                .copied()
                .enumerate()
                .filter(move |(k, p)| gid_ref[*k] == g && (!promo_only || p.is_promotion)),
            n,
            table,
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
        n,
        table,
    );
    // Templates, numbered, for the per-order limits (by a map on long searches only).
    let mut templates: Vec<&crate::id::TemplateId> = Vec::new();
    let mut template_ids: FxMap<&crate::id::TemplateId, u32> = FxMap::default();
    let tid: Vec<u32> = sorted
        .iter()
        .map(|p| {
            if remember {
                let next = template_ids.len() as u32;
                return *template_ids.entry(&p.template).or_insert(next);
            }
            match templates.iter().position(|t| **t == p.template) {
                Some(t) => t as u32,
                None => {
                    templates.push(&p.template);
                    (templates.len() - 1) as u32
                }
            }
        })
        .collect();
    let n_templates = templates.len().max(template_ids.len());
    // With every template once, no per-order limit can bind (each is at least 1).
    let tid = if n_templates == n { Vec::new() } else { tid };
    let total_payable = ctx.totals.iter().sum::<i64>() + ctx.shipping;
    // Behaviours by signature, for the remembered applications.
    let mut beh_of_sig: FxMap<&[i64], u32> = FxMap::default();
    let beh: Vec<u32> = if remember {
        sorted
            .iter()
            .map(|p| {
                let next = beh_of_sig.len() as u32;
                *beh_of_sig.entry(p.sig.as_slice()).or_insert(next)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut applied = Applied {
        states: Vec::new(),
        ids: FxMap::default(),
        done: FxMap::default(),
        remember,
    };
    let root = applied.intern(ctx.fresh());
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
            known: Known::Valid(root, 0),
        }],
        beh: &beh,
        applied,
        root,
        by_rank: Vec::new(),
        tcount: if tid.is_empty() {
            Vec::new()
        } else {
            vec![0; n_templates]
        },
        tid: &tid,
        n_excl: 0,
        n_promo: 0,
        n_refuse: 0,
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
    /// Behaviour of each position (equal signatures, equal numbers; empty when [`Applied`]
    /// does not look up).
    beh: &'a [u32],
    applied: Applied,
    /// The fresh cart's state number.
    root: u32,
    /// The chosen positions by rank, for evaluating a set.
    by_rank: Vec<usize>,
    /// Chosen members per template, and each position's template (both empty when every
    /// template is there once).
    tcount: Vec<u32>,
    tid: &'a [u32],
    /// Chosen exclusive offers, promotions, and offers refusing promotions.
    n_excl: u32,
    n_promo: u32,
    n_refuse: u32,
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

    /// The behaviour of position `k` (0 when [`Applied`] does not look up).
    fn behaviour(&self, k: usize) -> u32 {
        self.beh.get(k).copied().unwrap_or(0)
    }

    /// Whether position `k` may join the chosen set: exactly
    /// `select::conflict(..).is_none()`, from the running counts (groups, coupons,
    /// templates, exclusive offers, promotions and offers refusing them).
    fn fits(&self, k: usize) -> bool {
        let c = self.sorted[k];
        let nonempty = !self.chosen.is_empty();
        let blocked = (c.exclusive && nonempty)
            || self.n_excl > 0
            || (self.n_promo > 0 && !c.with_promotions)
            || (c.is_promotion && self.n_refuse > 0)
            || (!c.is_promotion && self.coupons_used >= self.policy.max_coupons)
            || self.used[self.gid[k]] >= self.caps[self.gid[k]]
            || self
                .tid
                .get(k)
                .is_some_and(|&t| self.tcount[t as usize] >= c.per_order);
        !blocked
    }

    /// Counts position `k` in (`add`) or out of the chosen set.
    fn count(&mut self, k: usize, add: bool) {
        let c = self.sorted[k];
        let step = |x: &mut u32, on: bool| count_in(x, on, add);
        step(&mut self.used[self.gid[k]], true);
        step(&mut self.coupons_used, !c.is_promotion);
        if let Some(&t) = self.tid.get(k) {
            step(&mut self.tcount[t as usize], true);
        }
        step(&mut self.n_excl, c.exclusive);
        step(&mut self.n_promo, c.is_promotion);
        step(&mut self.n_refuse, !c.with_promotions);
    }

    /// Pushes the node of the chosen set that just gained `c`. Appending an offer that applies
    /// after every member leaves the members' savings as they were, so an invalid parent makes
    /// an invalid child without evaluating.
    fn push_node(&mut self, c: &Prepared) {
        let parent = self.nodes.last();
        // With an open order, `c` may apply before members in some orders: nothing carries.
        let after_all = parent.is_none_or(|n| n.max_rank.is_none_or(|r| c.rank > r))
            && self.policy.open_order == super::OpenOrder::Closed;
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
                // Appending in place is the set's order only when the order is not open.
                let after_all = parent.max_rank.is_none_or(|r| c.rank > r)
                    && self.policy.open_order == super::OpenOrder::Closed;
                match parent.known {
                    Known::Valid(sid, saving) if after_all => {
                        self.spent = self.spent.saturating_add(1);
                        let b = self.behaviour(self.chosen_pos[self.chosen_pos.len() - 1]);
                        match self.applied.apply(sid, b, c, self.ctx, self.policy) {
                            Some((s, child)) => Known::Valid(child, saving + s),
                            None => Known::Invalid,
                        }
                    }
                    _ => {
                        self.spent = self.spent.saturating_add(self.chosen.len() as u64);
                        self.evaluate_chosen()
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

    /// The chosen set evaluated whole: its members one after another in canonical order,
    /// each application looked up when met before (see [`Applied`]; without look-ups, and
    /// with an open order, [`evaluate_state`], which takes the best of the orders the policy
    /// allows).
    fn evaluate_chosen(&mut self) -> Known {
        if self.policy.open_order != super::OpenOrder::Closed || !self.applied.remember {
            return match evaluate_state(&self.chosen, self.ctx, self.policy) {
                Some((state, s)) => Known::Valid(self.applied.intern(state), s),
                None => Known::Invalid,
            };
        }
        let mut by_rank = std::mem::take(&mut self.by_rank);
        by_rank.clear();
        by_rank.extend_from_slice(&self.chosen_pos);
        by_rank.sort_unstable_by_key(|&k| self.sorted[k].rank);
        let mut sid = self.root;
        let mut total = 0i64;
        let mut known = None;
        for &k in &by_rank {
            match self.applied.apply(
                sid,
                self.behaviour(k),
                self.sorted[k],
                self.ctx,
                self.policy,
            ) {
                Some((s, next)) => {
                    total += s;
                    sid = next;
                }
                None => {
                    known = Some(Known::Invalid);
                    break;
                }
            }
        }
        self.by_rank = by_rank;
        known.unwrap_or(Known::Valid(sid, total))
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
        if self.fits(k) {
            self.count(k, true);
            self.chosen.push(c);
            self.chosen_pos.push(k);
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
            if let Some(node) = self.nodes.pop() {
                self.applied.leave(node.known);
            }
            self.chosen_pos.pop();
            self.chosen.pop();
            self.count(k, false);
        }
        if !self.forced[k] {
            self.dfs(k + 1, held, forced_left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::REMEMBER;
    use crate::cart::{Buyer, Cart, CartLine};
    use crate::checkout::engine::tests::next;
    use crate::checkout::{Checkout, Offer, StackingPolicy};
    use crate::id::{
        CategoryId, Channel, CouponId, ShopId, Sku, StackingGroup, TemplateId, UserId,
    };
    use crate::money::{Currency, Money};
    use crate::rule::{
        Benefit, Conditions, ConditionsSpec, Percent, Scope, ScopeSpec, Stacking, TemplateSpec,
        Validity,
    };
    use chrono::{Duration, TimeZone, Utc};
    use rust_decimal::Decimal;
    use std::sync::Arc;

    /// The remembered applications change nothing but the cost: on wallets of distinct
    /// templates drawing a few shared rules across stacking groups (the inputs they are for),
    /// on carts of several units a line, every quote is the same with look-ups forced on as
    /// with them off. (With them off, the brute-force properties of the test suite check
    /// these inputs' answers are the optimum.)
    #[test]
    fn looked_up_applications_give_the_same_quotes() {
        let cny = Currency::CNY;
        let m = |minor: u64| Money::from_minor(minor as i64, cny);
        let now = Utc.with_ymd_and_hms(2026, 11, 11, 20, 0, 0).unwrap();
        let buyer = Buyer::new(UserId::new("u").unwrap(), Channel::new("app").unwrap());
        let groups = ["platform", "g3", "shop:s1", "shipping"];
        let mut seed = 5u64;
        let mut looked_up = 0;
        for case in 0..300 {
            let s = &mut seed;
            let rules: Vec<(Benefit, Scope)> = (0..2 + next(s) % 2)
                .map(|_| {
                    let benefit = match next(s) % 5 {
                        0 | 1 => {
                            let bundles = (next(s) % 3 > 0).then(|| 1 + (next(s) % 2) as u32);
                            Benefit::fixed_price(
                                2 + (next(s) % 2) as u32,
                                m(100 + next(s) % 5900),
                                bundles,
                            )
                        }
                        2 => Benefit::buy_get(
                            2,
                            1,
                            (next(s) % 2 == 0).then(|| 1 + (next(s) % 2) as u32),
                        ),
                        3 => Benefit::instant(m(1 + next(s) % 3000)),
                        _ => {
                            let p = Percent::new(Decimal::from(1 + next(s) % 100)).unwrap();
                            Benefit::percent(p, (next(s) % 2 == 0).then(|| m(1 + next(s) % 5000)))
                        }
                    };
                    let scope = match next(s) % 3 {
                        0 => Scope::everything(),
                        _ => Scope::try_from(ScopeSpec {
                            categories: Some(
                                [CategoryId::new(["a", "b"][(next(s) % 2) as usize]).unwrap()]
                                    .into(),
                            ),
                            ..ScopeSpec::default()
                        })
                        .unwrap(),
                    };
                    (benefit.unwrap(), scope)
                })
                .collect();
            let wallet: Vec<Offer> = (0..4 + next(s) % 7)
                .map(|i| {
                    let (benefit, scope) = rules[(next(s) % rules.len() as u64) as usize].clone();
                    let min = (next(s) % 10 < 3).then(|| m(1 + next(s) % 20000));
                    let t = TemplateSpec::new(
                        TemplateId::new(format!("t{i}")).unwrap(),
                        "generated",
                        cny,
                        benefit,
                        Validity::fixed(now - Duration::days(1), now + Duration::days(30)).unwrap(),
                    )
                    .scope(scope)
                    .stacking(Stacking {
                        group: StackingGroup::new(groups[(next(s) % 4) as usize]).unwrap(),
                        exclusive: false,
                        with_promotions: true,
                        priority: (next(s) % 3) as i32,
                    })
                    .conditions(
                        Conditions::try_from(ConditionsSpec {
                            min_subtotal: min,
                            ..ConditionsSpec::default()
                        })
                        .unwrap(),
                    )
                    .build()
                    .unwrap();
                    let expiry = now + Duration::days(1 + (next(s) % 3) as i64);
                    let id = CouponId::new(format!("c{i:02}")).unwrap();
                    Offer::coupon(id, Arc::new(t), now - Duration::days(1), expiry)
                })
                .collect();
            let lines: Vec<CartLine> = (0..1 + next(s) % 4)
                .map(|i| {
                    let sku = Sku::new(format!("sku{i}")).unwrap();
                    // Now and then a line of a billion units (the runs of unit offers, not
                    // their count, must decide the cost).
                    let units = match next(s) % 8 {
                        0 => 1_000_000_000,
                        _ => 2 + (next(s) % 3) as u32,
                    };
                    CartLine::new(sku, m(1 + next(s) % 20000), units)
                        .in_category(
                            CategoryId::new(["a", "b", "c"][(next(s) % 3) as usize]).unwrap(),
                        )
                        .from_shop(ShopId::new(["s1", "s2"][(next(s) % 2) as usize]).unwrap())
                })
                .collect();
            let cart = Cart::new(cny, lines, m(next(s) % 1500)).unwrap();
            let policy = StackingPolicy::default();
            let quote = |on: bool| {
                REMEMBER.with(|r| r.set(Some(on)));
                let q = Checkout::new(&cart, &buyer, now, &policy)
                    .offers(&wallet)
                    .best();
                REMEMBER.with(|r| r.set(None));
                q
            };
            let (off, on) = (quote(false), quote(true));
            assert_eq!(off, on, "case {case}");
            looked_up += usize::from(on.is_ok_and(|q| q.applied.len() > 1));
        }
        // Enough of the cases combine several offers for the look-ups to matter.
        assert!(looked_up > 100, "{looked_up} cases combined offers");
    }
}
