"""Decoding methods: vanilla and test-time scaling (docs/method.md section 5)."""

from mro.search.decoders import DecodeResult, decoder_names, get_decoder, register_decoder
from mro.search.tts import SearchConfig, segment_search

__all__ = ["DecodeResult", "SearchConfig", "decoder_names", "get_decoder", "register_decoder", "segment_search"]
