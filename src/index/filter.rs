//! Filter columns: `CREATE INDEX ... USING xhnsw (emb, category, tenant_id)` stores the values
//! of the columns after the vector in each element, as an index tuple whose vector column is
//! NULL. A scan turns the WHERE clauses the planner hands to the index (scan keys, `IN (...)`
//! lists included) into a predicate that the graph search checks for each element it reaches,
//! before any heap access.
//!
//! Tags: each element also gets a 64-bit Bloom signature of its filter values (two bits per
//! value, seeded by the column), stored in the element and next to every link to it. From the
//! scan keys that test equality or overlap (`=`, `= ANY`, `&&`, `@>`, array `=`) a scan derives
//! the bits a matching element must have, and so rules out most non-matching neighbours
//! without reading them: the bridged search of resumable.rs is built on that. Values are
//! hashed by their bytes, so only types whose equality is byte equality are tagged: integers,
//! dates, timestamps, and text under a deterministic collation.

use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

/// The extra columns of one row as index-tuple bytes; empty for a single-column index.
///
/// # Safety
/// `values`/`isnull` must hold one entry per index column.
pub unsafe fn extras_of(index: pg_sys::Relation, values: *const pg_sys::Datum, isnull: *const bool) -> Vec<u8> {
    unsafe {
        let desc = (*index).rd_att;
        let natts = (*desc).natts as usize;
        if natts <= 1 {
            return Vec::new();
        }
        let mut vals: Vec<pg_sys::Datum> = std::slice::from_raw_parts(values, natts).to_vec();
        let mut nulls: Vec<bool> = std::slice::from_raw_parts(isnull, natts).to_vec();
        vals[0] = pg_sys::Datum::from(0usize); // the vector is stored once, in the element
        nulls[0] = true;
        let tuple = pg_sys::index_form_tuple(desc, vals.as_mut_ptr(), nulls.as_mut_ptr());
        let size = ((*tuple).t_info as u32 & pg_sys::INDEX_SIZE_MASK) as usize;
        let bytes = std::slice::from_raw_parts(tuple as *const u8, size).to_vec();
        pg_sys::pfree(tuple as *mut std::ffi::c_void);
        bytes
    }
}

/// Does this index have filter columns (and so a tagged layout)?
pub fn has_filter_columns(index: pg_sys::Relation) -> bool {
    unsafe { (*(*index).rd_att).natts > 1 }
}

/// How one filter column's values are hashed into tags.
#[derive(Clone, Copy)]
struct TagColumn {
    array: bool,
    elem: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: std::ffi::c_char,
}

/// The tag rules of an index's filter columns (None: a column that is not tagged).
pub struct TagColumns {
    columns: Vec<Option<TagColumn>>,
}

impl TagColumns {
    pub fn of(index: pg_sys::Relation) -> TagColumns {
        unsafe {
            let desc = (*index).rd_att;
            let natts = (*desc).natts as usize;
            let mut columns = vec![None];
            for i in 1..natts {
                let typid = (*(*desc).attrs.as_ptr().add(i)).atttypid;
                let collation = *(*index).rd_indcollation.add(i);
                columns.push(tag_column(typid, collation));
            }
            TagColumns { columns }
        }
    }

    /// The tag of a row: every value of every tagged, non-NULL filter column.
    ///
    /// # Safety
    /// `values`/`isnull` must hold one entry per index column.
    pub unsafe fn tag(&self, values: *const pg_sys::Datum, isnull: *const bool) -> u64 {
        let mut tag = 0;
        for (i, column) in self.columns.iter().enumerate() {
            let Some(column) = column else { continue };
            if unsafe { *isnull.add(i) } {
                continue;
            }
            for value in unsafe { column.values(*values.add(i)) } {
                tag |= unsafe { value_bits(i, column.elem, value) };
            }
        }
        tag
    }
}

fn tag_column(typid: pg_sys::Oid, collation: pg_sys::Oid) -> Option<TagColumn> {
    unsafe {
        let element = pg_sys::get_element_type(typid);
        let (array, elem) = if element != pg_sys::InvalidOid { (true, element) } else { (false, typid) };
        let by_bytes = [pg_sys::TEXTOID, pg_sys::VARCHAROID].contains(&elem);
        let by_value = [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID, pg_sys::DATEOID, pg_sys::TIMESTAMPTZOID].contains(&elem);
        if !(by_value || by_bytes && collation != pg_sys::InvalidOid && pg_sys::get_collation_isdeterministic(collation)) {
            return None;
        }
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
        Some(TagColumn { array, elem, len, byval, align })
    }
}

impl TagColumn {
    /// The values a datum of this column holds: itself, or an array's non-NULL elements.
    unsafe fn values(&self, datum: pg_sys::Datum) -> Vec<pg_sys::Datum> {
        if !self.array {
            return vec![datum];
        }
        unsafe {
            let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
            let (mut elems, mut nulls, mut n) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
            pg_sys::deconstruct_array(array, self.elem, self.len as i32, self.byval, self.align, &mut elems, &mut nulls, &mut n);
            (0..n as usize).filter(|&i| !*nulls.add(i)).map(|i| *elems.add(i)).collect()
        }
    }
}

/// The two tag bits of one value of column `column`. Stored on disk: never change it without
/// changing the page format version.
unsafe fn value_bits(column: usize, elem: pg_sys::Oid, value: pg_sys::Datum) -> u64 {
    let mut hash = Fnv::new(column as u64);
    if elem == pg_sys::INT2OID {
        hash.add(&(value.value() as i16 as i64).to_le_bytes());
    } else if elem == pg_sys::INT4OID || elem == pg_sys::DATEOID {
        hash.add(&(value.value() as i32 as i64).to_le_bytes());
    } else if elem == pg_sys::INT8OID || elem == pg_sys::TIMESTAMPTZOID {
        hash.add(&(value.value() as i64).to_le_bytes());
    } else {
        unsafe {
            let text = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(text);
            hash.add(std::slice::from_raw_parts(pgrx::varlena::vardata_any(text) as *const u8, len));
        }
    }
    let h = hash.finish();
    (1u64 << (h & 63)) | (1u64 << ((h >> 6) & 63))
}

/// FNV-1a with a final avalanche (SplitMix64's), seeded by the column number.
struct Fnv(u64);

impl Fnv {
    fn new(seed: u64) -> Fnv {
        let mut fnv = Fnv(0xcbf2_9ce4_8422_2325);
        fnv.add(&seed.to_le_bytes());
        fnv
    }

    fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The tag of one row (see [`TagColumns::tag`]).
///
/// # Safety
/// `values`/`isnull` must hold one entry per index column.
pub unsafe fn tag_of(index: pg_sys::Relation, values: *const pg_sys::Datum, isnull: *const bool) -> u64 {
    if !has_filter_columns(index) {
        return 0;
    }
    unsafe { TagColumns::of(index).tag(values, isnull) }
}

struct Key {
    column: usize,
    strategy: u16,
    func: *mut pg_sys::FmgrInfo,
    collation: pg_sys::Oid,
    /// The right-hand side; several for `col = ANY (array)`, none for a NULL (matches nothing).
    arguments: Vec<pg_sys::Datum>,
}

pub struct KeyFilter {
    desc: pg_sys::TupleDesc,
    keys: Vec<Key>,
    /// Per key that tags can check: the alternative bit sets, one of which a matching
    /// element's tag must contain.
    tag_test: Vec<Vec<u64>>,
    values: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
    /// Reset after each element. Owned by the scan's memory context, which deletes it: never
    /// delete it here (Postgres deletes child contexts before the callback that drops us).
    scratch: pg_sys::MemoryContext,
}

/// A memory context that lives, and dies, with the current one.
pub fn child_context(name: &'static std::ffi::CStr) -> pg_sys::MemoryContext {
    unsafe {
        pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            name.as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        )
    }
}

impl KeyFilter {
    /// The scan's keys as a filter; None when there are none.
    ///
    /// # Safety
    /// `scan` must be a live index scan whose keyData was set by amrescan.
    pub unsafe fn from_scan(scan: pg_sys::IndexScanDesc, scratch: pg_sys::MemoryContext) -> Option<KeyFilter> {
        unsafe {
            let count = (*scan).numberOfKeys as usize;
            if count == 0 {
                return None;
            }
            let desc = (*(*scan).indexRelation).rd_att;
            let natts = (*desc).natts as usize;
            let keys: Vec<Key> = (0..count).map(|i| key_of(&mut *(*scan).keyData.add(i))).collect();
            let columns = TagColumns::of((*scan).indexRelation);
            let tag_test = keys.iter().filter_map(|key| tag_alternatives(&columns, key)).collect();
            Some(KeyFilter {
                desc,
                keys,
                tag_test,
                values: vec![pg_sys::Datum::from(0usize); natts],
                nulls: vec![true; natts],
                scratch,
            })
        }
    }

    /// Can tags rule elements out for these keys?
    pub fn uses_tags(&self) -> bool {
        !self.tag_test.is_empty()
    }

    /// False when an element with this tag certainly fails the keys.
    pub fn may_pass(&self, tag: u64) -> bool {
        self.tag_test.iter().all(|alternatives| alternatives.iter().any(|&bits| tag & bits == bits))
    }

    /// Does an element with these extras satisfy every key?
    pub fn matches(&mut self, extras: &[u8]) -> bool {
        if extras.is_empty() {
            return false;
        }
        let Self { desc, keys, values, nulls, scratch, .. } = self;
        // Operators may detoast or allocate: do it in a context reset after each element.
        // SAFETY: the closure allocates only in `scratch`, which is reset right after.
        let result = unsafe { PgMemoryContexts::For(*scratch).switch_to(|_| {
            // SAFETY: extras is a MAXALIGNed index tuple formed by extras_of for this index.
            pg_sys::index_deform_tuple(extras.as_ptr() as pg_sys::IndexTuple, *desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            keys.iter().all(|key| {
                !nulls[key.column]
                    && key.arguments.iter().any(|arg| {
                        pg_sys::FunctionCall2Coll(key.func, key.collation, values[key.column], *arg).value() != 0
                    })
            })
        }) };
        unsafe { pg_sys::MemoryContextReset(*scratch) };
        result
    }
}

unsafe fn key_of(key: &mut pg_sys::ScanKeyData) -> Key {
    let column = (key.sk_attno as usize).saturating_sub(1);
    let mut arguments = Vec::new();
    if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
        // col = NULL is never true
    } else if key.sk_flags & pg_sys::SK_SEARCHARRAY as i32 != 0 {
        arguments = unsafe { array_elements(key.sk_argument) };
    } else {
        arguments.push(key.sk_argument);
    }
    Key { column, strategy: key.sk_strategy, func: &mut key.sk_func, collation: key.sk_collation, arguments }
}

/// Strategy numbers of sql/xhnsw.sql's filter operator classes that tags can check.
const SCALAR_EQUAL: u16 = 3;
const ARRAY_OVERLAP: u16 = 1;
const ARRAY_CONTAINS: u16 = 2;
const ARRAY_EQUAL: u16 = 4;

/// The bit sets of which a matching element's tag must contain one, for a key that tags can
/// check; None for the others (ranges, `<@`, untagged columns).
fn tag_alternatives(columns: &TagColumns, key: &Key) -> Option<Vec<u64>> {
    let column = columns.columns.get(key.column).copied().flatten()?;
    let bits = |value| unsafe { value_bits(key.column, column.elem, value) };
    if !column.array {
        return (key.strategy == SCALAR_EQUAL).then(|| key.arguments.iter().map(|&a| bits(a)).collect());
    }
    let [array] = key.arguments[..] else {
        return (key.arguments.is_empty()).then(Vec::new); // NULL: nothing matches
    };
    let elements = unsafe { column.values(array) };
    match key.strategy {
        ARRAY_OVERLAP => Some(elements.into_iter().map(bits).collect()),
        ARRAY_CONTAINS | ARRAY_EQUAL => Some(vec![elements.into_iter().map(bits).fold(0, |a, b| a | b)]),
        _ => None,
    }
}

/// Non-NULL elements of an array datum (the right side of `col = ANY (...)`).
unsafe fn array_elements(datum: pg_sys::Datum) -> Vec<pg_sys::Datum> {
    unsafe {
        let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
        let elem_type = (*array).elemtype;
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem_type, &mut len, &mut byval, &mut align);
        let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
        let mut nulls: *mut bool = std::ptr::null_mut();
        let mut n = 0;
        pg_sys::deconstruct_array(array, elem_type, len as i32, byval, align, &mut elems, &mut nulls, &mut n);
        (0..n as usize).filter(|&i| !*nulls.add(i)).map(|i| *elems.add(i)).collect()
    }
}
