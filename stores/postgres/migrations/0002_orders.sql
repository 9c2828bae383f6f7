-- Order records (issue #8): the crate's JSON form plus the buyer, the state's name
-- (`OrderState::name`: placed | paid | completed | released | refunded) and the last
-- transition, for looking orders up without decoding them. Versioned like every record:
-- `PutOrder` inserts at version 1 or updates only at the expected version.
CREATE TABLE orders (
    id         text COLLATE "C" PRIMARY KEY,
    version    bigint NOT NULL CHECK (version >= 1),
    buyer      text COLLATE "C" NOT NULL,
    state      text NOT NULL,
    -- `Order::updated_at` to the microsecond (informative only: no query compares it).
    updated_at timestamptz NOT NULL,
    body       jsonb  NOT NULL
);
CREATE INDEX orders_by_buyer ON orders (buyer, id);
