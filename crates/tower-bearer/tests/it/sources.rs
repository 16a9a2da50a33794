//! The built-in sources: static, environment variable, file.

use std::time::Duration;

use tower_bearer::source::{EnvToken, FileToken, StaticToken};
use tower_bearer::{InvalidToken, TokenCache, TokenSource};

#[test]
fn static_token_checks_its_value_up_front() {
    assert_eq!(StaticToken::new("").unwrap_err(), InvalidToken::Empty);
    assert!(matches!(
        StaticToken::new("abc\r\n").unwrap_err(),
        InvalidToken::NotVisibleAscii { position: 3 }
    ));
}

#[tokio::test]
async fn env_token_names_the_variable_and_never_the_value() {
    let source = EnvToken::new("TOWER_BEARER_TEST_MISSING");
    std::env::remove_var("TOWER_BEARER_TEST_MISSING");
    let error = source.fetch().await.unwrap_err();
    assert!(error.is_permanent());
    assert!(
        error
            .to_string()
            .contains("TOWER_BEARER_TEST_MISSING is not set"),
        "{error}"
    );

    std::env::set_var("TOWER_BEARER_TEST_EMPTY", "");
    let error = EnvToken::new("TOWER_BEARER_TEST_EMPTY")
        .fetch()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is empty"), "{error}");

    std::env::set_var("TOWER_BEARER_TEST_BAD", "secret value\n");
    let error = EnvToken::new("TOWER_BEARER_TEST_BAD")
        .fetch()
        .await
        .unwrap_err();
    let message = format!("{error} {error:?}");
    assert!(message.contains("TOWER_BEARER_TEST_BAD"), "{message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn env_token_is_read_when_asked() {
    std::env::set_var("TOWER_BEARER_TEST_ROTATING", "first");
    let source = EnvToken::new("TOWER_BEARER_TEST_ROTATING");
    assert_eq!(source.fetch().await.unwrap().header_value(), "Bearer first");
    std::env::set_var("TOWER_BEARER_TEST_ROTATING", "second");
    assert_eq!(
        source.fetch().await.unwrap().header_value(),
        "Bearer second"
    );
}

#[tokio::test(start_paused = true)]
async fn file_token_is_reread_after_rotation() {
    let dir = std::env::temp_dir().join(format!("tower-bearer-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");
    std::fs::write(&path, "first-token\n").unwrap();

    let cache = TokenCache::new(FileToken::new(&path).reread_every(Duration::from_secs(60)));
    assert_eq!(
        cache.token().await.unwrap().header_value(),
        "Bearer first-token"
    );
    std::fs::write(&path, "second-token").unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        cache.token().await.unwrap().header_value(),
        "Bearer first-token",
        "cached until the re-read interval"
    );
    tokio::time::sleep(Duration::from_secs(31)).await;
    // Inside the refresh window: this call starts the re-read and keeps the old token.
    cache.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        cache.token().await.unwrap().header_value(),
        "Bearer second-token"
    );

    std::fs::write(&path, "  \n").unwrap();
    let error = FileToken::new(&path).fetch().await.unwrap_err();
    assert!(error.to_string().contains("is empty"), "{error}");
    std::fs::remove_file(&path).unwrap();
    let error = FileToken::new(&path).fetch().await.unwrap_err();
    assert!(error.is_transient(), "a missing mount may appear later");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
