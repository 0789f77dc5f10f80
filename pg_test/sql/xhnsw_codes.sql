-- Indexes with codes (`codes = on`, the default from 64 dimensions): recall against an exact
-- scan for every metric that has codes, inserts and VACUUM after the build (the codes of
-- rewritten lists), an index built empty, results past the first batch, and where codes are
-- not used (L1, `codes = off`, too few or too many dimensions for a page).
SELECT setseed(0.17);
-- 3000 128-d vectors near an 8-d subspace (embeddings are like that), and 40 queries.
CREATE TABLE cbasis AS SELECT k, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 128) WHERE k >= 0) AS v
    FROM generate_series(1, 8) k;
CREATE FUNCTION code_embedding() RETURNS xvector LANGUAGE sql VOLATILE AS $$
    SELECT array_to_xvector(array_agg(x ORDER BY d), 128, true) FROM (
        SELECT d, sum(w * v[d]) + (random() - 0.5) * 0.1 AS x
        FROM (SELECT k, random() * 4 AS w FROM generate_series(1, 8) k) l
        JOIN cbasis USING (k), generate_series(1, 128) d GROUP BY d) s $$;
CREATE TABLE ct (id int PRIMARY KEY, emb xvector(128));
INSERT INTO ct SELECT i, code_embedding() FROM generate_series(1, 3000) i;
CREATE TABLE cq (qid int, emb xvector(128));
INSERT INTO cq SELECT i, code_embedding() FROM generate_series(1, 40) i;

-- recall@k of the index against an exact scan, for one distance operator; also checks that
-- the index scan ran on the expected path.
CREATE FUNCTION code_recall(op text, k int, path text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    hits int := 0;
    approx int[];
    exact int[];
    r record;
    query text := 'SELECT array_agg(id) FROM (SELECT id FROM ct ORDER BY emb %s %L LIMIT %s) s';
BEGIN
    FOR r IN SELECT * FROM cq LOOP
        PERFORM set_config('enable_seqscan', 'off', true);
        EXECUTE format(query, op, r.emb, k) INTO approx;
        IF xmodal.xhnsw_last_scan_path() <> path THEN
            RAISE EXCEPTION 'scan path %, expected %', xmodal.xhnsw_last_scan_path(), path;
        END IF;
        IF cardinality(approx) <> k OR (SELECT count(DISTINCT a) FROM unnest(approx) a) <> k THEN
            RAISE EXCEPTION 'index scan returned % rows (% distinct), expected %',
                cardinality(approx), (SELECT count(DISTINCT a) FROM unnest(approx) a), k;
        END IF;
        PERFORM set_config('enable_seqscan', 'on', true);
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE format(query, op, r.emb, k) INTO exact;
        PERFORM set_config('enable_indexscan', 'on', true);
        hits := hits + (SELECT count(*) FROM unnest(approx) a WHERE a = ANY (exact));
    END LOOP;
    RETURN hits / (k * (SELECT count(*) FROM cq)::float8);
END $$;

CREATE INDEX ct_l2 ON ct USING xhnsw (emb xvector_l2_ops);
SELECT code_recall('<->', 10, 'graph (codes)') >= 0.95 AS l2_recall_ok;
-- Past the results over codes (2 x ef_search): the full-precision search goes on, skipping
-- what was returned.
SET xhnsw.ef_search = 10;
SELECT code_recall('<->', 300, 'graph (codes), then graph') >= 0.9 AS l2_recall_300_ok;
RESET xhnsw.ef_search;
-- strict_order keeps the full-precision search (its batches never go back).
SET xhnsw.strict_order = on;
SELECT code_recall('<->', 10, 'graph') >= 0.95 AS strict_recall_ok;
RESET xhnsw.strict_order;

-- Inserts after the build (lists rewritten with their neighbours' codes), deletes, VACUUM.
INSERT INTO ct SELECT i, code_embedding() FROM generate_series(3001, 4000) i;
SELECT code_recall('<->', 10, 'graph (codes)') >= 0.95 AS recall_after_inserts;
DELETE FROM ct WHERE id % 4 = 0;
VACUUM ct;
SELECT code_recall('<->', 10, 'graph (codes)') >= 0.95 AS recall_after_delete_vacuum;
SELECT check_name, value FROM xmodal.index_check('ct_l2');
DROP INDEX ct_l2;

CREATE INDEX ct_cos ON ct USING xhnsw (emb xvector_cosine_ops);
SELECT code_recall('<=>', 10, 'graph (codes)') >= 0.95 AS cosine_recall_ok;
DROP INDEX ct_cos;
CREATE INDEX ct_ip ON ct USING xhnsw (emb xvector_ip_ops);
SELECT code_recall('<#>', 10, 'graph (codes)') >= 0.95 AS ip_recall_ok;
DROP INDEX ct_ip;
-- No codes for L1, nor with codes = off.
CREATE INDEX ct_l1 ON ct USING xhnsw (emb xvector_l1_ops);
SELECT code_recall('<+>', 10, 'graph') >= 0.95 AS l1_recall_ok;
DROP INDEX ct_l1;
CREATE INDEX ct_full ON ct USING xhnsw (emb) WITH (codes = off);
SELECT code_recall('<->', 10, 'graph') >= 0.95 AS full_recall_ok;
DROP INDEX ct_full;

-- Built empty: codes are taken around zero until a REINDEX takes the rows' mean.
CREATE TABLE ct_copy AS SELECT * FROM ct;
TRUNCATE ct;
CREATE INDEX ct_l2 ON ct USING xhnsw (emb);
INSERT INTO ct SELECT * FROM ct_copy;
SELECT code_recall('<->', 10, 'graph (codes)') >= 0.95 AS recall_built_empty;
SELECT check_name, value FROM xmodal.index_check('ct_l2') WHERE value <> 0 AND check_name NOT IN ('elements', 'heap_tids');
REINDEX INDEX ct_l2;
SELECT code_recall('<->', 10, 'graph (codes)') >= 0.95 AS recall_after_reindex;

-- The exact path over code pages (an index with codes and filter columns): a filter's
-- candidates ranked by their codes' lower bounds, the nearest read and ranked exactly. Against
-- the exact answer, for a category (the tags list 1 in 5 of the rows; a low
-- exact_filter_limit keeps the directory path away) and a range alone (every row a candidate),
-- LIMIT 10 and 100; then after inserts (rows without codes, read first) and deletes.
CREATE TABLE cf AS SELECT id, emb, id % 5 AS cat, (id * 7919) % 100 AS pct FROM ct_copy;
CREATE INDEX cf_hybrid ON cf USING xhnsw (emb, cat, pct);
ANALYZE cf;
CREATE FUNCTION filtered_recall(filter text, k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hits int := 0;
    total int := 0;
    approx int[];
    exact int[];
    r record;
    query text := 'SELECT array_agg(id) FROM (SELECT id FROM cf WHERE %s ORDER BY emb <-> %L LIMIT %s) s';
BEGIN
    FOR r IN SELECT * FROM cq LOOP
        PERFORM set_config('enable_seqscan', 'off', true);
        PERFORM set_config('enable_bitmapscan', 'off', true);
        EXECUTE format(query, filter, r.emb, k) INTO approx;
        IF xmodal.xhnsw_last_scan_path() <> 'exact (codes)' THEN
            RETURN 'path ' || xmodal.xhnsw_last_scan_path();
        END IF;
        PERFORM set_config('enable_seqscan', 'on', true);
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE format(query, filter, r.emb, k) INTO exact;
        PERFORM set_config('enable_indexscan', 'on', true);
        IF cardinality(approx) <> cardinality(exact) THEN
            RETURN format('%s rows, %s match', cardinality(approx), cardinality(exact));
        END IF;
        hits := hits + (SELECT count(*) FROM unnest(approx) a WHERE a = ANY (exact));
        total := total + cardinality(exact);
    END LOOP;
    RETURN CASE WHEN hits >= 0.99 * total THEN 'ok' ELSE format('recall %s/%s', hits, total) END;
END $$;
SET xhnsw.exact_filter_limit = 100;
SELECT f, k, filtered_recall(f, k) FROM (VALUES ('cat = 1'), ('pct < 2'), ('cat = 2 AND pct < 50')) v(f),
    (VALUES (10), (100)) l(k) ORDER BY f, k;
INSERT INTO cf SELECT i, code_embedding(), i % 5, (i * 7919) % 100 FROM generate_series(5001, 5500) i;
DELETE FROM cf WHERE id % 7 = 0;
SELECT f, filtered_recall(f, 10) FROM (VALUES ('cat = 1'), ('pct < 2')) v(f) ORDER BY f;
VACUUM cf;
SELECT f, filtered_recall(f, 10) FROM (VALUES ('cat = 1'), ('pct < 2')) v(f) ORDER BY f;
RESET xhnsw.exact_filter_limit;
SELECT check_name, value FROM xmodal.index_check('cf_hybrid') WHERE value <> 0 AND check_name NOT IN ('elements', 'heap_tids');

-- Dimensions without codes: under 64 (estimates too coarse), over 1024 at m = 16 (a full
-- list of codes would not fit in a page).
CREATE TABLE c_small (id int, emb xvector(16));
INSERT INTO c_small SELECT i, array_to_xvector(ARRAY(SELECT random() FROM generate_series(1, 16) WHERE i > 0), 16, true) FROM generate_series(1, 200) i;
CREATE INDEX ON c_small USING xhnsw (emb);
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM c_small ORDER BY emb <-> (SELECT emb FROM c_small WHERE id = 1) LIMIT 5) s;
SELECT xmodal.xhnsw_last_scan_path();
CREATE TABLE c_wide (id int, emb xvector(1100));
INSERT INTO c_wide SELECT i, array_to_xvector(ARRAY(SELECT random() FROM generate_series(1, 1100) WHERE i > 0), 1100, true) FROM generate_series(1, 50) i;
CREATE INDEX ON c_wide USING xhnsw (emb);
SELECT count(*) FROM (SELECT id FROM c_wide ORDER BY emb <-> (SELECT emb FROM c_wide WHERE id = 1) LIMIT 5) s;
SELECT xmodal.xhnsw_last_scan_path();
RESET enable_seqscan;
