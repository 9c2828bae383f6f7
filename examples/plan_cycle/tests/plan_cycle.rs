//! The batch job: the same statistics on any number of threads, every bad row reported by its
//! line number (stop or skip), text ids when ids are not plain numbers, and a plan line per user.

use chrono::FixedOffset;
use coupons::id::UserId;
use coupons::money::Currency;
use coupons::targeting::{Cycles, PlanRules};
use plan_cycle::{OnBadRow, ReadError, Settings, read_orders, run, summary, write_plan};

const SAMPLE: &[u8] = include_bytes!("../data/cdnow_orders.csv");

fn settings(threads: usize, on_bad_row: OnBadRow) -> Settings {
    Settings {
        cycles: Cycles::monthly(FixedOffset::east_opt(0).unwrap()),
        currency: Currency::USD,
        on_bad_row,
        threads,
    }
}

fn hidden() -> indicatif::ProgressBar {
    indicatif::ProgressBar::hidden()
}

#[test]
fn any_number_of_threads_reads_the_same_statistics() {
    let one = read_orders::<u64>(SAMPLE, &settings(1, OnBadRow::Stop), &hidden())
        .unwrap()
        .unwrap();
    assert_eq!(
        (one.rows, one.stats.user_count(), one.stats.order_count()),
        (6_919, 2_357, 6_919)
    );
    for threads in [2, 3, 7, 64] {
        let many = read_orders::<u64>(SAMPLE, &settings(threads, OnBadRow::Stop), &hidden())
            .unwrap()
            .unwrap();
        assert_eq!(many.stats, one.stats, "{threads} threads");
        assert_eq!(many.rows, one.rows);
    }
}

fn with_bad_rows() -> Vec<u8> {
    let mut text = String::from_utf8(SAMPLE.to_vec()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[10] = "1,1997-13-01T12:00:00Z,1.00,0.00,1.00,false".into(); // line 11: no month 13
    lines[500] = "2,1997-02-01T12:00:00Z,1.00,2.00,0.00,true".into(); // line 501: discount > gross
    lines[6000] = "3,1997-02-01T12:00:00Z,1.001,0.00,1.00,false".into(); // line 6001: sub-cent
    lines[6001] = "4,1997-02-01T12:00:00Z,1.00".into(); // line 6002: too few fields
    text = lines.join("\n");
    text.push('\n');
    text.into_bytes()
}

#[test]
fn a_bad_row_stops_the_run_at_its_line() {
    let data = with_bad_rows();
    for threads in [1, 2, 5] {
        match read_orders::<u64>(&data, &settings(threads, OnBadRow::Stop), &hidden()) {
            Err(ReadError::Bad(b)) => {
                assert_eq!(b.line, 11, "{threads} threads");
                assert!(b.reason.contains("ordered_at"), "{}", b.reason);
            }
            other => panic!(
                "expected a bad row, got {:?}",
                other.map(|r| r.map(|r| r.rows))
            ),
        }
    }
}

#[test]
fn skipped_rows_are_all_reported_and_nothing_else_is_dropped() {
    let data = with_bad_rows();
    for threads in [1, 3] {
        let read = read_orders::<u64>(&data, &settings(threads, OnBadRow::Skip), &hidden())
            .unwrap()
            .unwrap();
        let lines: Vec<u64> = read.skipped.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![11, 501, 6001, 6002]);
        assert!(
            read.skipped[1].reason.contains("exceeds"),
            "{}",
            read.skipped[1].reason
        );
        assert!(
            read.skipped[3].reason.contains("fields"),
            "{}",
            read.skipped[3].reason
        );
        assert_eq!(read.rows, 6_919);
        assert_eq!(read.stats.order_count(), 6_919 - 4);
    }
}

#[test]
fn text_ids_are_read_when_ids_are_not_plain_numbers() {
    let text = "user_id,ordered_at,gross,discount,paid,coupon_used\n\
                0042,1997-01-01T12:00:00Z,10.00,0.00,10.00,false\n\
                alice,1997-01-02,20.00,1.00,19.00,true\n\
                42,1997-01-03T12:00:00+08:00,5.50,0.00,5.50,0\n";
    let s = settings(2, OnBadRow::Stop);
    assert!(
        read_orders::<u64>(text.as_bytes(), &s, &hidden())
            .unwrap()
            .is_none()
    );
    let read = read_orders::<UserId>(text.as_bytes(), &s, &hidden())
        .unwrap()
        .unwrap();
    assert_eq!(read.stats.user_count(), 3); // "0042" and "42" are different users
    assert!(matches!(
        read_orders::<u64>(b"user,ordered_at\n", &s, &hidden()),
        Err(ReadError::Header(_))
    ));
}

#[test]
fn the_plan_has_a_line_per_user_and_a_summary() {
    let read = read_orders::<u64>(SAMPLE, &settings(2, OnBadRow::Stop), &hidden())
        .unwrap()
        .unwrap();
    let cycles = read.stats.cycles();
    let sept = cycles.index_of(
        chrono::DateTime::parse_from_rfc3339("1997-09-15T00:00:00Z")
            .unwrap()
            .to_utc(),
    );
    let now = cycles.bounds(sept).unwrap().1;
    let out = run(
        &read.stats,
        sept,
        now,
        &PlanRules::default(),
        &Default::default(),
    )
    .unwrap();
    let mut csv = Vec::new();
    write_plan(&out, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(csv.lines().count(), 2_357 + 1);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for line in csv.lines().skip(1) {
        assert_eq!(line.split(',').count(), header.len(), "{line}");
    }
    let table = summary(&out, &cycles, read.rows, 0);
    assert!(
        table.contains("1997-09") && table.contains("1997-10") && table.contains("total"),
        "{table}"
    );
}
