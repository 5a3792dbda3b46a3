use proptest::prelude::*;

use std::borrow::Cow;

use super::*;

fn ev(event: Option<&str>, data: &str, id: Option<&str>, retry: Option<u64>) -> Event {
    Event {
        event: event.map(|e| Cow::Owned(e.to_owned())),
        data: data.to_owned(),
        id: id.map(str::to_owned),
        retry,
    }
}

fn decode_all(input: &[u8]) -> Vec<Event> {
    Decoder::new(1 << 20).feed(input).unwrap()
}

#[test]
fn table() {
    let cases: Vec<(&str, &[u8], Vec<Event>)> = vec![
        ("plain", b"data: a\n\n", vec![ev(None, "a", None, None)]),
        (
            "multi-line data joined with LF",
            b"data: a\ndata: b\n\n",
            vec![ev(None, "a\nb", None, None)],
        ),
        (
            "CRLF and CR line ends",
            b"data: a\r\ndata: b\rdata:c\r\r\n",
            vec![ev(None, "a\nb\nc", None, None)],
        ),
        (
            "only one leading space is removed",
            b"data:  a\ndata:b\n\n",
            vec![ev(None, " a\nb", None, None)],
        ),
        (
            "event type and id",
            b"event: message\nid: 42\ndata: {}\n\n",
            vec![ev(Some("message"), "{}", Some("42"), None)],
        ),
        (
            "comments are ignored",
            b": keep-alive\n\n:\ndata: x\n: mid\n\n",
            vec![ev(None, "x", None, None)],
        ),
        (
            "priming event: id with empty data",
            b"id: p1\ndata: \n\n",
            vec![ev(None, "", Some("p1"), None)],
        ),
        (
            "id alone is reported",
            b"id: p1\n\n",
            vec![ev(None, "", Some("p1"), None)],
        ),
        (
            "an event type without data is not dispatched",
            b"event: endpoint\n\ndata: y\n\n",
            vec![ev(None, "y", None, None)],
        ),
        ("blank lines alone dispatch nothing", b"\n\n\r\n", vec![]),
        (
            "ids with NUL are ignored",
            b"id: a\0b\ndata: x\n\n",
            vec![ev(None, "x", None, None)],
        ),
        (
            "retry digits only",
            b"retry: 1500\ndata: x\n\nretry: 1s\ndata: y\n\n",
            vec![ev(None, "x", None, Some(1500)), ev(None, "y", None, None)],
        ),
        (
            "BOM at stream start is skipped",
            b"\xEF\xBB\xBFdata: x\n\n",
            vec![ev(None, "x", None, None)],
        ),
        (
            "a field without colon has an empty value",
            b"data\ndata\n\n",
            vec![ev(None, "\n", None, None)],
        ),
        (
            "unknown fields are ignored",
            b"foo: bar\ndata: x\n\n",
            vec![ev(None, "x", None, None)],
        ),
        ("unterminated event is dropped", b"data: x\n", vec![]),
        (
            "invalid UTF-8 is replaced",
            b"data: \xFFx\n\n",
            vec![ev(None, "\u{FFFD}x", None, None)],
        ),
        (
            "later event type wins",
            b"event: a\nevent: b\ndata: x\n\n",
            vec![ev(Some("b"), "x", None, None)],
        ),
    ];
    for (name, input, want) in cases {
        assert_eq!(decode_all(input), want, "{name}");
    }
}

#[test]
fn state_tracks_last_id_and_retry() {
    let mut d = Decoder::new(1024);
    d.feed(b"id: 1\nretry: 300\ndata: a\n\n").unwrap();
    assert_eq!(d.last_event_id(), Some("1"));
    assert_eq!(d.retry(), Some(300));
    // The id persists across events that do not set one.
    let evs = d.feed(b"data: b\n\n").unwrap();
    assert_eq!(evs, vec![ev(None, "b", None, None)]);
    assert_eq!(d.last_event_id(), Some("1"));
    // An empty id resets it.
    d.feed(b"id\n\n").unwrap();
    assert_eq!(d.last_event_id(), None);
    assert_eq!(d.retry(), Some(300));
}

#[test]
fn bom_only_at_stream_start() {
    assert_eq!(
        decode_all(b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"),
        vec![ev(None, "x", None, None)]
    );
}

#[test]
fn an_empty_chunk_between_cr_and_lf_does_not_end_a_second_line() {
    // Found by `chunking_does_not_change_the_events`: the empty chunk used to forget the CR,
    // so the LF after it read as a blank line and dispatched the event early, without its id.
    let mut d = Decoder::new(1024);
    let mut events = d.feed(b"data: a\r\nid: 7\r").unwrap();
    events.extend(d.feed(b"").unwrap());
    events.extend(d.feed(b"\n").unwrap());
    assert!(events.is_empty(), "{events:?}");
    let events = d.feed(b"\r\n").unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "a");
    assert_eq!(events[0].id.as_deref(), Some("7"));
}

#[test]
fn crlf_split_across_chunks_is_one_line_end() {
    let mut d = Decoder::new(1024);
    assert!(d.feed(b"data: a\r").unwrap().is_empty());
    // If the LF were a second line end, this would dispatch an event with data "a".
    assert!(d.feed(b"\ndata: b\r").unwrap().is_empty());
    assert_eq!(
        d.feed(b"\n\r\n").unwrap(),
        vec![ev(None, "a\nb", None, None)]
    );
}

#[test]
fn oversized_events_fail_and_stay_failed() {
    let mut d = Decoder::new(16);
    assert_eq!(d.feed(b"data: 0123456789").unwrap(), vec![]);
    assert_eq!(d.feed(b"abcdef"), Err(SseError { limit: 16 }));
    assert_eq!(d.feed(b"\n\n"), Err(SseError { limit: 16 }));

    // Many short data lines add up.
    let mut d = Decoder::new(16);
    assert_eq!(
        d.feed(b"data: 1234\ndata: 1234\ndata: 1234\ndata: 1234\n"),
        Err(SseError { limit: 16 })
    );

    // Events below the limit keep flowing, however many there are.
    let mut d = Decoder::new(16);
    for _ in 0..100 {
        assert_eq!(d.feed(b"data: 0123456789\n\n").unwrap().len(), 1);
    }
}

#[test]
fn encoder_output_is_exact() {
    let mut out = Vec::new();
    encode_event(&mut out, Some("message"), Some("s:1"), "{\"x\":1}");
    encode_event(&mut out, None, Some("p"), "");
    encode_event(&mut out, None, None, "a\r\nb\rc\nd");
    encode_retry(&mut out, 2000);
    encode_retry(&mut out, 0);
    push_stream_event_id(&mut out, 0, 0);
    push_stream_event_id(&mut out, 7, u64::MAX);
    encode_comment(&mut out, "");
    encode_comment(&mut out, "keep\nalive");
    encode_event(&mut out, Some("bad\ntype"), Some("i\rd"), "x");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: message\nid: s:1\ndata: {\"x\":1}\n\n\
         id: p\ndata: \n\n\
         data: a\ndata: b\ndata: c\ndata: d\n\n\
         retry: 2000\n\n\
         retry: 0\n\n\
         id: 0-0\n\
         id: 7-18446744073709551615\n\
         :\n\n\
         : keep\n: alive\n\n\
         event: badtype\nid: id\ndata: x\n\n"
    );
}

#[test]
fn a_byte_order_mark_after_a_line_splits_anywhere_the_same() {
    // Counterexample seen in CI: a BOM that is not at the start of the stream is data.
    let input = b"data:\0\0\xEF\xBB\xBF\r\n\xEF\xBB\xBF";
    let whole = decode_chunked(input, &[]);
    for a in 0..=input.len() {
        for b in a..=input.len() {
            assert_eq!(decode_chunked(input, &[a, b]), whole, "cuts {a} {b}");
        }
    }
}

fn decode_chunked(input: &[u8], cuts: &[usize]) -> Result<Vec<Event>, SseError> {
    let mut d = Decoder::new(256);
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    for cut in cuts {
        out.extend(d.feed(&input[start..cut])?);
        start = cut;
    }
    out.extend(d.feed(&input[start..])?);
    Ok(out)
}

/// Inputs made of SSE-ish pieces so that the interesting paths are hit often.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"retry: ".to_vec()),
        Just(b":".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\0".to_vec()),
        "[a-z0-9 ]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..8),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn chunking_does_not_change_the_events(
        input in sse_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = decode_chunked(&input, &[]);
        let chunked = decode_chunked(&input, &cuts);
        prop_assert_eq!(whole, chunked);
    }

    #[test]
    fn byte_at_a_time_matches_whole(input in sse_bytes()) {
        let mut d = Decoder::new(1 << 16);
        let mut out = Vec::new();
        for b in &input {
            out.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        prop_assert_eq!(out, Decoder::new(1 << 16).feed(&input).unwrap());
    }

    #[test]
    fn encode_then_decode_roundtrips(
        events in proptest::collection::vec(
            (
                proptest::option::of("[^\r\n\0]{1,10}"),
                proptest::option::of("[^\r\n\0]{0,10}"),
                "[^\r]{0,40}",
            ),
            0..6,
        ),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut wire = Vec::new();
        for (event, id, data) in &events {
            encode_event(&mut wire, event.as_deref(), id.as_deref(), data);
        }
        let mut d = Decoder::new(1 << 16);
        let mut got = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts {
            got.extend(d.feed(&wire[start..cut]).unwrap());
            start = cut;
        }
        got.extend(d.feed(&wire[start..]).unwrap());
        let want: Vec<Event> = events
            .iter()
            .map(|(event, id, data)| Event {
                event: event.clone().map(Cow::Owned),
                data: data.clone(),
                id: id.clone(),
                retry: None,
            })
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 0usize..64,
    ) {
        let mut d = Decoder::new(limit);
        for chunk in input.chunks(7) {
            if d.feed(chunk).is_err() {
                break;
            }
        }
    }
}
