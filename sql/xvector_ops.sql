-- Operators, casts, aggregates and the btree opclass of xvector. Runs last (finalize), after
-- pgrx has created the functions named here.

-- Casts. Assigning to xvector(n) goes through xvector(xvector, integer, boolean).
CREATE CAST (xvector AS xvector) WITH FUNCTION xvector(xvector, integer, boolean) AS IMPLICIT;
CREATE CAST (real[] AS xvector) WITH FUNCTION array_to_xvector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS xvector) WITH FUNCTION array_to_xvector(double precision[], integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION array_to_xvector(integer[], integer, boolean) RETURNS xvector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN array_to_xvector($1::double precision[], $2, $3);
CREATE FUNCTION array_to_xvector(numeric[], integer, boolean) RETURNS xvector
    IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql
    RETURN array_to_xvector($1::double precision[], $2, $3);
CREATE CAST (integer[] AS xvector) WITH FUNCTION array_to_xvector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS xvector) WITH FUNCTION array_to_xvector(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (xvector AS real[]) WITH FUNCTION xvector_to_float4(xvector, integer, boolean) AS IMPLICIT;

-- Distance operators, with pgvector's meanings.
CREATE OPERATOR <-> (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <=> (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR <#> (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = negative_inner_product, COMMUTATOR = '<#>');

-- Element-wise arithmetic.
CREATE OPERATOR + (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_sub);
CREATE OPERATOR * (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_mul, COMMUTATOR = *);

-- Comparison, for ORDER BY emb, DISTINCT, GROUP BY and unique indexes.
CREATE OPERATOR < (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR CLASS xvector_ops DEFAULT FOR TYPE xvector USING btree AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    FUNCTION 1 xvector_cmp(xvector, xvector);

-- Aggregates: state is {count, sums...}; partial states combine for parallel plans.
CREATE AGGREGATE avg(xvector) (
    SFUNC = xvector_accum, STYPE = double precision[], FINALFUNC = xvector_avg,
    COMBINEFUNC = xvector_combine, INITCOND = '{0}', PARALLEL = SAFE
);
CREATE AGGREGATE sum(xvector) (
    SFUNC = xvector_accum, STYPE = double precision[], FINALFUNC = xvector_sum,
    COMBINEFUNC = xvector_combine, INITCOND = '{0}', PARALLEL = SAFE
);

-- pgvector's remaining xvector operators: L1 distance and concatenation.
CREATE OPERATOR <+> (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = l1_distance, COMMUTATOR = '<+>');
CREATE OPERATOR || (LEFTARG = xvector, RIGHTARG = xvector, FUNCTION = xvector_concat);
