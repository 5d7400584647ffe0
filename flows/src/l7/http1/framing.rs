//! Message body length (RFC 9112 §6): what the framing fields of a head say about where its
//! body ends, and which of them break the rules.
//!
//! The rules that depend on the request method or the response status (HEAD, 1xx, 204, 304,
//! CONNECT) are applied by the connection, which knows both messages.

use super::chunked::Chunked;
use crate::l7::exchange::HttpVersion;
use crate::record::BodyError;

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    /// This many bytes follow (Content-Length, or 0).
    Length(u64),
    /// The chunked coding frames it.
    Chunked(Chunked),
    /// The close ends it (a response without a length, RFC 9112 §6.3 rules 4 and 8).
    UntilClose,
    /// A request whose length cannot be determined (RFC 9112 §6.3 rules 4 and 5): nothing
    /// after its head can be read as a message until the server shows how it took it.
    Unframed,
}

impl Default for Body {
    fn default() -> Self {
        Body::Length(0)
    }
}

/// The framing fields of one head (Transfer-Encoding, Content-Length).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Framing {
    /// A Transfer-Encoding field was present.
    pub transfer_encoding: bool,
    /// Its final coding is chunked.
    pub chunked: bool,
    /// The Content-Length, when every value given is the same valid number.
    pub content_length: Option<u64>,
    /// A Content-Length field was present.
    pub has_content_length: bool,
    /// A Content-Length value was not a number, or values differed.
    pub bad_content_length: bool,
}

impl Framing {
    /// Takes one field into account (names are compared case-insensitively, RFC 9110 §5.1).
    #[cfg(test)]
    pub fn field(&mut self, name: &str, value: &[u8]) {
        match super::head::known_field(name) {
            super::head::Known::TransferEncoding => self.transfer_encoding(value),
            super::head::Known::ContentLength => self.content_length(value),
            _ => {}
        }
    }

    /// A `Transfer-Encoding` field's value.
    pub fn transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encoding = true;
        // Only the final coding matters: chunked must be last (RFC 9112 §6.3 rule 4).
        // Several fields form one list (RFC 9110 §5.3), and empty list elements are
        // ignored (RFC 9110 §5.6.1), so an empty field keeps the previous verdict.
        if let Some(last) = value
            .rsplit(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .find(|c| !c.is_empty())
        {
            self.chunked = super::head::token_eq(last, b"chunked");
        }
    }

    /// A `Content-Length` field's value.
    pub fn content_length(&mut self, value: &[u8]) {
        self.has_content_length = true;
        // A list of identical values is allowed (RFC 9110 §8.6); differing ones are not.
        for v in value.split(|b| *b == b',') {
            let v = v.trim_ascii();
            let n = (!v.is_empty() && v.len() <= 19 && v.iter().all(u8::is_ascii_digit))
                .then(|| v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')));
            match (n, self.content_length) {
                (None, _) => self.bad_content_length = true,
                (Some(n), Some(old)) if n != old => self.bad_content_length = true,
                (Some(n), _) => self.content_length = Some(n),
            }
        }
    }

    /// A request's body (RFC 9112 §6.3 rules 3-7) and what is wrong with its framing.
    pub fn request_body(&self, version: HttpVersion) -> (Body, Option<BodyError>) {
        if self.transfer_encoding && version != HttpVersion::Http11 {
            // §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
            return (Body::Unframed, Some(BodyError::TransferEncodingInHttp10));
        }
        if self.transfer_encoding {
            if !self.chunked {
                // Rule 4: the server MUST answer 400 and close.
                return (Body::Unframed, Some(BodyError::TransferEncodingNotChunked));
            }
            // Rule 3: Transfer-Encoding overrides Content-Length; the pair is marked (§6.1:
            // a smuggling attempt, after which the server closes).
            let mark = self
                .has_content_length
                .then_some(BodyError::TransferEncodingWithContentLength);
            return (Body::Chunked(Chunked::start()), mark);
        }
        if self.bad_content_length {
            // Rule 5: an unrecoverable error; the server answers 400 and closes.
            return (Body::Unframed, Some(BodyError::InvalidContentLength));
        }
        // Rules 6 and 7: Content-Length, else no body.
        (Body::Length(self.content_length.unwrap_or(0)), None)
    }

    /// A response's body, before the method and status rules (RFC 9112 §6.3 rules 3-8).
    pub fn response_body(&self, version: HttpVersion) -> (Body, Option<BodyError>) {
        if self.transfer_encoding && version != HttpVersion::Http11 {
            // §6.1: faulty framing; only the close can end it.
            return (Body::UntilClose, Some(BodyError::TransferEncodingInHttp10));
        }
        if self.transfer_encoding {
            if !self.chunked {
                // Rule 4: a response whose final coding is not chunked runs until the close.
                return (Body::UntilClose, None);
            }
            let mark = self
                .has_content_length
                .then_some(BodyError::TransferEncodingWithContentLength);
            return (Body::Chunked(Chunked::start()), mark);
        }
        if self.bad_content_length {
            // Rule 5: the user agent MUST close and discard the response; it ends at the close.
            return (Body::UntilClose, Some(BodyError::InvalidContentLength));
        }
        match self.content_length {
            Some(n) => (Body::Length(n), None),
            None => (Body::UntilClose, None),
        }
    }
}

/// Whether a request with this framing error has a length nobody can know (RFC 9112 §6.3
/// rules 4, 5; §6.1 for HTTP/1.0), rather than one settled by a rule (TE over CL).
pub(super) fn leaves_request_unframed(e: BodyError) -> bool {
    matches!(
        e,
        BodyError::TransferEncodingNotChunked
            | BodyError::InvalidContentLength
            | BodyError::TransferEncodingInHttp10
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(fields: &[(&str, &str)]) -> Framing {
        let mut f = Framing::default();
        for (n, v) in fields {
            f.field(n, v.as_bytes());
        }
        f
    }

    fn req(fields: &[(&str, &str)]) -> (Body, Option<BodyError>) {
        framing(fields).request_body(HttpVersion::Http11)
    }

    fn resp(fields: &[(&str, &str)]) -> (Body, Option<BodyError>) {
        framing(fields).response_body(HttpVersion::Http11)
    }

    const CHUNKED: Body = Body::Chunked(Chunked::Size { size: 0, digits: 0 });

    #[test]
    fn chunked_must_be_the_final_coding() {
        // §6.3 rule 4.
        assert_eq!(
            req(&[("Transfer-Encoding", "gzip, chunked")]),
            (CHUNKED, None)
        );
        assert_eq!(req(&[("transfer-encoding", "CHUNKED")]), (CHUNKED, None));
        assert_eq!(
            req(&[
                ("Transfer-Encoding", "gzip"),
                ("Transfer-Encoding", "chunked")
            ]),
            (CHUNKED, None)
        );
        assert_eq!(req(&[("Transfer-Encoding", "chunked, ")]), (CHUNKED, None));
        assert_eq!(
            req(&[("Transfer-Encoding", "chunked, gzip")]),
            (Body::Unframed, Some(BodyError::TransferEncodingNotChunked))
        );
        assert_eq!(
            req(&[("Transfer-Encoding", "identity")]),
            (Body::Unframed, Some(BodyError::TransferEncodingNotChunked))
        );
        assert_eq!(
            resp(&[("Transfer-Encoding", "gzip")]),
            (Body::UntilClose, None)
        );
        assert_eq!(
            resp(&[("Transfer-Encoding", "gzip, chunked")]),
            (CHUNKED, None)
        );
    }

    #[test]
    fn transfer_encoding_beats_content_length_and_is_marked() {
        // §6.3 rule 3, §6.1.
        let both = [("Content-Length", "4"), ("Transfer-Encoding", "chunked")];
        let mark = Some(BodyError::TransferEncodingWithContentLength);
        assert_eq!(req(&both), (CHUNKED, mark));
        assert_eq!(resp(&both), (CHUNKED, mark));
    }

    #[test]
    fn content_length_lists_must_agree() {
        // §6.3 rule 5, RFC 9110 §8.6.
        assert_eq!(req(&[("Content-Length", "5, 5")]), (Body::Length(5), None));
        assert_eq!(
            req(&[("Content-Length", "5"), ("Content-Length", "5")]),
            (Body::Length(5), None)
        );
        let bad = (Body::Unframed, Some(BodyError::InvalidContentLength));
        assert_eq!(
            req(&[("Content-Length", "5"), ("Content-Length", "7")]),
            bad
        );
        assert_eq!(req(&[("Content-Length", "-1")]), bad);
        assert_eq!(req(&[("Content-Length", "99999999999999999999")]), bad);
        assert_eq!(
            resp(&[("Content-Length", "5, 6")]),
            (Body::UntilClose, Some(BodyError::InvalidContentLength))
        );
    }

    #[test]
    fn no_length_means_empty_request_and_close_delimited_response() {
        assert_eq!(req(&[]), (Body::Length(0), None));
        assert_eq!(resp(&[]), (Body::UntilClose, None));
    }

    #[test]
    fn transfer_encoding_in_http10_is_faulty() {
        // §6.1.
        let f = framing(&[("Transfer-Encoding", "chunked")]);
        let mark = Some(BodyError::TransferEncodingInHttp10);
        assert_eq!(f.request_body(HttpVersion::Http10), (Body::Unframed, mark));
        assert_eq!(
            f.response_body(HttpVersion::Http10),
            (Body::UntilClose, mark)
        );
    }
}
