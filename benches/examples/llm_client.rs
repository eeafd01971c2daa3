//! Caches an async method of an LLM client: the first run waits for the "network" (a
//! sleep), every later run, in this process or the next, answers from disk.
//!
//! ```sh
//! cargo run --example llm_client   # run it twice: the second run takes no time
//! ```

use file_cache::file_cache;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A connection pool or an HTTP client: not `Serialize`, and not part of the answer.
struct Connection {
    requests: std::sync::atomic::AtomicU32,
}

struct LlmClient {
    connection: Connection,
    model: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Completion {
    text: String,
    tokens: u32,
}

impl LlmClient {
    /// The client itself is ignored (its connection cannot be hashed and does not change
    /// the answer), so the model is passed as an argument to be part of the key.
    #[file_cache(ignore = [self])]
    async fn complete(&self, model: &str, prompt: &str) -> Result<Completion, String> {
        self.connection
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Stands in for the HTTP round trip.
        tokio::time::sleep(Duration::from_millis(800)).await;
        if prompt.is_empty() {
            return Err("empty prompt".into()); // errors are not cached
        }
        Ok(Completion {
            text: format!("[{model}] {}", prompt.to_uppercase()),
            tokens: prompt.split_whitespace().count() as u32,
        })
    }

    async fn ask(&self, prompt: &str) -> Result<Completion, String> {
        self.complete(&self.model, prompt).await
    }
}

#[tokio::main]
async fn main() {
    let client = LlmClient {
        connection: Connection {
            requests: Default::default(),
        },
        model: "tiny-1".into(),
    };
    println!("cache root: {}", file_cache::cache_dir().display());
    for prompt in [
        "summarize the README",
        "summarize the README",
        "name a crate",
    ] {
        let started = Instant::now();
        let answer = client.ask(prompt).await;
        println!("{:>7.1?}  {prompt:?} -> {answer:?}", started.elapsed());
    }
    println!("requests sent: {}", client.connection.requests.into_inner());
}
