//! The fast fold (interned dimensions, groups by dense ids) against a reference fold written
//! straight from the definitions: a `BTreeMap` keyed by [`GroupKey`], orders joined and
//! repurchases decided after the whole feed is read.

// Test code only: every unwrap below is a test's assertion.
#[cfg(test)]
mod cases {

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};

    use super::super::*;
    use crate::attributes::{AttrKey, Attributes};
    use crate::events::{CouponFacts, Event, Refusal};
    use crate::id::{CampaignId, Channel};
    use crate::lifecycle::ClaimMode;

    /// SplitMix64.
    struct Mix(u64);

    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Segments and offer arms by the user's number; users ending in 0 have no segment, offers
    /// of template 0 no arm.
    struct Look;

    impl Lookup for Look {
        fn segment(&self, user: &UserId) -> Option<Arc<str>> {
            let last = *user.as_str().as_bytes().last()?;
            (last != b'0').then(|| Arc::from(["a", "b", "c"][usize::from(last) % 3]))
        }
        fn is_new(&self, user: &UserId, _at: DateTime<Utc>) -> Option<bool> {
            let last = *user.as_str().as_bytes().last()?;
            (last % 4 != 0).then_some(last % 2 == 0)
        }
        fn offer_arm(&self, template: &TemplateId, user: &UserId) -> Option<AttrValue> {
            if template.as_str().ends_with('0') {
                return None;
            }
            let last = *user.as_str().as_bytes().last()?;
            AttrValue::new(if last % 2 == 0 { "x" } else { "y" }).ok()
        }
        fn face_value(&self, template: &TemplateId) -> Option<Money> {
            // t0 is not valued; t1…t3 are worth 10, 20, 30 yuan.
            let n: i64 = template.as_str().strip_prefix('t')?.parse().ok()?;
            (n > 0).then(|| cny(1_000 * n))
        }
    }

    fn cny(minor: i64) -> Money {
        Money::from_minor(minor, Currency::CNY)
    }

    /// A random feed: offers, claims, orders with one to three coupons (payment before or after
    /// the coupons, as a store might log them in one commit), plain orders, expiries, voids,
    /// refunds, releases, refusals and events the report ignores, over a few days that cross
    /// midnight at +08:00.
    fn feed(seed: u64, journeys: usize) -> Vec<Logged> {
        let mut r = Mix(seed);
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
        let mut out: Vec<Logged> = Vec::new();
        let push = |out: &mut Vec<Logged>, at: DateTime<Utc>, kind: EventKind| {
            let seq = out.len() as u64 + 1;
            out.push(Logged {
                seq,
                event: Event::new(at, kind),
            });
        };
        let mut coupon_no = 0u64;
        for j in 0..journeys {
            let at = start + Duration::minutes((j as i64) * 37);
            let user = UserId::new(format!("u{}", r.below(12))).unwrap();
            let t = r.below(4);
            let template = TemplateId::new(format!("t{t}")).unwrap();
            let campaign = (t > 1).then(|| CampaignId::new(format!("k{}", t % 2)).unwrap());
            let channel = Channel::new(["app", "web"][r.below(2) as usize]).unwrap();
            let mut coupon = |r: &mut Mix| {
                coupon_no += 1;
                let mut attributes = Attributes::new();
                if let n @ 1..=2 = r.below(3) {
                    let v = if n == 1 { "control" } else { "treat" };
                    attributes
                        .insert(AttrKey::new("arm").unwrap(), AttrValue::new(v).unwrap())
                        .unwrap();
                }
                CouponFacts {
                    // Later coupons have smaller ids: an order's coupons arrive out of id order.
                    id: CouponId::new(format!("c{}", 10_000 - coupon_no)).unwrap(),
                    template: template.clone(),
                    user: user.clone(),
                    channel: channel.clone(),
                    campaign: campaign.clone(),
                    claimed_at: at - Duration::seconds(r.below(200_000) as i64),
                    attributes,
                }
            };
            match r.below(10) {
                0 => {
                    let order = OrderId::new(format!("p{j}")).unwrap();
                    push(
                        &mut out,
                        at,
                        EventKind::OrderPaid {
                            order: order.clone(),
                            user: user.clone(),
                            gross: cny(1_000 + r.below(9_000) as i64),
                            discount: cny(0),
                            coupons: 0,
                        },
                    );
                    if r.below(4) == 0 {
                        let later = at + Duration::hours(r.below(60) as i64);
                        push(
                            &mut out,
                            later,
                            EventKind::OrderRefunded {
                                order,
                                user: user.clone(),
                                by_merchant: r.below(2) == 0,
                                amount: cny(100 + r.below(900) as i64),
                                discount: cny(0),
                                whole: r.below(2) == 0,
                                coupons: Vec::new(),
                            },
                        );
                    }
                }
                1 => push(
                    &mut out,
                    at,
                    EventKind::Refused {
                        user: user.clone(),
                        template: template.clone(),
                        refusal: Refusal::OutOfStock,
                    },
                ),
                2 => push(
                    &mut out,
                    at,
                    EventKind::OrderReleased {
                        order: OrderId::new(format!("x{j}")).unwrap(),
                        user: user.clone(),
                    },
                ),
                3..=5 => {
                    let n = 1 + r.below(3) as u32;
                    let order = OrderId::new(format!("o{j}")).unwrap();
                    let mut used = Vec::new();
                    for _ in 0..n {
                        let c = coupon(&mut r);
                        // Equal savings sometimes, to exercise the tie on the smallest id.
                        used.push((c, cny(100 * (1 + r.below(2) as i64))));
                    }
                    let discount = used.iter().map(|u| u.1.to_minor().unwrap()).sum::<i64>();
                    let paid = EventKind::OrderPaid {
                        order: order.clone(),
                        user: user.clone(),
                        gross: cny(discount + 500 + r.below(5_000) as i64),
                        discount: cny(discount),
                        coupons: n,
                    };
                    let paid_first = r.below(4) == 0;
                    if paid_first {
                        push(&mut out, at, paid.clone());
                    }
                    let held: Vec<OrderCoupon> = used
                        .iter()
                        .map(|(c, saving)| OrderCoupon {
                            coupon: c.clone(),
                            saving: *saving,
                        })
                        .collect();
                    for (c, saving) in used {
                        push(
                            &mut out,
                            at,
                            EventKind::Redeemed {
                                coupon: c,
                                order: order.clone(),
                                saving,
                            },
                        );
                    }
                    if !paid_first {
                        push(&mut out, at, paid);
                    }
                    // Some are refunded later, once or twice (in part), on another day at times.
                    for _ in 0..r.below(3) {
                        let later = at + Duration::hours(1 + r.below(60) as i64);
                        push(
                            &mut out,
                            later,
                            EventKind::OrderRefunded {
                                order: order.clone(),
                                user: user.clone(),
                                by_merchant: r.below(2) == 0,
                                amount: cny(100 + r.below(900) as i64),
                                discount: cny(r.below(100) as i64),
                                whole: false,
                                coupons: held.clone(),
                            },
                        );
                    }
                }
                k => {
                    let c = coupon(&mut r);
                    // Some offers are recorded with their arm (then the lookup is not asked).
                    let mut attributes = Attributes::new();
                    if r.below(3) == 0 {
                        let v = AttrValue::new(["control", "treat"][r.below(2) as usize]).unwrap();
                        attributes.insert(AttrKey::new("arm").unwrap(), v).unwrap();
                    }
                    push(
                        &mut out,
                        at,
                        EventKind::Offered {
                            template: template.clone(),
                            user: user.clone(),
                            channel: channel.clone(),
                            campaign: campaign.clone(),
                            attributes,
                        },
                    );
                    push(
                        &mut out,
                        at,
                        EventKind::Issued {
                            coupon: c.clone(),
                            mode: ClaimMode::Click,
                        },
                    );
                    let order = OrderId::new(format!("r{j}")).unwrap();
                    let later = at + Duration::hours(r.below(30) as i64);
                    let kind = match k {
                        6 => EventKind::Expired { coupon: c },
                        7 => EventKind::Voided { coupon: c },
                        8 => EventKind::Refunded {
                            coupon: c,
                            order,
                            returned: r.below(2) == 0,
                            // Older events carry no saving.
                            saving: (r.below(4) != 0).then(|| cny(50 * (1 + r.below(5) as i64))),
                        },
                        _ => EventKind::Released { coupon: c, order },
                    };
                    push(&mut out, later, kind);
                }
            }
        }
        out
    }

    fn east8() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    fn config(repurchase: Option<u32>) -> ReportConfig {
        let c = ReportConfig::new(Currency::CNY, east8());
        match repurchase {
            Some(d) => c.repurchase_within_days(d),
            None => c,
        }
    }

    /// The reference fold, from the definitions in the module docs.
    fn reference(events: &[Logged], repurchase: Option<u32>) -> BTreeMap<GroupKey, Metrics> {
        let lookup = Look;
        let mut groups: BTreeMap<GroupKey, Metrics> = BTreeMap::new();
        let day = |at: DateTime<Utc>| at.with_timezone(&east8()).date_naive();
        let key = |c: &CouponFacts, at| GroupKey {
            day: day(at),
            template: Some(c.template.clone()),
            campaign: c.campaign.clone(),
            channel: Some(c.channel.clone()),
            segment: lookup.segment(&c.user),
            arm: c.attributes.get("arm").cloned(),
        };
        // Orders without a coupon: no template, campaign, channel or arm.
        let plain = |user: &UserId, at| GroupKey {
            day: day(at),
            template: None,
            campaign: None,
            channel: None,
            segment: lookup.segment(user),
            arm: None,
        };
        // Orders: their coupons (id, saving, key) and payment; buyers: their paid orders in order.
        let mut coupons: BTreeMap<OrderId, Vec<(CouponId, i128, GroupKey)>> = BTreeMap::new();
        let mut paid: BTreeMap<OrderId, (i128, u32)> = BTreeMap::new();
        let mut buys: BTreeMap<UserId, Vec<(i64, OrderId, bool)>> = BTreeMap::new();
        for e in events {
            let at = e.event.at;
            match &e.event.kind {
                EventKind::Offered {
                    template,
                    user,
                    channel,
                    campaign,
                    attributes,
                } => {
                    let k = GroupKey {
                        day: day(at),
                        template: Some(template.clone()),
                        campaign: campaign.clone(),
                        channel: Some(channel.clone()),
                        segment: lookup.segment(user),
                        arm: attributes
                            .get("arm")
                            .cloned()
                            .or_else(|| lookup.offer_arm(template, user)),
                    };
                    groups.entry(k).or_default().offered += 1;
                }
                EventKind::Issued { coupon, .. } => {
                    let g = groups.entry(key(coupon, at)).or_default();
                    g.claimed += 1;
                    if let Some(new) = lookup.is_new(&coupon.user, at) {
                        g.claimed_known += 1;
                        g.claimed_new += u64::from(new);
                    }
                }
                EventKind::Redeemed {
                    coupon,
                    order,
                    saving,
                } => {
                    let k = key(coupon, at);
                    let g = groups.entry(k.clone()).or_default();
                    g.used += 1;
                    g.discount_minor += saving.to_minor_i128();
                    g.time_to_use
                        .push((at - coupon.claimed_at).num_seconds().max(0) as u64);
                    coupons.entry(order.clone()).or_default().push((
                        coupon.id.clone(),
                        saving.to_minor_i128(),
                        k,
                    ));
                }
                EventKind::OrderPaid {
                    order,
                    user,
                    gross,
                    discount,
                    coupons: n,
                } => {
                    let amount = gross.to_minor_i128() - discount.to_minor_i128();
                    if *n == 0 {
                        let g = groups.entry(plain(user, at)).or_default();
                        g.plain_orders += 1;
                        g.plain_sales_minor += amount;
                        buys.entry(user.clone()).or_default().push((
                            at.timestamp(),
                            order.clone(),
                            false,
                        ));
                    } else {
                        paid.insert(order.clone(), (amount, *n));
                        buys.entry(user.clone()).or_default().push((
                            at.timestamp(),
                            order.clone(),
                            true,
                        ));
                    }
                }
                EventKind::Released { coupon, .. } => {
                    groups.entry(key(coupon, at)).or_default().released += 1;
                }
                EventKind::Expired { coupon } => {
                    let g = groups.entry(key(coupon, at)).or_default();
                    g.expired += 1;
                    if let Some(v) = lookup.face_value(&coupon.template) {
                        g.expired_valued += 1;
                        g.expired_value_minor += v.to_minor_i128();
                    }
                }
                EventKind::Voided { coupon } => {
                    let g = groups.entry(key(coupon, at)).or_default();
                    g.voided += 1;
                    if let Some(v) = lookup.face_value(&coupon.template) {
                        g.voided_valued += 1;
                        g.voided_value_minor += v.to_minor_i128();
                    }
                }
                EventKind::Refunded {
                    coupon,
                    returned,
                    saving,
                    ..
                } => {
                    let g = groups.entry(key(coupon, at)).or_default();
                    g.refunded += 1;
                    g.refunded_returned += u64::from(*returned);
                    if let Some(s) = saving {
                        g.refunded_valued += 1;
                        g.refunded_saving_minor += s.to_minor_i128();
                    }
                }
                EventKind::OrderRefunded {
                    user,
                    amount,
                    coupons,
                    ..
                } => {
                    let amount = amount.to_minor_i128();
                    let lead = coupons.iter().max_by(|a, b| {
                        (a.saving.to_minor_i128().cmp(&b.saving.to_minor_i128()))
                            .then(b.coupon.id.cmp(&a.coupon.id))
                    });
                    match lead {
                        Some(c) => {
                            let g = groups.entry(key(&c.coupon, at)).or_default();
                            g.coupon_refunds += 1;
                            g.coupon_refunded_minor += amount;
                        }
                        None => {
                            let g = groups.entry(plain(user, at)).or_default();
                            g.plain_refunds += 1;
                            g.plain_refunded_minor += amount;
                        }
                    }
                }
                EventKind::Refused { user, template, .. } => {
                    let k = GroupKey {
                        day: day(at),
                        template: Some(template.clone()),
                        campaign: None,
                        channel: None,
                        segment: lookup.segment(user),
                        arm: None,
                    };
                    groups.entry(k).or_default().refused += 1;
                }
                _ => {}
            }
        }
        // The join: the coupon that saved the most, ties to the smallest id.
        let mut lead: BTreeMap<OrderId, GroupKey> = BTreeMap::new();
        for (order, (amount, n)) in &paid {
            let Some(cs) = coupons.get(order) else {
                continue;
            };
            assert_eq!(cs.len(), *n as usize);
            let best = cs
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .unwrap();
            let g = groups.entry(best.2.clone()).or_default();
            g.coupon_orders += 1;
            g.coupon_sales_minor += amount;
            lead.insert(order.clone(), best.2.clone());
        }
        // Repurchases: each coupon order against the buyer's next paid order.
        if let Some(days) = repurchase {
            for orders in buys.values() {
                for w in orders.windows(2) {
                    let (at, order, coupon) = &w[0];
                    if !coupon {
                        continue;
                    }
                    let g = groups.entry(lead[order].clone()).or_default();
                    if w[1].0 - at <= i64::from(days) * 86_400 {
                        g.repurchased += 1;
                    } else {
                        g.not_repurchased += 1;
                    }
                }
            }
        }
        groups
    }

    fn fast(events: &[Logged], repurchase: Option<u32>) -> Report {
        let mut r = Report::new(config(repurchase));
        r.extend(events, &Look).unwrap();
        r
    }

    fn as_map(r: &Report) -> BTreeMap<GroupKey, Metrics> {
        let m: BTreeMap<GroupKey, Metrics> =
            r.groups().map(|(k, m)| (k.clone(), m.clone())).collect();
        assert_eq!(m.len(), r.groups().count(), "a group appears twice");
        m
    }

    #[test]
    fn the_fast_fold_equals_the_reference_fold() {
        for seed in 0..60 {
            let events = feed(seed, 40 + (seed as usize % 7) * 30);
            for repurchase in [None, Some(1), Some(7)] {
                let r = fast(&events, repurchase);
                assert_eq!(
                    as_map(&r),
                    reference(&events, repurchase),
                    "seed {seed}, window {repurchase:?}"
                );
                assert_eq!(r.open_orders(), 0);
                assert_eq!(r.events(), events.len() as u64);
            }
        }
    }

    #[test]
    fn the_feed_exercises_amounts_and_offer_arms() {
        // The reference comparison above means something only if the feeds hold valued expiries,
        // voids and refunds, and offers whose arm came from the event and from the lookup.
        let mut total = Metrics::default();
        let (mut from_event, mut from_lookup) = (0, 0);
        for seed in 0..60 {
            let events = feed(seed, 40 + (seed as usize % 7) * 30);
            total.merge(&fast(&events, None).total());
            for e in &events {
                if let EventKind::Offered {
                    template,
                    attributes,
                    ..
                } = &e.event.kind
                {
                    if attributes.get("arm").is_some() {
                        from_event += 1;
                    } else if !template.as_str().ends_with('0') {
                        from_lookup += 1;
                    }
                }
            }
        }
        assert!(total.expired_valued > 0 && total.expired_valued < total.expired);
        assert!(total.voided_valued > 0 && total.voided_valued < total.voided);
        assert!(total.refunded_valued > 0 && total.refunded_valued < total.refunded);
        assert!(total.expired_value_minor > 0 && total.refunded_saving_minor > 0);
        assert!(from_event > 0 && from_lookup > 0);
    }

    #[test]
    fn breakdowns_show_the_amounts_of_expired_voided_and_refunded_coupons() {
        // The total row of a breakdown carries exactly the counters' amounts, and the table
        // prints them in their columns.
        let events = feed(7, 250);
        let report = fast(&events, None);
        let m = report.total();
        let b = report.by(Dimension::Total);
        let row = &b.rows[0];
        let cur = report.config().currency();
        let money = |minor: i128| Money::from_minor_i128(minor, cur).unwrap();
        assert_eq!(
            row.expired_value,
            (m.expired_valued > 0).then(|| money(m.expired_value_minor))
        );
        assert_eq!(
            row.voided_value,
            (m.voided_valued > 0).then(|| money(m.voided_value_minor))
        );
        assert_eq!(
            row.refunded_saving,
            (m.refunded_valued > 0).then(|| money(m.refunded_saving_minor))
        );
        let text = b.to_string();
        let header = text.lines().next().unwrap();
        assert!(
            header.contains("expired") && header.contains("saving"),
            "{header}"
        );
        if let Some(v) = &row.refunded_saving {
            assert!(text.contains(&v.amount().to_string()), "{text}");
        }
    }

    #[test]
    fn offers_count_per_arm_from_the_event() {
        let at = Utc.with_ymd_and_hms(2026, 11, 11, 2, 0, 0).unwrap();
        let mut attributes = Attributes::new();
        attributes
            .insert(
                AttrKey::new("arm").unwrap(),
                AttrValue::new("treat").unwrap(),
            )
            .unwrap();
        let offer = |seq, attributes: Attributes| Logged {
            seq,
            event: Event::new(
                at,
                EventKind::Offered {
                    template: TemplateId::new("t1").unwrap(),
                    user: UserId::new("u1").unwrap(),
                    channel: Channel::new("app").unwrap(),
                    campaign: None,
                    attributes,
                },
            ),
        };
        let feed = [offer(1, attributes), offer(2, Attributes::new())];
        let mut r = Report::new(config(None));
        r.extend(&feed, &NoLookup).unwrap();
        let by_arm = r.by(Dimension::Arm);
        let offered = |arm: Option<&str>| {
            r.groups()
                .filter(|(k, _)| k.arm.as_ref().map(|a| a.as_str()) == arm)
                .map(|(_, m)| m.offered)
                .sum::<u64>()
        };
        assert_eq!(offered(Some("treat")), 1);
        assert_eq!(offered(None), 1);
        assert_eq!(by_arm.rows.len(), 2);
    }

    #[test]
    fn a_face_value_in_another_currency_counts_nothing() {
        struct Usd;
        impl Lookup for Usd {
            fn face_value(&self, _: &TemplateId) -> Option<Money> {
                Some(Money::from_minor(100, Currency::USD))
            }
        }
        let events = feed(11, 200);
        let first = events
            .iter()
            .position(|e| {
                matches!(
                    e.event.kind,
                    EventKind::Expired { .. } | EventKind::Voided { .. }
                )
            })
            .unwrap();
        let mut r = Report::new(config(None));
        assert!(matches!(
            r.extend(&events, &Usd),
            Err(ReportError::Currency {
                what: "a face value",
                ..
            })
        ));
        let mut before = Report::new(config(None));
        before.extend(&events[..first], &Usd).unwrap();
        assert_eq!(r, before);
    }

    #[test]
    fn merged_parts_equal_the_whole_and_the_reference() {
        for seed in 100..140 {
            let events = feed(seed, 150);
            for repurchase in [None, Some(2)] {
                let whole = fast(&events, repurchase);
                // Cut anywhere (even between an order's coupons and its payment), folded apart,
                // merged left to right: the same report, however each part numbered its groups.
                let cuts = [events.len() / 5, events.len() / 2, events.len() * 4 / 5 + 1];
                let mut merged = Report::new(config(repurchase));
                let mut from = 0;
                for &c in cuts.iter().chain([events.len()].iter()) {
                    merged.merge(fast(&events[from..c], repurchase)).unwrap();
                    from = c;
                }
                assert_eq!(merged, whole, "seed {seed}");
                assert_eq!(as_map(&merged), reference(&events, repurchase));
                // The same parts merged right to left (without the window, any order merges).
                if repurchase.is_none() {
                    let mut back = fast(&events[cuts[2]..], None);
                    back.merge(fast(&events[cuts[1]..cuts[2]], None)).unwrap();
                    back.merge(fast(&events[..cuts[1]], None)).unwrap();
                    assert_eq!(back, whole, "seed {seed}");
                }
            }
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_saved_part_carries_its_open_state_through_json() {
        for seed in 200..220 {
            let events = feed(seed, 120);
            let whole = fast(&events, Some(3));
            let cut = events.len() / 2;
            let first = fast(&events[..cut], Some(3));
            let json = serde_json::to_string(&first).unwrap();
            let mut restored: Report = serde_json::from_str(&json).unwrap();
            assert_eq!(restored, first);
            // The JSON of equal reports is equal, whatever their inner numbering.
            let mut renumbered = Report::new(config(Some(3)));
            renumbered.merge(first.clone()).unwrap();
            assert_eq!(serde_json::to_string(&renumbered).unwrap(), json);
            restored.extend(&events[cut..], &Look).unwrap();
            assert_eq!(restored, whole, "seed {seed}");
        }
    }

    #[test]
    fn reports_that_differ_are_not_equal() {
        let events = feed(7, 100);
        let a = fast(&events, None);
        let b = fast(&events[1..], None);
        assert_ne!(a, b);
        let mut c = fast(&events, None);
        c.merge(fast(&events[..1], None)).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn counting_one_by_one_equals_counting_in_runs() {
        for seed in 300..320 {
            let events = feed(seed, 90);
            for repurchase in [None, Some(2)] {
                let mut one = Report::new(config(repurchase));
                for e in &events {
                    one.apply(e, &Look).unwrap();
                }
                assert_eq!(one, fast(&events, repurchase), "seed {seed}");
            }
        }
    }

    #[test]
    fn a_refused_amount_counts_nothing_and_makes_no_group() {
        let mut events = feed(9, 60);
        let before = fast(&events, None);
        // An event in another currency after the feed, in a run with events after it: the
        // events before it stay counted, nothing of it or after it is (not even an empty group).
        let c = CouponFacts {
            id: CouponId::new("c-usd").unwrap(),
            template: TemplateId::new("t-new").unwrap(),
            user: UserId::new("u-new").unwrap(),
            channel: Channel::new("kiosk").unwrap(),
            campaign: None,
            claimed_at: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            attributes: Attributes::new(),
        };
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
        let usd = Money::from_minor(100, Currency::USD);
        let n = events.len() as u64;
        events.push(Logged {
            seq: n + 1,
            event: Event::new(
                at,
                EventKind::Redeemed {
                    coupon: c.clone(),
                    order: OrderId::new("o-usd").unwrap(),
                    saving: usd,
                },
            ),
        });
        events.push(Logged {
            seq: n + 2,
            event: Event::new(
                at,
                EventKind::Issued {
                    coupon: c,
                    mode: ClaimMode::Click,
                },
            ),
        });
        let mut r = Report::new(config(None));
        assert!(matches!(
            r.extend(&events, &Look),
            Err(ReportError::Currency { .. })
        ));
        assert_eq!(r, before);
    }

    /// [`Look`], lending its segments from a table instead of making them.
    struct LentLook {
        names: [Arc<str>; 3],
    }

    impl LentLook {
        fn new() -> LentLook {
            LentLook {
                names: ["a", "b", "c"].map(Arc::from),
            }
        }
        fn of(&self, user: &UserId) -> Option<&Arc<str>> {
            let last = *user.as_str().as_bytes().last()?;
            (last != b'0').then(|| &self.names[usize::from(last) % 3])
        }
    }

    impl Lookup for LentLook {
        fn segment(&self, user: &UserId) -> Option<Arc<str>> {
            self.of(user).cloned()
        }
        fn segment_ref<'a>(&'a self, user: &UserId) -> Option<Cow<'a, Arc<str>>> {
            self.of(user).map(Cow::Borrowed)
        }
        fn is_new(&self, user: &UserId, at: DateTime<Utc>) -> Option<bool> {
            Look.is_new(user, at)
        }
        fn offer_arm(&self, template: &TemplateId, user: &UserId) -> Option<AttrValue> {
            Look.offer_arm(template, user)
        }
        fn face_value(&self, template: &TemplateId) -> Option<Money> {
            Look.face_value(template)
        }
    }

    #[test]
    fn lent_segments_count_as_owned_ones() {
        let lent = LentLook::new();
        for seed in 400..420 {
            let events = feed(seed, 120);
            for repurchase in [None, Some(3)] {
                let mut r = Report::new(config(repurchase));
                r.extend(&events, &lent).unwrap();
                assert_eq!(r, fast(&events, repurchase), "seed {seed}");
                let mut one = Report::new(config(repurchase));
                for e in &events {
                    one.apply(e, &lent).unwrap();
                }
                assert_eq!(one, r, "seed {seed}");
                // In parts, a call each: the lent texts' addresses are only trusted within one.
                let mut parts = Report::new(config(repurchase));
                for chunk in events.chunks(17) {
                    parts.extend(chunk, &lent).unwrap();
                }
                assert_eq!(parts, r, "seed {seed}");
            }
        }
    }

    #[test]
    fn hot_counters_fold_into_the_reference_however_often_they_fold() {
        for seed in 500..530 {
            let events = feed(seed, 60 + (seed as usize % 5) * 40);
            for repurchase in [None, Some(2)] {
                let expected = reference(&events, repurchase);
                for every in [0, 1, 2, 3, 7, 64] {
                    let mut r = Report::new(config(repurchase));
                    r.fold_hot_every(every);
                    r.extend(&events, &Look).unwrap();
                    assert!(r.hot_is_folded());
                    assert_eq!(as_map(&r), expected, "seed {seed}, every {every}");
                    // One by one, and merged from parts folded with other intervals.
                    let mut one = Report::new(config(repurchase));
                    one.fold_hot_every(every);
                    for e in &events {
                        one.apply(e, &Look).unwrap();
                        assert!(one.hot_is_folded());
                    }
                    assert_eq!(one, r, "seed {seed}, every {every}");
                    let cut = events.len() / 3;
                    let mut left = Report::new(config(repurchase));
                    left.fold_hot_every(every);
                    left.extend(&events[..cut], &Look).unwrap();
                    let mut right = Report::new(config(repurchase));
                    right.fold_hot_every(every / 2);
                    right.extend(&events[cut..], &Look).unwrap();
                    left.merge(right).unwrap();
                    assert!(left.hot_is_folded());
                    assert_eq!(left, r, "seed {seed}, every {every}");
                }
            }
        }
    }

    /// Amounts of every size a `Money` holds: small, around `i64`'s bounds, and up to 2⁹⁵.
    fn amount(r: &mut Mix) -> i128 {
        let big = i128::from(i64::MAX);
        let v = match r.below(6) {
            0 | 1 => i128::from(r.below(10_000)),
            2 => big - i128::from(r.below(3)),
            3 => big / 2 + i128::from(r.below(1_000)),
            4 => (1i128 << 80) + i128::from(r.below(1_000)),
            _ => (1i128 << 95) - i128::from(r.below(1_000)),
        };
        if r.below(4) == 0 { -v } else { v }
    }

    #[test]
    fn money_past_i64_sums_as_one_by_one_up_to_saturation() {
        let cny = |minor: i128| Money::from_minor_i128(minor, Currency::CNY).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
        let user = UserId::new("u1").unwrap();
        let big = i128::from(i64::MAX);
        // Where each group's sums start: the group's i128 near its edges, set before the feed.
        let starts = [
            0,
            i128::MAX - 5,
            i128::MIN + 5,
            i128::MAX - big,
            i128::MAX - big - 1,
            i128::MIN + big + 1,
            i128::MAX / 2,
            -(1i128 << 100),
        ];
        for seed in 0..40u64 {
            let mut r = Mix(seed);
            let mut events: Vec<Logged> = Vec::new();
            let push = |events: &mut Vec<Logged>, kind: EventKind| {
                let seq = events.len() as u64 + 1;
                events.push(Logged {
                    seq,
                    event: Event::new(at, kind),
                });
            };
            let coupon = |n: u64| CouponFacts {
                id: CouponId::new(format!("c{n}")).unwrap(),
                template: TemplateId::new("t0").unwrap(),
                user: user.clone(),
                channel: Channel::new("app").unwrap(),
                campaign: None,
                claimed_at: at,
                attributes: Attributes::new(),
            };
            // The straightforward sums, one amount at a time in feed order, from the starts.
            let start = starts[seed as usize % starts.len()];
            let (mut discount, mut coupon_sales, mut plain_sales) = (start, start, start);
            // First one event of each group, so that the groups exist; their sums are set next.
            push(
                &mut events,
                EventKind::OrderPaid {
                    order: OrderId::new("p-first").unwrap(),
                    user: user.clone(),
                    gross: cny(0),
                    discount: cny(0),
                    coupons: 0,
                },
            );
            push(
                &mut events,
                EventKind::Redeemed {
                    coupon: coupon(0),
                    order: OrderId::new("o-first").unwrap(),
                    saving: cny(0),
                },
            );
            push(
                &mut events,
                EventKind::OrderPaid {
                    order: OrderId::new("o-first").unwrap(),
                    user: user.clone(),
                    gross: cny(0),
                    discount: cny(0),
                    coupons: 1,
                },
            );
            let first = events.len();
            for n in 1..200u64 {
                if r.below(2) == 0 {
                    let gross = amount(&mut r);
                    plain_sales = plain_sales.saturating_add(gross);
                    push(
                        &mut events,
                        EventKind::OrderPaid {
                            order: OrderId::new(format!("p{n}")).unwrap(),
                            user: user.clone(),
                            gross: cny(gross),
                            discount: cny(0),
                            coupons: 0,
                        },
                    );
                } else {
                    let (saving, gross) = (amount(&mut r), amount(&mut r));
                    discount = discount.saturating_add(saving);
                    coupon_sales = coupon_sales.saturating_add(gross.saturating_sub(saving));
                    let order = OrderId::new(format!("o{n}")).unwrap();
                    push(
                        &mut events,
                        EventKind::Redeemed {
                            coupon: coupon(n),
                            order: order.clone(),
                            saving: cny(saving),
                        },
                    );
                    push(
                        &mut events,
                        EventKind::OrderPaid {
                            order,
                            user: user.clone(),
                            gross: cny(gross),
                            discount: cny(saving),
                            coupons: 1,
                        },
                    );
                }
            }
            let begin = || {
                let mut rep = Report::new(config(None));
                rep.extend(&events[..first], &NoLookup).unwrap();
                for m in &mut rep.groups.metrics {
                    m.discount_minor = start;
                    m.coupon_sales_minor = start;
                    m.plain_sales_minor = start;
                }
                rep
            };
            let check = |rep: &Report, how: &str| {
                assert!(rep.hot_is_folded());
                let sums: Vec<(i128, i128, i128, u64, u64, u64)> = rep
                    .groups()
                    .map(|(_, m)| {
                        (
                            m.discount_minor,
                            m.coupon_sales_minor,
                            m.plain_sales_minor,
                            m.used,
                            m.coupon_orders,
                            m.plain_orders,
                        )
                    })
                    .collect();
                let used = events[first..]
                    .iter()
                    .filter(|e| matches!(e.event.kind, EventKind::Redeemed { .. }))
                    .count() as u64;
                let plain = events[first..].len() as u64 - 2 * used;
                // The plain orders' group (no template) and the coupons' group.
                let mut want = vec![
                    (start, start, plain_sales, 0, 0, plain + 1),
                    (discount, coupon_sales, start, used + 1, used + 1, 0),
                ];
                let mut got = sums;
                got.sort();
                want.sort();
                assert_eq!(got, want, "seed {seed}, start {start}, {how}");
            };
            for every in [0, 1, 5] {
                let mut whole = begin();
                whole.fold_hot_every(every);
                whole.extend(&events[first..], &NoLookup).unwrap();
                check(&whole, &format!("one call, every {every}"));
                let mut one = begin();
                one.fold_hot_every(every);
                for e in &events[first..] {
                    one.apply(e, &NoLookup).unwrap();
                }
                check(&one, &format!("one by one, every {every}"));
                let mut parts = begin();
                parts.fold_hot_every(every);
                for chunk in events[first..].chunks(9) {
                    parts.extend(chunk, &NoLookup).unwrap();
                }
                check(&parts, &format!("in parts, every {every}"));
            }
        }
    }

    /// A time from its Unix seconds and nanoseconds (leap-second nanoseconds allowed at :59).
    fn at_nanos(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    #[test]
    fn seconds_since_a_claim_are_chronos_floored_at_zero() {
        let chrono_way =
            |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_seconds().max(0) as u64;
        let mut r = Mix(15);
        // 2024 (a leap year) to 2027: within a year, across New Year, in either order.
        let start = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let span = 4 * 366 * DAY;
        let mut pairs: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for _ in 0..20_000 {
            let a = start + r.below(span as u64) as i64;
            // Mostly close (a claim and its use), sometimes far, sometimes before.
            let b = match r.below(4) {
                0 => a + r.below(8 * DAY as u64) as i64,
                1 => a - r.below(3 * DAY as u64) as i64,
                2 => start + r.below(span as u64) as i64,
                _ => a + r.below(3) as i64 - 1,
            };
            let nanos = |r: &mut Mix| match r.below(4) {
                0 => 0,
                1 => r.below(1_000_000_000) as u32,
                2 => 999_999_999,
                _ => 500_000_000,
            };
            pairs.push((at_nanos(a, nanos(&mut r)), at_nanos(b, nanos(&mut r))));
        }
        // New Year's Eve, to the second and nanosecond, and leap-second times.
        let eve = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
            .unwrap()
            .timestamp();
        for (x, nx, y, ny) in [
            (eve, 0, eve + 1, 0),
            (eve, 999_999_999, eve + 1, 0),
            (eve, 1, eve + 1, 0),
            (eve + 1, 0, eve, 999_999_999),
            (eve, 1_500_000_000, eve + 1, 0),
            (eve, 0, eve, 1_500_000_000),
            (eve, 1_000_000_000, eve + 2, 999_999_999),
        ] {
            pairs.push((at_nanos(x, nx), at_nanos(y, ny)));
        }
        for (from, to) in pairs {
            assert_eq!(
                secs_since(from, to),
                chrono_way(from, to),
                "{from:?} → {to:?}"
            );
        }
    }
}
