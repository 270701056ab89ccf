"""Backbones shared by several attention families (module trees named as in the official code)."""
