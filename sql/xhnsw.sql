-- The xhnsw index access method and its operator classes. Runs last (finalize): it needs the
-- distance operators of sql/xvector_ops.sql.
CREATE FUNCTION xhnsw_handler(internal) RETURNS index_am_handler
    LANGUAGE C AS 'MODULE_PATHNAME', 'xhnsw_handler_wrapper';
CREATE ACCESS METHOD xhnsw TYPE INDEX HANDLER xhnsw_handler;
COMMENT ON ACCESS METHOD xhnsw IS 'HNSW approximate nearest-neighbour index for xvector';

-- Support function 1 names the distance the graph is built for.
CREATE OPERATOR CLASS xvector_l2_ops DEFAULT FOR TYPE xvector USING xhnsw AS
    OPERATOR 1 <-> (xvector, xvector) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(xvector, xvector);
CREATE OPERATOR CLASS xvector_cosine_ops FOR TYPE xvector USING xhnsw AS
    OPERATOR 1 <=> (xvector, xvector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(xvector, xvector);
CREATE OPERATOR CLASS xvector_ip_ops FOR TYPE xvector USING xhnsw AS
    OPERATOR 1 <#> (xvector, xvector) FOR ORDER BY float_ops,
    FUNCTION 1 negative_inner_product(xvector, xvector);

-- Filter columns: the columns after the vector in a multi-column xhnsw index. Their clauses
-- (=, <, <=, >=, >; &&, @>, <@, = on arrays) are checked during the graph search. (No bool
-- class: PostgreSQL turns a bare boolean column into an index condition only for btree.)
CREATE OPERATOR CLASS int2_ops DEFAULT FOR TYPE int2 USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS int4_ops DEFAULT FOR TYPE int4 USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS int8_ops DEFAULT FOR TYPE int8 USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS text_ops DEFAULT FOR TYPE text USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS date_ops DEFAULT FOR TYPE date USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS timestamptz_ops DEFAULT FOR TYPE timestamptz USING xhnsw AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >;
CREATE OPERATOR CLASS array_ops DEFAULT FOR TYPE anyarray USING xhnsw AS
    OPERATOR 1 && (anyarray, anyarray), OPERATOR 2 @> (anyarray, anyarray),
    OPERATOR 3 <@ (anyarray, anyarray), OPERATOR 4 = (anyarray, anyarray);

-- Structural check of an xhnsw index, for its table's owner (src/index/check.rs). Declared here
-- so that its argument is a regclass that nothing opens before the function's own checks.
CREATE FUNCTION xmodal.index_check(index regclass)
    RETURNS TABLE (check_name text, value bigint)
    STRICT LANGUAGE C AS 'MODULE_PATHNAME', 'index_check_wrapper';

-- L1 (pgvector's vector_l1_ops) and the xhalfvec classes. The index computes in f32 and
-- stores f32 elements for both types, so xhalfvec indexes have xvector's dimension limit.
CREATE OPERATOR CLASS xvector_l1_ops FOR TYPE xvector USING xhnsw AS
    OPERATOR 1 <+> (xvector, xvector) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(xvector, xvector);
CREATE OPERATOR CLASS xhalfvec_l2_ops DEFAULT FOR TYPE xhalfvec USING xhnsw AS
    OPERATOR 1 <-> (xhalfvec, xhalfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(xhalfvec, xhalfvec);
CREATE OPERATOR CLASS xhalfvec_cosine_ops FOR TYPE xhalfvec USING xhnsw AS
    OPERATOR 1 <=> (xhalfvec, xhalfvec) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(xhalfvec, xhalfvec);
CREATE OPERATOR CLASS xhalfvec_ip_ops FOR TYPE xhalfvec USING xhnsw AS
    OPERATOR 1 <#> (xhalfvec, xhalfvec) FOR ORDER BY float_ops,
    FUNCTION 1 negative_inner_product(xhalfvec, xhalfvec);
CREATE OPERATOR CLASS xhalfvec_l1_ops FOR TYPE xhalfvec USING xhnsw AS
    OPERATOR 1 <+> (xhalfvec, xhalfvec) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(xhalfvec, xhalfvec);
