-- Bad and hostile input to the xhnsw index (issue 12), each with its exact SQLSTATE; ends with
-- proof that the backend and the postmaster survived all of it.
CREATE FUNCTION pg_temp.sqlstate_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE alive AS SELECT pg_backend_pid() AS pid, pg_postmaster_start_time() AS started;
-- Deterministic vectors: dims values from seed s.
CREATE FUNCTION pg_temp.vec(s int, dims int) RETURNS xvector LANGUAGE sql IMMUTABLE AS $$
    SELECT array_to_xvector(ARRAY(SELECT sin(s * 7.1 + i * 1.3)::real FROM generate_series(1, dims) i), dims, true) $$;

-- Finding 6: ORDER BY a column other than the first, or more than one distance, is never
-- answered from the first column's graph: the index is costed out and the rows are exact.
CREATE TABLE two (id int, a xvector(2), b xvector(2));
INSERT INTO two SELECT i, pg_temp.vec(i, 2), pg_temp.vec(1000 - i, 2) FROM generate_series(1, 200) i;
CREATE INDEX two_ab ON two USING xhnsw (a, b);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM two ORDER BY b <-> '[0,0]' LIMIT 3;
SELECT array_agg(id) AS by_b FROM (SELECT id FROM two ORDER BY b <-> '[0,0]' LIMIT 3) s;
EXPLAIN (COSTS OFF) SELECT id FROM two ORDER BY a <-> '[0,0]', b <-> '[1,1]' LIMIT 3;
SELECT array_agg(id) AS by_a_b FROM (SELECT id FROM two ORDER BY a <-> '[0,0]', b <-> '[1,1]' LIMIT 3) s;
RESET enable_seqscan;
SELECT array_agg(id) AS exact_by_b FROM (SELECT id FROM two ORDER BY (b <-> '[0,0]') + 0 LIMIT 3) s;
-- The first column still is.
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM two ORDER BY a <-> '[0,0]' LIMIT 3;
RESET enable_seqscan;

-- Finding 15: user mistakes are not internal errors (XX000).
SELECT pg_temp.sqlstate_of('CREATE INDEX ON two USING xhnsw (a) WITH (m = 32, ef_construction = 16)');
CREATE TABLE ints (i int, v xvector(2));
SELECT pg_temp.sqlstate_of('CREATE INDEX ON ints USING xhnsw (i)');
SELECT pg_temp.sqlstate_of('CREATE INDEX ON ints USING xhnsw (i, v)');
SELECT pg_temp.sqlstate_of($$SELECT * FROM xmodal.index_check('two')$$);
CREATE INDEX ints_btree ON ints (i);
SELECT pg_temp.sqlstate_of($$SELECT * FROM xmodal.index_check('ints_btree')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM xmodal.index_check(4294967295::oid::regclass)$$);
-- A vector and filter values that do not fit in a page together: 54000.
CREATE TABLE wide_filter (v xvector(1000), t text);
CREATE INDEX ON wide_filter USING xhnsw (v, t);
SELECT pg_temp.sqlstate_of($$INSERT INTO wide_filter SELECT pg_temp.vec(1, 1000), string_agg(md5(g::text), '') FROM generate_series(1, 160) g$$);
-- The opclasses validate; an opclass whose ordering operator is not its distance does not.
SELECT opcname, amvalidate(oid) FROM pg_opclass WHERE opcmethod = (SELECT oid FROM pg_am WHERE amname = 'xhnsw') ORDER BY opcname;
CREATE OPERATOR CLASS mismatched_ops FOR TYPE xvector USING xhnsw AS
    OPERATOR 1 <=> (xvector, xvector) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(xvector, xvector);
SELECT amvalidate(oid) FROM pg_opclass WHERE opcname = 'mismatched_ops';
SELECT pg_temp.sqlstate_of('CREATE INDEX ON two USING xhnsw (a mismatched_ops)');
DROP OPERATOR CLASS mismatched_ops USING xhnsw;

-- Finding 5: index_check is for the table's owner.
CREATE ROLE regress_xhnsw_stranger;
GRANT SELECT ON two TO regress_xhnsw_stranger;
SET ROLE regress_xhnsw_stranger;
SELECT pg_temp.sqlstate_of($$SELECT * FROM xmodal.index_check('two_ab')$$);
SELECT pg_temp.sqlstate_of($$SELECT * FROM xmodal.index_check('two_ab'::regclass::oid::regclass)$$);
RESET ROLE;
CREATE TABLE owned (v xvector(2));
ALTER TABLE owned OWNER TO regress_xhnsw_stranger;
CREATE INDEX owned_v ON owned USING xhnsw (v);
SET ROLE regress_xhnsw_stranger;
SELECT check_name, value FROM xmodal.index_check('owned_v') WHERE check_name = 'elements';
RESET ROLE;
DROP TABLE owned;
REVOKE ALL ON two FROM regress_xhnsw_stranger;
DROP ROLE regress_xhnsw_stranger;

-- Finding 2: every dimension the index accepts can be inserted after the build, at any level,
-- m and filter width (the element and its neighbour item then take two pages).
CREATE TABLE d2000 (id int, v xvector(2000));
INSERT INTO d2000 SELECT i, pg_temp.vec(i, 2000) FROM generate_series(1, 20) i;
CREATE INDEX d2000_v ON d2000 USING xhnsw (v);
INSERT INTO d2000 SELECT i, pg_temp.vec(i, 2000) FROM generate_series(21, 60) i;
CREATE TABLE d1975 (id int, v xvector(1975));
CREATE INDEX d1975_v ON d1975 USING xhnsw (v);
INSERT INTO d1975 SELECT i, pg_temp.vec(i, 1975) FROM generate_series(1, 60) i;
-- 1536 dimensions, m = 100 and 800 bytes of filter values (hex digits, which do not
-- compress): never on one page together.
CREATE FUNCTION pg_temp.wide(k int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(md5(k::text || '-' || g), '') FROM generate_series(1, 25) g $$;
CREATE TABLE d1536 (id int, v xvector(1536), t text);
CREATE INDEX d1536_v ON d1536 USING xhnsw (v, t) WITH (m = 100, ef_construction = 100);
INSERT INTO d1536 SELECT i, pg_temp.vec(i, 1536), pg_temp.wide(i % 3) FROM generate_series(1, 60) i;
SET enable_seqscan = off;
SELECT (SELECT array_agg(id) FROM (SELECT id FROM d2000 ORDER BY v <-> pg_temp.vec(7, 2000) LIMIT 3) s) AS d2000_nearest,
       (SELECT array_agg(id) FROM (SELECT id FROM d1975 ORDER BY v <-> pg_temp.vec(7, 1975) LIMIT 3) s) AS d1975_nearest,
       (SELECT array_agg(id) FROM (SELECT id FROM d1536 WHERE t = pg_temp.wide(1)
                                   ORDER BY v <-> pg_temp.vec(7, 1536) LIMIT 3) s) AS d1536_nearest;
RESET enable_seqscan;
SELECT 'd2000_v' AS index, check_name, value FROM xmodal.index_check('d2000_v') WHERE check_name IN ('elements', 'heap_tids') OR value <> 0 AND check_name NOT IN ('elements', 'heap_tids')
UNION ALL
SELECT 'd1975_v', check_name, value FROM xmodal.index_check('d1975_v') WHERE check_name IN ('elements', 'heap_tids') OR value <> 0 AND check_name NOT IN ('elements', 'heap_tids')
UNION ALL
SELECT 'd1536_v', check_name, value FROM xmodal.index_check('d1536_v') WHERE check_name IN ('elements', 'heap_tids') OR value <> 0 AND check_name NOT IN ('elements', 'heap_tids');
-- A build at 2000 dimensions that outgrows maintenance_work_mem goes on with inserts.
CREATE TABLE ondisk (id int, v xvector(2000));
INSERT INTO ondisk SELECT i, pg_temp.vec(i, 2000) FROM generate_series(1, 300) i;
SET maintenance_work_mem = '1MB';
CREATE INDEX ondisk_v ON ondisk USING xhnsw (v);
RESET maintenance_work_mem;
SELECT check_name, value FROM xmodal.index_check('ondisk_v') WHERE check_name IN ('elements', 'heap_tids') OR value <> 0 AND check_name NOT IN ('elements', 'heap_tids');
SET enable_seqscan = off;
SET xhnsw.ef_search = 200;
SELECT array_agg(id) AS ondisk_nearest FROM (SELECT id FROM ondisk ORDER BY v <-> pg_temp.vec(77, 2000) LIMIT 5) s;
RESET ALL;
SELECT array_agg(id) AS ondisk_exact FROM (SELECT id FROM ondisk ORDER BY (v <-> pg_temp.vec(77, 2000)) + 0 LIMIT 5) s;

-- Finding 13: rescans (one per outer row of a nested loop) run in memory reset each time,
-- and still answer exactly as a sequential scan does (the filter directory ranks the rows of
-- one g exactly). Compared by distance: some rows tie, and either of two tied rows is right.
CREATE TABLE lat (id int, g int, a xvector(2));
INSERT INTO lat SELECT i, i % 50, pg_temp.vec(i, 2) FROM generate_series(1, 1000) i;
CREATE INDEX lat_a_g ON lat USING xhnsw (a, g);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT s.id FROM generate_series(1, 300) r
    CROSS JOIN LATERAL (SELECT id FROM lat WHERE g = r % 50
                        ORDER BY a <-> pg_temp.vec(r, 2) LIMIT 2) s;
CREATE TEMP TABLE by_index AS SELECT r, s.d FROM generate_series(1, 300) r
    CROSS JOIN LATERAL (SELECT a <-> pg_temp.vec(r, 2) AS d FROM lat WHERE g = r % 50
                        ORDER BY a <-> pg_temp.vec(r, 2) LIMIT 2) s;
RESET enable_seqscan;
CREATE TEMP TABLE exact AS SELECT r, s.d FROM generate_series(1, 300) r
    CROSS JOIN LATERAL (SELECT a <-> pg_temp.vec(r, 2) AS d FROM lat WHERE g = r % 50
                        ORDER BY (a <-> pg_temp.vec(r, 2)) + 0 LIMIT 2) s;
SELECT (SELECT count(*) FROM by_index) AS rows, (SELECT count(*) FROM (TABLE by_index EXCEPT TABLE exact) d) AS differences;

-- Alive: the same backend, and the postmaster never restarted.
SELECT pid = pg_backend_pid() AS same_backend, started = pg_postmaster_start_time() AS same_postmaster FROM alive;
