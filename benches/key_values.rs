//! The structured values the key bench and the key profiling example hash: a scene (points
//! with optional labels, enum values holding vectors, tags), table rows with strings, and
//! rows of numbers only.

use serde::Serialize;

#[derive(Serialize, Debug)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub label: Option<String>,
}

#[derive(Serialize, Debug)]
pub enum Kind {
    Dense { weights: Vec<f32> },
    Sparse(Vec<(u32, f32)>),
}

#[derive(Serialize, Debug)]
pub struct Scene {
    pub name: String,
    pub points: Vec<Point>,
    pub kinds: Vec<Kind>,
    pub tags: Vec<String>,
    pub scale: (f64, f64, u8),
}

pub fn scene() -> Scene {
    let scene = Scene {
        name: "scene".to_owned(),
        points: (0..20_000)
            .map(|i| Point {
                x: f64::from(i),
                y: f64::from(i) * 0.5,
                label: (i % 3 == 0).then(|| format!("p{i}")),
            })
            .collect(),
        kinds: (0..200)
            .map(|i| {
                if i % 2 == 0 {
                    Kind::Dense {
                        weights: (0..64).map(|w| w as f32).collect(),
                    }
                } else {
                    Kind::Sparse((0..32).map(|w| (w, w as f32)).collect())
                }
            })
            .collect(),
        tags: (0..1000).map(|i| format!("tag-{i}")).collect(),
        scale: (1.0, 2.0, 3),
    };
    scene
}

/// A row of a table: strings of their own beside numbers.
#[derive(Serialize, Debug)]
pub struct Record {
    pub id: u64,
    pub name: String,
    pub score: f64,
    pub tags: Vec<String>,
}

pub fn records() -> Vec<Record> {
    (0..100_000u64)
        .map(|i| Record {
            id: i,
            name: format!("name-{i}"),
            score: i as f64 * 0.25,
            tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
        })
        .collect()
}

/// A pub struct of numbers only.
#[derive(Serialize, Debug)]
pub struct Plain {
    pub a: u64,
    pub b: f64,
    pub c: u32,
}

pub fn plain() -> Vec<Plain> {
    (0..1_000_000u32)
        .map(|i| Plain {
            a: u64::from(i) * 3,
            b: f64::from(i) * 0.5,
            c: i ^ 0x55,
        })
        .collect()
}
