//! stdio.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::spawn;

#[tokio::test]
async fn stdio_session() {
    let mut child = spawn(&["--stdio"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let messages = [
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"over stdio"}}}),
        json!({"jsonrpc":"2.0","id":2,"method":"bogus"}),
    ];
    for m in &messages {
        stdin.write_all(format!("{m}\n").as_bytes()).await.unwrap();
    }
    stdin.flush().await.unwrap();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let line = lines.next_line().await.unwrap().unwrap();
        answers.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let [init, echoed, unknown] = answers.as_slice() else {
        unreachable!()
    };
    assert_eq!(init["id"], 0);
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-echo");
    assert_eq!(echoed["id"], 1);
    assert_eq!(echoed["result"]["content"][0]["text"], "over stdio");
    assert_eq!(unknown["error"]["code"], -32601);
    // Closing stdin ends the server cleanly.
    drop(stdin);
    assert!(child.wait().await.unwrap().success());
}
