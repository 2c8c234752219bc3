//! The contract half of a route: the type its body is parsed into, the type of its success
//! answer, its query parameters and their examples, declared once per route in the route table
//! (`.accepts::<T>()`, `.returns::<T>()`, `.query::<Q>()`). The OpenAPI document, the Postman
//! collection and the contract tests are all built from these declarations, so a schema cannot
//! drift from the type the handler really parses or serializes.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use std::fmt;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A realistic instance of a request or response type, as JSON: the document's example,
/// Postman's sample body and schemathesis' first test case. For request types it must parse
/// (a test checks), for response types it is usually an instance serialized.
pub trait Example {
    /// The example.
    fn example() -> Value;
}

/// The document's `components.schemas`, filled as operations name their types.
pub type Components = Map<String, Value>;

/// Parses a JSON value as a request type does, naming the failing field.
pub type Parser = fn(&Value) -> Result<(), String>;

/// A JSON payload of a route: how to put its schema in the document, its example, and, for a
/// request body, the parser the handler uses (to check that the example is accepted).
#[derive(Clone, Copy)]
pub struct Payload {
    /// Registers the type's schema (and those it refers to) and returns the schema to use.
    pub schema: fn(&mut Components) -> Value,
    /// The example.
    pub example: fn() -> Value,
    /// Parses a value as the handler does (request bodies only).
    pub parses: Option<Parser>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload").field("example", &(self.example)()).finish_non_exhaustive()
    }
}

impl Payload {
    /// A request body parsed into `T`.
    pub const fn request<T: ToSchema + Example + DeserializeOwned>() -> Self {
        Self { schema: schema_ref::<T>, example: T::example, parses: Some(parses::<T>) }
    }

    /// A response of type `T`.
    pub const fn response<T: ToSchema + Example>() -> Self {
        Self { schema: schema_ref::<T>, example: T::example, parses: None }
    }

    /// A plain string (text/plain and text/html answers).
    pub const fn text(example: fn() -> Value) -> Self {
        Self { schema: string_schema, example, parses: None }
    }

    /// A free-form JSON value described by a hand-written schema (a foreign format such as
    /// Meta's webhook payload, or the OpenAPI document itself).
    pub const fn foreign(schema: fn(&mut Components) -> Value, example: fn() -> Value) -> Self {
        Self { schema, example, parses: None }
    }
}

/// How a success answer is written.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The media type (`application/json`, `text/plain`, `text/html`).
    pub media: &'static str,
    /// Whether `data` of the success envelope holds the payload (every API route), or the
    /// payload is the whole body (the document itself, Meta's handshake, metrics, the docs page).
    pub enveloped: bool,
    pub payload: Payload,
}

/// Query parameters of a route, from the `IntoParams` type it parses the query into.
pub type QueryParameters = fn() -> Vec<Value>;

/// The query parameters of `Q`, as OpenAPI parameter objects.
pub fn query_parameters<Q: IntoParams>() -> Vec<Value> {
    Q::into_params(|| Some(ParameterIn::Query)).into_iter().filter_map(|p| serde_json::to_value(p).ok()).collect()
}

/// Puts a schema under its name. Two different types of one name would silently describe one
/// route's body with the other's schema (as `ExecuteBody` of runbooks and of agents once did),
/// so a debug build refuses it, which the document tests run.
fn insert_schema(components: &mut Components, name: String, value: Value) {
    if let Some(existing) = components.get(&name) {
        debug_assert!(existing == &value, "two different schemas are named {name}: rename one of the types");
    }
    components.insert(name, value);
}

/// Registers `T` (and the schemas it names) and returns a `$ref` to it.
pub fn schema_ref<T: ToSchema>(components: &mut Components) -> Value {
    let name = T::name().into_owned();
    let mut nested: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut nested);
    for (n, s) in nested {
        if let Ok(value) = serde_json::to_value(s) {
            insert_schema(components, n, value);
        }
    }
    if let Ok(value) = serde_json::to_value(<T as PartialSchema>::schema()) {
        insert_schema(components, name.clone(), value);
    }
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn string_schema(_: &mut Components) -> Value {
    json!({"type": "string"})
}

fn parses<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    crate::extract::typed::<T>(value).map(|_| ()).map_err(|e| e.message)
}

/// The schema of a list of scope names (`"scopes"` of a key): the catalogue as an enum.
pub fn scope_list() -> utoipa::openapi::Array {
    let names: Vec<&str> = atlas_scopes::Scope::ALL.iter().map(|s| s.as_str()).collect();
    utoipa::openapi::ArrayBuilder::new()
        .items(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::String).enum_values(Some(names)))
        .min_items(Some(1))
        .build()
}
