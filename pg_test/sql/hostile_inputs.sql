-- Bad and hostile inputs to the xvector functions and the encoders (issue 12, review
-- robustness-5a0e31c): one block per finding, each with its exact SQLSTATE, and at the end the
-- proof that neither this backend nor the postmaster restarted. Index cases are in their own file.
\getenv abs_srcdir PG_ABS_SRCDIR
\set models :abs_srcdir '/../tests/models'
SELECT pg_postmaster_start_time() AS started \gset

-- 'SQLSTATE: message' of a statement, or 'ok'; paths shown relative to tests/models.
CREATE FUNCTION pg_temp.try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'ok';
EXCEPTION WHEN others THEN
    RETURN regexp_replace(SQLSTATE || ': ' || SQLERRM, '/[^ "]*/tests/models', '.../tests/models', 'g');
END $$;

SET xmodal.device = cpu;
SELECT xmodal.register_model('hi_oc', :'models' || '/openclip-tiny');

-- Finding 1: sizes from SQL are checked before anything is copied. The batch limit counts
-- NULLs, and is checked before the model is even looked up; several dimensions are refused.
SELECT pg_temp.try('SELECT embed_texts(array_fill(NULL::text, ARRAY[1000000]), ''no_such_model'')') AS null_texts;
SELECT pg_temp.try('SELECT embed_images(array_fill(NULL::bytea, ARRAY[1000000]), ''hi_oc'')') AS null_images;
SELECT pg_temp.try('SELECT embed_texts(ARRAY[[''a'', ''b''], [''c'', ''d'']], ''hi_oc'')') AS two_dim_texts;
SELECT pg_temp.try('SELECT embed_images(ARRAY[[''\x00''::bytea]], ''hi_oc'')') AS two_dim_images;
-- An image over the byte limit is refused before it is hashed for the cache.
SET xmodal.max_image_bytes = 1000;
SELECT pg_temp.try('SELECT embed_image(pg_catalog.repeat(''x'', 100000)::bytea, ''hi_oc'')') AS big_image;
RESET xmodal.max_image_bytes;
-- A text past the 256 KiB that is embedded: the cache keys on that prefix only.
SELECT embed_text(repeat('dog ', 65536) || 'cat', 'hi_oc') = embed_text(repeat('dog ', 65536) || 'fox', 'hi_oc') AS same_prefix_same_vector;
-- Arrays cast to xvector, and the aggregates' state, are bounded before they are copied.
SELECT pg_temp.try('SELECT array_fill(0::float8, ARRAY[1000000])::xvector') AS huge_array;
SELECT pg_temp.try('SELECT array_fill(NULL::real, ARRAY[1000000])::xvector') AS huge_null_array;
SELECT pg_temp.try('SELECT xvector_accum(array_fill(0::float8, ARRAY[1000000]), ''[1]'')') AS huge_state;

-- Finding 3: the text clean-up takes a bounded number of passes (this ran for minutes).
SET statement_timeout = '60s';
SELECT vector_dims(embed_text('&' || repeat('amp;', 65535), 'hi_oc')) AS nested_escapes;
RESET statement_timeout;

-- Finding 4: the registry's CHECK and DEFAULT, as ruleutils prints them (it qualifies a name only
-- when a look-alike is visible: tests/extension_decoys.sh plants them before CREATE EXTENSION).
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'xmodal.model_registry'::regclass AND contype = 'c' ORDER BY conname;
SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
WHERE adrelid = 'xmodal.model_registry'::regclass ORDER BY adnum;

-- Finding 8: the state functions never build a value that dump and restore would refuse.
SELECT pg_temp.try('SELECT xvector_sum(array_prepend(1::float8, array_fill(0::float8, ARRAY[16001])))') AS sum_16001;
SELECT pg_temp.try('SELECT xvector_avg(array_prepend(1::float8, array_fill(0::float8, ARRAY[65537])))') AS avg_65537;
SELECT vector_dims(xvector_sum(array_prepend(1::float8, array_fill(0::float8, ARRAY[16000])))) AS sum_16000;
SELECT pg_temp.try('SELECT xvector_avg(''{1,NULL}'')') AS null_in_state;
SELECT pg_temp.try('SELECT xvector_combine(''{1,2}'', ''{NULL,2}'')') AS null_in_combine;
SELECT pg_temp.try('SELECT xvector_avg(''{-1,2}'')') AS negative_count;
SELECT pg_temp.try('SELECT xvector_avg(''{NaN,2}'')') AS nan_count;
SELECT pg_temp.try('SELECT xvector_avg(''{{1,2},{3,4}}'')') AS two_dim_state;
SELECT pg_temp.try('SELECT xvector_accum(''{1,2,3}'', ''[1]'')') AS state_mismatch;
SELECT xvector_avg('{2,4,6}') AS avg_ok, xvector_sum('{0}') AS empty_sum;

-- Finding 9: settings that size memory in every backend are capped at registration.
SELECT pg_temp.try(format('SELECT xmodal.register_model(%L, %L)', 'hi_bad', :'models' || '/broken/huge-context')) AS huge_context;
SELECT pg_temp.try(format('SELECT xmodal.register_model(%L, %L)', 'hi_bad', :'models' || '/broken/huge-resize')) AS huge_resize;

-- Finding 11: while xmodal.model_root is set, no model file may resolve outside it.
SET xmodal.model_root = :'models';
SELECT pg_temp.try(format('SELECT xmodal.register_model(%L, %L)', 'hi_bad', :'models' || '/broken/link-out')) AS link_out_of_root;
-- Links between directories inside the root are fine.
SELECT pg_temp.try(format('SELECT xmodal.register_model(%L, %L)', 'hi_text', :'models' || '/openclip-text-only')) AS link_inside_root;
RESET xmodal.model_root;
SELECT count(*) AS bad_registered FROM xmodal.models WHERE name = 'hi_bad';

-- Finding 12: the registry's owner is read without SQL, so no operator on the caller's
-- search_path runs (this decoy raised an ERROR in register_model before).
CREATE SCHEMA hi_decoy;
CREATE FUNCTION hi_decoy.oid_eq(oid, regclass) RETURNS boolean LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'decoy operator called'; END $$;
CREATE OPERATOR hi_decoy.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = hi_decoy.oid_eq);
SET search_path = hi_decoy, public;
SELECT pg_temp.try(format('SELECT xmodal.register_model(%L, %L, true)', 'hi_text', :'models' || '/openclip-text-only')) AS with_decoy_operator;
RESET search_path;
DROP SCHEMA hi_decoy CASCADE;

-- Finding 14: settings that size threads or GPU memory are superuser-only; the cache is capped.
CREATE ROLE regress_hostile;
SET ROLE regress_hostile;
SELECT pg_temp.try('SET xmodal.device = cpu') AS device_by_user;
SELECT pg_temp.try('SET xmodal.intra_op_threads = 64') AS threads_by_user;
SELECT pg_temp.try('SET xmodal.cache_entries = 100000') AS cache_over_cap;
SELECT pg_temp.try('SET xmodal.cache_entries = 1024') AS cache_at_cap;
RESET ROLE;
DROP ROLE regress_hostile;

-- Finding 15: user mistakes are never XX000 (the NULL state above was XX000, a pgrx panic).
SELECT pg_temp.try('SELECT xvector_sum(''{1,NULL,2}'')') AS null_in_sum_state;

SELECT xmodal.drop_model('hi_oc'), xmodal.drop_model('hi_text');
-- Alive: this backend answers, and the postmaster was not restarted by any of the above.
SELECT pg_postmaster_start_time() = :'started'::timestamptz AS same_postmaster, 1 AS alive;
