//! The copy of a request's head that [`RetryOn401`](super::RetryOn401) keeps for a replay.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Request, Uri, Version};

/// Method, URI, version, headers and extensions of a request, kept to send it again.
///
/// Most requests are never replayed, so the copy is made to be cheap and the work of a
/// `HeaderMap` is left to the replay: the headers are kept as their (name, value) pairs in
/// one exact-size allocation, where a cloned `HeaderMap` costs two (its index table and its
/// entries) and copies its hash table too.
pub(super) struct RequestHead {
    method: Method,
    uri: Uri,
    version: Version,
    /// Every value of every header, in the map's order: a name's values stay in the order
    /// they were added, which is what a replay must keep (RFC 9110, section 5.3). A `Vec`,
    /// not a boxed slice: the conversion cost 15 instructions per request, for 8 bytes.
    headers: Vec<(HeaderName, HeaderValue)>,
    extensions: Extensions,
}

impl RequestHead {
    /// A copy of the head of the request `parts` belong to, or `None` for a request with
    /// the caller's own `Authorization`, which is never replayed.
    // Inlined into `RetryOn401::call`, where it saves about 45 instructions per request.
    #[inline]
    pub(super) fn copy_of(parts: &Parts) -> Option<Self> {
        // `len` counts values, not names, so repeated headers fit without a reallocation.
        // A loop, not `extend`: the map's iterator does not know its length, and `extend`
        // stayed a call of its own (about 60 instructions more per request in the
        // `hot_path` bench). The caller's own header is found on the way, where a scan of
        // its own before the copy cost another 22.
        let mut headers = Vec::with_capacity(parts.headers.len());
        for (name, value) in &parts.headers {
            if name == AUTHORIZATION {
                return None;
            }
            headers.push((name.clone(), value.clone()));
        }
        Some(RequestHead {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers,
            extensions: parts.extensions.clone(),
        })
    }

    /// The request this head was copied from, with `body`.
    pub(super) fn into_request<B>(self, body: B) -> Request<B> {
        // Room for every value as a name of its own; past a map's limit on names (many
        // values of a few names can get there) it starts empty and grows instead.
        let mut headers = HeaderMap::try_with_capacity(self.headers.len()).unwrap_or_default();
        for (name, value) in self.headers {
            // Appending in the order they were read gives back the map that was copied:
            // the same names in the same order, each with its values in order.
            headers.append(name, value);
        }
        let mut request = Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = headers;
        *request.extensions_mut() = self.extensions;
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Marker(u32);

    #[test]
    fn the_request_comes_back_as_it_was_copied() {
        let mut request = Request::builder()
            .method(Method::PUT)
            .uri("https://api.example.com/v1/items?page=2")
            .version(Version::HTTP_2)
            .header("x-a", "first")
            .header("accept", "application/json")
            .header("x-a", "second")
            .header("x-b", "only")
            .header("x-a", "third")
            .extension(Marker(7))
            .body(())
            .unwrap();
        let mut secret = HeaderValue::from_static("kept secret");
        secret.set_sensitive(true);
        request.headers_mut().insert("x-secret", secret);
        let (parts, ()) = request.into_parts();

        let replay = RequestHead::copy_of(&parts).unwrap().into_request("body");

        assert_eq!(replay.method(), Method::PUT);
        assert_eq!(replay.uri(), &parts.uri);
        assert_eq!(replay.version(), Version::HTTP_2);
        let pairs = |map: &HeaderMap| {
            map.iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(replay.headers()), pairs(&parts.headers));
        let values: Vec<_> = replay.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["first", "second", "third"]);
        assert!(replay.headers()["x-secret"].is_sensitive());
        assert_eq!(replay.extensions().get::<Marker>(), Some(&Marker(7)));
        assert_eq!(*replay.body(), "body");
    }

    #[test]
    fn more_values_than_a_map_has_room_for_names_come_back_whole() {
        let mut request = Request::new(());
        for n in 0..40_000u32 {
            request.headers_mut().append("x-a", HeaderValue::from(n));
        }
        let (parts, ()) = request.into_parts();
        let replay = RequestHead::copy_of(&parts).unwrap().into_request(());
        assert_eq!(replay.headers().len(), 40_000);
        assert!(replay
            .headers()
            .get_all("x-a")
            .iter()
            .eq(parts.headers.get_all("x-a")));
    }

    #[test]
    fn a_request_without_headers_keeps_none() {
        let (parts, ()) = Request::new(()).into_parts();
        let head = RequestHead::copy_of(&parts).unwrap();
        assert!(head.headers.is_empty());
        assert!(head.into_request(()).headers().is_empty());
    }

    #[test]
    fn a_request_with_the_callers_own_authorization_is_not_copied() {
        for position in 0..3 {
            let mut request = Request::new(());
            for n in 0..3 {
                let name = if n == position {
                    "authorization"
                } else {
                    "x-other"
                };
                request
                    .headers_mut()
                    .append(name, HeaderValue::from_static("value"));
            }
            let (parts, ()) = request.into_parts();
            assert!(
                RequestHead::copy_of(&parts).is_none(),
                "authorization at {position}"
            );
        }
    }
}
