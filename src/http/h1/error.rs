//! `H1Error`: every way the HTTP/1.1 codec can refuse bytes, with its status code and reason.
//!
//! Owns the vocabulary only. It does not build responses or decide on logging: the crate's single
//! error-to-response choke point does that, using `status()`, `reason()` and `must_close()`.

use core::fmt;

/// Why a request head, response head or chunked body was refused.
///
/// `Copy` and allocation-free so the rejection path never formats. Errors from
/// [`parse_response`](super::parse_response) describe a misbehaving upstream: the caller answers its
/// client with 502 whatever [`status`](Self::status) says.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum H1Error {
    // --- request line / status line ---
    /// Client sent the HTTP/2 prior-knowledge preface (`PRI * HTTP/2.0`).
    Http2Preface,
    /// Method is empty or contains a byte that is not a `tchar` (non-ASCII included).
    InvalidMethod,
    /// Request target is malformed: not origin-, absolute- or asterisk-form, non-ASCII,
    /// contains a fragment, or an absolute-form authority that is empty or has userinfo.
    InvalidTarget,
    /// `*` target used with a method other than OPTIONS.
    AsteriskNotOptions,
    /// CONNECT: Portcullis does not tunnel.
    ConnectNotSupported,
    /// `%2F` or `%5C` (an encoded `/` or `\`) in the request path.
    EncodedPathSeparator,
    /// A literal `\` in the request path.
    BackslashInPath,
    /// `%00` in the request path.
    EncodedNul,
    /// A dot-segment with path parameters (`..;x`, `.;x`): Tomcat and other servlet containers
    /// strip the parameters and resolve the dot-segment after the route was chosen.
    DotSegmentParameters,
    /// `%` in the request path not followed by two hex digits.
    InvalidPercentEncoding,
    /// Version token is not of the form `HTTP/d.d`.
    InvalidVersion,
    /// Well-formed version other than HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// Request line is malformed in some other way (e.g. missing or doubled spaces).
    MalformedRequestLine,
    /// Response status line is malformed.
    MalformedStatusLine,
    /// Response status code outside 100..=599.
    InvalidStatus,

    // --- head syntax ---
    /// A line in the head ends with a bare LF instead of CRLF.
    BareLf,
    /// A header line starts with SP or HTAB (obsolete line folding).
    ObsFold,
    /// Whitespace between a header name and its colon.
    SpaceBeforeColon,
    /// Header name empty or containing a non-`tchar` byte.
    InvalidHeaderName,
    /// Header value containing a control byte (other than HTAB) or a bare CR.
    InvalidHeaderValue,
    /// Header line without a colon.
    MalformedHeader,

    // --- limits ---
    /// Head longer than [`MAX_HEAD_BYTES`](super::MAX_HEAD_BYTES).
    HeadTooLarge,
    /// More than [`MAX_HEADERS`](super::MAX_HEADERS) header lines.
    TooManyHeaders,

    // --- Host ---
    /// HTTP/1.1 request without a Host header.
    MissingHost,
    /// A TLS handshake record where an HTTP/1 request line was expected.
    TlsOnPlainPort,
    /// More than one Host header.
    DuplicateHost,
    /// More than one Authorization header (RFC 9110 §11.6.2 allows one credential; with two,
    /// the one checked and the one a backend reads could differ).
    DuplicateAuthorization,
    /// Host header value is not `uri-host [ ":" port ]`.
    InvalidHost,

    // --- message framing (request smuggling) ---
    /// Both Content-Length and Transfer-Encoding present.
    ContentLengthWithTransferEncoding,
    /// Several Content-Length values that differ (`5, 6`, or two headers).
    ConflictingContentLength,
    /// Content-Length is empty or not all digits.
    InvalidContentLength,
    /// Content-Length does not fit in a u64.
    ContentLengthOverflow,
    /// Transfer-Encoding whose final coding is not `chunked`, or `chunked` applied twice.
    TransferEncodingNotChunked,
    /// Transfer-Encoding with codings before `chunked` (e.g. `gzip, chunked`): not implemented.
    UnsupportedTransferCoding,
    /// Transfer-Encoding in an HTTP/1.0 request.
    TransferEncodingInHttp10,

    // --- chunked body ---
    /// Chunk size missing or not hexadecimal.
    InvalidChunkSize,
    /// Chunk size longer than 16 hex digits.
    ChunkSizeOverflow,
    /// Chunk size line (size + extensions) longer than the extension limit.
    ChunkExtensionTooLong,
    /// Chunk extension containing a control byte.
    InvalidChunkExtension,
    /// Bare LF in chunked framing where CRLF is required.
    ChunkBareLf,
    /// Chunk data not followed by CRLF, or CR not followed by LF.
    ChunkMissingCrlf,
    /// Malformed trailer field line.
    InvalidTrailer,
    /// Trailer section larger than the trailer limit.
    TrailersTooLarge,
    /// Decoded body exceeds the configured maximum.
    BodyTooLarge,
    /// The body arrives slower than the minimum rate (`conn::BodyPace`).
    BodyTooSlow,
}

impl H1Error {
    /// HTTP status code to answer a client with when this error comes from a request.
    pub fn status(self) -> u16 {
        use H1Error::*;
        match self {
            Http2Preface | UnsupportedVersion => 505,
            HeadTooLarge | TooManyHeaders => 431,
            ConnectNotSupported | UnsupportedTransferCoding => 501,
            BodyTooLarge => 413,
            BodyTooSlow => 408,
            MalformedStatusLine | InvalidStatus => 502,
            InvalidMethod
            | InvalidTarget
            | AsteriskNotOptions
            | EncodedPathSeparator
            | BackslashInPath
            | EncodedNul
            | DotSegmentParameters
            | InvalidPercentEncoding
            | InvalidVersion
            | MalformedRequestLine
            | BareLf
            | ObsFold
            | SpaceBeforeColon
            | InvalidHeaderName
            | InvalidHeaderValue
            | MalformedHeader
            | MissingHost
            | DuplicateHost
            | TlsOnPlainPort
            | DuplicateAuthorization
            | InvalidHost
            | ContentLengthWithTransferEncoding
            | ConflictingContentLength
            | InvalidContentLength
            | ContentLengthOverflow
            | TransferEncodingNotChunked
            | TransferEncodingInHttp10
            | InvalidChunkSize
            | ChunkSizeOverflow
            | ChunkExtensionTooLong
            | InvalidChunkExtension
            | ChunkBareLf
            | ChunkMissingCrlf
            | InvalidTrailer
            | TrailersTooLarge => 400,
        }
    }

    /// Short, specific explanation, safe to put in a response body or a log field.
    pub fn reason(self) -> &'static str {
        use H1Error::*;
        match self {
            Http2Preface => "HTTP/2 is not supported; use HTTP/1.1",
            InvalidMethod => "invalid request method",
            InvalidTarget => "invalid request target",
            AsteriskNotOptions => "'*' request target is only allowed with OPTIONS",
            ConnectNotSupported => "CONNECT is not supported",
            EncodedPathSeparator => {
                "encoded '/' or '\\' (%2F, %5C) in the request path is not allowed"
            }
            BackslashInPath => "'\\' in the request path is not allowed",
            EncodedNul => "%00 in the request path is not allowed",
            DotSegmentParameters => {
                "a dot-segment with parameters ('..;' or '.;') in the request path is not allowed"
            }
            InvalidPercentEncoding => "invalid percent-encoding in the request path",
            InvalidVersion => "malformed HTTP version",
            UnsupportedVersion => "HTTP version not supported; use HTTP/1.1 or HTTP/1.0",
            MalformedRequestLine => "malformed request line",
            MalformedStatusLine => "malformed status line",
            InvalidStatus => "status code outside 100..=599",
            BareLf => "bare LF line terminator; CRLF required",
            ObsFold => "obsolete header line folding is not allowed",
            SpaceBeforeColon => "whitespace between header name and colon",
            InvalidHeaderName => "invalid character in header name",
            InvalidHeaderValue => "invalid character in header value",
            MalformedHeader => "malformed header line",
            HeadTooLarge => "request head too large",
            TooManyHeaders => "too many header fields",
            MissingHost => "missing Host header",
            DuplicateHost => "more than one Host header",
            TlsOnPlainPort => {
                "a TLS handshake on a plain-HTTP port: use http:// here, or an HTTPS listener"
            }
            DuplicateAuthorization => "more than one Authorization header",
            InvalidHost => "invalid Host header",
            ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding present"
            }
            ConflictingContentLength => "conflicting Content-Length values",
            InvalidContentLength => "invalid Content-Length",
            ContentLengthOverflow => "Content-Length too large",
            TransferEncodingNotChunked => "Transfer-Encoding must end with a single 'chunked'",
            UnsupportedTransferCoding => "only 'Transfer-Encoding: chunked' is supported",
            TransferEncodingInHttp10 => "Transfer-Encoding is not allowed in HTTP/1.0",
            InvalidChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size too large",
            ChunkExtensionTooLong => "chunk extension too long",
            InvalidChunkExtension => "invalid chunk extension",
            ChunkBareLf => "bare LF in chunked body; CRLF required",
            ChunkMissingCrlf => "chunk data not followed by CRLF",
            InvalidTrailer => "invalid trailer field",
            TrailersTooLarge => "trailer section too large",
            BodyTooLarge => "request body too large",
            BodyTooSlow => "the request body arrives too slowly",
        }
    }

    /// Whether the connection must be closed after answering.
    ///
    /// True for every variant today: an `Err` carries no message boundary, so after any of
    /// these the byte stream cannot be resynchronised, and for the framing variants
    /// (Content-Length/Transfer-Encoding) RFC 9112 §6.3 requires closing. The match is
    /// exhaustive so that a new variant has to decide.
    pub fn must_close(self) -> bool {
        use H1Error::*;
        match self {
            Http2Preface
            | InvalidMethod
            | InvalidTarget
            | AsteriskNotOptions
            | ConnectNotSupported
            | EncodedPathSeparator
            | BackslashInPath
            | EncodedNul
            | DotSegmentParameters
            | InvalidPercentEncoding
            | InvalidVersion
            | UnsupportedVersion
            | MalformedRequestLine
            | MalformedStatusLine
            | InvalidStatus
            | BareLf
            | ObsFold
            | SpaceBeforeColon
            | InvalidHeaderName
            | InvalidHeaderValue
            | MalformedHeader
            | HeadTooLarge
            | TooManyHeaders
            | MissingHost
            | DuplicateHost
            | TlsOnPlainPort
            | DuplicateAuthorization
            | InvalidHost
            | ContentLengthWithTransferEncoding
            | ConflictingContentLength
            | InvalidContentLength
            | ContentLengthOverflow
            | TransferEncodingNotChunked
            | UnsupportedTransferCoding
            | TransferEncodingInHttp10
            | InvalidChunkSize
            | ChunkSizeOverflow
            | ChunkExtensionTooLong
            | InvalidChunkExtension
            | ChunkBareLf
            | ChunkMissingCrlf
            | InvalidTrailer
            | TrailersTooLarge
            | BodyTooLarge
            | BodyTooSlow => true,
        }
    }
}

impl fmt::Display for H1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for H1Error {}
