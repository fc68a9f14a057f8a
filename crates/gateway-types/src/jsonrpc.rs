//! JSON-RPC 2.0 messages, as MCP uses them.
//!
//! Every message type keeps the fields it does not know in `extra`, so a message passes
//! through the gateway with nothing lost: MCP adds fields between revisions, and a proxy that
//! drops them breaks clients it has never seen. `params`, `result` and `data` stay raw JSON.
//!
//! ```
//! use gateway_types::jsonrpc::{Message, Payload};
//!
//! let payload: Payload = serde_json::from_str(
//!     r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","x-vendor":true}"#,
//! ).unwrap();
//! let Payload::Single(Message::Request(req)) = payload else { unreachable!() };
//! assert_eq!(req.method, "tools/list");
//! assert_eq!(req.extra["x-vendor"], true); // unknown fields survive
//! ```

use std::fmt;

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Standard JSON-RPC error codes (and the ones MCP reserves).
pub mod codes {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameters.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// The `"2.0"` marker. Serializes as `"2.0"`; anything else fails to deserialize.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("2.0")
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        if v == "2.0" {
            Ok(Self)
        } else {
            Err(de::Error::custom(format!(
                "unsupported jsonrpc version {v:?}, expected \"2.0\""
            )))
        }
    }
}

/// A request id: a string or an integer (MCP forbids `null` ids on requests).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A request: expects a response with the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// Correlates the response.
    pub id: RequestId,
    /// The method name.
    pub method: String,
    /// Raw parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Fields this type does not model, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A notification: no id, no response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// The method name.
    pub method: String,
    /// Raw parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Fields this type does not model, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A successful response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// The id of the request this answers.
    pub id: RequestId,
    /// The raw result.
    pub result: Value,
    /// Fields this type does not model, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `error` member of an error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The error code.
    pub code: i64,
    /// A short, client-safe description.
    pub message: String,
    /// Optional structured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error object without data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
}

/// An error response. `id` is `null` when the request's id could not be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always `"2.0"`.
    pub jsonrpc: Version,
    /// The id of the failed request, or `None` (serialized as `null`).
    pub id: Option<RequestId>,
    /// The error.
    pub error: ErrorObject,
    /// Fields this type does not model, passed through untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErrorResponse {
    /// An error response for `id`.
    #[must_use]
    pub fn new(id: Option<RequestId>, error: ErrorObject) -> Self {
        Self {
            jsonrpc: Version,
            id,
            error,
            extra: Map::new(),
        }
    }
}

/// Any single JSON-RPC message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A successful response.
    Response(Response),
    /// An error response.
    Error(ErrorResponse),
}

impl Message {
    /// The method, for requests and notifications.
    #[must_use]
    pub fn method(&self) -> Option<&str> {
        match self {
            Self::Request(r) => Some(&r.method),
            Self::Notification(n) => Some(&n.method),
            Self::Response(_) | Self::Error(_) => None,
        }
    }

    /// The id, for requests and responses.
    #[must_use]
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Self::Request(r) => Some(&r.id),
            Self::Response(r) => Some(&r.id),
            Self::Error(e) => e.id.as_ref(),
            Self::Notification(_) => None,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Request(m) => m.serialize(s),
            Self::Notification(m) => m.serialize(s),
            Self::Response(m) => m.serialize(s),
            Self::Error(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

/// Decodes a message in one pass over the input: each member straight into its place, the
/// unknown ones into `extra`. A semantic error is reported only after the whole object was
/// read, so a syntax error anywhere in it still wins (it is a parse error, not an invalid
/// request).
struct MessageVisitor;

impl<'de> de::Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match key.as_ref() {
                "jsonrpc" => &mut fields.jsonrpc,
                "id" => &mut fields.id,
                "method" => &mut fields.method,
                "params" => &mut fields.params,
                "result" => &mut fields.result,
                "error" => &mut fields.error,
                _ => {
                    let value = map.next_value::<Value>()?;
                    fields.extra.insert(key.into_owned(), value);
                    continue;
                }
            };
            let value = map.next_value::<Value>()?;
            if slot.replace(value).is_some() && fields.problem.is_none() {
                fields.problem = Some(format!("duplicate field `{key}`"));
            }
        }
        fields.build().map_err(de::Error::custom)
    }
}

/// The members of a message object as read, before its kind is known.
#[derive(Default)]
struct Fields {
    jsonrpc: Option<Value>,
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Value>,
    result: Option<Value>,
    error: Option<Value>,
    extra: Map<String, Value>,
    problem: Option<String>,
}

impl Fields {
    fn build(mut self) -> Result<Message, String> {
        if let Some(problem) = self.problem.take() {
            return Err(problem);
        }
        let kind = if self.method.is_some() {
            if self.id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            }
        } else if self.error.is_some() {
            Kind::Error
        } else if self.result.is_some() {
            Kind::Response
        } else {
            return Err("not a JSON-RPC message: no method, result or error".into());
        };
        match self.jsonrpc.take() {
            None => return Err("missing field `jsonrpc`".into()),
            Some(Value::String(v)) if v == "2.0" => {}
            Some(other) => {
                return Err(format!("unsupported jsonrpc version {other}, expected \"2.0\""));
            }
        }
        // Members that do not belong to this kind pass through as unknown ones.
        let mut keep = |name: &str, value: Option<Value>| {
            if let Some(v) = value {
                self.extra.insert(name.to_owned(), v);
            }
        };
        let msg = match kind {
            Kind::Request => {
                keep("result", self.result);
                keep("error", self.error);
                Message::Request(Request {
                    jsonrpc: Version,
                    id: request_id(self.id)?,
                    method: method(self.method)?,
                    params: self.params,
                    extra: self.extra,
                })
            }
            Kind::Notification => {
                keep("result", self.result);
                keep("error", self.error);
                Message::Notification(Notification {
                    jsonrpc: Version,
                    method: method(self.method)?,
                    params: self.params,
                    extra: self.extra,
                })
            }
            Kind::Response => {
                keep("params", self.params);
                Message::Response(Response {
                    jsonrpc: Version,
                    id: request_id(self.id)?,
                    result: self.result.unwrap_or(Value::Null),
                    extra: self.extra,
                })
            }
            Kind::Error => {
                keep("params", self.params);
                keep("result", self.result);
                let id = match self.id {
                    None | Some(Value::Null) => None,
                    some => Some(request_id(some)?),
                };
                let error = ErrorObject::deserialize(self.error.unwrap_or(Value::Null))
                    .map_err(|e| format!("invalid `error`: {e}"))?;
                Message::Error(ErrorResponse {
                    jsonrpc: Version,
                    id,
                    error,
                    extra: self.extra,
                })
            }
        };
        Ok(msg)
    }
}

fn request_id(value: Option<Value>) -> Result<RequestId, String> {
    match value {
        None => Err("missing field `id`".into()),
        Some(Value::String(s)) => Ok(RequestId::String(s)),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(RequestId::Number)
            .ok_or_else(|| "a request id must be a string or an integer".into()),
        Some(Value::Null) => Err("a request id must be a string or an integer, not null".into()),
        Some(_) => Err("a request id must be a string or an integer".into()),
    }
}

fn method(value: Option<Value>) -> Result<String, String> {
    match value {
        Some(Value::String(s)) => Ok(s),
        _ => Err("`method` must be a string".into()),
    }
}

#[derive(PartialEq, Eq)]
enum Kind {
    Request,
    Notification,
    Response,
    Error,
}

/// One message or a batch (JSON array) of them. An empty batch is invalid.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A single message.
    Single(Message),
    /// A non-empty batch.
    Batch(Vec<Message>),
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Single(m) => m.serialize(s),
            Self::Batch(b) => b.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PayloadVisitor)
    }
}

/// A message object or a batch array, in one pass.
struct PayloadVisitor;

impl<'de> de::Visitor<'de> for PayloadVisitor {
    type Value = Payload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC payload: an object or an array")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
        MessageVisitor.visit_map(map).map(Payload::Single)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        let mut first_error = None;
        loop {
            if first_error.is_some() {
                // Read on to the end: a syntax error further in is still a parse error.
                if seq.next_element::<de::IgnoredAny>()?.is_none() {
                    break;
                }
                continue;
            }
            match seq.next_element::<Message>() {
                Ok(Some(m)) => items.push(m),
                Ok(None) => break,
                Err(e) => first_error = Some(e),
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if items.is_empty() {
            return Err(de::Error::custom("empty batch"));
        }
        Ok(Payload::Batch(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Payload, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn classifies_every_message_kind() {
        let cases = [
            (json!({"jsonrpc":"2.0","id":1,"method":"ping"}), "request"),
            (
                json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
                "notification",
            ),
            (json!({"jsonrpc":"2.0","id":"a","result":{}}), "response"),
            (
                json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}),
                "error",
            ),
        ];
        for (value, want) in cases {
            let Payload::Single(msg) = parse(value.clone()).unwrap() else {
                panic!("not single")
            };
            let got = match msg {
                Message::Request(_) => "request",
                Message::Notification(_) => "notification",
                Message::Response(_) => "response",
                Message::Error(_) => "error",
            };
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn unknown_fields_round_trip() {
        let value = json!({
            "jsonrpc":"2.0","id":"x-1","method":"tools/call",
            "params":{"name":"echo","arguments":{"a":[1,2]},"_meta":{"progressToken":3}},
            "vendor":{"k":"v"}
        });
        let payload = parse(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&payload).unwrap(), value);

        let err = json!({"jsonrpc":"2.0","id":4,"error":{"code":-1,"message":"m","data":{"d":1}},"x":1});
        assert_eq!(serde_json::to_value(parse(err.clone()).unwrap()).unwrap(), err);
    }

    #[test]
    fn batches_keep_order_and_reject_empty() {
        let batch = json!([
            {"jsonrpc":"2.0","id":1,"method":"a"},
            {"jsonrpc":"2.0","method":"b"}
        ]);
        let Payload::Batch(items) = parse(batch).unwrap() else {
            panic!("not a batch")
        };
        assert_eq!(
            items.iter().map(|m| m.method().unwrap()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(parse(json!([])).is_err());
    }

    #[test]
    fn rejects_invalid_messages() {
        for bad in [
            json!({"jsonrpc":"1.0","id":1,"method":"a"}),
            json!({"id":1,"method":"a"}),
            json!({"jsonrpc":"2.0","id":null,"method":"a"}),
            json!({"jsonrpc":"2.0","id":1.5,"method":"a"}),
            json!({"jsonrpc":"2.0","id":1}),
            json!({"jsonrpc":"2.0","id":1,"method":7}),
            json!("string"),
            json!(42),
        ] {
            assert!(parse(bad.clone()).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn a_syntax_error_wins_over_an_invalid_member() {
        for text in [
            r#"{"jsonrpc":"1.0","id":1,"method":"a","params":{"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"a","params":[1,}"#,
            r#"[{"jsonrpc":"2.0","id":1.5,"method":"a"},{"jsonrpc":"2.0","method":}]"#,
        ] {
            let err = serde_json::from_str::<Payload>(text).unwrap_err();
            assert!(err.is_syntax() || err.is_eof(), "{text}: {err}");
        }
        let err = serde_json::from_str::<Payload>(
            r#"[{"jsonrpc":"2.0","id":1.5,"method":"a"},{"jsonrpc":"2.0","method":"b"}]"#,
        )
        .unwrap_err();
        assert!(err.is_data(), "{err}");
    }

    #[test]
    fn members_of_another_kind_and_duplicates() {
        let value = json!({"jsonrpc":"2.0","id":1,"method":"a","result":{"r":1}});
        let Payload::Single(Message::Request(req)) = parse(value.clone()).unwrap() else {
            unreachable!("a request")
        };
        assert_eq!(req.extra["result"], json!({"r":1}));
        assert_eq!(serde_json::to_value(Message::Request(req)).unwrap(), value);
        assert!(serde_json::from_str::<Message>(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#).is_err());
        let e =
            serde_json::from_str::<Message>(r#"{"jsonrpc":"2.0","error":{"code":1,"message":"m"}}"#).unwrap();
        assert!(matches!(e, Message::Error(ErrorResponse { id: None, .. })));
    }

    #[test]
    fn error_without_id_serializes_null_id() {
        let e = ErrorResponse::new(None, ErrorObject::new(codes::PARSE_ERROR, "Parse error"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})
        );
    }
}
