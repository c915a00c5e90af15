use super::*;
use crate::http::h1::decode_all;

const BODY: &[u8] = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
3 ; a ; b=\"q\"\r\n123\r\n0\r\nX-Trailer: yes\r\nOther: 1\r\n\r\nNEXT";

fn expected() -> Vec<u8> {
    b"helloabcdefghijklmnopqrstuvwxyz123".to_vec()
}

#[test]
fn decodes_in_one_piece_and_stops_at_message_end() {
    let (body, end) = decode_all(BODY, u64::MAX, &[]);
    assert_eq!(body, expected());
    assert_eq!(end, Ok(Some(BODY.len() - 4)));
}

#[test]
fn decodes_one_byte_at_a_time() {
    let cuts: Vec<usize> = (1..BODY.len()).collect();
    assert_eq!(
        decode_all(BODY, u64::MAX, &cuts),
        (expected(), Ok(Some(BODY.len() - 4)))
    );
}

#[test]
fn every_split_point_gives_the_same_result() {
    let whole = decode_all(BODY, u64::MAX, &[]);
    for cut in 0..=BODY.len() {
        assert_eq!(decode_all(BODY, u64::MAX, &[cut]), whole, "split at {cut}");
    }
    for a in 0..BODY.len() {
        for b in a..BODY.len() {
            assert_eq!(
                decode_all(BODY, u64::MAX, &[a, b]),
                whole,
                "split at {a},{b}"
            );
        }
    }
}

#[test]
fn raw_decode_contract() {
    let mut d = ChunkedDecoder::new(100);
    let c = d.decode(b"3\r\nabc\r\n0\r\n\r\nrest").unwrap();
    assert_eq!((c.consumed, c.data, c.done), (6, &b"abc"[..], false));
    let c = d.decode(b"\r\n0\r\n\r\nrest").unwrap();
    assert_eq!((c.consumed, c.data, c.done), (7, &b""[..], true));
    assert!(d.is_done());
    assert_eq!(d.body_len(), 3);
    // After done, nothing more is consumed.
    assert_eq!(
        d.decode(b"rest").unwrap(),
        Chunk {
            consumed: 0,
            data: b"",
            done: true
        }
    );
}

#[test]
fn large_chunk_across_reads() {
    let mut d = ChunkedDecoder::new(u64::MAX);
    let c = d.decode(b"10000\r\n").unwrap();
    assert_eq!((c.consumed, c.data.len()), (7, 0));
    let data = vec![7u8; 0x10000];
    let c = d.decode(&data[..1000]).unwrap();
    assert_eq!((c.consumed, c.data.len()), (1000, 1000));
    let c = d.decode(&data[1000..]).unwrap();
    assert_eq!(c.data.len(), 0x10000 - 1000);
}

fn decode_err(input: &[u8]) -> H1Error {
    decode_all(input, 1000, &[]).1.unwrap_err()
}

#[test]
fn rejects_bad_sizes() {
    assert_eq!(decode_err(b"\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b";ext\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b"g\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b"-1\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b"0x5\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b"5 5\r\n"), H1Error::InvalidChunkSize);
    assert_eq!(decode_err(b"+5\r\n"), H1Error::InvalidChunkSize);
}

#[test]
fn rejects_more_than_16_hex_digits() {
    let mut d = ChunkedDecoder::new(u64::MAX);
    assert!(d.decode(b"ffffffffffffffff").is_ok());
    assert_eq!(d.decode(b"0"), Err(H1Error::ChunkSizeOverflow));
    assert_eq!(
        decode_err(b"00000000000000001\r\n"),
        H1Error::ChunkSizeOverflow
    );
}

#[test]
fn body_too_large_before_data_arrives() {
    let mut d = ChunkedDecoder::new(10);
    let c = d.decode(b"a\r\n0123456789\r\n").unwrap();
    assert_eq!(c.data.len(), 10);
    let e = d.decode(b"\r\n1\r\n").unwrap_err();
    assert_eq!((e, e.status()), (H1Error::BodyTooLarge, 413));
    // Sticky.
    assert_eq!(d.decode(b"x"), Err(H1Error::BodyTooLarge));
    assert_eq!(
        decode_all(b"ffffffffffffffff\r\n", u64::MAX - 1, &[]).1,
        Err(H1Error::BodyTooLarge)
    );
}

#[test]
fn extension_limits() {
    let mut line = b"1;".to_vec();
    line.resize(MAX_CHUNK_LINE, b'x');
    line.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
    assert_eq!(decode_all(&line, 100, &[]).0, b"a");
    let mut long = b"1;".to_vec();
    long.resize(MAX_CHUNK_LINE + 1, b'x');
    assert_eq!(decode_err(&long), H1Error::ChunkExtensionTooLong);
    assert_eq!(decode_err(b"1;a\x00b\r\n"), H1Error::InvalidChunkExtension);
}

#[test]
fn crlf_required() {
    assert_eq!(decode_err(b"5\nhello\r\n0\r\n\r\n"), H1Error::ChunkBareLf);
    assert_eq!(decode_err(b"5;e\nhello\r\n"), H1Error::ChunkBareLf);
    assert_eq!(decode_err(b"5\r\nhello\n0\r\n\r\n"), H1Error::ChunkBareLf);
    assert_eq!(decode_err(b"5\r\nhelloX\r\n"), H1Error::ChunkMissingCrlf);
    assert_eq!(decode_err(b"5\r\nhello\rX"), H1Error::ChunkMissingCrlf);
    assert_eq!(decode_err(b"5\rX"), H1Error::ChunkMissingCrlf);
    assert_eq!(decode_err(b"0\r\n\n"), H1Error::ChunkBareLf);
    assert_eq!(decode_err(b"0\r\n\rX"), H1Error::ChunkMissingCrlf);
    assert_eq!(decode_err(b"0\r\nA: b\n\r\n"), H1Error::ChunkBareLf);
}

#[test]
fn trailers_validated_and_bounded() {
    assert_eq!(
        decode_err(b"0\r\nBad Name: x\r\n\r\n"),
        H1Error::InvalidTrailer
    );
    assert_eq!(decode_err(b"0\r\nNoColon\r\n\r\n"), H1Error::InvalidTrailer);
    assert_eq!(
        decode_err(b"0\r\nA: b\r\n folded\r\n\r\n"),
        H1Error::InvalidTrailer
    );
    assert_eq!(decode_err(b"0\r\n: x\r\n\r\n"), H1Error::InvalidTrailer);
    assert_eq!(decode_err(b"0\r\nA: \x01\r\n\r\n"), H1Error::InvalidTrailer);
    let mut big = b"0\r\nX: ".to_vec();
    big.resize(MAX_TRAILER_BYTES + 10, b'v');
    assert_eq!(decode_err(&big), H1Error::TrailersTooLarge);
}

#[test]
fn incomplete_is_not_done() {
    assert_eq!(
        decode_all(b"5\r\nhel", 100, &[]),
        (b"hel".to_vec(), Ok(None))
    );
    assert_eq!(decode_all(b"0\r\n", 100, &[]), (vec![], Ok(None)));
}

#[test]
fn fuzz_entry_points_do_not_panic_on_samples() {
    let mut with_sel = vec![0u8];
    with_sel.extend_from_slice(BODY);
    for sel in [0u8, 1, 17, 128, 255] {
        with_sel[0] = sel;
        crate::http::h1::fuzz_chunked(&with_sel);
    }
    crate::http::h1::fuzz_request(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    crate::http::h1::fuzz_request(b"");
    crate::http::h1::fuzz_chunked(b"");
}
