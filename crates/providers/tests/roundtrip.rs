//! Property: an OpenAI request translated to a provider's format and back keeps its messages
//! (roles, text, tool calls with ids and arguments, tool results) and tools; an OpenAI answer
//! translated to the provider's answer and back keeps its text, tool calls, stop reason and
//! usage (cached tokens included).

#![allow(clippy::unwrap_used)]

use infergate_providers::wire::{
    ChatRequest, ChatResponse, Choice, Content, FunctionCall, FunctionDef, Message, OpenAiUsage,
    PromptTokensDetails, Rest, Tool, ToolCall,
};
use infergate_providers::{anthropic, bedrock, gemini};
use proptest::prelude::*;
use serde_json::json;

fn word() -> impl Strategy<Value = String> {
    "[a-z]{1,8}( [a-z]{1,8}){0,4}"
}

fn ident() -> impl Strategy<Value = String> {
    "[a-z][a-z_]{0,10}"
}

fn text_msg(role: &str, t: String) -> Message {
    Message {
        role: role.into(),
        content: Some(Content::Text(t)),
        ..Default::default()
    }
}

/// One assistant turn: text, or tool calls answered by tool messages.
fn assistant_turn(turn: usize) -> impl Strategy<Value = Vec<Message>> {
    prop_oneof![
        word().prop_map(|t| vec![text_msg("assistant", t)]),
        proptest::collection::vec((ident(), word(), word()), 1..3).prop_map(move |calls| {
            let mut out = vec![Message {
                role: "assistant".into(),
                tool_calls: Some(
                    calls
                        .iter()
                        .enumerate()
                        .map(|(i, (name, arg, _))| ToolCall {
                            id: format!("call_{turn}_{i}"),
                            kind: "function".into(),
                            function: FunctionCall {
                                name: name.clone(),
                                arguments: json!({"arg": arg}).to_string(),
                            },
                            rest: Rest::new(),
                        })
                        .collect(),
                ),
                ..Default::default()
            }];
            for (i, (_, _, result)) in calls.into_iter().enumerate() {
                out.push(Message {
                    role: "tool".into(),
                    content: Some(Content::Text(result)),
                    tool_call_id: Some(format!("call_{turn}_{i}")),
                    ..Default::default()
                });
            }
            out
        }),
    ]
}

fn conversation() -> impl Strategy<Value = Vec<Message>> {
    (
        proptest::option::of(word()),
        proptest::collection::vec(word(), 1..4),
        proptest::collection::vec(any::<u8>(), 3),
    )
        .prop_flat_map(|(system, users, _)| {
            let n = users.len();
            let turns: Vec<_> = (0..n - 1).map(assistant_turn).collect();
            (Just(system), Just(users), turns)
        })
        .prop_map(|(system, users, turns)| {
            let mut msgs = Vec::new();
            if let Some(s) = system {
                msgs.push(text_msg("system", s));
            }
            for (i, u) in users.into_iter().enumerate() {
                msgs.push(text_msg("user", u));
                if let Some(t) = turns.get(i) {
                    msgs.extend(t.iter().cloned());
                }
            }
            msgs
        })
}

fn tools() -> impl Strategy<Value = Option<Vec<Tool>>> {
    proptest::option::of(
        proptest::collection::vec((ident(), word()), 1..3).prop_map(|ts| {
            ts.into_iter()
                .map(|(name, desc)| Tool {
                    kind: "function".into(),
                    function: FunctionDef {
                        name,
                        description: Some(desc),
                        parameters: Some(
                            json!({"type": "object", "properties": {"arg": {"type": "string"}}}),
                        ),
                        rest: Rest::new(),
                    },
                    rest: Rest::new(),
                })
                .collect()
        }),
    )
}

fn request() -> impl Strategy<Value = ChatRequest> {
    (conversation(), tools(), 1u64..4096).prop_map(|(messages, tools, max)| ChatRequest {
        model: "m".into(),
        messages,
        tools,
        tool_choice: None,
        parallel_tool_calls: None,
        max_tokens: Some(max),
        max_completion_tokens: None,
        temperature: None,
        top_p: None,
        stop: None,
        stream: None,
        stream_options: None,
        user: None,
        rest: Rest::new(),
    })
}

fn response() -> impl Strategy<Value = ChatResponse> {
    (
        proptest::option::of(word()),
        proptest::collection::vec((ident(), word()), 0..3),
        prop_oneof![Just("stop"), Just("length")],
        (0u64..100_000, 0u64..10_000, 0u64..100),
    )
        .prop_map(|(text, calls, finish, (input, output, cached_pct))| {
            let calls: Vec<ToolCall> = calls
                .into_iter()
                .enumerate()
                .map(|(i, (name, arg))| ToolCall {
                    id: format!("call_{i}"),
                    kind: "function".into(),
                    function: FunctionCall {
                        name,
                        arguments: json!({"arg": arg}).to_string(),
                    },
                    rest: Rest::new(),
                })
                .collect();
            let text = if calls.is_empty() {
                Some(text.unwrap_or_else(|| "x".into()))
            } else {
                text
            };
            let finish = if calls.is_empty() {
                finish
            } else {
                "tool_calls"
            };
            let cached = input * cached_pct / 100;
            ChatResponse {
                id: "chatcmpl-1".into(),
                object: "chat.completion".into(),
                created: 0,
                model: "m".into(),
                choices: vec![Choice {
                    index: 0,
                    message: Message {
                        role: "assistant".into(),
                        content: text.map(Content::Text),
                        tool_calls: (!calls.is_empty()).then_some(calls),
                        ..Default::default()
                    },
                    finish_reason: Some(finish.into()),
                    rest: Rest::new(),
                }],
                usage: Some(OpenAiUsage {
                    prompt_tokens: input,
                    completion_tokens: output,
                    total_tokens: input + output,
                    prompt_tokens_details: (cached > 0).then(|| PromptTokensDetails {
                        cached_tokens: cached,
                        rest: Rest::new(),
                    }),
                    rest: Rest::new(),
                }),
                rest: Rest::new(),
            }
        })
}

/// What must survive: messages, tools, the output cap.
fn essentials(r: &ChatRequest) -> (Vec<Message>, Option<Vec<Tool>>, Option<u64>) {
    (r.messages.clone(), r.tools.clone(), r.max_output_tokens())
}

fn answer(
    r: &ChatResponse,
) -> (
    String,
    Option<Vec<ToolCall>>,
    Option<String>,
    Option<OpenAiUsage>,
) {
    let c = &r.choices[0];
    (
        c.message.text(),
        c.message.tool_calls.clone(),
        c.finish_reason.clone(),
        r.usage.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn anthropic_request_round_trip(req in request()) {
        let wire = anthropic::request_from_openai(&req);
        let json = serde_json::to_value(&wire).unwrap();
        let back = anthropic::request_to_openai(&serde_json::from_value(json).unwrap());
        prop_assert_eq!(essentials(&back), essentials(&req));
    }

    #[test]
    fn bedrock_request_round_trip(req in request()) {
        let wire = bedrock::request_from_openai(&req);
        let back = bedrock::request_to_openai(&wire, "m");
        prop_assert_eq!(essentials(&back), essentials(&req));
    }

    #[test]
    fn gemini_request_round_trip(req in request()) {
        let wire = gemini::request_from_openai(&req);
        let back = gemini::request_to_openai(&wire, "m");
        prop_assert_eq!(essentials(&back), essentials(&req));
    }

    #[test]
    fn anthropic_response_round_trip(resp in response()) {
        let wire = anthropic::response_from_openai(&resp);
        let json = serde_json::to_value(&wire).unwrap();
        let back = anthropic::response_to_openai(&serde_json::from_value(json).unwrap(), 0);
        prop_assert_eq!(answer(&back), answer(&resp));
    }

    #[test]
    fn bedrock_response_round_trip(resp in response()) {
        let wire = bedrock::response_from_openai(&resp);
        let back = bedrock::response_to_openai(&wire, "m", "chatcmpl-1", 0);
        prop_assert_eq!(answer(&back), answer(&resp));
    }

    #[test]
    fn gemini_response_round_trip(resp in response()) {
        let wire = gemini::response_from_openai(&resp);
        let back = gemini::response_to_openai(&wire, "m", "chatcmpl-1", 0);
        prop_assert_eq!(answer(&back), answer(&resp));
    }
}
