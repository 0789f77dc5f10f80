-- Every bad input gets a clear ERROR (and the backend survives: the last query still runs).
SELECT ''::xvector;
SELECT '1,2'::xvector;
SELECT '[1,2'::xvector;
SELECT '[1,,2]'::xvector;
SELECT '[1,2,]'::xvector;
SELECT '[a,b]'::xvector;
SELECT '[1 2]'::xvector;
SELECT '[[1]]'::xvector;
SELECT '[]'::xvector;
SELECT '[NaN]'::xvector;
SELECT '[1,Infinity]'::xvector;
SELECT '[-inf]'::xvector;
SELECT '[1e39]'::xvector;
SELECT '[1,2,3]'::xvector(2);
SELECT '[1]'::xvector(0);
SELECT '[1]'::xvector(16001);
SELECT '[1]'::xvector(1, 2);
SELECT array_fill(1.0::real, ARRAY[16001])::xvector;
SELECT array_to_xvector(array_fill(1.0::real, ARRAY[16000]), -1, false) IS NOT NULL AS max_dims_ok;
CREATE TABLE e (v xvector(3));
INSERT INTO e VALUES ('[1,2]');
INSERT INTO e VALUES (ARRAY[1,2,3,4]);
SELECT '[1,2]'::xvector <-> '[1,2,3]'::xvector;
SELECT '[1,2]'::xvector <=> '[1,2,3]'::xvector;
SELECT '[1,2]'::xvector <#> '[1,2,3]'::xvector;
SELECT '[1,2]'::xvector + '[1,2,3]'::xvector;
SELECT '[3e38]'::xvector + '[3e38]'::xvector;
SELECT '[3e38]'::xvector * '[10]'::xvector;
SELECT '[-3e38]'::xvector - '[3e38]'::xvector;
SELECT sum(v) FROM (VALUES ('[3e38]'::xvector), ('[3e38]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::xvector), ('[1,2,3]')) t(v);
SELECT ARRAY[1,NULL,3]::xvector;
SELECT ARRAY[[1,2],[3,4]]::xvector;
SELECT '{}'::real[]::xvector;
SELECT ARRAY['NaN'::real]::xvector;
SELECT ARRAY['Infinity'::double precision]::xvector;
SELECT ARRAY[1e39]::double precision[]::xvector;
SELECT ARRAY[1e400]::numeric[]::xvector;
SELECT '[1,2,3]'::xvector AS still_alive;

-- The SQLSTATE of each class of error.
CREATE FUNCTION sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
SELECT query, sqlstate_of(query) FROM (VALUES
    ($$SELECT '[1,'::xvector$$),
    ($$SELECT '[]'::xvector$$),
    ($$SELECT '[NaN]'::xvector$$),
    ($$SELECT '[1e39]'::xvector$$),
    ($$SELECT '[1]'::xvector(0)$$),
    ($$SELECT array_fill(1.0::real, ARRAY[16001])::xvector$$),
    ($$SELECT '[1,2]'::xvector(3)$$),
    ($$SELECT '[1,2]'::xvector <-> '[1]'$$),
    ($$SELECT '[3e38]'::xvector + '[3e38]'$$),
    ($$SELECT ARRAY[1,NULL]::xvector$$)
) t(query);
