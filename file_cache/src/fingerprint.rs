//! Layout fingerprints: a 16-byte digest of the serde layout of a value type, so that an
//! entry written under one definition of a type is never decoded under another. It traces
//! types and encodes what it saw; it knows nothing of sites (a site keeps its value type
//! fingerprint itself, see `Site::fingerprint`), entries or calls.
//!
//! postcard bytes carry no names: after `struct Hit { score: f32, id: u32 }` becomes
//! `struct Hit { id: u32, score: f32 }`, or `id` becomes an `i64`, old bytes still decode,
//! into a wrong value. The fingerprint covers what the bytes depend on and what a reader
//! would call a different type: container names, field names and their order, variant names
//! and their order, the primitive kind of every leaf, options, sequences, maps, tuples and
//! every nested (and generic) type, with every variant of every enum explored.
//!
//! # How a type is traced
//!
//! [`trace`] runs the type's `Deserialize` impl against a [`serde::Deserializer`] of our own
//! that holds no data: it records each call (`deserialize_struct("Hit", ["score", "id"])`,
//! `deserialize_f32`, ...) and answers it with a made-up value (one element per sequence,
//! `Some` for options, `1` for numbers, `"a"` for strings). One pass takes one variant per
//! enum, so the trace runs again until every variant of every enum it met (at any depth)
//! has been taken once; each pass steers towards enums with variants left, and the shape
//! of a variant is recorded under its enum, so an enum used in several places is explored
//! once.
//!
//! Recursive types end where they can: an option, sequence or map whose type is already
//! being traced further up is answered empty (`None`, `[]`, `{}`) and recorded as a
//! reference to that ancestor; a recursive enum is ended through a variant already known to
//! terminate (or one not yet on the path). Types are told apart by the `Visitor` type their
//! impl passes in (serde's derive makes one per type, generic arguments included), so
//! `Wrapper<Wrapper<u32>>` is traced to the `u32`, while `Tree { children: Vec<Tree> }`
//! stops at the second `Vec<Tree>`.
//!
//! A type whose impl cannot be traced (a hand-written `Deserialize` that rejects made-up
//! input, one that needs `deserialize_any`, an enum without variants) is an [`Untraceable`];
//! the caller falls back to [`by_name`].
//!
//! # Why not `serde-reflection`
//!
//! It does the same kind of tracing, but a nested enum keeps only its first variant unless
//! each enum type is traced by name, which a cache that only knows `T` cannot do; it also
//! keys containers by their serde name alone (two `Wrapper<_>` instantiations collide), and
//! it builds a full registry where a digest is all we need.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use std::any::type_name;
use std::fmt;

/// The fingerprint stored in an entry's header.
pub(crate) type Fingerprint = [u8; 16];

/// Names the encoding of the fingerprint: change it whenever the encoding changes.
const DOMAIN: &str = "file_cache layout v1";
/// Deepest nesting traced; a type nested deeper (or infinitely) is untraceable.
const MAX_DEPTH: usize = 256;
/// Most nodes one pass may record, against types whose expansion explodes.
const MAX_NODES: usize = 100_000;
/// Most passes; each one explores at least one new variant.
const MAX_PASSES: usize = 10_000;

/// Why a type's layout could not be traced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Untraceable(pub(crate) String);

impl fmt::Display for Untraceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fingerprint of `T`'s layout, traced from its `Deserialize` impl.
pub(crate) fn trace<T: DeserializeOwned>() -> Result<Fingerprint, Untraceable> {
    let mut tracer = Tracer::default();
    for _ in 0..MAX_PASSES {
        tracer.begin_pass();
        let explored = tracer.explored();
        let value = T::deserialize(Tracing {
            tracer: &mut tracer,
        });
        drop(value.map_err(|e| Untraceable(e.0))?);
        let root = tracer.take_produced().map_err(|e| Untraceable(e.0))?;
        if tracer.enums.iter().all(EnumDef::is_explored) {
            return Ok(tracer.fingerprint(&root));
        }
        if tracer.explored() == explored {
            return Err(Untraceable(
                "some enum variants cannot be reached".to_owned(),
            ));
        }
    }
    Err(Untraceable("too many enum variants".to_owned()))
}

/// The fallback fingerprint of a type that cannot be traced: its name only.
pub(crate) fn by_name(type_name: &str) -> Fingerprint {
    let mut hasher = blake3::Hasher::new_derive_key(DOMAIN);
    hasher.update(b"by name");
    text(&mut hasher, type_name);
    truncate(&hasher)
}

fn truncate(hasher: &blake3::Hasher) -> Fingerprint {
    let mut out = [0; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

fn text(hasher: &mut blake3::Hasher, text: &str) {
    hasher.update(&(text.len() as u64).to_le_bytes());
    hasher.update(text.as_bytes());
}

/// The kind of a leaf: what serde method the impl called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Prim {
    Bool = 1,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Unit,
}

/// One traced position of the type.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Prim(Prim),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    UnitStruct(&'static str),
    NewtypeStruct(&'static str, Box<Node>),
    TupleStruct(&'static str, Vec<Node>),
    Struct(&'static str, Vec<(&'static str, Node)>),
    /// An enum, by its index in [`Tracer::enums`].
    Enum(usize),
    /// The same type as the ancestor this many levels up (recursion).
    Cut(usize),
}

/// The content of one enum variant.
#[derive(Clone, Debug, PartialEq)]
enum Variant {
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(&'static str, Node)>),
}

/// Everything learnt about one enum type, across passes.
struct EnumDef {
    /// The visitor's type name: tells apart types with the same serde name.
    id: &'static str,
    name: &'static str,
    variants: &'static [&'static str],
    /// The shape of each variant, once explored.
    shapes: Vec<Option<Variant>>,
    /// Whether a variant is known to end (its trace finished once).
    terminates: Vec<bool>,
}

impl EnumDef {
    fn is_explored(&self) -> bool {
        self.shapes.iter().all(Option::is_some)
    }

    /// Enums met directly inside variant `v` (not inside those enums' own variants).
    fn enums_in(&self, v: usize) -> Vec<usize> {
        let mut out = Vec::new();
        match &self.shapes[v] {
            None | Some(Variant::Unit) => {}
            Some(Variant::Newtype(node)) => node.enums(&mut out),
            Some(Variant::Tuple(nodes)) => nodes.iter().for_each(|n| n.enums(&mut out)),
            Some(Variant::Struct(fields)) => fields.iter().for_each(|(_, n)| n.enums(&mut out)),
        }
        out
    }
}

impl Node {
    fn enums(&self, out: &mut Vec<usize>) {
        match self {
            Node::Prim(_) | Node::UnitStruct(_) | Node::Cut(_) => {}
            Node::Option(inner) | Node::Seq(inner) | Node::NewtypeStruct(_, inner) => {
                inner.enums(out)
            }
            Node::Map(key, value) => {
                key.enums(out);
                value.enums(out);
            }
            Node::Tuple(nodes) | Node::TupleStruct(_, nodes) => {
                nodes.iter().for_each(|n| n.enums(out))
            }
            Node::Struct(_, fields) => fields.iter().for_each(|(_, n)| n.enums(out)),
            Node::Enum(index) => out.push(*index),
        }
    }
}

/// One position on the path from the root to where the trace is.
struct Frame {
    id: &'static str,
    /// For an enum: the variant taken.
    variant: Option<usize>,
}

/// The state of a trace: the enums met so far, and the current pass.
#[derive(Default)]
struct Tracer {
    enums: Vec<EnumDef>,
    path: Vec<Frame>,
    /// Per enum, at the start of the pass: how many enum levels down its nearest unexplored
    /// variant is (`usize::MAX`: none).
    distance: Vec<usize>,
    /// The node of the position just traced, for its parent to take.
    produced: Option<Node>,
    nodes: usize,
}

impl Tracer {
    fn begin_pass(&mut self) {
        self.path.clear();
        self.produced = None;
        self.nodes = 0;
        // How many enum levels down each enum's nearest unexplored variant is: a pass
        // steers towards the nearest one (a shortest-path fixed point).
        let inner: Vec<Vec<usize>> = self
            .enums
            .iter()
            .map(|e| (0..e.variants.len()).flat_map(|v| e.enums_in(v)).collect())
            .collect();
        self.distance = self
            .enums
            .iter()
            .map(|e| if e.is_explored() { usize::MAX } else { 0 })
            .collect();
        let mut changed = true;
        while changed {
            changed = false;
            for (index, inner) in inner.iter().enumerate() {
                let nearest = inner.iter().map(|&i| self.distance[i]).min();
                if let Some(nearest) = nearest.filter(|&d| d < usize::MAX) {
                    if nearest + 1 < self.distance[index] {
                        self.distance[index] = nearest + 1;
                        changed = true;
                    }
                }
            }
        }
    }

    fn explored(&self) -> usize {
        self.enums
            .iter()
            .map(|e| e.shapes.iter().filter(|s| s.is_some()).count())
            .sum()
    }

    fn produce(&mut self, node: Node) -> Result<(), Error> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Error::new("the type is too large to trace"));
        }
        if self.produced.replace(node).is_some() {
            return Err(Error::new("the impl skipped a value it asked for"));
        }
        Ok(())
    }

    fn take_produced(&mut self) -> Result<Node, Error> {
        self.produced
            .take()
            .ok_or_else(|| Error::new("the impl did not deserialize a value it asked for"))
    }

    /// How many levels up the path `id` is being traced, if it is.
    fn ancestor(&self, id: &str) -> Option<usize> {
        self.path
            .iter()
            .rev()
            .position(|f| f.id == id)
            .map(|at| at + 1)
    }

    fn push(&mut self, id: &'static str, variant: Option<usize>) -> Result<(), Error> {
        if self.path.len() >= MAX_DEPTH {
            return Err(Error::new("the type nests too deeply to trace"));
        }
        self.path.push(Frame { id, variant });
        Ok(())
    }

    fn pop(&mut self) {
        self.path.pop();
    }

    fn enum_index(
        &mut self,
        id: &'static str,
        name: &'static str,
        variants: &'static [&'static str],
    ) -> usize {
        if let Some(index) = self.enums.iter().position(|e| e.id == id) {
            return index;
        }
        self.enums.push(EnumDef {
            id,
            name,
            variants,
            shapes: vec![None; variants.len()],
            terminates: vec![false; variants.len()],
        });
        self.enums.len() - 1
    }

    /// The variant to take at this occurrence of enum `index`.
    fn choose(&self, index: usize) -> Result<usize, Error> {
        let def = &self.enums[index];
        let count = def.variants.len();
        let on_path: Vec<usize> = self
            .path
            .iter()
            .filter(|f| f.id == def.id)
            .filter_map(|f| f.variant)
            .collect();
        let unexplored = |v: &usize| def.shapes[*v].is_none();
        let free = |v: &usize| !on_path.contains(v);
        let choice = if on_path.is_empty() {
            // Towards the nearest enum with a variant left (enums new in this pass: 0).
            let nearest = |v: usize| {
                def.enums_in(v)
                    .iter()
                    .map(|&i| self.distance.get(i).copied().unwrap_or(0))
                    .min()
                    .unwrap_or(usize::MAX)
            };
            let towards_work = (0..count)
                .min_by_key(|&v| nearest(v))
                .filter(|&v| nearest(v) < usize::MAX);
            (0..count)
                .find(unexplored)
                .or(towards_work)
                .or_else(|| (0..count).find(|&v| def.terminates[v]))
                .or((count > 0).then_some(0))
        } else {
            // Recursion: end it through a variant known to terminate, or try one that is
            // not already being traced on this path.
            (0..count)
                .filter(free)
                .find(|&v| def.terminates[v])
                .or_else(|| (0..count).filter(free).find(unexplored))
                .or_else(|| (0..count).find(free))
        };
        choice.ok_or_else(|| {
            Error::new(format!(
                "enum `{}` has no variant that can be constructed",
                def.name
            ))
        })
    }

    fn record(&mut self, index: usize, variant: usize, shape: Variant) {
        let slot = &mut self.enums[index].shapes[variant];
        if slot.is_none() {
            *slot = Some(shape);
        }
    }

    fn fingerprint(&self, root: &Node) -> Fingerprint {
        let mut encoder = Encoder {
            hasher: blake3::Hasher::new_derive_key(DOMAIN),
            numbers: vec![None; self.enums.len()],
            next: 0,
            enums: &self.enums,
        };
        encoder.node(root);
        truncate(&encoder.hasher)
    }
}

/// Writes the traced layout canonically: enums are numbered in the order first met and
/// written out in full there, referenced by number after.
struct Encoder<'a> {
    hasher: blake3::Hasher,
    numbers: Vec<Option<u64>>,
    next: u64,
    enums: &'a [EnumDef],
}

impl Encoder<'_> {
    fn tag(&mut self, tag: u8) {
        self.hasher.update(&[tag]);
    }

    fn number(&mut self, n: usize) {
        self.hasher.update(&(n as u64).to_le_bytes());
    }

    fn name(&mut self, name: &str) {
        text(&mut self.hasher, name);
    }

    fn nodes(&mut self, nodes: &[Node]) {
        self.number(nodes.len());
        nodes.iter().for_each(|n| self.node(n));
    }

    fn fields(&mut self, fields: &[(&str, Node)]) {
        self.number(fields.len());
        for (name, node) in fields {
            self.name(name);
            self.node(node);
        }
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::Prim(prim) => self.tag(*prim as u8),
            Node::Option(inner) => {
                self.tag(b'O');
                self.node(inner);
            }
            Node::Seq(inner) => {
                self.tag(b'S');
                self.node(inner);
            }
            Node::Map(key, value) => {
                self.tag(b'M');
                self.node(key);
                self.node(value);
            }
            Node::Tuple(nodes) => {
                self.tag(b'T');
                self.nodes(nodes);
            }
            Node::UnitStruct(name) => {
                self.tag(b'u');
                self.name(name);
            }
            Node::NewtypeStruct(name, inner) => {
                self.tag(b'n');
                self.name(name);
                self.node(inner);
            }
            Node::TupleStruct(name, nodes) => {
                self.tag(b't');
                self.name(name);
                self.nodes(nodes);
            }
            Node::Struct(name, fields) => {
                self.tag(b's');
                self.name(name);
                self.fields(fields);
            }
            Node::Cut(distance) => {
                self.tag(b'C');
                self.number(*distance);
            }
            Node::Enum(index) => self.enumeration(*index),
        }
    }

    fn enumeration(&mut self, index: usize) {
        if let Some(number) = self.numbers[index] {
            self.tag(b'e');
            self.hasher.update(&number.to_le_bytes());
            return;
        }
        self.numbers[index] = Some(self.next);
        self.next += 1;
        let def = &self.enums[index];
        self.tag(b'E');
        self.name(def.name);
        self.number(def.variants.len());
        for (name, shape) in def.variants.iter().zip(&def.shapes) {
            self.name(name);
            match shape {
                // `trace` finishes only when every variant is explored.
                None => self.tag(b'?'),
                Some(Variant::Unit) => self.tag(b'U'),
                Some(Variant::Newtype(node)) => {
                    self.tag(b'N');
                    self.node(node);
                }
                Some(Variant::Tuple(nodes)) => {
                    self.tag(b'T');
                    self.nodes(nodes);
                }
                Some(Variant::Struct(fields)) => {
                    self.tag(b'S');
                    self.fields(fields);
                }
            }
        }
    }
}

/// The deserializer's error: a visitor that refused a made-up value, or a protocol the
/// tracer does not follow.
#[derive(Debug)]
struct Error(String);

impl Error {
    fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// The deserializer handed to each traced position.
struct Tracing<'t> {
    tracer: &'t mut Tracer,
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?), $prim:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                let value = visitor.$visit($($value)?)?;
                self.tracer.produce(Node::Prim(Prim::$prim))?;
                Ok(value)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Tracing<'_> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::new(
            "it needs a self-describing format (`deserialize_any`)",
        ))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::new("it deserializes an identifier outside an enum"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(Error::new("it skips a value (`deserialize_ignored_any`)"))
    }

    leaf! {
        deserialize_bool => visit_bool(false), Bool;
        deserialize_i8 => visit_i8(1), I8;
        deserialize_i16 => visit_i16(1), I16;
        deserialize_i32 => visit_i32(1), I32;
        deserialize_i64 => visit_i64(1), I64;
        deserialize_i128 => visit_i128(1), I128;
        deserialize_u8 => visit_u8(1), U8;
        deserialize_u16 => visit_u16(1), U16;
        deserialize_u32 => visit_u32(1), U32;
        deserialize_u64 => visit_u64(1), U64;
        deserialize_u128 => visit_u128(1), U128;
        deserialize_f32 => visit_f32(1.0), F32;
        deserialize_f64 => visit_f64(1.0), F64;
        deserialize_char => visit_char('a'), Char;
        deserialize_str => visit_str("a"), Str;
        deserialize_string => visit_str("a"), Str;
        deserialize_bytes => visit_bytes(b"a"), Bytes;
        deserialize_byte_buf => visit_bytes(b"a"), Bytes;
        deserialize_unit => visit_unit(), Unit;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let tracer = self.tracer;
        let id = type_name::<V>();
        if let Some(distance) = tracer.ancestor(id) {
            let value = visitor.visit_none()?;
            tracer.produce(Node::Cut(distance))?;
            return Ok(value);
        }
        tracer.push(id, None)?;
        let value = visitor.visit_some(Tracing {
            tracer: &mut *tracer,
        })?;
        let inner = tracer.take_produced()?;
        tracer.pop();
        tracer.produce(Node::Option(Box::new(inner)))?;
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let tracer = self.tracer;
        let id = type_name::<V>();
        let mut nodes = Vec::new();
        if let Some(distance) = tracer.ancestor(id) {
            let value = visitor.visit_seq(Elements::new(tracer, &mut nodes, 0))?;
            tracer.produce(Node::Cut(distance))?;
            return Ok(value);
        }
        tracer.push(id, None)?;
        let value = visitor.visit_seq(Elements::new(tracer, &mut nodes, 1))?;
        tracer.pop();
        let element = nodes
            .pop()
            .ok_or_else(|| Error::new("it read no element of a sequence"))?;
        tracer.produce(Node::Seq(Box::new(element)))?;
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let tracer = self.tracer;
        let id = type_name::<V>();
        let mut nodes = Vec::new();
        if let Some(distance) = tracer.ancestor(id) {
            let value = visitor.visit_map(Elements::new(tracer, &mut nodes, 0))?;
            tracer.produce(Node::Cut(distance))?;
            return Ok(value);
        }
        tracer.push(id, None)?;
        let value = visitor.visit_map(Elements::new(tracer, &mut nodes, 2))?;
        tracer.pop();
        let (Some(value_node), Some(key_node)) = (nodes.pop(), nodes.pop()) else {
            return Err(Error::new("it read no entry of a map"));
        };
        tracer.produce(Node::Map(Box::new(key_node), Box::new(value_node)))?;
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        mut self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (value, nodes) = self.elements(type_name::<V>(), len, |e| visitor.visit_seq(e))?;
        self.tracer.produce(Node::Tuple(nodes))?;
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (value, nodes) = self.elements(type_name::<V>(), len, |e| visitor.visit_seq(e))?;
        self.tracer.produce(Node::TupleStruct(name, nodes))?;
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (value, nodes) =
            self.elements(type_name::<V>(), fields.len(), |e| visitor.visit_seq(e))?;
        let fields = fields.iter().copied().zip(nodes).collect();
        self.tracer.produce(Node::Struct(name, fields))?;
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let value = visitor.visit_unit()?;
        self.tracer.produce(Node::UnitStruct(name))?;
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let tracer = self.tracer;
        tracer.push(type_name::<V>(), None)?;
        let value = visitor.visit_newtype_struct(Tracing {
            tracer: &mut *tracer,
        })?;
        let inner = tracer.take_produced()?;
        tracer.pop();
        tracer.produce(Node::NewtypeStruct(name, Box::new(inner)))?;
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let tracer = self.tracer;
        let id = type_name::<V>();
        let index = tracer.enum_index(id, name, variants);
        let variant = tracer.choose(index)?;
        tracer.push(id, Some(variant))?;
        let value = visitor.visit_enum(Choice {
            tracer: &mut *tracer,
            index,
            variant,
        })?;
        tracer.pop();
        let def = &mut tracer.enums[index];
        if def.shapes[variant].is_none() {
            return Err(Error::new(format!(
                "it did not read variant `{}::{}`",
                def.name, def.variants[variant]
            )));
        }
        def.terminates[variant] = true;
        tracer.produce(Node::Enum(index))?;
        Ok(value)
    }
}

impl Tracing<'_> {
    /// Traces a fixed number of elements (tuple, tuple struct, struct fields).
    fn elements<T>(
        &mut self,
        id: &'static str,
        len: usize,
        visit: impl FnOnce(Elements<'_>) -> Result<T, Error>,
    ) -> Result<(T, Vec<Node>), Error> {
        self.tracer.push(id, None)?;
        let mut nodes = Vec::with_capacity(len);
        let value = visit(Elements::new(self.tracer, &mut nodes, len))?;
        self.tracer.pop();
        Ok((value, nodes))
    }
}

/// Sequence elements (or map keys and values, alternating) handed to a visitor.
struct Elements<'a> {
    tracer: &'a mut Tracer,
    nodes: &'a mut Vec<Node>,
    remaining: usize,
}

impl<'a> Elements<'a> {
    fn new(tracer: &'a mut Tracer, nodes: &'a mut Vec<Node>, remaining: usize) -> Self {
        Elements {
            tracer,
            nodes,
            remaining,
        }
    }

    fn next<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        self.remaining = self.remaining.saturating_sub(1);
        let value = seed.deserialize(Tracing {
            tracer: &mut *self.tracer,
        })?;
        self.nodes.push(self.tracer.take_produced()?);
        Ok(value)
    }
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.next(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

impl<'de> MapAccess<'de> for Elements<'_> {
    type Error = Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.next(seed).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        self.next(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining / 2)
    }
}

/// The variant chosen for one occurrence of an enum.
struct Choice<'a> {
    tracer: &'a mut Tracer,
    index: usize,
    variant: usize,
}

impl<'de, 'a> EnumAccess<'de> for Choice<'a> {
    type Error = Error;
    type Variant = Choice<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        // As postcard does: the variant's index, as a `u32`.
        let index = u32::try_from(self.variant).map_err(|_| Error::new("too many variants"))?;
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Choice<'_> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        self.tracer.record(self.index, self.variant, Variant::Unit);
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        let value = seed.deserialize(Tracing {
            tracer: &mut *self.tracer,
        })?;
        let inner = self.tracer.take_produced()?;
        self.tracer
            .record(self.index, self.variant, Variant::Newtype(inner));
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let mut nodes = Vec::with_capacity(len);
        let value = visitor.visit_seq(Elements::new(self.tracer, &mut nodes, len))?;
        self.tracer
            .record(self.index, self.variant, Variant::Tuple(nodes));
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut nodes = Vec::with_capacity(fields.len());
        let value = visitor.visit_seq(Elements::new(self.tracer, &mut nodes, fields.len()))?;
        let fields = fields.iter().copied().zip(nodes).collect();
        self.tracer
            .record(self.index, self.variant, Variant::Struct(fields));
        Ok(value)
    }
}

#[cfg(test)]
#[allow(dead_code)] // the types exist to be traced, never read
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    fn fp<T: DeserializeOwned>() -> Fingerprint {
        trace::<T>().unwrap_or_else(|e| panic!("{} untraceable: {e}", type_name::<T>()))
    }

    // Two versions of one program's types, as two modules: same names, edited definitions.
    mod v1 {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Hit {
            pub score: f32,
            pub id: u32,
        }

        #[derive(Deserialize)]
        pub enum Kind {
            Word,
            Number(u64),
            Pair { left: u8, right: u8 },
        }

        #[derive(Deserialize)]
        pub struct Inner {
            pub a: u8,
            pub kinds: Vec<Kind>,
        }

        #[derive(Deserialize)]
        pub struct Outer {
            pub name: String,
            pub inner: Option<Inner>,
        }
    }

    mod same {
        use serde::Deserialize;

        // Written differently, the same layout as `v1::Hit`.
        #[derive(Deserialize)]
        pub struct Hit {
            pub score: f32,
            pub id: u32,
        }
    }

    mod reordered {
        #[derive(serde::Deserialize)]
        pub struct Hit {
            pub id: u32,
            pub score: f32,
        }
    }

    mod retyped {
        #[derive(serde::Deserialize)]
        pub struct Hit {
            pub score: f32,
            pub id: i64,
        }
    }

    mod renamed {
        #[derive(serde::Deserialize)]
        pub struct Hit {
            pub score: f32,
            pub ident: u32,
        }
    }

    mod serde_renamed {
        #[derive(serde::Deserialize)]
        pub struct Hit {
            pub score: f32,
            #[serde(rename = "key")]
            pub id: u32,
        }
    }

    mod variant_inserted {
        #[derive(serde::Deserialize)]
        pub enum Kind {
            Word,
            Symbol(char),
            Number(u64),
            Pair { left: u8, right: u8 },
        }
    }

    // The last variant of an enum nested in a struct, in a `Vec`, in an `Option`, changed.
    mod nested_changed {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub enum Kind {
            Word,
            Number(u64),
            Pair { left: u8, right: u16 },
        }

        #[derive(Deserialize)]
        pub struct Inner {
            pub a: u8,
            pub kinds: Vec<Kind>,
        }

        #[derive(Deserialize)]
        pub struct Outer {
            pub name: String,
            pub inner: Option<Inner>,
        }
    }

    #[test]
    fn equal_layouts_give_equal_fingerprints() {
        assert_eq!(fp::<v1::Hit>(), fp::<v1::Hit>());
        assert_eq!(fp::<v1::Hit>(), fp::<same::Hit>());
        assert_eq!(fp::<v1::Outer>(), fp::<v1::Outer>());
    }

    #[test]
    fn every_edit_of_a_struct_changes_it() {
        let original = fp::<v1::Hit>();
        let edits = [
            fp::<reordered::Hit>(),
            fp::<retyped::Hit>(),
            fp::<renamed::Hit>(),
            fp::<serde_renamed::Hit>(),
        ];
        for (i, edit) in edits.iter().enumerate() {
            assert_ne!(*edit, original, "edit {i}");
        }
    }

    #[test]
    fn enum_edits_change_it() {
        assert_ne!(fp::<v1::Kind>(), fp::<variant_inserted::Kind>());
        assert_ne!(fp::<v1::Kind>(), fp::<nested_changed::Kind>());
        // Nested three deep, the edited variant is the last one: still seen.
        assert_ne!(fp::<v1::Outer>(), fp::<nested_changed::Outer>());
        assert_ne!(fp::<Vec<v1::Kind>>(), fp::<Vec<variant_inserted::Kind>>());
        assert_ne!(
            fp::<Result<u8, v1::Kind>>(),
            fp::<Result<u8, nested_changed::Kind>>()
        );
    }

    #[test]
    fn containers_and_leaves_are_told_apart() {
        let all = [
            fp::<u32>(),
            fp::<i32>(),
            fp::<u64>(),
            fp::<f32>(),
            fp::<f64>(),
            fp::<bool>(),
            fp::<char>(),
            fp::<String>(),
            fp::<()>(),
            fp::<i128>(),
            fp::<u128>(),
            fp::<Option<u32>>(),
            fp::<Vec<u32>>(),
            fp::<Vec<Vec<u32>>>(),
            fp::<(u32, u32)>(),
            fp::<(u32, u32, u32)>(),
            fp::<[u32; 2]>(),
            fp::<BTreeMap<String, u32>>(),
            fp::<BTreeMap<u32, String>>(),
            fp::<Option<Option<u32>>>(),
            fp::<Result<u32, String>>(),
            fp::<Result<String, u32>>(),
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate().skip(i + 1) {
                // `[u32; 2]` and `(u32, u32)` are the same thing to serde and to postcard.
                if (i, j) != (14, 16) {
                    assert_ne!(a, b, "{i} and {j}");
                }
            }
        }
        // The representation counts, not the container: same bytes, same fingerprint.
        assert_eq!(fp::<HashMap<String, u32>>(), fp::<BTreeMap<String, u32>>());
        assert_eq!(fp::<BTreeSet<u8>>(), fp::<Vec<u8>>());
        assert_eq!(fp::<Box<str>>(), fp::<String>());
    }

    #[test]
    fn standard_types_with_checked_values_trace() {
        fp::<std::num::NonZeroU32>();
        fp::<std::time::Duration>();
        fp::<std::time::SystemTime>();
        fp::<std::path::PathBuf>();
        fp::<std::net::SocketAddr>();
        fp::<std::ops::Range<u32>>();
        fp::<std::marker::PhantomData<u8>>();
        fp::<Box<Vec<Box<u8>>>>();
        fp::<std::collections::VecDeque<(u8, char)>>();
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Wrapper<T> {
        inner: T,
    }

    #[test]
    fn generic_arguments_are_traced_at_every_depth() {
        assert_ne!(fp::<Wrapper<Wrapper<u32>>>(), fp::<Wrapper<Wrapper<i64>>>());
        assert_ne!(
            fp::<(Wrapper<u32>, Wrapper<String>)>(),
            fp::<(Wrapper<u32>, Wrapper<Vec<u8>>)>()
        );
    }

    mod recursive {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub struct Tree {
            pub label: String,
            pub children: Vec<Tree>,
        }

        #[derive(Deserialize)]
        pub struct Node {
            pub value: u32,
            pub next: Option<Box<Node>>,
        }

        #[derive(Deserialize)]
        pub enum List {
            Cons(u32, Box<List>),
            Nil,
        }

        #[derive(Deserialize)]
        pub enum Expr {
            Add(Box<Expr>, Box<Expr>),
            Neg(Box<Expr>),
            Call { name: String, args: Vec<Expr> },
            Lit(i64),
        }

        #[derive(Deserialize)]
        pub enum Json {
            Null,
            Array(Vec<Json>),
            Object(BTreeMap<String, Json>),
            Number(Number),
        }

        #[derive(Deserialize)]
        pub enum Number {
            Int(i64),
            Float(f64),
        }

        use std::collections::BTreeMap;
    }

    mod recursive_edited {
        use serde::Deserialize;

        #[derive(Deserialize)]
        pub enum Expr {
            Add(Box<Expr>, Box<Expr>),
            Neg(Box<Expr>),
            Call { name: String, args: Vec<Expr> },
            Lit(i32),
        }

        #[derive(Deserialize)]
        pub enum Json {
            Null,
            Array(Vec<Json>),
            Object(BTreeMap<String, Json>),
            Number(Number),
        }

        #[derive(Deserialize)]
        pub enum Number {
            Int(i64),
            Float(f32),
        }

        use std::collections::BTreeMap;
    }

    #[test]
    fn recursive_types_trace_and_their_edits_are_seen() {
        fp::<recursive::Tree>();
        fp::<recursive::Node>();
        fp::<recursive::List>();
        assert_ne!(fp::<recursive::Expr>(), fp::<recursive_edited::Expr>());
        assert_ne!(fp::<recursive::Json>(), fp::<recursive_edited::Json>());
        assert_ne!(fp::<recursive::Tree>(), fp::<recursive::Node>());
    }

    /// A hand-written impl that checks its input: it rejects what the tracer makes up.
    struct Even(u32);

    impl<'de> Deserialize<'de> for Even {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u32::deserialize(d)?;
            if n % 2 == 0 {
                Ok(Even(n))
            } else {
                Err(de::Error::custom("odd"))
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(u32),
        B(String),
    }

    #[derive(Deserialize)]
    enum Never {}

    #[test]
    fn what_cannot_be_traced_says_so() {
        assert_eq!(trace::<Even>(), Err(Untraceable("odd".to_owned())));
        assert!(trace::<Vec<Untagged>>()
            .unwrap_err()
            .0
            .contains("self-describing"));
        assert!(trace::<(u8, Never)>().is_err());
        assert_ne!(by_name("a::Even"), by_name("b::Even"));
    }
}
