-- The xhnsw index: plans, recall against an exact scan, edge cases, DML, VACUUM, options.
SELECT setseed(0.42);
-- 3000 16-d vectors around 30 random centres, and 50 queries drawn the same way.
CREATE TABLE centre AS SELECT c, ARRAY(SELECT random() * 2 - 1 FROM generate_series(1, 16) WHERE c >= 0) AS v  -- correlated: one draw per centre
    FROM generate_series(0, 29) c;
CREATE FUNCTION near_centre(i int) RETURNS xvector LANGUAGE sql AS $$
    SELECT array_to_xvector(ARRAY(SELECT x + (random() - 0.5) * 0.6 FROM unnest(v) x), 16, true)
    FROM centre WHERE c = i % 30 $$;
CREATE TABLE t (id int PRIMARY KEY, emb xvector(16));
INSERT INTO t SELECT i, near_centre(i) FROM generate_series(1, 3000) i;
CREATE TABLE q (qid int, emb xvector(16));
INSERT INTO q SELECT i, near_centre(i) FROM generate_series(1, 50) i;

-- recall@10 of the index against an exact scan, for one distance operator.
CREATE FUNCTION recall(op text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    hits int := 0;
    approx int[];
    exact int[];
    r record;
    query text := 'SELECT array_agg(id) FROM (SELECT id FROM t ORDER BY emb %s %L LIMIT 10) s';
BEGIN
    FOR r IN SELECT * FROM q LOOP
        PERFORM set_config('enable_seqscan', 'off', true);
        EXECUTE format(query, op, r.emb) INTO approx;
        PERFORM set_config('enable_seqscan', 'on', true);
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE format(query, op, r.emb) INTO exact;
        PERFORM set_config('enable_indexscan', 'on', true);
        hits := hits + (SELECT count(*) FROM unnest(approx) a WHERE a = ANY (exact));
    END LOOP;
    RETURN hits / (10.0 * (SELECT count(*) FROM q));
END $$;

CREATE INDEX t_l2 ON t USING xhnsw (emb xvector_l2_ops);
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 10;
SET xhnsw.ef_search = 100;
SELECT recall('<->') >= 0.99 AS l2_recall_ok;
SELECT check_name, value FROM xmodal.index_check('t_l2');
-- Not used without ORDER BY ... LIMIT (its scan is bounded by xhnsw.max_scan_tuples), nor for
-- another operator.
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]';
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE emb <-> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' < 1;
EXPLAIN (COSTS OFF) SELECT id FROM t ORDER BY emb <=> '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]' LIMIT 10;
DROP INDEX t_l2;

CREATE INDEX t_cos ON t USING xhnsw (emb xvector_cosine_ops);
SELECT recall('<=>') >= 0.98 AS cosine_recall_ok;
DROP INDEX t_cos;
CREATE INDEX t_ip ON t USING xhnsw (emb xvector_ip_ops) WITH (m = 24, ef_construction = 100);
SELECT recall('<#>') >= 0.98 AS ip_recall_ok;
DROP INDEX t_ip;
-- keep_pruned = off: lists hold only what the selection heuristic keeps (indexes of format 3
-- and older work this way).
CREATE INDEX t_sparse ON t USING xhnsw (emb) WITH (keep_pruned = off);
SELECT recall('<->') >= 0.98 AS sparse_recall_ok;
SELECT check_name, value FROM xmodal.index_check('t_sparse') WHERE check_name IN ('bad_links', 'unreachable');
DROP INDEX t_sparse;

-- Inserts after the build, updates, deletes and VACUUM keep recall.
CREATE INDEX t_l2 ON t USING xhnsw (emb);
INSERT INTO t SELECT i, near_centre(i) FROM generate_series(3001, 4000) i;
SELECT recall('<->') >= 0.95 AS recall_after_inserts;
UPDATE t SET emb = near_centre(id + 7) WHERE id % 5 = 0;
DELETE FROM t WHERE id % 2 = 0;
VACUUM t;
SELECT recall('<->') >= 0.95 AS recall_after_delete_vacuum;
SELECT check_name, value FROM xmodal.index_check('t_l2')
    WHERE check_name NOT IN ('elements', 'deleted_elements', 'heap_tids');
SELECT (SELECT value FROM xmodal.index_check('t_l2') WHERE check_name = 'heap_tids') = count(*) AS heap_tids_match FROM t;
-- Every row is reachable by the index: a large LIMIT returns them all.
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 100000) s;
SELECT count(*) = (SELECT count(*) FROM t) AS all_rows FROM (SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 100000) s;
RESET enable_seqscan;
REINDEX INDEX t_l2;
SELECT recall('<->') >= 0.95 AS recall_after_reindex;
DROP INDEX t_l2;
CREATE INDEX CONCURRENTLY t_l2 ON t USING xhnsw (emb);
SELECT recall('<->') >= 0.95 AS recall_after_create_concurrently;
REINDEX INDEX CONCURRENTLY t_l2;
SELECT recall('<->') >= 0.95 AS recall_after_reindex_concurrently;
-- A build that outgrows maintenance_work_mem continues on disk (NOTICE) with the same quality.
DROP INDEX t_l2;
CREATE TABLE t_copy AS SELECT * FROM t ORDER BY id;
INSERT INTO t_copy SELECT i, near_centre(i) FROM generate_series(5001, 7000) i;
SET maintenance_work_mem = '1MB';
CREATE INDEX t_copy_l2 ON t_copy USING xhnsw (emb);
RESET maintenance_work_mem;
SELECT check_name, value FROM xmodal.index_check('t_copy_l2') WHERE check_name IN ('bad_links', 'unreachable');
SELECT count(*) = (SELECT count(*) FROM t_copy) AS all_rows_reachable
FROM (SELECT id FROM t_copy ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 2) LIMIT 100000) s;
CREATE INDEX t_l2 ON t USING xhnsw (emb);
TRUNCATE t;
SET enable_seqscan = off;
SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 5;
INSERT INTO t VALUES (1, '[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]');
SELECT id FROM t ORDER BY emb <-> (SELECT emb FROM q WHERE qid = 1) LIMIT 5;
RESET enable_seqscan;

-- Empty table, one row, all NULL, 1000 copies of one vector.
CREATE TABLE growing (id int, emb xvector);
CREATE INDEX growing_idx ON growing USING xhnsw (emb);
SET enable_seqscan = off;
SELECT * FROM growing ORDER BY emb <-> '[1,2]' LIMIT 3;
INSERT INTO growing VALUES (1, '[1,2]');
SELECT * FROM growing ORDER BY emb <-> '[1,2]' LIMIT 3;
INSERT INTO growing VALUES (2, '[1,2,3]');
INSERT INTO growing SELECT i, NULL FROM generate_series(10, 20) i;
SELECT count(*) FROM (SELECT * FROM growing ORDER BY emb <-> '[0,0]' LIMIT 100) s;
CREATE TABLE nulls (emb xvector(3));
INSERT INTO nulls SELECT NULL FROM generate_series(1, 10);
CREATE INDEX ON nulls USING xhnsw (emb);
SELECT count(*) FROM (SELECT * FROM nulls ORDER BY emb <-> '[1,2,3]' LIMIT 5) s;
CREATE TABLE dup (id int, emb xvector(3));
INSERT INTO dup SELECT i, '[1,1,1]' FROM generate_series(1, 1000) i;
INSERT INTO dup VALUES (1001, '[5,5,5]');
CREATE INDEX dup_idx ON dup USING xhnsw (emb);
SELECT count(*) FROM (SELECT id FROM dup ORDER BY emb <-> '[1,1,1]' LIMIT 1001) s;
SELECT id FROM dup ORDER BY emb <-> '[5,5,5]' LIMIT 1;
INSERT INTO dup SELECT i, '[1,1,1]' FROM generate_series(1002, 1500) i;
SELECT count(*) FROM (SELECT id FROM dup ORDER BY emb <-> '[1,1,1]' LIMIT 2000) s;
SELECT check_name, value FROM xmodal.index_check('dup_idx');
-- Zero vectors are not indexed under cosine; a NULL query returns rows in no particular order.
CREATE TABLE z (id int, emb xvector(2));
INSERT INTO z VALUES (1, '[0,0]'), (2, '[1,0]'), (3, '[0,1]');
CREATE INDEX ON z USING xhnsw (emb xvector_cosine_ops);
SELECT id FROM z ORDER BY emb <=> '[1,0.1]' LIMIT 3;
SELECT count(*) FROM (SELECT id FROM z ORDER BY emb <=> NULL LIMIT 3) s;
RESET enable_seqscan;

-- Errors.
CREATE INDEX ON t USING xhnsw (emb) WITH (m = 1);
CREATE INDEX ON t USING xhnsw (emb) WITH (m = 101);
CREATE INDEX ON t USING xhnsw (emb) WITH (ef_construction = 2000);
CREATE INDEX ON t USING xhnsw (emb) WITH (m = 32, ef_construction = 16);
CREATE INDEX ON t USING xhnsw (emb) WITH (foo = 1);
CREATE INDEX ON t USING xhnsw (emb) WITH (keep_pruned = 'maybe');
CREATE TABLE wide (emb xvector(2001));
CREATE INDEX ON wide USING xhnsw (emb);
INSERT INTO growing VALUES (99, '[1,2,3]');
SET enable_seqscan = off;
SELECT id FROM growing ORDER BY emb <-> '[1,2,3]' LIMIT 1;
RESET enable_seqscan;
SELECT * FROM xmodal.index_check('t');
SET xhnsw.ef_search = 0;
RESET ALL;
