//! Decoder tests: see the end-to-end ones in flows/tests/http2*.rs.
