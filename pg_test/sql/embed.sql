-- In-database encoders: embed_text, embed_image, embed_texts, embed_images, the model registry,
-- encode-once per query, errors and their SQLSTATEs, privileges. Uses the tiny random-weight
-- models of tests/models and their reference outputs (tests/models/README.md), read through
-- the server as the (superuser) test user.
\getenv abs_srcdir PG_ABS_SRCDIR
\set models :abs_srcdir '/../tests/models'
\set photos :abs_srcdir '/../../shared/data/flickr8k-1k/images'

-- An error as 'SQLSTATE: message (detail)', to check both.
CREATE FUNCTION em_try(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE detail text;
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' (' || detail || ')', ' ()'), '');
END $$;
-- Paths in messages differ per checkout: show them relative to tests/models.
CREATE FUNCTION em_try_here(query text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(em_try(query), '/[^ "]*/tests/models', '.../tests/models', 'g')
$$;

-- The ONNX Runtime library: superuser-only setting, clear errors. A backend loads it once, so
-- this runs before anything else in this session loads it.
SET xmodal.onnxruntime_library = '/nonexistent/libonnxruntime.so.1.31.1';
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_oc', :'models' || '/openclip-tiny'));
SET xmodal.onnxruntime_library = 'libonnxruntime.so';
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_oc', :'models' || '/openclip-tiny'));
RESET xmodal.onnxruntime_library;
SHOW xmodal.onnxruntime_library;

-- Registration, both layouts. xmodal.device = auto says where each tower runs (CI: no GPU).
SHOW xmodal.device;
SELECT xmodal.register_model('em_oc', :'models' || '/openclip-tiny');
SET xmodal.device = cpu;
SELECT xmodal.register_model('em_hf', :'models' || '/hf-tiny');
SELECT xmodal.register_model('em_text', :'models' || '/openclip-text-only');
SELECT name, dims, modalities, device, regexp_replace(path, '^/.*/tests/models/', '') AS path,
       registered_by
FROM xmodal.models WHERE name LIKE 'em\_%' ORDER BY name;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_oc', :'models' || '/hf-tiny'));

-- Text parity with the reference embeddings (open_clip / transformers + Python onnxruntime).
-- (The one reference text holding a NUL character cannot be a SQL text value: it is left out.)
CREATE TABLE em_texts AS
    SELECT ord, layout, t->>'text' AS text, (t->layout->'embedding')::text::xvector AS reference,
           (t->layout->'ids'->>1)::int = 49407 AS empty
    FROM json_array_elements(replace(pg_read_file(:'models' || '/reference/texts.json'), '\u0000', '\u2400')::json->'texts')
         WITH ORDINALITY AS x(t, ord),
         (VALUES ('openclip-tiny'), ('hf-tiny')) AS l(layout)
    WHERE strpos(t->>'text', U&'\2400') = 0;
CREATE FUNCTION em_model(layout text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE layout WHEN 'openclip-tiny' THEN 'em_oc' ELSE 'em_hf' END $$;
SELECT layout, count(*) AS texts, min(1 - (embed_text(text, em_model(layout)) <=> reference)) >= 0.9999 AS parity
FROM em_texts WHERE NOT empty GROUP BY layout ORDER BY layout;
-- Texts without a content token are refused, in both layouts.
SELECT layout, count(*) AS empty_texts,
       bool_and(em_try(format('SELECT embed_text(%L, %L)', text, em_model(layout)))
                = '22023: text is empty after clean-up: nothing to embed') AS refused
FROM em_texts WHERE empty GROUP BY layout ORDER BY layout;
-- The batch form: one call, one inference, the same vectors.
SELECT xmodal.encoder_stats_reset();
SELECT b.layout, min(1 - (e.emb <=> t.reference)) >= 0.9999 AS batch_parity
FROM (SELECT layout, array_agg(text ORDER BY ord) AS texts, array_agg(ord ORDER BY ord) AS ords
      FROM em_texts WHERE NOT empty GROUP BY layout) b,
     unnest(embed_texts(b.texts, em_model(b.layout)), b.ords) AS e(emb, ord)
     JOIN em_texts t USING (ord)
WHERE t.layout = b.layout GROUP BY b.layout ORDER BY b.layout;
SELECT model, modality, calls, inputs, cache_hits, inferences FROM xmodal.encoder_stats() ORDER BY model;
-- Outputs are unit vectors.
SELECT round(l2_norm(embed_text('a photo of a dog', 'em_oc'))::numeric, 6) AS norm;

-- Image parity: every generated format, single and batched (photos of ../shared when present).
CREATE TABLE em_images AS
    SELECT ord, layout, c->>'file' AS file,
           pg_read_binary_file(:'models' || '/' || (c->>'file')) AS bytes,
           (c->layout->'embedding')::text::xvector AS reference
    FROM json_array_elements(pg_read_file(:'models' || '/reference/images.json')::json->'images')
         WITH ORDINALITY AS x(c, ord),
         (VALUES ('openclip-tiny'), ('hf-tiny')) AS l(layout)
    WHERE c->>'file' IS NOT NULL;
SELECT layout, count(*) AS images, min(1 - (embed_image(bytes, em_model(layout)) <=> reference)) >= 0.999 AS parity
FROM em_images GROUP BY layout ORDER BY layout;
SELECT b.layout, min(1 - (e.emb <=> i.reference)) >= 0.999 AS batch_parity
FROM (SELECT layout, array_agg(bytes ORDER BY ord) AS images, array_agg(ord ORDER BY ord) AS ords
      FROM em_images GROUP BY layout) b,
     unnest(embed_images(b.images, em_model(b.layout)), b.ords) AS e(emb, ord)
     JOIN em_images i USING (ord)
WHERE i.layout = b.layout GROUP BY b.layout ORDER BY b.layout;
SELECT coalesce(bool_and(1 - (embed_image(pg_read_binary_file(:'photos' || '/' || (c->>'photo')), em_model(layout))
                              <=> (c->layout->'embedding')::text::xvector) >= 0.999), true) AS photo_parity_or_no_photos
FROM json_array_elements(pg_read_file(:'models' || '/reference/images.json')::json->'images') AS x(c),
     (VALUES ('openclip-tiny'), ('hf-tiny')) AS l(layout)
WHERE c->>'photo' IS NOT NULL AND pg_stat_file(:'photos' || '/' || (c->>'photo'), true) IS NOT NULL;

-- NULLs: a NULL input gives NULL (as STRICT would), NULL elements give NULL elements; the model
-- argument defaults to xmodal.default_model.
SELECT embed_text(NULL, 'em_oc') IS NULL AS t, embed_image(NULL, 'em_oc') IS NULL AS i,
       embed_texts(NULL, 'em_oc') IS NULL AS ts, embed_images(NULL, 'em_oc') IS NULL AS "is";
SELECT array_length(v, 1) AS n, v[1] IS NULL AS first_null, vector_dims(v[2]) AS dims, v[3] IS NULL AS third_null
FROM (SELECT embed_texts(ARRAY[NULL, 'a dog', NULL], 'em_oc') AS v) s;
SELECT embed_texts('{}', 'em_oc') AS empty_batch, embed_images('{}', 'em_oc') AS empty_images;
SELECT em_try('SELECT embed_text(''a dog'')');
SET xmodal.default_model = 'em_hf';
SELECT vector_dims(embed_text('a dog')) AS default_dims,
       embed_text('a dog') = embed_text('a dog', 'em_hf') AS same_as_named;

-- Encode once per query: ORDER BY emb <=> embed_text('dog') LIMIT 10 runs the text tower once,
-- whatever the plan. Sequential scan + sort: the STABLE call is evaluated per row, every row
-- after the first is a hit of the backend's cache.
CREATE TABLE em_items (id int PRIMARY KEY, emb xvector(16));
INSERT INTO em_items
    SELECT i, l2_normalize((SELECT array_agg(sin(i * 7 + j))::real[] FROM generate_series(1, 16) j)::xvector)
    FROM generate_series(1, 300) i;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM em_items ORDER BY emb <=> embed_text('dog', 'em_oc') LIMIT 10;
SELECT xmodal.encoder_stats_reset();
SELECT count(*) FROM (SELECT id FROM em_items ORDER BY emb <=> embed_text('dog', 'em_oc') LIMIT 10) s;
SELECT calls, inputs, cache_hits, inferences FROM xmodal.encoder_stats() WHERE model = 'em_oc';
-- The same query again: no inference at all (the cache outlives the query).
SELECT count(*) FROM (SELECT id FROM em_items ORDER BY emb <=> embed_text('dog', 'em_oc') LIMIT 10) s;
SELECT calls, cache_hits, inferences FROM xmodal.encoder_stats() WHERE model = 'em_oc';
-- The exact top 10 is the same as with the vector computed first.
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM (
           SELECT id FROM em_items ORDER BY emb <=> (SELECT embed_text('dog', 'em_oc')) LIMIT 10) a) AS same_top10
FROM (SELECT id FROM em_items ORDER BY emb <=> embed_text('dog', 'em_oc') LIMIT 10) s;
-- Without the cache every row would run the tower.
SET xmodal.cache_entries = 0;
SELECT xmodal.encoder_stats_reset();
SELECT count(*) FROM (SELECT id FROM em_items ORDER BY emb <=> embed_text('cat', 'em_oc') LIMIT 10) s;
SELECT calls, cache_hits, inferences FROM xmodal.encoder_stats() WHERE model = 'em_oc';
RESET xmodal.cache_entries;
-- Index scan: the ORDER BY argument is computed once when the scan starts (the executor
-- evaluates it again for each row returned, to recheck the distance: cache hits).
RESET enable_indexscan;
CREATE INDEX em_items_emb ON em_items USING xhnsw (emb xvector_cosine_ops);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM em_items ORDER BY emb <=> embed_text('bird', 'em_oc') LIMIT 10;
SELECT xmodal.encoder_stats_reset();
SELECT count(*) FROM (SELECT id FROM em_items ORDER BY emb <=> embed_text('bird', 'em_oc') LIMIT 10) s;
SELECT calls, cache_hits, inferences FROM xmodal.encoder_stats() WHERE model = 'em_oc';
RESET enable_seqscan;
-- A new registration never reuses results cached for the old one.
SELECT xmodal.register_model('em_oc', :'models' || '/openclip-tiny', replace => true);
SELECT xmodal.encoder_stats_reset();
SELECT vector_dims(embed_text('dog', 'em_oc')), vector_dims(embed_text('dog', 'em_oc'));
SELECT calls, cache_hits, inferences FROM xmodal.encoder_stats() WHERE model = 'em_oc';

-- Bad input: clear ERRORs with their SQLSTATE.
\set png :models '/images/rgb_37x23.png'
\set jpeg :models '/images/photo_like_320x240.jpg'
SELECT em_try('SELECT embed_text(''dog'', ''em_nope'')') AS unknown_model;
SELECT em_try('SELECT embed_image(''\x00''::bytea, ''em_text'')') AS no_image_tower;
SELECT em_try('SELECT embed_images(ARRAY[''\x00''::bytea], ''em_text'')') AS no_image_tower_batch;
SELECT em_try('SELECT embed_text('' '', ''em_oc'')') AS blank_text;
SELECT em_try('SELECT embed_texts(ARRAY[''a'', NULL, ''''], ''em_oc'')') AS empty_element;
SELECT em_try('SELECT embed_image(''''::bytea, ''em_oc'')') AS zero_bytes;
SELECT em_try('SELECT embed_image(''not an image at all'', ''em_oc'')') AS not_an_image;
SELECT em_try('SELECT embed_image(''P6 1 1 255 xyz'', ''em_oc'')') AS unsupported_format;
SELECT em_try(format('SELECT embed_image(%L::bytea, %L)',
              substring(pg_read_binary_file(:'png') FROM 1 FOR 200), 'em_oc')) AS truncated_png;
SELECT em_try(format('SELECT embed_image(%L::bytea, %L)',
              substring(pg_read_binary_file(:'jpeg') FROM 1 FOR 9000), 'em_oc')) AS truncated_jpeg;
SELECT em_try(format('SELECT embed_images(ARRAY[%L::bytea, %L::bytea], %L)', pg_read_binary_file(:'png'),
              substring(pg_read_binary_file(:'png') FROM 1 FOR 200), 'em_oc')) AS corrupt_element;
SET xmodal.max_image_bytes = 1000;
SELECT em_try(format('SELECT embed_image(%L::bytea, %L)', pg_read_binary_file(:'jpeg'), 'em_oc')) AS too_many_bytes;
RESET xmodal.max_image_bytes;
SET xmodal.max_image_pixels = 100;
SELECT em_try(format('SELECT embed_image(%L::bytea, %L)', pg_read_binary_file(:'png'), 'em_oc')) AS too_many_pixels;
RESET xmodal.max_image_pixels;
SET xmodal.max_batch = 2;
SELECT em_try('SELECT embed_texts(ARRAY[''a'', ''b'', ''c''], ''em_oc'')') AS batch_too_large;
RESET xmodal.max_batch;
-- Bad model directories are refused at registration.
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/broken/corrupt-onnx')) AS corrupt_onnx;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/broken/missing-onnx')) AS missing_onnx;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/broken/escape')) AS escaping_path;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/broken')) AS no_tower;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/nonexistent')) AS no_directory;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_bad', :'models' || '/README.md')) AS not_a_directory;
SELECT em_try('SELECT xmodal.register_model(''em_bad'', ''tests/models/hf-tiny'')') AS relative_path;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', '', :'models' || '/hf-tiny')) AS empty_name;
SELECT em_try('SELECT xmodal.drop_model(''em_nope'')') AS drop_unknown;
-- CUDA asked for but unavailable (CI's ONNX Runtime is the CPU build).
SET xmodal.device = cuda;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_cuda', :'models' || '/hf-tiny')) AS cuda;
SET xmodal.device = cpu;
SELECT count(*) AS bad_registered FROM xmodal.models WHERE name IN ('em_bad', 'em_cuda', '');

-- Privileges: the registry is read by everyone and changed only through register_model and
-- drop_model, by superusers and members of xmodal.model_admin_role, inside xmodal.model_root.
CREATE ROLE em_user;
CREATE ROLE em_admin;
CREATE ROLE em_member IN ROLE em_admin;
GRANT SELECT ON em_items TO em_user;
SET ROLE em_user;
SELECT name FROM xmodal.models WHERE name LIKE 'em\_%' ORDER BY name;
SELECT vector_dims(embed_text('dog', 'em_oc')) AS user_can_embed;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_mine', :'models' || '/hf-tiny')) AS user_register;
SELECT em_try('SELECT xmodal.drop_model(''em_oc'')') AS user_drop;
SELECT em_try('INSERT INTO xmodal.model_registry (name, path, dims, modalities, registered_by) VALUES (''x'', ''/etc'', 1, ''{text}'', ''x'')') AS user_insert;
SELECT em_try('DELETE FROM xmodal.model_registry') AS user_delete;
SELECT em_try('SET xmodal.onnxruntime_library = ''/tmp/libevil.so''') AS user_library;
SELECT em_try('SET xmodal.model_root = ''/''') AS user_model_root;
RESET ROLE;
SET xmodal.model_admin_role = 'em_admin';
SET ROLE em_member;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_member', :'models' || '/hf-tiny')) AS member_without_root;
RESET ROLE;
SET xmodal.model_root = :'models';
SET ROLE em_member;
SELECT xmodal.register_model('em_member', :'models' || '/hf-tiny');
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_outside', '/')) AS member_outside_root;
SELECT name, registered_by FROM xmodal.models WHERE name = 'em_member';
SELECT xmodal.drop_model('em_member');
SET ROLE em_user;
SELECT em_try_here(format('SELECT xmodal.register_model(%L, %L)', 'em_user', :'models' || '/hf-tiny')) AS non_member;
RESET ROLE;
RESET xmodal.model_admin_role;
RESET xmodal.model_root;
SELECT has_table_privilege('public', 'xmodal.model_registry', 'INSERT') AS public_insert,
       has_table_privilege('public', 'xmodal.model_registry', 'UPDATE') AS public_update,
       has_table_privilege('public', 'xmodal.model_registry', 'DELETE') AS public_delete,
       has_table_privilege('public', 'xmodal.model_registry', 'SELECT') AS public_select;

-- A registration rolled back is forgotten by the session that made it.
BEGIN;
SELECT xmodal.register_model('em_tx', :'models' || '/hf-tiny');
SELECT vector_dims(embed_text('dog', 'em_tx')) AS inside_the_transaction;
ROLLBACK;
SELECT em_try('SELECT embed_text(''dog'', ''em_tx'')') AS after_rollback;

-- Dropping a model: its name is unknown again (in other sessions too: tests/embed_backends.sh).
SELECT xmodal.drop_model('em_text');
SELECT em_try('SELECT embed_text(''dog'', ''em_text'')') AS dropped;

DROP TABLE em_items, em_texts, em_images;
DROP FUNCTION em_model(text);
SELECT xmodal.drop_model(name) FROM xmodal.models WHERE name LIKE 'em\_%' ORDER BY name;
DROP ROLE em_member, em_admin;
DROP ROLE em_user;
DROP FUNCTION em_try_here(text), em_try(text);
