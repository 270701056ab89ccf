"""Backbones shared by several attention families (the attention modules come from the family modules)."""
