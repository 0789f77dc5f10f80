#!/usr/bin/env bash
# CREATE EXTENSION binds nothing to look-alikes planted in the target schema beforehand (review
# finding 4): exact-type overloads of cardinality(), <@ and nextval() in public would win over
# pg_catalog's for unqualified names, be stored by OID in the registry's CHECK and DEFAULT, and
# then run as the registry's owner at every register_model. Needs a fresh database, so it is not
# in pg_test/.
source "$(dirname "$0")/lib.sh"
start_cluster extension_decoys
sql "CREATE DATABASE decoys"
export PGDATABASE=decoys
sql "
CREATE TABLE public.decoy_calls (what text);
CREATE FUNCTION public.cardinality(text[]) RETURNS integer LANGUAGE sql
    AS \$\$ INSERT INTO public.decoy_calls VALUES ('cardinality') RETURNING 1 \$\$;
CREATE FUNCTION public.decoy_contained(text[], text[]) RETURNS boolean LANGUAGE sql
    AS \$\$ INSERT INTO public.decoy_calls VALUES ('<@') RETURNING true \$\$;
CREATE OPERATOR public.<@ (LEFTARG = text[], RIGHTARG = text[], FUNCTION = public.decoy_contained);
CREATE FUNCTION public.nextval(text) RETURNS bigint LANGUAGE sql
    AS \$\$ INSERT INTO public.decoy_calls VALUES ('nextval') RETURNING 42::bigint \$\$;"

# The decoys do capture unqualified names here (otherwise this test could not fail).
captured=$(sql "SELECT cardinality(ARRAY['a', 'b']::text[]), ARRAY['x']::text[] <@ ARRAY['y']::text[],
                       nextval('decoy_calls')")
sql "TRUNCATE public.decoy_calls"
[ "$captured" = "1|t|42" ] || fail "the decoys do not capture unqualified names: $captured"
echo "ok: unqualified names resolve to the decoys in this database"

sql "CREATE EXTENSION xmodal"
checks=$(sql "SELECT string_agg(pg_get_constraintdef(oid), ' ; ' ORDER BY conname) FROM pg_constraint
              WHERE conrelid = 'xmodal.model_registry'::regclass AND contype = 'c'")
[[ $checks == *"pg_catalog.cardinality(modalities)"* ]] || fail "cardinality is not pg_catalog's: $checks"
[[ $checks == *"OPERATOR(pg_catalog.<@)"* ]] || fail "<@ is not pg_catalog's: $checks"
echo "ok: CHECK constraints: $checks"
default=$(sql "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef JOIN pg_attribute a
               ON a.attrelid = adrelid AND a.attnum = adnum
               WHERE adrelid = 'xmodal.model_registry'::regclass AND a.attname = 'id'")
[[ $default == *"nextval('xmodal.model_registry_id_seq'::regclass)" ]] \
    || fail "the id default does not call nextval(regclass): $default"
echo "ok: id DEFAULT: $default"
# No CHECK or DEFAULT of the registry depends on a decoy (pg_catalog's are pinned: no rows).
deps=$(sql "SELECT string_agg(pg_describe_object(refclassid, refobjid, 0), ', ') FROM pg_depend
            WHERE classid IN ('pg_constraint'::regclass, 'pg_attrdef'::regclass)
              AND objid IN (SELECT oid FROM pg_constraint WHERE conrelid = 'xmodal.model_registry'::regclass
                            UNION ALL SELECT oid FROM pg_attrdef WHERE adrelid = 'xmodal.model_registry'::regclass)
              AND refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)")
[ -z "$deps" ] || fail "the registry's CHECK/DEFAULT depend on: $deps"
echo "ok: no CHECK or DEFAULT depends on a function or operator outside pg_catalog"
# A registry write (as register_model does, without ONNX Runtime) runs no decoy.
sql "INSERT INTO xmodal.model_registry (name, path, dims, modalities, registered_by)
     VALUES ('m', '/models/m', 16, ARRAY['text'], 'test')"
id=$(sql "SELECT id FROM xmodal.model_registry WHERE name = 'm'")
calls=$(sql "SELECT count(*) FROM public.decoy_calls")
[ "$calls" = 0 ] && [ "$id" = 1 ] || fail "a decoy ran during a registry write ($calls calls, id $id)"
echo "ok: a registry write ran no decoy (id $id from the sequence)"
