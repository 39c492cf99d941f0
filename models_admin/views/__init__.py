"""Thin function-based views, one module per area: validate input, call one service,
pick a template, respond."""
