-- The encoders' model registry: one row per registered model directory. Written only through
-- xmodal.register_model / xmodal.drop_model (which check the caller and write as the table's
-- owner); readable by everyone through the view xmodal.models.
CREATE SEQUENCE xmodal.model_registry_id_seq;
CREATE TABLE xmodal.model_registry (
    name          text PRIMARY KEY CHECK (name <> ''),
    path          text NOT NULL CHECK (path LIKE '/%'),
    dims          integer NOT NULL CHECK (dims BETWEEN 1 AND 16000),
    modalities    text[] NOT NULL
                  CHECK (cardinality(modalities) > 0 AND modalities <@ ARRAY['text', 'image']),
    -- New at every registration: backends reload sessions and never reuse older results.
    id            bigint NOT NULL DEFAULT nextval('xmodal.model_registry_id_seq'),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL
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
