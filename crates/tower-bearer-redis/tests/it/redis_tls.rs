//! RedisStore over TLS (`rediss://`) against a real redis-server with a TLS listener, with
//! certificates from a private CA made for each run.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use secrecy::ExposeSecret;
use tower_bearer::store::{StoreErrorKind, StoreKey, TokenStore};
use tower_bearer::Token;
use tower_bearer_redis::{BuildError, RedisStore};
use tower_bearer_testkit::{RedisServer, TlsFiles};

const KEY: [u8; 32] = [7; 32];

/// PEM files for a CA, a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    dir: tempdir::Dir,
    ca: String,
    client_cert: String,
    client_key: String,
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub(crate) struct Dir(PathBuf);

    impl Dir {
        pub(crate) fn new(name: &str) -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "tower-bearer-redis-tls-{name}-{}-{:x}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn pki(name: &str) -> Pki {
    let dir = tempdir::Dir::new(name).unwrap();
    // Each certificate needs its own subject: OpenSSL (the server side) takes a certificate
    // whose subject equals its issuer's for self-signed.
    let named = |sans: Vec<String>, common_name: &str| {
        let mut params = CertificateParams::new(sans).unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params
    };
    let mut ca_params = named(Vec::new(), "tower-bearer test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = named(vec!["127.0.0.1".to_owned()], "127.0.0.1")
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = named(vec!["replica.test".to_owned()], "replica.test")
        .signed_by(&client_key, &ca)
        .unwrap();

    let write = |file: &str, pem: &str| std::fs::write(dir.path().join(file), pem).unwrap();
    write("ca.pem", &ca.pem());
    write("server.pem", &server.pem());
    write("server.key", &server_key.serialize_pem());
    Pki {
        ca: ca.pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
        dir,
    }
}

fn files(dir: &Path, require_client_cert: bool) -> TlsFiles {
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
        require_client_cert,
    }
}

/// A TLS redis-server, or `None` (with the harness's printed reason) without the binary.
fn start(test: &str, pki: &Pki, require_client_cert: bool) -> Option<RedisServer> {
    drop(RedisServer::start_or_skip(test)?);
    Some(RedisServer::start_tls(files(pki.dir.path(), require_client_cert)).unwrap())
}

fn key() -> StoreKey {
    StoreKey::builder("http://127.0.0.1/token", "tls").build()
}

fn token() -> Token {
    Token::builder("tls-secret-token")
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn rediss_with_a_private_ca_round_trips() {
    let pki = pki("private-ca");
    let Some(redis) = start("rediss_with_a_private_ca_round_trips", &pki, false) else {
        return;
    };
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .tls_root_certificate(pki.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    store.put(&key(), &token(), Duration::ZERO).await.unwrap();
    let back = store.get(&key()).await.unwrap().expect("the stored token");
    assert_eq!(back.secret().expose_secret(), "tls-secret-token");
    // The value went over TLS into the same server the plain port reads.
    let raw = redis
        .command(&[b"EXISTS", store.token_key(&key()).as_bytes()])
        .unwrap();
    assert_eq!(raw, b":1\r\n");
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let pki = pki("unknown-ca");
    let Some(redis) = start(
        "a_server_certificate_from_an_unknown_ca_is_refused",
        &pki,
        false,
    ) else {
        return;
    };
    // Only the compiled-in public roots: our private CA is not among them.
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    let error = store.get(&key()).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let other = self::pki("other-ca");
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .tls_root_certificate(other.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    let error = store.get(&key()).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = pki("mutual");
    let Some(redis) = start("mutual_tls_needs_the_client_certificate", &pki, true) else {
        return;
    };
    let url = redis.tls_url().unwrap();
    let without = RedisStore::builder(&url)
        .tls_root_certificate(pki.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    assert!(
        without.get(&key()).await.is_err(),
        "no client certificate, no access"
    );

    let with = RedisStore::builder(&url)
        .tls_root_certificate(pki.ca.clone())
        .tls_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    with.put(&key(), &token(), Duration::ZERO).await.unwrap();
    assert!(with.get(&key()).await.unwrap().is_some());
    assert!(
        !format!("{with:?}").contains("PRIVATE KEY"),
        "the client key stays out of Debug"
    );
}

#[test]
fn tls_settings_need_a_rediss_url_and_valid_pem() {
    let error = RedisStore::builder("redis://127.0.0.1:6379")
        .tls_root_certificate("not used")
        .store_in_clear()
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::TlsSettingsWithoutRediss),
        "{error}"
    );
    assert!(error.to_string().contains("rediss://"));

    let error = RedisStore::builder("rediss://127.0.0.1:6379")
        .tls_root_certificate("-----BEGIN CERTIFICATE-----\nnot base64\n")
        .store_in_clear()
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::InvalidTlsCertificate),
        "{error}"
    );
}
