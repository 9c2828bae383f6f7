//! Automated issuing benchmarks: one million mixed events over 100,000 users and 50 rules.
//!
//! - `issuing/decide/1M-events`: every event decided by the pure engine and recorded into the
//!   user's in-memory history (held by user index) and the ledger; the figure is per event
//!   (one decision each).
//!   Delayed triggers are in the stream already fired (the abandoned carts and long views a
//!   scheduler would feed back), beside the cart changes and page opens that schedule them.
//! - `issuing/carry/1M-events`: the same stream through [`Memory`] (histories by user id),
//!   every issue also carried out through [`Service::claim`] on a `MemoryStore`
//!   (notify-to-claim issues only prepare their claim).
//!
//! The stream is fixed (a SplitMix64 sequence), so every run measures the same decisions.
//! Run: `cargo bench -p coupons-benches --bench issuing` (or `-- decide`). For instruction
//! counts, `cargo bench -p coupons-benches --bench issuing -- --test decide` runs the workload
//! once more than `-- --test nothing` (which builds the stream and decides it once, for the
//! printed counts): the difference is one pass.

use std::hint::black_box;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use coupons::cart::CustomerKind;
use coupons::id::{MembershipLevel, OrderId, SegmentId, ShopId, Sku, TemplateId, UserId};
use coupons::issuing::*;
use coupons::money::{Currency, Money};
use coupons::repository::MemoryStore;
use coupons::rule::{Benefit, Span, TemplateSpec, Validity};
use coupons::service::Service;
use coupons::targeting::{Lifecycle, RfmSegment};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const USERS: usize = 100_000;
const EVENTS: usize = 1_000_000;
const CNY: Currency = Currency::CNY;

fn m(minor: i64) -> Money {
    Money::from_minor(minor, CNY)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn tid(s: &str) -> TemplateId {
    TemplateId::new(s).expect("template id")
}

fn one(t: &str, fen: i64) -> Offer {
    Offer::template(tid(t), m(fen))
}

fn by_segment() -> Offer {
    Offer::by_segment(
        vec![
            (Lifecycle::New, Choice::new(tid("first-order"), m(500))),
            (Lifecycle::Dormant, Choice::new(tid("win-back"), m(800))),
            (Lifecycle::HighValue, Choice::new(tid("vip"), m(2000))),
            (Lifecycle::ChurnRisk, Choice::new(tid("care"), m(1000))),
        ],
        Some(Choice::new(tid("general"), m(300))),
    )
}

/// Fifty rules over every trigger, with audiences, choices by segment, budgets and cooldowns.
fn rules() -> Vec<Rule> {
    let level = |s: &str| MembershipLevel::new(s).expect("level");
    let seg = |s: &str| SegmentId::new(s).expect("segment");
    let gold = Audience {
        levels: [level("gold")].into(),
        ..Audience::default()
    };
    let new_users = Audience {
        kind: Some(CustomerKind::New),
        ..Audience::default()
    };
    let at_risk = Audience {
        rfm: [RfmSegment::AtRisk, RfmSegment::CantLose].into(),
        ..Audience::default()
    };
    let vip_seg = Audience {
        segments: [seg("vip"), seg("frequent")].into(),
        excluded: [seg("staff")].into(),
        ..Audience::default()
    };
    let audiences = [Audience::default(), gold, new_users, at_risk, vip_seg];
    let budget = |i: usize| BudgetId::new(format!("budget-{}", i % 3)).expect("budget");
    let mut out = Vec::new();
    let mut push = |i: usize, trigger: Trigger, offer: Offer| {
        let mut s = RuleSpec::new(
            RuleId::new(format!("rule-{i:02}")).expect("rule id"),
            trigger,
            offer,
        );
        s.audience = audiences[i % audiences.len()].clone();
        s.message = [
            Some(Message::Push),
            Some(Message::InApp),
            None,
            Some(Message::Sms),
        ][i % 4];
        s.delivery = if i % 3 == 0 {
            Delivery::NotifyToClaim
        } else {
            Delivery::AutoClaim
        };
        s.cooldown_minutes = (i % 5 == 0).then_some(3 * 24 * 60);
        s.budget = (i % 4 == 1).then(|| budget(i));
        s.campaign = None;
        out.push(s.build().expect("rule"));
    };
    let occasions = ["singles-day", "double-twelve", "black-friday"];
    for i in 0..50 {
        let offer = if i % 2 == 0 {
            by_segment()
        } else {
            one(&format!("t-{i:02}"), 100 + 50 * i as i64)
        };
        let trigger = match i % 14 {
            0 => Trigger::Registration,
            1 => Trigger::FirstPurchase,
            2 => Trigger::SpendReached {
                level: m(10_000 * (1 + i as i64 % 5)),
            },
            3 => Trigger::MembershipChanged { to: None },
            4 => Trigger::CartAbandoned {
                after_minutes: if i % 28 == 4 { 30 } else { 120 },
            },
            5 => Trigger::product_viewed(),
            6 => Trigger::Birthday,
            7 => Trigger::Occasion {
                name: Occasion::new(occasions[i % 3]).expect("occasion"),
            },
            8 => Trigger::ShopAnniversary,
            9 => Trigger::InvitationAccepted,
            10 => Trigger::ShareClicked,
            11 => Trigger::Dormancy,
            12 => Trigger::AliveBelow { threshold: 0.3 },
            _ => Trigger::OrderRefunded,
        };
        push(i, trigger, offer);
    }
    out
}

fn policy() -> Policy {
    let mut p = Policy::new(CNY)
        .cap(FrequencyCap::new(2, Window::Rolling { days: 7 }, Some(Message::Push)).expect("cap"))
        .cap(FrequencyCap::new(6, Window::Calendar { days: 7 }, None).expect("cap"))
        .quiet(QuietHours::new(22 * 60, 8 * 60).expect("quiet"));
    for i in 0..3 {
        let id = BudgetId::new(format!("budget-{i}")).expect("budget");
        p = p.budget(Budget::new(id, Some(m(50_000_000)), Some(100_000)).expect("budget"));
    }
    p
}

struct Workload {
    engine: Engine,
    profiles: Vec<Profile>,
    /// (user index, at, occurrence), in time order.
    events: Vec<(usize, DateTime<Utc>, Occurrence)>,
    templates: Vec<TemplateId>,
}

fn workload() -> &'static Workload {
    static W: OnceLock<Workload> = OnceLock::new();
    W.get_or_init(build)
}

fn build() -> Workload {
    let mut rng = Rng(2026);
    let levels = ["silver", "gold", "platinum"];
    // Segment ids interned, as a decider holding many profiles would keep them.
    let segs: Vec<SegmentId> = ["vip", "frequent", "staff", "students"]
        .into_iter()
        .map(|s| SegmentId::new(s).expect("segment"))
        .collect();
    let levels_interned: Vec<MembershipLevel> = levels
        .iter()
        .map(|l| MembershipLevel::new(l).expect("level"))
        .collect();
    let profiles: Vec<Profile> = (0..USERS)
        .map(|u| {
            let offset = FixedOffset::east_opt(3600 * (rng.below(24) as i32 - 10))
                .unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc"));
            let mut p = Profile::new(UserId::new(format!("user-{u:06}")).expect("user"), offset);
            if rng.below(4) == 0 {
                p = p.kind(CustomerKind::New);
            }
            if rng.below(2) == 0 {
                p = p.level(levels_interned[rng.below(3) as usize].clone());
            }
            p = p.lifecycle(Lifecycle::ALL[rng.below(5) as usize]);
            p = p.rfm(RfmSegment::ALL[rng.below(11) as usize]);
            for s in &segs {
                if rng.below(5) == 0 {
                    p = p.segment(s.clone());
                }
            }
            if rng.below(3) == 0 {
                p = p.last_order_at(t0() - Duration::days(rng.below(60) as i64));
            }
            p
        })
        .collect();
    let span = 30 * 86_400;
    let mut secs: Vec<i64> = (0..EVENTS).map(|_| rng.below(span) as i64).collect();
    secs.sort_unstable();
    let occasions = ["singles-day", "double-twelve", "black-friday"];
    let events = secs
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            let at = t0() + Duration::seconds(s);
            let u = rng.below(USERS as u64) as usize;
            let cart = || CartId::new(format!("cart-{u}-{}", k % 3)).expect("cart");
            let sku = || Sku::new(format!("sku-{}", k % 500)).expect("sku");
            let occurrence = match rng.below(20) {
                0 => Occurrence::Registration,
                1 => Occurrence::FirstPurchase {
                    order: OrderId::new(format!("o-{k}")).expect("order"),
                },
                2 | 3 => {
                    let amount = 1_000 + rng.below(30_000) as i64;
                    Occurrence::OrderPaid {
                        order: OrderId::new(format!("o-{k}")).expect("order"),
                        amount: m(amount),
                        cumulative: m(amount + rng.below(60_000) as i64),
                    }
                }
                4 => Occurrence::MembershipChanged {
                    from: None,
                    to: MembershipLevel::new(levels[k % 3]).expect("level"),
                },
                5 => Occurrence::CartChanged { cart: cart() },
                6 => Occurrence::CartAbandoned {
                    cart: cart(),
                    changed_at: at - Duration::minutes(30),
                    after_minutes: if k % 2 == 0 { 30 } else { 120 },
                },
                7 => Occurrence::ViewStarted { product: sku() },
                8 => Occurrence::ProductViewed {
                    product: sku(),
                    started_at: at - Duration::minutes(3),
                    minutes: 3,
                },
                9 => Occurrence::ViewEnded { product: sku() },
                10 => Occurrence::Birthday,
                11 => Occurrence::Occasion {
                    name: Occasion::new(occasions[k % 3]).expect("occasion"),
                },
                12 => Occurrence::ShopAnniversary {
                    shop: ShopId::new(format!("shop-{}", k % 50)).expect("shop"),
                    years: 1 + (k % 3) as u32,
                },
                13 => Occurrence::InvitationAccepted {
                    invitee: UserId::new(format!("friend-{k}")).expect("user"),
                },
                14 | 15 => Occurrence::ShareClicked {
                    clicker: UserId::new(format!("friend-{}", k % 1000)).expect("user"),
                },
                16 => Occurrence::DormancyDetected {
                    since: t0() - Duration::days(90 + (u % 30) as i64),
                },
                17 | 18 => Occurrence::AliveDropped {
                    p_alive: rng.below(1000) as f64 / 1000.0,
                },
                _ => Occurrence::OrderRefunded {
                    order: OrderId::new(format!("o-{}", k / 2)).expect("order"),
                },
            };
            (u, at, occurrence)
        })
        .collect();
    let engine = Engine::new(policy(), rules()).expect("engine");
    let mut templates: Vec<TemplateId> = engine
        .rules()
        .iter()
        .flat_map(|r| r.offer().choices().map(|c| c.template.clone()))
        .collect();
    templates.sort();
    templates.dedup();
    Workload {
        engine,
        profiles,
        events,
        templates,
    }
}

/// The state a decider keeps in memory: each user's history (by the user's index, as a
/// decider that loads a user's profile and history together would hold them) and the ledger.
struct State {
    histories: Vec<UserHistory>,
    ledger: Ledger,
}

fn fresh() -> State {
    State {
        histories: vec![UserHistory::new(); USERS],
        ledger: Ledger::new(CNY),
    }
}

/// Decides and records the whole stream; returns (issues, held).
fn decide_all(w: &Workload, state: &mut State) -> (usize, usize) {
    let (mut issues, mut held) = (0, 0);
    for (u, at, occurrence) in &w.events {
        let history = &mut state.histories[*u];
        let d = w
            .engine
            .decide(&w.profiles[*u], occurrence, history, &state.ledger, *at);
        d.record(history, &mut state.ledger).expect("record");
        issues += d.issues.len();
        held += d.held.len();
        black_box(&d);
    }
    (issues, held)
}

fn service(w: &Workload) -> Service<MemoryStore> {
    let service = Service::new(MemoryStore::with_capacity(EVENTS));
    let now = t0() - Duration::days(1);
    for t in &w.templates {
        let spec = TemplateSpec::new(
            t.clone(),
            "gift",
            CNY,
            Benefit::instant(m(1000)).expect("benefit"),
            Validity::relative(Span::Days(30), None).expect("validity"),
        );
        service
            .create_template(spec.build().expect("template"), now)
            .expect("create");
        service.submit_template(t, now).expect("submit");
        service.approve_template(t, now).expect("approve");
        service.activate_template(t, now).expect("activate");
    }
    service
}

fn carry_all(w: &Workload, memory: &mut Memory, service: &Service<MemoryStore>) -> usize {
    let mut claimed = 0;
    for (u, at, occurrence) in &w.events {
        // Decided and recorded first (one lookup of the user), then carried out: a claim that
        // fails can be carried again under the same key.
        let profile = &w.profiles[*u];
        let d = memory
            .apply(&w.engine, profile, occurrence, *at)
            .expect("record");
        if d.issues.is_empty() {
            continue;
        }
        for out in carry(service, &profile.user, &d, *at) {
            if let Ok(Carried::Claimed(_)) = out.result {
                claimed += 1;
            }
        }
    }
    claimed
}

fn decide(c: &mut Criterion) {
    let w = workload();
    let (issues, held) = decide_all(w, &mut fresh());
    eprintln!("issuing/decide: {EVENTS} events, {issues} issues, {held} held back");
    let mut g = c.benchmark_group("issuing/decide");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("1M-events", |b| {
        b.iter_batched(
            fresh,
            |mut state| {
                black_box(decide_all(w, &mut state));
                state // dropped outside the measurement
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn carry_out(c: &mut Criterion) {
    let w = workload();
    let mut g = c.benchmark_group("issuing/carry");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("1M-events", |b| {
        b.iter_batched(
            || (Memory::new(CNY), service(w)),
            |(mut memory, service)| {
                black_box(carry_all(w, &mut memory, &service));
                (memory, service)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, decide, carry_out);
criterion_main!(benches);
