//! Helpers for the discovery's unit tests: a fake server of well-known documents.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;

pub(super) use super::fetch::OAUTH_WELL_KNOWN;
use crate::server_url::MAX_URL_CHARS;
use crate::{Discovery, HttpClient};

/// A fake server answering each path from `documents`, 404 for the rest; records paths.
pub(super) fn fake(
    documents: Vec<(&'static str, u16, String)>,
) -> (Discovery, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let path = request.uri().path().to_owned();
        log.lock().unwrap().push(path.clone());
        let (status, body) = documents
            .iter()
            .find(|(document_path, _, _)| *document_path == path)
            .map_or((404, String::new()), |(_, status, body)| {
                (*status, body.clone())
            });
        async move {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    (
        Discovery::new().http_client(HttpClient::from_service(service)),
        seen,
    )
}

pub(super) fn document(issuer: &str, extra: &str) -> String {
    format!(r#"{{"issuer":"{issuer}","token_endpoint":"{issuer}/token"{extra}}}"#)
}

/// A message is one line and at most a few URL lengths long, whatever the server sent.
pub(super) fn assert_one_bounded_line(message: &str) {
    assert!(!message.contains(['\n', '\r']), "{message}");
    assert!(message.chars().all(|c| !c.is_control()), "{message}");
    assert!(message.len() < 4 * MAX_URL_CHARS, "{} bytes", message.len());
}
