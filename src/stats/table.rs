//! `counter_table!`: declares a family of counters once and generates every
//! place the family appears, so adding a counter is one row here plus the
//! line in the session that counts it.
//!
//! From one row list the macro generates:
//! - the session's plain `u64` counter struct (`session`, for `counters`
//!   rows) and gauge struct (`gauges`, for `gauges` rows); `none` skips one;
//! - the per-core mirror of [`Counter`](super::Counter)s the worker owns
//!   (one writer, relaxed loads by admin, as everywhere in `stats`), with
//!   `add_delta` (counters: what the session counted since the last export)
//!   and `set_gauges` (gauges: overwritten with the current value; the
//!   gauge struct's `accumulate` merges several sessions' values first);
//! - the admin thread's sum over workers (plain `u64`s, wrapping);
//! - a `&[Row]` table, in row order, naming each field's Prometheus family
//!   (`puerta_` is prefixed by the renderer), `# TYPE`, `# HELP` and
//!   JSON field (nutcracker's stats port, or `/stats`).
//!
//! Invariants: row order is output order (`/metrics` families; JSON fields
//! are looked up by name); counters come before gauges; every field is
//! read through the generated code, so a row cannot be declared and
//! forgotten by one output.

/// One field of a counter family: where and how it is published.
#[derive(Clone, Copy)]
pub struct Row<T> {
    /// Prometheus family without the `puerta_` prefix.
    pub prom: &'static str,
    /// `# TYPE`: `"counter"` or `"gauge"`.
    pub kind: &'static str,
    pub help: &'static str,
    /// The field it fills in the family's JSON document, if any:
    /// nutcracker's stats port for twemproxy families, `/stats` for mongos.
    pub json: Option<&'static str>,
    /// Reads the field from the admin sum.
    pub get: fn(&T) -> u64,
}

impl<T> std::fmt::Debug for Row<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row").field("prom", &self.prom).field("kind", &self.kind).field("json", &self.json).finish()
    }
}

/// Looks up the row that fills JSON field `field`.
pub fn json_row<'a, T>(rows: &'a [Row<T>], field: &str) -> Option<&'a Row<T>> {
    rows.iter().find(|r| r.json == Some(field))
}

/// See the module docs. Syntax:
///
/// ```text
/// counter_table! {
///     mirror MirrorStruct; sum SumStruct; rows ROWS_CONST;
///     session SessionStruct | none; gauges GaugeStruct | none;
///     counters { /// doc
///                field: "prom_total", "Help.", json Some("field"); ... }
///     gauges { field: "prom", "Help.", json None; ... }
///     extra { /// doc (mirror-only fields the tables do not publish)
///             field: Type; ... }
/// }
/// ```
macro_rules! counter_table {
    (
        $(#[$mm:meta])* mirror $mirror:ident;
        $(#[$um:meta])* sum $sum:ident;
        rows $rows:ident;
        session $session:ident;
        gauges $gauges:ident;
        counters { $( $(#[$cm:meta])* $c:ident: $cprom:literal, $chelp:literal, json $cjson:expr; )* }
        gauges { $( $(#[$gm:meta])* $g:ident: $gprom:literal, $ghelp:literal, json $gjson:expr; )* }
        extra { $( $(#[$em:meta])* $e:ident: $ety:ty; )* }
    ) => {
        $(#[$mm])*
        #[derive(Debug, Default)]
        pub struct $mirror {
            $( $(#[$cm])* pub $c: $crate::stats::Counter, )*
            $( $(#[$gm])* pub $g: $crate::stats::Counter, )*
            $( $(#[$em])* pub $e: $ety, )*
        }

        $(#[$um])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $sum {
            $( pub $c: u64, )*
            $( pub $g: u64, )*
        }

        impl $sum {
            /// Sums the published fields of `blocks` (one per worker).
            pub fn total<'a>(blocks: impl Iterator<Item = &'a $mirror>) -> Self {
                let mut t = $sum::default();
                for b in blocks {
                    $( t.$c = t.$c.wrapping_add(b.$c.get()); )*
                    $( t.$g = t.$g.wrapping_add(b.$g.get()); )*
                }
                t
            }
        }

        /// Every published field of the family, in output order.
        pub const $rows: &[$crate::stats::table::Row<$sum>] = &[
            $( $crate::stats::table::Row {
                prom: $cprom, kind: "counter", help: $chelp, json: $cjson, get: |t: &$sum| t.$c,
            }, )*
            $( $crate::stats::table::Row {
                prom: $gprom, kind: "gauge", help: $ghelp, json: $gjson, get: |t: &$sum| t.$g,
            }, )*
        ];

        counter_table!(@session $mirror, $session; $( $(#[$cm])* $c )*);
        counter_table!(@gauges $mirror, $gauges; $( $(#[$gm])* $g )*);
    };
    (@session $mirror:ident, none; $($t:tt)*) => {};
    (@session $mirror:ident, $session:ident; $( $(#[$m:meta])* $f:ident )*) => {
        /// The session's own counts (plain integers, one owner); the
        /// worker publishes them with the mirror's `add_delta`.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $session {
            $( $(#[$m])* pub $f: u64, )*
        }

        impl $mirror {
            /// Adds what the session counted between `was` and `now`.
            /// Only the owning worker may call this.
            #[inline]
            pub fn add_delta(&self, now: &$session, was: &$session) {
                $( self.$f.add(now.$f.wrapping_sub(was.$f)); )*
            }
        }
    };
    (@gauges $mirror:ident, none; $($t:tt)*) => {};
    (@gauges $mirror:ident, $gauges:ident; $( $(#[$m:meta])* $f:ident )*) => {
        /// The session's current values of the family's gauges.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $gauges {
            $( $(#[$m])* pub $f: u64, )*
        }

        impl $gauges {
            /// Adds `o`'s values (several sessions' gauges for one server).
            #[inline]
            pub fn accumulate(&mut self, o: &$gauges) {
                $( self.$f = self.$f.wrapping_add(o.$f); )*
            }
        }

        impl $mirror {
            /// Overwrites the gauges. Only the owning worker may call this.
            #[inline]
            pub fn set_gauges(&self, g: &$gauges) {
                $( self.$f.set(g.$f); )*
            }
        }
    };
}

pub(crate) use counter_table;
