-- The DuckDB floor: the least work that turns the landing files into the public marts.
-- One hand-written script, no orchestration, no validation, no quarantine, no tests: typed
-- reads of the same files, then dim_customers, customer_replenishment, customer_consent and
-- customer_category_affinity with the same rules as the dbt project (vars and seeds).
-- `python -m benchmarks.run` substitutes {landing}, {seeds} and {as_of}, times it, and
-- checks it against the dbt marts row for row (a floor that computed something else would
-- make the ratio meaningless). Written for a clean landing (the benchmark world has no
-- defects); the product's ingest is what copes with bad rows.
SET TimeZone = 'UTC';

CREATE SCHEMA floor;

CREATE TABLE floor.customers AS
SELECT customer_id, first_name, phone_e164, country, region, time_zone, language,
       created_at::TIMESTAMP AS created_at
FROM read_csv('{landing}/customers/*.csv', header = true, columns = {
    'customer_id': 'VARCHAR', 'first_name': 'VARCHAR', 'phone_e164': 'VARCHAR',
    'country': 'VARCHAR', 'region': 'VARCHAR', 'time_zone': 'VARCHAR', 'language': 'VARCHAR',
    'created_at': 'TIMESTAMPTZ'});

CREATE TABLE floor.products AS
SELECT product_id, name AS product_name, category, replenishment_days, price, currency,
       launched_at::TIMESTAMP AS launched_at
FROM read_csv('{landing}/products/*.csv', header = true, columns = {
    'product_id': 'VARCHAR', 'name': 'VARCHAR', 'category': 'VARCHAR',
    'replenishment_days': 'BIGINT', 'price': 'DECIMAL(18,4)', 'currency': 'VARCHAR',
    'launched_at': 'TIMESTAMPTZ'});

CREATE TABLE floor.orders AS
SELECT * REPLACE (ordered_at::TIMESTAMP AS ordered_at)
FROM read_csv('{landing}/orders/*.csv', header = true, columns = {
    'order_id': 'VARCHAR', 'order_line_no': 'BIGINT', 'customer_id': 'VARCHAR',
    'product_id': 'VARCHAR', 'quantity': 'BIGINT', 'unit_price': 'DECIMAL(18,4)',
    'discount_amount': 'DECIMAL(18,4)', 'currency': 'VARCHAR', 'status': 'VARCHAR',
    'channel': 'VARCHAR', 'ordered_at': 'TIMESTAMPTZ'});

CREATE TABLE floor.events AS
SELECT * REPLACE (occurred_at::TIMESTAMP AS occurred_at)
FROM read_json('{landing}/events/*.jsonl', format = 'newline_delimited', columns = {
    'event_id': 'VARCHAR', 'customer_id': 'VARCHAR', 'event_type': 'VARCHAR',
    'occurred_at': 'TIMESTAMPTZ', 'provenance': 'VARCHAR', 'channel': 'VARCHAR',
    'product_id': 'VARCHAR', 'properties': 'JSON'});

CREATE TABLE floor.consent AS
SELECT * REPLACE (occurred_at::TIMESTAMP AS occurred_at)
FROM read_csv('{landing}/consent/*.csv', header = true, columns = {
    'consent_event_id': 'VARCHAR', 'customer_id': 'VARCHAR', 'phone_e164': 'VARCHAR',
    'channel': 'VARCHAR', 'category': 'VARCHAR', 'action': 'VARCHAR', 'source': 'VARCHAR',
    'consent_text': 'VARCHAR', 'keyword': 'VARCHAR', 'occurred_at': 'TIMESTAMPTZ'});

CREATE TABLE floor.country_defaults AS FROM read_csv('{seeds}/country_defaults.csv');
CREATE TABLE floor.loyalty_tiers AS FROM read_csv('{seeds}/loyalty_tiers.csv');
CREATE TABLE floor.rfm_segments AS FROM read_csv('{seeds}/rfm_segments.csv');
CREATE TABLE floor.consent_channels AS FROM read_csv('{seeds}/consent_channels.csv');

-- completed lines up to as_of, with their product
CREATE TEMP TABLE purchases AS
SELECT o.customer_id, o.order_id, o.product_id, o.ordered_at, p.category,
       p.replenishment_days, o.quantity * o.unit_price - coalesce(o.discount_amount, 0) AS net
FROM floor.orders o LEFT JOIN floor.products p USING (product_id)
WHERE o.status = 'completed' AND o.ordered_at <= TIMESTAMP '{as_of}';

CREATE TABLE floor.customer_consent AS
WITH latest AS (
    SELECT *, CASE source WHEN 'support' THEN 'support_agent' WHEN 'import' THEN 'import'
                          ELSE 'customer' END AS changed_by
    FROM floor.consent WHERE occurred_at <= TIMESTAMP '{as_of}'
    QUALIFY row_number() OVER (PARTITION BY customer_id, channel, category
                               ORDER BY occurred_at DESC, action = 'opt_out' DESC,
                                        consent_event_id DESC) = 1
)
SELECT c.customer_id || '|' || k.channel || '|' || k.category AS consent_key,
       c.customer_id, k.channel, k.category,
       CASE e.action WHEN 'opt_in' THEN 'opted_in' WHEN 'opt_out' THEN 'opted_out'
                     ELSE 'never' END AS status,
       e.occurred_at AS since, e.source,
       CASE WHEN e.consent_text IS NOT NULL THEN md5(e.consent_text) END AS consent_text_hash,
       e.changed_by, e.consent_event_id, TIMESTAMP '{as_of}' AS as_of
FROM floor.customers c CROSS JOIN floor.consent_channels k
LEFT JOIN latest e USING (customer_id, channel, category)
WHERE c.created_at <= TIMESTAMP '{as_of}';

CREATE TABLE floor.customer_category_affinity AS
WITH by_category AS (
    SELECT customer_id, category, count(DISTINCT order_id) AS purchases, sum(net) AS revenue
    FROM purchases WHERE category IS NOT NULL GROUP BY ALL
)
SELECT customer_id || '|' || category AS customer_category_key, customer_id, category,
       purchases, revenue,
       CASE WHEN sum(revenue) OVER w > 0 THEN revenue / sum(revenue) OVER w ELSE 0 END AS share,
       row_number() OVER (PARTITION BY customer_id ORDER BY revenue DESC, purchases DESC,
                          category) AS category_rank
FROM by_category WINDOW w AS (PARTITION BY customer_id);

CREATE TABLE floor.customer_replenishment AS
WITH days AS (
    SELECT customer_id, product_id, max(category) AS category,
           max(replenishment_days) AS catalog_days, max(ordered_at) AS purchased_at,
           ordered_at::DATE AS purchase_date
    FROM purchases WHERE replenishment_days IS NOT NULL GROUP BY customer_id, product_id, 6
), per_product AS (
    SELECT customer_id, product_id, max(category) AS category,
           max(catalog_days) AS catalog_days, max(purchased_at) AS last_purchased_at,
           count(*) AS purchases_count, count(gap) AS gaps_count, median(gap) AS median_gap
    FROM (SELECT *, purchase_date - lag(purchase_date) OVER (
              PARTITION BY customer_id, product_id ORDER BY purchase_date) AS gap FROM days)
    GROUP BY customer_id, product_id
), due AS (
    SELECT p.*, coalesce(c.time_zone, d.default_time_zone, 'UTC') AS time_zone,
           CASE WHEN gaps_count >= 2 THEN 'customer' ELSE 'catalog' END AS interval_source,
           CASE WHEN gaps_count >= 2 THEN round(median_gap)::INTEGER
                ELSE catalog_days::INTEGER END AS interval_days
    FROM per_product p LEFT JOIN floor.customers c USING (customer_id)
    LEFT JOIN floor.country_defaults d ON c.country = d.country
), windows AS (
    SELECT *, last_purchased_at + interval_days * INTERVAL 1 DAY AS next_due_at,
           timezone(time_zone, (last_purchased_at + interval_days * INTERVAL 1 DAY)::TIMESTAMPTZ)
               ::DATE AS due_local
    FROM due
), bounds AS (
    SELECT *,
        timezone('UTC', timezone(time_zone, (due_local - round(interval_days * 0.15)::INTEGER)
            ::TIMESTAMP))::TIMESTAMP AS window_opens_at,
        timezone('UTC', timezone(time_zone, (due_local + round(interval_days * 0.25)::INTEGER + 1)
            ::TIMESTAMP))::TIMESTAMP AS window_closes_at,
        last_purchased_at + (interval_days * 2.0)::INTEGER * INTERVAL 1 DAY AS lapses_at
    FROM windows
)
SELECT customer_id || '|' || product_id AS customer_product_key, customer_id, product_id,
       category, last_purchased_at, purchases_count, interval_days, interval_source,
       next_due_at, window_opens_at, window_closes_at,
       CASE WHEN TIMESTAMP '{as_of}' < window_opens_at THEN 'not_due'
            WHEN TIMESTAMP '{as_of}' < window_closes_at THEN 'due'
            WHEN TIMESTAMP '{as_of}' < lapses_at THEN 'overdue'
            ELSE 'lapsed' END AS status,
       time_zone, TIMESTAMP '{as_of}' AS as_of
FROM bounds;

CREATE TABLE floor.dim_customers AS
WITH orders AS (
    SELECT customer_id, order_id, min(ordered_at) AS ordered_at, sum(net) AS net
    FROM purchases GROUP BY ALL
), gaps AS (
    SELECT customer_id, count(gap) AS gaps_count, median(gap) AS median_gap
    FROM (SELECT customer_id, d - lag(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
          FROM (SELECT DISTINCT customer_id, ordered_at::DATE AS d FROM orders))
    GROUP BY ALL
), history AS (
    SELECT customer_id, min(ordered_at) AS first_order_at, max(ordered_at) AS last_order_at,
           count(*) AS orders_count, sum(net) AS lifetime_revenue,
           sum(CASE WHEN ordered_at > TIMESTAMP '{as_of}' - INTERVAL 365 DAY THEN net ELSE 0 END)
               AS trailing_revenue
    FROM orders GROUP BY ALL
), staged AS (
    SELECT c.*, h.first_order_at, h.last_order_at,
           coalesce(h.orders_count, 0) AS orders_count,
           coalesce(h.lifetime_revenue, 0) AS lifetime_revenue,
           floor(coalesce(h.trailing_revenue, 0))::BIGINT AS loyalty_points,
           date_diff('day', h.last_order_at, TIMESTAMP '{as_of}') AS since_last,
           date_diff('day', h.first_order_at, TIMESTAMP '{as_of}') AS since_first,
           CASE WHEN g.gaps_count >= 2 THEN g.median_gap ELSE 60 END AS typical_gap
    FROM floor.customers c LEFT JOIN history h USING (customer_id)
    LEFT JOIN gaps g USING (customer_id)
    WHERE c.created_at <= TIMESTAMP '{as_of}'
), scored AS (
    SELECT customer_id,
           ntile(5) OVER (ORDER BY since_last DESC, customer_id) AS r,
           ntile(5) OVER (ORDER BY orders_count, customer_id) AS f,
           ntile(5) OVER (ORDER BY lifetime_revenue, customer_id) AS m
    FROM staged WHERE orders_count > 0
), segmented AS (
    SELECT s.customer_id, g.rfm_segment
    FROM scored s JOIN floor.rfm_segments g
      ON s.r BETWEEN g.r_min AND g.r_max AND s.f BETWEEN g.f_min AND g.f_max
     AND s.m BETWEEN g.m_min AND g.m_max
    QUALIFY row_number() OVER (PARTITION BY s.customer_id ORDER BY g.priority) = 1
), tiered AS (
    SELECT s.customer_id, t.tier FROM staged s JOIN floor.loyalty_tiers t
      ON s.loyalty_points >= t.min_points
    QUALIFY row_number() OVER (PARTITION BY s.customer_id ORDER BY t.min_points DESC) = 1
), consent AS (
    SELECT customer_id,
           max(status) FILTER (WHERE channel = 'sms' AND category = 'marketing') AS marketing,
           max(status) FILTER (WHERE channel = 'sms' AND category = 'transactional')
               AS transactional
    FROM floor.customer_consent GROUP BY ALL
)
-- the simulated shop gives every profile a zone: the region and phone-prefix fallbacks of
-- int_customer_time_zones_derived never apply to these files
SELECT s.customer_id, s.phone_e164, s.country, s.region,
       coalesce(s.time_zone, d.default_time_zone, 'UTC') AS time_zone,
       CASE WHEN s.time_zone IS NOT NULL THEN 'profile' ELSE 'country_default' END
           AS time_zone_source,
       coalesce(s.language, d.default_language, 'en') AS language, s.first_name, s.created_at,
       s.first_order_at, s.last_order_at, s.orders_count, s.lifetime_revenue,
       CASE WHEN s.orders_count = 0 THEN 'prospect'
            WHEN s.since_last > 365 THEN 'churned'
            WHEN s.since_last > 3.0 * s.typical_gap THEN 'lapsed'
            WHEN s.since_last > 1.5 * s.typical_gap THEN 'at_risk'
            WHEN s.since_first <= 30 THEN 'new'
            ELSE 'active' END AS lifecycle_stage,
       t.tier AS loyalty_tier, s.loyalty_points,
       r.r AS rfm_recency_score, r.f AS rfm_frequency_score, r.m AS rfm_monetary_score,
       g.rfm_segment, a.category AS top_category,
       coalesce(k.marketing, 'never') AS sms_marketing_status,
       coalesce(k.transactional, 'never') AS sms_transactional_status,
       l.last_sms_click_at,
       TIMESTAMP '{as_of}' AS as_of
FROM staged s
LEFT JOIN tiered t USING (customer_id)
LEFT JOIN scored r USING (customer_id)
LEFT JOIN segmented g USING (customer_id)
LEFT JOIN floor.customer_category_affinity a ON a.customer_id = s.customer_id AND a.category_rank = 1
LEFT JOIN consent k USING (customer_id)
LEFT JOIN (SELECT customer_id, max(occurred_at) AS last_sms_click_at FROM floor.events
           WHERE event_type = 'sms_click' AND occurred_at <= TIMESTAMP '{as_of}'
           GROUP BY customer_id) l USING (customer_id)
LEFT JOIN floor.country_defaults d ON s.country = d.country;
