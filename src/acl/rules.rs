//! A user's rules, Redis ACL syntax (`ACL SETUSER`), applied left to
//! right into one compiled `User`. The subset Puerta takes:
//!
//! - `on` / `off`; `nopass`; `>password` / `<password` (add / remove);
//!   `#<sha256 hex>` / `!<sha256 hex>` (64 lowercase hex digits, as Redis);
//!   `resetpass`;
//! - `~pattern` (read and write), `%R~pattern`, `%W~pattern`,
//!   `%RW~pattern`; `allkeys` (= `~*`); `resetkeys`;
//! - `&pattern`; `allchannels` (= `&*`); `resetchannels`;
//! - `+@category` / `-@category` (Redis's categories and `all`),
//!   `+command` / `-command` (with all its subcommands),
//!   `+command|sub` / `-command|sub`; `allcommands` / `nocommands`;
//! - `reset` (off, no passwords, no keys, no channels, no commands).
//!
//! Not taken: selectors `(...)`, `+command|firstarg`. As in Redis, a later
//! rule overrides an earlier one for the commands both name, and a new
//! user starts `off` with nothing allowed (Redis 7's `resetchannels`
//! default). Invariant: a `User` only ever comes out of these rules, and
//! its `Debug` never shows a password hash.

use sha2::{Digest, Sha256};

use super::fast::FastTable;
use super::glob;
use super::ids::{self, CmdBits};
use super::AclError;
use crate::protocol::command::table_gen::ACL_NAMES;
use crate::protocol::command::Command;

/// Read / write permission bits of a key pattern (Redis's `%R~`, `%W~`).
pub const READ: u8 = 1;
pub const WRITE: u8 = 2;

/// One key pattern and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Box<[u8]>,
    pub perms: u8,
    /// `glob::shape(pattern)`, computed once at compile time.
    pub shape: super::glob::Shape,
}

/// One user, compiled: every decision is a bit test or a pattern match.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub(super) enabled: bool,
    pub(super) nopass: bool,
    /// SHA-256 of each password.
    pub(super) passwords: Vec<[u8; 32]>,
    pub(super) commands: CmdBits,
    /// Redis's `allcommands` flag: `+@all` and nothing taken away since;
    /// lets commands outside the table (modules') through.
    pub(super) allcommands: bool,
    /// `~*` (read and write) or `allkeys`: no key is checked.
    pub(super) allkeys: bool,
    pub(super) keys: Vec<KeyPattern>,
    pub(super) allchannels: bool,
    pub(super) channels: Vec<Box<[u8]>>,
    /// `+@scripting` was written (and not taken back by `-@scripting`,
    /// `nocommands`, `-@all` or `reset`): scripts run without `allkeys`.
    pub(super) scripting: bool,
    /// Client IP ranges this user is (memcached pools, set by the config
    /// layer; not a rule).
    pub source: Vec<super::IpRange>,
    /// The client certificates that are this user (`[[user]] cert_cn`,
    /// `cert_san`; set by the config layer, not a rule).
    pub cert: super::CertMatch,
    /// The user's index in the process-wide `[[user]]` list (its per-user
    /// limits and counters, `limit::UserLimits`); `NO_ID` for a user that
    /// is no `[[user]]` (a cluster pool's `client_auth`). Set by the config
    /// layer.
    pub id: u32,
    /// The verdict per top-level command (`fast`), rebuilt after each
    /// rule.
    pub(super) fast: FastTable,
}

/// `User::id` of a user outside the `[[user]]` list.
pub const NO_ID: u32 = u32::MAX;

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("passwords", &self.passwords.len())
            .field("commands", &self.commands)
            .field("allkeys", &self.allkeys)
            .field("keys", &self.keys.len())
            .field("allchannels", &self.allchannels)
            .field("channels", &self.channels.len())
            .finish()
    }
}

/// SHA-256 of `password`, as stored.
pub fn hash(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

/// The category bit of `name` (`None` for `all` or an unknown one).
fn category(name: &str) -> Result<Option<u32>, AclError> {
    if name.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let i = ACL_NAMES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .ok_or_else(|| AclError::UnknownCategory(name.to_owned()))?;
    Ok(Some(1u32 << i))
}

fn parse_hex_hash(hex: &str) -> Result<[u8; 32], AclError> {
    let bad = || AclError::BadHash(hex.to_owned());
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let at = i.checked_mul(2).ok_or_else(bad)?;
        let pair = hex.get(at..at.saturating_add(2)).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl User {
    /// A new user as Redis makes one: off, nothing allowed.
    pub fn new(name: &str) -> User {
        User {
            name: name.to_owned(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: CmdBits::default(),
            allcommands: false,
            allkeys: false,
            keys: Vec::new(),
            allchannels: false,
            channels: Vec::new(),
            scripting: false,
            source: Vec::new(),
            cert: super::CertMatch::default(),
            id: NO_ID,
            fast: FastTable::default(),
        }
    }

    /// A user from a rules string (whitespace-separated rules); every
    /// rule's problem is reported, not only the first.
    pub fn from_rules(name: &str, rules: &str) -> Result<User, Vec<AclError>> {
        let mut user = User::new(name);
        let errors: Vec<AclError> = rules.split_whitespace().filter_map(|r| user.apply(r).err()).collect();
        if errors.is_empty() {
            Ok(user)
        } else {
            Err(errors)
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    pub fn allkeys(&self) -> bool {
        self.allkeys
    }

    /// Applies one rule (and rebuilds the per-command verdicts).
    pub fn apply(&mut self, rule: &str) -> Result<(), AclError> {
        let applied = self.apply_rule(rule);
        self.fast = FastTable::build(self);
        applied
    }

    fn apply_rule(&mut self, rule: &str) -> Result<(), AclError> {
        match rule.to_ascii_lowercase().as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.add_key(b"*", READ | WRITE),
            "resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
            }
            "allchannels" => self.allchannels = true,
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
            }
            "allcommands" => self.category(true, None),
            "nocommands" => self.category(false, None),
            "reset" => {
                let source = std::mem::take(&mut self.source);
                *self = User { source, ..User::new(&self.name) };
            }
            _ => return self.apply_op(rule),
        }
        Ok(())
    }

    fn apply_op(&mut self, rule: &str) -> Result<(), AclError> {
        let mut chars = rule.chars();
        let (Some(op), rest) = (chars.next(), chars.as_str()) else {
            return Err(AclError::UnknownRule(rule.to_owned()));
        };
        match op {
            '>' => {
                let h = hash(rest.as_bytes());
                if !self.passwords.contains(&h) {
                    self.passwords.push(h);
                }
                self.nopass = false;
            }
            '<' => {
                let h = hash(rest.as_bytes());
                self.passwords.retain(|p| *p != h);
            }
            '#' => {
                let h = parse_hex_hash(rest)?;
                if !self.passwords.contains(&h) {
                    self.passwords.push(h);
                }
                self.nopass = false;
            }
            '!' => {
                let h = parse_hex_hash(rest)?;
                self.passwords.retain(|p| *p != h);
            }
            '~' => {
                glob::lint(rest.as_bytes()).map_err(|why| AclError::BadPattern(rule.to_owned(), why))?;
                self.add_key(rest.as_bytes(), READ | WRITE);
            }
            '%' => {
                let (flags, pattern) =
                    rest.split_once('~').ok_or_else(|| AclError::BadPattern(rule.to_owned(), "no '~'".into()))?;
                let mut perms = 0;
                for f in flags.chars() {
                    perms |= match f.to_ascii_uppercase() {
                        'R' => READ,
                        'W' => WRITE,
                        _ => return Err(AclError::BadPattern(rule.to_owned(), format!("unknown flag '{f}'"))),
                    };
                }
                if perms == 0 {
                    return Err(AclError::BadPattern(rule.to_owned(), "no R or W before '~'".into()));
                }
                glob::lint(pattern.as_bytes()).map_err(|why| AclError::BadPattern(rule.to_owned(), why))?;
                self.add_key(pattern.as_bytes(), perms);
            }
            '&' => {
                glob::lint(rest.as_bytes()).map_err(|why| AclError::BadPattern(rule.to_owned(), why))?;
                if rest == "*" {
                    self.allchannels = true;
                } else if !self.channels.iter().any(|c| **c == *rest.as_bytes()) {
                    self.channels.push(rest.as_bytes().into());
                }
            }
            '+' | '-' => {
                let on = op == '+';
                if let Some(cat) = rest.strip_prefix('@') {
                    let bit = category(cat)?;
                    self.category(on, bit);
                    if bit == Some(crate::protocol::command::acl::SCRIPTING) {
                        self.scripting = on;
                    }
                } else {
                    let (id, cmd) = ids::by_name(rest).ok_or_else(|| AclError::UnknownCommand(rest.to_owned()))?;
                    self.command(on, id, cmd, !rest.contains('|'));
                }
            }
            _ => return Err(AclError::UnknownRule(rule.to_owned())),
        }
        Ok(())
    }

    /// `~*` with both permissions is Redis's `allkeys` flag.
    fn add_key(&mut self, pattern: &[u8], perms: u8) {
        if pattern == b"*" && perms == READ | WRITE {
            self.allkeys = true;
            return;
        }
        match self.keys.iter_mut().find(|k| *k.pattern == *pattern) {
            Some(k) => k.perms |= perms,
            None => self.keys.push(KeyPattern { pattern: pattern.into(), perms, shape: super::glob::shape(pattern) }),
        }
    }

    /// `+@cat` / `-@cat` (`None`: `@all`), over commands and subcommands.
    fn category(&mut self, on: bool, bit: Option<u32>) {
        if bit.is_none() && !on {
            self.scripting = false;
        }
        if !on || bit.is_none() {
            self.allcommands = on && bit.is_none();
        }
        for (id, cmd) in ids::all() {
            if bit.is_none_or(|b| cmd.acl & b != 0) {
                self.commands.set(id, on);
            }
        }
    }

    /// `+cmd` / `-cmd` (with its subcommands when `with_subs`).
    fn command(&mut self, on: bool, id: u16, cmd: &Command, with_subs: bool) {
        self.allcommands &= on;
        self.commands.set(id, on);
        if with_subs {
            for (j, _) in cmd.subcommands.iter().enumerate() {
                let sub = id.saturating_add(1).saturating_add(u16::try_from(j).unwrap_or(u16::MAX));
                self.commands.set(sub, on);
            }
        }
    }

    /// Whether `password` is one of this user's (or the user is
    /// `nopass`). Compares SHA-256 digests in constant time, so the time
    /// taken says nothing about how much of a password was right.
    pub fn password_ok(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let h = hash(password);
        let mut ok = false;
        for p in &self.passwords {
            let diff = p.iter().zip(h.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok |= diff == 0;
        }
        ok
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
