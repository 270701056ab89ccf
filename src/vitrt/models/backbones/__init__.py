"""Backbones shared by several attention families (module trees and key names follow the official code)."""
