//! A user's verdict per top-level command of Redis's table, worked out
//! once from its rules, so the common check is one table read: the
//! command passes whatever its arguments (`Allow`), or passes if its one
//! key (at a fixed index) matches a pattern granting the permission it
//! needs (`Key`). Everything else (a container with subcommands, a
//! refused command, several keys, channels, scripts) is `Slow`: the full
//! check (`check::User::check_command`) decides.
//!
//! Invariant: `Allow` and `Key` entries answer exactly what the full check
//! answers for every request of that command; `Slow` is always correct.
//! The table is rebuilt after every rule (`rules::User::apply`), the only
//! way a user's permissions change.

use super::check::{channels, runs_scripts};
use super::ids;
use super::rules::User;
use crate::protocol::command::{acl, COMMANDS};

/// One top-level command's verdict for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fast {
    /// The full check decides.
    Slow,
    /// Allowed, whatever the arguments.
    Allow,
    /// Allowed if argument `pos` (past the arguments: keyless, allowed)
    /// matches a key pattern granting `need`.
    Key { pos: u8, need: u8 },
}

/// `Fast` per row of `COMMANDS` (missing rows: `Slow`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct FastTable(Box<[Fast]>);

impl FastTable {
    pub(super) fn build(u: &User) -> FastTable {
        FastTable(COMMANDS.iter().enumerate().map(|(i, cmd)| verdict(u, i, cmd)).collect())
    }

    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> Fast {
        self.0.get(i).copied().unwrap_or(Fast::Slow)
    }
}

/// What `User::check_command` answers for every request of top-level row
/// `i`, when that does not depend on the request beyond one key.
fn verdict(u: &User, i: usize, cmd: &'static crate::protocol::command::Command) -> Fast {
    if !cmd.subcommands.is_empty() {
        return Fast::Slow;
    }
    let id = ids::top_id(i);
    if !u.commands.has(id) || (runs_scripts(cmd) && !u.allkeys && !u.scripting) {
        return Fast::Slow;
    }
    if !u.allchannels && cmd.acl & acl::PUBSUB != 0 && channels(cmd).is_some() {
        return Fast::Slow;
    }
    if u.allkeys || cmd.keys.is_empty() {
        return Fast::Allow;
    }
    match ids::key_plan(id) {
        Some((_, None)) => Fast::Allow,
        Some((pos, Some(need))) => u8::try_from(pos).map_or(Fast::Slow, |pos| Fast::Key { pos, need }),
        None => Fast::Slow,
    }
}
