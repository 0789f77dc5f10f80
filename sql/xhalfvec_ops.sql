-- Casts, operators, the btree opclass and aggregates of xhalfvec (pgvector's halfvec, with
-- the same cast contexts). Runs after pgrx has created the functions named here.

CREATE CAST (xhalfvec AS xhalfvec) WITH FUNCTION xhalfvec(xhalfvec, integer, boolean) AS IMPLICIT;
CREATE CAST (xhalfvec AS xvector) WITH FUNCTION xhalfvec_to_xvector(xhalfvec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (xvector AS xhalfvec) WITH FUNCTION xvector_to_xhalfvec(xvector, integer, boolean) AS IMPLICIT;
CREATE CAST (xhalfvec AS real[]) WITH FUNCTION xhalfvec_to_float4(xhalfvec, integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS xhalfvec) WITH FUNCTION array_to_xhalfvec(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS xhalfvec)
    WITH FUNCTION array_to_xhalfvec(double precision[], integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION array_to_xhalfvec(integer[], integer, boolean) RETURNS xhalfvec
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN array_to_xhalfvec($1::double precision[], $2, $3);
CREATE FUNCTION array_to_xhalfvec(numeric[], integer, boolean) RETURNS xhalfvec
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN array_to_xhalfvec($1::double precision[], $2, $3);
CREATE CAST (integer[] AS xhalfvec) WITH FUNCTION array_to_xhalfvec(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS xhalfvec) WITH FUNCTION array_to_xhalfvec(numeric[], integer, boolean) AS ASSIGNMENT;

CREATE OPERATOR <-> (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <=> (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR <#> (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <+> (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = l1_distance, COMMUTATOR = '<+>');

CREATE OPERATOR + (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_sub);
CREATE OPERATOR * (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_mul, COMMUTATOR = *);
CREATE OPERATOR || (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_concat);

CREATE OPERATOR < (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = xhalfvec, RIGHTARG = xhalfvec, FUNCTION = xhalfvec_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR CLASS xhalfvec_ops DEFAULT FOR TYPE xhalfvec USING btree AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    FUNCTION 1 xhalfvec_cmp(xhalfvec, xhalfvec);

-- avg sums in double precision with xvector's state functions and narrows at the end (an
-- average beyond the half range is an error, as in pgvector); sum adds halves like pgvector.
CREATE FUNCTION xhalfvec_accum(double precision[], xhalfvec) RETURNS double precision[]
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN xvector_accum($1, $2::xvector);
CREATE FUNCTION xhalfvec_avg(double precision[]) RETURNS xhalfvec
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN xvector_avg($1)::xhalfvec;
CREATE AGGREGATE avg(xhalfvec) (
    SFUNC = xhalfvec_accum, STYPE = double precision[], FINALFUNC = xhalfvec_avg,
    COMBINEFUNC = xvector_combine, INITCOND = '{0}', PARALLEL = SAFE
);
CREATE AGGREGATE sum(xhalfvec) (
    SFUNC = xhalfvec_add, STYPE = xhalfvec, COMBINEFUNC = xhalfvec_add, PARALLEL = SAFE
);
