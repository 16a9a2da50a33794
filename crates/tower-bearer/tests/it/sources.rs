//! The built-in sources: static, environment variable, file.

use std::time::Duration;

use tower_bearer::source::{EnvToken, FileToken, StaticToken, TokenFileTooLarge};
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

#[tokio::test]
async fn a_token_file_over_the_size_limit_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("tower-bearer-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token");

    // One byte past the default of 64 KiB.
    std::fs::write(&path, "t".repeat(64 * 1024 + 1)).unwrap();
    let error = FileToken::new(&path).fetch().await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    let too_large = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<TokenFileTooLarge>())
        .expect("the source says what was wrong");
    assert_eq!(too_large.limit(), 64 * 1024);
    assert_eq!(too_large.path(), path);
    let message = format!("{error}: {too_large}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains("FileToken::max_size"),
        "says what to do: {message}"
    );
    assert!(
        !message.contains("ttttttt"),
        "never the contents: {message}"
    );
    assert!(!format!("{error:?}").contains("ttttttt"));

    // The limit counts the whole file; a file that fits exactly is read.
    std::fs::write(&path, "sixteen-bytes-ok").unwrap();
    let token = FileToken::new(&path).max_size(16).fetch().await.unwrap();
    assert_eq!(token.header_value(), "Bearer sixteen-bytes-ok");
    std::fs::write(&path, "sixteen-bytes-ok\n").unwrap();
    let error = FileToken::new(&path)
        .max_size(16)
        .fetch()
        .await
        .unwrap_err();
    let source = std::error::Error::source(&error).unwrap();
    assert!(source.is::<TokenFileTooLarge>(), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reading stops one byte past the limit: a writer that offers 16 MiB through a FIFO gets no
/// further than the limit, the byte past it and what the pipe buffers before the reader
/// closes it.
#[cfg(unix)]
#[tokio::test]
async fn a_token_file_is_read_no_further_than_one_byte_past_the_limit() {
    use std::io::Write as _;

    const OFFERED: usize = 16 * 1024 * 1024;
    let fifo = crate::support::Fifo::new("large");
    let path = fifo.path().to_owned();
    // A thread of its own, not the blocking pool: the runtime does not wait for it.
    let writer = std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let chunk = vec![b't'; 64 * 1024];
        let mut written = 0;
        while written < OFFERED {
            match file.write(&chunk) {
                Ok(n) => written += n,
                // The reader closed the FIFO (EPIPE; Rust ignores SIGPIPE).
                Err(_) => break,
            }
        }
        std::io::Result::Ok(written)
    });
    let fetched =
        tokio::time::timeout(Duration::from_secs(20), FileToken::new(fifo.path()).fetch())
            .await
            .expect("the read ends");
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // A pipe buffers 64 KiB by default, 1 MiB at most for an unprivileged process.
    assert!(
        written <= FileToken::DEFAULT_MAX_SIZE + 1 + 1024 * 1024,
        "the reader took {written} of the {OFFERED} bytes offered"
    );
    let error = fetched.unwrap_err();
    let source = std::error::Error::source(&error).unwrap();
    assert!(source.is::<TokenFileTooLarge>(), "{error}");
}
