-- The coupons store's tables. Text keys use the "C" collation, so `ORDER BY id` is byte order
-- (the order every other store returns) whatever the database's locale.

-- Template records and campaigns: the crate's JSON form, keyed by id, versioned.
CREATE TABLE templates (
    id      text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL CHECK (version >= 1),
    body    jsonb  NOT NULL
);

CREATE TABLE campaigns (
    id      text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL CHECK (version >= 1),
    body    jsonb  NOT NULL
);

-- Coupons: the JSON body plus the columns the wallet, order and due queries search.
CREATE TABLE coupons (
    id          text COLLATE "C" PRIMARY KEY,
    template    text COLLATE "C" NOT NULL,
    owner       text COLLATE "C" NOT NULL,
    -- The order holding (locked) or having used (used) the coupon; NULL otherwise.
    order_id    text COLLATE "C",
    -- available | locked | used | expired | voided
    state       text NOT NULL,
    valid_until timestamptz NOT NULL,
    -- The end of the hold while locked.
    hold_until  timestamptz,
    -- When a time-driven transition is due: the validity end while available, the hold end
    -- while locked; NULL otherwise. Instants are kept to the microsecond by timestamptz; the
    -- nanoseconds below it (0..999), which the engine never produces but a caller may, are
    -- kept beside it so that the due query compares every instant exactly.
    due_at      timestamptz,
    due_at_nanos smallint CHECK (due_at_nanos BETWEEN 0 AND 999),
    version     bigint NOT NULL CHECK (version >= 1),
    body        jsonb  NOT NULL
);
CREATE INDEX coupons_by_owner ON coupons (owner, id);
CREATE INDEX coupons_by_order ON coupons (order_id, id) WHERE order_id IS NOT NULL;
CREATE INDEX coupons_by_due ON coupons (due_at, due_at_nanos) WHERE due_at IS NOT NULL;

-- Stock, per-user claims and uses, promo-code uses, custom counters.
CREATE TABLE counters (
    key   text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL CHECK (value >= 0)
);

-- The first outcome of every idempotent operation, and promo-code reservations.
CREATE TABLE receipts (
    key  text COLLATE "C" PRIMARY KEY,
    body jsonb NOT NULL
);

-- Hold deadlines of unpaid orders that counted promo-code uses.
CREATE TABLE holds (
    order_id text COLLATE "C" PRIMARY KEY,
    at       timestamptz NOT NULL,
    -- Below the microsecond, as for coupons.due_at_nanos.
    at_nanos smallint NOT NULL CHECK (at_nanos BETWEEN 0 AND 999)
);
CREATE INDEX holds_by_time ON holds (at, at_nanos, order_id);

-- Guards' windowed counters, one row per bucket; a window sums a range of buckets.
CREATE TABLE guard_counts (
    guard   text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    bucket  bigint NOT NULL,
    value   bigint NOT NULL CHECK (value >= 0),
    PRIMARY KEY (guard, subject, bucket)
);

-- The event feed. Sequences are handed out by the single row of `event_sequence`, updated in
-- the appending transaction as its last statement: the row lock is held until that transaction
-- commits, so sequences commit in increasing order, without gaps (a rolled-back batch gives its
-- numbers back), and a reader never sees a later sequence before an earlier one. Trimming
-- deletes events only; the row keeps counting.
CREATE TABLE event_sequence (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    last bigint  NOT NULL CHECK (last >= 0)
);
INSERT INTO event_sequence (one, last) VALUES (true, 0);

CREATE TABLE events (
    seq  bigint PRIMARY KEY CHECK (seq >= 1),
    body jsonb  NOT NULL
);
