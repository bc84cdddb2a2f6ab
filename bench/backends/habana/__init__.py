"""``habana``: optimum-habana ``generate()`` on Intel Gaudi (HPU).

Rooms: ``options`` (the run_generation.py knobs and their mapping to
optimum-habana's generation settings; pure, tested anywhere), ``backend``
(loading, HPU graphs, DeepSpeed tensor parallel), ``fp8`` (Intel Neural
Compressor measure/quantize and its cache), ``launch`` (the DeepSpeed
launcher argv and ranks), ``hlsmi`` (power and card facts from ``hl-smi``),
``quant/`` (the INC config templates). Importing this package loads nothing.
"""
