//! Lifecycle scenarios through the service, and the repository conformance suite on the
//! in-memory store.

use coupons::repository::MemoryStore;
use coupons::testkit;

#[test]
fn memory_store_passes_conformance_suite() {
    testkit::run_all(MemoryStore::new).unwrap();
}

mod broken {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use coupons::id::{CampaignId, CouponId, OrderId, TemplateId, UserId};
    use coupons::lifecycle::{Campaign, Coupon, TemplateRecord};
    use coupons::repository::*;

    /// A store that forgets counter limits, or applies batches op by op.
    pub struct Broken {
        pub inner: MemoryStore,
        pub ignore_limits: bool,
        pub not_atomic: bool,
    }

    impl Repository for Broken {
        type Error = MemoryStoreError;
        fn template(
            &self,
            id: &TemplateId,
        ) -> Result<Option<Versioned<Arc<TemplateRecord>>>, Self::Error> {
            self.inner.template(id)
        }
        fn templates(&self) -> Result<Vec<Versioned<Arc<TemplateRecord>>>, Self::Error> {
            self.inner.templates()
        }
        fn campaign(&self, id: &CampaignId) -> Result<Option<Versioned<Campaign>>, Self::Error> {
            self.inner.campaign(id)
        }
        fn coupon(&self, id: &CouponId) -> Result<Option<Versioned<Coupon>>, Self::Error> {
            self.inner.coupon(id)
        }
        fn wallet(&self, user: &UserId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.wallet(user)
        }
        fn order_coupons(&self, order: &OrderId) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.order_coupons(order)
        }
        fn due(
            &self,
            now: DateTime<Utc>,
            limit: usize,
        ) -> Result<Vec<Versioned<Coupon>>, Self::Error> {
            self.inner.due(now, limit)
        }
        fn counter(&self, key: &CounterKey) -> Result<u64, Self::Error> {
            self.inner.counter(key)
        }
        fn receipt(&self, key: &ReceiptKey) -> Result<Option<Receipt>, Self::Error> {
            self.inner.receipt(key)
        }
        fn commit(&self, batch: &Batch) -> Result<Commit, Self::Error> {
            let mut batch = batch.clone();
            if self.ignore_limits {
                for op in &mut batch.ops {
                    if let Op::Count { limit, .. } = op {
                        *limit = None;
                    }
                }
            }
            if self.not_atomic {
                for (index, op) in batch.ops.iter().enumerate() {
                    let one = Batch {
                        ops: vec![op.clone()],
                    };
                    if self.inner.commit(&one)? != Commit::Applied {
                        return Ok(Commit::Conflict { index });
                    }
                }
                return Ok(Commit::Applied);
            }
            self.inner.commit(&batch)
        }
    }
}

#[test]
fn conformance_suite_catches_a_store_that_ignores_limits() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: true,
        not_atomic: false,
    };
    let e = testkit::counters_and_limits(make()).unwrap_err();
    assert_eq!(e.check, "counters_and_limits");
    let e = testkit::concurrent_claims_are_exact(make()).unwrap_err();
    assert_eq!(e.check, "concurrent_claims_are_exact", "{e}");
    assert!(testkit::run_all(make).is_err());
}

#[test]
fn conformance_suite_catches_a_store_that_is_not_atomic() {
    let make = || broken::Broken {
        inner: MemoryStore::new(),
        ignore_limits: false,
        not_atomic: true,
    };
    let e = testkit::batches_are_all_or_nothing(make()).unwrap_err();
    assert_eq!(e.check, "batches_are_all_or_nothing", "{e}");
    println!("{e}");
}
