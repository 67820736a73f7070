"""Everything Label Studio: its label config, protocol bodies, drawn regions, tokens,
storage and the per-project store of what /setup sent. Knows nothing of HTTP serving.
"""
