-- The pgvector SQL a user already writes, on xvector: each result and each error is the one
-- pgvector 0.8.6 gives (its test/expected/vector_type.out, with "vector" read as "xvector").
-- err() runs a statement and shows SQLSTATE, message and DETAIL on one line.
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

-- || concatenates vectors (it used to fall through to text concatenation).
SELECT '[1,2,3]'::xvector || '[4,5]';
SELECT pg_typeof('[1,2,3]'::xvector || '[4,5]');
SELECT pg_temp.err($$SELECT array_fill(0, ARRAY[16000])::xvector || '[1]'$$);

-- subvector(v, start, count): 1-based, clipped like substring.
SELECT subvector('[1,2,3,4,5]'::xvector, 1, 3);
SELECT subvector('[1,2,3,4,5]'::xvector, 3, 2);
SELECT subvector('[1,2,3,4,5]'::xvector, -1, 3);
SELECT subvector('[1,2,3,4,5]'::xvector, 3, 9);
SELECT subvector('[1,2,3,4,5]'::xvector, 3, 2147483647);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xvector, 3, 0)$$);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xvector, 3, -1)$$);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xvector, -1, 2)$$);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xvector, 6, 1)$$);
SELECT pg_temp.err($$SELECT subvector('[1,2,3,4,5]'::xvector, 2147483647, 1)$$);
SELECT subvector('[1,2,3,4,5]'::xvector, -2147483644, 2147483647);
-- Matryoshka: a prefix, renormalised.
SELECT l2_normalize(subvector('[3,4,12]'::xvector, 1, 2));

-- l1_distance and <+>.
SELECT l1_distance('[0,0]'::xvector, '[3,4]'), '[0,0]'::xvector <+> '[3,4]';
SELECT l1_distance('[0,0]'::xvector, '[0,1]');
SELECT l1_distance('[3e38]'::xvector, '[-3e38]');
SELECT l1_distance('[1,2,3,4,5,6,7,8,9]'::xvector, '[1,2,3,4,5,6,7,8,9]');
SELECT l1_distance('[1,2,3,4,5,6,7,8,9]'::xvector, '[0,3,2,5,4,7,6,9,8]');
SELECT pg_temp.err($$SELECT l1_distance('[1,2]'::xvector, '[3]')$$);
SELECT pg_temp.err($$SELECT '[1,2]'::xvector <+> '[3]'$$);

-- vector_norm (pgvector's name; l2_norm stays).
SELECT round(vector_norm('[1,1]')::numeric, 5);
SELECT vector_norm('[3,4]'), vector_norm('[0,1]'), vector_norm('[0,0]'), vector_norm('[2]');
SELECT vector_norm('[3e37,4e37]')::real;
SELECT l2_norm('[3,4]'::xvector);
-- As in pgvector, vector_dims and l2_norm exist for both types: an untyped literal is ambiguous.
SELECT pg_temp.err($$SELECT vector_dims('[1,2]')$$);

-- Multiplication underflow and overflow, as pgvector.
SELECT pg_temp.err($$SELECT '[1e-37]'::xvector * '[1e-37]'$$);
SELECT pg_temp.err($$SELECT '[1e37]'::xvector * '[1e37]'$$);
SELECT '[1e-37,2]'::xvector * '[0,3]';

-- Text input: pgvector's errors, DETAIL lines included.
SELECT '[1.,2.,3.]'::xvector, ' [ 1,  2 ,    3  ] '::xvector, E'\t[1,\n2]\r'::xvector;
SELECT '[1.5e38,-1.5e38]'::xvector, '[1.5e-38,-1.5e-38]'::xvector;
-- Output as float4out and pgvector write it: exponent with a sign and at least two digits.
SELECT '[1e-5,-6.1035156e-05,1e15,0.0001,123456790000000]'::xvector, '[1234567,999999.94,100000,-1e6]'::xvector;
-- Below the smallest float, strtof (and pgvector) give zero.
SELECT '[1e-46,1]'::xvector, '[-1e-46,1]'::xvector, '[1e-50]'::xvector;
SELECT pg_temp.err($$SELECT '[4e38,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[-4e38,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[hello,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[NaN,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[Infinity,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[-Infinity,1]'::xvector$$);
SELECT pg_temp.err($$SELECT '[NaN,x]'::xvector$$);
SELECT pg_temp.err($$SELECT '[1,2,3'::xvector$$);
SELECT pg_temp.err($$SELECT '[1,2,3]9'::xvector$$);
SELECT pg_temp.err($$SELECT '1,2,3'::xvector$$);
SELECT pg_temp.err($$SELECT ''::xvector$$);
SELECT pg_temp.err($$SELECT '['::xvector$$);
SELECT pg_temp.err($$SELECT '[ '::xvector$$);
SELECT pg_temp.err($$SELECT '[,'::xvector$$);
SELECT pg_temp.err($$SELECT '[]'::xvector$$);
SELECT pg_temp.err($$SELECT '[ ]'::xvector$$);
SELECT pg_temp.err($$SELECT '[,]'::xvector$$);
SELECT pg_temp.err($$SELECT '[1,]'::xvector$$);
SELECT pg_temp.err($$SELECT '[1a]'::xvector$$);
SELECT pg_temp.err($$SELECT '[1,,3]'::xvector$$);
SELECT pg_temp.err($$SELECT '[1, ,3]'::xvector$$);
-- Only ASCII whitespace, as C isspace: a no-break space (U+00A0) is a syntax error.
SELECT pg_temp.err($$SELECT E'[1,\u00a02]'::xvector$$);
SELECT pg_temp.err($$SELECT E'\u00a0[1]'::xvector$$);
-- A long bad literal is quoted up to 100 bytes.
SELECT pg_temp.err($$SELECT ('[' || repeat('1,', 100) || 'x]')::xvector$$);
-- A literal of 10 million elements fails at element 16001 (the parser counts as it goes and
-- never holds more than 16000 values; the unit tests in src/vector/text.rs check the same).
SELECT pg_temp.err($$SELECT ('[' || repeat('0,', 10000000) || '0]')::xvector$$);
SELECT pg_temp.err($$SELECT ('[' || repeat('0,', 16000) || '0]')::xvector$$);
SELECT vector_dims(('[' || repeat('0,', 15999) || '0]')::xvector);

-- Type modifiers: PostgreSQL's own integer errors, then pgvector's.
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(2)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(3, 2)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector('a')$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(0)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(-1)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(16001)$$);
SELECT pg_temp.err($$SELECT '[1,2,3]'::xvector(99999999999)$$);
SELECT '[1,2,3]'::xvector(3);

-- An xhnsw index for L1 (xvector_l1_ops) answers <+> like an exact scan.
CREATE TABLE l1_items (id int, emb xvector(3));
INSERT INTO l1_items SELECT i, ARRAY[i % 7, (i * 3) % 11, (i * 5) % 13]::real[] FROM generate_series(1, 300) i;
CREATE INDEX l1_idx ON l1_items USING xhnsw (emb xvector_l1_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM l1_items ORDER BY emb <+> '[3,3,3]' LIMIT 5;
CREATE TEMP TABLE l1_found AS SELECT id FROM l1_items ORDER BY emb <+> '[3,3,3]' LIMIT 10;
RESET enable_seqscan;
SET enable_indexscan = off;
CREATE TEMP TABLE l1_exact AS SELECT id, emb <+> '[3,3,3]' AS d FROM l1_items ORDER BY d LIMIT 10;
RESET enable_indexscan;
-- Recall against the exact scan (ties at the 10th distance count as found).
SELECT count(*) AS found_within_exact_top10 FROM l1_found f JOIN l1_items t USING (id)
    WHERE t.emb <+> '[3,3,3]' <= (SELECT max(d) FROM l1_exact);
INSERT INTO l1_items VALUES (1000, '[3,3,3]');
SET enable_seqscan = off;
SELECT id, emb <+> '[3,3,3]' AS d FROM l1_items ORDER BY emb <+> '[3,3,3]' LIMIT 1;
RESET enable_seqscan;
SELECT am.amname, opc.opcname FROM pg_opclass opc JOIN pg_am am ON am.oid = opc.opcmethod
    WHERE opc.opcname LIKE 'x%l1_ops' ORDER BY 2;
