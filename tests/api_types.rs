//! The value types of API clients are cached: `skip_serializing_if`, a `serde_json::Value`
//! field, internally tagged, untagged and flattened types, and raw JSON. postcard cannot
//! hold them; their functions store MessagePack instead, recorded in each entry's header,
//! and hit within the process, from memory and from the file, and in another process.

mod common;
#[path = "remote_servers/harness.rs"]
mod harness;
mod remote_servers;

use common::{child_role, entry_files, function_dir, init, logged, marked_lines, run_child};
use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChatResponse {
    id: String,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ToolCall {
    name: String,
    arguments: Value,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type")]
pub enum Event {
    Text { text: String },
    Done,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WithExtra {
    id: u32,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum Either {
    Number(u64),
    Text(String),
}

static CHAT_RUNS: AtomicUsize = AtomicUsize::new(0);
static TOOL_RUNS: AtomicUsize = AtomicUsize::new(0);
static EVENT_RUNS: AtomicUsize = AtomicUsize::new(0);
static VALUE_RUNS: AtomicUsize = AtomicUsize::new(0);
static EXTRA_RUNS: AtomicUsize = AtomicUsize::new(0);
static EITHER_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn chat(prompt: &str) -> ChatResponse {
    CHAT_RUNS.fetch_add(1, Ordering::SeqCst);
    ChatResponse {
        id: format!("chatcmpl-{}", prompt.len()),
        content: format!("You said: {prompt}"),
        usage: None,
    }
}

#[file_cache]
fn tool_call(city: &str) -> ToolCall {
    TOOL_RUNS.fetch_add(1, Ordering::SeqCst);
    ToolCall {
        name: "get_weather".into(),
        arguments: json!({"location": city, "unit": "celsius", "days": 3}),
    }
}

#[file_cache]
fn event(n: u32) -> Event {
    EVENT_RUNS.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        Event::Done
    } else {
        Event::Text {
            text: "x".repeat(n as usize),
        }
    }
}

#[file_cache]
fn raw_json(n: u32) -> Value {
    VALUE_RUNS.fetch_add(1, Ordering::SeqCst);
    json!({"n": n, "items": [1, 2.5, null, true, "s"], "nested": {"deep": [{}]}})
}

#[file_cache]
fn with_extra(id: u32) -> WithExtra {
    EXTRA_RUNS.fetch_add(1, Ordering::SeqCst);
    WithExtra {
        id,
        extra: BTreeMap::from([
            ("model".to_owned(), json!("gpt")),
            ("n".to_owned(), json!(2)),
        ]),
    }
}

#[file_cache]
fn either(n: u64) -> Either {
    EITHER_RUNS.fetch_add(1, Ordering::SeqCst);
    if n.is_multiple_of(2) {
        Either::Number(n)
    } else {
        Either::Text(n.to_string())
    }
}

/// The tests; one needs `redis-server`, and is reported as ignored when it is not on the
/// PATH (see `tests/remote_servers/harness.rs`).
fn main() -> std::process::ExitCode {
    harness::run(harness::tests![
        api_types_hit_on_the_second_call,
        api_types_hit_in_a_second_process,
        entries_record_their_codec,
        the_codec_option_chooses_it_up_front,
        messagepack_entries_hit_from_memory_and_answer_is_cached,
        api_types_come_back_from_the_remote_tier: Redis,
        a_type_whose_layout_cannot_be_traced_is_checked_by_its_name,
        callers_waiting_for_a_messagepack_value_decode_it,
    ])
}

/// Calls each function once; prints what it returned and how often each body ran.
fn call_all() {
    println!("CHAT {:?}", chat("hello"));
    println!("TOOL {:?}", tool_call("Paris"));
    println!("EVENT {:?} {:?}", event(3), event(0));
    println!("VALUE {}", raw_json(1));
    println!("EXTRA {:?}", with_extra(4));
    println!("EITHER {:?} {:?}", either(2), either(3));
    println!(
        "RUNS {} {} {} {} {} {}",
        CHAT_RUNS.load(Ordering::SeqCst),
        TOOL_RUNS.load(Ordering::SeqCst),
        EVENT_RUNS.load(Ordering::SeqCst),
        VALUE_RUNS.load(Ordering::SeqCst),
        EXTRA_RUNS.load(Ordering::SeqCst),
        EITHER_RUNS.load(Ordering::SeqCst),
    );
}

/// The codec id in the header of every entry of `name` (see the entry format).
fn codecs_of(name: &str) -> Vec<u8> {
    let dir = function_dir(init(), "api_types", name);
    entry_files(&dir)
        .iter()
        .map(|file| std::fs::read(file).unwrap()[10])
        .collect()
}

fn api_types_hit_on_the_second_call() {
    init();
    let first = chat("hi");
    assert_eq!(first.usage, None);
    assert_eq!(chat("hi"), first);
    assert_eq!(CHAT_RUNS.load(Ordering::SeqCst), 1);

    let first = tool_call("Oslo");
    assert_eq!(tool_call("Oslo"), first);
    assert_eq!(first.arguments["location"], "Oslo");
    assert_eq!(TOOL_RUNS.load(Ordering::SeqCst), 1);

    assert_eq!(event(2), Event::Text { text: "xx".into() });
    assert_eq!(event(2), Event::Text { text: "xx".into() });
    assert_eq!(event(0), Event::Done);
    assert_eq!(event(0), Event::Done);
    assert_eq!(EVENT_RUNS.load(Ordering::SeqCst), 2);

    let first = raw_json(7);
    assert_eq!(raw_json(7), first);
    assert_eq!(VALUE_RUNS.load(Ordering::SeqCst), 1);

    let first = with_extra(1);
    assert_eq!(with_extra(1), first);
    assert_eq!(EXTRA_RUNS.load(Ordering::SeqCst), 1);

    assert_eq!(either(10), Either::Number(10));
    assert_eq!(either(10), Either::Number(10));
    assert_eq!(either(11), Either::Text("11".into()));
    assert_eq!(either(11), Either::Text("11".into()));
    assert_eq!(EITHER_RUNS.load(Ordering::SeqCst), 2);

    let stats = file_cache::stats();
    for name in ["chat", "tool_call", "raw_json", "with_extra"] {
        let found = stats
            .iter()
            .find(|s| s.function == format!("api_types::{name}"))
            .unwrap();
        assert_eq!((found.hits, found.misses), (1, 1), "{found:?}");
    }
    assert!(logged(log::Level::Warn, "api_types::").is_empty());
}

fn api_types_hit_in_a_second_process() {
    let root = init();
    if child_role().is_some() {
        call_all();
        return;
    }
    let dir = root.join("second_process");
    let dir = dir.to_str().unwrap();
    let test = "api_types_hit_in_a_second_process";
    let first = run_child(test, "first", &[("FILE_CACHE_DIR", dir)]);
    let second = run_child(test, "second", &[("FILE_CACHE_DIR", dir)]);
    assert_eq!(marked_lines(&first, "RUNS "), ["1 1 2 1 1 2"]);
    assert_eq!(
        marked_lines(&second, "RUNS "),
        ["0 0 0 0 0 0"],
        "the second process hits every one"
    );
    for marker in ["CHAT ", "TOOL ", "EVENT ", "VALUE ", "EXTRA ", "EITHER "] {
        assert_eq!(
            marked_lines(&first, marker),
            marked_lines(&second, marker),
            "{marker}"
        );
    }
}

/// With `usage`, postcard holds the response; without, the function switches for good.
#[file_cache]
fn reply(with_usage: bool) -> ChatResponse {
    ChatResponse {
        id: "r".into(),
        content: "c".into(),
        usage: with_usage.then_some(Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
        }),
    }
}

fn entries_record_their_codec() {
    init();
    reply(true);
    assert_eq!(codecs_of("reply"), [1], "postcard while it round-trips");
    reply(false);
    reply(true); // the site now stores MessagePack; the postcard entry still hits
    let mut codecs = codecs_of("reply");
    codecs.sort();
    assert_eq!(codecs, [1, 2]);
    let stats = file_cache::stats();
    let found = stats
        .iter()
        .find(|s| s.function == "api_types::reply")
        .unwrap();
    assert_eq!((found.hits, found.misses), (1, 2), "{found:?}");
}

static CHOSEN_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Chosen up front: the first value is stored as MessagePack without a postcard attempt.
#[file_cache(codec = "msgpack")]
fn chosen(n: u64) -> Vec<u64> {
    CHOSEN_RUNS.fetch_add(1, Ordering::SeqCst);
    (0..n).collect()
}

fn the_codec_option_chooses_it_up_front() {
    init();
    assert_eq!(chosen(3), [0, 1, 2]);
    assert_eq!(chosen(3), [0, 1, 2]);
    assert_eq!(chosen(20_000).len(), 20_000);
    assert_eq!(chosen(20_000).len(), 20_000);
    assert_eq!(CHOSEN_RUNS.load(Ordering::SeqCst), 2);
    assert_eq!(codecs_of("chosen"), [2, 2]);
    assert!(logged(log::Level::Debug, "api_types::chosen: values of type").is_empty());
}

static SUMMARY_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn summary(n: u32) -> Event {
    SUMMARY_RUNS.fetch_add(1, Ordering::SeqCst);
    Event::Text {
        text: n.to_string(),
    }
}

fn messagepack_entries_hit_from_memory_and_answer_is_cached() {
    init();
    assert!(!file_cache::is_cached(|| summary(5)));
    summary(5);
    assert!(file_cache::is_cached(|| summary(5)));
    // The file gone, the memory tier still holds the MessagePack payload.
    let files = entry_files(&function_dir(init(), "api_types", "summary"));
    assert_eq!(codecs_of("summary"), [2]);
    for file in files {
        std::fs::remove_file(file).unwrap();
    }
    if std::env::var("FILE_CACHE_MEMORY").as_deref() != Ok("0") {
        assert_eq!(summary(5), Event::Text { text: "5".into() });
        assert!(file_cache::is_cached(|| summary(5)));
        assert_eq!(SUMMARY_RUNS.load(Ordering::SeqCst), 1);
    }
}

fn api_types_come_back_from_the_remote_tier() {
    let root = init();
    if child_role().is_some() {
        call_all();
        let flushed = file_cache::remote::flush(Duration::from_secs(30));
        println!("FLUSHED {flushed}");
        return;
    }
    let server = remote_servers::Server::start(remote_servers::Kind::Redis);
    let machine = |name: &str| {
        let mut envs = server.env();
        let dir = root.join(name);
        envs.push(("FILE_CACHE_DIR".into(), dir.display().to_string()));
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_child("api_types_come_back_from_the_remote_tier", name, &envs)
    };
    let a = machine("machine_a");
    assert_eq!(marked_lines(&a, "RUNS "), ["1 1 2 1 1 2"]);
    assert_eq!(marked_lines(&a, "FLUSHED "), ["true"]);
    // Another machine, its local root empty: every value comes from the remote.
    let b = machine("machine_b");
    assert_eq!(marked_lines(&b, "RUNS "), ["0 0 0 0 0 0"]);
    let remote_hits = marked_lines(&b, "LOG DEBUG ")
        .into_iter()
        .filter(|line| line.contains("remote hit api_types::"))
        .count();
    assert_eq!(remote_hits, 8);
    assert_eq!(marked_lines(&a, "CHAT "), marked_lines(&b, "CHAT "));
}

fn a_type_whose_layout_cannot_be_traced_is_checked_by_its_name() {
    use file_cache::__private::trace_layout;
    // Read through `deserialize_any`: no layout to trace; its entries are checked by the
    // type's name, as they always were.
    assert_eq!(trace_layout::<Value>(), None);
    assert_eq!(trace_layout::<ToolCall>(), None);
    // The others keep their fingerprint, whichever codec their entries use.
    assert!(trace_layout::<ChatResponse>().is_some());
}

static SHARED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[file_cache]
fn shared(n: u32) -> ToolCall {
    if SHARED_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The leader holds on until the other callers wait for it.
        let needle = "waiting for api_types::shared, computed by another caller";
        while logged(log::Level::Debug, needle).len() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ToolCall {
        name: "shared".into(),
        arguments: json!({ "n": n }),
    }
}

fn callers_waiting_for_a_messagepack_value_decode_it() {
    init();
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let start = std::sync::Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                shared(1)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().arguments, json!({ "n": 1 }));
    }
    assert_eq!(SHARED_RUNS.load(Ordering::SeqCst), 1);
    let followed = logged(
        log::Level::Debug,
        "hit api_types::shared (from another caller)",
    );
    assert_eq!(followed.len(), 3);
}
