//! `/api/events` recorded in the background, for tests that act and then look at what the hub
//! announced (and in which order).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Event, EventStream};

impl Event {
    /// The data as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// Whether this is a `subscription_event` of this type.
    pub fn is_subscription(&self, kind: &str) -> bool {
        self.event == "subscription_event" && self.json()["type"] == kind
    }
}

/// Every event of one `/api/events` connection, read by a thread into a shared list.
#[derive(Debug)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Event>>>,
    done: Arc<AtomicBool>,
}

impl EventLog {
    /// Connects and starts recording. The first event (`hub_state`) is awaited, so everything
    /// the hub does afterwards is recorded.
    pub fn open(port: u16) -> EventLog {
        let mut stream = EventStream::open(port, "/api/events", &[]);
        let first = stream.next_event().expect("a first event on /api/events");
        let events = Arc::new(Mutex::new(vec![first]));
        let done = Arc::new(AtomicBool::new(false));
        let (ev, d) = (events.clone(), done.clone());
        std::thread::spawn(move || {
            // Ends when the hub closes the stream, 20 s pass without an event (heartbeats come
            // every 10 s), or the log is dropped and another event arrives.
            while !d.load(Ordering::Relaxed) {
                match stream.next_event() {
                    Some(e) => ev.lock().unwrap_or_else(|p| p.into_inner()).push(e),
                    None => return,
                }
            }
        });
        EventLog { events, done }
    }

    /// The events so far.
    pub fn all(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many events so far (an index for [`EventLog::wait_from`]).
    pub fn len(&self) -> usize {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits (bounded) for an event at index `from` or later that satisfies `f`; returns its
    /// index and the event.
    pub fn wait_from(
        &self,
        from: usize,
        timeout: Duration,
        mut f: impl FnMut(&Event) -> bool,
    ) -> Option<(usize, Event)> {
        let start = Instant::now();
        loop {
            {
                let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((i, e)) = events.iter().enumerate().skip(from).find(|(_, e)| f(e)) {
                    return Some((i, e.clone()));
                }
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}
