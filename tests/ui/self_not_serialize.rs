use file_cache::file_cache;

struct Model {
    weights: Vec<f64>,
}

impl Model {
    #[file_cache]
    fn score(&self, input: f64) -> f64 {
        self.weights.iter().map(|w| w * input).sum()
    }
}

fn main() {
    let model = Model { weights: vec![1.0] };
    model.score(2.0);
}
