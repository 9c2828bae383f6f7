//! Budget-optimal coupon plans: at most one coupon per user, the most value within a budget.
