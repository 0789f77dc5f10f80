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
