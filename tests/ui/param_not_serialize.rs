use file_cache::file_cache;

struct Connection {
    url: String,
}

#[file_cache]
fn fetch(id: u64, connection: &Connection) -> String {
    format!("{}/{id}", connection.url)
}

fn main() {
    let connection = Connection { url: "db".into() };
    fetch(1, &connection);
}
