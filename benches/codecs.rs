//! The self-describing codec, chosen by measurement: the candidates that can hold what
//! postcard cannot (MessagePack with named fields, CBOR, JSON; and MessagePack with
//! positional fields, to show why the names are needed) on the value types of API clients.
//!
//! First a table of which serde shapes each candidate round-trips (printed, not timed),
//! then, for each realistic value, the encoding's size (printed) and criterion's encode and
//! decode times. Compare ratios within one run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;

// ---- the value types API clients return -------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ChatResponse {
    id: String,
    content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct ToolCall {
    name: String,
    arguments: Value,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type")]
enum Event {
    Text { text: String },
    Done,
}

/// A chat completion as OpenAI-style clients model it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Completion {
    id: String,
    object: String,
    created: u64,
    model: String,
    choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_fingerprint: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Choice {
    index: u32,
    message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logprobs: Option<Value>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "role", rename_all = "lowercase")]
enum Message {
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<FunctionCall>,
    },
    User {
        content: String,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct FunctionCall {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    function: ToolCall,
}

fn completion(choices: u32) -> Completion {
    Completion {
        id: "chatcmpl-9f8a7b6c5d4e3f2a1b0c".into(),
        object: "chat.completion".into(),
        created: 1_733_443_200,
        model: "gpt-4o-2024-08-06".into(),
        choices: (0..choices)
            .map(|i| Choice {
                index: i,
                message: Message::Assistant {
                    content: i.is_multiple_of(2).then(|| {
                        format!("Choice {i}: the weather in Paris is mild, 14 °C with light rain in the afternoon.")
                    }),
                    tool_calls: (0..i % 3)
                        .map(|t| FunctionCall {
                            id: format!("call_{i}_{t}_a1b2c3d4"),
                            kind: "function".into(),
                            function: ToolCall {
                                name: "get_weather".into(),
                                arguments: json!({
                                    "location": "Paris, FR",
                                    "unit": "celsius",
                                    "days": t + 1,
                                    "hourly": true,
                                    "fields": ["temperature", "precipitation", "wind"],
                                }),
                            },
                        })
                        .collect(),
                },
                finish_reason: Some(if i.is_multiple_of(3) { "stop" } else { "tool_calls" }.into()),
                logprobs: None,
            })
            .collect(),
        usage: Some(Usage {
            prompt_tokens: 1_234,
            completion_tokens: 5_678,
        }),
        system_fingerprint: None,
    }
}

// ---- shapes for the round-trip table ------------------------------------------------------

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Flattened {
    id: u32,
    #[serde(flatten)]
    extra: BTreeMap<String, u32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "t", content = "c")]
enum Adjacent {
    A(u32),
    B { x: String },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
enum Untagged {
    Number(u64),
    Text(String),
    Pair { a: u8, b: bool },
}

#[derive(Serialize, Deserialize, Debug)]
struct Raw {
    id: u32,
    body: Box<RawValue>,
}

// ---- the candidates -----------------------------------------------------------------------

trait Candidate {
    const NAME: &'static str;
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String>;
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String>;
}

struct MsgPackNamed;
struct MsgPackPositional;
struct Cbor;
struct Json;

impl Candidate for MsgPackNamed {
    const NAME: &'static str = "rmp-serde (named)";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec_named(value).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl Candidate for MsgPackPositional {
    const NAME: &'static str = "rmp-serde (positional)";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        rmp_serde::to_vec(value).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

impl Candidate for Cbor {
    const NAME: &'static str = "ciborium (CBOR)";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        ciborium::from_reader(bytes).map_err(|e| e.to_string())
    }
}

impl Candidate for Json {
    const NAME: &'static str = "serde_json";
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(value).map_err(|e| e.to_string())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

fn round_trips<C: Candidate, T>(value: &T) -> Result<(), String>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = C::encode(value)?;
    let back: T = C::decode(&bytes)?;
    if back == *value {
        Ok(())
    } else {
        Err(format!("decodes to {back:?}"))
    }
}

fn raw_round_trips<C: Candidate>() -> Result<(), String> {
    let body = RawValue::from_string(r#"{"a":[1,2,{"b":null}]}"#.to_owned()).unwrap();
    let bytes = C::encode(&Raw { id: 3, body })?;
    let back: Raw = C::decode(&bytes)?;
    if back.id == 3 && back.body.get() == r#"{"a":[1,2,{"b":null}]}"# {
        Ok(())
    } else {
        Err(format!("decodes to {back:?}"))
    }
}

fn table_row<C: Candidate>() {
    let cases: Vec<(&str, Result<(), String>)> = vec![
        (
            "skip_serializing_if",
            round_trips::<C, _>(&ChatResponse {
                id: "r1".into(),
                content: "hi".into(),
                usage: None,
            }),
        ),
        (
            "flatten",
            round_trips::<C, _>(&Flattened {
                id: 1,
                extra: BTreeMap::from([("x".to_owned(), 2)]),
            }),
        ),
        (
            "internally tagged",
            round_trips::<C, _>(&vec![Event::Text { text: "a".into() }, Event::Done]),
        ),
        (
            "adjacently tagged",
            round_trips::<C, _>(&vec![Adjacent::A(1), Adjacent::B { x: "y".into() }]),
        ),
        (
            "untagged",
            round_trips::<C, _>(&vec![
                Untagged::Number(1),
                Untagged::Text("t".into()),
                Untagged::Pair { a: 1, b: true },
            ]),
        ),
        (
            "serde_json::Value",
            round_trips::<C, _>(&json!({"a": [1, -2, 3.5, null, true, "s", {"b": {}}]})),
        ),
        ("Box<RawValue>", raw_round_trips::<C>()),
        (
            "integer map keys",
            round_trips::<C, _>(&HashMap::from([(7u64, "seven".to_owned())])),
        ),
        (
            "f64 infinity",
            round_trips::<C, _>(&vec![1.5f64, f64::INFINITY]),
        ),
        (
            "completion, 50 choices",
            round_trips::<C, _>(&completion(50)),
        ),
    ];
    for (case, result) in cases {
        let verdict = match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("FAILS: {}", e.chars().take(70).collect::<String>()),
        };
        println!("  {:<24} {:<24} {verdict}", C::NAME, case);
    }
}

fn chat() -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-9f8a7b6c5d4e3f2a1b0c".into(),
        content: "The weather in Paris is mild today, 14 °C with light rain.".into(),
        usage: None,
    }
}

fn tool_call() -> ToolCall {
    ToolCall {
        name: "get_weather".into(),
        arguments: json!({"location": "Paris, FR", "unit": "celsius", "days": 3}),
    }
}

fn timed<C: Candidate, T>(c: &mut Criterion, case: &str, value: &T)
where
    T: Serialize + DeserializeOwned,
{
    let Ok(bytes) = C::encode(value) else {
        return;
    };
    if C::decode::<T>(&bytes).is_err() {
        return;
    }
    println!("  {:<24} {:<16} {:>7} bytes", C::NAME, case, bytes.len());
    let mut group = c.benchmark_group(format!("codec_{case}"));
    group.bench_function(BenchmarkId::new("encode", C::NAME), |b| {
        b.iter(|| C::encode(black_box(value)).unwrap())
    });
    group.bench_function(BenchmarkId::new("decode", C::NAME), |b| {
        b.iter(|| C::decode::<T>(black_box(&bytes)).unwrap())
    });
    group.finish();
}

fn each<C: Candidate>(c: &mut Criterion) {
    timed::<C, _>(c, "chat", &chat());
    timed::<C, _>(c, "tool_call", &tool_call());
    timed::<C, _>(
        c,
        "event",
        &Event::Text {
            text: "Hello, world".into(),
        },
    );
    timed::<C, _>(c, "value", &serde_json::to_value(completion(5)).unwrap());
    timed::<C, _>(c, "completion50", &completion(50));
}

fn codecs(c: &mut Criterion) {
    println!("round trips:");
    table_row::<MsgPackNamed>();
    table_row::<MsgPackPositional>();
    table_row::<Cbor>();
    table_row::<Json>();
    println!("sizes and times:");
    each::<MsgPackNamed>(c);
    each::<MsgPackPositional>(c);
    each::<Cbor>(c);
    each::<Json>(c);
}

criterion_group!(benches, codecs);
criterion_main!(benches);
