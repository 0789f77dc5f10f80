-- Functions and operators, each checked against a value computed by hand.
SELECT vector_dims('[1,2,3]'::xvector);
SELECT l2_norm('[3,4]'::xvector);
SELECT l2_normalize('[3,4]'::xvector), l2_normalize('[0,0]'::xvector);
SELECT l2_distance('[0,0]'::xvector, '[3,4]'::xvector), '[0,0]'::xvector <-> '[3,4]'::xvector;
SELECT cosine_distance('[1,0]'::xvector, '[0,1]'::xvector), '[1,1]'::xvector <=> '[2,2]'::xvector,
       '[1,0]'::xvector <=> '[-1,0]'::xvector;
-- Cosine distance with a zero vector is NaN, as in pgvector.
SELECT '[0,0]'::xvector <=> '[1,2]'::xvector;
SELECT inner_product('[1,2,3]'::xvector, '[4,5,6]'::xvector), negative_inner_product('[1,2,3]'::xvector, '[4,5,6]'::xvector),
       '[1,2,3]'::xvector <#> '[4,5,6]'::xvector;
SELECT '[1,2,3]'::xvector + '[4,5,6]'::xvector, '[1,2,3]'::xvector - '[4,5,6]'::xvector,
       '[1,2,3]'::xvector * '[4,5,6]'::xvector;

-- Long vectors go through the SIMD kernels: compare with the same sums done in SQL.
CREATE TABLE big AS
    SELECT array_to_xvector(array_agg(sin(i)::real ORDER BY i), -1, false) AS a,
           array_to_xvector(array_agg(cos(i * 0.5)::real ORDER BY i), -1, false) AS b
    FROM generate_series(1, 1531) i;
WITH parts AS (
    SELECT sum((x - y)^2) AS l2sq, sum(x * y) AS dot, sum(x * x) AS aa, sum(y * y) AS bb
    FROM big, unnest(a::real[], b::real[]) AS t(x, y))
SELECT abs((a <-> b) - sqrt(l2sq)) < 1e-4 AS l2_ok,
       abs((a <#> b) + dot) < 1e-3 AS ip_ok,
       abs((a <=> b) - (1 - dot / sqrt(aa * bb))) < 1e-6 AS cos_ok
FROM big, parts;

-- Comparison operators and the btree opclass.
SELECT '[1,2]'::xvector < '[1,3]'::xvector, '[1,2]'::xvector <= '[1,2]'::xvector,
       '[1,2]'::xvector = '[1,2]'::xvector, '[1,2]'::xvector <> '[1,2]'::xvector,
       '[2]'::xvector > '[1,9]'::xvector, '[1]'::xvector >= '[1,0]'::xvector;
CREATE TABLE cmp (v xvector);
INSERT INTO cmp VALUES ('[3,1]'), ('[1,2]'), ('[1,2]'), ('[1]'), ('[2,0,0]'), ('[1,2]');
SELECT v FROM cmp ORDER BY v;
SELECT DISTINCT v FROM cmp ORDER BY v;
SELECT v, count(*) FROM cmp GROUP BY v ORDER BY v;
CREATE INDEX cmp_btree ON cmp (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM cmp WHERE v = '[1,2]';
SELECT count(*) FROM cmp WHERE v = '[1,2]';
RESET enable_seqscan;
CREATE TABLE uniq (v xvector UNIQUE);
INSERT INTO uniq VALUES ('[1,2]'), ('[1,3]');
INSERT INTO uniq VALUES ('[1,2]');

-- Aggregates, also in a parallel plan.
SELECT avg(v), sum(v) FROM (VALUES ('[1,2,3]'::xvector), ('[3,4,5]')) t(v);
SELECT avg(v) IS NULL AS empty_avg, sum(v) IS NULL AS empty_sum FROM cmp WHERE false;
SELECT avg(v), sum(v) FROM (VALUES ('[1,2]'::xvector), (NULL)) t(v);
CREATE TABLE agg AS SELECT array_to_xvector(ARRAY[i, -i, i % 7], -1, false) AS v FROM generate_series(1, 100000) i;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT avg(v) FROM agg;
SELECT avg(v), sum(v) FROM agg;
RESET ALL;
