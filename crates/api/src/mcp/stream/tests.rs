use mcp_hub_protocol::Message;

use super::*;

fn stream(kind: StreamKind) -> (Arc<EventStream>, CancellationToken) {
    let fail = CancellationToken::new();
    (
        EventStream::new(7, kind, Arc::from("s"), fail.clone()),
        fail,
    )
}

fn progress(i: u64) -> Message {
    Message::notification(
        methods::PROGRESS,
        Some(&serde_json::json!({"progressToken": "p", "progress": i})),
    )
}

fn response(i: i64) -> Message {
    Message::response(i.into(), mcp_hub_protocol::empty_object())
}

/// Drains everything not yet delivered, as the live reader would; returns the events' data.
fn drain(s: &EventStream) -> Vec<String> {
    let mut next = lock(&s.state).delivered;
    let mut out = Vec::new();
    loop {
        let (bytes, _) = s.take_from(&mut next);
        if bytes.is_empty() {
            return out;
        }
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        out.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        );
    }
}

#[test]
fn events_carry_stream_ids_and_replay_after_a_cursor() {
    let (s, _) = stream(StreamKind::Post);
    s.prime();
    s.expect_responses(1);
    s.push(&Message::notification("notifications/progress", None));
    s.respond(Some(&response(1)));
    let mut from_start = 0;
    let (all, _) = s.take_from(&mut from_start);
    assert!(
        all.starts_with(b"retry: 1000\nid: 7-0\ndata: \n\nevent: message\nid: 7-1\n"),
        "{all:?}"
    );
    let mut next = 2;
    let (bytes, done) = s.take_from(&mut next);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("event: message\nid: 7-2\n"), "{text}");
    assert!(!text.contains("7-1\n"));
    assert!(done);
    assert_eq!(next, 3);
}

#[test]
fn responses_are_never_dropped_however_far_behind_the_reader_is() {
    let (s, fail) = stream(StreamKind::Post);
    s.expect_responses(20_000);
    for i in 0..20_000 {
        s.respond(Some(&response(i)));
    }
    assert_eq!(drain(&s).len(), 20_000);
    assert!(!fail.is_cancelled());
}

#[test]
fn only_progress_and_logs_are_shed_and_they_are_counted() {
    let (s, _) = stream(StreamKind::Get);
    for i in 0..(PENDING_EVENTS as u64 + 100) {
        s.push(&progress(i));
    }
    s.push(&response(1));
    assert_eq!(lock(&s.state).shed_total, 100);
    let data = drain(&s);
    assert_eq!(data.len(), PENDING_EVENTS + 1);
    assert!(
        data.last().unwrap().contains("\"result\""),
        "the answer is kept"
    );
    // Once the reader caught up there is room again.
    s.push(&progress(0));
    assert_eq!(drain(&s).len(), 1);
}

#[test]
fn a_pending_change_notification_is_not_queued_twice() {
    let (s, _) = stream(StreamKind::Get);
    let changed = Message::notification(methods::TOOLS_LIST_CHANGED, None);
    s.push(&changed);
    s.push(&changed);
    s.push(&Message::notification(methods::PROMPTS_LIST_CHANGED, None));
    assert_eq!(drain(&s).len(), 2);
    s.push(&changed);
    assert_eq!(drain(&s).len(), 1, "delivered ones do not count");
}

#[test]
fn a_client_that_never_reads_ends_its_session_instead_of_growing_forever() {
    let (s, fail) = stream(StreamKind::Legacy);
    for i in 0..=HARD_PENDING_EVENTS as i64 {
        s.push(&response(i));
    }
    assert!(fail.is_cancelled());
}

#[test]
fn replay_history_is_bounded() {
    let (s, _) = stream(StreamKind::Get);
    for i in 0..2_000 {
        s.push(&response(i));
    }
    drain(&s);
    let st = lock(&s.state);
    assert!(st.events.len() <= REPLAY_EVENTS);
    assert_eq!((st.pending_events, st.pending_bytes), (0, 0));
}

#[test]
fn large_backlogs_leave_in_bounded_frames() {
    let (s, _) = stream(StreamKind::Get);
    for i in 0..10_000 {
        s.push(&response(i));
    }
    let mut next = 0;
    let (bytes, _) = s.take_from(&mut next);
    assert!(bytes.len() <= FRAME_BYTES);
    assert!(next < 10_000);
}

#[tokio::test]
async fn producers_wait_for_room_and_calls_take_turns() {
    let (s, _) = stream(StreamKind::Get);
    let reader = s.attach().unwrap();
    for i in 0..PENDING_EVENTS as i64 {
        s.push(&response(i));
    }
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move { s.wait_room().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "no room while the reader is behind");
    drain(&s);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("room after the reader caught up")
        .unwrap();

    let never = CancellationToken::new();
    let mut permits = Vec::new();
    for _ in 0..STREAM_CALLS {
        permits.push(s.admit(&never).await.expect("a turn"));
    }
    let cancel = CancellationToken::new();
    let next = {
        let (s, cancel) = (s.clone(), cancel.clone());
        tokio::spawn(async move { s.admit(&cancel).await.is_some() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!next.is_finished(), "the next call waits its turn");
    permits.pop();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), next)
            .await
            .unwrap()
            .unwrap()
    );
    cancel.cancel();
    assert!(s.admit(&cancel).await.is_none());
    drop(permits);

    // A reader that went away holds nobody back: its calls run and their answers wait here.
    for i in 0..PENDING_EVENTS as i64 {
        s.push(&response(i));
    }
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move { s.wait_room().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    drop(reader);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("no wait once the reader is gone")
        .unwrap();
}

#[test]
fn a_stream_has_one_reader() {
    let (s, _) = stream(StreamKind::Get);
    let g = s.attach().unwrap();
    assert!(s.attach().is_none());
    drop(g);
    assert!(s.attach().is_some());
}
