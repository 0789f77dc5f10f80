-- Text and binary I/O, typmod, casts.
SELECT '[1,2.5,-3]'::xvector;
SELECT '  [ 1 , 2e3,	.5 ]  '::xvector;
SELECT '[1e30,1e-30,0.1,-0]'::xvector;
SELECT '[3.4028235e38,1.17549435e-38,1.4e-45]'::xvector;
SELECT '[1,2,3]'::xvector(3);
SELECT pg_typeof('[1]'::xvector), format_type('xvector'::regtype, 512);

-- Shortest round trip: output parses back to the same bits.
CREATE TABLE rt AS SELECT i, array_to_xvector(ARRAY[sin(i) * 1e3, cos(i) / 7, i * 0.1, exp(-i)], -1, false) AS v
    FROM generate_series(1, 200) i;
SELECT count(*) AS not_equal FROM rt WHERE v::text::xvector <> v;
SELECT count(*) AS not_equal FROM rt WHERE v::real[] <> (v::text::xvector)::real[];

-- Binary send/recv (as COPY BINARY and drivers use it) is byte-exact.
SELECT xvector_send('[1,-2.5,3]'::xvector);
SELECT count(*) AS not_equal FROM rt WHERE xvector_send(v) <> xvector_send(v::text::xvector);
COPY rt TO '/tmp/xmodal_regress_rt.bin' WITH (FORMAT binary);
CREATE TABLE rt2 (i int, v xvector(4));
COPY rt2 FROM '/tmp/xmodal_regress_rt.bin' WITH (FORMAT binary);
SELECT count(*) AS rows, count(*) FILTER (WHERE rt.v::real[] = rt2.v::real[]) AS equal
    FROM rt JOIN rt2 USING (i);

-- Columns with a declared dimension.
CREATE TABLE items (id int, emb xvector(3));
INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, NULL);
SELECT * FROM items ORDER BY id;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'emb';

-- Casts from and to arrays.
SELECT ARRAY[1,2,3]::xvector, ARRAY[1.5,2.5]::real[]::xvector, ARRAY[1.25,2]::double precision[]::xvector,
       ARRAY[1.1,2.2]::numeric[]::xvector;
SELECT '[1,2,3]'::xvector::real[];
INSERT INTO items VALUES (4, ARRAY[7,8,9]);
SELECT emb FROM items WHERE id = 4;
SELECT '{1,2}'::real[]::xvector(2);
