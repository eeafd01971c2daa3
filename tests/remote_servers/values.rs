//! Values for the remote tier's tests and its latency example: about 256 KiB of JSON text
//! (which compresses well) and bytes that no compressor shrinks, the same for a seed on
//! every run.

/// About 256 KiB of JSON text, as an API or a language model answers: records with ids,
/// names, dates, tags and sentences drawn from a small vocabulary.
pub fn json_text(seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "the", "model", "returns", "a", "summary", "of", "each", "document", "with", "its",
        "score", "and", "tokens", "used", "for", "query", "cache", "response", "latency", "user",
        "request", "result", "value", "field",
    ];
    let mut random = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut records = Vec::new();
    let mut len = 0;
    let mut id = 0u64;
    while len < 256 << 10 {
        let text: Vec<&str> = (0..12 + random.next() % 20)
            .map(|_| WORDS[(random.next() % WORDS.len() as u64) as usize])
            .collect();
        let record = serde_json::json!({
            "id": id,
            "user": format!("user{}", random.next() % 1000),
            "email": format!("user{}@example.com", random.next() % 1000),
            "created_at": format!("2026-{:02}-{:02}T{:02}:{:02}:00Z",
                1 + random.next() % 12, 1 + random.next() % 28,
                random.next() % 24, random.next() % 60),
            "score": (random.next() % 10_000) as f64 / 100.0,
            "tags": [WORDS[(random.next() % 24) as usize], WORDS[(random.next() % 24) as usize]],
            "text": text.join(" "),
        });
        len += record.to_string().len() + 1;
        records.push(record);
        id += 1;
    }
    serde_json::to_string(&records).expect("JSON")
}

/// `len` bytes that no compressor shrinks.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut random = Xorshift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    (0..len).map(|_| random.next() as u8).collect()
}

struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
