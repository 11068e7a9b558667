//! Case-insensitive lookup of command names in a static table, shared by
//! the twemproxy command table and the cluster command table.
//!
//! An open-addressing table of row indices + 1 (0 = empty), keyed by a
//! case-folded FNV-1a hash and built once per table. Lookups hash the name
//! as sent and compare ignoring ASCII case, so nothing is copied or
//! uppercased on the request path. Invariant: a table holds fewer than
//! `SIZE` rows (each row's builder asserts it in a unit test).

/// Buckets; at most half full for the tables in use.
const SIZE: usize = 1024;

pub struct NameIndex {
    slots: Box<[u16; SIZE]>,
}

/// FNV-1a over the bytes with bit 5 cleared: equal for names that differ
/// only in ASCII case (and for a few non-letter pairs, which only costs a
/// probe), and cheaper than a full case fold on the request path.
fn fold_hash(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h = (h ^ u32::from(b & 0xdf)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

impl NameIndex {
    /// Indexes `names` (row `i` is the `i`-th name). Rows past `SIZE - 1`
    /// are left out rather than looping forever.
    pub fn build<'a>(names: impl Iterator<Item = &'a str>) -> NameIndex {
        let mut slots = Box::new([0u16; SIZE]);
        // Built once from the static command tables, never from input:
        // `SIZE` is a u16-sized power of two, so no step below overflows.
        #[allow(clippy::arithmetic_side_effects)]
        for (i, name) in names.enumerate().take(SIZE - 1) {
            let mut at = fold_hash(name.as_bytes()) % SIZE;
            while slots[at] != 0 {
                at = (at + 1) % SIZE;
            }
            slots[at] = i as u16 + 1;
        }
        NameIndex { slots }
    }

    /// The row whose name equals `name` ignoring ASCII case; `name_at`
    /// gives a row's name (`None` past the end).
    pub fn find(&self, name: &[u8], name_at: impl Fn(usize) -> Option<&'static str>) -> Option<usize> {
        let mut at = fold_hash(name) % SIZE;
        loop {
            let row = usize::from(self.slots[at].checked_sub(1)?);
            // Clients mostly send names as the table spells them: an exact
            // compare first, the case-folding one only when that fails.
            let row_name = name_at(row)?.as_bytes();
            if row_name == name || row_name.eq_ignore_ascii_case(name) {
                return Some(row);
            }
            at = at.wrapping_add(1) % SIZE;
        }
    }
}
