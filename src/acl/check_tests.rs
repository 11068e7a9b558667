//! `User::check` on whole requests: commands, subcommands, every key of a
//! multi-key command, channels, and the scripting rule.

use super::*;
use crate::acl::fast::Fast;
use crate::acl::User;

fn user(rules: &str) -> User {
    User::from_rules("alice", rules).unwrap()
}

fn req(args: &[&str]) -> Request {
    Request::from_args(args.iter().map(|a| a.as_bytes()))
}

fn check(u: &User, args: &[&str]) -> Result<(), Denied> {
    u.check(&req(args))
}

#[test]
fn commands_and_texts() {
    let u = user("on >p ~* +@read -config +config|get");
    assert_eq!(check(&u, &["GET", "k"]), Ok(()));
    assert_eq!(check(&u, &["SET", "k", "v"]), Err(Denied::Command("set")));
    assert_eq!(check(&u, &["CONFIG", "GET", "x"]), Ok(()));
    assert_eq!(check(&u, &["CONFIG", "SET", "x", "y"]), Err(Denied::Command("config|set")));
    let u = user("on +@all -config|set");
    assert_eq!(check(&u, &["config", "set", "a", "b"]), Err(Denied::Command("config|set")));
    assert_eq!(
        &Denied::Command("config|set").reply("alice", b"")[..],
        b"-NOPERM User alice has no permissions to run the 'config|set' command\r\n"
    );
    assert_eq!(&Denied::Key.reply("x", b"")[..], b"-NOPERM No permissions to access a key\r\n");
    assert_eq!(&Denied::Channel.reply("x", b"")[..], b"-NOPERM No permissions to access a channel\r\n");
    assert_eq!(check(&u, &["NOSUCHCMD"]), Err(Denied::Unknown), "+@all was taken from");
    assert_eq!(check(&user("+@all"), &["NOSUCHCMD"]), Ok(()), "left to the pool's policy");
    assert_eq!(check(&user("+@all -get +get"), &["NOSUCHCMD"]), Err(Denied::Unknown));
    assert_eq!(
        &Denied::Unknown.reply("a", b"My.Cmd\r\n")[..],
        b"-NOPERM User a has no permissions to run the 'my.cmd  ' command\r\n"
    );
}

#[test]
fn every_key_is_checked() {
    let u = user("on +@all ~app:* %R~ro:*");
    assert_eq!(check(&u, &["MGET", "app:1", "app:2", "ro:3"]), Ok(()));
    assert_eq!(check(&u, &["MGET", "app:1", "other", "app:3"]), Err(Denied::Key));
    assert_eq!(check(&u, &["MSET", "app:1", "v", "ro:1", "v"]), Err(Denied::Key));
    assert_eq!(check(&u, &["DEL", "app:1", "ro:1"]), Err(Denied::Key));
    assert_eq!(check(&u, &["COPY", "ro:1", "app:1"]), Ok(()), "source read, destination written");
    assert_eq!(check(&u, &["COPY", "app:1", "ro:1"]), Err(Denied::Key));
    assert_eq!(check(&u, &["GET", "ro:x"]), Ok(()));
    assert_eq!(check(&u, &["SET", "ro:x", "v"]), Err(Denied::Key));
    assert_eq!(check(&u, &["PING"]), Ok(()));
}

#[test]
fn channels() {
    let u = user("on +@all allkeys &news.*");
    assert_eq!(check(&u, &["PUBLISH", "news.x", "m"]), Ok(()));
    assert_eq!(check(&u, &["PUBLISH", "other", "m"]), Err(Denied::Channel));
    assert_eq!(check(&u, &["SUBSCRIBE", "news.a", "other"]), Err(Denied::Channel));
    assert_eq!(check(&u, &["SSUBSCRIBE", "news.a"]), Ok(()));
    // Patterns are compared literally, as in Redis.
    assert_eq!(check(&u, &["PSUBSCRIBE", "news.*"]), Ok(()));
    assert_eq!(check(&u, &["PSUBSCRIBE", "news.a*"]), Err(Denied::Channel));
    assert_eq!(check(&u, &["UNSUBSCRIBE", "other"]), Ok(()));
}

#[test]
fn scripts_need_allkeys_or_explicit_scripting() {
    let u = user("on +@all ~app:*");
    assert_eq!(check(&u, &["EVAL", "return 1", "1", "app:1"]), Err(Denied::Command("eval")));
    assert_eq!(check(&u, &["FCALL", "f", "0"]), Err(Denied::Command("fcall")));
    assert_eq!(check(&u, &["FUNCTION", "LIST"]), Err(Denied::Command("function|list")));
    let u = user("on +@all +@scripting ~app:*");
    assert_eq!(check(&u, &["EVAL", "return 1", "1", "app:1"]), Ok(()));
    assert_eq!(check(&u, &["EVAL", "return 1", "1", "other"]), Err(Denied::Key), "declared keys still checked");
    let u = user("on +@all allkeys");
    assert_eq!(check(&u, &["EVALSHA", "abc", "0"]), Ok(()));
}

#[test]
fn single_key_plan_agrees_with_the_key_spec_walk() {
    // Every command the fast path takes: its verdict on a key read-only,
    // read-write and unmatched, at its key index and with too few
    // arguments, is the general walk's.
    let u = user("on +@all ~app:* %R~ro:*");
    let mut planned = 0;
    for (id, cmd) in ids::all() {
        let Some((pos, _)) = ids::key_plan(id) else { continue };
        planned += 1;
        for key in ["app:1", "ro:1", "other"] {
            for argc in [pos, pos + 1, pos + 3] {
                let mut args: Vec<&str> = vec![cmd.name; argc];
                if let Some(a) = args.get_mut(pos) {
                    *a = key;
                }
                let r = req(&args);
                assert_eq!(u.check_keys(id, cmd, &r), u.check_keys_general(cmd, &r), "{} {args:?}", cmd.fullname);
            }
        }
    }
    assert!(planned > 100, "{planned} commands on the fast path");
    assert_eq!(check(&u, &["GET", "ro:1"]), Ok(()));
    assert_eq!(check(&u, &["SET", "ro:1", "v"]), Err(Denied::Key));
    assert_eq!(check(&u, &["GET"]), Ok(()), "too few arguments: keyless");
}

#[test]
fn per_command_verdicts_agree_with_the_full_check() {
    // Every top-level command, for users of every kind (refused commands,
    // patterns, allkeys, channels, scripting, none), with its key
    // positions filled by matching, read-only and unmatched keys and with
    // too few arguments: the verdict table (`fast`) answers what the full
    // check answers.
    let users = [
        "on +@all ~app:* %R~ro:*",
        "on +@read +@write +@connection -@dangerous ~key:* ~counter:* ~mylist* ~myset*",
        "on +@all allkeys &news.*",
        "on +@all -get -set ~a?c ~[xy]* allchannels",
        "on +@all +@scripting ~app:*",
        "on allcommands allkeys allchannels",
        "on +@read %W~w:* ~app:*",
        "on -@all +get ~app:* -set",
        "on +@all allkeys -@scripting",
        "",
    ];
    let mut fast = 0;
    for rules in users {
        let u = user(rules);
        for (i, cmd) in crate::protocol::command::COMMANDS.iter().enumerate() {
            if u.fast.get(i) != Fast::Slow {
                fast += 1;
            }
            for key in ["app:1", "ro:1", "w:1", "key:1", "abc", "x1", "news.a", "other"] {
                for argc in 1..6 {
                    let mut args: Vec<&str> = vec![key; argc];
                    args[0] = cmd.name;
                    let r = req(&args);
                    let (id, resolved) = ids::resolve_top(i, cmd, &r);
                    assert_eq!(
                        u.check(&r),
                        u.check_command(id, resolved, &r),
                        "{rules:?}: {args:?} ({:?})",
                        u.fast.get(i)
                    );
                }
            }
        }
    }
    assert!(fast > 500, "{fast} verdicts off the full check");
    // Rules applied one by one keep the table in step.
    let mut u = user("on +@all ~app:*");
    assert_eq!(check(&u, &["GET", "app:1"]), Ok(()));
    u.apply("-get").unwrap();
    assert_eq!(check(&u, &["GET", "app:1"]), Err(Denied::Command("get")));
    u.apply("+get").unwrap();
    u.apply("resetkeys").unwrap();
    assert_eq!(check(&u, &["GET", "app:1"]), Err(Denied::Key));
    u.apply("allkeys").unwrap();
    assert_eq!(check(&u, &["GET", "other"]), Ok(()));
    u.apply("reset").unwrap();
    assert_eq!(check(&u, &["GET", "other"]), Err(Denied::Command("get")));
}
