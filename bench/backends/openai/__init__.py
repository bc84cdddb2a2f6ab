"""``openai``: an OpenAI-compatible HTTP endpoint (vLLM, TGI, SGLang,
``transformers serve``), streamed.

Rooms: ``options`` (what a config may say, light), ``endpoints`` (one row
per API: payload builder and chunk reader), ``payload`` (the body's other
fields, which ones a server may refuse, the config in effect), ``probe``
(setup: the endpoint and fields a server takes), ``sse`` (the event-stream
decoder), ``stream`` (one timed request: the hot path), ``tokens`` (the
tokenizer and the prompt-count rule exact lengths build on), ``counts``
(streams to records), ``loadgen`` + ``driver`` (when each request is sent),
``backend`` (the Backend protocol) and ``export_vllm`` (vLLM's result JSON).
Importing this package loads nothing.
"""
