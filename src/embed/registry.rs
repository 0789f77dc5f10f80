//! The model registry: the table `xmodal.model_registry` (sql/embed.sql), who may change it, which
//! directories may be registered, and when a backend must read it again.
//!
//! The table is readable by everyone and writable only by its owner: register_model/drop_model
//! check the caller (a superuser, or a member of `xmodal.model_admin_role`) and then write as
//! the table's owner, as a SECURITY DEFINER function would. A statement trigger on the table
//! sends a relcache invalidation, so every backend learns of a change at its next transaction;
//! until then a backend reuses what it read (`epoch`).

use std::cell::Cell;
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode::*;

use super::pipeline::error::EmbedError;
use super::pipeline::model::ModelConfig;
use super::report::raise;
use super::settings;
use super::Modality;

const SCHEMA: &std::ffi::CStr = c"xmodal";
const TABLE: &std::ffi::CStr = c"model_registry";

/// One row of the registry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// New at every registration: results cached for an older one are never used.
    pub id: i64,
    pub name: String,
    pub path: PathBuf,
    pub dims: usize,
    pub modalities: Vec<Modality>,
}

thread_local! {
    static EPOCH: Cell<u64> = const { Cell::new(0) };
    static TABLE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// Changes whenever the registry may have changed since a backend last read it.
pub fn epoch() -> u64 {
    EPOCH.with(Cell::get)
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == TABLE_OID.with(Cell::get) {
        EPOCH.with(|e| e.set(e.get() + 1));
    }
}

pub fn init() {
    // SAFETY: registers a callback that only touches this backend's counters.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0))
    };
}

/// The registry table's oid, remembered for the invalidation callback; None before CREATE
/// EXTENSION in this database.
pub fn table_oid() -> Option<pg_sys::Oid> {
    // SAFETY: catalog lookups by name inside a transaction.
    let oid = unsafe {
        let schema = pg_sys::get_namespace_oid(SCHEMA.as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return None;
        }
        pg_sys::get_relname_relid(TABLE.as_ptr(), schema)
    };
    TABLE_OID.with(|t| t.set(oid));
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The registered model `name`, if any.
pub fn lookup(name: &str) -> Option<Entry> {
    if table_oid().is_none() {
        raise(
            ERRCODE_UNDEFINED_TABLE,
            "the xmodal model registry does not exist in this database".into(),
            Some("CREATE EXTENSION xmodal"),
        );
    }
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT id, path, dims, modalities FROM xmodal.model_registry \
             WHERE name OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[name.into()],
        )?;
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.first();
        Ok::<_, pgrx::spi::SpiError>(Some((
            row.get::<i64>(1)?,
            row.get::<String>(2)?,
            row.get::<i32>(3)?,
            row.get::<Vec<String>>(4)?,
        )))
    });
    let row = row.unwrap_or_else(|e| raise(ERRCODE_INTERNAL_ERROR, e.to_string(), None))?;
    let (Some(id), Some(path), Some(dims), Some(modalities)) = row else {
        raise(
            ERRCODE_DATA_CORRUPTED,
            format!("model \"{name}\" has NULLs in xmodal.model_registry"),
            None,
        );
    };
    Some(Entry {
        id,
        name: name.to_string(),
        path: PathBuf::from(path),
        dims: dims.max(0) as usize,
        modalities: modalities
            .iter()
            .filter_map(|m| match m.as_str() {
                "text" => Some(Modality::Text),
                "image" => Some(Modality::Image),
                _ => None,
            })
            .collect(),
    })
}

/// Refuses callers that are neither superusers nor members of `xmodal.model_admin_role`.
pub fn require_admin() {
    if is_superuser() {
        return;
    }
    if let Some(role) = settings::model_admin_role() {
        let role = CString::new(role).unwrap_or_default();
        // SAFETY: catalog lookups for the current user and a role name.
        let member = unsafe {
            let oid = pg_sys::get_role_oid(role.as_ptr(), true);
            oid != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid)
        };
        if member {
            return;
        }
    }
    raise(
        ERRCODE_INSUFFICIENT_PRIVILEGE,
        "permission denied to register or drop xmodal models".into(),
        Some("Only superusers and members of the role named by xmodal.model_admin_role may."),
    );
}

fn is_superuser() -> bool {
    // SAFETY: reads the current user's catalog entry.
    unsafe { pg_sys::superuser() }
}

/// The directory to register, made canonical (symbolic links resolved). It must exist; when
/// `xmodal.model_root` is set it must lie inside it (as written, so that nothing outside is even
/// looked at, and once resolved), and only superusers may register while it is unset.
pub fn checked_directory(path: &str) -> PathBuf {
    let given = Path::new(path);
    if !given.is_absolute() {
        raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model path \"{path}\" must be absolute"),
            None,
        );
    }
    let root = settings::model_root().map(|root| lexical(&root));
    let outside = |root: &Path| -> ! {
        raise(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "model directory \"{path}\" is not inside xmodal.model_root (\"{}\")",
                root.display()
            ),
            None,
        )
    };
    match &root {
        Some(root) if !lexical(given).starts_with(root) => outside(root),
        None if !is_superuser() => raise(
            ERRCODE_INSUFFICIENT_PRIVILEGE,
            "only superusers may register models while xmodal.model_root is not set".into(),
            Some("A superuser can set xmodal.model_root to the directory that holds the models."),
        ),
        _ => {}
    }
    let dir = match std::fs::canonicalize(given) {
        Ok(dir) if dir.is_dir() => dir,
        Ok(_) => raise(
            ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model path \"{path}\" is not a directory"),
            None,
        ),
        Err(e) => raise(
            ERRCODE_UNDEFINED_FILE,
            format!("model directory \"{path}\" cannot be opened: {e}"),
            None,
        ),
    };
    if let Some(root) = &root {
        let resolved = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        if !dir.starts_with(resolved) {
            outside(root);
        }
    }
    dir
}

/// Reads a registered directory's configuration. While `xmodal.model_root` is set, every file
/// the model opens must resolve inside it (a symbolic link out of the root is refused), checked
/// at registration and again whenever a backend loads the model (the files may have changed).
pub fn load_config(dir: &Path) -> Result<ModelConfig, EmbedError> {
    match settings::model_root() {
        Some(root) => {
            let root = lexical(&root);
            let root = std::fs::canonicalize(&root).unwrap_or(root);
            ModelConfig::load_within(dir, &root)
        }
        None => ModelConfig::load(dir),
    }
}

/// `path` with `.` and `..` resolved by name only (no file system access).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Runs `f` as the owner of the registry table (the extension's owner), as a SECURITY DEFINER
/// function would; the caller's identity is restored afterwards, also on error. The statements
/// run under the caller's search_path, so every name and operator in them is schema-qualified.
fn as_table_owner<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the values read by GetUserIdAndSecContext below.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
        }
    }
    let owner = table_oid().map(relation_owner).unwrap_or_else(|| {
        raise(
            ERRCODE_UNDEFINED_TABLE,
            "xmodal.model_registry is missing".into(),
            None,
        )
    });
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: the same calls a SECURITY DEFINER function makes around its body.
    let _restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let restricted =
            (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
        pg_sys::SetUserIdAndSecContext(owner, context | restricted);
        Restore(user, context)
    };
    f()
}

/// The owner of relation `oid`, from the relcache (no SQL, so nothing the caller's search_path
/// could redirect).
fn relation_owner(oid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: the relation exists (table_oid found it in this transaction); it is opened with
    // AccessShareLock and closed again, as any reader would.
    unsafe {
        let rel = pg_sys::relation_open(oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        owner
    }
}

fn current_user_name() -> String {
    Spi::get_one::<String>("SELECT current_user::text")
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Inserts (or with `replace`, replaces) a registration and returns its new id.
pub fn store(name: &str, dir: &Path, dims: usize, modalities: &[Modality], replace: bool) -> i64 {
    let by = current_user_name();
    let conflict = if replace {
        "DO UPDATE SET path = EXCLUDED.path, dims = EXCLUDED.dims, \
         modalities = EXCLUDED.modalities, id = EXCLUDED.id, \
         registered_at = EXCLUDED.registered_at, registered_by = EXCLUDED.registered_by"
    } else {
        "DO NOTHING"
    };
    let query = format!(
        "INSERT INTO xmodal.model_registry (name, path, dims, modalities, registered_by) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) {conflict} RETURNING id"
    );
    let names: Vec<String> = modalities.iter().map(|m| m.name().to_string()).collect();
    let path = dir.to_string_lossy().into_owned();
    let args = [
        name.into(),
        path.into(),
        (dims as i32).into(),
        names.into(),
        by.into(),
    ];
    let id = as_table_owner(|| first_value::<i64>(&query, &args));
    match id {
        Some(id) => id,
        None => raise(
            ERRCODE_DUPLICATE_OBJECT,
            format!("model \"{name}\" is already registered"),
            Some("Drop it first, or pass replace => true."),
        ),
    }
}

/// The first column of the first row a statement returns, None when it returns no row. The
/// statement runs to completion (a row limit would stop it before its statement triggers).
fn first_value<T: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> Option<T> {
    let value = Spi::connect_mut(|client| {
        let rows = client.update(query, None, args)?;
        if rows.is_empty() {
            return Ok(None);
        }
        rows.first().get_one::<T>()
    });
    value
        .unwrap_or_else(|e: pgrx::spi::SpiError| raise(ERRCODE_INTERNAL_ERROR, e.to_string(), None))
}

/// Deletes a registration; false when there was none.
pub fn remove(name: &str) -> bool {
    as_table_owner(|| {
        first_value::<String>(
            "DELETE FROM xmodal.model_registry WHERE name OPERATOR(pg_catalog.=) $1 RETURNING name",
            &[name.into()],
        )
    })
    .is_some()
}

#[pg_schema]
mod xmodal {
    use pgrx::prelude::*;

    /// Statement trigger on xmodal.model_registry: tells every backend to read it again.
    #[pg_trigger]
    fn model_registry_changed<'a>(
        trigger: &'a PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
        // SAFETY: queues a relcache invalidation of the trigger's own table.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(trigger.relid()?) };
        Ok(None)
    }
}
