//! Tags: a 64-bit signature of one row's filter values, kept in the filter directory
//! (directory.rs) so that a selective filtered scan finds the elements that may match without
//! reading them.
//!
//! The 64 bits are split evenly between the tagged filter columns. A scalar column's share
//! holds a fingerprint (hash bits) of its value, so `col = v` rules out all but about 2^-width of
//! the other values; an array column's share is a Bloom filter of its elements (two bits
//! each), for `&&`, `@>` and `=`. Values are hashed by their bytes, so only types whose
//! equality is byte equality are tagged: integers, dates, timestamps, and text under a
//! deterministic collation. Range clauses (`<`, `>=` ...) and `<@` give no tag test: every
//! tag passes them, and the scan checks them on the elements it reads (filter.rs).

use pgrx::pg_sys;

/// How one filter column's values are hashed, and where in the tag they go.
#[derive(Clone, Copy)]
struct TagColumn {
    array: bool,
    elem: pg_sys::Oid,
    len: i16,
    byval: bool,
    align: std::ffi::c_char,
    shift: u32,
    width: u32,
}

impl TagColumn {
    fn mask(&self) -> u64 {
        (if self.width == 64 {
            u64::MAX
        } else {
            (1u64 << self.width) - 1
        }) << self.shift
    }

    /// The column's share of the tag for one value.
    fn bits(&self, index_column: usize, value: pg_sys::Datum) -> u64 {
        self.share(unsafe { value_hash(index_column, self.elem, value) })
    }

    /// A value's hash as the column's share of the tag: a fingerprint, or two Bloom bits.
    fn share(&self, h: u64) -> u64 {
        if self.array {
            let w = self.width as u64;
            ((1u64 << (h % w)) | (1u64 << ((h >> 32) % w))) << self.shift
        } else {
            (h << self.shift) & self.mask()
        }
    }

    /// The values a datum of this column holds: itself, or an array's non-NULL elements.
    unsafe fn values(&self, datum: pg_sys::Datum) -> Vec<pg_sys::Datum> {
        if !self.array {
            return vec![datum];
        }
        unsafe {
            let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
            let (mut elems, mut nulls, mut n) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
            pg_sys::deconstruct_array(
                array,
                self.elem,
                self.len as i32,
                self.byval,
                self.align,
                &mut elems,
                &mut nulls,
                &mut n,
            );
            (0..n as usize)
                .filter(|&i| !*nulls.add(i))
                .map(|i| *elems.add(i))
                .collect()
        }
    }
}

/// The tag rules of an index's filter columns (None: the vector, or a column that is not tagged).
pub struct TagColumns {
    columns: Vec<Option<TagColumn>>,
}

/// One clause as a tag test: an element may match when, for one of the alternatives,
/// `tag & mask == expected`. No alternatives: nothing matches (`col = NULL`).
pub type TagTest = Vec<(u64, u64)>;

/// Strategy numbers of sql/xhnsw.sql's filter operator classes that tags can check.
pub const SCALAR_EQUAL: u16 = 3;
const ARRAY_OVERLAP: u16 = 1;
const ARRAY_CONTAINS: u16 = 2;
const ARRAY_EQUAL: u16 = 4;

impl TagColumns {
    pub fn of(index: pg_sys::Relation) -> TagColumns {
        unsafe {
            let desc = pgrx::PgTupleDesc::from_pg_unchecked((*index).rd_att);
            let natts = desc.len();
            let mut columns: Vec<Option<TagColumn>> = vec![None];
            for i in 1..natts {
                let typid = desc.get(i).map_or(pg_sys::InvalidOid, |attr| attr.atttypid);
                let collation = *(*index).rd_indcollation.add(i);
                columns.push(tag_column(typid, collation));
            }
            let tagged = columns.iter().flatten().count() as u32;
            let mut shift = 0;
            for column in columns.iter_mut().flatten() {
                column.width = 64 / tagged;
                column.shift = shift;
                shift += column.width;
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
                tag |= column.bits(i, value);
            }
        }
        tag
    }

    /// Can tags check a clause with this strategy on this index column?
    pub fn checks(&self, index_column: usize, strategy: u16) -> bool {
        match self.columns.get(index_column).copied().flatten() {
            Some(column) if column.array => {
                matches!(strategy, ARRAY_OVERLAP | ARRAY_CONTAINS | ARRAY_EQUAL)
            }
            Some(_) => strategy == SCALAR_EQUAL,
            None => false,
        }
    }

    /// The tag test of one scan key (its right-hand sides: several for `= ANY`, none for
    /// NULL); None when tags cannot check it.
    pub fn test(
        &self,
        index_column: usize,
        strategy: u16,
        arguments: &[pg_sys::Datum],
    ) -> Option<TagTest> {
        if !self.checks(index_column, strategy) {
            return None;
        }
        let column = self.columns[index_column].expect("checked above");
        if !column.array {
            let mask = column.mask();
            return Some(
                arguments
                    .iter()
                    .map(|&a| (mask, column.bits(index_column, a)))
                    .collect(),
            );
        }
        let [array] = arguments[..] else {
            return Some(Vec::new());
        };
        let bits: Vec<u64> = unsafe { column.values(array) }
            .into_iter()
            .map(|v| column.bits(index_column, v))
            .collect();
        Some(match strategy {
            ARRAY_OVERLAP => bits.into_iter().map(|b| (b, b)).collect(),
            _ => {
                let all = bits.into_iter().fold(0, |a, b| a | b);
                vec![(all, all)]
            }
        })
    }
}

/// A scan's tag tests, ready to run over every tag of the directory.
#[derive(Clone)]
pub struct TagFilter {
    /// All the tests as one (mask, expected) pair, when each has a single alternative on bits
    /// of its own (the common case: equality on one value per column).
    single: Option<(u64, u64)>,
    tests: Vec<TagTest>,
}

impl TagFilter {
    pub fn new(tests: Vec<TagTest>) -> TagFilter {
        let mut single = Some((0u64, 0u64));
        for test in &tests {
            single = match (single, &test[..]) {
                (Some((mask, expected)), &[(m, e)]) if mask & m == 0 => {
                    Some((mask | m, expected | e))
                }
                _ => None,
            };
        }
        TagFilter { single, tests }
    }

    /// False when an element with this tag certainly fails the filter.
    #[inline]
    pub fn may_match(&self, tag: u64) -> bool {
        match self.single {
            Some((mask, expected)) => tag & mask == expected,
            None => self.tests.iter().all(|alternatives| {
                alternatives
                    .iter()
                    .any(|&(mask, expected)| tag & mask == expected)
            }),
        }
    }
}

fn tag_column(typid: pg_sys::Oid, collation: pg_sys::Oid) -> Option<TagColumn> {
    unsafe {
        let element = pg_sys::get_element_type(typid);
        let (array, elem) = if element != pg_sys::InvalidOid {
            (true, element)
        } else {
            (false, typid)
        };
        let by_bytes = [pg_sys::TEXTOID, pg_sys::VARCHAROID].contains(&elem);
        let by_value = [
            pg_sys::INT2OID,
            pg_sys::INT4OID,
            pg_sys::INT8OID,
            pg_sys::DATEOID,
            pg_sys::TIMESTAMPTZOID,
        ]
        .contains(&elem);
        let deterministic =
            collation != pg_sys::InvalidOid && pg_sys::get_collation_isdeterministic(collation);
        if !(by_value || by_bytes && deterministic) {
            return None;
        }
        let (mut len, mut byval, mut align) = (0i16, false, 0 as std::ffi::c_char);
        pg_sys::get_typlenbyvalalign(elem, &mut len, &mut byval, &mut align);
        Some(TagColumn {
            array,
            elem,
            len,
            byval,
            align,
            shift: 0,
            width: 64,
        })
    }
}

/// The hash of one value of index column `column`. Stored on disk (in tags): never change it
/// without changing the page format version.
unsafe fn value_hash(column: usize, elem: pg_sys::Oid, value: pg_sys::Datum) -> u64 {
    if elem == pg_sys::INT2OID {
        integer_hash(column, value.value() as i16 as i64)
    } else if elem == pg_sys::INT4OID || elem == pg_sys::DATEOID {
        integer_hash(column, value.value() as i32 as i64)
    } else if elem == pg_sys::INT8OID || elem == pg_sys::TIMESTAMPTZOID {
        integer_hash(column, value.value() as i64)
    } else {
        unsafe {
            let text = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(text);
            bytes_hash(
                column,
                std::slice::from_raw_parts(pgrx::varlena::vardata_any(text) as *const u8, len),
            )
        }
    }
}

fn integer_hash(column: usize, value: i64) -> u64 {
    bytes_hash(column, &value.to_le_bytes())
}

fn bytes_hash(column: usize, bytes: &[u8]) -> u64 {
    let mut hash = Fnv::new(column as u64);
    hash.add(bytes);
    hash.finish()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn column(array: bool, shift: u32, width: u32) -> TagColumn {
        TagColumn {
            array,
            elem: pg_sys::INT4OID,
            len: 4,
            byval: true,
            align: b'i' as _,
            shift,
            width,
        }
    }

    #[test]
    fn a_value_fingerprint_stays_in_its_column_share() {
        let (a, b) = (column(false, 0, 21), column(false, 21, 21));
        for v in 0..1000 {
            let (x, y) = (a.share(integer_hash(1, v)), b.share(integer_hash(2, v)));
            assert_eq!(x & !a.mask(), 0);
            assert_eq!(y & !b.mask(), 0);
        }
        // 1,000 values in 21 bits: distinct fingerprints for nearly all of them
        let distinct: std::collections::HashSet<u64> =
            (0..1000).map(|v| a.share(integer_hash(1, v))).collect();
        assert!(distinct.len() >= 998, "{}", distinct.len());
    }

    #[test]
    fn equality_and_overlap_tests_accept_the_right_tags() {
        let (scalar, array) = (column(false, 0, 32), column(true, 32, 32));
        let (s, a) = (
            |v| scalar.share(integer_hash(1, v)),
            |v| array.share(integer_hash(2, v)),
        );
        let tag = s(7) | a(3) | a(5);
        let equal = |v| vec![(scalar.mask(), s(v))];
        let overlap = |vs: &[i64]| {
            vs.iter()
                .map(|&v| a(v))
                .map(|b| (b, b))
                .collect::<TagTest>()
        };
        let may_match = |tests: Vec<TagTest>| TagFilter::new(tests).may_match(tag);
        assert!(may_match(vec![equal(7)]));
        assert!(!may_match(vec![equal(8)]));
        assert!(may_match(vec![equal(7), overlap(&[9, 5])]));
        assert!(!may_match(vec![equal(7), overlap(&[9, 11])]));
        assert!(
            may_match(vec![equal(7), overlap(&[5])]),
            "one alternative each: the single-mask path"
        );
        assert!(!may_match(vec![equal(7), overlap(&[11])]));
        assert!(
            !may_match(vec![equal(7), equal(8)]),
            "two tests on the same bits take the general path"
        );
        assert!(
            !may_match(vec![Vec::new()]),
            "a test with no alternatives (col = NULL) passes nothing"
        );
        assert!(may_match(Vec::new()), "no tests: every tag may match");
    }
}
