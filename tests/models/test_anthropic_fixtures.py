"""Byte-level Anthropic SSE fixtures, written from the documented Messages streaming format."""

from __future__ import annotations

import itertools

# A text answer with cache usage, a ping and a comment line, as in Anthropic's streaming docs.
TEXT_STREAM = (
    b"event: message_start\n"
    b'data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",'
    b' "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-1",'
    b' "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25,'
    b' "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000,'
    b' "output_tokens": 1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text",'
    b' "text": ""}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b": keep-alive comment\n\n"
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",'
    b' "text": "Hello"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",'
    b' "text": ", w\xc3\xb6rld!"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type": "content_block_stop", "index": 0}\n\n'
    b"event: message_delta\n"
    b'data: {"type": "message_delta", "delta": {"stop_reason": "end_turn",'
    b' "stop_sequence": null}, "usage": {"output_tokens": 15}}\n\n'
    b"event: message_stop\n"
    b'data: {"type": "message_stop"}\n\n'
)

# Text, then two tool_use blocks whose input arrives in fragments, then a no-argument tool.
TOOLS_STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U",'
    b'"type":"message","role":"assistant","model":"claude-opus-4-1","stop_sequence":null,'
    b'"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
    b"\n\n"
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
    b'"text":"Checking both."}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use",'
    b'"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    b'"partial_json":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{\\"location\\":"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    b'"partial_json":" \\"San Francisc"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta",'
    b'"partial_json":"o, CA\\", \\"unit\\": \\"fahrenheit\\"}"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":1}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use",'
    b'"id":"toolu_02","name":"get_weather","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta",'
    b'"partial_json":"{\\"location\\": \\"Paris\\"}"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":2}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":3,"content_block":{"type":"tool_use",'
    b'"id":"toolu_03","name":"now","input":{}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta",'
    b'"partial_json":""}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type":"content_block_stop","index":3}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},'
    b'"usage":{"output_tokens":89}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)

# Extended thinking: thinking_delta pieces, then signature_delta, then the answer.
THINKING_STREAM = (
    b"event: message_start\n"
    b'data: {"type": "message_start", "message": {"id": "msg_01thinking", "type": "message",'
    b' "role": "assistant", "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,'
    b' "stop_sequence": null, "usage": {"input_tokens": 85, "output_tokens": 1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking",'
    b' "thinking": "", "signature": ""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",'
    b' "thinking": "Let me solve this step by step:\\n\\n1. First break down 27 * 453"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta",'
    b' "thinking": "\\n2. 453 = 400 + 50 + 3"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta",'
    b' "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type": "content_block_stop", "index": 0}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 1, "content_block": {"type":'
    b' "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type": "content_block_stop", "index": 1}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 2, "content_block": {"type": "text",'
    b' "text": ""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta",'
    b' "text": "27 * 453 = 12,231"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type": "content_block_stop", "index": 2}\n\n'
    b"event: message_delta\n"
    b'data: {"type": "message_delta", "delta": {"stop_reason": "end_turn",'
    b' "stop_sequence": null}, "usage": {"output_tokens": 210}}\n\n'
    b"event: message_stop\n"
    b'data: {"type": "message_stop"}\n\n'
)

# JSON padded with spaces inside and around the objects, CRLF line endings.
PADDED_STREAM = (
    b"event: message_start\r\n"
    b'data:   {  "type" : "message_start" ,  "message" : { "id" : "msg_pad" , "model" :'
    b' "claude-haiku-4-5" , "content" : [ ] , "usage" : { "input_tokens" : 7 ,'
    b' "output_tokens" : 1 } } }   \r\n\r\n'
    b"event: content_block_start\r\n"
    b'data:  { "type" : "content_block_start" , "index" : 0 , "content_block" :'
    b' { "type" : "text" , "text" : "" } }  \r\n\r\n'
    b"event: content_block_delta\r\n"
    b'data:  { "type" : "content_block_delta" , "index" : 0 , "delta" :'
    b' { "type" : "text_delta" , "text" : "  spaced  " } }  \r\n\r\n'
    b"event: content_block_stop\r\n"
    b'data: { "type" : "content_block_stop" , "index" : 0 }\r\n\r\n'
    b"event: message_delta\r\n"
    b'data: { "type" : "message_delta" , "delta" : { "stop_reason" : "max_tokens" } ,'
    b' "usage" : { "output_tokens" : 3 } }\r\n\r\n'
    b"event: message_stop\r\n"
    b'data: { "type" : "message_stop" }\r\n\r\n'
)

MESSAGE_START = (
    b"event: message_start\n"
    b'data: {"type": "message_start", "message": {"id": "msg_err", "type": "message",'
    b' "role": "assistant", "content": [], "model": "claude-opus-4-1", "stop_reason": null,'
    b' "usage": {"input_tokens": 5, "output_tokens": 1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text",'
    b' "text": ""}}\n\n'
)

OVERLOADED_EVENT = (
    b"event: error\n"
    b'data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
)

INVALID_EVENT = (
    b"event: error\n"
    b'data: {"type": "error", "error": {"type": "invalid_request_error",'
    b' "message": "prompt is too long"}}\n\n'
)


def split_every(raw: bytes, size: int) -> list[bytes | str]:
    """Split bytes into chunks of `size`: events, lines and UTF-8 characters break anywhere."""
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def split_at(raw: bytes, *cuts: int) -> list[bytes | str]:
    """Split bytes at the given offsets."""
    bounds = [0, *cuts, len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]
