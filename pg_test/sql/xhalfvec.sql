-- xhalfvec(n): pgvector's halfvec under another name. Each result and error is the one
-- pgvector 0.8.6 gives (test/expected/halfvec.out and cast.out, "halfvec" read as "xhalfvec").
CREATE FUNCTION pg_temp.err(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || CASE WHEN detail <> '' THEN ' DETAIL: ' || detail ELSE '' END;
END $$;

-- Text form.
SELECT '[1,2,3]'::xhalfvec, '[-1,-2,-3]'::xhalfvec, '[1.,2.,3.]'::xhalfvec, ' [ 1,  2 ,    3  ] '::xhalfvec;
SELECT '[1.23456]'::xhalfvec;
SELECT '[65519,-65519]'::xhalfvec, '[1e-8,-1e-8]'::xhalfvec, '[1e-46,1]'::xhalfvec;
SELECT pg_temp.err($$SELECT '[65520,-65520]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[4e38,1]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[hello,1]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[NaN,1]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[Infinity,1]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[-Infinity,1]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1,2,3'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1,2,3]9'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '1,2,3'::xhalfvec$$);
SELECT pg_temp.err($$SELECT ''::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1,]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1a]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1, ,3]'::xhalfvec$$);
SELECT pg_temp.err($$SELECT ('[' || repeat('0,', 16000) || '0]')::xhalfvec$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec(2)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec(3, 2)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec('a')$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec(0)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec(16001)$$);
SELECT '[1,2,3]'::xhalfvec(3);
SELECT unnest('{"[1,2,3]", "[4,5,6]"}'::xhalfvec[]);
SELECT pg_temp.err($$SELECT '{"[1,2,3]"}'::xhalfvec(2)[]$$);

-- Binary form: pgvector's bytes (int16 dim, int16 unused, big-endian halves).
SELECT xhalfvec_send('[1.5,-2,65504]');
SELECT xhalfvec_send('[1.5,-2,65504]') = '\x000300003e00c0007bff'::bytea AS pgvector_bytes;
CREATE TABLE half_copy (v xhalfvec(3));
INSERT INTO half_copy VALUES ('[1.5,-2,65504]'), ('[0.000061035156,-0,1]');
SELECT current_setting('data_directory') || '/xmodal_half_copy.bin' AS copy_file \gset
COPY half_copy TO :'copy_file' WITH (FORMAT binary);
CREATE TABLE half_copy2 (v xhalfvec(3));
COPY half_copy2 FROM :'copy_file' WITH (FORMAT binary);
SELECT a.v, a.v = b.v AS same, xhalfvec_send(a.v) = xhalfvec_send(b.v) AS same_bytes
    FROM half_copy a JOIN half_copy2 b ON a.v = b.v ORDER BY a.v;
CREATE TABLE half_copy1 (v xhalfvec(1));
SELECT pg_temp.err(format('COPY half_copy1 FROM %L WITH (FORMAT binary)', :'copy_file'));

-- Casts to and from xvector and arrays.
SELECT '[1,2,3]'::xvector::xhalfvec, '[1,2,3]'::xvector::xhalfvec(3), '[1e-8]'::xvector::xhalfvec;
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector::xhalfvec(2)$$);
SELECT pg_temp.err($$SELECT '[65520]'::xvector::xhalfvec$$);
SELECT '[1,2,3]'::xhalfvec::xvector, '[1,2,3]'::xhalfvec::xvector(3), pg_typeof('[1]'::xhalfvec::xvector);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xhalfvec::xvector(2)$$);
SELECT '{1,2,3}'::real[]::xhalfvec, '{1,2,3}'::real[]::xhalfvec(3), '{1e-8,-1e-8}'::real[]::xhalfvec;
SELECT pg_temp.err($$SELECT '{1,2,3}'::real[]::xhalfvec(2)$$);
SELECT pg_temp.err($$SELECT '{65520,-65520}'::real[]::xhalfvec$$);
SELECT '{1,2,3}'::double precision[]::xhalfvec, '{1,2,3}'::integer[]::xhalfvec, '{1,2.5,3}'::numeric[]::xhalfvec;
SELECT pg_temp.err($$SELECT '{NaN}'::real[]::xhalfvec$$);
SELECT pg_temp.err($$SELECT '{Infinity}'::double precision[]::xhalfvec$$);
SELECT pg_temp.err($$SELECT '{1,NULL}'::real[]::xhalfvec$$);
SELECT pg_temp.err($$SELECT '{{1},{2}}'::real[]::xhalfvec$$);
SELECT pg_temp.err($$SELECT '{}'::real[]::xhalfvec$$);
SELECT pg_temp.err($$SELECT array_agg(n)::xhalfvec FROM generate_series(1, 16001) n$$);
SELECT '[1,2.5,3]'::xhalfvec::real[];
-- Assignment to a column goes through the casts.
CREATE TABLE half_items (id int, v xhalfvec(3));
INSERT INTO half_items VALUES (1, '[1,2,3]'::xvector), (2, ARRAY[4,5,6]), (3, '{7,8,9}'::real[]);
SELECT * FROM half_items ORDER BY id;
SELECT pg_temp.err($$INSERT INTO half_items VALUES (4, '[1,2]')$$);

-- Operators and functions.
SELECT '[1,2,3]'::xhalfvec + '[4,5,6]', '[1,2,3]'::xhalfvec - '[4,5,6]', '[1,2,3]'::xhalfvec * '[4,5,6]';
SELECT pg_temp.err($$SELECT '[65519]'::xhalfvec + '[65519]'$$);
SELECT pg_temp.err($$SELECT '[-65519]'::xhalfvec - '[65519]'$$);
SELECT pg_temp.err($$SELECT '[65519]'::xhalfvec * '[65519]'$$);
SELECT pg_temp.err($$SELECT '[1e-7]'::xhalfvec * '[1e-7]'$$);
SELECT pg_temp.err($$SELECT '[1,2]'::xhalfvec + '[3]'$$);
SELECT pg_temp.err($$SELECT '[1,2]'::xhalfvec - '[3]'$$);
SELECT pg_temp.err($$SELECT '[1,2]'::xhalfvec * '[3]'$$);
SELECT '[1,2,3]'::xhalfvec || '[4,5]';
SELECT pg_temp.err($$SELECT array_fill(0, ARRAY[16000])::xhalfvec || '[1]'$$);
SELECT '[1,2,3]'::xhalfvec < '[1,2,3]', '[1,2,3]'::xhalfvec < '[1,2]', '[1,2,3]'::xhalfvec <= '[1,2,3]',
       '[1,2,3]'::xhalfvec = '[1,2,3]', '[1,2,3]'::xhalfvec = '[1,2]', '[1,2,3]'::xhalfvec <> '[1,2]',
       '[1,2,3]'::xhalfvec >= '[1,2]', '[1,2,3]'::xhalfvec > '[1,2,3]';
SELECT xhalfvec_cmp('[1,2,3]', '[1,2,3]'), xhalfvec_cmp('[1,2,3]', '[0,0,0]'), xhalfvec_cmp('[1,2]', '[1,2,3]');
SELECT v FROM unnest('{"[3,1]","[1,2,3]","[1,2]","[1,2]"}'::xhalfvec[]) v ORDER BY v;
SELECT DISTINCT v FROM unnest('{"[1,2]","[1,2]","[2]"}'::xhalfvec[]) v ORDER BY v;
SELECT vector_dims('[1,2,3]'::xhalfvec);
-- As in pgvector, xhalfvec has l2_norm but not vector_norm (so vector_norm('[3,4]') stays unambiguous).
SELECT round(l2_norm('[1,1]'::xhalfvec)::numeric, 5), l2_norm('[3,4]'::xhalfvec),
       l2_norm('[0,0]'::xhalfvec), l2_norm('[65504,65504]'::xhalfvec)::real;
SELECT l2_normalize('[3,4]'::xhalfvec), l2_normalize('[0,0]'::xhalfvec), l2_normalize('[65504]'::xhalfvec);
SELECT subvector('[1,2,3,4,5]'::xhalfvec, 1, 3), subvector('[1,2,3,4,5]'::xhalfvec, 3, 2),
       subvector('[1,2,3,4,5]'::xhalfvec, -1, 3), subvector('[1,2,3,4,5]'::xhalfvec, 3, 9);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xhalfvec, 3, 0)$$);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xhalfvec, 6, 1)$$);
SELECT l2_distance('[0,0]'::xhalfvec, '[3,4]'), '[0,0]'::xhalfvec <-> '[3,4]', l2_distance('[0,0]'::xhalfvec, '[0,1]');
SELECT l2_distance('[1,1,1,1,1,1,1,1,1]'::xhalfvec, '[1,1,1,1,1,1,1,4,5]');
SELECT pg_temp.err($$SELECT l2_distance('[1,2]'::xhalfvec, '[3]')$$);
SELECT inner_product('[1,2]'::xhalfvec, '[3,4]'), '[1,2]'::xhalfvec <#> '[3,4]', inner_product('[65504]'::xhalfvec, '[65504]');
SELECT pg_temp.err($$SELECT inner_product('[1,2]'::xhalfvec, '[3]')$$);
SELECT cosine_distance('[1,2]'::xhalfvec, '[2,4]'), cosine_distance('[1,2]'::xhalfvec, '[0,0]'),
       cosine_distance('[1,1]'::xhalfvec, '[1,1]'), cosine_distance('[1,0]'::xhalfvec, '[0,2]'),
       cosine_distance('[1,1]'::xhalfvec, '[-1,-1]'), '[1,2]'::xhalfvec <=> '[2,4]';
SELECT pg_temp.err($$SELECT cosine_distance('[1,2]'::xhalfvec, '[3]')$$);
SELECT l1_distance('[0,0]'::xhalfvec, '[3,4]'), '[0,0]'::xhalfvec <+> '[3,4]', l1_distance('[65504]'::xhalfvec, '[-65504]');
SELECT pg_temp.err($$SELECT l1_distance('[1,2]'::xhalfvec, '[3]')$$);
-- An xvector operand meets xhalfvec through the implicit cast, as in pgvector.
SELECT '[0,0]'::xhalfvec <-> '[3,4]'::xvector;

-- Aggregates.
SELECT avg(v) FROM unnest(ARRAY['[1,2,3]'::xhalfvec, '[3,5,7]']) v;
SELECT avg(v) FROM unnest(ARRAY['[1,2,3]'::xhalfvec, '[3,5,7]', NULL]) v;
SELECT avg(v) FROM unnest(ARRAY[]::xhalfvec[]) v;
SELECT pg_temp.err($$SELECT avg(v) FROM unnest(ARRAY['[1,2]'::xhalfvec, '[3]']) v$$);
SELECT avg(v) FROM unnest(ARRAY['[65504]'::xhalfvec, '[65504]']) v;
SELECT sum(v) FROM unnest(ARRAY['[1,2,3]'::xhalfvec, '[3,5,7]']) v;
SELECT sum(v) FROM unnest(ARRAY['[1,2,3]'::xhalfvec, '[3,5,7]', NULL]) v;
SELECT sum(v) FROM unnest(ARRAY[]::xhalfvec[]) v;
SELECT pg_temp.err($$SELECT sum(v) FROM unnest(ARRAY['[1,2]'::xhalfvec, '[3]']) v$$);
SELECT pg_temp.err($$SELECT sum(v) FROM unnest(ARRAY['[65504]'::xhalfvec, '[65504]']) v$$);

-- xhnsw on xhalfvec: each operator class answers like an exact scan.
CREATE TABLE half_idx (id int, v xhalfvec(4));
INSERT INTO half_idx SELECT i, ARRAY[sin(i), cos(i), sin(i * 0.7), (i % 5) - 2] FROM generate_series(1, 400) i;
CREATE FUNCTION pg_temp.recall(op text, opclass text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    exact int[];
    found int[];
    q text := '[0.5,-0.5,0.25,1]';
    plan text;
    used bool := false;
BEGIN
    EXECUTE format('CREATE INDEX half_idx_v ON half_idx USING xhnsw (v %s)', opclass);
    SET LOCAL enable_seqscan = off;
    FOR plan IN EXECUTE format('EXPLAIN (COSTS OFF) SELECT id FROM half_idx ORDER BY v %s %L LIMIT 10', op, q) LOOP
        used := used OR plan LIKE '%Index Scan using half_idx_v%';
    END LOOP;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM half_idx ORDER BY v %s %L LIMIT 10) s', op, q) INTO found;
    SET LOCAL enable_seqscan = on;
    SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM half_idx ORDER BY v %s %L LIMIT 10) s', op, q) INTO exact;
    SET LOCAL enable_indexscan = on;
    EXECUTE 'DROP INDEX half_idx_v';
    RETURN opclass || ': index used ' || used || ', ' || (SELECT count(*) FROM unnest(found) f WHERE f = ANY (exact)) || '/10';
END $$;
SELECT pg_temp.recall('<->', 'xhalfvec_l2_ops');
SELECT pg_temp.recall('<#>', 'xhalfvec_ip_ops');
SELECT pg_temp.recall('<=>', 'xhalfvec_cosine_ops');
SELECT pg_temp.recall('<+>', 'xhalfvec_l1_ops');
CREATE INDEX half_idx_default ON half_idx USING xhnsw (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM half_idx ORDER BY v <-> '[0,0,0,0]' LIMIT 3;
INSERT INTO half_idx VALUES (1000, '[0.5,-0.5,0.25,1]');
SELECT id FROM half_idx ORDER BY v <-> '[0.5,-0.5,0.25,1]' LIMIT 1;
RESET enable_seqscan;
-- Up to 4000 dimensions (pgvector's halfvec limit): an index on xhalfvec stores its elements
-- as float2. Built, then grown by inserts; every operator class answers like an exact scan and
-- index_check finds nothing wrong.
CREATE FUNCTION pg_temp.wide(g int) RETURNS xhalfvec LANGUAGE sql AS
$$ SELECT array_agg(sin(g * 0.37 + i * 0.011 + (g % 7)))::xhalfvec FROM generate_series(1, 4000) i $$;
CREATE TABLE half_wide (id int, v xhalfvec(4000));
INSERT INTO half_wide SELECT g, pg_temp.wide(g) FROM generate_series(1, 150) g;
CREATE FUNCTION pg_temp.wide_recall(op text, opclass text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    exact int[];
    found int[];
    hits int := 0;
    q xhalfvec;
    problems bigint;
BEGIN
    EXECUTE format('CREATE INDEX half_wide_v ON half_wide USING xhnsw (v %s)', opclass);
    INSERT INTO half_wide SELECT g, pg_temp.wide(g) FROM generate_series(151, 180) g;
    FOR g IN 1..5 LOOP
        q := pg_temp.wide(g * 37 + 200);
        SET LOCAL enable_seqscan = off;
        EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM half_wide ORDER BY v %s $1 LIMIT 10) s', op) INTO found USING q;
        SET LOCAL enable_seqscan = on;
        SET LOCAL enable_indexscan = off;
        EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM half_wide ORDER BY v %s $1 LIMIT 10) s', op) INTO exact USING q;
        SET LOCAL enable_indexscan = on;
        hits := hits + (SELECT count(*) FROM unnest(found) f WHERE f = ANY (exact));
    END LOOP;
    SELECT count(*) INTO problems FROM xmodal.index_check('half_wide_v')
        WHERE value <> 0 AND check_name NOT IN ('elements', 'heap_tids');
    DELETE FROM half_wide WHERE id > 150;
    EXECUTE 'DROP INDEX half_wide_v';
    RETURN opclass || ': ' || hits || '/50, index_check problems ' || problems;
END $$;
SELECT pg_temp.wide_recall('<->', 'xhalfvec_l2_ops');
SELECT pg_temp.wide_recall('<#>', 'xhalfvec_ip_ops');
SELECT pg_temp.wide_recall('<=>', 'xhalfvec_cosine_ops');
SELECT pg_temp.wide_recall('<+>', 'xhalfvec_l1_ops');
-- Above the limit: a clear error.
CREATE TABLE half_wider (v xhalfvec(4001));
SELECT pg_temp.err($$CREATE INDEX ON half_wider USING xhnsw (v)$$);
