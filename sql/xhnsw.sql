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
