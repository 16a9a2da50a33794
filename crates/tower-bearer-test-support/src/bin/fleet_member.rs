//! One member of the Redis tests' cross-process fleet (see `tower_bearer_test_support::fleet`).
//! A test starts it; it is not a test itself.

use tower_bearer_test_support::fleet::MemberConfig;

fn main() {
    let member = MemberConfig::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(member.run());
}
