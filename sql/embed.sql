-- The encoders' model registry: one row per registered model directory. Written only through
-- xmodal.register_model / xmodal.drop_model (which check the caller and write as the table's
-- owner); readable by everyone through the view xmodal.models.
-- Every function and operator below is schema-qualified: CREATE EXTENSION runs with the target
-- schema in search_path, and an unqualified name would bind (by OID, for good) to a look-alike
-- that a role with CREATE there planted first, which then runs as the registry's owner.
CREATE SEQUENCE xmodal.model_registry_id_seq;
CREATE TABLE xmodal.model_registry (
    name          pg_catalog.text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.<>) ''::pg_catalog.text),
    path          pg_catalog.text NOT NULL CHECK (path OPERATOR(pg_catalog.~~) '/%'::pg_catalog.text),
    dims          pg_catalog.int4 NOT NULL
                  CHECK (dims OPERATOR(pg_catalog.>=) 1 AND dims OPERATOR(pg_catalog.<=) 16000),
    modalities    pg_catalog.text[] NOT NULL
                  CHECK (pg_catalog.cardinality(modalities) OPERATOR(pg_catalog.>) 0
                         AND modalities OPERATOR(pg_catalog.<@) ARRAY['text', 'image']::pg_catalog.text[]),
    -- New at every registration: backends reload sessions and never reuse older results.
    id            pg_catalog.int8 NOT NULL
                  DEFAULT pg_catalog.nextval('xmodal.model_registry_id_seq'::pg_catalog.regclass),
    registered_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by pg_catalog.text NOT NULL
);
ALTER SEQUENCE xmodal.model_registry_id_seq OWNED BY xmodal.model_registry.id;
-- Any change (also by hand, or by a restore) makes every backend read the registry again.
CREATE TRIGGER model_registry_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON xmodal.model_registry
    FOR EACH STATEMENT EXECUTE FUNCTION xmodal.model_registry_changed();
-- Registrations are data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('xmodal.model_registry', '');
SELECT pg_catalog.pg_extension_config_dump('xmodal.model_registry_id_seq', '');

REVOKE ALL ON xmodal.model_registry, xmodal.model_registry_id_seq FROM PUBLIC;
GRANT SELECT ON xmodal.model_registry TO PUBLIC;
GRANT USAGE ON SCHEMA xmodal TO PUBLIC;

CREATE VIEW xmodal.models AS
    SELECT name, dims, modalities, path, xmodal.model_device(name) AS device,
           registered_at, registered_by
    FROM xmodal.model_registry;
COMMENT ON VIEW xmodal.models IS
    'Registered encoder models; device is where this backend runs them (NULL: not loaded here)';
GRANT SELECT ON xmodal.models TO PUBLIC;
