//! Dense ids for every command and subcommand of Redis's table
//! (`protocol::command::COMMANDS`), so a user's permissions are one bitset
//! and a check is one bit test.
//!
//! Numbering: each top-level command in table order, each followed by its
//! subcommands in theirs. The numbering is computed once (a `OnceLock`)
//! from the table, so a regenerated table renumbers consistently.
//! Invariant: every id is below `MAX_IDS` (a unit test checks the table).

use std::sync::OnceLock;

use crate::protocol::command::{lookup, single_key, Command, COMMANDS};
use crate::protocol::resp::Request;

/// Bits in a permission set; the table has about 380 rows.
pub const MAX_IDS: usize = 512;
const WORDS: usize = MAX_IDS / 64;

/// A set of command ids.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CmdBits([u64; WORDS]);

impl CmdBits {
    pub fn all() -> CmdBits {
        CmdBits([u64::MAX; WORDS])
    }

    pub fn set(&mut self, id: u16, on: bool) {
        let (w, b) = (usize::from(id) / 64, u32::from(id) % 64);
        if let Some(word) = self.0.get_mut(w) {
            if on {
                *word |= 1 << b;
            } else {
                *word &= !(1 << b);
            }
        }
    }

    #[inline]
    pub fn has(&self, id: u16) -> bool {
        let (w, b) = (usize::from(id) / 64, u32::from(id) % 64);
        self.0.get(w).is_some_and(|word| word & (1 << b) != 0)
    }
}

impl std::fmt::Debug for CmdBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "CmdBits({n} commands)")
    }
}

/// The id of the first row of each top-level command (its subcommands
/// follow it).
fn offsets() -> &'static [u16] {
    static OFFSETS: OnceLock<Vec<u16>> = OnceLock::new();
    OFFSETS.get_or_init(|| {
        let mut next = 0usize;
        COMMANDS
            .iter()
            .map(|c| {
                let id = next;
                next = next.saturating_add(1).saturating_add(c.subcommands.len());
                u16::try_from(id).unwrap_or(u16::MAX)
            })
            .collect()
    })
}

/// The id of top-level row `i`, and of its subcommand `j`.
fn id_of(i: usize, sub: Option<usize>) -> u16 {
    let base = offsets().get(i).copied().unwrap_or(u16::MAX);
    match sub {
        None => base,
        Some(j) => base.saturating_add(1).saturating_add(u16::try_from(j).unwrap_or(u16::MAX)),
    }
}

/// The id of top-level row `i` (`COMMANDS[i]` itself).
pub(super) fn top_id(i: usize) -> u16 {
    id_of(i, None)
}

/// One key at this argument index, needing these permissions (`None`: a
/// `NOT_KEY` spec, not checked).
pub type KeyPlan = (usize, Option<u8>);

/// The single-key fast path of the ACL check, by id: `Some((index,
/// need))` for a command whose one key spec is one key at a fixed index
/// (`command::single_key`), `need` being `check::key_need` of its flags;
/// `None` for every other command (the general key-spec walk). Worked out
/// once for the table, so a check does not re-read the key specs.
#[inline(always)]
pub fn key_plan(id: u16) -> Option<KeyPlan> {
    static PLANS: OnceLock<Vec<Option<KeyPlan>>> = OnceLock::new();
    let plans = PLANS.get_or_init(|| {
        all()
            .map(|(_, c)| {
                let flags = c.keys.first().map_or(0, |k| k.flags);
                single_key(c).filter(|&p| p > 0).map(|p| (p, super::check::key_need(flags)))
            })
            .collect()
    });
    plans.get(usize::from(id)).copied().flatten()
}

/// Every (id, command) pair: each top-level command, then its subcommands.
pub fn all() -> impl Iterator<Item = (u16, &'static Command)> {
    COMMANDS.iter().enumerate().flat_map(|(i, c)| {
        std::iter::once((id_of(i, None), c))
            .chain(c.subcommands.iter().enumerate().map(move |(j, s)| (id_of(i, Some(j)), s)))
    })
}

/// The command `name` and its id (with its subcommands' ids), or the
/// subcommand `name|sub`. `None`: no such command.
pub fn by_name(name: &str) -> Option<(u16, &'static Command)> {
    let (top, sub) = match name.split_once('|') {
        Some((t, s)) => (t, Some(s)),
        None => (name, None),
    };
    let (i, cmd) = lookup(top.as_bytes())?;
    match sub {
        None => Some((id_of(i, None), cmd)),
        Some(s) => {
            let j = cmd.subcommands.iter().position(|c| c.name.eq_ignore_ascii_case(s))?;
            Some((id_of(i, Some(j)), cmd.subcommands.get(j)?))
        }
    }
}

/// The command a request runs and its id, as `command::resolve` finds it
/// (a container with an unknown subcommand is the container).
#[inline]
pub fn resolve(req: &Request) -> Option<(u16, &'static Command)> {
    let (i, cmd) = lookup(req.name())?;
    Some(resolve_top(i, cmd, req))
}

/// `resolve` for a request whose top-level command the caller already
/// looked up (`command::lookup`: row `i`, `cmd`): no second name lookup.
#[inline(always)]
pub fn resolve_top(i: usize, cmd: &'static Command, req: &Request) -> (u16, &'static Command) {
    if cmd.subcommands.is_empty() || req.argc() < 2 {
        return (id_of(i, None), cmd);
    }
    let sub = req.arg(1);
    match cmd.subcommands.iter().position(|c| c.name.as_bytes().eq_ignore_ascii_case(sub)) {
        Some(j) => match cmd.subcommands.get(j) {
            Some(s) => (id_of(i, Some(j)), s),
            None => (id_of(i, None), cmd),
        },
        None => (id_of(i, None), cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_unique_and_bounded() {
        let ids: Vec<u16> = all().map(|(id, _)| id).collect();
        assert!(ids.len() > 300 && ids.len() <= MAX_IDS, "{} rows", ids.len());
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(usize::from(*id), n);
        }
        let (get, c) = by_name("get").unwrap();
        assert_eq!(c.fullname, "get");
        let (cg, c) = by_name("CONFIG|get").unwrap();
        assert_eq!(c.fullname, "config|get");
        let r = Request::from_args([&b"config"[..], b"GET", b"x"].into_iter());
        assert_eq!(resolve(&r).map(|(i, _)| i), Some(cg));
        let r = Request::from_args([&b"GET"[..], b"k"].into_iter());
        assert_eq!(resolve(&r).map(|(i, _)| i), Some(get));
        assert!(by_name("nosuch").is_none() && by_name("config|nosuch").is_none());
    }

    #[test]
    fn bits() {
        let mut b = CmdBits::default();
        b.set(5, true);
        b.set(511, true);
        assert!(b.has(5) && b.has(511) && !b.has(6));
        b.set(5, false);
        assert!(!b.has(5));
        b.set(9999, true);
        assert!(!b.has(9999));
    }
}
