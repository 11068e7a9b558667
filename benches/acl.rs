//! The ACL check alone (`acl::User::check`), in ns per request: a command
//! allowed by its bit, and a 3-key MGET whose keys are matched against
//! the user's patterns. Issue 16's target is the check adding <= 5% CPU
//! per request; this measures what that check costs.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use puerta::acl::User;
use puerta::protocol::resp::Request;

fn req(args: &[&str]) -> Request {
    Request::from_args(args.iter().map(|a| a.as_bytes()))
}

fn bench(c: &mut Criterion) {
    let all = User::from_rules("a", "on nopass allkeys +@all -@dangerous").expect("rules");
    let keyed = User::from_rules("k", "on nopass ~app:* ~cache:* %R~ro:* +@read +@write").expect("rules");
    let get = req(&["GET", "app:1"]);
    let mget = req(&["MGET", "app:user:1", "cache:x:2", "ro:3"]);
    c.bench_function("acl/command_allowed_allkeys_get", |b| b.iter(|| black_box(&all).check(black_box(&get))));
    c.bench_function("acl/key_patterns_get", |b| b.iter(|| black_box(&keyed).check(black_box(&get))));
    c.bench_function("acl/key_patterns_mget3", |b| b.iter(|| black_box(&keyed).check(black_box(&mget))));
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
