//! Rule parsing and Redis's rule-order semantics.

use super::*;
use crate::acl::ids;

fn user(rules: &str) -> User {
    User::from_rules("u", rules).unwrap_or_else(|e| panic!("{rules}: {e:?}"))
}

fn can(u: &User, cmd: &str) -> bool {
    u.commands.has(ids::by_name(cmd).unwrap().0)
}

#[test]
fn new_users_are_off_with_nothing() {
    let u = user("");
    assert!(!u.enabled && !u.allkeys && !u.allchannels && u.keys.is_empty());
    assert!(!can(&u, "get") && !can(&u, "ping"));
}

#[test]
fn categories_and_commands_in_order() {
    let u = user("on +@read +@write -@dangerous");
    assert!(can(&u, "get") && can(&u, "set") && can(&u, "mget"));
    assert!(!can(&u, "flushall") && !can(&u, "keys") && !can(&u, "ping"));
    // Later rules override earlier ones.
    let u = user("+@all -get +get -set");
    assert!(can(&u, "get") && !can(&u, "set") && can(&u, "config|get"));
    let u = user("allcommands -config +config|get");
    assert!(can(&u, "config|get") && !can(&u, "config|set") && !can(&u, "config"));
    let u = user("-@all +config");
    assert!(can(&u, "config|set") && can(&u, "config|get") && can(&u, "config"));
    let u = user("+@all nocommands");
    assert!(!can(&u, "get"));
    // Categories reach subcommands (CLIENT's are @connection).
    let u = user("+@connection");
    assert!(can(&u, "client|setname") && can(&u, "ping"));
}

#[test]
fn passwords_and_hashes() {
    let u = user(">s3cret >other");
    assert!(u.password_ok(b"s3cret") && u.password_ok(b"other") && !u.password_ok(b"s3cre"));
    let u = user(">s3cret <s3cret");
    assert!(!u.password_ok(b"s3cret"));
    let hex: String = hash(b"pw").iter().map(|b| format!("{b:02x}")).collect();
    let u = user(&format!("#{hex}"));
    assert!(u.password_ok(b"pw") && !u.password_ok(b"pW"));
    assert!(user("nopass").password_ok(b"anything"));
    assert!(!user("nopass resetpass").password_ok(b"anything"));
    assert!(!user("nopass >x").password_ok(b"y"));
    assert!(!format!("{:?}", user(">s3cret")).contains(&hex[..8]));
}

#[test]
fn keys_and_channels() {
    let u = user("~cache:* %R~ro:* allchannels");
    assert!(!u.allkeys && u.allchannels);
    assert!(u.key_ok(b"cache:1", READ | WRITE) && u.key_ok(b"ro:1", READ) && !u.key_ok(b"ro:1", WRITE));
    assert!(user("~*").allkeys && user("allkeys").allkeys && !user("%R~*").allkeys);
    assert!(!user("allkeys resetkeys").allkeys);
    let u = user("&news.* &*");
    assert!(u.allchannels);
    assert!(!user("allchannels resetchannels").allchannels);
    assert!(!user("+@scripting").allkeys);
    assert!(user("+@scripting").scripting && !user("+@scripting -@scripting").scripting);
    assert!(!user("+@scripting -@all").scripting && !user("+@all").scripting);
}

#[test]
fn every_problem_is_reported() {
    let errs = User::from_rules("u", "on +@nosuch +nosuchcmd #abc ~[x %X~a bogus").unwrap_err();
    assert_eq!(errs.len(), 6, "{errs:?}");
    assert!(matches!(errs[0], AclError::UnknownCategory(_)));
    assert!(matches!(errs[1], AclError::UnknownCommand(_)));
    assert!(matches!(errs[2], AclError::BadHash(_)));
    assert!(matches!(errs[3], AclError::BadPattern(..)));
    assert!(matches!(errs[4], AclError::BadPattern(..)));
    assert!(matches!(errs[5], AclError::UnknownRule(_)));
    let upper = format!("#{}", "A".repeat(64));
    assert!(User::from_rules("u", &upper).is_err(), "Redis wants lowercase hex");
}
