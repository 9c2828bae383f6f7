//! Choosing the combination: stacking rules, evaluation of a set, and an exact branch-and-bound
//! search for the best one.
//!
//! ## Why the search is exact
//! A set's saving is computed by applying its offers one after another in the canonical order
//! ([`Prepared::apply_cmp`]), each to what the earlier ones left. Every benefit's saving is
//! non-decreasing in what is left of the lines it applies to — unit by unit, for the unit
//! offers — and of the shipping fees, and applying an offer only ever lowers what is left (the
//! lemma of [`engine`](super::engine), which covers units priced one by one). Two searches use this; the checkout picks
//! the one suited to the input (see [`best`]):
//!
//! - the best-first search ([`classic`](super::classic)) bounds a set by the savings alone of
//!   its members: `saving(S) ≤ Σ_{s ∈ S} alone(s)`;
//! - the canonical-order search (here) walks sets as their members in canonical order, so a
//!   chosen prefix's saving and the state it leaves are exact, each extension is one
//!   application, and a member that saves nothing makes every extension invalid (later members
//!   do not change it). Every valid set is reached: each of its canonical prefixes is valid.
//!
//! ## The bound
//! At a node (chosen prefix `S`, state `σ` left, next position `k`), every completion adds
//! offers at positions `≥ k`, each applied to a state at most `σ`, so each saves at most its
//! *marginal* `m(c) = saving of c applied to σ`; an offer that saves nothing on `σ` saves
//! nothing in the whole subtree and is dropped from it (as are exclusive offers once `S` is
//! not empty, and offers of full groups). Completions take at most the group's remaining
//! limit per stacking group, so `saving(S ∪ X) ≤ saving(S) + min(Σ_g top_{left(g)} m, what
//! is left to pay on σ)`. A branch is cut only when this is *below* the best found; ties are
//! explored, so the tie-break is exact.
//!
//! ## Dominance
//! Two prefixes with the same next position, the same state left and the same stacking
//! constraints in force (members per group, coupons, promotion flags, exclusivity, templates
//! with candidates still to come) have the same completions with the same savings; for sets of
//! equal size the tie-break order is kept under adding the same members (sorted keys merge
//! alike), so only the prefix winning the tie-break is explored. Likewise among the children
//! of a node: two that leave the same state, in the same group and source, the earlier has
//! every completion of the later still open; if its expiry and id are no worse, the later is
//! never the best.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

/// Like [`evaluate`], keeping the state left after the set.
pub(crate) fn evaluate_state(
    members: &[&Prepared],
    ctx: &CartCtx,
    policy: &StackingPolicy,
) -> Option<(State, i64)> {
    if policy.open_order != super::OpenOrder::Closed {
        // The best over the orders the policy allows.
        let mut spent = 0;
        return super::engine::best_order(members, ctx, policy, &mut spent)
            .map(|(_, state, total)| (state, total));
    }
    let mut order: Vec<&Prepared> = members.to_vec();
    order.sort_unstable_by_key(|p| p.rank);
    let mut state = ctx.fresh();
    let mut total = 0i64;
    for p in order {
        total += apply(p, ctx, &mut state, policy, None).ok()?;
    }
    Some((state, total))
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

/// A running count of the chosen set, when `on`: one more (`add`) or one fewer.
pub(crate) fn count_in(x: &mut u32, on: bool, add: bool) {
    if on {
        if add {
            *x += 1;
        } else {
            *x -= 1;
        }
    }
}

/// Drops offers that can never be in the unique best set. Offers of one behaviour class
/// (same signature, order and group: they behave identically and apply next to each other) are
/// interchangeable in any set, so only the members a best set could use are kept: taken by
/// expiry, then id, at most the group's limit of them and at most each template's per-order
/// limit. The kept members form the greedy basis of that (laminar) matroid, which dominates
/// every other choice of as many members element by element, so the tie-break prefers them.
pub(crate) fn dedup(policy: &StackingPolicy, mut cands: Vec<Prepared>) -> Vec<Prepared> {
    let key = |p: &Prepared| (p.class, p.valid_until.is_none(), p.valid_until);
    let n = cands.len();
    if n <= SMALL_DEDUP {
        cands.sort_unstable_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id)));
        return keep(policy, cands, n);
    }
    // Many: sorted as keys of one integer each (an offer is large to move), then taken in
    // their order.
    let mut order: Vec<_> = cands.iter().map(packed_key).zip(0..n).collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| cands[a.1].id.cmp(&cands[b.1].id))
    });
    let mut slots: Vec<Option<Prepared>> = cands.into_iter().map(Some).collect();
    let sorted = order.into_iter().filter_map(|(_, k)| slots[k].take());
    keep(policy, sorted, n)
}

/// [`dedup`]'s order of an offer, class and expiry (none last), as one integer ordered as
/// they are: class above, then whether it never expires, then the instant's seconds (offset
/// to sort as unsigned) and nanoseconds (below 2³¹, leap seconds included).
fn packed_key(p: &Prepared) -> u128 {
    let (none, secs, nanos) = match p.valid_until {
        None => (1u8, 0, 0),
        Some(t) => (
            0,
            t.timestamp() as u64 ^ (1 << 63),
            t.timestamp_subsec_nanos(),
        ),
    };
    u128::from(p.class) << 96 | u128::from(none) << 95 | u128::from(secs) << 31 | u128::from(nanos)
}

/// Offers [`dedup`] sorts where they lie; more are sorted as keys.
pub(super) const SMALL_DEDUP: usize = 32;

/// The members of each class a best set could use, from `n` offers sorted by class, expiry
/// and id (see [`dedup`]).
pub(super) fn keep(
    policy: &StackingPolicy,
    sorted: impl IntoIterator<Item = Prepared>,
    n: usize,
) -> Vec<Prepared> {
    let mut out: Vec<Prepared> = Vec::with_capacity(n);
    let mut class_start = 0usize;
    for c in sorted {
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

/// Work units the search may spend by default: well above what the catalogues and wallets the
/// benchmarks model need (at most some tens of thousands), low enough that a pathological
/// input answers in a fraction of a second and the search's memo (one entry per node) stays
/// a few tens of megabytes at most.
pub(crate) const DEFAULT_BUDGET: u64 = 250_000;

/// What the search found: the best valid set (indices into the candidates) and its saving, if
/// any; whether it is proven optimal; and the most any valid combination could save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub found: Option<(Vec<usize>, i64)>,
    /// `false` when the budget ran out before every branch was settled.
    pub proven_optimal: bool,
    /// An upper bound on the saving of every valid combination (the found saving when proven
    /// optimal).
    pub bound: i64,
}

impl Outcome {
    /// How much more than the found set the best combination could save.
    pub fn gap(&self) -> i64 {
        let found = self.found.as_ref().map_or(0, |f| f.1);
        self.bound.saturating_sub(found).max(0)
    }
}

/// Branch and bound over `cands`, in canonical order (see the module docs). `forced[i]`
/// offers must be in the result; `budget` caps the work units spent (one per node and one per
/// application of an offer). Nothing found when no valid set holds every forced offer (or
/// when the budget ran out before one was found).
pub(crate) fn best(
    cands: &[Prepared],
    forced: &[bool],
    ctx: &CartCtx,
    policy: &StackingPolicy,
    budget: u64,
) -> Outcome {
    // The canonical-order search applies each remaining behaviour once per node: it wins when
    // many offers share few behaviours (catalogues of near-identical promotions); with mostly
    // distinct rules (wallets), the best-first search, which evaluates only the sets it
    // takes, is cheaper. Both are exact.
    let behaviours = {
        let mut sigs: Vec<&[i64]> = cands.iter().map(|p| p.sig.as_slice()).collect();
        sigs.sort_unstable();
        sigs.dedup();
        sigs.len()
    };
    // This search keeps states as every line's amount and the shipping fee, and walks one
    // order. That is exact when the cart has one fee and no offer reads the units of a line a
    // unit offer made uneven: amounts read only what is left of a line, so it suffices that a
    // set holds at most one unit offer (all of them in one group of limit one) and that
    // percentages do not round per unit. Otherwise the best-first search, whose bound holds
    // for every state and in every order.
    let units_once = {
        let mut unit = cands.iter().filter(|p| p.place.1 == 0);
        match unit.next() {
            None => true,
            Some(first) => {
                policy.rounding_scope != super::RoundingScope::PerUnit
                    && policy.group_limit(&first.group) == 1
                    && unit.all(|p| p.group == first.group)
            }
        }
    };
    let flat = ctx.ships.len() <= 1
        && policy.open_order == super::OpenOrder::Closed
        && (units_once || ctx.qty.iter().all(|&q| q <= 1));
    if behaviours * 2 > cands.len() || !flat {
        return super::classic::best(cands, forced, ctx, policy, budget);
    }
    let mut order: Vec<usize> = (0..cands.len()).collect();
    order.sort_unstable_by_key(|&i| cands[i].rank);
    let sorted: Vec<&Prepared> = order.iter().map(|&i| &cands[i]).collect();
    let n = sorted.len();
    let forced_sorted: Vec<bool> = order.iter().map(|&i| forced[i]).collect();
    let mut next_forced = vec![n; n + 1];
    for k in (0..n).rev() {
        next_forced[k] = if forced_sorted[k] {
            k
        } else {
            next_forced[k + 1]
        };
    }
    // Behaviours: offers with equal signatures apply identically to any state.
    let mut beh_of_sig: FxMap<&[i64], usize> = FxMap::default();
    let beh: Vec<usize> = sorted
        .iter()
        .map(|p| {
            let next = beh_of_sig.len();
            *beh_of_sig.entry(p.sig.as_slice()).or_insert(next)
        })
        .collect();
    let nbeh = beh_of_sig.len();
    let mut beh_rep: Vec<usize> = vec![0; nbeh];
    let mut beh_last: Vec<usize> = vec![0; nbeh];
    for (k, &b) in beh.iter().enumerate().rev() {
        beh_rep[b] = k;
    }
    for (k, &b) in beh.iter().enumerate() {
        beh_last[b] = k;
    }
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
    let mut beh_groups: Vec<Vec<usize>> = vec![Vec::new(); nbeh];
    for k in 0..n {
        if !beh_groups[beh[k]].contains(&gid[k]) {
            beh_groups[beh[k]].push(gid[k]);
        }
    }
    // Pairs (behaviour, group) with their positions, for the bound.
    let mut pair_of_key: FxMap<(usize, usize), usize> = FxMap::default();
    let mut pairs: Vec<Pair> = Vec::new();
    for k in 0..n {
        let key = (beh[k], gid[k]);
        let next = pairs.len();
        let i = *pair_of_key.entry(key).or_insert(next);
        if i == next {
            pairs.push(Pair {
                beh: beh[k],
                group: gid[k],
                positions: Vec::new(),
            });
        }
        pairs[i].positions.push(k);
    }
    let mut group_positions: Vec<Vec<usize>> = vec![Vec::new(); caps.len()];
    for (k, &g) in gid.iter().enumerate() {
        group_positions[g].push(k);
    }
    let mut group_pairs: Vec<Vec<usize>> = vec![Vec::new(); caps.len()];
    for (i, pr) in pairs.iter().enumerate() {
        group_pairs[pr.group].push(i);
    }
    let mut templates: Vec<&crate::id::TemplateId> = Vec::new();
    let tid: Vec<u32> = sorted
        .iter()
        .map(|p| match templates.iter().position(|x| **x == p.template) {
            Some(t) => t as u32,
            None => {
                templates.push(&p.template);
                (templates.len() - 1) as u32
            }
        })
        .collect();
    let mut template_last = vec![0usize; templates.len()];
    for (k, &t) in tid.iter().enumerate() {
        template_last[t as usize] = k;
    }
    let total_payable = ctx.totals.iter().sum::<i64>().saturating_add(ctx.shipping);
    let beh_excl: Vec<bool> = beh_rep.iter().map(|&k| sorted[k].exclusive).collect();
    let width = ctx.totals.len() + 1;
    // Dense ranks of the tie-break keys, so sets compare by sorting small integers.
    let dense = |cmp: &dyn Fn(usize, usize) -> Ordering| {
        let mut by: Vec<usize> = (0..n).collect();
        by.sort_unstable_by(|&a, &b| cmp(a, b));
        let mut rank = vec![0u32; n];
        for i in 1..n {
            let step = u32::from(cmp(by[i - 1], by[i]).is_ne());
            rank[by[i]] = rank[by[i - 1]] + step;
        }
        rank
    };
    let expiry = |p: &Prepared| (p.valid_until.is_none(), p.valid_until);
    let expiry_rank = dense(&|a, b| expiry(sorted[a]).cmp(&expiry(sorted[b])));
    let id_rank = dense(&|a, b| sorted[a].id.cmp(&sorted[b].id));
    let group_least: Vec<Vec<(u32, u32)>> = group_positions
        .iter()
        .map(|ps| {
            let mut least = vec![(u32::MAX, u32::MAX); ps.len()];
            let mut run = (u32::MAX, u32::MAX);
            for (i, &k) in ps.iter().enumerate().rev() {
                run = (run.0.min(expiry_rank[k]), run.1.min(id_rank[k]));
                least[i] = run;
            }
            least
        })
        .collect();
    // Room for the nodes and states the search is likely to meet, so the maps rarely grow.
    let room_for = (8 * n).clamp(16, 1024);
    let pos: Vec<Pos> = (0..n)
        .map(|j| Pos {
            beh: beh[j] as u32,
            gid: gid[j] as u32,
            tid: tid[j],
            per_order: sorted[j].per_order,
            tie: u64::from(expiry_rank[j]) << 32 | u64::from(id_rank[j]),
            excl: sorted[j].exclusive,
            promo: sorted[j].is_promotion,
            withp: sorted[j].with_promotions,
            last_of_template: template_last[tid[j] as usize] == j,
        })
        .collect();
    let mut s = Search {
        pos,
        expiry_rank,
        id_rank,
        prev: Vec::new(),
        sorted: &sorted,
        next_forced,
        beh,
        beh_rep,
        beh_last,
        beh_groups,
        beh_excl,
        excl: sorted.iter().map(|p| p.exclusive).collect(),
        promo: sorted.iter().map(|p| p.is_promotion).collect(),
        withp: sorted.iter().map(|p| p.with_promotions).collect(),
        gid,
        caps,
        pairs,
        tcount: vec![0; templates.len()],
        tid,
        template_last,
        ctx,
        policy,
        budget,
        spent: 0,
        exhausted: false,
        open_bound: 0,
        best: None,
        chosen: Vec::new(),
        chosen_pos: Vec::new(),
        used: vec![0; groups.len()],
        coupons_used: 0,
        n_promo: 0,
        n_refuse: 0,
        n_excl: 0,
        memo: FxMap::with_capacity_and_hasher(room_for, Default::default()),
        prefixes: Vec::new(),
        group_pairs,
        group_positions,
        group_least,
        best_key: None,
        width,
        state_ids: FxMap::with_capacity_and_hasher(room_for, Default::default()),
        store: Vec::with_capacity(room_for * width),
        pays: Vec::with_capacity(room_for),
        marg: FxMap::with_capacity_and_hasher(4 * room_for, Default::default()),
        tmp: Vec::new(),
        cons_ids: HashMap::default(),
        cons_buf: Vec::new(),
        scratch: ctx.fresh(),
        frames: Vec::new(),
    };
    let mut root = ctx.totals.clone();
    root.push(ctx.shipping);
    let dead = vec![false; nbeh];
    let root = s.intern(&root);
    s.node(0, root, 0, &dead, total_payable);
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

/// What the children loop reads of a position, packed: behaviour, group, template and its
/// per-order limit, the tie-break key (dense ranks of expiry, then id, in one number),
/// exclusive, promotion, combines with promotions, and whether it is its template's last
/// position.
#[derive(Clone, Copy)]
struct Pos {
    beh: u32,
    gid: u32,
    tid: u32,
    per_order: u32,
    tie: u64,
    excl: bool,
    promo: bool,
    withp: bool,
    last_of_template: bool,
}

/// The candidates of one behaviour in one stacking group, by position in canonical order.
struct Pair {
    beh: usize,
    group: usize,
    positions: Vec<usize>,
}

impl Pair {
    /// How many of them sit at or after position `k`.
    fn from(&self, k: usize) -> usize {
        self.positions.len() - self.positions.partition_point(|&p| p < k)
    }
}

/// A small multiplicative hasher for the search's memo (keys are short integer vectors made
/// here, never attacker-chosen strings, so a keyed hash buys nothing) and the promotion
/// index (keys are the merchant's own SKUs, categories and shops).
#[derive(Default)]
pub(crate) struct Fx(u64);

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for chunk in words.by_ref() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// A hash map keyed by [`Fx`], for the searches' memo tables.
pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Identifies a node for dominance: two chosen prefixes with the same next position, the same
/// state left and the same stacking constraints in force have exactly the same completions.
/// States and constraint vectors are interned: the key is their numbers.
type MemoKey = (u32, u32, u32);

/// One depth's working memory, reused by every node at that depth (no allocation per node
/// once the buffers have grown).
#[derive(Default)]
struct Frame {
    /// Behaviours that save nothing on this node's state (or can never join its subtree).
    dead: Vec<bool>,
    /// Each live behaviour's saving on this node's state; the number of the state it leaves
    /// in `child[b]`, what is left to pay on it in `pay[b]`.
    after: Vec<Option<i64>>,
    child: Vec<u32>,
    pay: Vec<i64>,
    /// Behaviours leaving this state alike (see the effects in [`Search::node`]).
    effect: Vec<usize>,
    /// Distinct effects so far by the first group of their behaviour: saving, exclusive,
    /// with promotions, behaviour.
    effects: Vec<Vec<(i64, bool, bool, usize)>>,
    /// Live pairs by group, each group's by marginal saving, highest first: (marginal, pair).
    ranked: Vec<(i64, usize)>,
    /// Where each group's pairs start in `ranked` (one more entry than groups).
    group_start: Vec<usize>,
    seen: Vec<SiblingKey>,
    children: Vec<(i64, usize)>,
}

struct Search<'a> {
    /// Candidates in canonical order.
    sorted: &'a [&'a Prepared],
    /// Per position, packed for the children loop.
    pos: Vec<Pos>,
    /// Per position: the dense rank of its expiry key and of its id (see [`tie_break`]).
    expiry_rank: Vec<u32>,
    id_rank: Vec<u32>,
    /// A remembered prefix, as positions.
    prev: Vec<usize>,
    /// `next_forced[k]`: the first forced position at or after `k` (`n` when none).
    next_forced: Vec<usize>,
    /// Behaviour of each position; its first and last positions.
    beh: Vec<usize>,
    beh_rep: Vec<usize>,
    beh_last: Vec<usize>,
    /// The stacking groups each behaviour's offers belong to.
    beh_groups: Vec<Vec<usize>>,
    /// Whether each behaviour is exclusive (part of its signature).
    beh_excl: Vec<bool>,
    /// Per position: exclusive, promotion, combines with promotions.
    excl: Vec<bool>,
    promo: Vec<bool>,
    withp: Vec<bool>,
    gid: Vec<usize>,
    caps: Vec<u32>,
    pairs: Vec<Pair>,
    tid: Vec<u32>,
    /// Chosen members per template.
    tcount: Vec<u32>,
    template_last: Vec<usize>,
    ctx: &'a CartCtx,
    policy: &'a StackingPolicy,
    budget: u64,
    spent: u64,
    exhausted: bool,
    /// When exhausted: the largest bound of a branch left unexplored.
    open_bound: i64,
    /// Best set so far, as positions in canonical order, and its saving.
    best: Option<(Vec<usize>, i64)>,
    chosen: Vec<&'a Prepared>,
    chosen_pos: Vec<usize>,
    used: Vec<u32>,
    coupons_used: u32,
    /// Chosen promotions, chosen offers refusing promotions, chosen exclusive offers.
    n_promo: u32,
    n_refuse: u32,
    n_excl: u32,
    /// Explored nodes and the chosen prefix that explored them (start and length in
    /// `prefixes`).
    memo: FxMap<MemoKey, (u32, u32)>,
    prefixes: Vec<u32>,
    /// Pairs of each group.
    group_pairs: Vec<Vec<usize>>,
    /// Positions of each group, ascending.
    group_positions: Vec<Vec<usize>>,
    /// Per group, aligned with `group_positions`: the least expiry rank and the least id rank
    /// of its positions from that one on (what a completion could add at best to a set's
    /// tie-break key; see [`Search::may_win_tie`]).
    group_least: Vec<Vec<(u32, u32)>>,
    /// The best set's tie-break key, when it has at most [`TIE_KEY`] members.
    best_key: Option<TieKey>,
    /// States as `width` numbers (the residual of every line, then shipping), interned for
    /// the memo.
    width: usize,
    state_ids: FxMap<Vec<i64>, u32>,
    /// The interned states, `width` numbers each, and what is left to pay on each.
    store: Vec<i64>,
    pays: Vec<i64>,
    /// Behaviours applied to states: `(state, behaviour)` → (saving, state left), the state
    /// `u32::MAX` when it saves nothing.
    marg: FxMap<(u32, u32), (i64, u32)>,
    tmp: Vec<i64>,
    cons_ids: FxMap<Vec<u32>, u32>,
    cons_buf: Vec<u32>,
    /// The state an offer is applied to.
    scratch: State,
    frames: Vec<Frame>,
}

impl<'a> Search<'a> {
    /// Spends `units` of the budget; `false` (and the search is over) when it is gone.
    fn spend(&mut self, units: u64) -> bool {
        self.spent = self.spent.saturating_add(units);
        if self.spent > self.budget {
            self.exhausted = true;
        }
        !self.exhausted
    }

    /// The number of `state`, interning it if new.
    fn intern(&mut self, state: &[i64]) -> u32 {
        if let Some(&id) = self.state_ids.get(state) {
            return id;
        }
        let id = self.state_ids.len() as u32;
        self.state_ids.insert(state.to_vec(), id);
        self.store.extend_from_slice(state);
        self.pays.push(state.iter().sum());
        id
    }

    /// Behaviour `b` applied to state `sid`: its saving and the number of the state it
    /// leaves, `None` when it saves nothing. A state reached by several prefixes (the same
    /// behaviour at several positions, say) is one number, so each pair is applied once.
    fn marginal(&mut self, sid: u32, b: usize) -> Option<(i64, u32)> {
        if let Some(&(s, child)) = self.marg.get(&(sid, b as u32)) {
            return (child != u32::MAX).then_some((s, child));
        }
        self.load(sid);
        let p = self.sorted[self.beh_rep[b]];
        let out = match apply(p, self.ctx, &mut self.scratch, self.policy, None) {
            Ok(s) => {
                let mut tmp = std::mem::take(&mut self.tmp);
                tmp.clear();
                tmp.extend_from_slice(&self.scratch.residual);
                tmp.push(self.scratch.shipping);
                let child = self.intern(&tmp);
                self.tmp = tmp;
                (s, child)
            }
            Err(_) => (0, u32::MAX),
        };
        self.marg.insert((sid, b as u32), out);
        (out.1 != u32::MAX).then_some(out)
    }

    /// Loads state `sid` into the scratch state.
    fn load(&mut self, sid: u32) {
        let w = self.width;
        let lines = w - 1;
        let state = &self.store[sid as usize * w..(sid as usize + 1) * w];
        self.scratch.residual.copy_from_slice(&state[..lines]);
        self.scratch.shipping = state[lines];
        // Flat states have every line at its even split (a set holds at most one unit offer,
        // and amounts read only a line's amount): runs a unit offer left on the scratch state
        // at another node are not this state's.
        self.scratch.uneven = None;
    }

    /// Adds position `j` to the chosen set, or (`add` false) takes it out again.
    fn toggle(&mut self, j: usize, add: bool) {
        let c = self.sorted[j];
        let step = |x: &mut u32, on: bool| count_in(x, on, add);
        step(&mut self.used[self.gid[j]], true);
        step(&mut self.coupons_used, !self.promo[j]);
        step(&mut self.n_promo, self.promo[j]);
        step(&mut self.n_refuse, !self.withp[j]);
        step(&mut self.n_excl, self.excl[j]);
        step(&mut self.tcount[self.tid[j] as usize], true);
        if add {
            self.chosen.push(c);
            self.chosen_pos.push(j);
        } else {
            self.chosen.pop();
            self.chosen_pos.pop();
        }
    }

    /// The number of the stacking constraints the chosen set puts on its completions from
    /// position `k`: members per group, coupons, whether it holds a promotion or an offer
    /// refusing them, an exclusive offer, and the templates of members that still have
    /// candidates at `k` or after (for per-order limits).
    fn constraints(&mut self, k: usize) -> u32 {
        self.cons_buf.clear();
        self.cons_buf.extend_from_slice(&self.used);
        self.cons_buf.push(self.coupons_used);
        let flags = u32::from(self.n_promo > 0)
            | u32::from(self.n_refuse > 0) << 1
            | u32::from(self.n_excl > 0) << 2;
        self.cons_buf.push(flags);
        let from = self.cons_buf.len();
        for &p in &self.chosen_pos {
            let t = self.tid[p];
            if self.template_last[t as usize] >= k {
                self.cons_buf.push(t);
            }
        }
        self.cons_buf[from..].sort_unstable();
        if let Some(&id) = self.cons_ids.get(self.cons_buf.as_slice()) {
            return id;
        }
        let id = self.cons_ids.len() as u32;
        self.cons_ids.insert(self.cons_buf.clone(), id);
        id
    }

    /// [`tie_break`] between two sets of positions, by their keys' ranks (no allocation for
    /// sets of up to 16).
    fn tie_cmp(&self, a: &[usize], b: &[usize]) -> Ordering {
        let key = |set: &[usize]| TieKey::of(set, &self.expiry_rank, &self.id_rank);
        match (key(a), key(b)) {
            (Some(ka), Some(kb)) => ka.cmp_tie(&kb),
            _ => {
                let pa: Vec<&Prepared> = a.iter().map(|&k| self.sorted[k]).collect();
                let pb: Vec<&Prepared> = b.iter().map(|&k| self.sorted[k]).collect();
                tie_break(&pa, &pb)
            }
        }
    }

    /// Whether some completion of the chosen set (and `extra`, when given) by positions from
    /// `start` on could win the tie-break against the best set: `false` only when none can,
    /// so a subtree that can at most tie the best on saving is left unexplored.
    ///
    /// A completion adds at most `room(g)` offers of each group `g` from `start` on, none with
    /// an expiry rank below the group's least from there (`group_least`). The tie-break
    /// compares sorted rank sequences lexicographically; adding a rank `c` to a sorted
    /// sequence `T` makes it smaller exactly when `c < max T` (`c` takes the place of a larger
    /// element; a `c ≥ max T` only lengthens `T`, and a proper prefix is smaller), and adding
    /// such ranks leaves `max T` as it was. So the least key any completion can reach is `T`
    /// with every group's least rank below `max T`, `room(g)` times (lower ranks than the
    /// real ones can only lower it) — checked for expiries, then, when those can at best tie,
    /// for ids. Constraints ignored here (templates' per-order limits, the coupon count, the
    /// promotion flags, whether an offer saves anything) only make the bound looser.
    fn may_win_tie(&self, extra: Option<usize>, start: usize) -> bool {
        let Some(best) = &self.best_key else {
            return true;
        };
        if self.caps.len() > TIE_GROUPS {
            return true;
        }
        let mut key = TieKey::default();
        for &k in self.chosen_pos.iter().chain(extra.iter()) {
            if !key.push(self.expiry_rank[k], self.id_rank[k]) {
                return true;
            }
        }
        let (max_e, max_i) = key.max();
        let extra_group = extra.map(|j| self.gid[j]);
        for g in 0..self.caps.len() {
            let used = self.used[g] + u32::from(extra_group == Some(g));
            let room = self.caps[g].saturating_sub(used);
            if room == 0 {
                continue;
            }
            let i = self.group_positions[g].partition_point(|&p| p < start);
            let Some(&(least_e, least_i)) = self.group_least[g].get(i) else {
                continue;
            };
            for _ in 0..room {
                let e = (least_e < max_e).then_some(least_e);
                let i = (least_i < max_i).then_some(least_i);
                if e.is_none() && i.is_none() {
                    break;
                }
                if !key.add(e, i) {
                    return true;
                }
            }
        }
        key.sort();
        key.cmp_tie(best) == Ordering::Less
    }

    /// Whether the chosen set is as good as or better than the best, and replaces it if so.
    fn consider(&mut self, saving: i64) {
        let replace = match &self.best {
            None => true,
            Some((_, bs)) if saving != *bs => saving > *bs,
            Some((b, _)) => self.tie_cmp(&self.chosen_pos, b) == Ordering::Less,
        };
        if replace {
            self.best_key = TieKey::of(&self.chosen_pos, &self.expiry_rank, &self.id_rank);
            self.best = Some((self.chosen_pos.clone(), saving));
        }
    }

    /// The most that offers at positions `k..` can add to a set that leaves `payable` to pay,
    /// with `left[g]` places in group `g` (one fewer in `minus`), given the live behaviours'
    /// savings on the node's state ranked per group in `f`: the best `left[g]` of them per
    /// group, never more than what is left to pay. See the module docs (the bound).
    fn room(
        &self,
        f: &Frame,
        k: usize,
        payable: i64,
        skip_exclusive: bool,
        minus: Option<usize>,
    ) -> i64 {
        let mut total = 0i64;
        for g in 0..self.caps.len() {
            let used = self.used[g] + u32::from(minus == Some(g));
            let mut want = self.caps[g].saturating_sub(used) as usize;
            if want == 0 {
                continue;
            }
            for &(m, pi) in &f.ranked[f.group_start[g]..f.group_start[g + 1]] {
                let pr = &self.pairs[pi];
                if self.beh_last[pr.beh] < k || (skip_exclusive && self.beh_excl[pr.beh]) {
                    continue;
                }
                let take = want.min(pr.from(k));
                total = total.saturating_add(m.saturating_mul(take as i64));
                want -= take;
                if want == 0 {
                    break;
                }
            }
            if total >= payable {
                return payable;
            }
        }
        total.min(payable)
    }

    /// The live behaviours' savings on this node's state (see [`Frame::after`]); `false`
    /// when the budget ran out.
    #[inline(never)]
    fn marginals(&mut self, f: &mut Frame, k: usize, sid: u32, dead: &[bool], bound: i64) -> bool {
        // Each live behaviour still to come, applied to this state.
        let skip_exclusive = !self.chosen.is_empty();
        f.dead.clear();
        f.dead.extend_from_slice(dead);
        f.after.clear();
        f.after.resize(dead.len(), None);
        f.child.resize(dead.len(), u32::MAX);
        f.pay.resize(dead.len(), 0);
        for b in 0..dead.len() {
            if f.dead[b] || self.beh_last[b] < k {
                continue;
            }
            // Exclusive offers never join a non-empty set, and no offer joins a full group:
            // both only get truer as the set grows, so the behaviour is out of this subtree.
            let full = self.beh_groups[b]
                .iter()
                .all(|&g| self.used[g] >= self.caps[g]);
            if (skip_exclusive && self.beh_excl[b]) || full {
                f.dead[b] = true;
                continue;
            }
            if !self.spend(1) {
                self.open_bound = self.open_bound.max(bound);
                return false;
            }
            match self.marginal(sid, b) {
                Some((s, child)) => {
                    f.child[b] = child;
                    f.pay[b] = self.pays[child as usize];
                    f.after[b] = Some(s);
                }
                None => f.dead[b] = true,
            }
        }
        true
    }

    /// Effects of the live behaviours, and their marginals ranked per group.
    #[inline(never)]
    fn effects_and_ranks(&mut self, f: &mut Frame, k: usize) {
        // Effects: behaviours that leave this state in the same state, with the same
        // exclusivity and stance on promotions, are one effect here (e.g. free shipping scoped
        // to different lines). Only behaviours of the same first group are compared (sibling
        // dominance needs the same group anyway; a finer partition is as sound).
        f.effect.clear();
        f.effects.resize_with(self.caps.len(), Vec::new);
        for v in &mut f.effects {
            v.clear();
        }
        for b in 0..f.after.len() {
            let mut e = b;
            if let Some(sb) = f.after[b] {
                let (xb, wb) = (
                    self.beh_excl[b],
                    self.sorted[self.beh_rep[b]].with_promotions,
                );
                let st = f.child[b];
                let g = self.beh_groups[b].first().copied().unwrap_or(0);
                match f.effects[g]
                    .iter()
                    .find(|x| (x.0, x.1, x.2) == (sb, xb, wb) && f.child[x.3] == st)
                {
                    Some(x) => e = x.3,
                    None => f.effects[g].push((sb, xb, wb, b)),
                }
            }
            f.effect.push(e);
        }
        // The live pairs by group, highest marginal first, for the bounds.
        f.ranked.clear();
        f.group_start.clear();
        for g in 0..self.caps.len() {
            f.group_start.push(f.ranked.len());
            let from = f.ranked.len();
            for &pi in &self.group_pairs[g] {
                let pr = &self.pairs[pi];
                if self.beh_last[pr.beh] < k {
                    continue;
                }
                if let Some(m) = f.after[pr.beh] {
                    f.ranked.push((m, pi));
                }
            }
            f.ranked[from..].sort_unstable_by_key(|t| std::cmp::Reverse(t.0));
        }
        f.group_start.push(f.ranked.len());
    }

    /// The children of the node worth exploring, with their bounds, in `f.children`.
    #[inline(never)]
    fn children(&mut self, f: &mut Frame, k: usize, last: usize, free: bool, saving: i64) {
        let n = self.sorted.len();
        // Per (effect, group, source): the best tie-break key of a child kept so far that
        // leaves no later candidate of its template.
        f.seen.clear();
        f.children.clear();
        if self.n_excl > 0 {
            return;
        }
        // Whether position `j` may join the chosen set is exactly `conflict(..).is_none()`:
        // the set's part of it read once here, the position's from its packed facts.
        let nonempty = !self.chosen.is_empty();
        let (has_promo, has_refuse) = (self.n_promo > 0, self.n_refuse > 0);
        let coupons_full = self.coupons_used >= self.policy.max_coupons;
        let mut visit = |j: usize| {
            let ps = self.pos[j];
            let b = ps.beh as usize;
            let Some(s) = f.after[b] else { return };
            if (ps.excl && nonempty)
                || (has_promo && !ps.withp)
                || (ps.promo && has_refuse)
                || (!ps.promo && coupons_full)
            {
                return;
            }
            let g = ps.gid as usize;
            if self.used[g] >= self.caps[g] || self.tcount[ps.tid as usize] >= ps.per_order {
                return;
            }
            // Sibling dominance: an earlier child of the same effect, group and source leaves
            // the same state (hence the same saving) under the same constraints, with every
            // completion of this one still open to it (its next position is smaller); if its
            // expiry and id are no worse, the set with it wins every tie (replacing one member
            // of a set by one expiring no later, or as late with a smaller id, never makes the
            // sorted keys larger), so this child's sets are never the best.
            if free && ps.last_of_template {
                // Only the best key kept per (effect, group, source) matters: a child is
                // dominated exactly when that one is no worse. Keys: the dense ranks of
                // expiry, then id, in one number (the same order).
                let at = (f.effect[b], g, ps.promo);
                match f.seen.iter_mut().find(|x| (x.0, x.1, x.2) == at) {
                    Some(x) if x.3 <= ps.tie => return,
                    Some(x) => x.3 = ps.tie,
                    None => f.seen.push((at.0, at.1, at.2, ps.tie)),
                }
            }
            // The child's completions are among this node's, each saving at most its
            // marginal here.
            let child_room = if j + 1 < n && !ps.excl {
                self.room(f, j + 1, f.pay[b], true, Some(g))
            } else {
                0
            };
            f.children
                .push((saving.saturating_add(s).saturating_add(child_room), j));
        };
        if last + 1 == n {
            // Group by group, each group's positions in order: a full group's are skipped
            // whole. The same children: what a position's visit reads and writes is its own
            // group's (the dominance keys hold the group), and the children are sorted after.
            for (g, positions) in self.group_positions.iter().enumerate() {
                if self.used[g] >= self.caps[g] {
                    continue;
                }
                let from = positions.partition_point(|&p| p < k);
                for &j in &positions[from..] {
                    visit(j);
                }
            }
        } else {
            for j in k..=last {
                visit(j);
            }
        }
    }

    /// Explores the node of the chosen set (next position `k`, leaving `state`, saving
    /// `saving`); `dead[b]`: behaviour `b` saves nothing on the state (nor on anything less);
    /// `bound`: the parent's bound on this node, recorded if the budget runs out here.
    fn node(&mut self, k: usize, sid: u32, saving: i64, dead: &[bool], bound: i64) {
        let depth = self.chosen.len();
        if self.frames.len() <= depth {
            self.frames.resize_with(depth + 1, Frame::default);
        }
        let mut f = std::mem::take(&mut self.frames[depth]);
        self.expand(&mut f, k, sid, saving, dead, bound);
        self.frames[depth] = f;
    }

    /// [`Search::node`] with this depth's working memory.
    fn expand(
        &mut self,
        f: &mut Frame,
        k: usize,
        sid: u32,
        saving: i64,
        dead: &[bool],
        bound: i64,
    ) {
        let n = self.sorted.len();
        if self.chosen.is_empty() && self.next_forced[k] == n {
            // The empty set first, whatever the budget.
            self.consider(saving);
        }
        if !self.spend(1) {
            self.open_bound = self.open_bound.max(bound);
            return;
        }
        let key = (k as u32, sid, self.constraints(k));
        if let Some(&(start, len)) = self.memo.get(&key) {
            let (start, len) = (start as usize, len as usize);
            let mut prev = std::mem::take(&mut self.prev);
            prev.clear();
            prev.extend(
                self.prefixes[start..start + len]
                    .iter()
                    .map(|&p| p as usize),
            );
            let order = self.tie_cmp(&prev, &self.chosen_pos);
            self.prev = prev;
            if order != Ordering::Greater {
                // Same completions, same savings, and the earlier prefix wins every tie.
                return;
            }
        }
        let start = self.prefixes.len() as u32;
        self.prefixes
            .extend(self.chosen_pos.iter().map(|&p| p as u32));
        self.memo.insert(key, (start, self.chosen_pos.len() as u32));
        let forced_next = self.next_forced[k];
        if forced_next == n {
            self.consider(saving);
        }
        if k == n || self.n_excl > 0 {
            return;
        }
        let skip_exclusive = !self.chosen.is_empty();
        if !self.marginals(f, k, sid, dead, bound) {
            return;
        }
        if forced_next < n && f.dead[self.beh[forced_next]] {
            return;
        }
        self.effects_and_ranks(f, k);
        let payable = self.pays[sid as usize];
        let room = self.room(f, k, payable, skip_exclusive, None);
        let ub = saving.saturating_add(room);
        match &self.best {
            Some((_, b)) if ub < *b => return,
            Some((_, b)) if ub == *b && !self.may_win_tie(None, k) => return,
            _ => {}
        }
        let last = forced_next.min(n - 1);
        // Sibling dominance applies among children that need no forced offer later.
        let free = forced_next == n;
        self.children(f, k, last, free, saving);
        // Most promising first, so a good incumbent cuts the rest early.
        f.children
            .sort_unstable_by_key(|&(child_ub, j)| (std::cmp::Reverse(child_ub), j));
        for i in 0..f.children.len() {
            let (child_ub, j) = f.children[i];
            match &self.best {
                Some((_, bb)) if child_ub < *bb => continue,
                Some((_, bb)) if child_ub == *bb && !self.may_win_tie(Some(j), j + 1) => continue,
                _ => {}
            }
            let b = self.beh[j];
            let Some(s) = f.after[b] else { continue };
            self.toggle(j, true);
            let full = self.used.iter().zip(&self.caps).all(|(u, cap)| u >= cap);
            if full || self.excl[j] {
                // Nothing can join the child: it is a set to consider, not a node to expand.
                if self.spend(1) {
                    if self.next_forced[j + 1] == n {
                        self.consider(saving.saturating_add(s));
                    }
                } else {
                    self.open_bound = self.open_bound.max(child_ub);
                }
            } else {
                self.node(
                    j + 1,
                    f.child[b],
                    saving.saturating_add(s),
                    &f.dead,
                    child_ub,
                );
            }
            self.toggle(j, false);
            if self.exhausted {
                self.open_bound = self.open_bound.max(ub);
                return;
            }
        }
    }
}

/// Members of a set whose tie-break key [`Search::may_win_tie`] reasons about (larger sets
/// are never pruned by it).
const TIE_KEY: usize = 32;

/// Stacking groups up to which [`Search::may_win_tie`] looks for completions (more: it does
/// not prune).
const TIE_GROUPS: usize = 16;

/// A set's tie-break key: its expiry ranks and its id ranks, each sorted (see [`tie_break`]);
/// the two lists may differ in length while a bound is being built.
#[derive(Clone, Copy)]
struct TieKey {
    exp: [u32; TIE_KEY],
    ids: [u32; TIE_KEY],
    n_exp: usize,
    n_ids: usize,
}

impl Default for TieKey {
    fn default() -> TieKey {
        TieKey {
            exp: [0; TIE_KEY],
            ids: [0; TIE_KEY],
            n_exp: 0,
            n_ids: 0,
        }
    }
}

impl TieKey {
    /// The key of a set of positions, sorted; `None` for a set of more than [`TIE_KEY`].
    fn of(set: &[usize], expiry_rank: &[u32], id_rank: &[u32]) -> Option<TieKey> {
        let mut key = TieKey::default();
        for &k in set {
            if !key.push(expiry_rank[k], id_rank[k]) {
                return None;
            }
        }
        key.sort();
        Some(key)
    }

    /// Adds a member's ranks; `false` when full.
    fn push(&mut self, e: u32, i: u32) -> bool {
        self.add(Some(e), Some(i))
    }

    /// Adds an expiry rank and an id rank, each when given; `false` when full.
    fn add(&mut self, e: Option<u32>, i: Option<u32>) -> bool {
        if let Some(e) = e {
            let Some(slot) = self.exp.get_mut(self.n_exp) else {
                return false;
            };
            *slot = e;
            self.n_exp += 1;
        }
        if let Some(i) = i {
            let Some(slot) = self.ids.get_mut(self.n_ids) else {
                return false;
            };
            *slot = i;
            self.n_ids += 1;
        }
        true
    }

    /// The largest expiry rank and id rank (0 when empty).
    fn max(&self) -> (u32, u32) {
        (
            self.expiries().iter().copied().max().unwrap_or(0),
            self.ids().iter().copied().max().unwrap_or(0),
        )
    }

    fn sort(&mut self) {
        let (ne, ni) = (self.n_exp, self.n_ids);
        self.exp[..ne].sort_unstable();
        self.ids[..ni].sort_unstable();
    }

    /// The tie-break between the sets of two keys ([`tie_break`]): expiries, then ids.
    fn cmp_tie(&self, other: &TieKey) -> Ordering {
        self.expiries()
            .cmp(other.expiries())
            .then_with(|| self.ids().cmp(other.ids()))
    }

    fn expiries(&self) -> &[u32] {
        &self.exp[..self.n_exp]
    }

    fn ids(&self) -> &[u32] {
        &self.ids[..self.n_ids]
    }
}

/// What sibling dominance compares: effect, group, whether a promotion, and the tie-break key
/// (the dense ranks of expiry, then id, in one number).
type SiblingKey = (usize, usize, bool, u64);
