//! xmodal: cross-modal search inside PostgreSQL.
//!
//! Modules: `vector` (the xvector type and its kernels), `index` (the xhnsw access method), `embed`
//! (in-database text and image encoders). The hand-written SQL that pgrx cannot generate (the type
//! itself, operators, opclasses, casts, aggregates, the model registry) lives in `sql/`.

use pgrx::prelude::*;

pub mod embed;
pub mod index;
pub mod vector;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/xvector_type.sql", name = "xvector_type", bootstrap);
extension_sql_file!(
    "../sql/xvector_ops.sql",
    name = "xvector_ops",
    requires = [
        xvector_coerce,
        array_to_xvector,
        real_array_to_xvector,
        xvector_to_float4,
        l2_distance,
        cosine_distance,
        negative_inner_product,
        xvector_add,
        xvector_sub,
        xvector_mul,
        xvector_lt,
        xvector_le,
        xvector_eq,
        xvector_ne,
        xvector_ge,
        xvector_gt,
        xvector_cmp,
        xvector_accum,
        xvector_combine,
        xvector_avg,
        xvector_sum,
        l1_distance,
        xvector_concat,
    ]
);
extension_sql_file!(
    "../sql/xhalfvec_ops.sql",
    name = "xhalfvec_ops",
    requires = [
        xvector_accum,
        xvector_avg,
        xvector_combine,
        xhalfvec_coerce,
        xhalfvec_to_xvector,
        xvector_to_xhalfvec,
        array_to_xhalfvec,
        real_array_to_xhalfvec,
        xhalfvec_to_float4,
        xhalfvec_l2_distance,
        xhalfvec_cosine_distance,
        xhalfvec_negative_inner_product,
        xhalfvec_l1_distance,
        xhalfvec_add,
        xhalfvec_sub,
        xhalfvec_mul,
        xhalfvec_concat,
        xhalfvec_lt,
        xhalfvec_le,
        xhalfvec_eq,
        xhalfvec_ne,
        xhalfvec_ge,
        xhalfvec_gt,
        xhalfvec_cmp,
    ]
);
extension_sql_file!(
    "../sql/embed.sql",
    name = "embed",
    requires = [model_registry_changed, model_device]
);
extension_sql_file!("../sql/xhnsw.sql", name = "xhnsw", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    index::options::init();
    embed::settings::init();
    embed::registry::init();
    embed::preload::init();
    embed::service::init();
}
