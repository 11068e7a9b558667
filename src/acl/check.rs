//! The per-request decision: may this user run this request? Redis's
//! `ACLCheckAllUserCommandPerm` order: the command (or subcommand) bit,
//! then every key the command's key specs name (`NOT_KEY` specs skipped,
//! each key needing read for `ACCESS`, write for `INSERT` / `DELETE` /
//! `UPDATE`), then the channels of PUBLISH, SPUBLISH, SUBSCRIBE,
//! SSUBSCRIBE (glob-matched) and PSUBSCRIBE (patterns compared literally,
//! as Redis does).
//!
//! Puerta's one addition (a proxy cannot see a script's keys): EVAL*,
//! FCALL* and FUNCTION need `allkeys`, or `+@scripting` written in the
//! user's rules.
//!
//! Invariant: the whole request is judged before any part of it is sent;
//! a request whose key positions do not fit its arguments is judged
//! keyless (the server answers its syntax error, as Redis does).

use bytes::Bytes;

use super::fast::Fast;
use super::glob;
use super::ids;
use super::rules::{User, READ, WRITE};
use crate::protocol::command::{acl, for_each_key, key_flag, lookup, Command};
use crate::protocol::resp::Request;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The command (or subcommand), with Redis's name for it.
    Command(&'static str),
    /// A command not in Redis's table, for a user without `+@all`.
    Unknown,
    Key,
    Channel,
}

impl Denied {
    /// The reply, in Redis's words (7.2's texts, which name the user);
    /// `name` is the command as sent (for `Unknown`).
    #[cold]
    pub fn reply(self, user: &str, name: &[u8]) -> Bytes {
        let cmd_text = |cmd: &str| format!("-NOPERM User {user} has no permissions to run the '{cmd}' command\r\n");
        match self {
            Denied::Command(cmd) => Bytes::from(cmd_text(cmd)),
            Denied::Unknown => {
                // A client's bytes in an error line: no CR / LF may pass.
                let n: String = String::from_utf8_lossy(name).to_lowercase().replace(['\r', '\n'], " ");
                Bytes::from(cmd_text(&n))
            }
            Denied::Key => Bytes::from_static(b"-NOPERM No permissions to access a key\r\n"),
            Denied::Channel => Bytes::from_static(b"-NOPERM No permissions to access a channel\r\n"),
        }
    }
}

/// The permissions a key spec's flags need: read for `ACCESS`, write for
/// `INSERT` / `DELETE` / `UPDATE` (none of them: still some pattern must
/// match, as in Redis); `None` for a `NOT_KEY` spec, which is not checked.
pub(super) fn key_need(flags: u32) -> Option<u8> {
    if flags & key_flag::NOT_KEY != 0 {
        return None;
    }
    let mut need = 0;
    if flags & key_flag::ACCESS != 0 {
        need |= READ;
    }
    if flags & (key_flag::INSERT | key_flag::DELETE | key_flag::UPDATE) != 0 {
        need |= WRITE;
    }
    Some(need)
}

/// Script commands: their keys are whatever the script touches.
pub(super) fn runs_scripts(cmd: &Command) -> bool {
    cmd.acl & acl::SCRIPTING != 0
        && (cmd.fullname.starts_with("eval")
            || cmd.fullname.starts_with("fcall")
            || cmd.fullname.starts_with("function"))
}

/// Where a pub/sub command's channels are: (first argument, all the rest
/// too, patterns compared literally).
pub(super) fn channels(cmd: &Command) -> Option<(bool, bool)> {
    match cmd.fullname {
        "publish" | "spublish" => Some((false, false)),
        "subscribe" | "ssubscribe" => Some((true, false)),
        "psubscribe" => Some((true, true)),
        _ => None,
    }
}

impl User {
    /// Judges `req`. A command Redis's table does not know (a module's)
    /// passes only for a user with `+@all` (Redis's `allcommands` flag);
    /// the pool's own policy then decides.
    #[inline]
    pub fn check(&self, req: &Request) -> Result<(), Denied> {
        self.check_found(lookup(req.name()), req)
    }

    /// `check` for a request whose top-level command the caller already
    /// looked up (`command::lookup(req.name())`, `None`: not in the table),
    /// so the hot path names the command once. The user's verdict for the
    /// command (`fast`) answers most requests: allowed outright, or one
    /// key against the patterns; the rest take the full check.
    #[inline(always)]
    pub fn check_found(&self, top: Option<(usize, &'static Command)>, req: &Request) -> Result<(), Denied> {
        match top {
            Some((i, cmd)) => match self.fast.get(i) {
                Fast::Allow => Ok(()),
                Fast::Key { pos, need } => {
                    let pos = usize::from(pos);
                    // Past the arguments: keyless (see the module invariant).
                    if pos < req.argc() && !self.patterns_match(req.arg(pos), need) {
                        Err(Denied::Key)
                    } else {
                        Ok(())
                    }
                }
                Fast::Slow => self.check_slow(i, cmd, req),
            },
            None if self.allcommands => Ok(()),
            None => Err(Denied::Unknown),
        }
    }

    /// The full check of a request of top-level row `i`: subcommands,
    /// refusals, several keys, channels, scripts.
    #[inline(never)]
    fn check_slow(&self, i: usize, cmd: &'static Command, req: &Request) -> Result<(), Denied> {
        let (id, cmd) = ids::resolve_top(i, cmd, req);
        self.check_command(id, cmd, req)
    }

    /// Judges `req`, already resolved to `cmd` with id `id`.
    #[inline(always)]
    pub fn check_command(&self, id: u16, cmd: &'static Command, req: &Request) -> Result<(), Denied> {
        if !self.commands.has(id) || (runs_scripts(cmd) && !self.allkeys && !self.scripting) {
            return Err(Denied::Command(cmd.fullname));
        }
        if !self.allkeys && !cmd.keys.is_empty() {
            self.check_keys(id, cmd, req)?;
        }
        if !self.allchannels && cmd.acl & acl::PUBSUB != 0 {
            if let Some((all, literal)) = channels(cmd) {
                let last = if all { req.argc() } else { req.argc().min(2) };
                for i in 1..last {
                    if !self.channel_ok(req.arg(i), literal) {
                        return Err(Denied::Channel);
                    }
                }
            }
        }
        Ok(())
    }

    #[inline(always)]
    fn check_keys(&self, id: u16, cmd: &Command, req: &Request) -> Result<(), Denied> {
        // Most keyed commands (GET, SET, HSET...): one key at a fixed
        // index, its need worked out once per command (`ids::key_plan`).
        if let Some((pos, need)) = ids::key_plan(id) {
            return match need {
                // Past the arguments: keyless (see the module invariant).
                Some(need) if pos < req.argc() && !self.key_ok(req.arg(pos), need) => Err(Denied::Key),
                _ => Ok(()),
            };
        }
        self.check_keys_general(cmd, req)
    }

    /// `check_keys` for commands with several keys or key specs: Redis's
    /// key-spec walk.
    #[inline(never)]
    fn check_keys_general(&self, cmd: &Command, req: &Request) -> Result<(), Denied> {
        let mut denied = false;
        // An error here means "keyless" (see the module invariant).
        let _ = for_each_key(cmd, req, |i, flags| {
            if denied {
                return;
            }
            if let Some(need) = key_need(flags) {
                denied = !self.key_ok(req.arg(i), need);
            }
        });
        if denied {
            Err(Denied::Key)
        } else {
            Ok(())
        }
    }

    /// Whether some pattern granting at least `need` matches `key`.
    #[inline(always)]
    pub fn key_ok(&self, key: &[u8], need: u8) -> bool {
        self.allkeys || self.patterns_match(key, need)
    }

    /// Whether some key pattern granting at least `need` matches `key`
    /// (`allkeys` aside).
    #[inline(always)]
    fn patterns_match(&self, key: &[u8], need: u8) -> bool {
        for k in &self.keys {
            if k.perms & need == need && glob::matches_shaped(&k.pattern, k.shape, key) {
                return true;
            }
        }
        false
    }

    fn channel_ok(&self, channel: &[u8], literal: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|c| if literal { **c == *channel } else { glob::matches(c, channel) })
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
