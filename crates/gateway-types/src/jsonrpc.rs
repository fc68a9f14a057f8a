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
        let mut obj = Map::<String, Value>::deserialize(d)?;
        let kind = if obj.contains_key("method") {
            if obj.contains_key("id") {
                Kind::Request
            } else {
                Kind::Notification
            }
        } else if obj.contains_key("error") {
            Kind::Error
        } else if obj.contains_key("result") {
            Kind::Response
        } else {
            return Err(de::Error::custom(
                "not a JSON-RPC message: no method, result or error",
            ));
        };
        if kind == Kind::Request && obj.get("id").is_some_and(Value::is_null) {
            return Err(de::Error::custom(
                "a request id must be a string or an integer, not null",
            ));
        }
        if kind == Kind::Error && obj.get("id").is_none() {
            obj.insert("id".into(), Value::Null);
        }
        let value = Value::Object(obj);
        let msg = match kind {
            Kind::Request => Self::Request(Request::deserialize(value).map_err(de::Error::custom)?),
            Kind::Notification => {
                Self::Notification(Notification::deserialize(value).map_err(de::Error::custom)?)
            }
            Kind::Response => Self::Response(Response::deserialize(value).map_err(de::Error::custom)?),
            Kind::Error => Self::Error(ErrorResponse::deserialize(value).map_err(de::Error::custom)?),
        };
        Ok(msg)
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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Batch(Vec<Message>),
            Single(Message),
        }
        // Untagged error messages are vague; decode through Value for precise ones.
        let value = Value::deserialize(d)?;
        match value {
            Value::Array(items) if items.is_empty() => Err(de::Error::custom("empty batch")),
            Value::Array(_) | Value::Object(_) => {
                match Either::deserialize(value).map_err(de::Error::custom)? {
                    Either::Batch(b) => Ok(Self::Batch(b)),
                    Either::Single(m) => Ok(Self::Single(m)),
                }
            }
            _ => Err(de::Error::custom(
                "a JSON-RPC payload must be an object or an array",
            )),
        }
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
    fn error_without_id_serializes_null_id() {
        let e = ErrorResponse::new(None, ErrorObject::new(codes::PARSE_ERROR, "Parse error"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})
        );
    }
}
