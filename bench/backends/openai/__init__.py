"""``openai``: an OpenAI-compatible HTTP endpoint (vLLM, TGI, SGLang,
``transformers serve``), streamed.

Rooms: ``options`` (what a config may say, light), ``endpoints`` (one row
per API: request body and the text of a streamed choice), ``sse`` (the
event-stream decoder), ``loadgen`` + ``driver`` (when each request is sent),
``backend`` (the Backend protocol: probe, measure, records) and
``export_vllm`` (vLLM's result JSON). Importing this package loads nothing.
"""
