"""The cycle plan in DuckDB, for the end-to-end comparison with `plan-cycle`.

    python3 duckdb_plan.py ORDERS.csv OUT.csv 2026-03

The same work as `plan-cycle ORDERS.csv --cycle 2026-03 --out OUT.csv`: read the CSV, per-user
totals of the cycle and of all time, median cut points, consumption types, aggregate standard
rates, the planned rate (step 0.02, floor 0, ceiling 0.3), the coupon (threshold: AOV + 10 %
up to the next price ending in 9; face value: min(rate, 30 % margin) of it and a tenth of the
user's gross, whole units), the expected cost, lifecycle segments and RFM quintiles; the
per-user plan written as CSV. DuckDB uses every core.
"""
import sys
import duckdb

path, out, cycle = sys.argv[1], sys.argv[2], sys.argv[3]
start = f"{cycle}-01"
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(f"""
COPY (
WITH o AS (
  SELECT * FROM read_csv('{path}', header = true, columns = {{
    'user_id': 'BIGINT', 'ordered_at': 'TIMESTAMPTZ', 'gross': 'DECIMAL(18,2)',
    'discount': 'DECIMAL(18,2)', 'paid': 'DECIMAL(18,2)', 'coupon_used': 'BOOLEAN'}})
),
b AS (SELECT TIMESTAMPTZ '{start} 00:00:00+00' AS p0, TIMESTAMPTZ '{start} 00:00:00+00' + INTERVAL 1 MONTH AS p1),
u AS (
  SELECT user_id, min(ordered_at) AS first_at, max(ordered_at) AS last_at,
         count(*) AS orders_all, sum(gross) AS gross_all,
         count(*) FILTER (WHERE ordered_at >= p0 AND ordered_at < p1) AS n,
         sum(gross) FILTER (WHERE ordered_at >= p0 AND ordered_at < p1) AS g,
         sum(discount) FILTER (WHERE ordered_at >= p0 AND ordered_at < p1) AS d
  FROM o, b GROUP BY user_id
),
a AS (SELECT n, round(g / n, 2) AS aov FROM u, b WHERE first_at < p0 AND n > 0),
cuts AS (SELECT quantile_disc(n, 0.5) AS fc, quantile_disc(aov, 0.5) AS sc FROM a),
t AS (
  SELECT u.*, CASE
      WHEN first_at >= p1 THEN NULL
      WHEN first_at >= p0 THEN 'new'
      WHEN n = 0 THEN 'inactive'
      ELSE (CASE WHEN n > fc THEN 'frequent' ELSE 'occasional' END) || '-' ||
           (CASE WHEN round(g / n, 2) > sc THEN 'high-spend' ELSE 'low-spend' END)
    END AS kind
  FROM u, cuts, b
),
s AS (SELECT kind, sum(d) / sum(g) AS std FROM t WHERE n > 0 GROUP BY kind),
pop AS (SELECT sum(d) / sum(g) AS p FROM t WHERE n > 0 AND kind IS NOT NULL),
r AS (
  SELECT t.*, coalesce(s.std, pop.p) AS std,
    CASE WHEN n > 0 AND g > 0 THEN least(greatest(CASE
        WHEN d / g > coalesce(s.std, pop.p) THEN greatest(coalesce(s.std, pop.p), d / g - 0.02)
        WHEN d / g < coalesce(s.std, pop.p) THEN least(coalesce(s.std, pop.p), d / g + 0.02)
        ELSE coalesce(s.std, pop.p) END, 0), 0.3)
      ELSE least(greatest(pop.p, 0), 0.3) END AS rate,
    CASE WHEN n > 0 THEN g / n ELSE gross_all / orders_all END AS aov_x,
    CASE WHEN n > 0 THEN g ELSE gross_all END AS value_x
  FROM t LEFT JOIN s USING (kind), pop WHERE kind IS NOT NULL
),
c AS (
  SELECT r.*, ceil((greatest(aov_x * 1.1, aov_x + 0.01) + 1) / 10) * 10 - 1 AS threshold FROM r
),
f AS (
  SELECT c.*, floor(least(threshold * rate, threshold * 0.3, value_x * 0.1, threshold - 0.01)) AS save FROM c
),
seg AS (
  SELECT user_id,
    ntile(5) OVER (ORDER BY date_diff('day', last_at, (SELECT p1 FROM b))::BIGINT DESC) AS rfm_r,
    ntile(5) OVER (ORDER BY orders_all) AS rfm_f,
    ntile(5) OVER (ORDER BY gross_all) AS rfm_m,
    CASE WHEN date_diff('day', first_at, (SELECT p1 FROM b)) <= 30 THEN 'new'
         WHEN date_diff('day', last_at, (SELECT p1 FROM b)) >= 90 THEN 'dormant'
         WHEN percent_rank() OVER (ORDER BY gross_all DESC) < 0.2 THEN 'high-value'
         ELSE 'active' END AS lifecycle
  FROM u
)
SELECT f.user_id, kind, round(d / g, 6) AS last_rate, round(std, 6) AS standard_rate,
       round(rate, 6) AS planned_rate,
       CASE WHEN save > 0 THEN threshold END AS coupon_threshold,
       CASE WHEN save > 0 THEN save END AS coupon_save,
       d AS last_cost, round(coalesce(g, 0) * rate, 2) AS expected_cost,
       lifecycle, rfm_r, rfm_f, rfm_m
FROM f JOIN seg USING (user_id)
ORDER BY f.user_id
) TO '{out}' (HEADER, DELIMITER ',')
""")
