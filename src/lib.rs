//! xmodal: cross-modal search inside PostgreSQL.
//!
//! Modules: `vector` (the xvector type and its kernels). The hand-written SQL that pgrx cannot
//! generate (the type itself, operators, opclasses, casts, aggregates) lives in `sql/`.

use pgrx::prelude::*;

pub mod vector;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/xvector_type.sql", name = "xvector_type", bootstrap);
extension_sql_file!("../sql/xvector_ops.sql", name = "xvector_ops", finalize);

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
