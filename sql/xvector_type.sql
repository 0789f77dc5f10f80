-- The xvector type itself. Runs first (bootstrap), before pgrx's generated functions, so that
-- every function taking or returning xvector finds a complete type.
CREATE TYPE xvector;

CREATE FUNCTION xvector_in(cstring, oid, integer) RETURNS xvector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xvector_in_wrapper';
CREATE FUNCTION xvector_out(xvector) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xvector_out_wrapper';
CREATE FUNCTION xvector_typmod_in(cstring[]) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xvector_typmod_in_wrapper';
CREATE FUNCTION xvector_recv(internal, oid, integer) RETURNS xvector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xvector_recv_wrapper';
CREATE FUNCTION xvector_send(xvector) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xvector_send_wrapper';

-- STORAGE external: vectors do not compress, but large ones may move out of line.
CREATE TYPE xvector (
    INPUT     = xvector_in,
    OUTPUT    = xvector_out,
    TYPMOD_IN = xvector_typmod_in,
    RECEIVE   = xvector_recv,
    SEND      = xvector_send,
    STORAGE   = external
);

-- xhalfvec: half-precision vectors (pgvector's halfvec). Same shape as above; its functions,
-- operators and casts are in sql/xhalfvec_ops.sql.
CREATE TYPE xhalfvec;

CREATE FUNCTION xhalfvec_in(cstring, oid, integer) RETURNS xhalfvec
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xhalfvec_in_wrapper';
CREATE FUNCTION xhalfvec_out(xhalfvec) RETURNS cstring
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xhalfvec_out_wrapper';
CREATE FUNCTION xhalfvec_typmod_in(cstring[]) RETURNS integer
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xhalfvec_typmod_in_wrapper';
CREATE FUNCTION xhalfvec_recv(internal, oid, integer) RETURNS xhalfvec
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xhalfvec_recv_wrapper';
CREATE FUNCTION xhalfvec_send(xhalfvec) RETURNS bytea
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE C AS 'MODULE_PATHNAME', 'xhalfvec_send_wrapper';

CREATE TYPE xhalfvec (
    INPUT     = xhalfvec_in,
    OUTPUT    = xhalfvec_out,
    TYPMOD_IN = xhalfvec_typmod_in,
    RECEIVE   = xhalfvec_recv,
    SEND      = xhalfvec_send,
    STORAGE   = external
);
