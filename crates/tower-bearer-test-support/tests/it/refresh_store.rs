//! RedisStore as a RefreshTokenStore against a real redis-server: each script's conditions,
//! and how sealed values that moved or came from another configuration read.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{
    RefreshRecord, RefreshTokenStore, RefreshValue, RefreshWrite, StoreErrorKind, StoreKey,
    TokenStore,
};
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::RedisServer;

use crate::redis_store::{encrypted, integer, pttl, store_key, KEY_1, KEY_2};

/// A store and its Redis, for one test.
struct Fixture {
    redis: RedisServer,
    store: RedisStore,
    key: StoreKey,
}

impl Fixture {
    fn start(test: &str) -> Self {
        let redis = RedisServer::start_for_test(test);
        let store = encrypted(&redis, "k1", KEY_1);
        Fixture {
            store,
            key: store_key(test),
            redis,
        }
    }

    async fn store(&self, generation: u64, refresh_token: &str) -> bool {
        self.write(generation, refresh_token, None, None).await
    }

    async fn write(
        &self,
        generation: u64,
        refresh_token: &str,
        replacing_damaged: Option<u64>,
        settle: Option<Duration>,
    ) -> bool {
        let refresh_token = SecretString::from(refresh_token.to_owned());
        let write = RefreshWrite {
            generation,
            refresh_token: &refresh_token,
            replacing_damaged,
            settle,
        };
        self.store.store_refresh(&self.key, write).await.unwrap()
    }

    async fn begin(&self, generation: u64, holder: &str) -> bool {
        let store = &self.store;
        store
            .begin_presenting(&self.key, generation, holder)
            .await
            .unwrap()
    }

    async fn end(&self, generation: u64, holder: &str) -> bool {
        let store = &self.store;
        store
            .end_presenting(&self.key, generation, holder)
            .await
            .unwrap()
    }

    async fn record(&self) -> RefreshRecord {
        self.store
            .refresh_record(&self.key)
            .await
            .unwrap()
            .record
            .expect("a record")
    }

    async fn settling(&self) -> bool {
        self.store.refresh_record(&self.key).await.unwrap().settling
    }

    fn command(&self, words: &[&[u8]]) -> Vec<u8> {
        self.redis.command(words).unwrap()
    }

    fn refresh_key(&self) -> String {
        self.store.refresh_key(&self.key)
    }

    fn settle_ttl(&self) -> i64 {
        pttl(&self.redis, &self.store.settle_key(&self.key))
    }

    /// Sets fields of the record hash directly, as another program (or damage) would.
    fn hset(&self, fields: &[(&str, &[u8])]) {
        let name = self.refresh_key();
        let mut words: Vec<&[u8]> = vec![b"HSET", name.as_bytes()];
        for (field, value) in fields {
            words.push(field.as_bytes());
            words.push(value);
        }
        self.command(&words);
    }

    /// The raw bytes of a field of the record hash.
    fn hget(&self, field: &str) -> Vec<u8> {
        bulk(&self.command(&[b"HGET", self.refresh_key().as_bytes(), field.as_bytes()]))
    }
}

/// The bytes of a bulk-string reply (`$N\r\n...\r\n`).
fn bulk(reply: &[u8]) -> Vec<u8> {
    let start = reply
        .iter()
        .position(|&b| b == b'\n')
        .expect("a bulk reply")
        + 1;
    reply[start..reply.len() - 2].to_vec()
}

fn readable(record: &RefreshRecord) -> &str {
    match &record.value {
        RefreshValue::Readable(value) => value.expose_secret(),
        other => panic!("not readable: {other:?}"),
    }
}

fn is_damaged(record: &RefreshRecord) -> bool {
    matches!(&record.value, RefreshValue::Damaged(error) if error.kind() == StoreErrorKind::Unreadable)
}

fn is_foreign(record: &RefreshRecord) -> bool {
    matches!(&record.value, RefreshValue::Foreign(error) if error.kind() == StoreErrorKind::Unreadable)
}

#[tokio::test]
async fn the_record_intent_and_settle_are_read_together() {
    let f = Fixture::start("refresh_read");
    let state = f.store.refresh_record(&f.key).await.unwrap();
    assert!(state.record.is_none() && !state.settling);
    assert!(f.store(4, "refresh-4").await);
    assert!(f.begin(4, "replica-a").await);
    let record = f.record().await;
    assert_eq!(record.generation, 4);
    assert_eq!(readable(&record), "refresh-4");
    assert_eq!(record.presenting.as_deref(), Some("replica-a"));
    assert!(!f.settling().await);
    // The sealed value hides the token; the generation and the intent are plain fields.
    assert!(!f.hget("val").windows(9).any(|w| w == b"refresh-4"));
    assert_eq!(f.hget("gen"), b"4");
    assert_eq!(f.hget("presenting"), b"replica-a");
    // Debug redacts the token.
    assert!(!format!("{record:?}").contains("refresh-4"));
}

#[tokio::test]
async fn begin_presenting_is_refused_at_another_generation_for_another_holder_and_while_settling() {
    let f = Fixture::start("refresh_begin");
    assert!(!f.begin(0, "a").await, "no record");
    assert!(f.store(2, "refresh-2").await);
    assert!(!f.begin(1, "a").await, "another generation");
    assert!(!f.begin(3, "a").await, "another generation");
    assert!(f.begin(2, "a").await);
    assert!(f.begin(2, "a").await, "already a's");
    assert!(!f.begin(2, "b").await, "another holder's");
    assert_eq!(f.record().await.presenting.as_deref(), Some("a"));

    // While a settle runs nobody begins, not even the holder of the intent.
    assert!(f.end(2, "a").await);
    assert!(
        f.write(3, "refresh-3", None, Some(Duration::from_secs(30)))
            .await
    );
    assert!(f.settling().await);
    assert!(!f.begin(3, "a").await, "settling");
    assert!(f.record().await.presenting.is_none());
    // Once the settle is over (its marker gone), presenting is allowed again.
    f.command(&[b"DEL", f.store.settle_key(&f.key).as_bytes()]);
    assert!(!f.settling().await);
    assert!(f.begin(3, "a").await);
}

#[tokio::test]
async fn end_presenting_is_for_its_holder_at_its_generation_only() {
    let f = Fixture::start("refresh_end");
    assert!(!f.end(0, "a").await, "no record");
    assert!(f.store(5, "refresh-5").await);
    assert!(!f.end(5, "a").await, "no intent");
    assert!(f.begin(5, "a").await);
    assert!(!f.end(5, "b").await, "not b's");
    assert!(!f.end(4, "a").await, "another generation");
    assert_eq!(f.record().await.presenting.as_deref(), Some("a"));
    assert!(f.end(5, "a").await);
    let record = f.record().await;
    assert!(record.presenting.is_none());
    assert_eq!(
        (record.generation, readable(&record)),
        (5, "refresh-5"),
        "the record stays as it was"
    );
    assert!(!f.end(5, "a").await, "already ended");
    // A settle does not stop an intent from being withdrawn.
    assert!(f.begin(5, "a").await);
    f.command(&[
        b"SET",
        f.store.settle_key(&f.key).as_bytes(),
        b"1",
        b"PX",
        b"30000",
    ]);
    assert!(f.settling().await);
    assert!(f.end(5, "a").await);
}

#[tokio::test]
async fn store_refresh_is_newest_wins_and_clears_the_intent() {
    let f = Fixture::start("refresh_newest_wins");
    assert!(f.store(3, "refresh-3").await, "into an empty key");
    assert!(!f.store(3, "refresh-3b").await, "equal generation");
    assert!(!f.store(2, "refresh-2").await, "older generation");
    assert!(!f.store(0, "refresh-0").await, "older generation");
    assert_eq!(readable(&f.record().await), "refresh-3");
    assert!(f.begin(3, "a").await);
    assert!(f.store(7, "refresh-7").await, "newer generation");
    let record = f.record().await;
    assert_eq!((record.generation, readable(&record)), (7, "refresh-7"));
    assert!(record.presenting.is_none(), "a write clears the intent");
    assert!(
        !f.end(3, "a").await,
        "the old intent is gone with its record"
    );

    // Writers of one generation race: exactly one wins.
    let store = Arc::new(f.store.clone());
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let (store, key) = (Arc::clone(&store), f.key.clone());
        tasks.push(tokio::spawn(async move {
            let value = SecretString::from(format!("refresh-8-{writer}"));
            let write = RefreshWrite {
                generation: 8,
                refresh_token: &value,
                replacing_damaged: None,
                settle: None,
            };
            store.store_refresh(&key, write).await.unwrap()
        }));
    }
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(f.record().await.generation, 8);
}

/// Whatever is at the key that is not a valid record is replaced by any write, and reads
/// as damaged (a bad generation as generation 0).
#[tokio::test]
async fn store_refresh_replaces_anything_that_is_not_a_valid_record() {
    let f = Fixture::start("refresh_garbage");
    let name = f.refresh_key();
    let sealed = {
        assert!(f.store(9, "refresh-9").await);
        f.hget("val")
    };
    let not_records: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("a string", vec![b"SET".to_vec(), b"junk".to_vec()]),
        ("a list", vec![b"RPUSH".to_vec(), b"junk".to_vec()]),
        (
            "a hash without gen",
            vec![b"HSET".to_vec(), b"val".to_vec(), sealed.clone()],
        ),
        (
            "a hash without val",
            vec![b"HSET".to_vec(), b"gen".to_vec(), b"9".to_vec()],
        ),
    ];
    for (what, command) in not_records {
        f.command(&[b"DEL", name.as_bytes()]);
        let mut words: Vec<&[u8]> = vec![&command[0], name.as_bytes()];
        words.extend(command[1..].iter().map(Vec::as_slice));
        f.command(&words);
        let record = f.record().await;
        assert!(is_damaged(&record), "{what}: {record:?}");
        assert!(
            !f.begin(record.generation, "a").await,
            "{what}: not presented"
        );
        assert!(f.store(0, "refresh-0").await, "{what}: replaced");
        let record = f.record().await;
        assert_eq!(
            (record.generation, readable(&record)),
            (0, "refresh-0"),
            "{what}"
        );
    }
    for bad in [
        &b"abc"[..],
        b"",
        b"1.5",
        b"-1",
        b"+9",
        b"1e3",
        b"0x10",
        b" 9",
        b"9007199254740992",
        b"99999999999999999999999",
    ] {
        f.command(&[b"DEL", name.as_bytes()]);
        f.hset(&[("gen", bad), ("val", &sealed), ("presenting", b"a")]);
        let record = f.record().await;
        assert!(is_damaged(&record), "gen {bad:?}: {record:?}");
        assert_eq!(record.generation, 0, "gen {bad:?}");
        assert!(!f.begin(0, "b").await, "gen {bad:?}: not presented");
        assert!(!f.end(0, "a").await, "gen {bad:?}");
        assert!(f.store(0, "refresh-0").await, "gen {bad:?}: replaced");
        let record = f.record().await;
        assert_eq!(readable(&record), "refresh-0", "gen {bad:?}");
        assert!(record.presenting.is_none(), "gen {bad:?}: a fresh record");
    }
    // The largest valid generation is a record like any other.
    f.command(&[b"DEL", name.as_bytes()]);
    f.hset(&[("gen", b"9007199254740991"), ("val", b"junk")]);
    assert_eq!(f.record().await.generation, 9_007_199_254_740_991);
    assert!(!f.store(0, "refresh-0").await, "a valid, newer record");
    // A generation the scripts could not compare exactly is refused before Redis.
    let value = SecretString::from("too-far".to_owned());
    let write = RefreshWrite {
        generation: 1 << 53,
        refresh_token: &value,
        replacing_damaged: None,
        settle: None,
    };
    let error = f.store.store_refresh(&f.key, write).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Config);
}

#[tokio::test]
async fn replacing_damaged_replaces_only_at_the_named_generation() {
    let f = Fixture::start("refresh_damaged");
    // A record of generation 5 whose value is damaged.
    f.hset(&[("gen", b"5"), ("val", b"\x03damaged")]);
    assert!(is_damaged(&f.record().await));
    assert!(!f.store(4, "refresh-4").await, "older, and no damage named");
    assert!(
        !f.write(4, "refresh-4", Some(4), None).await,
        "another generation named"
    );
    assert!(
        !f.write(4, "refresh-4", Some(6), None).await,
        "another generation named"
    );
    assert!(
        f.write(4, "refresh-4", Some(5), None).await,
        "the damaged generation"
    );
    let record = f.record().await;
    assert_eq!((record.generation, readable(&record)), (4, "refresh-4"));
    // The script cannot tell damage from a good value: naming the generation replaces it,
    // so only a caller that read it as damaged may name it.
    assert!(f.write(2, "refresh-2", Some(4), None).await);
    assert_eq!(f.record().await.generation, 2);
    // Naming a generation does not stop a newer write from winning either way.
    assert!(f.write(3, "refresh-3", Some(0), None).await);
    assert_eq!(f.record().await.generation, 3);
}

#[tokio::test]
async fn a_settle_is_set_and_lengthened_only_by_a_successful_write() {
    let f = Fixture::start("refresh_settle");
    let secs = Duration::from_secs;
    assert_eq!(f.settle_ttl(), -2, "no settle yet");
    assert!(f.write(1, "refresh-1", None, Some(secs(10))).await);
    let ttl = f.settle_ttl();
    assert!(ttl > 5_000 && ttl <= 10_000, "{ttl}");
    assert!(f.settling().await);

    // A refused write does not touch the settle.
    assert!(!f.write(1, "refresh-1b", None, Some(secs(600))).await);
    assert!(f.settle_ttl() <= 10_000, "{}", f.settle_ttl());
    // A successful write with a shorter settle does not shorten it ...
    assert!(f.write(2, "refresh-2", None, Some(secs(1))).await);
    assert!(f.settle_ttl() > 5_000, "{}", f.settle_ttl());
    // ... one with a longer settle lengthens it ...
    assert!(f.write(3, "refresh-3", None, Some(secs(600))).await);
    assert!(f.settle_ttl() > 500_000, "{}", f.settle_ttl());
    // ... and one without a settle leaves it.
    assert!(f.store(4, "refresh-4").await);
    assert!(f.settle_ttl() > 500_000, "{}", f.settle_ttl());

    // A refused write starts no settle; a zero settle is none.
    let name = f.store.settle_key(&f.key);
    f.command(&[b"DEL", name.as_bytes()]);
    assert!(!f.write(4, "refresh-4b", None, Some(secs(30))).await);
    assert_eq!(f.settle_ttl(), -2);
    assert!(f.write(5, "refresh-5", None, Some(Duration::ZERO)).await);
    assert_eq!(f.settle_ttl(), -2);
    assert!(!f.settling().await);
    // A marker without an expiry (not ours) gets one from the next settling write.
    f.command(&[b"SET", name.as_bytes(), b"1"]);
    assert_eq!(f.settle_ttl(), -1);
    assert!(f.write(6, "refresh-6", None, Some(secs(30))).await);
    let ttl = f.settle_ttl();
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
}

/// The generation, the key name and the kind are authenticated: a sealed value copied to
/// another generation or key, or an access token's value put in a refresh record, reads as
/// damaged (in clear, where the context is stored rather than authenticated, too).
#[tokio::test]
async fn a_sealed_refresh_value_moved_to_another_generation_or_key_is_damaged() {
    let f = Fixture::start("refresh_moved");
    let clear = RedisStore::builder(&f.redis.url())
        .store_in_clear()
        .key_prefix("clear:")
        .build()
        .unwrap();
    for store in [&f.store, &clear] {
        let moved = |name: &str| StoreKey::builder("http://127.0.0.1/token", name).build();
        let (a, b) = (moved("moved-a"), moved("moved-b"));
        let value = SecretString::from("moved-refresh".to_owned());
        let write = RefreshWrite {
            generation: 1,
            refresh_token: &value,
            replacing_damaged: None,
            settle: None,
        };
        assert!(store.store_refresh(&a, write).await.unwrap());
        let name_a = store.refresh_key(&a);
        let sealed = bulk(&f.command(&[b"HGET", name_a.as_bytes(), b"val"]));

        // Another generation, same key.
        f.command(&[b"HSET", name_a.as_bytes(), b"gen", b"2"]);
        let record = store.refresh_record(&a).await.unwrap().record.unwrap();
        assert_eq!(record.generation, 2);
        assert!(is_damaged(&record), "{store:?}: {record:?}");

        // Another key, same generation.
        let name_b = store.refresh_key(&b);
        f.command(&[b"HSET", name_b.as_bytes(), b"gen", b"1", b"val", &sealed]);
        let record = store.refresh_record(&b).await.unwrap().record.unwrap();
        assert!(is_damaged(&record), "{store:?}: {record:?}");

        // An access token's sealed value as a refresh token.
        store
            .put(&a, &crate::redis_store::token("a-token"), Duration::ZERO)
            .await
            .unwrap();
        let token_value = bulk(&f.command(&[b"GET", store.token_key(&a).as_bytes()]));
        f.command(&[
            b"HSET",
            name_a.as_bytes(),
            b"gen",
            b"1",
            b"val",
            &token_value,
        ]);
        let record = store.refresh_record(&a).await.unwrap().record.unwrap();
        assert!(is_damaged(&record), "{store:?}: {record:?}");
    }
}

/// A value sealed with another key under our id, or under an id we do not hold, or in the
/// other of clear and encrypted, is foreign: never readable, never reported as damage.
/// The store itself does not refuse to overwrite it (Lua cannot tell); it only never does
/// so unless the write is newer or names the generation as damaged, which a caller that
/// read the value as foreign does not.
#[tokio::test]
async fn values_sealed_with_a_key_we_do_not_hold_are_foreign() {
    let f = Fixture::start("refresh_foreign");
    assert!(f.store(3, "ours-3").await);
    let same_id_other_key = encrypted(&f.redis, "k1", KEY_2);
    let unknown_id = encrypted(&f.redis, "k9", KEY_1);
    let clear = RedisStore::builder(&f.redis.url())
        .store_in_clear()
        .build()
        .unwrap();
    for (what, other) in [
        ("another key under k1", &same_id_other_key),
        ("an unknown id", &unknown_id),
        ("in clear", &clear),
    ] {
        let record = other.refresh_record(&f.key).await.unwrap().record.unwrap();
        assert_eq!(record.generation, 3, "{what}");
        assert!(is_foreign(&record), "{what}: {record:?}");
        let text = format!("{record:?}");
        assert!(!text.contains("ours-3"), "{what}: {text}");
        // A foreign replica's own copy, not newer and naming no damage, is refused.
        let theirs = SecretString::from("theirs".to_owned());
        let write = RefreshWrite {
            generation: 3,
            refresh_token: &theirs,
            replacing_damaged: None,
            settle: None,
        };
        assert!(!other.store_refresh(&f.key, write).await.unwrap(), "{what}");
        assert_eq!(readable(&f.record().await), "ours-3", "{what}");
    }
    let Some(RefreshValue::Foreign(error)) = same_id_other_key
        .refresh_record(&f.key)
        .await
        .unwrap()
        .record
        .map(|record| record.value)
    else {
        panic!("foreign");
    };
    assert!(error.to_string().contains("different key"), "{error}");

    // And the other way round: an encrypting store reads a clear value as foreign.
    let key = store_key("refresh-foreign-clear");
    let value = SecretString::from("clear-refresh".to_owned());
    let write = RefreshWrite {
        generation: 0,
        refresh_token: &value,
        replacing_damaged: None,
        settle: None,
    };
    assert!(clear.store_refresh(&key, write).await.unwrap());
    let record = f.store.refresh_record(&key).await.unwrap().record.unwrap();
    assert!(is_foreign(&record), "{record:?}");
    let reply = f.command(&[b"HLEN", clear.refresh_key(&key).as_bytes()]);
    assert_eq!(integer(&reply), 2, "gen and val");
}
