"""Decoding methods: vanilla and test-time scaling (spec section 5)."""

from mro.search.decoders import DecodeResult, decoder_names, get_decoder, register_decoder

__all__ = ["DecodeResult", "decoder_names", "get_decoder", "register_decoder"]
