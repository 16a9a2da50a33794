//! Mutual-TLS client authentication (RFC 8705) against the real `oidc-provider`, run by
//! `interop/oidc-provider/server.mjs` in its HTTPS mode with certificates made per test.
//!
//! They fail, saying what is missing and how to install it, when `node` or the server's npm
//! packages are missing.

use std::error::Error as _;

use http::Request;
use http_body_util::{BodyExt, Full};
use secrecy::ExposeSecret;
use serde_json::Value;
use tower_bearer::{BoxError, TokenSource};
use tower_bearer_oauth2::{
    ClientAuth, ClientCredentials, ClientTls, Endpoint, HttpClient, OAuthError, TlsClientIdentity,
};
use tower_bearer_testkit::{TestCertificate, TestPki};

use crate::oidc_provider::{OidcProvider, ServerTls, BASIC};

type TestResult = Result<(), BoxError>;

const PKI_CLIENT: &str = "interop-mtls";
const SELF_SIGNED_CLIENT: &str = "interop-mtls-self-signed";

/// The clients: one `tls_client_auth` client registered by the subject of `pki_client`,
/// one `self_signed_tls_client_auth` client registered with `self_signed`'s JWK.
fn clients(pki_client: &TestCertificate, self_signed: &TestCertificate) -> [Value; 2] {
    [
        serde_json::json!({
            "client_id": PKI_CLIENT,
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": pki_client.subject_dn(),
        }),
        serde_json::json!({
            "client_id": SELF_SIGNED_CLIENT,
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": { "keys": [self_signed.public_jwk()] },
        }),
    ]
}

/// A test PKI, a certificate for each client, and the server in HTTPS mode.
struct Setup {
    pki: TestPki,
    pki_client: TestCertificate,
    self_signed: TestCertificate,
    server: OidcProvider,
}

impl Setup {
    fn start(test: &str) -> Setup {
        let pki = TestPki::new();
        let pki_client = pki.client_certificate("interop mtls client");
        let self_signed = TestCertificate::self_signed("interop self-signed client");
        let server_tls = ServerTls {
            certificate_pem: pki.server_certificate().certificate_pem().to_owned(),
            private_key_pem: pki.server_certificate().private_key_pem().to_owned(),
            client_ca_pem: pki.ca_pem(),
        };
        let server =
            OidcProvider::start_https(test, &clients(&pki_client, &self_signed), &server_tls);
        Setup {
            pki,
            pki_client,
            self_signed,
            server,
        }
    }
}

/// The server's token endpoint, over a client that trusts `pki` and presents `certificate`.
fn endpoint(
    server: &OidcProvider,
    pki: &TestPki,
    certificate: &TestCertificate,
) -> Result<Endpoint, BoxError> {
    let tls = ClientTls::new()
        .identity(TlsClientIdentity::from_pem(
            certificate.certificate_pem(),
            certificate.private_key_pem(),
        )?)
        .root_certificates_pem(pki.ca_pem())?;
    Ok(Endpoint::builder(server.token_url())
        .http_client(HttpClient::with_tls(tls)?)
        .build()?)
}

/// Asks the server about `token` (RFC 7662) as the secret client [`BASIC`], over HTTPS
/// without a client certificate.
async fn introspect(pki: &TestPki, server: &OidcProvider, token: &str) -> Result<Value, BoxError> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let request = Request::post(server.introspection_url())
        .header("authorization", BASIC.basic_authorization())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from(body))?;
    let response = pki.https_client(None).request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

#[tokio::test]
async fn tls_client_auth_and_self_signed_tls_client_auth_get_tokens() -> TestResult {
    let Setup {
        pki,
        pki_client,
        self_signed,
        server,
    } = Setup::start("tls_client_auth_and_self_signed_tls_client_auth_get_tokens");

    let source = ClientCredentials::builder(
        endpoint(&server, &pki, &pki_client)?,
        ClientAuth::tls_client_auth(PKI_CLIENT)?,
    )
    .build()?;
    let token = source.fetch().await?;
    let introspection = introspect(&pki, &server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["client_id"], PKI_CLIENT, "{introspection}");

    let source = ClientCredentials::builder(
        endpoint(&server, &pki, &self_signed)?,
        ClientAuth::self_signed_tls_client_auth(SELF_SIGNED_CLIENT)?,
    )
    .build()?;
    let token = source.fetch().await?;
    let introspection = introspect(&pki, &server, token.secret().expose_secret()).await?;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(
        introspection["client_id"], SELF_SIGNED_CLIENT,
        "{introspection}"
    );
    Ok(())
}

#[tokio::test]
async fn certificates_the_server_does_not_accept_are_invalid_client() -> TestResult {
    let Setup { pki, server, .. } =
        Setup::start("certificates_the_server_does_not_accept_are_invalid_client");
    // A certificate from the trusted CA with another subject; a self-signed certificate
    // with the registered subject; another self-signed key.
    let cases = [
        (
            PKI_CLIENT,
            ClientAuth::tls_client_auth(PKI_CLIENT)?,
            pki.client_certificate("someone else"),
        ),
        (
            PKI_CLIENT,
            ClientAuth::tls_client_auth(PKI_CLIENT)?,
            TestCertificate::self_signed("interop mtls client"),
        ),
        (
            SELF_SIGNED_CLIENT,
            ClientAuth::self_signed_tls_client_auth(SELF_SIGNED_CLIENT)?,
            TestCertificate::self_signed("interop self-signed client"),
        ),
    ];
    for (client_id, client, certificate) in cases {
        let error = ClientCredentials::builder(endpoint(&server, &pki, &certificate)?, client)
            .build()?
            .fetch()
            .await
            .unwrap_err();
        let oauth = error
            .source()
            .and_then(|source| source.downcast_ref::<OAuthError>())
            .unwrap_or_else(|| panic!("no OAuthError source: {error:?}"));
        assert!(
            oauth.is_invalid_client(),
            "{client_id} {certificate:?}: {error}"
        );
        assert!(!error.is_transient(), "{error}");
    }
    Ok(())
}
