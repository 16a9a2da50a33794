//! Mutual-TLS client authentication (RFC 8705) against the testkit's HTTPS authorization
//! server on 127.0.0.1, with certificates made for each test.

use std::error::Error as _;

use tower_bearer::{FetchError, TokenSource};
use tower_bearer_oauth2::{
    AuthMethod, ClientAuth, ClientCredentials, ClientCredentialsBuilder, ClientTls, Discovery,
    Endpoint, EndpointBuilder, HttpClient, OAuthError, RetryPolicy, TlsClientIdentity, TokenParams,
};
use tower_bearer_testkit::{
    capture_tracing, AuthServer, AuthServerBuilder, ClientAuthMethod, TestCertificate, TestPki,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Default-client TLS that trusts `pki` and presents `certificate`.
fn tls(pki: &TestPki, certificate: Option<&TestCertificate>) -> ClientTls {
    let tls = ClientTls::new()
        .root_certificates_pem(pki.ca_pem())
        .expect("the test CA");
    match certificate {
        Some(certificate) => tls.identity(identity(certificate)),
        None => tls,
    }
}

/// The default client with [`tls`].
fn https_client(pki: &TestPki, certificate: Option<&TestCertificate>) -> HttpClient {
    HttpClient::with_tls(tls(pki, certificate)).expect("a valid client certificate and key")
}

fn identity(certificate: &TestCertificate) -> TlsClientIdentity {
    TlsClientIdentity::from_pem(certificate.certificate_pem(), certificate.private_key_pem())
        .expect("a valid test certificate and key")
}

/// A test PKI, the certificate of client `billing`, and an HTTPS server that registers
/// `billing` as a `tls_client_auth` client with that certificate's subject, plus whatever
/// `configure` adds.
async fn billing_server(
    configure: impl FnOnce(AuthServerBuilder) -> AuthServerBuilder,
) -> std::io::Result<(TestPki, TestCertificate, AuthServer)> {
    let pki = TestPki::new();
    let billing = pki.client_certificate("billing");
    let auth = configure(
        AuthServer::builder()
            .https(&pki)
            .tls_client("billing", billing.subject_dn()),
    )
    .start()
    .await?;
    Ok((pki, billing, auth))
}

fn oauth_error(error: &FetchError) -> &OAuthError {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .expect("an OAuth error response")
}

/// The token endpoint of `auth` over a client that trusts `pki` and presents `certificate`,
/// with one request per fetch.
fn mtls_endpoint(
    auth: &AuthServer,
    pki: &TestPki,
    certificate: &TestCertificate,
) -> EndpointBuilder {
    Endpoint::builder(auth.token_url())
        .http_client(https_client(pki, Some(certificate)))
        .retry(RetryPolicy::none())
}

/// A `tls_client_auth` source for `client_id` over [`mtls_endpoint`].
fn mtls_source(
    auth: &AuthServer,
    pki: &TestPki,
    client_id: &str,
    certificate: &TestCertificate,
) -> ClientCredentialsBuilder {
    let endpoint = mtls_endpoint(auth, pki, certificate)
        .build()
        .expect("a valid endpoint");
    let client = ClientAuth::tls_client_auth(client_id).expect("a client id");
    ClientCredentials::builder(endpoint, client)
}

#[tokio::test]
async fn a_certificate_from_the_ca_with_the_registered_subject_gets_a_token() -> TestResult {
    let (pki, billing, auth) = billing_server(|builder| builder).await?;

    let source = mtls_source(&auth, &pki, "billing", &billing)
        .params(TokenParams::new().scope("invoices:read"))
        .build()?;
    assert_eq!(source.client_auth().method(), AuthMethod::TlsClientAuth);
    let token = source.fetch().await?;

    assert!(auth.is_valid(secrecy::ExposeSecret::expose_secret(token.secret())));
    let request = auth.last_request().expect("a token request");
    assert_eq!(request.client_id.as_deref(), Some("billing"));
    assert_eq!(request.auth_method, ClientAuthMethod::None);
    // RFC 8705 section 2: the form names the client and carries no secret of any kind.
    let names: Vec<&str> = request
        .params
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["grant_type", "scope", "client_id"]);
    Ok(())
}

#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails_as_a_transient_error() -> TestResult {
    let pki = TestPki::new();
    let auth = AuthServer::builder().https(&pki).start().await?;
    // A secret client whose transport trusts the server but has no certificate to show.
    let endpoint = Endpoint::builder(auth.token_url())
        .http_client(https_client(&pki, None))
        .retry(RetryPolicy::none())
        .build()?;
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    let source = ClientCredentials::builder(endpoint, client).build()?;

    let error = source.fetch().await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("cannot reach the token endpoint"),
        "{message}"
    );
    assert!(message.contains("client certificate"), "{message}");
    assert_eq!(auth.token_requests(), 0, "no HTTP request got through");
    assert_eq!(auth.tokens_issued(), 0);
    Ok(())
}

#[tokio::test]
async fn mutual_tls_with_the_default_client_and_no_certificate_does_not_build() -> TestResult {
    let endpoint = Endpoint::builder("https://auth.example.com/token").build()?;
    let error = ClientCredentials::builder(endpoint, ClientAuth::tls_client_auth("billing")?)
        .build()
        .unwrap_err();
    assert!(error.is_invalid_tls(), "{error}");
    let message = error.to_string();
    assert!(message.contains("ClientTls"), "{message}");
    assert!(message.contains("HttpClient::from_service"), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_certificate_of_another_client_is_invalid_client_and_not_retried() -> TestResult {
    let (pki, _billing, auth) =
        billing_server(|builder| builder.tls_client("reporting", "CN=reporting")).await?;
    // A valid certificate from the same CA, registered, but for another client.
    let reporting = pki.client_certificate("reporting");
    assert_eq!(reporting.subject_dn(), "CN=reporting");

    let endpoint = mtls_endpoint(&auth, &pki, &reporting)
        .retry(RetryPolicy::new())
        .build()?;
    let source =
        ClientCredentials::builder(endpoint, ClientAuth::tls_client_auth("billing")?).build()?;
    let error = source.fetch().await.unwrap_err();
    assert!(!error.is_transient(), "{error}");
    let oauth = oauth_error(&error);
    assert!(oauth.is_invalid_client());
    assert!(
        error.to_string().contains("TLS client certificate"),
        "{error}"
    );
    assert_eq!(auth.token_requests(), 1, "invalid_client is never retried");
    Ok(())
}

#[tokio::test]
async fn a_self_signed_certificate_with_the_registered_subject_is_not_a_pki_client() -> TestResult {
    let (pki, billing, auth) = billing_server(|builder| builder).await?;
    let impostor = TestCertificate::self_signed("billing");
    assert_eq!(impostor.subject_dn(), billing.subject_dn());

    let error = mtls_source(&auth, &pki, "billing", &impostor)
        .build()?
        .fetch()
        .await
        .unwrap_err();
    let oauth = oauth_error(&error);
    assert!(oauth.is_invalid_client(), "{error}");
    Ok(())
}

#[tokio::test]
async fn self_signed_tls_client_auth_matches_the_registered_certificate() -> TestResult {
    let pki = TestPki::new();
    let device = TestCertificate::self_signed("device-7");
    let auth = AuthServer::builder()
        .https(&pki)
        .self_signed_tls_client("device-7", &device)
        .start()
        .await?;

    let client = ClientAuth::self_signed_tls_client_auth("device-7")?;
    let source =
        ClientCredentials::builder(mtls_endpoint(&auth, &pki, &device).build()?, client.clone())
            .build()?;
    let token = source.fetch().await?;
    assert!(auth.is_valid(secrecy::ExposeSecret::expose_secret(token.secret())));
    let request = auth.last_request().expect("a token request");
    assert_eq!(request.param("client_id"), Some("device-7"));
    assert_eq!(request.param("client_secret"), None);

    // Another key with the same subject is another certificate.
    let other = TestCertificate::self_signed("device-7");
    let error = ClientCredentials::builder(mtls_endpoint(&auth, &pki, &other).build()?, client)
        .build()?
        .fetch()
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    assert_eq!(auth.tokens_issued(), 1);
    Ok(())
}

#[tokio::test]
async fn a_users_own_transport_may_carry_the_certificate() -> TestResult {
    let (pki, billing, auth) = billing_server(|builder| builder).await?;

    let endpoint = Endpoint::builder(auth.token_url())
        .http_client(HttpClient::from_service(pki.https_client(Some(&billing))))
        .build()?;
    let source =
        ClientCredentials::builder(endpoint, ClientAuth::tls_client_auth("billing")?).build()?;
    source.fetch().await?;
    assert_eq!(auth.tokens_issued(), 1);
    // Settings for the default client next to the user's own cannot be written: an
    // `HttpClient` is either one or the other.
    Ok(())
}

#[tokio::test]
async fn discovery_metadata_sends_mutual_tls_clients_to_the_mtls_aliases() -> TestResult {
    let (pki, billing, auth) =
        billing_server(|builder| builder.client("secret-client", "s3cret")).await?;
    // One client for the metadata and, handed on by the metadata, the tokens.
    let http = https_client(&pki, Some(&billing));
    let metadata = Discovery::new()
        .http_client(http)
        .fetch(&auth.url())
        .await?;
    assert_eq!(
        metadata.mtls_token_endpoint(),
        Some(format!("{}/mtls/token", auth.url()).as_str())
    );

    let endpoint = metadata.endpoint().build()?;
    let billing_client = ClientAuth::tls_client_auth("billing")?;
    let source = ClientCredentials::builder(endpoint.clone(), billing_client.clone()).build()?;
    assert_eq!(source.token_url().path(), "/mtls/token");
    assert_eq!(
        source.revocation_url().map(|url| url.path()),
        Some("/mtls/revoke")
    );
    let token = source.fetch().await?;
    source.revoke(&token).await?;
    assert_eq!(auth.mtls_alias_requests(), 2);
    assert_eq!(auth.tokens_revoked(), 1);

    // A revocation URL set by hand is kept.
    let own_endpoint = metadata
        .endpoint()
        .revocation_url("https://revoke.example.com/revoke")
        .build()?;
    let own = ClientCredentials::builder(own_endpoint, billing_client).build()?;
    assert_eq!(
        own.revocation_url().map(ToString::to_string).as_deref(),
        Some("https://revoke.example.com/revoke")
    );

    // A secret client on the same endpoint keeps the plain endpoints.
    let secret_client = metadata.client_secret_auth("secret-client", "s3cret")?;
    let secret_source = ClientCredentials::builder(endpoint, secret_client).build()?;
    assert_eq!(secret_source.token_url().path(), "/token");
    secret_source.fetch().await?;
    assert_eq!(auth.mtls_alias_requests(), 2);
    Ok(())
}

#[tokio::test]
async fn key_material_stays_out_of_debug_errors_and_logs() -> TestResult {
    let (pki, billing, auth) = billing_server(|builder| builder).await?;
    let reporting = pki.client_certificate("reporting");
    // A line from the middle of each private key's base64.
    let key_lines: Vec<String> = [&billing, &reporting]
        .iter()
        .map(|certificate| {
            certificate
                .private_key_pem()
                .lines()
                .nth(1)
                .expect("a PEM body")
                .to_owned()
        })
        .collect();

    let logs = capture_tracing();
    let builder = mtls_source(&auth, &pki, "billing", &billing);
    let builder_debug = format!("{builder:?}");
    let source = builder.build()?;
    let mut printed = vec![
        builder_debug,
        format!("{source:?}"),
        format!("{:?}", identity(&billing)),
    ];
    source.fetch().await?;
    let error = mtls_source(&auth, &pki, "billing", &reporting)
        .build()?
        .fetch()
        .await
        .unwrap_err();
    printed.push(format!("{error} {error:?}"));
    let bad_key = TlsClientIdentity::from_pem(
        billing.certificate_pem(),
        billing.private_key_pem().replace('A', "*"),
    )
    .unwrap_err();
    printed.push(format!("{bad_key} {bad_key:?}"));
    printed.push(logs.contents());

    assert!(printed[0].contains("[redacted]"), "{}", printed[0]);
    for text in &printed {
        for line in &key_lines {
            assert!(!text.contains(line.as_str()), "key material in: {text}");
        }
        assert!(!text.contains("PRIVATE KEY-----"), "key PEM in: {text}");
    }
    Ok(())
}
