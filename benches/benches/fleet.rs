//! Counts, not times: token requests per token lifetime for a fleet of 8 processes with
//! 200 callers each, without a shared store (every process fetches its own token) and with
//! the Redis store (the fleet fetches one). Against the testkit's authorization server over
//! 127.0.0.1, after the fleet is warm, with two sets of settings:
//!
//! - `tuned`: 2 s tokens over 5 lifetimes, refreshed 250 ms before expiry (skew 100 ms, no
//!   jitter), stored tokens taken with 100 ms left: one refresh per lifetime;
//! - `defaults`: 20 s tokens over 3 lifetimes with `CacheConfig::default()` and
//!   `StoreConfig::default()`. The refresh window (5 min or 10 %, at most half the
//!   lifetime) makes that a refresh at half the lifetime: two per lifetime.
//!
//! Needs `redis-server` (it starts its own on a free loopback port).
//!
//! `cargo bench -p benches --bench fleet` (the counts do not depend on the profile:
//! `--profile dev` builds faster).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_bearer::store::{StoreConfig, StoreKey, StoreSource};
use tower_bearer::{CacheConfig, TokenCache, TokenSource};
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::AuthServer;
use tower_bearer_testkit::RedisServer;

type Error = Box<dyn std::error::Error + Send + Sync>;

const MEMBER_ENV: &str = "FLEET_BENCH_MEMBER";
const PROCESSES: usize = 8;
const CALLERS: usize = 200;
const SETTINGS_ENV: &str = "FLEET_BENCH_SETTINGS";
const GUARD: Duration = Duration::from_secs(60);

/// One set of settings the fleet runs with.
#[derive(Clone, Copy)]
struct Settings {
    name: &'static str,
    lifetime: Duration,
    lifetimes: u32,
}

const SETTINGS: [Settings; 2] = [
    Settings {
        name: "tuned",
        lifetime: Duration::from_secs(2),
        lifetimes: 5,
    },
    Settings {
        name: "defaults",
        lifetime: Duration::from_secs(20),
        lifetimes: 3,
    },
];

fn main() -> ExitCode {
    let result = match std::env::var(MEMBER_ENV) {
        Ok(redis_url) => member(&redis_url),
        Err(_) => parent(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fleet bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parent() -> Result<(), Error> {
    let redis =
        RedisServer::start().map_err(|error| format!("this bench needs redis-server: {error}"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    for settings in SETTINGS {
        let Settings {
            name,
            lifetime,
            lifetimes,
        } = settings;
        println!(
            "{name}: {PROCESSES} processes x {CALLERS} callers, {lifetime:?} tokens, counted \
             over {lifetimes} lifetimes after warm-up"
        );
        for (label, redis_url) in [
            ("without a shared store", "none".to_owned()),
            ("with RedisStore", redis.url()),
        ] {
            let auth = runtime.block_on(AuthServer::builder().token_lifetime(lifetime).start())?;
            let mut members = (0..PROCESSES)
                .map(|_| Member::spawn(&redis_url, &auth.token_url(), name))
                .collect::<Result<Vec<_>, Error>>()?;
            for member in &members {
                member.expect("WARM")?;
            }
            let warm_up = auth.token_requests();
            std::thread::sleep(lifetime * lifetimes);
            let counted = auth.token_requests() - warm_up;
            let mut failed = 0;
            for member in &mut members {
                member.stdin.take();
                let line = member.expect("RESULT")?;
                failed += line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("failed="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            println!(
                "{label:>24}: {warm_up:>2} token requests to warm up, {counted:>3} in \
                 {lifetimes} lifetimes = {:.1} per lifetime; {failed} failed calls",
                f64::from(u32::try_from(counted)?) / f64::from(lifetimes),
            );
            drop(members);
            drop(auth);
        }
    }
    Ok(())
}

/// One member process, killed when dropped.
struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Member {
    fn spawn(redis_url: &str, token_url: &str, settings: &str) -> Result<Member, Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(MEMBER_ENV, redis_url)
            .env(SETTINGS_ENV, settings)
            .env("FLEET_BENCH_TOKEN_URL", token_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Member {
            child,
            stdin,
            lines,
        })
    }

    fn expect(&self, prefix: &str) -> Result<String, Error> {
        let deadline = Instant::now() + GUARD;
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .map_err(|_| format!("a member never said {prefix}"))?;
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member: a cold cache, over the Redis store unless `redis_url` is `none`, with 200
/// callers asking for a token every 50 ms until stdin closes.
fn member(redis_url: &str) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tuned = std::env::var(SETTINGS_ENV).is_ok_and(|name| name == "tuned");
    runtime.block_on(async {
        let token_url = std::env::var("FLEET_BENCH_TOKEN_URL")?;
        let source = benches::default_client_source(&token_url)?;
        let source: Box<dyn TokenSource> = if redis_url == "none" {
            Box::new(source)
        } else {
            let store = RedisStore::builder(redis_url)
                .encryption_key("bench", [9; 32])
                .build()?;
            let key = StoreKey::builder(&token_url, AuthServer::DEFAULT_CLIENT_ID).build();
            let config = if tuned {
                StoreConfig::new().min_remaining(Duration::from_millis(100))
            } else {
                StoreConfig::default()
            };
            Box::new(StoreSource::with_config(source, store, key, config))
        };
        let config = if tuned {
            // Refresh 250 ms before expiry, without jitter, for 2 s tokens.
            CacheConfig::new()
                .expiry_skew(Duration::from_millis(100))
                .refresh_window(Duration::from_millis(250), 0.0)
                .refresh_jitter(0.0)
        } else {
            CacheConfig::default()
        };
        let cache = TokenCache::with_config(source, config);

        let stop = Arc::new(AtomicBool::new(false));
        let stop_on_eof = Arc::clone(&stop);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            stop_on_eof.store(true, Ordering::SeqCst);
        });
        let failed = Arc::new(AtomicU64::new(0));
        let warm = Arc::new(AtomicBool::new(false));
        let mut callers = Vec::new();
        for _ in 0..CALLERS {
            let (cache, stop, failed, warm) =
                (cache.clone(), stop.clone(), failed.clone(), warm.clone());
            callers.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match cache.token().await {
                        Ok(_) if !warm.swap(true, Ordering::SeqCst) => say("WARM"),
                        Ok(_) => {}
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        for caller in callers {
            caller.await?;
        }
        say(&format!("RESULT failed={}", failed.load(Ordering::SeqCst)));
        Ok(())
    })
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
