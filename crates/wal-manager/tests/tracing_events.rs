//! Every switch and failback is logged with the reason, the directories and
//! the new segment; a new segment's readiness names the records replayed
//! into it. A test subscriber, installed for the whole process (segments are
//! created on their own threads), captures the events.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use wal_testkit::datadriven::Command;
use wal_testkit::failover::Harness;

#[derive(Clone, Debug)]
struct Captured {
    level: Level,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Capture {
    events: Mutex<Vec<Captured>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

struct CaptureSubscriber(Arc<Capture>);

impl Subscriber for CaptureSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.events.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn cmd(line: &str) -> Command {
    let mut words = line.split_whitespace();
    Command {
        name: words.next().unwrap().to_owned(),
        args: words
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (w.to_owned(), None),
            })
            .collect(),
        line: 0,
        input: Vec::new(),
    }
}

#[test]
fn switches_failbacks_and_replays_are_logged() {
    let capture = Arc::new(Capture::default());
    tracing::subscriber::set_global_default(CaptureSubscriber(Arc::clone(&capture))).unwrap();

    let mut h = Harness::new();
    for line in [
        "init",
        "create log=1",
        "write n=2 sync",
        "stall primary ops=sync",
        "write n=3 sync async",
        "wait-blocked n=1",
        "advance 75ms",
        "wait",
        "unstall primary",
        "advance 300ms",
        "quiesce",
    ] {
        h.run(&cmd(line));
    }
    let events = capture.events.lock().unwrap().clone();
    let find = |message: &str| {
        events
            .iter()
            .find(|e| e.fields.get("message").is_some_and(|m| m == message))
            .unwrap_or_else(|| panic!("no {message:?} event in {events:#?}"))
            .clone()
    };
    let switch = find("wal directory switch");
    assert_eq!(switch.level, Level::WARN);
    assert_eq!(switch.fields["reason"], "latency");
    assert_eq!(switch.fields["from"], "/wal/primary");
    assert_eq!(switch.fields["to"], "/wal/secondary");
    assert!(
        switch.fields["segment"].ends_with("000001-001.log"),
        "{switch:?}"
    );
    let latency: f64 = switch.fields["latency_ms"].parse().unwrap();
    assert!(latency > 50.0, "the latency that triggered it: {latency}");

    let replayed = events
        .iter()
        .find(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.starts_with("log segment ready"))
                && e.fields
                    .get("segment")
                    .is_some_and(|s| s.ends_with("000001-001.log"))
        })
        .unwrap_or_else(|| panic!("no replay event in {events:#?}"));
    assert_eq!(replayed.fields["replayed"], "3");
    assert_eq!(replayed.fields["first_lsn"], "Some(3)");
    assert_eq!(replayed.fields["last_lsn"], "Some(5)");

    let failback = find("wal failback to the primary");
    assert_eq!(failback.level, Level::INFO);
    assert_eq!(failback.fields["to"], "/wal/primary");
}
